//! A store member: the Raft node plus everything that routes requests through it.
//!
//! Writes are proposed on the leader; a follower forwards them over the peer port. Linearizable
//! reads ask the leader for a read index (leadership confirmed by a heartbeat quorum) and wait
//! until the local state machine has applied it. Lease deadlines and membership changes are
//! decided by the leader only.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use openraft::error::{ChangeMembershipError, CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{ChangeMembers, Membership, RaftMetrics, ServerState};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use hanode_kv::{Applied, Command, KvError, KvResult, Lessor, MemberInfo, ResponseHeader};
use hanode_types::{Member, NodeId};

use crate::StoreError;
use crate::config::StoreConfig;
use crate::faults::Faults;
use crate::log_store::LogStore;
use crate::network::{PeerError, PeerNetwork, PeerTls};
use crate::state_machine::{Shared, StateMachine};
use crate::types::{ForwardRequest, ForwardResponse, LearnerState, MemberStatus, Proposal, Raft};

/// Batches proposed at once; more concurrent requests wait and join a larger batch.
const MAX_INFLIGHT_BATCHES: usize = 4;

/// Commands in one batch.
const MAX_BATCH_COMMANDS: usize = 512;

/// Approximate key and value bytes in one batch.
const MAX_BATCH_BYTES: usize = 8 << 20;

/// A command waiting to be proposed.
struct Pending {
    command: Command,
    done: tokio::sync::oneshot::Sender<KvResult<Applied>>,
}

/// Someone waiting for a ReadIndex round: the commit index once leadership is confirmed.
type ReadWaiter = tokio::sync::oneshot::Sender<KvResult<u64>>;

/// Rough size of a command, for batch limits.
fn command_bytes(command: &Command) -> usize {
    fn op_bytes(op: &hanode_kv::RequestOp) -> usize {
        match op {
            hanode_kv::RequestOp::Put(p) => p.key.len() + p.value.len(),
            hanode_kv::RequestOp::Txn(t) => t.success.iter().chain(&t.failure).map(op_bytes).sum(),
            hanode_kv::RequestOp::Range(r) => r.key.len(),
            hanode_kv::RequestOp::DeleteRange(d) => d.key.len(),
        }
    }
    64 + match command {
        Command::Put(p) => p.key.len() + p.value.len(),
        Command::Txn(t) => t.success.iter().chain(&t.failure).map(op_bytes).sum(),
        _ => 0,
    }
}

/// Groups concurrent proposals into log entries: waits for the first, then takes whatever else
/// is queued (up to the limits), with at most [`MAX_INFLIGHT_BATCHES`] entries in flight. Under
/// light load every command goes alone at once; under heavy load batches grow.
async fn run_batcher(
    core: Weak<Core>,
    slots: Arc<tokio::sync::Semaphore>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Pending>,
) {
    use std::sync::atomic::Ordering;
    while let Some(first) = queue.recv().await {
        queued.fetch_sub(1, Ordering::SeqCst);
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch = vec![first];
        let mut bytes = command_bytes(&batch[0].command);
        while batch.len() < MAX_BATCH_COMMANDS && bytes < MAX_BATCH_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    queued.fetch_sub(1, Ordering::SeqCst);
                    bytes += command_bytes(&next.command);
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let Some(core) = core.upgrade() else { return };
        tokio::spawn(async move {
            let (commands, waiters): (Vec<Command>, Vec<_>) =
                batch.into_iter().map(|p| (p.command, p.done)).unzip();
            let results = core.propose_batch(commands).await;
            drop(slot);
            for (waiter, result) in waiters.into_iter().zip(results) {
                let _ = waiter.send(result);
            }
        });
    }
}

/// Tells followers a commit index as soon as the leader's disk reaches it, when AppendEntries
/// had to hold it back (see [`crate::durability`]); otherwise they would hear of it only with
/// the next write or heartbeat. openraft sends the heartbeat only to followers with no
/// request in flight; one that is busy hears of it with its next request, as before.
async fn tell_commits(core: Weak<Core>) {
    let Some(durability) = core.upgrade().map(|core| core.durability.clone()) else {
        return;
    };
    loop {
        durability.caught_up().await;
        let Some(core) = core.upgrade() else { return };
        if core.raft.trigger().heartbeat().await.is_err() {
            return;
        }
    }
}

