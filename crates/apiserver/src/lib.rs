//! Kubernetes-style HTTPS API over any [`hanode_kv::KvBackend`].
//!
//! Owns discovery, CRUD, watch, patch, tables, authentication and authorization, audit and
//! metrics of the API port. Objects are JSON under `/registry/...`; `metadata.resourceVersion`
//! is the key's mod revision. It does not own listeners or TLS (the server wires those), and it
//! reaches the store only through `KvBackend`, so the same code runs on a local Raft member or
//! on remote etcd endpoints.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod admission;
pub mod audit;
pub mod auth;
pub mod discovery;
mod handlers;
pub mod metrics;
pub mod openapi_v2;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selector;
pub mod services;
pub mod status;
pub mod store;
pub mod table;

/// The client certificate of the connection a request came on (the server sets it per
/// connection as a request extension).
#[derive(Clone, Debug, Default)]
pub struct ClientCertificate(pub Option<hanode_pki::PeerIdentity>);

/// Settings of the API.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Largest request body (3 MiB, like kube-apiserver).
    pub max_body_bytes: usize,
    /// `host:port` clients reach this server at (legacy discovery reports it).
    pub server_address: String,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Where the audit log goes (`<data-dir>/logs/audit.log`); `None` disables it.
    pub audit_log: Option<PathBuf>,
    /// Bearer tokens file (`token,user,uid,"groups"`); a missing file means none.
    pub token_file: Option<PathBuf>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 3 << 20,
            server_address: "127.0.0.1:6443".into(),
            bookmark_interval: Duration::from_secs(30),
            audit_log: None,
            token_file: None,
        }
    }
}

/// The API server: shared state of every request.
pub struct ApiServer {
    store: store::ObjectStore,
    tokens: auth::Tokens,
    audit: Option<audit::AuditLog>,
    metrics: Arc<metrics::Metrics>,
    config: ApiConfig,
}

impl ApiServer {
    /// An API server over `kv`; `stats` reports the local store member, if any.
    pub fn new(
        kv: Arc<dyn hanode_kv::KvBackend>,
        config: ApiConfig,
        stats: Option<Arc<dyn metrics::StoreStats>>,
    ) -> Result<Arc<ApiServer>, String> {
        let tokens = match &config.token_file {
            Some(path) => auth::Tokens::load(path)?,
            None => auth::Tokens::default(),
        };
        let audit = match &config.audit_log {
            Some(path) => {
                Some(audit::AuditLog::open(path).map_err(|e| format!("{}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(Arc::new(ApiServer {
            store: store::ObjectStore::new(kv, Arc::new(store::SystemClock)),
            tokens,
            audit,
            metrics: Arc::new(metrics::Metrics::new(stats)),
            config,
        }))
    }

    /// The object store (for bootstrap and background loops).
    pub fn store(&self) -> &store::ObjectStore {
        &self.store
    }
}
