//! A real etcd 3.4 cluster (Debian `etcd-server`) on 127.0.0.1, plain HTTP, killed on drop.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::process::{Child, Command};

use hanode_testkit::wait;

use crate::proc::free_port_except;

/// The etcd binary: `ETCD_BIN` or `/usr/bin/etcd`.
pub fn etcd_bin() -> PathBuf {
    std::env::var("ETCD_BIN").map_or_else(|_| PathBuf::from("/usr/bin/etcd"), PathBuf::from)
}

/// `n` etcd members on loopback.
pub struct EtcdCluster {
    _dir: tempfile::TempDir,
    children: Vec<Child>,
    /// Client URLs (`http://127.0.0.1:PORT`), one per member.
    pub client_urls: Vec<String>,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one reports healthy.
    pub async fn start(n: usize) -> Result<EtcdCluster> {
        let dir = tempfile::tempdir()?;
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let members: Vec<(String, u16, u16)> = (0..n)
            .map(|i| {
                let client = free_port_except(ip, &[]);
                (format!("etcd{i}"), client, free_port_except(ip, &[client]))
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|(name, _, peer)| format!("{name}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut children = Vec::new();
        for (name, client, peer) in &members {
            let log = std::fs::File::create(dir.path().join(format!("{name}.log")))?;
            let child = Command::new(etcd_bin())
                .args(["--name", name])
                .args(["--data-dir", &dir.path().join(name).display().to_string()])
                .args([
                    "--listen-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args([
                    "--advertise-client-urls",
                    &format!("http://127.0.0.1:{client}"),
                ])
                .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
                .args([
                    "--initial-advertise-peer-urls",
                    &format!("http://127.0.0.1:{peer}"),
                ])
                .args(["--initial-cluster", &initial_cluster])
                .args(["--initial-cluster-state", "new"])
                .stdout(Stdio::null())
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| {
                    format!(
                        "starting {} (Debian package etcd-server)",
                        etcd_bin().display()
                    )
                })?;
            children.push(child);
        }
        let client_urls: Vec<String> = members
            .iter()
            .map(|(_, client, _)| format!("http://127.0.0.1:{client}"))
            .collect();
        let cluster = EtcdCluster {
            _dir: dir,
            children,
            client_urls,
        };
        let endpoints = cluster.endpoints();
        wait::for_true(Duration::from_secs(30), "etcd to be healthy", || {
            let endpoints = endpoints.clone();
            async move {
                Command::new("etcdctl")
                    .env("ETCDCTL_API", "3")
                    .args(["--endpoints", &endpoints, "endpoint", "health"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .await
                    .is_ok_and(|s| s.success())
            }
        })
        .await?;
        Ok(cluster)
    }

    /// Comma-separated client URLs.
    pub fn endpoints(&self) -> String {
        self.client_urls.join(",")
    }

    /// Sends `signal` (SIGSTOP freezes a member as a paused VM would, SIGCONT thaws it) to
    /// member `index`.
    pub fn signal(&self, index: usize, signal: i32) -> Result<()> {
        let pid = self.children[index]
            .id()
            .context("the etcd member has exited")?;
        // std has no signal API and this workspace forbids unsafe code: use kill(1).
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    /// SIGKILLs member `index`.
    pub async fn kill(&mut self, index: usize) -> Result<()> {
        self.children[index].kill().await?;
        Ok(())
    }
}