/// Confirms leadership for many readers at once: waits for the first, takes every reader queued
/// behind it, and answers them all from one ReadIndex round (one heartbeat to a quorum). A
/// round starts only after its readers arrived, so each gets a commit index at least as new
/// as its request, as a ReadIndex of its own would give. Readers arriving during a round wait
/// for the next one.
async fn run_read_rounds(
    core: Weak<Core>,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<ReadWaiter>,
) {
    while let Some(first) = queue.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = queue.try_recv() {
            waiters.push(next);
        }
        let Some(core) = core.upgrade() else { return };
        let result = core.read_index_round(core.config.request_timeout).await;
        drop(core);
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

/// How often the leader checks lease deadlines and learners.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(25);

/// Shared core of a member.
pub(crate) struct Core {
    pub(crate) id: NodeId,
    pub(crate) config: StoreConfig,
    pub(crate) raft: Raft,
    pub(crate) shared: Arc<Shared>,
    network: PeerNetwork,
    lessor: Mutex<Lessor>,
    membership_lock: Mutex<()>,
    /// Highest term of a vote request received (another follower campaigning).
    vote_term_seen: std::sync::atomic::AtomicU64,
    /// The leader that last sent us AppendEntries (heartbeats included), and when.
    leader_contact: std::sync::Mutex<Option<(NodeId, Instant)>>,
    /// How far the Raft log is on disk.
    durability: Arc<crate::durability::Durability>,
    /// Term and send time of the newest ReadIndex round a quorum confirmed.
    confirmed: std::sync::Mutex<Option<(u64, Instant)>>,
    /// Readers waiting for a ReadIndex round.
    reads: tokio::sync::mpsc::UnboundedSender<ReadWaiter>,
    /// Commands waiting for the batcher.
    proposals: tokio::sync::mpsc::UnboundedSender<Pending>,
    /// How many commands wait in `proposals`.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Batches that may be in flight at once.
    batch_slots: Arc<tokio::sync::Semaphore>,
    /// State size in bytes and when it was measured: reading
    /// RocksDB's properties on every write would cost more than the write.
    size_cache: std::sync::Mutex<(u64, Option<Instant>)>,
    /// Raft link connections being served: shutdown waits for them, since each holds the
    /// store open.
    link_tasks: tokio_util::task::TaskTracker,
    /// Cancelled when the member shuts down.
    closing: tokio_util::sync::CancellationToken,
}

/// A running store member.
#[derive(Clone)]
pub struct StoreNode {
    pub(crate) core: Arc<Core>,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl StoreNode {
    /// Opens the member's database and starts Raft (not yet part of any cluster if the
    /// database is new: call [`StoreNode::initialize`], or wait to be added by a leader).
    pub async fn open(
        config: StoreConfig,
        tls: Option<&PeerTls>,
        faults: Arc<Faults>,
    ) -> Result<StoreNode, StoreError> {
        let db = crate::db::open(&config.db_dir)
            .map_err(|e| StoreError::Open(format!("{}: {e}", config.db_dir.display())))?;
        let log_store = LogStore::open(db.clone(), config.node_id)
            .await
            .map_err(|e| StoreError::Open(format!("{}: {e}", config.db_dir.display())))?;
        let durability = log_store.durability();
        let state_machine = StateMachine::open(db, &config.snapshot_dir, durability.clone())
            .map_err(StoreError::Open)?;
        let shared = state_machine.shared();
        let network = PeerNetwork::new(config.node_id, tls, faults, durability.clone())
            .map_err(|e| StoreError::Config(format!("peer TLS: {e}")))?;
        let raft_config = Arc::new(
            config
                .raft_config()
                .map_err(|e| StoreError::Config(e.to_string()))?,
        );
        let raft = Raft::new(
            config.node_id,
            raft_config,
            network.clone(),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| StoreError::Open(e.to_string()))?;
        let (proposals, queue) = tokio::sync::mpsc::unbounded_channel();
        let (reads, read_queue) = tokio::sync::mpsc::unbounded_channel();
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let batch_slots = Arc::new(tokio::sync::Semaphore::new(MAX_INFLIGHT_BATCHES));
        let core = Arc::new(Core {
            id: config.node_id,
            config,
            raft,
            shared,
            network,
            lessor: Mutex::new(Lessor::new()),
            membership_lock: Mutex::new(()),
            size_cache: std::sync::Mutex::new((0, None)),
            link_tasks: tokio_util::task::TaskTracker::new(),
            closing: tokio_util::sync::CancellationToken::new(),
            leader_contact: std::sync::Mutex::new(None),
            vote_term_seen: std::sync::atomic::AtomicU64::new(0),
            durability,
            confirmed: std::sync::Mutex::new(None),
            reads,
            proposals,
            queued: queued.clone(),
            batch_slots: batch_slots.clone(),
        });
        let housekeeping = tokio::spawn(housekeeping(Arc::downgrade(&core)));
        let batcher = tokio::spawn(run_batcher(
            Arc::downgrade(&core),
            batch_slots,
            queued,
            queue,
        ));
        let read_rounds = tokio::spawn(run_read_rounds(Arc::downgrade(&core), read_queue));
        let commits = tokio::spawn(tell_commits(Arc::downgrade(&core)));
        Ok(StoreNode {
            core,
            tasks: Arc::new(std::sync::Mutex::new(vec![
                housekeeping,
                batcher,
                read_rounds,
                commits,
            ])),
        })
    }

    /// Makes this member the single voter of a new cluster (`--init`).
    pub async fn initialize(&self, me: Member) -> Result<(), StoreError> {
        let members = BTreeMap::from([(self.core.id, me)]);
        self.core
            .raft
            .initialize(members)
            .await
            .map_err(|e| StoreError::Raft(e.to_string()))
    }

    /// Whether this member has any Raft state (initialized, or added by a leader).
    pub async fn is_initialized(&self) -> bool {
        self.core.raft.is_initialized().await.unwrap_or(false)
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.core.id
    }

    /// Raft metrics (leader, term, log and apply positions, membership).
    pub fn metrics(&self) -> RaftMetrics<NodeId, Member> {
        self.core.raft.metrics().borrow().clone()
    }

    /// A receiver of metric updates, to wait for conditions.
    pub fn metrics_watch(&self) -> tokio::sync::watch::Receiver<RaftMetrics<NodeId, Member>> {
        self.core.raft.metrics()
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.core.raft.metrics().borrow().current_leader
    }

    /// The tonic service answering peers (Raft and forwarded requests).
    pub fn peer_service(
        &self,
    ) -> hanode_proto::peer::peer_server::PeerServer<crate::peer_service::PeerService> {
        crate::peer_service::PeerService::server(self.core.clone())
    }

    /// Answers Raft link requests on one accepted peer connection (ALPN
    /// [`crate::LINK_ALPN`]; the caller checked the client certificate) until the peer closes
    /// it, `stop` completes, or this member shuts down. Spawn the returned future; shutdown
    /// waits for it to end.
    pub fn serve_link<S>(
        &self,
        io: S,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> impl std::future::Future<Output = ()> + Send + 'static
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let core = self.core.clone();
        self.core.link_tasks.track_future(async move {
            let closing = core.closing.clone();
            let stop = async move {
                tokio::select! {
                    _ = stop => {}
                    _ = closing.cancelled() => {}
                }
            };
            crate::link::serve(
                io,
                |request| crate::peer_service::answer_link(&core, request),
                stop,
            )
            .await;
        })
    }

    /// Waits until this member has applied everything committed when it was asked, as seen by
    /// the leader: the check behind `/readyz` and linearizable reads.
    pub async fn read_barrier(&self, timeout: Duration) -> KvResult<()> {
        self.core.read_barrier(Instant::now() + timeout).await
    }

    /// Adds a member as a learner (or returns the existing member with the same name); it is
    /// promoted once caught up, keeping the voter count odd.
    pub async fn join_member(&self, member: Member) -> KvResult<(NodeId, Vec<MemberInfo>)> {
        let deadline = Instant::now() + self.core.config.request_timeout * 2;
        match self
            .core
            .route(ForwardRequest::AddMember(member), deadline)
            .await?
        {
            ForwardResponse::Member(id, members) => Ok((id, members)),
            other => Err(unexpected(other)),
        }
    }

    /// Every member with the leader's view of each learner.
    pub async fn member_status(&self) -> KvResult<Vec<MemberStatus>> {
        let deadline = Instant::now() + self.core.config.request_timeout;
        match self
            .core
            .route(ForwardRequest::MemberStatus, deadline)
            .await?
        {
            ForwardResponse::Status(members) => Ok(members),
            other => Err(unexpected(other)),
        }
    }

    /// The member list as this member knows it (no leader needed).
    pub fn local_members(&self) -> Vec<MemberInfo> {
        self.core.local_members()
    }

    /// Response header for this member.
    pub fn header(&self, revision: hanode_types::Revision) -> ResponseHeader {
        self.core.header(revision)
    }

    /// The shared state-machine handle (for reads in this crate's backend).
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.core.shared
    }

    /// Stops Raft and background tasks. Pending requests fail with `Stopped`.
    pub async fn shutdown(&self) {
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
        }
        self.core.closing.cancel();
        self.core.link_tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.core.link_tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Raft link connections still open 5 s after shutdown began");
        }
        if let Err(e) = self.core.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
        // openraft 0.9 drops the state machine (which holds the database open) in a worker
        // task that can outlive `Raft::shutdown`; a restart in this process must find the
        // database closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&self.core.shared) > 1 {
            if Instant::now() >= deadline {
                tracing::warn!("the state machine is still in use 5 s after shutdown");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // A flush still running holds the database open, and a restart reopens it.
        self.core.durability.settle().await;
    }

    /// Bytes of state-machine data (what the quota counts).
    pub fn state_size_bytes(&self) -> u64 {
        crate::db::state_size_bytes(&self.core.shared.db)
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// AppendEntries this member sent, by transport.
    pub fn peer_traffic(&self) -> crate::PeerTraffic {
        self.core.network.traffic()
    }

    /// Injected network faults (shared with the other in-process members of a test cluster).
    pub fn faults(&self) -> &Arc<Faults> {
        self.core.network.faults()
    }
}

pub(crate) fn unexpected(response: ForwardResponse) -> KvError {
    KvError::Storage(format!("unexpected reply from the leader: {response:?}"))
}

impl ForwardRequest {
    /// Whether sending it twice is harmless (so an ambiguous failure may be retried).
    fn is_idempotent(&self) -> bool {
        matches!(
            self,
            ForwardRequest::ReadIndex
                | ForwardRequest::LeaseKeepAlive(_)
                | ForwardRequest::LeaseTimeToLive(_)
                | ForwardRequest::MemberStatus
        )
    }
}

/// How long a measured state size is reused by the quota check.
const SIZE_CACHE_TTL: Duration = Duration::from_millis(200);

impl Core {
    /// Bytes of state-machine data, measured at most every [`SIZE_CACHE_TTL`].
    pub(crate) fn state_size_cached(&self) -> u64 {
        let mut cache = self.size_cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = cache.1.is_some_and(|at| at.elapsed() < SIZE_CACHE_TTL);
        if !fresh {
            *cache = (
                crate::db::state_size_bytes(&self.shared.db),
                Some(Instant::now()),
            );
        }
        cache.0
    }

    /// Records that `leader` just reached us.
    pub(crate) fn note_leader_contact(&self, leader: Option<NodeId>) {
        if let Some(leader) = leader {
            *self
                .leader_contact
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some((leader, Instant::now()));
        }
    }

    /// Records the term of a vote request received.
    pub(crate) fn note_vote_request(&self, term: u64) {
        self.vote_term_seen
            .fetch_max(term, std::sync::atomic::Ordering::SeqCst);
    }

    /// Fast failover after a crash: when heartbeats stop and the leader's peer port refuses
    /// connections, its process is gone (not slow, not partitioned). Then one follower (the
    /// lowest id) starts an election as soon as the other voters' leader lease has run out,
    /// instead of waiting for its randomized election timeout and possibly losing a round to
    /// the lease.
    async fn watch_leader(&self, pending: &mut Option<Instant>) {
        let (leader, voters, state) = {
            let watch = self.raft.metrics();
            let metrics = watch.borrow();
            let voters: Vec<NodeId> = metrics.membership_config.membership().voter_ids().collect();
            (metrics.current_leader, voters, metrics.state)
        };
        let contact = *self
            .leader_contact
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (Some(leader), Some((contacted, at))) = (leader, contact) else {
            return;
        };
        if state != ServerState::Follower || leader == self.id || contacted != leader {
            *pending = None;
            return;
        }
        let silent = at.elapsed();
        if silent < Duration::from_millis(self.config.heartbeat_interval_ms * 2) {
            *pending = None;
            return;
        }
        // Followers take turns, lowest id first, so they do not split the vote; a later one
        // steps in if the first cannot win (a shorter log, say).
        let mut followers: Vec<NodeId> =
            voters.iter().copied().filter(|id| *id != leader).collect();
        followers.sort_unstable();
        let Some(rank) = followers.iter().position(|id| *id == self.id) else {
            return;
        };
        if let Some(when) = *pending {
            if Instant::now() >= when {
                *pending = None;
                tracing::info!(leader = %format!("{leader:x}"), "leader process is gone: starting an election");
                // Another follower may have campaigned during the lease (and been refused): a
                // tie at its term would split the vote, so go one term beyond it.
                let term = self.raft.metrics().borrow().current_term;
                let seen = self
                    .vote_term_seen
                    .load(std::sync::atomic::Ordering::SeqCst);
                let elections = (seen + 1).saturating_sub(term).clamp(1, 3);
                for _ in 0..elections {
                    let _ = self.raft.trigger().elect().await;
                }
            }
            return;
        }
        let Some(member) = self
            .metrics()
            .membership_config
            .membership()
            .get_node(&leader)
            .cloned()
        else {
            return;
        };
        let probe = tokio::time::timeout(
            Duration::from_millis(self.config.heartbeat_interval_ms),
            tokio::net::TcpStream::connect(member.peer_addr().to_string()),
        )
        .await;
        if let Ok(Err(e)) = probe
            && e.kind() == std::io::ErrorKind::ConnectionRefused
        {
            // Every voter heard from the leader about when we did: their leases end then.
            let lease = Duration::from_millis(self.config.election_timeout_ms_max);
            let turn = Duration::from_millis(10 + 60 * rank as u64);
            *pending = Some(at + lease + turn);
        }
    }

    /// Forgets the measured state size (after space was freed), so the next write measures.
    pub(crate) fn invalidate_size_cache(&self) {
        self.size_cache.lock().unwrap_or_else(|p| p.into_inner()).1 = None;
    }

    fn metrics(&self) -> RaftMetrics<NodeId, Member> {
        self.raft.metrics().borrow().clone()
    }

    pub(crate) fn header(&self, revision: hanode_types::Revision) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.config.cluster_id,
            member_id: self.id,
            revision,
            raft_term: self.raft.metrics().borrow().current_term,
        }
    }

    pub(crate) fn local_members(&self) -> Vec<MemberInfo> {
        members_of(self.metrics().membership_config.membership())
    }

    /// How long to wait for a leader to appear before answering "no leader".
    fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.config.election_timeout_ms_max * 2)
    }

    /// Sends a request to the leader (handling it here if this member leads), retrying while
    /// the leader is unknown or unreachable and the request cannot have been processed.
    pub(crate) async fn route(
        &self,
        request: ForwardRequest,
        deadline: Instant,
    ) -> KvResult<ForwardResponse> {
        let mut leaderless_since: Option<Instant> = None;
        loop {
            // Only the leader and its address are needed: no clone of the whole metrics.
            let (known_leader, leader_member) = {
                let watch = self.raft.metrics();
                let metrics = watch.borrow();
                let leader = metrics.current_leader;
                let member = leader
                    .and_then(|l| metrics.membership_config.membership().get_node(&l).cloned());
                (leader, member)
            };
            let outcome = match known_leader {
                Some(leader) if leader == self.id => {
                    self.handle_local(request.clone(), deadline).await
                }
                Some(leader) => match &leader_member {
                    Some(member) => {
                        // A leader that stopped answering must not hold the request until its
                        // deadline: give each attempt at most about two election timeouts.
                        let left = deadline
                            .saturating_duration_since(Instant::now())
                            .min(self.leader_wait());
                        match self.network.forward(leader, member, &request, left).await {
                            Ok(result) => result,
                            Err(PeerError::Unreachable(..)) => Err(KvError::NoLeader),
                            Err(e @ PeerError::Failed(..)) if !request.is_idempotent() => {
                                tracing::debug!(error = %e, "forwarded request outcome unknown");
                                return Err(KvError::Timeout);
                            }
                            Err(_) => Err(KvError::NoLeader),
                        }
                    }
                    None => Err(KvError::NoLeader),
                },
                None => Err(KvError::NoLeader),
            };
            match outcome {
                Err(KvError::NoLeader) => {
                    let now = Instant::now();
                    let since = *leaderless_since.get_or_insert(now);
                    if now >= deadline || now.duration_since(since) >= self.leader_wait() {
                        return Err(KvError::NoLeader);
                    }
                    // Wait for a leader change, or a little while if none comes.
                    let mut watch = self.raft.metrics();
                    let known = known_leader;
                    let _ = tokio::time::timeout(Duration::from_millis(50), async {
                        while watch.changed().await.is_ok() {
                            if watch.borrow().current_leader != known {
                                break;
                            }
                        }
                    })
                    .await;
                }
                other => return other,
            }
        }
    }

    /// Handles a request on the leader. `NoLeader` means this member is not (or no longer)
    /// the leader and nothing was done.
    pub(crate) async fn handle_local(
        &self,
        request: ForwardRequest,
        deadline: Instant,
    ) -> KvResult<ForwardResponse> {
        let left = deadline.saturating_duration_since(Instant::now());
        match request {
            ForwardRequest::Propose(command) => {
                let applied = self.propose_local(command, left).await?;
                Ok(ForwardResponse::Applied(applied))
            }
            ForwardRequest::ReadIndex => Ok(ForwardResponse::ReadIndex(
                self.read_index_local(left).await?,
            )),
            ForwardRequest::LeaseKeepAlive(id) => {
                // Like etcd, renew on the leader without a log entry; unlike etcd 3.4, only
                // while a quorum recently confirmed the leadership.
                if !self.leadership_fresh() {
                    self.read_index_local(left).await?;
                }
                let granted = self.shared.read().mvcc.lease_ttl(id);
                let mut lessor = self.lessor.lock().await;
                let ttl = match granted {
                    Some(granted) => lessor.renew(id, granted, Instant::now()),
                    None => {
                        lessor.forget(id);
                        None
                    }
                };
                Ok(ForwardResponse::LeaseTtl(ttl.unwrap_or(0)))
            }
            ForwardRequest::LeaseTimeToLive(id) => {
                self.read_index_local(left).await?;
                let leases = self.shared.read().mvcc.leases();
                let mut lessor = self.lessor.lock().await;
                lessor.sync(&leases, Instant::now());
                Ok(ForwardResponse::LeaseTtl(
                    lessor.remaining_secs(id, Instant::now()).unwrap_or(-1),
                ))
            }
            ForwardRequest::AddMember(member) => self.add_member(member, deadline).await,
            ForwardRequest::RemoveMember(id) => self.remove_member(id, deadline).await,
            ForwardRequest::PromoteMember(id) => self.promote_member(id, deadline).await,
            ForwardRequest::MemberStatus => {
                if self.metrics().state != ServerState::Leader {
                    return Err(KvError::NoLeader);
                }
                Ok(ForwardResponse::Status(self.member_status()))
            }
            ForwardRequest::TransferLeader(_) => {
                Err(KvError::Unsupported("moving leadership".into()))
            }
        }
    }

    async fn propose_local(&self, command: Command, left: Duration) -> KvResult<Applied> {
        use std::sync::atomic::Ordering;
        // Idle: propose right here, without the hop through the batcher.
        if self.queued.load(Ordering::SeqCst) == 0
            && let Ok(slot) = self.batch_slots.clone().try_acquire_owned()
        {
            {
                let proposed = tokio::time::timeout(left, self.propose_batch(vec![command])).await;
                drop(slot);
                return match proposed {
                    Err(_) => Err(KvError::Timeout),
                    Ok(mut results) => results.pop().unwrap_or(Err(KvError::Stopped)),
                };
            }
        }
        let (done, result) = tokio::sync::oneshot::channel();
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.proposals.send(Pending { command, done }).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(KvError::Stopped);
        }
        match tokio::time::timeout(left, result).await {
            Err(_) => Err(KvError::Timeout),
            Ok(Err(_)) => Err(KvError::Stopped),
            Ok(Ok(result)) => result,
        }
    }

    /// Proposes a batch as one log entry; one result per command, in order.
    async fn propose_batch(&self, commands: Vec<Command>) -> Vec<KvResult<Applied>> {
        let count = commands.len();
        let failed = |e: KvError| (0..count).map(|_| Err(e.clone())).collect();
        let attempt = self.raft.client_write(Proposal(commands));
        match tokio::time::timeout(self.config.request_timeout, attempt).await {
            Err(_) => failed(KvError::Timeout),
            Ok(Ok(response)) if response.data.0.len() == count => response.data.0,
            Ok(Ok(_)) => failed(KvError::Storage(
                "a proposal produced the wrong number of results".into(),
            )),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                failed(KvError::NoLeader)
            }
            Ok(Err(RaftError::APIError(e))) => failed(KvError::Storage(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => failed(KvError::Stopped),
        }
    }

    /// The commit index, once a quorum has confirmed this member is still the leader; shares
    /// the round with every reader asking at the same time.
    async fn read_index_local(&self, left: Duration) -> KvResult<u64> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.reads.send(reply).map_err(|_| KvError::Stopped)?;
        match tokio::time::timeout(left, answer).await {
            Err(_) => Err(KvError::Timeout),
            Ok(Err(_)) => Err(KvError::Stopped),
            Ok(Ok(result)) => result,
        }
    }

    /// One ReadIndex round of our own; a success also refreshes [`Core::leadership_fresh`].
    async fn read_index_round(&self, left: Duration) -> KvResult<u64> {
        let term = self.raft.metrics().borrow().current_term;
        let sent = Instant::now();
        match tokio::time::timeout(left, self.raft.get_read_log_id()).await {
            Err(_) => Err(KvError::Timeout),
            Ok(Ok((read_log_id, _))) => {
                let mut confirmed = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
                if confirmed.is_none_or(|(t, at)| (t, at) < (term, sent)) {
                    *confirmed = Some((term, sent));
                }
                Ok(read_log_id.map_or(0, |log_id| log_id.index))
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))) => {
                Err(KvError::NoLeader)
            }
            Ok(Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)))) => {
                Err(KvError::Timeout)
            }
            Ok(Err(RaftError::Fatal(_))) => Err(KvError::Stopped),
        }
    }

    /// Whether this member is the leader and a quorum confirmed it, in this term, so recently
    /// that no other leader can have been elected since: voters refuse to vote for at least an
    /// election timeout after they last heard from their leader, and a new leader restarts
    /// every lease deadline when it takes over. A lease renewed now therefore keeps its new
    /// deadline whoever leads next. Half the minimum election timeout is the safety margin.
    fn leadership_fresh(&self) -> bool {
        let (state, term) = {
            let metrics = self.raft.metrics();
            let metrics = metrics.borrow();
            (metrics.state, metrics.current_term)
        };
        let window = Duration::from_millis(self.config.election_timeout_ms_min / 2);
        state == ServerState::Leader
            && self
                .confirmed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some_and(|(t, sent)| t == term && sent.elapsed() < window)
    }

    pub(crate) async fn read_barrier(&self, deadline: Instant) -> KvResult<()> {
        let index = match self.route(ForwardRequest::ReadIndex, deadline).await? {
            ForwardResponse::ReadIndex(index) => index,
            other => return Err(unexpected(other)),
        };
        self.wait_applied(index, deadline).await
    }

    async fn wait_applied(&self, index: u64, deadline: Instant) -> KvResult<()> {
        let applied = self.metrics().last_applied.map_or(0, |log_id| log_id.index);
        if applied >= index {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(left))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|e| match e {
                openraft::metrics::WaitError::Timeout(..) => KvError::Timeout,
                openraft::metrics::WaitError::ShuttingDown => KvError::Stopped,
            })
    }

    /// Proposes a command through the leader (wherever it is).
    pub(crate) async fn propose(&self, command: Command) -> KvResult<Applied> {
        let deadline = Instant::now() + self.config.request_timeout;
        match self
            .route(ForwardRequest::Propose(command), deadline)
            .await?
        {
            ForwardResponse::Applied(applied) => Ok(applied),
            other => Err(unexpected(other)),
        }
    }

    /// The membership the Raft core holds now (metrics may lag a change that just returned).
    async fn current_membership(&self) -> KvResult<Membership<NodeId, Member>> {
        self.raft
            .with_raft_state(|state| state.membership_state.effective().membership().clone())
            .await
            .map_err(|_| KvError::Stopped)
    }

    async fn current_members(&self) -> KvResult<Vec<MemberInfo>> {
        Ok(members_of(&self.current_membership().await?))
    }

    /// Runs a membership change, retrying while another change is still being committed.
    async fn change_membership(
        &self,
        change: ChangeMembers<NodeId, Member>,
        retain: bool,
        deadline: Instant,
    ) -> KvResult<()> {
        retry_while_in_progress(deadline, || async {
            self.membership_durable().await?;
            self.raft.change_membership(change.clone(), retain).await
        })
        .await
    }

    /// Waits until the membership config in effect is on this leader's disk. openraft starts
    /// a change once the config before it is committed, and a commit may count this leader's
    /// unsynced copy (see [`crate::durability`]); a change left half-done by a timeout must not
    /// be built upon before then. A failed sync stops the change (openraft stops the member).
    async fn membership_durable(&self) -> MembershipResult<()> {
        let index = self
            .raft
            .with_raft_state(|state| {
                state
                    .membership_state
                    .effective()
                    .log_id()
                    .map(|log_id| log_id.index)
            })
            .await;
        if let Ok(Some(index)) = index
            && let Err(e) = self.durability.wait_for(index).await
        {
            tracing::error!(error = %e, "the membership config could not be synced");
            return Err(RaftError::Fatal(openraft::error::Fatal::Stopped));
        }
        Ok(())
    }

    /// Replaces a member's name and URLs, keeping whether it stays a learner.
    async fn update_member(
        &self,
        id: NodeId,
        old: &Member,
        new: Member,
        deadline: Instant,
    ) -> KvResult<()> {
        let member = Member {
            stay_learner: old.stay_learner,
            ..new
        };
        let update = BTreeMap::from([(id, member)]);
        self.change_membership(ChangeMembers::SetNodes(update), true, deadline)
            .await
    }

    /// Adds a learner without waiting for it to catch up (it may not be running yet).
    async fn add_learner(&self, id: NodeId, member: Member, deadline: Instant) -> KvResult<()> {
        retry_while_in_progress(deadline, || async {
            self.membership_durable().await?;
            self.raft.add_learner(id, member.clone(), false).await
        })
        .await
    }

    async fn add_member(&self, member: Member, deadline: Instant) -> KvResult<ForwardResponse> {
        let _serialized = self.membership_lock.lock().await;
        let metrics = self.metrics();
        if metrics.state != ServerState::Leader {
            return Err(KvError::NoLeader);
        }
        let membership = self.current_membership().await?;
        let existing: Vec<(NodeId, Member)> = membership
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        // Re-running a join: same name, same member.
        if !member.name.is_empty()
            && let Some((id, node)) = existing.iter().find(|(_, node)| node.name == member.name)
        {
            if node.peer_url != member.peer_url {
                return Err(KvError::MembershipRefused(format!(
                    "a member named {:?} already exists at {}; choose another --node-name, \
                         or remove member {id:x} first",
                    member.name, node.peer_url
                )));
            }
            if *node != member {
                self.update_member(*id, node, member, deadline).await?;
            }
            return Ok(ForwardResponse::Member(*id, self.current_members().await?));
        }
        if let Some((id, node)) = existing
            .iter()
            .find(|(_, node)| node.peer_url == member.peer_url)
        {
            if node.name.is_empty() && !member.name.is_empty() {
                // A member announced with `member add` is starting: it keeps its id.
                self.update_member(*id, node, member, deadline).await?;
                return Ok(ForwardResponse::Member(*id, self.current_members().await?));
            }
            return Err(KvError::PeerUrlExists);
        }
        let mut id: NodeId = rand::random::<u64>() >> 1;
        while id == 0 || existing.iter().any(|(taken, _)| *taken == id) {
            id = rand::random::<u64>() >> 1;
        }
        tracing::info!(member_id = %format!("{id:x}"), name = %member.name, "adding member as learner");
        self.add_learner(id, member, deadline).await?;
        Ok(ForwardResponse::Member(id, self.current_members().await?))
    }

    async fn remove_member(&self, id: NodeId, deadline: Instant) -> KvResult<ForwardResponse> {
        let _serialized = self.membership_lock.lock().await;
        let metrics = self.metrics();
        if metrics.state != ServerState::Leader {
            return Err(KvError::NoLeader);
        }
        let membership = self.current_membership().await?;
        if membership.get_node(&id).is_none() {
            return Err(KvError::MemberNotFound { id });
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(KvError::MembershipRefused(
                    "cannot remove the only voter: add another member first".into(),
                ));
            }
            tracing::info!(member_id = %format!("{id:x}"), "removing voter");
            self.change_membership(
                ChangeMembers::RemoveVoters(BTreeSet::from([id])),
                false,
                deadline,
            )
            .await?;
        } else {
            tracing::info!(member_id = %format!("{id:x}"), "removing learner");
            self.change_membership(
                ChangeMembers::RemoveNodes(BTreeSet::from([id])),
                false,
                deadline,
            )
            .await?;
        }
        // Keep the voter count odd right away rather than at the next housekeeping round.
        if let Err(e) = self.balance_voters(deadline).await {
            tracing::debug!(error = %e, "rebalancing voters after removal");
        }
        Ok(ForwardResponse::Members(self.current_members().await?))
    }

    async fn promote_member(&self, id: NodeId, deadline: Instant) -> KvResult<ForwardResponse> {
        let _serialized = self.membership_lock.lock().await;
        let metrics = self.metrics();
        if metrics.state != ServerState::Leader {
            return Err(KvError::NoLeader);
        }
        let membership = self.current_membership().await?;
        if membership.get_node(&id).is_none() {
            return Err(KvError::MemberNotFound { id });
        }
        let voters = membership.voter_ids().count();
        if membership.voter_ids().any(|voter| voter == id) {
            return Err(KvError::MemberNotLearner);
        }
        if !self.caught_up(&metrics, id) {
            return Err(KvError::LearnerNotReady);
        }
        if (voters + 1).is_multiple_of(2) {
            return Err(KvError::MembershipRefused(format!(
                "promoting member {id:x} would leave {} voters; hanode keeps the voter count odd. \
                 Add one more member (both are then promoted together) or remove a voter first",
                voters + 1
            )));
        }
        self.change_membership(
            ChangeMembers::AddVoterIds(BTreeSet::from([id])),
            false,
            deadline,
        )
        .await?;
        Ok(ForwardResponse::Members(self.current_members().await?))
    }

    fn caught_up(&self, metrics: &RaftMetrics<NodeId, Member>, id: NodeId) -> bool {
        let Some(replication) = &metrics.replication else {
            return false;
        };
        let last = metrics.last_log_index.unwrap_or(0);
        match replication.get(&id) {
            Some(Some(matched)) => {
                last.saturating_sub(matched.index) <= self.config.learner_catch_up_entries
            }
            _ => false,
        }
    }

    fn member_status(&self) -> Vec<MemberStatus> {
        let metrics = self.metrics();
        members_of(metrics.membership_config.membership())
            .into_iter()
            .map(|info| {
                let matched_index = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&info.id).cloned().flatten())
                    .map(|log_id| log_id.index)
                    .or_else(|| {
                        (info.id == self.id).then_some(metrics.last_log_index.unwrap_or(0))
                    });
                let learner_state = info.is_learner.then(|| {
                    if info.member.stay_learner {
                        LearnerState::StaysLearner
                    } else if self.caught_up(&metrics, info.id) {
                        LearnerState::WaitingForOddVoters
                    } else {
                        LearnerState::CatchingUp
                    }
                });
                MemberStatus {
                    info,
                    learner_state,
                    matched_index,
                }
            })
            .collect()
    }

    /// Promotes caught-up learners in numbers that keep the voter count odd, or demotes a
    /// voter when a removal left an even count and no learner can make it odd.
    async fn balance_voters(&self, deadline: Instant) -> KvResult<()> {
        let metrics = self.metrics();
        if metrics.state != ServerState::Leader {
            return Ok(());
        }
        let membership = self.current_membership().await?;
        if membership.get_joint_config().len() > 1 {
            return Ok(()); // a change is still being committed
        }
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let mut ready: Vec<NodeId> = membership
            .learner_ids()
            .filter(|id| {
                membership.get_node(id).is_some_and(|m| !m.stay_learner)
                    && self.caught_up(&metrics, *id)
            })
            .collect();
        let total = voters.len() + ready.len();
        let target = if total % 2 == 1 { total } else { total - 1 };
        if target > voters.len() {
            ready.truncate(target - voters.len());
            tracing::info!(promote = ?ready.iter().map(|id| format!("{id:x}")).collect::<Vec<_>>(), "promoting caught-up learners");
            let ids: BTreeSet<NodeId> = ready.into_iter().collect();
            return self
                .change_membership(ChangeMembers::AddVoterIds(ids), false, deadline)
                .await;
        }
        if voters.len().is_multiple_of(2) && voters.len() >= 2 {
            // Demote the voter furthest behind (never ourselves); it is promoted again when
            // another member joins.
            let replication = metrics.replication.clone().unwrap_or_default();
            let victim = voters
                .iter()
                .copied()
                .filter(|id| *id != self.id)
                .min_by_key(|id| {
                    replication
                        .get(id)
                        .cloned()
                        .flatten()
                        .map_or(0, |l| l.index)
                });
            if let Some(victim) = victim {
                tracing::info!(member_id = %format!("{victim:x}"), "demoting a voter to keep the voter count odd");
                let keep: BTreeSet<NodeId> =
                    voters.into_iter().filter(|id| *id != victim).collect();
                return self
                    .change_membership(ChangeMembers::ReplaceAllVoters(keep), true, deadline)
                    .await;
            }
        }
        Ok(())
    }

    async fn expire_leases(&self, was_leader: &mut bool) {
        let leader = self.metrics().state == ServerState::Leader;
        if !leader {
            if *was_leader {
                self.lessor.lock().await.clear();
            }
            *was_leader = false;
            return;
        }
        if !*was_leader {
            // A new leader restarts every deadline: leases may outlive a leader change a
            // little, never expire early.
            self.lessor.lock().await.clear();
            *was_leader = true;
        }
        let leases = self.shared.read().mvcc.leases();
        let expired = {
            let mut lessor = self.lessor.lock().await;
            lessor.sync(&leases, Instant::now());
            lessor.expired(Instant::now())
        };
        for id in expired {
            let deadline = Instant::now() + self.config.request_timeout;
            match self
                .handle_local(
                    ForwardRequest::Propose(Command::LeaseRevoke { id }),
                    deadline,
                )
                .await
            {
                Ok(_) => tracing::debug!(lease = id, "lease expired"),
                Err(KvError::LeaseNotFound { .. }) => {}
                Err(e) => tracing::debug!(lease = id, error = %e, "lease expiry not committed yet"),
            }
        }
    }
}

