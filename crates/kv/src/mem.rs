//! [`MemBackend`]: the MVCC model on an in-memory store, a single always-leader member. Front-end
//! tests use it so they never compile RocksDB; it follows the same model code as the Raft store.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use hanode_types::{LeaseId, Member, NodeId, Revision};

use crate::api::*;
use crate::backend::{KvBackend, MemberList, SnapshotStream};
use crate::error::{KvError, KvResult};
use crate::index::Rev;
use crate::lease::Lessor;
use crate::mvcc::{Applied, Changes, Command, Mvcc, Record, RevStore};
use crate::watch::{History, WatchHub, WatchStream};

/// Settings of a [`MemBackend`].
#[derive(Clone, Debug)]
pub struct MemConfig {
    /// Member id reported in headers.
    pub member_id: NodeId,
    /// Cluster id reported in headers.
    pub cluster_id: u64,
    /// Space quota in bytes of stored records.
    pub quota_bytes: u64,
    /// Shortest TTL a lease gets, in seconds.
    pub min_lease_ttl_secs: i64,
}

impl Default for MemConfig {
    fn default() -> Self {
        MemConfig {
            member_id: 1,
            cluster_id: 1,
            quota_bytes: 2 << 30,
            min_lease_ttl_secs: 2,
        }
    }
}

#[derive(Default)]
struct MemStore {
    records: BTreeMap<Rev, Record>,
    bytes: u64,
}

impl RevStore for MemStore {
    fn get(&self, rev: Rev) -> KvResult<Option<Record>> {
        Ok(self.records.get(&rev).cloned())
    }

    fn scan_from(&self, from: Rev, visit: &mut dyn FnMut(Rev, Record) -> bool) -> KvResult<()> {
        for (rev, record) in self.records.range(from..) {
            if !visit(*rev, record.clone()) {
                break;
            }
        }
        Ok(())
    }
}

fn record_bytes(record: &Record) -> u64 {
    (record.kv.key.len() + record.kv.value.len() + 48) as u64
}

struct State {
    mvcc: Mvcc,
    store: MemStore,
}

struct Inner {
    config: MemConfig,
    state: RwLock<State>,
    hub: Arc<WatchHub>,
    lessor: Mutex<Lessor>,
}

/// An in-memory, single-member store with etcd semantics.
#[derive(Clone)]
pub struct MemBackend {
    inner: Arc<Inner>,
}

impl Default for MemBackend {
    fn default() -> Self {
        Self::new(MemConfig::default())
    }
}

