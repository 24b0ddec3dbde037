//! The replicated state machine: the MVCC model over RocksDB, and snapshots as files.
//!
//! Applied batches are written without fsync: the log they came from is already durable (an
//! entry is applied only once the leader's copy is on disk, see [`crate::durability`]) and
//! shares the WAL, so a crash replays them. The in-memory key index is rebuilt from the
//! `revs` column family at startup.

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageIOError,
    StoredMembership,
};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use hanode_kv::{Changes, KvError, KvResult, Meta, Mvcc, Record, Rev, RevStore, WatchHub};
use hanode_types::{Member, NodeId};

use crate::db::{self, CF_LEASES, CF_META, CF_RAFT, CF_REVS, STATE_CFS};
use crate::durability::Durability;
use crate::types::{ApplyResult, Entry, LogId, StorageError, TypeConfig};

/// Largest key in any state column family, for whole-family deletes.
const KEY_SPACE_END: [u8; 64] = [0xff; 64];

/// Bytes written per batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// State guarded together: the model and what was last applied.
pub struct SmState {
    /// The MVCC model (key index, revisions, leases, alarms).
    pub mvcc: Mvcc,
    /// Last applied log id.
    pub last_applied: Option<LogId>,
    /// Last applied membership.
    pub membership: StoredMembership<NodeId, Member>,
}

/// What the state machine shares with the node's read paths.
pub struct Shared {
    /// The member's database.
    pub db: Arc<DB>,
    state: RwLock<SmState>,
    /// Watch fan-out.
    pub hub: Arc<WatchHub>,
}

impl Shared {
    /// Read access; reads of `revs` under this guard see exactly the indexed records.
    pub fn read(&self) -> RwLockReadGuard<'_, SmState> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, SmState> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Record reader over the database.
    pub fn revs(&self) -> DbRevs<'_> {
        DbRevs(&self.db)
    }
}

/// [`RevStore`] over the `revs` column family.
pub struct DbRevs<'a>(&'a DB);

impl RevStore for DbRevs<'_> {
    fn get(&self, rev: Rev) -> KvResult<Option<Record>> {
        match self
            .0
            .get_pinned_cf(db::cf(self.0, CF_REVS), rev.to_bytes())
        {
            Ok(Some(bytes)) => Ok(Some(Record::decode(&bytes)?)),
            Ok(None) => Ok(None),
            Err(e) => Err(KvError::Storage(e.to_string())),
        }
    }

    fn scan_from(&self, from: Rev, visit: &mut dyn FnMut(Rev, Record) -> bool) -> KvResult<()> {
        let start = from.to_bytes();
        let iter = self.0.iterator_cf(
            db::cf(self.0, CF_REVS),
            IteratorMode::From(&start, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| KvError::Storage(e.to_string()))?;
            let rev = Rev::from_bytes(&key)
                .ok_or_else(|| KvError::Storage("revision key is not 16 bytes".into()))?;
            if !visit(rev, Record::decode(&value)?) {
                break;
            }
        }
        Ok(())
    }
}

impl hanode_kv::History for Shared {
    fn history(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: hanode_types::Revision,
        to: hanode_types::Revision,
        max_revisions: usize,
    ) -> KvResult<Vec<(hanode_types::Revision, Vec<hanode_kv::Event>)>> {
        let state = self.read();
        state
            .mvcc
            .history(&self.revs(), key, range_end, from, to, max_revisions)
    }
}

/// Where the current snapshot is and what it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotInfo {
    meta: SnapshotMeta<NodeId, Member>,
    file: String,
    /// True while its data is being written into the state column families.
    installing: bool,
}

fn io_err(e: impl std::fmt::Display) -> StorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn load_state(db: &DB) -> Result<SmState, String> {
    let meta: Meta = db::get(db, CF_META, b"mvcc")?.unwrap_or_default();
    let last_applied: Option<LogId> = db::get::<Option<LogId>>(db, CF_META, b"applied")?.flatten();
    let membership = db::get(db, CF_META, b"membership")?.unwrap_or_default();
    let mut leases = Vec::new();
    for item in db.iterator_cf(db::cf(db, CF_LEASES), IteratorMode::Start) {
        let (key, value) = item.map_err(|e| e.to_string())?;
        let id = i64::from_be_bytes(
            key.as_ref()
                .try_into()
                .map_err(|_| "lease key is not 8 bytes")?,
        );
        let ttl: i64 = postcard::from_bytes(&value).map_err(|e| e.to_string())?;
        leases.push((id, ttl));
    }
    let mvcc = Mvcc::restore(&meta, &DbRevs(db), leases).map_err(|e| e.to_string())?;
    Ok(SmState {
        mvcc,
        last_applied,
        membership,
    })
}

