//! Real `hanode` processes on 127.0.0.1/2/3 and the real `etcdctl`, with cleanup on drop.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use hanode_testkit::wait;

/// The `hanode` binary next to the test executable (`target/<profile>/hanode`), or `HANODE_BIN`.
pub fn hanode_bin() -> PathBuf {
    if let Ok(path) = std::env::var("HANODE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    profile_dir.join("hanode")
}

/// Where test servers' ports come from: below Linux's ephemeral range (32768-60999), so the
/// outgoing connections of other tests, which take ephemeral ports, cannot grab a port between
/// its choice here and the server's bind. (Port 0 would hand out exactly those ports.)
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A TCP port on `ip` that is free now: random in [`TEST_PORTS`], checked by binding it. Not in
/// `taken` (ports already chosen for the same process).
pub fn free_port_except(ip: IpAddr, taken: &[u16]) -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let span = u64::from(TEST_PORTS.end - TEST_PORTS.start);
    for attempt in 0u64.. {
        // RandomState is seeded per instance: a random number without a rand dependency.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(attempt);
        let port = TEST_PORTS.start + (hasher.finish() % span) as u16;
        if !taken.contains(&port) && TcpListener::bind(SocketAddr::new(ip, port)).is_ok() {
            return port;
        }
        assert!(attempt < 10_000, "no free port on {ip} in {TEST_PORTS:?}");
    }
    unreachable!("the loop returns or panics")
}

/// A free TCP port on `ip`; see [`free_port_except`].
pub fn free_port(ip: IpAddr) -> u16 {
    free_port_except(ip, &[])
}

/// One `hanode server` process.
pub struct ProcServer {
    /// Member name.
    pub name: String,
    /// Advertise and bind address.
    pub ip: Ipv4Addr,
    /// API, etcd and peer ports.
    pub ports: [u16; 3],
    /// Data dir.
    pub data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl ProcServer {
    /// Starts `hanode server` with `extra` arguments (`--init` or `--join ...`).
    pub fn spawn(root: &Path, name: &str, ip: Ipv4Addr, extra: &[String]) -> Result<ProcServer> {
        let api = free_port(ip.into());
        let etcd = free_port_except(ip.into(), &[api]);
        let ports = [api, etcd, free_port_except(ip.into(), &[api, etcd])];
        let mut server = ProcServer {
            name: name.into(),
            ip,
            ports,
            data_dir: root.join(name),
            log: root.join(format!("{name}.log")),
            child: None,
        };
        server.start(extra)?;
        Ok(server)
    }

    /// (Re)starts the process with the same name, address, ports and data dir.
    pub fn start(&mut self, extra: &[String]) -> Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(hanode_bin());
        command
            .arg("server")
            .args(["--node-name", &self.name])
            .args(["--data-dir", &self.data_dir.display().to_string()])
            .args(["--advertise-address", &self.ip.to_string()])
            .args(["--api-port", &self.ports[0].to_string()])
            .args(["--etcd-port", &self.ports[1].to_string()])
            .args(["--peer-port", &self.ports[2].to_string()])
            .args(extra)
            .env("HANODE_LOG", "info,openraft=warn")
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        self.child = Some(
            command
                .spawn()
                .with_context(|| format!("spawning {}", hanode_bin().display()))?,
        );
        Ok(())
    }

    /// `https://IP:API_PORT`.
    pub fn api_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.ports[0])
    }

    /// `https://IP:ETCD_PORT`.
    pub fn etcd_url(&self) -> String {
        format!("https://{}:{}", self.ip, self.ports[1])
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().and_then(|c| c.id()).map(|id| id as i32)
    }

    /// Sends a signal (SIGKILL, SIGSTOP, SIGCONT, SIGTERM).
    pub fn signal(&self, signal: i32) -> Result<()> {
        let pid = self.pid().context("not running")?;
        let rc = send_signal(pid, signal);
        anyhow::ensure!(rc == 0, "kill({pid}, {signal}) failed");
        Ok(())
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// SIGTERM, and wait for a clean exit.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        self.signal(libc::SIGTERM)?;
        let mut child = self.child.take().context("not running")?;
        Ok(tokio::time::timeout(Duration::from_secs(20), child.wait()).await??)
    }

    /// Waits for the process to exit on its own (for commands expected to fail).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("not running")?;
        let status = tokio::time::timeout(timeout, child.wait())
            .await
            .context("process did not exit")??;
        self.child = None;
        Ok(status)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The join token written by the server.
    pub fn token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.data_dir.join("token"))?
            .trim()
            .to_string())
    }

    /// Waits until `/readyz` answers ok.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let ca_path = self.data_dir.join("pki/ca.crt");
        let url = format!("{}/readyz", self.api_url());
        let result = wait::for_true(timeout, &format!("{} to be ready", self.name), || async {
            let Ok(ca) = std::fs::read_to_string(&ca_path) else {
                return false;
            };
            let Ok(client) = hanode_server::client::trusting(&ca, None) else {
                return false;
            };
            match client.get(&url).send().await {
                Ok(resp) => resp.status().is_success(),
                Err(_) => false,
            }
        })
        .await;
        if result.is_err() {
            bail!("{} not ready; log:\n{}", self.name, self.log());
        }
        Ok(())
    }
}

