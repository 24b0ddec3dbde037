//! [`KvBackend`]: what front-ends (the etcd gRPC API, the Kubernetes-style API) need from a
//! store. Implemented by the Raft store, by [`crate::MemBackend`] for tests, and by a client of
//! remote etcd endpoints.

use async_trait::async_trait;
use futures::stream::BoxStream;

use hanode_types::{LeaseId, NodeId, Revision};

use crate::api::*;
use crate::error::{KvError, KvResult};
use crate::watch::WatchStream;

/// A snapshot of the whole store, streamed in chunks.
pub struct SnapshotStream {
    /// Total size in bytes, if known up front.
    pub size: u64,
    /// The bytes, in order.
    pub chunks: BoxStream<'static, KvResult<Vec<u8>>>,
}

/// The member list as returned by membership calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    /// Response header (no revision, like etcd's cluster responses).
    pub header: ResponseHeader,
    /// Every member.
    pub members: Vec<MemberInfo>,
}

/// A store as front-ends see it: etcd v3 semantics, async, shareable.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    /// Range (linearizable unless `req.serializable`).
    async fn range(&self, req: RangeRequest) -> KvResult<RangeResponse>;
    /// Put.
    async fn put(&self, req: PutRequest) -> KvResult<PutResponse>;
    /// DeleteRange.
    async fn delete_range(&self, req: DeleteRangeRequest) -> KvResult<DeleteRangeResponse>;
    /// Txn.
    async fn txn(&self, req: TxnRequest) -> KvResult<TxnResponse>;
    /// Compact history before `req.revision`.
    async fn compact(&self, req: CompactionRequest) -> KvResult<ResponseHeader>;

    /// Grants a lease; `id` 0 lets the store choose.
    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> KvResult<LeaseGrantResponse>;
    /// Revokes a lease and deletes its keys.
    async fn lease_revoke(&self, id: LeaseId) -> KvResult<ResponseHeader>;
    /// Renews a lease; `ttl` 0 in the answer means it does not exist.
    async fn lease_keep_alive(&self, id: LeaseId) -> KvResult<LeaseKeepAliveResponse>;
    /// Remaining TTL of a lease; `ttl` -1 means expired or unknown.
    async fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
    ) -> KvResult<LeaseTimeToLiveResponse>;
    /// Every live lease.
    async fn lease_leases(&self) -> KvResult<LeaseLeasesResponse>;

    /// Starts a watch, served from this member's state. A start revision that was compacted
    /// away is reported through the stream (as etcd does).
    async fn watch(&self, req: WatchRequest) -> KvResult<WatchStream>;
    /// A header with the current revision, for watch responses and progress notifications.
    async fn current_header(&self) -> KvResult<ResponseHeader>;

    /// Every member.
    async fn member_list(&self) -> KvResult<MemberList>;
    /// Adds a member that will start later (etcd `member add`); returns it and the new list.
    async fn member_add(
        &self,
        peer_urls: Vec<String>,
        is_learner: bool,
    ) -> KvResult<(MemberInfo, MemberList)>;
    /// Removes a member.
    async fn member_remove(&self, id: NodeId) -> KvResult<MemberList>;
    /// Promotes a learner to voter.
    async fn member_promote(&self, id: NodeId) -> KvResult<MemberList>;

    /// Status of the member that serves the call.
    async fn status(&self) -> KvResult<StatusResponse>;
    /// Lists, raises or clears alarms.
    async fn alarm(
        &self,
        action: AlarmAction,
        member_id: NodeId,
        alarm: Option<AlarmType>,
    ) -> KvResult<(ResponseHeader, Vec<AlarmMember>)>;
    /// Compacts the local database files.
    async fn defragment(&self) -> KvResult<ResponseHeader>;
    /// Streams a snapshot of the whole store.
    async fn snapshot(&self) -> KvResult<SnapshotStream>;

    /// Hash of the key-value history up to `revision` (0 = current), with the compact revision.
    async fn hash_kv(&self, revision: Revision) -> KvResult<(ResponseHeader, u32, Revision)> {
        let _ = revision;
        Err(KvError::Unsupported("hash_kv".into()))
    }

    /// Hands leadership to `target`.
    async fn move_leader(&self, target: NodeId) -> KvResult<ResponseHeader> {
        let _ = target;
        Err(KvError::Unsupported("move_leader".into()))
    }
}
