//! openraft type configuration and the messages members exchange.

use serde::{Deserialize, Serialize};

use hanode_kv::{Applied, Command, KvError, MemberInfo};
use hanode_types::{LeaseId, Member, NodeId};

/// The payload of one log entry: commands applied in order, each its own revision. Concurrent
/// requests share an entry so they share one fsync (openraft 0.9 flushes each entry before it
/// takes the next request).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal(pub Vec<Command>);

/// What applying one log entry produced: one result per command (none for blank and
/// membership entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyResult(pub Vec<Result<Applied, KvError>>);

openraft::declare_raft_types!(
    /// hanode's openraft types: commands of the MVCC model, members as nodes, snapshots as
    /// files on disk.
    pub TypeConfig:
        D = Proposal,
        R = ApplyResult,
        NodeId = NodeId,
        Node = Member,
        SnapshotData = tokio::fs::File,
);

/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// openraft handle.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log id.
pub type LogId = openraft::LogId<NodeId>;
/// Storage error.
pub type StorageError = openraft::StorageError<NodeId>;

/// A request a member hands to the leader over the peer port.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardRequest {
    /// Propose a command.
    Propose(Command),
    /// Confirm leadership and return the log index a linearizable read must wait for.
    ReadIndex,
    /// Renew a lease.
    LeaseKeepAlive(LeaseId),
    /// Remaining TTL of a lease.
    LeaseTimeToLive(LeaseId),
    /// Add a member as a learner, or return the existing member with that name.
    AddMember(Member),
    /// Remove a member.
    RemoveMember(NodeId),
    /// Promote a learner.
    PromoteMember(NodeId),
    /// Membership with the leader's view of each learner.
    MemberStatus,
    /// Hand leadership to another voter.
    TransferLeader(NodeId),
}

/// A learner's situation, as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LearnerState {
    /// Still replicating the log.
    CatchingUp,
    /// Caught up, but promoting it alone would make the voter count even.
    WaitingForOddVoters,
    /// Added with `--learner`: promoted only on request.
    StaysLearner,
}

/// A member with the leader's view of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Member id, name, URLs, learner flag.
    pub info: MemberInfo,
    /// For learners: why it is still one.
    pub learner_state: Option<LearnerState>,
    /// Last log index the leader knows this member has (None if unknown).
    pub matched_index: Option<u64>,
}

/// The leader's answer to a [`ForwardRequest`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ForwardResponse {
    /// Result of `Propose`.
    Applied(Applied),
    /// Result of `ReadIndex`.
    ReadIndex(u64),
    /// Result of lease keep-alive / time-to-live: seconds (0 = unknown, for time-to-live -1).
    LeaseTtl(i64),
    /// The id assigned to the added (or existing) member, and the member list.
    Member(NodeId, Vec<MemberInfo>),
    /// The member list after a change.
    Members(Vec<MemberInfo>),
    /// Members with learner details.
    Status(Vec<MemberStatus>),
    /// Done.
    Done,
}
