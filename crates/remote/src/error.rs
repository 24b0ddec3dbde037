//! Errors of setting up a [`crate::RemoteBackend`] ([`RemoteError`]), and THE translation of the
//! remote's answers back into store errors ([`kv_error`]): the inverse of `hanode-etcd`'s table,
//! which also covers the texts real etcd sends, so callers match on [`KvError`] variants whether
//! the store is local or remote.

use std::time::Duration;

use tonic::{Code, Status};

use hanode_kv::KvError;
use hanode_types::{LeaseId, NodeId};

/// Why [`crate::RemoteBackend::connect`] failed. Each message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The endpoint list is empty.
    #[error(
        "no storage endpoints given: pass at least one etcd client URL (http:// or https://) with --storage-endpoints"
    )]
    NoEndpoints,
    /// One endpoint is not an `http://` or `https://` URL of a host.
    #[error(
        "storage endpoint {endpoint:?} is not usable ({reason}): --storage-endpoints takes URLs like https://10.0.0.1:2379"
    )]
    BadEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Some endpoints use `http://` and others `https://`.
    #[error(
        "storage endpoints {endpoints} mix http:// and https://: use https:// for all of them (with the TLS files) or http:// for all"
    )]
    MixedSchemes {
        /// The endpoints as given.
        endpoints: String,
    },
    /// `https://` endpoints but no TLS material.
    #[error(
        "storage endpoints {endpoints} use https:// but no TLS files were given: pass the store's CA certificate, and a client certificate and key if the store requires them"
    )]
    TlsMissing {
        /// The endpoints as given.
        endpoints: String,
    },
    /// TLS material for `http://` endpoints, which would silently go unused.
    #[error(
        "TLS files were given but storage endpoints {endpoints} use http://: use https:// URLs, or drop the TLS files for a plaintext store"
    )]
    TlsWithoutHttps {
        /// The endpoints as given.
        endpoints: String,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error("the storage client certificate and key go together: pass both files or neither")]
    IncompleteClientIdentity,
    /// A timeout of zero, which would fail every request.
    #[error("the storage {what} must be longer than zero")]
    ZeroTimeout {
        /// Which timeout.
        what: &'static str,
    },
    /// The client could not be set up (for instance, unreadable TLS material).
    #[error(
        "cannot set up a client for storage endpoints {endpoints}: {source}; check --storage-endpoints and the TLS files (CA certificate, client certificate and key)"
    )]
    Client {
        /// The endpoints as given.
        endpoints: String,
        /// What the etcd client reported.
        #[source]
        source: etcd_client::Error,
    },
    /// No endpoint answered a status request in time.
    #[error(
        "no storage endpoint answered within {timeout:?} (tried {endpoints}): {last_error}; check that the store is running and reachable, --storage-endpoints, and the TLS files (CA certificate, client certificate and key)"
    )]
    Unreachable {
        /// The endpoints as given.
        endpoints: String,
        /// How long it waited.
        timeout: Duration,
        /// The last failure seen, or that none answered at all.
        last_error: String,
    },
}

/// What a request was about, so errors that carry an id name the right one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Subject {
    /// The lease the request named.
    pub lease: LeaseId,
    /// The member the request named.
    pub member: NodeId,
}

impl Subject {
    /// About a lease.
    pub(crate) fn lease(id: LeaseId) -> Subject {
        Subject {
            lease: id,
            ..Subject::default()
        }
    }

    /// About a member.
    pub(crate) fn member(id: NodeId) -> Subject {
        Subject {
            member: id,
            ..Subject::default()
        }
    }
}

/// The text etcd-client gives its own "the keep-alive answered TTL 0" error.
const KEEP_ALIVE_LEASE_NOT_FOUND: &str = "lease not found";

