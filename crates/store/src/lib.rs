//! hanode's replicated store: openraft 0.9 over RocksDB, with an mTLS peer transport (gRPC,
//! and framed Raft links for AppendEntries).
//!
//! Owns: the openraft type configuration; the durable Raft log and vote; the state machine (the
//! `hanode-kv` model over RocksDB, snapshots as files); the peer transport with fault
//! injection; request routing (forwarding to the leader, read index); leader-decided lease
//! expiry; and membership (learners first, an odd number of voters, queued changes). It is the
//! only crate that links RocksDB. It does not own TLS listeners or the client-facing APIs.

// openraft's storage traits fix `StorageError` (large) as the error type of every call.
#![allow(clippy::result_large_err)]

mod backend;
mod config;
mod db;
mod durability;
mod faults;
mod link;
mod log_store;
mod network;
mod node;
mod peer_service;
mod state_machine;
mod types;

pub use config::StoreConfig;
pub use faults::{Faults, Verdict};
pub use link::LINK_ALPN;
pub use network::{PeerError, PeerTls, PeerTraffic};
pub use node::StoreNode;
pub use peer_service::PeerService;
pub use types::{LearnerState, MemberStatus, TypeConfig};

/// Re-exported so callers can read metrics without depending on openraft directly.
pub use openraft::{RaftMetrics, ServerState};

/// Failures to open or start a store member.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database or snapshot files could not be opened.
    #[error("cannot open the store: {0}")]
    Open(String),
    /// The Raft settings are invalid.
    #[error("invalid Raft settings: {0}")]
    Config(String),
    /// Raft refused an operation.
    #[error("raft: {0}")]
    Raft(String),
}
