//! Requests and responses of the store, shaped like etcd v3's so front-ends translate field by
//! field. These are also the payload of replicated commands, hence `Serialize`.

use serde::{Deserialize, Serialize};

use hanode_types::{LeaseId, NodeId, Revision};

/// One version of a key, as etcd's `mvccpb.KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key bytes. (`serde_bytes` everywhere here: the same postcard encoding as a `Vec<u8>`,
    /// length then bytes, but decoded in one copy instead of byte by byte.)
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Revision of the write that created the key (in its current generation).
    pub create_revision: Revision,
    /// Revision of the last write to the key.
    pub mod_revision: Revision,
    /// Number of writes since the key was (re)created; 1 on create.
    pub version: i64,
    /// The value bytes.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease the key is attached to, 0 for none.
    pub lease: LeaseId,
}

/// Header every response carries; the model fills `revision`, the backend the rest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeader {
    /// Cluster id.
    pub cluster_id: u64,
    /// Id of the member that answered.
    pub member_id: u64,
    /// Store revision when the request was served.
    pub revision: Revision,
    /// Raft term of the answering member.
    pub raft_term: u64,
}

/// Sort order of a range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortOrder {
    /// Key order (the default).
    #[default]
    None,
    /// Ascending by target.
    Ascend,
    /// Descending by target.
    Descend,
}

/// What a range is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SortTarget {
    /// Key bytes.
    #[default]
    Key,
    /// Per-key version.
    Version,
    /// Create revision.
    Create,
    /// Mod revision.
    Mod,
    /// Value bytes.
    Value,
}

/// etcd's RangeRequest. `range_end` empty = the single `key`; `"\0"` = every key >= `key`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// First key.
    pub key: Vec<u8>,
    /// End of the range (exclusive), see the type's doc.
    pub range_end: Vec<u8>,
    /// Most keys to return, 0 = no limit.
    pub limit: i64,
    /// Historic revision to read at, 0 (or less) = current.
    pub revision: Revision,
    /// Order of the result.
    pub sort_order: SortOrder,
    /// Field the result is sorted by.
    pub sort_target: SortTarget,
    /// Serve from local state without a linearizability barrier.
    pub serializable: bool,
    /// Omit values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Filters on mod revision (0 = off).
    pub min_mod_revision: Revision,
    /// Filter: mod revision at most this (0 = off).
    pub max_mod_revision: Revision,
    /// Filter: create revision at least this (0 = off).
    pub min_create_revision: Revision,
    /// Filter: create revision at most this (0 = off).
    pub max_create_revision: Revision,
}

/// etcd's RangeResponse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Matching key-values (empty values with `keys_only`).
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result.
    pub more: bool,
    /// Number of keys in the range (not affected by `limit`).
    pub count: i64,
}

/// etcd's PutRequest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// Key to write.
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    /// Value to write.
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
    /// Lease to attach, 0 = none.
    pub lease: LeaseId,
    /// Return the previous key-value.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist).
    pub ignore_lease: bool,
}

/// etcd's PutResponse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Previous key-value, when asked and present.
    pub prev_kv: Option<KeyValue>,
}

/// etcd's DeleteRangeRequest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// First key.
    pub key: Vec<u8>,
    /// End of the range, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// Return the deleted key-values.
    pub prev_kv: bool,
}

/// etcd's DeleteRangeResponse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Number of keys deleted.
    pub deleted: i64,
    /// Deleted key-values, when asked.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare relates the key's field to the given value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareResult {
    /// Equal.
    #[default]
    Equal,
    /// Field greater than the value.
    Greater,
    /// Field less than the value.
    Less,
    /// Not equal.
    NotEqual,
}

/// What a compare looks at, with the value to compare against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CompareTarget {
    /// Per-key version (0 when the key does not exist).
    Version(i64),
    /// Create revision (0 when the key does not exist).
    Create(Revision),
    /// Mod revision (0 when the key does not exist).
    Mod(Revision),
    /// Value bytes (a missing key never matches).
    Value(Vec<u8>),
    /// Lease id (0 when the key does not exist or has no lease).
    Lease(LeaseId),
}

impl Default for CompareTarget {
    fn default() -> Self {
        CompareTarget::Version(0)
    }
}

/// etcd's Compare: every key in `[key, range_end)` must satisfy it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compare {
    /// Relation.
    pub result: CompareResult,
    /// Field and value.
    pub target: CompareTarget,
    /// Key (or first key of the range).
    pub key: Vec<u8>,
    /// End of the range, empty for a single key.
    pub range_end: Vec<u8>,
}

/// One operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestOp {
    /// A range.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// The result of one operation inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseOp {
    /// Result of a range.
    Range(RangeResponse),
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Result of a nested transaction.
    Txn(TxnResponse),
}

/// etcd's TxnRequest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRequest {
    /// Conditions; all must hold for `success` to run.
    pub compare: Vec<Compare>,
    /// Operations when every compare holds.
    pub success: Vec<RequestOp>,
    /// Operations otherwise.
    pub failure: Vec<RequestOp>,
}

