//! THE translation of store errors into etcd's gRPC codes and messages. etcd clients match on
//! these exact strings (clientv3's rpctypes), so every handler goes through [`status`].

use tonic::{Code, Status};

use hanode_kv::KvError;

/// etcd's gRPC status for a store error.
pub fn status(error: &KvError) -> Status {
    let (code, message): (Code, String) = match error {
        KvError::Compacted { .. } => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision has been compacted".into(),
        ),
        KvError::FutureRevision => (
            Code::OutOfRange,
            "etcdserver: mvcc: required revision is a future revision".into(),
        ),
        KvError::EmptyKey => (
            Code::InvalidArgument,
            "etcdserver: key is not provided".into(),
        ),
        KvError::DuplicateKey => (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request".into(),
        ),
        KvError::TooManyOps => (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into(),
        ),
        KvError::KeyNotFound => (Code::InvalidArgument, "etcdserver: key not found".into()),
        KvError::LeaseNotFound { .. } => (
            Code::NotFound,
            "etcdserver: requested lease not found".into(),
        ),
        KvError::LeaseExists { .. } => (
            Code::FailedPrecondition,
            "etcdserver: lease already exists".into(),
        ),
        KvError::LeaseTtlTooLarge => (Code::OutOfRange, "etcdserver: too large lease TTL".into()),
        KvError::RequestTooLarge => (
            Code::InvalidArgument,
            "etcdserver: request is too large".into(),
        ),
        KvError::NoSpace => (
            Code::ResourceExhausted,
            "etcdserver: mvcc: database space exceeded".into(),
        ),
        KvError::InvalidArgument(text) => (Code::InvalidArgument, format!("etcdserver: {text}")),
        KvError::MemberNotFound { .. } => (Code::NotFound, "etcdserver: member not found".into()),
        KvError::PeerUrlExists => (
            Code::FailedPrecondition,
            "etcdserver: Peer URLs already exists".into(),
        ),
        KvError::MemberNotLearner => (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member".into(),
        ),
        KvError::LearnerNotReady => (
            Code::FailedPrecondition,
            "etcdserver: can only promote a learner member which is in sync with leader".into(),
        ),
        KvError::MembershipRefused(text) => {
            (Code::FailedPrecondition, format!("etcdserver: {text}"))
        }
        KvError::NoLeader => (Code::Unavailable, "etcdserver: no leader".into()),
        KvError::Timeout => (Code::Unavailable, "etcdserver: request timed out".into()),
        KvError::Stopped => (Code::Unavailable, "etcdserver: server stopped".into()),
        KvError::Unhealthy => (Code::Unavailable, "etcdserver: unhealthy cluster".into()),
        KvError::Unsupported(what) => (
            Code::Unimplemented,
            format!("etcdserver: {what} is not supported"),
        ),
        KvError::Storage(text) => (Code::Internal, format!("etcdserver: {text}")),
    };
    Status::new(code, message)
}

/// Status for a request over the size limit.
pub fn too_large() -> Status {
    status(&KvError::RequestTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_what_etcd_clients_parse() {
        assert_eq!(
            status(&KvError::NoLeader).message(),
            "etcdserver: no leader"
        );
        assert_eq!(status(&KvError::NoLeader).code(), Code::Unavailable);
        let compacted = status(&KvError::Compacted {
            compact_revision: 3,
        });
        assert_eq!(compacted.code(), Code::OutOfRange);
        assert_eq!(
            compacted.message(),
            "etcdserver: mvcc: required revision has been compacted"
        );
        assert_eq!(
            status(&KvError::LeaseNotFound { id: 1 }).code(),
            Code::NotFound
        );
        assert_eq!(status(&KvError::NoSpace).code(), Code::ResourceExhausted);
    }
}