/// The state machine openraft drives.
pub struct StateMachine {
    shared: Arc<Shared>,
    durability: Arc<Durability>,
    snapshot_dir: PathBuf,
    receiving: Option<PathBuf>,
}

impl StateMachine {
    /// Opens the state machine, finishing an interrupted snapshot install first.
    pub fn open(
        db: Arc<DB>,
        snapshot_dir: &Path,
        durability: Arc<Durability>,
    ) -> Result<StateMachine, String> {
        std::fs::create_dir_all(snapshot_dir)
            .map_err(|e| format!("{}: {e}", snapshot_dir.display()))?;
        if let Some(info) = db::get::<SnapshotInfo>(&db, CF_RAFT, b"snapshot")?
            && info.installing
        {
            tracing::warn!(snapshot = %info.meta.snapshot_id, "finishing an interrupted snapshot install");
            install_file(&db, &snapshot_dir.join(&info.file), &info)?;
        }
        let state = load_state(&db)?;
        let hub = WatchHub::new(state.mvcc.revision());
        Ok(StateMachine {
            shared: Arc::new(Shared {
                db,
                state: RwLock::new(state),
                hub,
            }),
            durability,
            snapshot_dir: snapshot_dir.to_path_buf(),
            receiving: None,
        })
    }

    /// The part shared with read paths.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

/// Writes an applied batch: records, leases, MVCC meta, last applied and membership.
fn persist(db: &DB, changes: &Changes, state: &SmState) -> Result<(), rocksdb::Error> {
    let mut batch = WriteBatch::default();
    let revs = db::cf(db, CF_REVS);
    for (rev, record) in &changes.puts {
        batch.put_cf(revs, rev.to_bytes(), record.encode());
    }
    for rev in &changes.deletes {
        batch.delete_cf(revs, rev.to_bytes());
    }
    let leases = db::cf(db, CF_LEASES);
    for (id, ttl) in &changes.lease_puts {
        batch.put_cf(leases, id.to_be_bytes(), db::encode(ttl));
    }
    for id in &changes.lease_deletes {
        batch.delete_cf(leases, id.to_be_bytes());
    }
    let meta = db::cf(db, CF_META);
    batch.put_cf(meta, b"mvcc", db::encode(&state.mvcc.meta()));
    batch.put_cf(meta, b"applied", db::encode(&state.last_applied));
    batch.put_cf(meta, b"membership", db::encode(&state.membership));
    db.write(batch)
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, Member>), StorageError> {
        let state = self.shared.read();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            // Committed may mean "on a quorum counting the leader's unsynced copy": wait for
            // that copy before anyone can see the entry applied.
            self.durability
                .wait_for(last.log_id.index)
                .await
                .map_err(|e| StorageIOError::apply(last.log_id, AnyError::error(e)))?;
        }
        let shared = &self.shared;
        let mut state = shared.write();
        let mut changes = Changes::default();
        let mut results = Vec::new();
        for entry in entries {
            state.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(ApplyResult(Vec::new())),
                EntryPayload::Normal(proposal) => {
                    let mut outcomes = Vec::with_capacity(proposal.0.len());
                    for command in &proposal.0 {
                        let result = state.mvcc.apply(&shared.revs(), command, &mut changes);
                        if let Err(KvError::Storage(reason)) = &result {
                            // The model may be half-way through this command: stop rather than
                            // diverge.
                            tracing::error!(index = entry.log_id.index, %reason, "apply failed");
                            return Err(StorageIOError::apply(
                                entry.log_id,
                                AnyError::error(reason),
                            )
                            .into());
                        }
                        outcomes.push(result);
                    }
                    results.push(ApplyResult(outcomes));
                }
                EntryPayload::Membership(membership) => {
                    state.membership = StoredMembership::new(Some(entry.log_id), membership);
                    results.push(ApplyResult(Vec::new()));
                }
            }
        }
        persist(&shared.db, &changes, &state).map_err(io_err)?;
        for (revision, events) in changes.events {
            shared.hub.publish(revision, events);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            shared: self.shared.clone(),
            dir: self.snapshot_dir.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self
            .snapshot_dir
            .join(format!("receiving-{:016x}.part", rand::random::<u64>()));
        let file = tokio::fs::File::create(&path).await.map_err(io_err)?;
        if let Some(old) = self.receiving.replace(path) {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        snapshot.flush().await.map_err(io_err)?;
        snapshot.sync_all().await.map_err(io_err)?;
        drop(snapshot);
        let received = self
            .receiving
            .take()
            .ok_or_else(|| io_err("install_snapshot without begin_receiving_snapshot"))?;
        let file = snapshot_file_name(meta);
        std::fs::rename(&received, self.snapshot_dir.join(&file)).map_err(io_err)?;
        sync_dir(&self.snapshot_dir).map_err(io_err)?;
        let info = SnapshotInfo {
            meta: meta.clone(),
            file,
            installing: true,
        };
        let shared = self.shared.clone();
        let dir = self.snapshot_dir.clone();
        tracing::info!(snapshot = %meta.snapshot_id, "installing snapshot from the leader");
        let mut state = shared.write();
        install_file(&shared.db, &dir.join(&info.file), &info).map_err(io_err)?;
        *state = load_state(&shared.db).map_err(io_err)?;
        shared.hub.reset(state.mvcc.revision());
        drop(state);
        remove_other_snapshots(&dir, &info.file);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(info) =
            db::get::<SnapshotInfo>(&self.shared.db, CF_RAFT, b"snapshot").map_err(io_err)?
        else {
            return Ok(None);
        };
        let file = tokio::fs::File::open(self.snapshot_dir.join(&info.file))
            .await
            .map_err(io_err)?;
        Ok(Some(Snapshot {
            meta: info.meta,
            snapshot: Box::new(file),
        }))
    }
}

