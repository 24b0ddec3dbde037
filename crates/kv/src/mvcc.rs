//! The MVCC model: applies commands to the key index and produces the writes a backend must
//! persist, the response, and the watch events. Pure: all reads go through [`RevStore`] and all
//! writes come back as [`Changes`], so the same model runs on RocksDB and in memory.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use hanode_types::{LeaseId, NodeId, Revision};

use crate::api::*;
use crate::error::{KvError, KvResult};
use crate::index::{KeyAt, Rev, TreeIndex, in_range};

/// etcd's `--max-txn-ops` default.
pub const MAX_TXN_OPS: usize = 128;

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000;

/// What is stored under a revision: the key-value written then, or a delete marker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The key-value as of this write (only key and mod revision for a tombstone).
    pub kv: KeyValue,
    /// True when this write deleted the key.
    pub tombstone: bool,
}

impl Record {
    /// Serialized form, as backends store it.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("records always serialize")
    }

    /// Inverse of [`Record::encode`].
    pub fn decode(bytes: &[u8]) -> KvResult<Record> {
        postcard::from_bytes(bytes).map_err(|e| KvError::Storage(format!("corrupt record: {e}")))
    }
}

/// Read access to stored records, by revision.
pub trait RevStore {
    /// The record written at `rev`, if still held.
    fn get(&self, rev: Rev) -> KvResult<Option<Record>>;

    /// Calls `visit` with every record at or after `from`, ascending, until it returns false.
    fn scan_from(&self, from: Rev, visit: &mut dyn FnMut(Rev, Record) -> bool) -> KvResult<()>;
}

/// A replicated write, the payload of one log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// etcd Put.
    Put(PutRequest),
    /// etcd DeleteRange.
    DeleteRange(DeleteRangeRequest),
    /// etcd Txn.
    Txn(TxnRequest),
    /// etcd Compact.
    Compact(CompactionRequest),
    /// Grant a lease; the proposer chose the id.
    LeaseGrant {
        /// Lease id (non-zero).
        id: LeaseId,
        /// TTL in seconds.
        ttl: i64,
    },
    /// Revoke a lease (also how the leader expires one), deleting its keys.
    LeaseRevoke {
        /// Lease id.
        id: LeaseId,
    },
    /// Raise or clear an alarm.
    Alarm {
        /// Activate or deactivate (`Get` is answered without a command).
        action: AlarmAction,
        /// Member the alarm is about (0 = every member, for deactivate).
        member_id: NodeId,
        /// Kind of alarm.
        alarm: AlarmType,
    },
}

impl Command {
    /// Whether the command adds data, so the space quota applies to it.
    pub fn costs_space(&self) -> bool {
        match self {
            Command::Put(_) | Command::LeaseGrant { .. } => true,
            Command::Txn(txn) => txn_has_put(txn),
            _ => false,
        }
    }
}

fn txn_has_put(txn: &TxnRequest) -> bool {
    txn.success.iter().chain(&txn.failure).any(|op| match op {
        RequestOp::Put(_) => true,
        RequestOp::Txn(inner) => txn_has_put(inner),
        _ => false,
    })
}

/// The result of applying a [`Command`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Result of a put.
    Put(PutResponse),
    /// Result of a delete.
    DeleteRange(DeleteRangeResponse),
    /// Result of a transaction.
    Txn(TxnResponse),
    /// Result of a compaction.
    Compact(ResponseHeader),
    /// Result of a lease grant.
    LeaseGrant(LeaseGrantResponse),
    /// Result of a lease revoke.
    LeaseRevoke(ResponseHeader),
    /// The alarms after the change.
    Alarm(Vec<AlarmMember>),
}

/// Small state persisted with every applied batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Current store revision.
    pub revision: Revision,
    /// Revision the history is compacted to (0 = never).
    pub compacted: Revision,
    /// Active alarms.
    pub alarms: Vec<AlarmMember>,
}

/// Writes produced by applying commands, for the backend to persist atomically.
#[derive(Debug, Default)]
pub struct Changes {
    /// Records to store.
    pub puts: BTreeMap<Rev, Record>,
    /// Records to delete (compacted away).
    pub deletes: Vec<Rev>,
    /// Leases granted: id to TTL seconds.
    pub lease_puts: BTreeMap<LeaseId, i64>,
    /// Leases removed.
    pub lease_deletes: Vec<LeaseId>,
    /// Watch events, one batch per revision, in order.
    pub events: Vec<(Revision, Vec<Event>)>,
}

