//! The store's one error type. Front-ends translate it in one table each (etcd gRPC codes and
//! messages in `hanode-etcd`, Kubernetes `Status` in the API server).

use serde::{Deserialize, Serialize};

use hanode_types::{LeaseId, NodeId, Revision};

/// Everything a store request can fail with.
///
/// Variants are grouped by who should act: the request was wrong (`InvalidArgument`-like), the
/// state refused it (`Compacted`, `LeaseNotFound`, ...), or this node cannot serve now and the
/// client should retry, possibly elsewhere (`NoLeader`, `Timeout`, `Stopped`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum KvError {
    /// The requested revision was compacted away.
    #[error("required revision has been compacted (compacted to {compact_revision})")]
    Compacted {
        /// Revision the store is compacted to.
        compact_revision: Revision,
    },
    /// The requested revision is newer than the store's.
    #[error("required revision is a future revision")]
    FutureRevision,
    /// A request had an empty key.
    #[error("key is not provided")]
    EmptyKey,
    /// A transaction writes the same key twice.
    #[error("duplicate key given in txn request")]
    DuplicateKey,
    /// A transaction has too many operations.
    #[error("too many operations in txn request")]
    TooManyOps,
    /// `ignore_value` / `ignore_lease` on a key that does not exist.
    #[error("key not found")]
    KeyNotFound,
    /// The lease does not exist (expired, revoked or never granted).
    #[error("requested lease not found")]
    LeaseNotFound {
        /// The lease asked for.
        id: LeaseId,
    },
    /// A grant asked for an id that is in use.
    #[error("lease already exists")]
    LeaseExists {
        /// The lease asked for.
        id: LeaseId,
    },
    /// A grant asked for a TTL beyond the maximum.
    #[error("too large lease TTL")]
    LeaseTtlTooLarge,
    /// The request is over the size limit.
    #[error("request is too large")]
    RequestTooLarge,
    /// The space quota is exhausted: writes are refused until space is freed and the alarm
    /// disarmed.
    #[error("database space exceeded")]
    NoSpace,
    /// Any other malformed request; the text says what was wrong.
    #[error("{0}")]
    InvalidArgument(String),
    /// No member with that id.
    #[error("member not found")]
    MemberNotFound {
        /// The id asked for.
        id: NodeId,
    },
    /// Another member already uses that peer URL.
    #[error("Peer URLs already exists")]
    PeerUrlExists,
    /// Promote was asked for a voter.
    #[error("can only promote a learner member")]
    MemberNotLearner,
    /// Promote was asked for a learner that has not caught up.
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// A membership change would break hanode's odd-voter rule; the text says what to do.
    #[error("{0}")]
    MembershipRefused(String),
    /// This node knows no leader, so it cannot order the request.
    #[error("no leader")]
    NoLeader,
    /// The request was not committed in time (lost quorum, or overloaded).
    #[error("request timed out")]
    Timeout,
    /// The node is shutting down or stopped.
    #[error("server stopped")]
    Stopped,
    /// The cluster lacks quorum for a membership change.
    #[error("unhealthy cluster")]
    Unhealthy,
    /// This backend does not offer the operation.
    #[error("{0} is not supported by this backend")]
    Unsupported(String),
    /// The local storage failed; an operator must look at this node.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl KvError {
    /// True when the same request may succeed if retried, possibly on another member.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            KvError::NoLeader | KvError::Timeout | KvError::Stopped | KvError::Unhealthy
        )
    }
}

/// Result alias for store operations.
pub type KvResult<T> = Result<T, KvError>;
