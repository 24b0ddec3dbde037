//! The Raft log and vote in RocksDB. Votes, truncations and a follower's appends are fsync'd
//! before they are reported durable. The leader's own appends are synced in the background
//! while they replicate, and nothing observes them as committed before that sync (see
//! [`crate::durability`]): an acknowledged write survives SIGKILL and power loss.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError, Vote};
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};

use hanode_types::NodeId;

use crate::db::{self, CF_LOG, CF_RAFT};
use crate::durability::Durability;
use crate::types::{Entry, LogId, StorageError, TypeConfig};

/// Log storage handle (cheap to clone; readers share the database).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    me: NodeId,
    /// The last vote saved or read: whether entries are this leader's own.
    vote: Arc<Mutex<Option<Vote<NodeId>>>>,
    durability: Arc<Durability>,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn synced() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.set_sync(true);
    options
}

impl LogStore {
    /// Log storage of member `me` over its database. Syncs whatever an earlier process wrote
    /// and did not sync, so the whole log counts as durable from here on.
    pub async fn open(db: Arc<DB>, me: NodeId) -> Result<LogStore, StorageError> {
        db.flush_wal(true)
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let mut store = LogStore {
            db,
            me,
            vote: Arc::new(Mutex::new(None)),
            durability: Durability::new(None),
        };
        let last = store.get_log_state().await?.last_log_id;
        store.durability = Durability::new(last);
        Ok(store)
    }

    /// What of this log is on disk.
    pub fn durability(&self) -> Arc<Durability> {
        self.durability.clone()
    }

    /// Whether `entries` are this member's own, proposed as the leader of the saved vote's term.
    fn own_as_leader(&self, entries: &[Entry]) -> bool {
        let vote = *self.vote.lock().unwrap_or_else(|p| p.into_inner());
        vote.is_some_and(|vote| {
            vote.committed
                && vote.leader_id.node_id == self.me
                && entries
                    .iter()
                    .all(|entry| entry.log_id.leader_id == vote.leader_id)
        })
    }

    fn read_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
        postcard::from_bytes(bytes).map_err(|e| StorageIOError::read_logs(&e).into())
    }

    fn put_raft<T: serde::Serialize>(
        &self,
        key: &[u8],
        value: &T,
        sync: bool,
    ) -> Result<(), rocksdb::Error> {
        let options = if sync {
            synced()
        } else {
            WriteOptions::default()
        };
        self.db
            .put_cf_opt(db::cf(&self.db, CF_RAFT), key, db::encode(value), &options)
    }

    fn get_raft<T: serde::de::DeserializeOwned>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, StorageError> {
        db::get(&self.db, CF_RAFT, key)
            .map_err(|e| StorageIOError::read(openraft::AnyError::error(e)).into())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let mut entries = Vec::new();
        let iter = self.db.iterator_cf(
            db::cf(&self.db, CF_LOG),
            IteratorMode::From(&index_key(start), Direction::Forward),
        );
        for item in iter {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let index = u64::from_be_bytes(key.as_ref().try_into().map_err(|_| {
                StorageIOError::read_logs(openraft::AnyError::error("log key is not 8 bytes"))
            })?);
            if !range.contains(&index) {
                break;
            }
            let entry = Self::read_entry(&value)?;
            debug_assert_eq!(
                entry.log_id.index, index,
                "log entries are stored under their index"
            );
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last = match self
            .db
            .iterator_cf(db::cf(&self.db, CF_LOG), IteratorMode::End)
            .next()
        {
            Some(item) => {
                let (_, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
                Some(Self::read_entry(&value)?.log_id)
            }
            None => None,
        };
        let last_purged_log_id: Option<LogId> = self.get_raft(b"purged")?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        self.put_raft(b"vote", vote, true)
            .map_err(|e| StorageIOError::write_vote(&e))?;
        *self.vote.lock().unwrap_or_else(|p| p.into_inner()) = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        let mut vote: Option<Vote<NodeId>> = self.get_raft(b"vote")?;
        // openraft resumes leading a term whose committed vote names this member. As leader
        // it may have lost an unsynced tail of that term to a power cut, while followers hold
        // it: new entries would reuse those log ids with other contents. Reporting the vote
        // uncommitted makes this member win a new term first, like any other candidate.
        if let Some(own) = vote
            .as_mut()
            .filter(|v| v.committed && v.leader_id.node_id == self.me)
        {
            own.committed = false;
        }
        *self.vote.lock().unwrap_or_else(|p| p.into_inner()) = vote;
        Ok(vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Not synced: after a crash the committed index is re-learned from the leader; saving
        // it only lets a restarting member apply its own durable log sooner.
        self.put_raft(b"committed", &committed, false)
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.get_raft::<Option<LogId>>(b"committed")?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let Some(last) = entries.last().map(|entry| entry.log_id) else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let mut batch = WriteBatch::default();
        let log = db::cf(&self.db, CF_LOG);
        for entry in &entries {
            let bytes = postcard::to_stdvec(entry).map_err(|e| StorageIOError::write_logs(&e))?;
            batch.put_cf(log, index_key(entry.log_id.index), bytes);
        }
        // The leader's own entries replicate while they are synced in the background; a
        // follower's answer counts toward the quorum, so it syncs before it answers.
        let own = self.own_as_leader(&entries);
        let options = if own {
            WriteOptions::default()
        } else {
            synced()
        };
        let result = self.db.write_opt(batch, &options);
        if result.is_ok() {
            if own {
                self.durability.written(last, &self.db);
            } else {
                self.durability.synced(last);
            }
        }
        let reported = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(reported);
        result.map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "truncating log");
        let log = db::cf(&self.db, CF_LOG);
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(log, index_key(log_id.index), index_key(u64::MAX));
        batch.delete_cf(log, index_key(u64::MAX));
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_logs(&e))?;
        let last = self.get_log_state().await?.last_log_id;
        self.durability.truncated(last);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(index = log_id.index, "purging log");
        let mut batch = WriteBatch::default();
        batch.put_cf(db::cf(&self.db, CF_RAFT), b"purged", db::encode(&log_id));
        batch.delete_range_cf(
            db::cf(&self.db, CF_LOG),
            index_key(0),
            index_key(log_id.index + 1),
        );
        // Synced: the state machine these entries built must be durable before they go, and
        // it shares this WAL.
        self.db
            .write_opt(batch, &synced())
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
mod tests {
    use openraft::storage::RaftLogStorage as _;

    use super::*;

    #[tokio::test]
    async fn a_restarted_leader_does_not_resume_its_term() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = crate::db::open(dir.path()).expect("open RocksDB");
        let mut store = LogStore::open(db.clone(), 1).await.expect("open log");
        let mut led = Vote::new(3, 1);
        led.commit();
        store.save_vote(&led).await.expect("save vote");
        // Reopened: its own committed vote comes back uncommitted, so it must campaign.
        let mut reopened = LogStore::open(db.clone(), 1).await.expect("reopen log");
        let vote = reopened
            .read_vote()
            .await
            .expect("read vote")
            .expect("a vote");
        assert_eq!((vote.leader_id, vote.committed), (led.leader_id, false));
        // Another member reading the same vote (it followed leader 1) keeps it committed.
        let mut follower = LogStore::open(db, 2).await.expect("open as another member");
        let vote = follower
            .read_vote()
            .await
            .expect("read vote")
            .expect("a vote");
        assert!(vote.committed);
    }
}