type MembershipResult<T = openraft::raft::ClientWriteResponse<crate::types::TypeConfig>> =
    Result<T, RaftError<NodeId, ClientWriteError<NodeId, Member>>>;

/// Runs a membership write until it is accepted: a change that finds another one still being
/// committed waits its turn (joins are queued, never failed).
async fn retry_while_in_progress<F, Fut>(deadline: Instant, mut attempt: F) -> KvResult<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = MembershipResult>,
{
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, attempt()).await {
            Err(_) => return Err(KvError::Timeout),
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_)))) => {
                return Err(KvError::NoLeader);
            }
            Ok(Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(
                ChangeMembershipError::InProgress(_),
            )))) => {
                if Instant::now() >= deadline {
                    return Err(KvError::Timeout);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(Err(RaftError::APIError(e))) => return Err(KvError::InvalidArgument(e.to_string())),
            Ok(Err(RaftError::Fatal(_))) => return Err(KvError::Stopped),
        }
    }
}

/// The members of the current membership config, voters first.
fn members_of(membership: &Membership<NodeId, Member>) -> Vec<MemberInfo> {
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let mut members: Vec<MemberInfo> = membership
        .nodes()
        .map(|(id, member)| MemberInfo {
            id: *id,
            member: member.clone(),
            is_learner: !voters.contains(id),
        })
        .collect();
    members.sort_by_key(|m| (m.is_learner, m.member.name.clone(), m.id));
    members
}

/// Leader duties on a timer: lease expiry and keeping voters odd.
async fn housekeeping(core: Weak<Core>) {
    let mut was_leader = false;
    let mut ticks: u64 = 0;
    let mut election_at = None;
    loop {
        tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
        let Some(core) = core.upgrade() else { return };
        core.watch_leader(&mut election_at).await;
        ticks += 1;
        if ticks.is_multiple_of(4) {
            core.expire_leases(&mut was_leader).await;
        }
        if was_leader
            && ticks.is_multiple_of(12)
            && let Ok(_serialized) = core.membership_lock.try_lock()
        {
            let deadline = Instant::now() + core.config.request_timeout;
            if let Err(e) = core.balance_voters(deadline).await {
                tracing::debug!(error = %e, "balancing voters");
            }
        }
    }
}