fn snapshot_file_name(meta: &SnapshotMeta<NodeId, Member>) -> String {
    format!("{}.snap", meta.snapshot_id.replace(['/', ' '], "_"))
}

fn remove_other_snapshots(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".snap") && name != keep {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Snapshot file format: a magic line, then records `[cf u8][key len u32][key][value len
/// u32][value]` for every state column family, then a 0xff byte.
const SNAPSHOT_MAGIC: &[u8; 16] = b"hanode-snap-v1\n\0";

/// Writes every state column family, as seen by one RocksDB snapshot, to `out`.
pub(crate) fn write_snapshot_data(
    db: &DB,
    view: &rocksdb::Snapshot<'_>,
    out: &mut impl Write,
) -> std::io::Result<()> {
    out.write_all(SNAPSHOT_MAGIC)?;
    for (tag, name) in STATE_CFS.iter().enumerate() {
        for item in view.iterator_cf(db::cf(db, name), IteratorMode::Start) {
            let (key, value) = item.map_err(std::io::Error::other)?;
            out.write_all(&[tag as u8])?;
            out.write_all(&(key.len() as u32).to_be_bytes())?;
            out.write_all(&key)?;
            out.write_all(&(value.len() as u32).to_be_bytes())?;
            out.write_all(&value)?;
        }
    }
    out.write_all(&[0xff])
}

fn read_exact_vec(input: &mut impl Read, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0; len];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

/// Replaces the state column families with a snapshot file's content.
fn install_file(db: &DB, path: &Path, info: &SnapshotInfo) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("snapshot {}: {e}", path.display());
    db.put_cf(db::cf(db, CF_RAFT), b"snapshot", db::encode(info))
        .map_err(|e| e.to_string())?;
    let mut clear = WriteBatch::default();
    for name in STATE_CFS {
        clear.delete_range_cf(db::cf(db, name), &[][..], &KEY_SPACE_END[..]);
    }
    db.write(clear).map_err(|e| e.to_string())?;
    let mut input = BufReader::new(std::fs::File::open(path).map_err(fail)?);
    let magic = read_exact_vec(&mut input, SNAPSHOT_MAGIC.len()).map_err(fail)?;
    if magic != SNAPSHOT_MAGIC {
        return Err(format!(
            "snapshot {}: not a hanode snapshot",
            path.display()
        ));
    }
    let mut batch = WriteBatch::default();
    loop {
        let mut tag = [0u8; 1];
        input.read_exact(&mut tag).map_err(fail)?;
        if tag[0] == 0xff {
            break;
        }
        let name = STATE_CFS
            .get(tag[0] as usize)
            .ok_or_else(|| format!("snapshot {}: bad column tag {}", path.display(), tag[0]))?;
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(fail)?;
        let key = read_exact_vec(&mut input, u32::from_be_bytes(len) as usize).map_err(fail)?;
        input.read_exact(&mut len).map_err(fail)?;
        let value = read_exact_vec(&mut input, u32::from_be_bytes(len) as usize).map_err(fail)?;
        batch.put_cf(db::cf(db, name), key, value);
        if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch))
                .map_err(|e| e.to_string())?;
        }
    }
    let meta = db::cf(db, CF_META);
    batch.put_cf(meta, b"applied", db::encode(&info.meta.last_log_id));
    batch.put_cf(meta, b"membership", db::encode(&info.meta.last_membership));
    let done = SnapshotInfo {
        installing: false,
        ..info.clone()
    };
    batch.put_cf(db::cf(db, CF_RAFT), b"snapshot", db::encode(&done));
    let mut options = rocksdb::WriteOptions::default();
    options.set_sync(true);
    db.write_opt(batch, &options).map_err(|e| e.to_string())
}