/// The store error an `etcd-client` error stands for. `Compacted` comes back with
/// `compact_revision` 0: etcd's message does not carry it, the caller looks it up.
pub(crate) fn kv_error(error: &etcd_client::Error, subject: Subject) -> KvError {
    use etcd_client::Error;
    match error {
        Error::GRpcStatus(status) => from_status(status, subject),
        Error::LeaseKeepAliveError(text) if text.contains(KEEP_ALIVE_LEASE_NOT_FOUND) => {
            KvError::LeaseNotFound { id: subject.lease }
        }
        // The connection or the stream it rode on broke: this request may succeed again.
        Error::TransportError(_)
        | Error::IoError(_)
        | Error::WatchError(_)
        | Error::LeaseKeepAliveError(_)
        | Error::EndpointError(_) => KvError::Stopped,
        Error::InvalidArgs(text) => KvError::InvalidArgument(text.clone()),
        other => KvError::Storage(format!("the storage client failed: {other}")),
    }
}

/// The store error a gRPC status from an etcd server stands for: first by etcd's exact message
/// (what clientv3 matches on), then by code for texts this table does not know.
pub(crate) fn from_status(status: &Status, subject: Subject) -> KvError {
    let message = status.message();
    let text = message.strip_prefix("etcdserver: ").unwrap_or(message);
    let bare = text.strip_prefix("mvcc: ").unwrap_or(text);
    match bare {
        "required revision has been compacted" => KvError::Compacted {
            compact_revision: 0,
        },
        "required revision is a future revision" => KvError::FutureRevision,
        "database space exceeded" => KvError::NoSpace,
        "key is not provided" => KvError::EmptyKey,
        "duplicate key given in txn request" => KvError::DuplicateKey,
        "too many operations in txn request" => KvError::TooManyOps,
        "key not found" => KvError::KeyNotFound,
        "requested lease not found" => KvError::LeaseNotFound { id: subject.lease },
        "lease already exists" => KvError::LeaseExists { id: subject.lease },
        "too large lease TTL" => KvError::LeaseTtlTooLarge,
        "request is too large" => KvError::RequestTooLarge,
        "member not found" => KvError::MemberNotFound { id: subject.member },
        "Peer URLs already exists" => KvError::PeerUrlExists,
        "can only promote a learner member" => KvError::MemberNotLearner,
        "can only promote a learner member which is in sync with leader" => {
            KvError::LearnerNotReady
        }
        "no leader" | "leader changed" => KvError::NoLeader,
        "server stopped" => KvError::Stopped,
        "unhealthy cluster" => KvError::Unhealthy,
        // etcd appends the suspected cause: "request timed out, possibly due to ...".
        t if t.starts_with("request timed out") => KvError::Timeout,
        "too many requests" => KvError::Timeout,
        _ => by_code(status.code(), text),
    }
}

fn by_code(code: Code, text: &str) -> KvError {
    match code {
        Code::Unimplemented => KvError::Unsupported(
            text.strip_suffix(" is not supported")
                .unwrap_or(text)
                .to_string(),
        ),
        Code::DeadlineExceeded => KvError::Timeout,
        // No answer from a server (refused, reset, closed): retry, maybe on another endpoint.
        Code::Unavailable | Code::Cancelled | Code::Aborted | Code::Unknown => KvError::Stopped,
        // gRPC's own size limit ("message larger than max") or etcd rate limiting.
        Code::ResourceExhausted if text.contains("larger than") || text.contains("too large") => {
            KvError::RequestTooLarge
        }
        Code::ResourceExhausted => KvError::Timeout,
        // The only open text hanode sends with FailedPrecondition; etcd's membership refusals
        // ("re-configuration failed due to not enough started members") use it too.
        Code::FailedPrecondition => KvError::MembershipRefused(text.to_string()),
        Code::InvalidArgument
        | Code::OutOfRange
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated => KvError::InvalidArgument(text.to_string()),
        Code::Ok | Code::Internal | Code::DataLoss => KvError::Storage(text.to_string()),
    }
}