impl MemBackend {
    /// An empty store. If called inside a tokio runtime, a task expires leases.
    pub fn new(config: MemConfig) -> Self {
        let backend = MemBackend {
            inner: Arc::new(Inner {
                config,
                state: RwLock::new(State {
                    mvcc: Mvcc::new(),
                    store: MemStore::default(),
                }),
                hub: WatchHub::new(1),
                lessor: Mutex::new(Lessor::new()),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(expire_leases(Arc::downgrade(&backend.inner)));
        }
        backend
    }

    fn header(&self, revision: Revision) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.inner.config.cluster_id,
            member_id: self.inner.config.member_id,
            revision,
            raft_term: 1,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies one command as the log would, persisting and publishing its effects.
    pub fn apply(&self, command: &Command) -> KvResult<Applied> {
        apply(&self.inner, command)
    }

    /// Number of stored record bytes (what the quota counts).
    pub fn size_bytes(&self) -> u64 {
        self.read().store.bytes
    }
}

fn apply(inner: &Inner, command: &Command) -> KvResult<Applied> {
    let mut state = inner
        .state
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if command.costs_space() && state.store.bytes > inner.config.quota_bytes {
        let alarm = AlarmMember {
            member_id: inner.config.member_id,
            alarm: AlarmType::NoSpace,
        };
        if !state.mvcc.alarms().contains(&alarm) {
            let raise = Command::Alarm {
                action: AlarmAction::Activate,
                member_id: alarm.member_id,
                alarm: alarm.alarm,
            };
            let State { mvcc, store } = &mut *state;
            mvcc.apply(store, &raise, &mut Changes::default())?;
        }
        return Err(KvError::NoSpace);
    }
    let mut changes = Changes::default();
    let State { mvcc, store } = &mut *state;
    let applied = mvcc.apply(store, command, &mut changes)?;
    for rev in changes.deletes {
        if let Some(record) = store.records.remove(&rev) {
            store.bytes -= record_bytes(&record);
        }
    }
    for (rev, record) in changes.puts {
        store.bytes += record_bytes(&record);
        store.records.insert(rev, record);
    }
    for (revision, events) in changes.events {
        inner.hub.publish(revision, events);
    }
    Ok(applied)
}

async fn expire_leases(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        let leases = {
            let state = inner
                .state
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.mvcc.leases()
        };
        let expired = {
            let mut lessor = inner.lessor.lock().await;
            lessor.sync(&leases, Instant::now());
            lessor.expired(Instant::now())
        };
        for id in expired {
            // Already revoked by a client in the meantime: nothing to do.
            let _ = apply(&inner, &Command::LeaseRevoke { id });
        }
    }
}

struct MemHistory(Arc<Inner>);

impl History for MemHistory {
    fn history(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Revision,
        to: Revision,
        max_revisions: usize,
    ) -> KvResult<Vec<(Revision, Vec<Event>)>> {
        let state = self
            .0
            .state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state
            .mvcc
            .history(&state.store, key, range_end, from, to, max_revisions)
    }
}

fn unexpected(applied: Applied) -> KvError {
    KvError::Storage(format!("unexpected apply result {applied:?}"))
}

#[async_trait]
impl KvBackend for MemBackend {
    async fn range(&self, req: RangeRequest) -> KvResult<RangeResponse> {
        let state = self.read();
        let resp = state.mvcc.range(&state.store, &req)?;
        Ok(RangeResponse {
            header: self.header(resp.header.revision),
            ..resp
        })
    }