impl Changes {
    /// True when nothing needs to be persisted or published.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty()
            && self.deletes.is_empty()
            && self.lease_puts.is_empty()
            && self.lease_deletes.is_empty()
            && self.events.is_empty()
    }
}

#[derive(Clone, Debug, Default)]
struct LeaseState {
    ttl: i64,
    keys: BTreeSet<Vec<u8>>,
}

/// Records written by commands applied so far but not yet persisted, read before the store.
struct View<'a> {
    store: &'a dyn RevStore,
    pending: &'a BTreeMap<Rev, Record>,
}

impl View<'_> {
    fn get(&self, rev: Rev) -> KvResult<Record> {
        if let Some(record) = self.pending.get(&rev) {
            return Ok(record.clone());
        }
        self.store.get(rev)?.ok_or_else(|| {
            KvError::Storage(format!(
                "record at revision {}/{} is missing",
                rev.main, rev.sub
            ))
        })
    }
}

/// The write context of one command: every write in it shares one main revision.
struct WriteTxn {
    main: Revision,
    sub: i64,
    events: Vec<Event>,
}

impl WriteTxn {
    fn next_rev(&mut self) -> Rev {
        let rev = Rev::new(self.main, self.sub);
        self.sub += 1;
        rev
    }
}

/// The whole MVCC state except values: key index, revisions, leases and alarms.
#[derive(Clone, Debug)]
pub struct Mvcc {
    index: TreeIndex,
    revision: Revision,
    compacted: Revision,
    leases: BTreeMap<LeaseId, LeaseState>,
    alarms: BTreeSet<AlarmMember>,
}

impl Default for Mvcc {
    fn default() -> Self {
        Mvcc {
            index: TreeIndex::default(),
            revision: 1,
            compacted: 0,
            leases: BTreeMap::new(),
            alarms: BTreeSet::new(),
        }
    }
}

impl Mvcc {
    /// An empty store at revision 1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the model from persisted meta, every stored record and the lease table.
    pub fn restore(
        meta: &Meta,
        store: &dyn RevStore,
        leases: impl IntoIterator<Item = (LeaseId, i64)>,
    ) -> KvResult<Mvcc> {
        let mut mvcc = Mvcc {
            revision: meta.revision.max(1),
            compacted: meta.compacted,
            alarms: meta.alarms.iter().copied().collect(),
            ..Mvcc::default()
        };
        for (id, ttl) in leases {
            mvcc.leases.insert(
                id,
                LeaseState {
                    ttl,
                    keys: BTreeSet::new(),
                },
            );
        }
        let mut key_lease: BTreeMap<Vec<u8>, LeaseId> = BTreeMap::new();
        let mut last = Rev::default();
        store.scan_from(Rev::default(), &mut |rev, record| {
            last = rev;
            if record.tombstone {
                mvcc.index.tombstone(&record.kv.key, rev);
                key_lease.remove(&record.kv.key);
            } else {
                mvcc.index.put(&record.kv.key, rev);
                if record.kv.lease != 0 {
                    key_lease.insert(record.kv.key, record.kv.lease);
                } else {
                    key_lease.remove(&record.kv.key);
                }
            }
            true
        })?;
        mvcc.revision = mvcc.revision.max(last.main);
        for (key, lease) in key_lease {
            if let Some(state) = mvcc.leases.get_mut(&lease) {
                state.keys.insert(key);
            }
        }
        Ok(mvcc)
    }

    /// The persisted part of the state.
    pub fn meta(&self) -> Meta {
        Meta {
            revision: self.revision,
            compacted: self.compacted,
            alarms: self.alarms.iter().copied().collect(),
        }
    }

    /// Current store revision.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Revision the history is compacted to (0 = never).
    pub fn compacted(&self) -> Revision {
        self.compacted
    }