/// Whether `error` says the request never reached a server (the connection could not be
/// opened), so sending it again, even a write, to another endpoint cannot apply it twice.
pub(crate) fn never_sent(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) if status.code() == Code::Unavailable => {
            let mut cause = std::error::Error::source(status);
            while let Some(error) = cause {
                if let Some(io) = error.downcast_ref::<std::io::Error>()
                    && is_connect_failure(io.kind())
                {
                    return true;
                }
                cause = error.source();
            }
            // tonic flattens some causes into the text.
            let message = status.message();
            message.contains("tcp connect error") || message.contains("error trying to connect")
        }
        _ => false,
    }
}

fn is_connect_failure(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind;
    matches!(
        kind,
        ErrorKind::ConnectionRefused
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::AddrNotAvailable
            | ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every store error hanode's etcd API can send comes back as the same variant.
    #[test]
    fn inverts_hanode_etcd_error_table() {
        let subject = Subject {
            lease: 7,
            member: 9,
        };
        let every = [
            KvError::Compacted {
                compact_revision: 0,
            },
            KvError::FutureRevision,
            KvError::EmptyKey,
            KvError::DuplicateKey,
            KvError::TooManyOps,
            KvError::KeyNotFound,
            KvError::LeaseNotFound { id: 7 },
            KvError::LeaseExists { id: 7 },
            KvError::LeaseTtlTooLarge,
            KvError::RequestTooLarge,
            KvError::NoSpace,
            KvError::InvalidArgument("range_end must be after key".into()),
            KvError::MemberNotFound { id: 9 },
            KvError::PeerUrlExists,
            KvError::MemberNotLearner,
            KvError::LearnerNotReady,
            KvError::MembershipRefused("a fourth voter would make an even count".into()),
            KvError::NoLeader,
            KvError::Timeout,
            KvError::Stopped,
            KvError::Unhealthy,
            KvError::Unsupported("hash_kv".into()),
            KvError::Storage("disk on fire".into()),
        ];
        for error in every {
            let status = hanode_etcd::error::status(&error);
            assert_eq!(from_status(&status, subject), error, "{status:?}");
        }
    }

    /// The compact revision is not on the wire; the caller looks it up.
    #[test]
    fn compacted_comes_back_without_its_revision() {
        let status = hanode_etcd::error::status(&KvError::Compacted {
            compact_revision: 42,
        });
        assert_eq!(
            from_status(&status, Subject::default()),
            KvError::Compacted {
                compact_revision: 0
            }
        );
    }

    /// Texts real etcd 3.4 sends that hanode does not.
    #[test]
    fn knows_etcd_only_texts() {
        let cases = [
            (
                Status::unavailable(
                    "etcdserver: request timed out, possibly due to previous leader failure",
                ),
                KvError::Timeout,
            ),
            (
                Status::unavailable("etcdserver: leader changed"),
                KvError::NoLeader,
            ),
            (
                Status::resource_exhausted("etcdserver: too many requests"),
                KvError::Timeout,
            ),
            (
                Status::unavailable("tcp connect error: Connection refused (os error 111)"),
                KvError::Stopped,
            ),
            (
                Status::deadline_exceeded("context deadline exceeded"),
                KvError::Timeout,
            ),
            (
                Status::resource_exhausted(
                    "grpc: received message larger than max (5000000 vs. 4194304)",
                ),
                KvError::RequestTooLarge,
            ),
            (
                Status::permission_denied("etcdserver: permission denied"),
                KvError::InvalidArgument("permission denied".into()),
            ),
        ];
        for (status, expected) in cases {
            assert_eq!(
                from_status(&status, Subject::default()),
                expected,
                "{status:?}"
            );
        }
    }

    #[test]
    fn keep_alive_of_a_missing_lease_is_lease_not_found() {
        let error = etcd_client::Error::LeaseKeepAliveError("lease not found".into());
        assert_eq!(
            kv_error(&error, Subject::lease(5)),
            KvError::LeaseNotFound { id: 5 }
        );
        let broken = etcd_client::Error::LeaseKeepAliveError("channel closed".into());
        assert!(kv_error(&broken, Subject::lease(5)).is_retryable());
    }
}
