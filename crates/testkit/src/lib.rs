//! Test support for hanode: an in-process [`TestCluster`] of real servers (real TLS, real
//! RocksDB, real Raft) on port-0 listeners in temp dirs, with a fault-injecting peer network;
//! and [`wait`] helpers that poll a condition with a deadline instead of sleeping.

mod cluster;
pub mod jepsen;
pub mod wait;

pub use cluster::{ClusterOptions, TestCluster};

/// Installs the TLS provider and test logging once per process (`RUST_LOG` picks the level).
pub fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    });
}

/// etcd-client options with the admin certificate of the server whose data dir is given.
pub fn etcd_options(data_dir: &std::path::Path) -> anyhow::Result<etcd_client::ConnectOptions> {
    let pki = hanode_pki::fs::PkiDir::new(data_dir);
    let ca = std::fs::read_to_string(pki.ca_cert())?;
    let admin = pki.read_pair(pki.admin())?;
    let tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(ca))
        .identity(etcd_client::Identity::from_pem(
            admin.cert_pem,
            admin.key_pem,
        ));
    Ok(etcd_client::ConnectOptions::new()
        .with_tls(tls)
        .with_timeout(std::time::Duration::from_secs(3))
        .with_connect_timeout(std::time::Duration::from_secs(1)))
}