    async fn put(&self, req: PutRequest) -> KvResult<PutResponse> {
        match self.apply(&Command::Put(req))? {
            Applied::Put(resp) => Ok(PutResponse {
                header: self.header(resp.header.revision),
                ..resp
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn delete_range(&self, req: DeleteRangeRequest) -> KvResult<DeleteRangeResponse> {
        match self.apply(&Command::DeleteRange(req))? {
            Applied::DeleteRange(resp) => Ok(DeleteRangeResponse {
                header: self.header(resp.header.revision),
                ..resp
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn txn(&self, req: TxnRequest) -> KvResult<TxnResponse> {
        match self.apply(&Command::Txn(req))? {
            Applied::Txn(resp) => Ok(TxnResponse {
                header: self.header(resp.header.revision),
                ..resp
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn compact(&self, req: CompactionRequest) -> KvResult<ResponseHeader> {
        match self.apply(&Command::Compact(req))? {
            Applied::Compact(header) => Ok(self.header(header.revision)),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_grant(&self, id: LeaseId, ttl: i64) -> KvResult<LeaseGrantResponse> {
        let id = if id == 0 {
            rand::random::<i64>() & i64::MAX
        } else {
            id
        };
        let ttl = ttl.max(self.inner.config.min_lease_ttl_secs);
        match self.apply(&Command::LeaseGrant { id: id.max(1), ttl })? {
            Applied::LeaseGrant(resp) => Ok(LeaseGrantResponse {
                header: self.header(resp.header.revision),
                ..resp
            }),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> KvResult<ResponseHeader> {
        match self.apply(&Command::LeaseRevoke { id })? {
            Applied::LeaseRevoke(header) => Ok(self.header(header.revision)),
            other => Err(unexpected(other)),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> KvResult<LeaseKeepAliveResponse> {
        let leases = self.read().mvcc.leases();
        let mut lessor = self.inner.lessor.lock().await;
        lessor.sync(&leases, Instant::now());
        let ttl = lessor.keep_alive(id, Instant::now()).unwrap_or(0);
        Ok(LeaseKeepAliveResponse {
            header: self.header(self.read().mvcc.revision()),
            id,
            ttl,
        })
    }

    async fn lease_time_to_live(
        &self,
        id: LeaseId,
        keys: bool,
    ) -> KvResult<LeaseTimeToLiveResponse> {
        let (granted, attached, revision, leases) = {
            let state = self.read();
            let lease = state.mvcc.lease(id);
            (
                lease.clone().map(|l| l.0),
                lease.map(|l| l.1),
                state.mvcc.revision(),
                state.mvcc.leases(),
            )
        };
        let mut lessor = self.inner.lessor.lock().await;
        lessor.sync(&leases, Instant::now());
        let header = self.header(revision);
        match granted {
            None => Ok(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                ..Default::default()
            }),
            Some(granted_ttl) => Ok(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: lessor.remaining_secs(id, Instant::now()).unwrap_or(-1),
                granted_ttl,
                keys: if keys {
                    attached.unwrap_or_default()
                } else {
                    Vec::new()
                },
            }),
        }
    }

    async fn lease_leases(&self) -> KvResult<LeaseLeasesResponse> {
        let state = self.read();
        Ok(LeaseLeasesResponse {
            header: self.header(state.mvcc.revision()),
            leases: state.mvcc.leases().into_iter().map(|(id, _)| id).collect(),
        })
    }

    async fn watch(&self, req: WatchRequest) -> KvResult<WatchStream> {
        let history = Arc::new(MemHistory(self.inner.clone()));
        Ok(self.inner.hub.watch(req, history).into_stream())
    }

    async fn current_header(&self) -> KvResult<ResponseHeader> {
        Ok(self.header(self.read().mvcc.revision()))
    }

    async fn member_list(&self) -> KvResult<MemberList> {
        Ok(MemberList {
            header: self.header(0),
            members: vec![self.self_member()],
        })
    }

    async fn member_add(&self, _: Vec<String>, _: bool) -> KvResult<(MemberInfo, MemberList)> {
        Err(KvError::Unsupported(
            "member add on an in-memory store".into(),
        ))
    }

    async fn member_remove(&self, id: NodeId) -> KvResult<MemberList> {
        Err(KvError::MemberNotFound { id })
    }

    async fn member_promote(&self, _: NodeId) -> KvResult<MemberList> {
        Err(KvError::MemberNotLearner)
    }

    async fn status(&self) -> KvResult<StatusResponse> {
        let state = self.read();
        Ok(StatusResponse {
            header: self.header(state.mvcc.revision()),
            version: crate::ETCD_VERSION.into(),
            db_size: state.store.bytes as i64,
            db_size_in_use: state.store.bytes as i64,
            leader: self.inner.config.member_id,
            raft_index: state.mvcc.revision() as u64,
            raft_term: 1,
            raft_applied_index: state.mvcc.revision() as u64,
            errors: Vec::new(),
            is_learner: false,
        })
    }

    async fn alarm(
        &self,
        action: AlarmAction,
        member_id: NodeId,
        alarm: Option<AlarmType>,
    ) -> KvResult<(ResponseHeader, Vec<AlarmMember>)> {
        let alarms = match (action, alarm) {
            (AlarmAction::Get, _) | (_, None) => self.read().mvcc.alarms(),
            (action, Some(alarm)) => match self.apply(&Command::Alarm {
                action,
                member_id,
                alarm,
            })? {
                Applied::Alarm(alarms) => alarms,
                other => return Err(unexpected(other)),
            },
        };
        Ok((self.header(self.read().mvcc.revision()), alarms))
    }

    async fn defragment(&self) -> KvResult<ResponseHeader> {
        Ok(self.header(self.read().mvcc.revision()))
    }

    async fn snapshot(&self) -> KvResult<SnapshotStream> {
        let state = self.read();
        let records: Vec<(Rev, Record)> = state
            .store
            .records
            .iter()
            .map(|(rev, record)| (*rev, record.clone()))
            .collect();
        let bytes = postcard::to_stdvec(&(state.mvcc.meta(), records))
            .map_err(|e| KvError::Storage(e.to_string()))?;
        Ok(SnapshotStream {
            size: bytes.len() as u64,
            chunks: Box::pin(futures::stream::iter([Ok(bytes)])),
        })
    }
}

impl MemBackend {
    fn self_member(&self) -> MemberInfo {
        MemberInfo {
            id: self.inner.config.member_id,
            member: Member {
                name: "memory".into(),
                ..Member::default()
            },
            is_learner: false,
        }
    }
}