    /// Active alarms.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.iter().copied().collect()
    }

    /// Live leases with their granted TTLs.
    pub fn leases(&self) -> Vec<(LeaseId, i64)> {
        self.leases
            .iter()
            .map(|(id, state)| (*id, state.ttl))
            .collect()
    }

    /// Granted TTL of one lease, without its keys.
    pub fn lease_ttl(&self, id: LeaseId) -> Option<i64> {
        self.leases.get(&id).map(|state| state.ttl)
    }

    /// Granted TTL and attached keys of one lease.
    pub fn lease(&self, id: LeaseId) -> Option<(i64, Vec<Vec<u8>>)> {
        self.leases
            .get(&id)
            .map(|state| (state.ttl, state.keys.iter().cloned().collect()))
    }

    /// Number of keys with history in the index (for metrics).
    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    fn header(&self) -> ResponseHeader {
        ResponseHeader {
            revision: self.revision,
            ..ResponseHeader::default()
        }
    }

    /// Applies one command. On error nothing changed. `changes` accumulates across calls until
    /// the backend persists it; records in it are visible to later commands.
    pub fn apply(
        &mut self,
        store: &dyn RevStore,
        command: &Command,
        changes: &mut Changes,
    ) -> KvResult<Applied> {
        if command.costs_space() && self.alarms.iter().any(|a| a.alarm == AlarmType::NoSpace) {
            return Err(KvError::NoSpace);
        }
        match command {
            Command::Put(req) => {
                check_put(req)?;
                let mut txn = self.begin();
                self.check_put_state(req, store, changes)?;
                let resp = self.put(&mut txn, req, store, changes)?;
                self.commit(txn, changes);
                Ok(Applied::Put(PutResponse {
                    header: self.header(),
                    ..resp
                }))
            }
            Command::DeleteRange(req) => {
                check_key(&req.key)?;
                let mut txn = self.begin();
                let resp = self.delete_range(&mut txn, req, store, changes)?;
                self.commit(txn, changes);
                Ok(Applied::DeleteRange(DeleteRangeResponse {
                    header: self.header(),
                    ..resp
                }))
            }
            Command::Txn(req) => {
                check_txn(req)?;
                let mut txn = self.begin();
                let resp = self.txn(&mut txn, req, store, changes)?;
                self.commit(txn, changes);
                Ok(Applied::Txn(TxnResponse {
                    header: self.header(),
                    ..resp
                }))
            }
            Command::Compact(req) => {
                self.compact(req.revision, changes)?;
                Ok(Applied::Compact(self.header()))
            }
            Command::LeaseGrant { id, ttl } => {
                if *id <= 0 {
                    return Err(KvError::InvalidArgument("lease id must be positive".into()));
                }
                if *ttl > MAX_LEASE_TTL_SECS {
                    return Err(KvError::LeaseTtlTooLarge);
                }
                if self.leases.contains_key(id) {
                    return Err(KvError::LeaseExists { id: *id });
                }
                self.leases.insert(
                    *id,
                    LeaseState {
                        ttl: *ttl,
                        keys: BTreeSet::new(),
                    },
                );
                changes.lease_puts.insert(*id, *ttl);
                changes.lease_deletes.retain(|gone| gone != id);
                Ok(Applied::LeaseGrant(LeaseGrantResponse {
                    header: self.header(),
                    id: *id,
                    ttl: *ttl,
                }))
            }
            Command::LeaseRevoke { id } => {
                let state = self
                    .leases
                    .get(id)
                    .ok_or(KvError::LeaseNotFound { id: *id })?;
                let keys: Vec<Vec<u8>> = state.keys.iter().cloned().collect();
                let mut txn = self.begin();
                for key in keys {
                    let req = DeleteRangeRequest {
                        key,
                        ..DeleteRangeRequest::default()
                    };
                    self.delete_range(&mut txn, &req, store, changes)?;
                }
                self.leases.remove(id);
                changes.lease_puts.remove(id);
                changes.lease_deletes.push(*id);
                self.commit(txn, changes);
                Ok(Applied::LeaseRevoke(self.header()))
            }
            Command::Alarm {
                action,
                member_id,
                alarm,
            } => {
                match action {
                    AlarmAction::Get => {}
                    AlarmAction::Activate => {
                        self.alarms.insert(AlarmMember {
                            member_id: *member_id,
                            alarm: *alarm,
                        });
                    }
                    AlarmAction::Deactivate => self.alarms.retain(|a| {
                        !(a.alarm == *alarm && (*member_id == 0 || a.member_id == *member_id))
                    }),
                }
                Ok(Applied::Alarm(self.alarms()))
            }
        }
    }

    fn begin(&self) -> WriteTxn {
        WriteTxn {
            main: self.revision + 1,
            sub: 0,
            events: Vec::new(),
        }
    }

    /// Makes the transaction's writes the new revision, if it wrote anything.
    fn commit(&mut self, txn: WriteTxn, changes: &mut Changes) {
        if txn.sub > 0 {
            self.revision = txn.main;
            changes.events.push((txn.main, txn.events));
        }
    }

    /// The live key-value of `key` as a write transaction sees it.
    fn current(
        &self,
        key: &[u8],
        store: &dyn RevStore,
        changes: &Changes,
    ) -> KvResult<Option<KeyValue>> {
        // Writes of the running transaction are already in the index at `revision + 1`.
        match self.index.get(key, self.revision + 1) {
            Some(at) => Ok(Some(
                View {
                    store,
                    pending: &changes.puts,
                }
                .get(at.rev)?
                .kv,
            )),
            None => Ok(None),
        }
    }

    fn check_put_state(
        &self,
        req: &PutRequest,
        store: &dyn RevStore,
        changes: &Changes,
    ) -> KvResult<()> {
        if req.lease != 0 && !self.leases.contains_key(&req.lease) {
            return Err(KvError::LeaseNotFound { id: req.lease });
        }
        if (req.ignore_value || req.ignore_lease)
            && self.current(&req.key, store, changes)?.is_none()
        {
            return Err(KvError::KeyNotFound);
        }
        Ok(())
    }

    fn put(
        &mut self,
        txn: &mut WriteTxn,
        req: &PutRequest,
        store: &dyn RevStore,
        changes: &mut Changes,
    ) -> KvResult<PutResponse> {
        let prev = self.current(&req.key, store, changes)?;
        let at: Option<KeyAt> = self.index.get(&req.key, self.revision + 1);
        let rev = txn.next_rev();
        let (create_revision, version) = match at {
            Some(at) => (at.created.main, at.version + 1),
            None => (rev.main, 1),
        };
        let value = match (&prev, req.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => req.lease,
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision,
            mod_revision: rev.main,
            version,
            value,
            lease,
        };
        let prev_lease = prev.as_ref().map_or(0, |p| p.lease);
        if prev_lease != 0
            && prev_lease != lease
            && let Some(state) = self.leases.get_mut(&prev_lease)
        {
            state.keys.remove(&req.key);
        }
        if lease != 0
            && let Some(state) = self.leases.get_mut(&lease)
        {
            state.keys.insert(req.key.clone());
        }
        self.index.put(&req.key, rev);
        changes.puts.insert(
            rev,
            Record {
                kv: kv.clone(),
                tombstone: false,
            },
        );
        txn.events.push(Event {
            kind: EventType::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            header: ResponseHeader::default(),
            prev_kv: if req.prev_kv { prev } else { None },
        })
    }

    fn delete_range(
        &mut self,
        txn: &mut WriteTxn,
        req: &DeleteRangeRequest,
        store: &dyn RevStore,
        changes: &mut Changes,
    ) -> KvResult<DeleteRangeResponse> {
        let hits: Vec<(Vec<u8>, KeyAt)> = self
            .index
            .range(&req.key, &req.range_end, self.revision + 1)
            .map(|(key, at)| (key.to_vec(), at))
            .collect();
        let mut resp = DeleteRangeResponse::default();
        for (key, at) in hits {
            let prev = View {
                store,
                pending: &changes.puts,
            }
            .get(at.rev)?
            .kv;
            let rev = txn.next_rev();
            let removed = self.index.tombstone(&key, rev);
            debug_assert!(removed, "range only yields live keys");
            if prev.lease != 0
                && let Some(state) = self.leases.get_mut(&prev.lease)
            {
                state.keys.remove(&key);
            }
            let kv = KeyValue {
                key: key.clone(),
                mod_revision: rev.main,
                ..KeyValue::default()
            };
            changes.puts.insert(
                rev,
                Record {
                    kv: kv.clone(),
                    tombstone: true,
                },
            );
            txn.events.push(Event {
                kind: EventType::Delete,
                kv,
                prev_kv: Some(prev.clone()),
            });
            resp.deleted += 1;
            if req.prev_kv {
                resp.prev_kvs.push(prev);
            }
        }
        Ok(resp)
    }

    fn txn(
        &mut self,
        txn: &mut WriteTxn,
        req: &TxnRequest,
        store: &dyn RevStore,
        changes: &mut Changes,
    ) -> KvResult<TxnResponse> {
        let mut succeeded = true;
        for compare in &req.compare {
            if !self.compare_holds(compare, store, changes)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        self.check_ops(ops, store, changes)?;
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let resp = match op {
                RequestOp::Range(range) => {
                    let view_rev = if txn.sub > 0 { txn.main } else { self.revision };
                    let mut resp = self.range_at(store, Some(&changes.puts), range, view_rev)?;
                    resp.header = ResponseHeader {
                        revision: view_rev,
                        ..resp.header
                    };
                    ResponseOp::Range(resp)
                }
                RequestOp::Put(put) => ResponseOp::Put(self.put(txn, put, store, changes)?),
                RequestOp::DeleteRange(del) => {
                    ResponseOp::DeleteRange(self.delete_range(txn, del, store, changes)?)
                }
                RequestOp::Txn(inner) => ResponseOp::Txn(self.txn(txn, inner, store, changes)?),
            };
            responses.push(resp);
        }
        let revision = if txn.sub > 0 { txn.main } else { self.revision };
        for resp in &mut responses {
            match resp {
                ResponseOp::Put(r) => r.header.revision = revision,
                ResponseOp::DeleteRange(r) => r.header.revision = revision,
                ResponseOp::Txn(r) => r.header.revision = revision,
                ResponseOp::Range(_) => {}
            }
        }
        Ok(TxnResponse {
            header: ResponseHeader::default(),
            succeeded,
            responses,
        })
    }

    /// Validates the chosen branch before anything is written, so a failing transaction
    /// leaves no partial writes (nested branches are decided on the current state, like etcd).
    fn check_ops(
        &self,
        ops: &[RequestOp],
        store: &dyn RevStore,
        changes: &Changes,
    ) -> KvResult<()> {
        for op in ops {
            match op {
                RequestOp::Put(put) => self.check_put_state(put, store, changes)?,
                RequestOp::Txn(inner) => {
                    let mut holds = true;
                    for compare in &inner.compare {
                        if !self.compare_holds(compare, store, changes)? {
                            holds = false;
                            break;
                        }
                    }
                    let branch = if holds {
                        &inner.success
                    } else {
                        &inner.failure
                    };
                    self.check_ops(branch, store, changes)?;
                }
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
            }
        }
        Ok(())
    }

    fn compare_holds(
        &self,
        compare: &Compare,
        store: &dyn RevStore,
        changes: &Changes,
    ) -> KvResult<bool> {
        let at = self.revision;
        let keys: Vec<(Vec<u8>, KeyAt)> = if compare.range_end.is_empty() {
            self.index
                .get(&compare.key, at)
                .map(|k| (compare.key.clone(), k))
                .into_iter()
                .collect()
        } else {
            self.index
                .range(&compare.key, &compare.range_end, at)
                .map(|(k, at)| (k.to_vec(), at))
                .collect()
        };
        if keys.is_empty() {
            // A missing key compares as zero for numeric targets; a value compare never holds.
            return Ok(match &compare.target {
                CompareTarget::Value(_) => false,
                CompareTarget::Version(v)
                | CompareTarget::Create(v)
                | CompareTarget::Mod(v)
                | CompareTarget::Lease(v) => relation_holds(compare.result, 0i64.cmp(v)),
            });
        }
        let view = View {
            store,
            pending: &changes.puts,
        };
        for (_, at) in keys {
            let ordering = match &compare.target {
                CompareTarget::Version(v) => at.version.cmp(v),
                CompareTarget::Create(v) => at.created.main.cmp(v),
                CompareTarget::Mod(v) => at.rev.main.cmp(v),
                CompareTarget::Value(v) => view.get(at.rev)?.kv.value.as_slice().cmp(v.as_slice()),
                CompareTarget::Lease(v) => view.get(at.rev)?.kv.lease.cmp(v),
            };
            if !relation_holds(compare.result, ordering) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn compact(&mut self, revision: Revision, changes: &mut Changes) -> KvResult<()> {
        if revision <= self.compacted {
            return Err(KvError::Compacted {
                compact_revision: self.compacted,
            });
        }
        if revision > self.revision {
            return Err(KvError::FutureRevision);
        }
        self.compacted = revision;
        for rev in self.index.compact(revision) {
            // A record written earlier in this same batch is simply never stored.
            if changes.puts.remove(&rev).is_none() {
                changes.deletes.push(rev);
            }
        }
        Ok(())
    }

    /// Serves a range at the current revision or a historic one (`req.revision`).
    pub fn range(&self, store: &dyn RevStore, req: &RangeRequest) -> KvResult<RangeResponse> {
        check_key(&req.key)?;
        let mut resp = self.range_at(store, None, req, self.revision)?;
        resp.header = self.header();
        Ok(resp)
    }

    fn range_at(
        &self,
        store: &dyn RevStore,
        pending: Option<&BTreeMap<Rev, Record>>,
        req: &RangeRequest,
        current: Revision,
    ) -> KvResult<RangeResponse> {
        let at = if req.revision <= 0 {
            current
        } else {
            req.revision
        };
        if at > current {
            return Err(KvError::FutureRevision);
        }
        if at < self.compacted {
            return Err(KvError::Compacted {
                compact_revision: self.compacted,
            });
        }
        let mut hits: Vec<KeyAt> = self
            .index
            .range(&req.key, &req.range_end, at)
            .map(|(_, at)| at)
            .collect();
        let count = hits.len() as i64;
        hits.retain(|k| {
            (req.min_mod_revision <= 0 || k.rev.main >= req.min_mod_revision)
                && (req.max_mod_revision <= 0 || k.rev.main <= req.max_mod_revision)
                && (req.min_create_revision <= 0 || k.created.main >= req.min_create_revision)
                && (req.max_create_revision <= 0 || k.created.main <= req.max_create_revision)
        });
        let mut resp = RangeResponse {
            count,
            ..RangeResponse::default()
        };
        if req.count_only {
            return Ok(resp);
        }
        let empty = BTreeMap::new();
        let view = View {
            store,
            pending: pending.unwrap_or(&empty),
        };
        let limit = if req.limit > 0 {
            req.limit as usize
        } else {
            usize::MAX
        };
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, _) => SortOrder::None,
            (SortOrder::Ascend, SortTarget::Key) => SortOrder::None,
            (order, _) => order,
        };
        let mut kvs: Vec<KeyValue> = if order == SortOrder::None {
            // Key order already; fetch only what the limit keeps.
            hits.iter()
                .take(limit)
                .map(|k| view.get(k.rev).map(|r| r.kv))
                .collect::<KvResult<_>>()?
        } else {
            let mut all: Vec<KeyValue> = hits
                .iter()
                .map(|k| view.get(k.rev).map(|r| r.kv))
                .collect::<KvResult<_>>()?;
            let key_of = |kv: &KeyValue| -> (Vec<u8>, i64) {
                match req.sort_target {
                    SortTarget::Key => (kv.key.clone(), 0),
                    SortTarget::Version => (Vec::new(), kv.version),
                    SortTarget::Create => (Vec::new(), kv.create_revision),
                    SortTarget::Mod => (Vec::new(), kv.mod_revision),
                    SortTarget::Value => (kv.value.clone(), 0),
                }
            };
            all.sort_by_key(|kv| key_of(kv));
            if order == SortOrder::Descend {
                all.reverse();
            }
            all.truncate(limit);
            all
        };
        resp.more = hits.len() > kvs.len();
        if req.keys_only {
            for kv in &mut kvs {
                kv.value.clear();
            }
        }
        resp.kvs = kvs;
        Ok(resp)
    }

    /// Watch events of revisions `from..=to` for keys in `[key, range_end)`, grouped per
    /// revision, at most `max_revisions` revisions. Errors with `Compacted` if `from` is gone.
    pub fn history(
        &self,
        store: &dyn RevStore,
        key: &[u8],
        range_end: &[u8],
        from: Revision,
        to: Revision,
        max_revisions: usize,
    ) -> KvResult<Vec<(Revision, Vec<Event>)>> {
        if from < self.compacted {
            return Err(KvError::Compacted {
                compact_revision: self.compacted,
            });
        }
        let mut out: Vec<(Revision, Vec<Event>)> = Vec::new();
        let mut failure = None;
        store.scan_from(Rev::new(from.max(0), 0), &mut |rev, record| {
            if rev.main > to {
                return false;
            }
            if !in_range(&record.kv.key, key, range_end) {
                return true;
            }
            if out.last().is_none_or(|(r, _)| *r != rev.main) {
                if out.len() == max_revisions {
                    return false;
                }
                out.push((rev.main, Vec::new()));
            }
            let prev_kv = match self.previous(store, &record.kv.key, rev) {
                Ok(prev) => prev,
                Err(e) => {
                    failure = Some(e);
                    return false;
                }
            };
            let kind = if record.tombstone {
                EventType::Delete
            } else {
                EventType::Put
            };
            if let Some((_, events)) = out.last_mut() {
                events.push(Event {
                    kind,
                    kv: record.kv,
                    prev_kv,
                });
            }
            true
        })?;
        match failure {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The key-value `key` had just before `rev`, if it existed and is still held.
    fn previous(&self, store: &dyn RevStore, key: &[u8], rev: Rev) -> KvResult<Option<KeyValue>> {
        // Writes to one key inside one revision are impossible (duplicate keys are refused),
        // so "before `rev`" is "at `rev.main - 1`".
        match self.index.get(key, rev.main - 1) {
            Some(at) => Ok(store.get(at.rev)?.map(|r| r.kv)),
            None => Ok(None),
        }
    }
}

fn relation_holds(result: CompareResult, ordering: std::cmp::Ordering) -> bool {
    use std::cmp::Ordering::*;
    match result {
        CompareResult::Equal => ordering == Equal,
        CompareResult::NotEqual => ordering != Equal,
        CompareResult::Greater => ordering == Greater,
        CompareResult::Less => ordering == Less,
    }
}

fn check_key(key: &[u8]) -> KvResult<()> {
    if key.is_empty() {
        Err(KvError::EmptyKey)
    } else {
        Ok(())
    }
}

fn check_put(req: &PutRequest) -> KvResult<()> {
    check_key(&req.key)?;
    if req.ignore_value && !req.value.is_empty() {
        return Err(KvError::InvalidArgument("value is provided".into()));
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(KvError::InvalidArgument("lease is provided".into()));
    }
    Ok(())
}

/// Checks a transaction's shape as etcd does before it is proposed: operation counts, keys
/// present, and no key written twice (two puts, or a put inside a deleted range).
pub fn check_txn(req: &TxnRequest) -> KvResult<()> {
    if req.compare.len() > MAX_TXN_OPS
        || req.success.len() > MAX_TXN_OPS
        || req.failure.len() > MAX_TXN_OPS
    {
        return Err(KvError::TooManyOps);
    }
    for compare in &req.compare {
        check_key(&compare.key)?;
    }
    for branch in [&req.success, &req.failure] {
        let mut puts = BTreeSet::new();
        let mut deletes = Vec::new();
        collect_writes(branch, &mut puts, &mut deletes)?;
        for (start, end) in &deletes {
            if puts.iter().any(|key| in_range(key, start, end)) {
                return Err(KvError::DuplicateKey);
            }
        }
    }
    Ok(())
}

fn collect_writes(
    ops: &[RequestOp],
    puts: &mut BTreeSet<Vec<u8>>,
    deletes: &mut Vec<(Vec<u8>, Vec<u8>)>,
) -> KvResult<()> {
    for op in ops {
        match op {
            RequestOp::Range(range) => check_key(&range.key)?,
            RequestOp::Put(put) => {
                check_put(put)?;
                if !puts.insert(put.key.clone()) {
                    return Err(KvError::DuplicateKey);
                }
            }
            RequestOp::DeleteRange(del) => {
                check_key(&del.key)?;
                deletes.push((del.key.clone(), del.range_end.clone()));
            }
            RequestOp::Txn(inner) => {
                check_txn(inner)?;
                // Either nested branch may run: both count against this branch's keys.
                let mut success_puts = puts.clone();
                collect_writes(&inner.success, &mut success_puts, deletes)?;
                let mut failure_puts = puts.clone();
                collect_writes(&inner.failure, &mut failure_puts, deletes)?;
                puts.extend(success_puts);
                puts.extend(failure_puts);
            }
        }
    }
    Ok(())
}
