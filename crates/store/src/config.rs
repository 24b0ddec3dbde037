//! Settings of a store member.

use std::path::PathBuf;
use std::time::Duration;

use hanode_types::{ClusterId, NodeId};

/// Settings of one store member. Defaults are the documented ones (DESIGN.md "Timing").
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// This member's id.
    pub node_id: NodeId,
    /// The cluster's id (reported in response headers).
    pub cluster_id: ClusterId,
    /// RocksDB directory (`<data-dir>/db`).
    pub db_dir: PathBuf,
    /// Where snapshot files are kept (`<data-dir>/snapshots`).
    pub snapshot_dir: PathBuf,
    /// Raft heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_ms_min: u64,
    /// Upper bound of the randomized election timeout.
    pub election_timeout_ms_max: u64,
    /// Log entries since the last snapshot that trigger a new one.
    pub snapshot_logs_since_last: u64,
    /// Applied log entries kept after a snapshot (so slightly lagging followers need no
    /// snapshot).
    pub logs_to_keep_after_snapshot: u64,
    /// Most log entries in one AppendEntries message.
    pub max_payload_entries: u64,
    /// How long a write or a linearizable read may wait before "request timed out".
    pub request_timeout: Duration,
    /// Space quota of the key-value data; past it writes get NOSPACE.
    pub quota_bytes: u64,
    /// Shortest TTL a lease gets, in seconds.
    pub min_lease_ttl_secs: i64,
    /// A learner within this many log entries of the leader counts as caught up.
    pub learner_catch_up_entries: u64,
}

impl StoreConfig {
    /// Defaults for a member with this id and data directory.
    pub fn new(node_id: NodeId, cluster_id: ClusterId, data_dir: &std::path::Path) -> Self {
        StoreConfig {
            node_id,
            cluster_id,
            db_dir: data_dir.join("db"),
            snapshot_dir: data_dir.join("snapshots"),
            heartbeat_interval_ms: 100,
            election_timeout_ms_min: 400,
            election_timeout_ms_max: 800,
            snapshot_logs_since_last: 10_000,
            logs_to_keep_after_snapshot: 1_000,
            max_payload_entries: 256,
            request_timeout: Duration::from_secs(5),
            quota_bytes: 2 << 30,
            min_lease_ttl_secs: 2,
            learner_catch_up_entries: 100,
        }
    }

    pub(crate) fn raft_config(&self) -> Result<openraft::Config, openraft::ConfigError> {
        openraft::Config {
            cluster_name: "hanode".into(),
            heartbeat_interval: self.heartbeat_interval_ms,
            election_timeout_min: self.election_timeout_ms_min,
            election_timeout_max: self.election_timeout_ms_max,
            max_payload_entries: self.max_payload_entries,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_logs_since_last),
            max_in_snapshot_log_to_keep: self.logs_to_keep_after_snapshot,
            replication_lag_threshold: self.snapshot_logs_since_last,
            install_snapshot_timeout: 2_000,
            ..openraft::Config::default()
        }
        .validate()
    }
}
