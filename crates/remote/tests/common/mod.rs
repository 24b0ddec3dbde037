//! What the remote-backend tests share: stores to talk to (hanode's etcd API in-process, plain
//! or with mutual TLS, and a real etcd 3.4 process), waiting helpers, and the contract suite
//! every store must pass.

#![allow(dead_code)]

pub mod contract;

use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};

use hanode_kv::{KvBackend, MemBackend, WatchMessage, WatchStream};
use hanode_pki::tls::{ALPN_H2, ClientAuth, server_config};
use hanode_pki::{ClusterCa, LeafKind, LeafRequest};
use hanode_remote::{RemoteBackend, RemoteConfig, RemoteTls};

/// How long tests wait for a fact before they fail.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Some`, failing with `what` after `deadline`.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= until {
            anyhow::bail!("timed out after {deadline:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next watch message, failing if none comes within [`DEADLINE`].
pub async fn next_message(
    stream: &mut WatchStream,
    what: &str,
) -> anyhow::Result<Option<WatchMessage>> {
    use futures::StreamExt;
    tokio::time::timeout(DEADLINE, stream.next())
        .await
        .with_context(|| format!("no watch message within {DEADLINE:?} while waiting for {what}"))
}

/// A client config for `endpoint` with short timeouts.
pub fn config(endpoint: &str, tls: Option<RemoteTls>) -> RemoteConfig {
    RemoteConfig {
        endpoints: vec![endpoint.to_string()],
        tls,
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(5),
    }
}

/// A server task that stops when dropped.
pub struct Served {
    task: JoinHandle<()>,
    /// The etcd client URL it serves.
    pub url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// hanode's etcd API over an empty in-memory store, plaintext, on a port-0 listener.
pub async fn serve_hanode() -> anyhow::Result<Served> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let backend: Arc<dyn KvBackend> = Arc::new(MemBackend::default());
    let routes = hanode_etcd::routes(backend, &hanode_etcd::EtcdConfig::default());
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .layer(tower_layer())
            .add_routes(routes)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await;
    });
    Ok(Served { task, url })
}

fn tower_layer() -> tower::util::MapResponseLayer<
    fn(http::Response<tonic::body::Body>) -> http::Response<tonic::body::Body>,
> {
    tower::util::MapResponseLayer::new(hanode_etcd::fix_decode_status::<tonic::body::Body>)
}

/// Certificates for a TLS test: a CA, a serving certificate for 127.0.0.1 and a client one.
pub struct Pki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Serving certificate and key.
    pub server: hanode_pki::CertKey,
    /// Client certificate and key.
    pub client: hanode_pki::CertKey,
}

/// A fresh CA with one server and one client certificate.
pub fn pki() -> anyhow::Result<Pki> {
    let now = SystemTime::now();
    let ca = ClusterCa::generate(now)?;
    let server = ca.issue(
        &LeafRequest {
            common_name: "storage".into(),
            organizations: Vec::new(),
            sans: vec!["127.0.0.1".into(), "localhost".into()],
            kind: LeafKind::Server,
        },
        now,
    )?;
    let client = ca.issue(
        &LeafRequest {
            common_name: "control-plane".into(),
            organizations: vec!["system:masters".into()],
            sans: Vec::new(),
            kind: LeafKind::Client,
        },
        now,
    )?;
    Ok(Pki {
        ca_pem: ca.cert_pem().to_string(),
        server,
        client,
    })
}

/// hanode's etcd API over an empty in-memory store behind TLS that requires a client
/// certificate signed by `pki`'s CA, as hanode storage nodes serve it.
pub async fn serve_hanode_tls(pki: &Pki) -> anyhow::Result<Served> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let tls = server_config(&pki.server, ClientAuth::Required(&pki.ca_pem), ALPN_H2)?;
    let acceptor = TlsAcceptor::from(tls);
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let accept = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // A client without a valid certificate fails here and is dropped.
                if let Ok(stream) = acceptor.accept(tcp).await {
                    let _ = tx.send(Ok::<_, std::io::Error>(stream)).await;
                }
            });
        }
    });
    let backend: Arc<dyn KvBackend> = Arc::new(MemBackend::default());
    let routes = hanode_etcd::routes(backend, &hanode_etcd::EtcdConfig::default());
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .layer(tower_layer())
            .add_routes(routes)
            .serve_with_incoming(ReceiverStream::new(rx))
            .await;
        accept.abort();
    });
    Ok(Served { task, url })
}

/// The client side of `pki`, with or without the client certificate.
pub fn client_tls(pki: &Pki, with_certificate: bool) -> RemoteTls {
    RemoteTls {
        ca_pem: pki.ca_pem.clone(),
        cert_pem: with_certificate.then(|| pki.client.cert_pem.clone()),
        key_pem: with_certificate.then(|| pki.client.key_pem.clone()),
    }
}

/// A port nothing listens on right now (bound to port 0, then released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A plain HTTP/1.0 GET, enough for etcd's `/health` and `/metrics`.
pub async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    Ok(body)
}

/// A single-member etcd 3.4 on loopback with a temporary data dir; killed when dropped.
pub struct Etcd {
    child: Child,
    /// `host:port` of the client listener.
    pub client_addr: String,
    /// `http://host:port` of the client listener.
    pub url: String,
    log: PathBuf,
    _data: tempfile::TempDir,
}

impl Etcd {
    /// Starts etcd and waits until it reports healthy (it has a leader).
    pub async fn start() -> anyhow::Result<Etcd> {
        let binary = std::env::var("HANODE_ETCD_BIN").unwrap_or_else(|_| "/usr/bin/etcd".into());
        anyhow::ensure!(
            std::path::Path::new(&binary).exists(),
            "etcd 3.4 not found at {binary}: install the Debian package etcd-server \
             (apt-get install -y etcd-server) or point HANODE_ETCD_BIN at an etcd binary"
        );
        let data = tempfile::tempdir()?;
        let client_addr = format!("127.0.0.1:{}", free_port()?);
        let peer_url = format!("http://127.0.0.1:{}", free_port()?);
        let url = format!("http://{client_addr}");
        let log = data.path().join("etcd.log");
        let child = Command::new(&binary)
            .arg("--name=contract")
            .arg(format!("--data-dir={}", data.path().join("data").display()))
            .arg(format!("--listen-client-urls={url}"))
            .arg(format!("--advertise-client-urls={url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=contract={peer_url}"))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=hanode-remote-test")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {binary}"))?;
        let mut etcd = Etcd {
            child,
            client_addr,
            url,
            log,
            _data: data,
        };
        etcd.wait_healthy().await?;
        Ok(etcd)
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let until = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "etcd exited with {status} before it was healthy:\n{}",
                    self.log()
                );
            }
            if let Ok(body) = http_get(&self.client_addr, "/health").await
                && body.contains(r#""health":"true""#)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= until {
                anyhow::bail!("etcd was not healthy within {DEADLINE:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What etcd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills etcd and waits until it is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// The value of a gauge on etcd's `/metrics`, 0 when absent.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let body = http_get(&self.client_addr, "/metrics").await?;
        Ok(body
            .lines()
            .find_map(|line| {
                let value = line.strip_prefix(name)?.strip_prefix(' ')?;
                value.trim().parse().ok()
            })
            .unwrap_or(0.0))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // kill_on_drop does this too; saying it here keeps the cleanup visible.
        let _ = self.child.start_kill();
    }
}

/// Connects to `url` (plaintext) with the test timeouts.
pub async fn connect(url: &str) -> anyhow::Result<RemoteBackend> {
    Ok(RemoteBackend::connect(config(url, None)).await?)
}
