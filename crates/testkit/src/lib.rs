//! Test support for hanode: an in-process [`TestCluster`] of real servers (real TLS, real
//! RocksDB, real Raft) on port-0 listeners in temp dirs, with a fault-injecting peer network;
//! and [`wait`] helpers that poll a condition with a deadline instead of sleeping.

mod cluster;
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