/// etcd's TxnResponse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Whether the compares held.
    pub succeeded: bool,
    /// One response per executed operation.
    pub responses: Vec<ResponseOp>,
}

/// etcd's CompactionRequest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionRequest {
    /// Discard history before this revision.
    pub revision: Revision,
    /// Wait until the compaction is physically done (always true here: it is synchronous).
    pub physical: bool,
}

/// etcd's LeaseGrantResponse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Granted lease id.
    pub id: LeaseId,
    /// Granted TTL in seconds.
    pub ttl: i64,
}

/// etcd's LeaseKeepAliveResponse (`ttl` 0 = the lease does not exist).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Lease id.
    pub id: LeaseId,
    /// Renewed TTL in seconds, 0 when the lease is unknown.
    pub ttl: i64,
}

/// etcd's LeaseTimeToLiveResponse (`ttl` -1 = expired or unknown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTimeToLiveResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Lease id.
    pub id: LeaseId,
    /// Remaining seconds, -1 when expired or unknown.
    pub ttl: i64,
    /// TTL the lease was granted with.
    pub granted_ttl: i64,
    /// Attached keys, when asked.
    pub keys: Vec<Vec<u8>>,
}

/// etcd's LeaseLeasesResponse.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLeasesResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Ids of all live leases.
    pub leases: Vec<LeaseId>,
}

/// Alarm kinds, numbered as etcd's `AlarmType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlarmType {
    /// The space quota was exceeded: writes are refused until disarmed.
    NoSpace,
    /// Data corruption was detected.
    Corrupt,
}

/// An active alarm on one member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AlarmMember {
    /// Member that raised the alarm.
    pub member_id: NodeId,
    /// Kind of alarm.
    pub alarm: AlarmType,
}

/// etcd's AlarmRequest action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlarmAction {
    /// List alarms.
    Get,
    /// Raise an alarm.
    Activate,
    /// Clear an alarm (member 0 = every member).
    Deactivate,
}

/// A watch to create.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRequest {
    /// Key (or first key).
    pub key: Vec<u8>,
    /// End of range, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// First revision to report, 0 = from the next write.
    pub start_revision: Revision,
    /// Attach the previous key-value to each event.
    pub prev_kv: bool,
    /// Drop put events.
    pub no_put: bool,
    /// Drop delete events.
    pub no_delete: bool,
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A put.
    Put,
    /// A delete (the kv holds only the key and the delete's mod revision).
    Delete,
}

/// One change to one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventType,
    /// The key-value after the change.
    pub kv: KeyValue,
    /// The key-value before the change, when asked for and present.
    pub prev_kv: Option<KeyValue>,
}

/// What a watcher receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchMessage {
    /// All matching events of one revision, in order.
    Events {
        /// The revision these events were written at.
        revision: Revision,
        /// The events.
        events: Vec<Event>,
    },
    /// The watch cannot continue: its start revision was compacted away.
    Compacted {
        /// Revision the store is compacted to.
        compact_revision: Revision,
    },
    /// The current revision, sent on request (etcd's progress notify).
    Progress {
        /// The store revision.
        revision: Revision,
    },
}

/// One member as the store reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Member id.
    pub id: NodeId,
    /// Name and URLs.
    pub member: hanode_types::Member,
    /// True while the member is a learner (non-voting).
    pub is_learner: bool,
}

/// etcd's StatusResponse, for one member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Response header.
    pub header: ResponseHeader,
    /// Version string reported to etcdctl.
    pub version: String,
    /// Size of the database files in bytes.
    pub db_size: i64,
    /// Bytes of live data (estimate).
    pub db_size_in_use: i64,
    /// Current leader id, 0 if none is known.
    pub leader: NodeId,
    /// Last log index.
    pub raft_index: u64,
    /// Current term.
    pub raft_term: u64,
    /// Last applied log index.
    pub raft_applied_index: u64,
    /// Problems the member knows of.
    pub errors: Vec<String>,
    /// True when this member is a learner.
    pub is_learner: bool,
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    /// `KeyValue` as it was before its byte fields became `serde_bytes`.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct PlainKeyValue {
        key: Vec<u8>,
        create_revision: Revision,
        mod_revision: Revision,
        version: i64,
        value: Vec<u8>,
        lease: LeaseId,
    }

    /// Records written before the change read back the same, and new ones are byte-identical:
    /// data dirs need no migration.
    #[test]
    fn byte_fields_keep_their_postcard_encoding() {
        let plain = PlainKeyValue {
            key: b"/registry/pods/default/web".to_vec(),
            create_revision: 5,
            mod_revision: 9,
            version: 2,
            value: (0..=255u8).cycle().take(1000).collect(),
            lease: 7,
        };
        let old = postcard::to_stdvec(&plain).expect("encode");
        let kv: KeyValue = postcard::from_bytes(&old).expect("decode old bytes");
        assert_eq!(kv.key, plain.key);
        assert_eq!(kv.value, plain.value);
        assert_eq!(postcard::to_stdvec(&kv).expect("encode"), old);
    }
}