/// Builds snapshots from a consistent RocksDB view, off the apply path.
pub struct SnapshotBuilder {
    shared: Arc<Shared>,
    dir: PathBuf,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let db = self.shared.db.clone();
        let dir = self.dir.clone();
        let (meta, file) = tokio::task::spawn_blocking(move || build_snapshot_file(&db, &dir))
            .await
            .map_err(io_err)?
            .map_err(io_err)?;
        let handle = tokio::fs::File::open(self.dir.join(&file))
            .await
            .map_err(io_err)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(handle),
        })
    }
}

fn build_snapshot_file(
    db: &DB,
    dir: &Path,
) -> Result<(SnapshotMeta<NodeId, Member>, String), String> {
    // The applied position must match the data: read both from one RocksDB snapshot.
    let view = db.snapshot();
    let decode = |key: &[u8]| -> Result<Option<Vec<u8>>, String> {
        view.get_cf(db::cf(db, CF_META), key)
            .map_err(|e| e.to_string())
    };
    let applied: Option<LogId> = match decode(b"applied")? {
        Some(bytes) => postcard::from_bytes::<Option<LogId>>(&bytes).map_err(|e| e.to_string())?,
        None => None,
    };
    let membership: StoredMembership<NodeId, Member> = match decode(b"membership")? {
        Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| e.to_string())?,
        None => StoredMembership::default(),
    };
    let snapshot_id = match applied {
        Some(log_id) => {
            format!(
                "{}-{}-{:08x}",
                log_id.leader_id.term,
                log_id.index,
                rand::random::<u32>()
            )
        }
        None => format!("0-0-{:08x}", rand::random::<u32>()),
    };
    let meta = SnapshotMeta {
        last_log_id: applied,
        last_membership: membership,
        snapshot_id,
    };
    let file = snapshot_file_name(&meta);
    let tmp = dir.join(format!("{file}.part"));
    let fail = |e: std::io::Error| format!("{}: {e}", tmp.display());
    {
        let mut out = BufWriter::new(std::fs::File::create(&tmp).map_err(fail)?);
        write_snapshot_data(db, &view, &mut out).map_err(fail)?;
        out.flush().map_err(fail)?;
        out.get_ref().sync_all().map_err(fail)?;
    }
    drop(view);
    std::fs::rename(&tmp, dir.join(&file)).map_err(fail)?;
    sync_dir(dir).map_err(fail)?;
    let info = SnapshotInfo {
        meta: meta.clone(),
        file: file.clone(),
        installing: false,
    };
    db.put_cf(db::cf(db, CF_RAFT), b"snapshot", db::encode(&info))
        .map_err(|e| e.to_string())?;
    remove_other_snapshots(dir, &file);
    tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
    Ok((meta, file))
}

/// Makes a rename in `dir` durable: the record pointing at the new name is synced next.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