fn send_signal(pid: i32, signal: i32) -> i32 {
    // std has no signal API and this workspace forbids unsafe code: use kill(1).
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    if status.map(|s| s.success()).unwrap_or(false) {
        0
    } else {
        -1
    }
}

impl Drop for ProcServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Three real servers on 127.0.0.1, 127.0.0.2 and 127.0.0.3.
pub struct ProcCluster {
    /// Temp root holding data dirs and logs.
    pub dir: tempfile::TempDir,
    /// The servers, n1..n3.
    pub servers: Vec<ProcServer>,
}

impl ProcCluster {
    /// Starts n1 with `--init`, then joins n2 and n3, and waits for three voters.
    pub async fn start() -> Result<ProcCluster> {
        Self::start_with(&[]).await
    }

    /// Like [`ProcCluster::start`], with `extra` arguments for every server (`--role storage`).
    pub async fn start_with(extra: &[&str]) -> Result<ProcCluster> {
        hanode_testkit::init();
        let dir = tempfile::tempdir()?;
        let extra: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
        let mut init = vec!["--init".to_string()];
        init.extend(extra.iter().cloned());
        let n1 = ProcServer::spawn(dir.path(), "n1", Ipv4Addr::new(127, 0, 0, 1), &init)?;
        n1.wait_ready(Duration::from_secs(30)).await?;
        let token = n1.token()?;
        let mut servers = vec![n1];
        for i in 2..=3u8 {
            // n3 joins through n2: any server accepts joins (it opens the sealed CA itself).
            let via = servers.last().map(|s| s.api_url()).unwrap_or_default();
            let mut join = vec!["--join".to_string(), via, "--token".into(), token.clone()];
            join.extend(extra.iter().cloned());
            let server = ProcServer::spawn(
                dir.path(),
                &format!("n{i}"),
                Ipv4Addr::new(127, 0, 0, i),
                &join,
            )?;
            server.wait_ready(Duration::from_secs(30)).await?;
            servers.push(server);
        }
        let cluster = ProcCluster { dir, servers };
        wait::for_true(Duration::from_secs(20), "three voters", || async {
            match cluster.etcdctl(&["member", "list"]).await {
                Ok(out) => out.lines().filter(|l| l.ends_with(", false")).count() == 3,
                Err(_) => false,
            }
        })
        .await?;
        Ok(cluster)
    }

    /// etcd endpoints of running servers.
    pub fn endpoints(&self) -> String {
        self.servers
            .iter()
            .filter(|s| s.child.is_some())
            .map(|s| s.etcd_url())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs etcdctl against every running server; fails with its stderr on a non-zero exit.
    pub async fn etcdctl(&self, args: &[&str]) -> Result<String> {
        let output = self.etcdctl_raw(&self.endpoints(), args, None).await?;
        if !output.status.success() {
            bail!(
                "etcdctl {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs etcdctl against `endpoints` with optional stdin; returns the raw output.
    pub async fn etcdctl_raw(
        &self,
        endpoints: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<std::process::Output> {
        let pki = self.servers[0].data_dir.join("pki");
        let mut command = Command::new("etcdctl");
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", pki.join("ca.crt").display()))
            .arg(format!("--cert={}", pki.join("admin.crt").display()))
            .arg(format!("--key={}", pki.join("admin.key").display()))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .context("running etcdctl (Debian package etcd-client)")?;
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().context("etcdctl stdin")?;
            pipe.write_all(input.as_bytes()).await?;
            drop(pipe);
        }
        Ok(tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await??)
    }

    /// An `etcd-client` connection to one server.
    pub async fn client(&self, index: usize) -> Result<etcd_client::Client> {
        let options = hanode_testkit::etcd_options(&self.servers[0].data_dir)?;
        Ok(etcd_client::Client::connect([self.servers[index].etcd_url()], Some(options)).await?)
    }

    /// Index of the current leader, from `endpoint status` of a running server.
    pub async fn leader(&self, timeout: Duration) -> Result<usize> {
        wait::until(timeout, "a leader", || async {
            let out = self
                .etcdctl(&["endpoint", "status", "-w", "json"])
                .await
                .ok()?;
            let statuses: serde_json::Value = serde_json::from_str(&out).ok()?;
            for status in statuses.as_array()? {
                let leader = status["Status"]["leader"].as_u64()?;
                let member = status["Status"]["header"]["member_id"].as_u64()?;
                if leader == member {
                    let endpoint = status["Endpoint"].as_str()?;
                    return self.servers.iter().position(|s| s.etcd_url() == endpoint);
                }
            }
            None
        })
        .await
    }
}
