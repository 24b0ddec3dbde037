//! [`RemoteBackend`]: a [`hanode_kv::KvBackend`] served by remote etcd v3 endpoints (hanode
//! storage nodes or a real etcd 3.4+ cluster), for the `control-plane` role that has no store of
//! its own.
//!
//! Owns the client side of the etcd v3 protocol: connecting (with TLS and client certificates),
//! the field-by-field translation between `hanode_kv`'s types and `etcd-client`'s, the inverse
//! of `hanode-etcd`'s error table (etcd's gRPC codes and messages back to [`hanode_kv::KvError`]),
//! per-request deadlines, and watch streams that end when the remote watch does. It does not own
//! retries or fail-over between endpoints beyond what the `etcd-client` balancer does: callers
//! see retryable errors ([`hanode_kv::KvError::is_retryable`]) and decide.

mod backend;
mod config;
mod convert;
mod error;
mod watch;

pub use backend::RemoteBackend;
pub use config::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, RemoteConfig, RemoteTls};
pub use error::RemoteError;
