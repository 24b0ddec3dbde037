//! Settings of a hanode server, composed from each subsystem's own settings. clap lives in
//! `cmd/hanode`; this is what it produces.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hanode_store::Faults;

/// What a server runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Store member and Kubernetes API ("stacked").
    #[default]
    All,
    /// Store member, etcd API, join and health endpoints only.
    Storage,
    /// Kubernetes API over remote storage endpoints; no local store.
    ControlPlane,
}

impl Role {
    /// The flag value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Storage => "storage",
            Role::ControlPlane => "control-plane",
        }
    }

    /// Whether this role runs a store member.
    pub fn has_store(self) -> bool {
        self != Role::ControlPlane
    }

    /// Whether this role serves the Kubernetes API.
    pub fn serves_kubernetes(self) -> bool {
        self != Role::Storage
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a control-plane server keeps its data: etcd v3 endpoints (hanode storage servers or
/// an etcd cluster) and the TLS files to reach them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StorageEndpoints {
    /// `https://HOST:2379` (or `http://`) URLs.
    pub endpoints: Vec<String>,
    /// CA that signed the endpoints' serving certificates (PEM file).
    pub ca_file: Option<PathBuf>,
    /// Client certificate presented to the endpoints (PEM file).
    pub cert_file: Option<PathBuf>,
    /// Its key (PEM file).
    pub key_file: Option<PathBuf>,
}

/// How this server becomes a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bootstrap {
    /// Start a new cluster with this server as its only voter.
    Init,
    /// Join an existing cluster through any server's API URL.
    Join {
        /// `https://HOST:API_PORT` of an existing server.
        url: String,
        /// The cluster's server token.
        token: String,
    },
    /// Neither given: the data dir must already hold a member.
    Restart,
}

/// Everything a server needs to start.
#[derive(Clone, Debug)]
pub struct Config {
    /// How to become a member (ignored, with a log line, when the data dir already holds one).
    pub bootstrap: Bootstrap,
    /// What this server runs; `None` on a restart means "as the data dir says" (fresh: all).
    pub role: Option<Role>,
    /// Storage endpoints of a control-plane server (on a restart, `None` reuses the saved ones).
    pub storage: Option<StorageEndpoints>,
    /// Member name; must be unique in the cluster.
    pub node_name: String,
    /// Where everything is kept.
    pub data_dir: PathBuf,
    /// Address other members and clients use to reach this server.
    pub advertise_address: IpAddr,
    /// Address the listeners bind to.
    pub bind_address: IpAddr,
    /// HTTPS API port.
    pub api_port: u16,
    /// etcd v3 gRPC port.
    pub etcd_port: u16,
    /// Raft peer port.
    pub peer_port: u16,
    /// Extra names and addresses for the serving certificate.
    pub tls_sans: Vec<String>,
    /// Space quota of the store in bytes.
    pub quota_bytes: u64,
    /// Raft heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Election timeout, lower bound.
    pub election_timeout_ms_min: u64,
    /// Election timeout, upper bound.
    pub election_timeout_ms_max: u64,
    /// Log entries between snapshots.
    pub snapshot_logs_since_last: u64,
    /// Log entries kept after a snapshot.
    pub logs_to_keep_after_snapshot: u64,
    /// How long a request may wait for the store.
    pub request_timeout: Duration,
    /// Largest etcd Put/Txn in bytes.
    pub max_request_bytes: usize,
    /// Injected peer-network faults (tests share one between in-process servers).
    pub faults: Arc<Faults>,
}

/// Default ports, as k3s and etcd use them.
pub const DEFAULT_API_PORT: u16 = 6443;
/// etcd's client port.
pub const DEFAULT_ETCD_PORT: u16 = 2379;
/// etcd's peer port.
pub const DEFAULT_PEER_PORT: u16 = 2380;
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/hanode";

impl Default for Config {
    fn default() -> Self {
        Config {
            bootstrap: Bootstrap::Restart,
            role: None,
            storage: None,
            node_name: default_node_name(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            advertise_address: IpAddr::from([127, 0, 0, 1]),
            bind_address: IpAddr::from([127, 0, 0, 1]),
            api_port: DEFAULT_API_PORT,
            etcd_port: DEFAULT_ETCD_PORT,
            peer_port: DEFAULT_PEER_PORT,
            tls_sans: Vec::new(),
            quota_bytes: 2 << 30,
            heartbeat_interval_ms: 100,
            election_timeout_ms_min: 400,
            election_timeout_ms_max: 800,
            snapshot_logs_since_last: 10_000,
            logs_to_keep_after_snapshot: 1_000,
            request_timeout: Duration::from_secs(5),
            max_request_bytes: hanode_etcd::DEFAULT_MAX_REQUEST_BYTES,
            faults: Arc::new(Faults::new()),
        }
    }
}

/// A configuration that cannot work, with what to change.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Checks what can be checked before anything is bound or written.
    pub fn validate(&self) -> Result<(), ConfigError> {
        hanode_types::validate_node_name(&self.node_name)
            .map_err(|e| ConfigError(format!("--node-name: {e}")))?;
        if self.advertise_address.is_unspecified() {
            return Err(ConfigError(
                "--advertise-address must be an address other members can reach, not 0.0.0.0"
                    .into(),
            ));
        }
        if self.election_timeout_ms_min <= self.heartbeat_interval_ms
            || self.election_timeout_ms_max <= self.election_timeout_ms_min
        {
            return Err(ConfigError(
                "election timeouts must exceed the heartbeat interval, and max must exceed min"
                    .into(),
            ));
        }
        if let Some(storage) = &self.storage {
            if self.role.is_some_and(|r| r != Role::ControlPlane) {
                return Err(ConfigError(
                    "--storage-endpoints is only for --role control-plane (other roles keep the data in their own store)".into(),
                ));
            }
            if storage.endpoints.is_empty() {
                return Err(ConfigError("--storage-endpoints lists no endpoint".into()));
            }
            for endpoint in &storage.endpoints {
                if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                    return Err(ConfigError(format!(
                        "storage endpoint {endpoint:?} must be https://HOST:PORT (or http:// for an etcd without TLS)"
                    )));
                }
            }
            if storage.cert_file.is_some() != storage.key_file.is_some() {
                return Err(ConfigError(
                    "--storage-certfile and --storage-keyfile go together".into(),
                ));
            }
        }
        if self.role == Some(Role::ControlPlane)
            && self.bootstrap != Bootstrap::Restart
            && self.storage.is_none()
        {
            return Err(ConfigError(
                "--role control-plane needs --storage-endpoints https://HOST:2379,... (hanode storage servers or etcd)".into(),
            ));
        }
        if let Bootstrap::Join { url, token } = &self.bootstrap {
            if !url.starts_with("https://") {
                return Err(ConfigError(format!(
                    "--join {url:?} must be https://HOST:API_PORT"
                )));
            }
            token
                .parse::<hanode_pki::JoinToken>()
                .map_err(|e| ConfigError(format!("--token: {e}")))?;
        }
        Ok(())
    }
}

/// The host name, or "hanode" if it cannot be read.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "hanode".into())
}

/// The address of the interface holding the default route, or loopback. (Connecting a UDP
/// socket sends nothing; it only asks the kernel which source address it would use.)
pub fn default_advertise_address() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            socket.connect("192.0.2.1:9")?;
            socket.local_addr()
        })
        .map(|addr| addr.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}
