//! How far the Raft log is on disk, for the leader's overlapped flush.
//!
//! openraft 0.9 waits for the leader's own log append to be flushed before it sends the entry
//! to followers, so a lone write pays two fsyncs in a row. The Raft thesis (§10.2.1) lets the
//! leader write its log in parallel with replication, as long as nothing treats an entry as
//! committed until it is durable on a majority. The log store therefore writes the leader's
//! own entries without fsync, tells openraft they are flushed, and syncs them in the
//! background; openraft may then count the leader toward a quorum early. Everything that
//! makes a commit observable waits for this module instead:
//!
//! - the state machine applies an entry (and so answers its client, serves reads of it, or
//!   snapshots it) only once the leader's copy is durable: [`Durability::wait_for`];
//! - AppendEntries tells followers a commit index no higher than the leader's durable log:
//!   [`Durability::clamp_commit`], so no follower applies it sooner either;
//! - the committed index openraft saves is written after the entries, in the same
//!   write-ahead log, so it never survives a crash without them.
//!
//! - a membership change starts only once the config in effect is on the leader's disk
//!   (`Core::membership_durable`): openraft starts one as soon as the last is committed;
//! - a leader that restarts does not resume its term (`LogStore::read_vote`): it may have lost
//!   an unsynced tail that followers hold, and reusing those log ids for new entries would
//!   break log matching, so it must win a new election instead.
//!
//! If the leader loses power before its flush, the entry may survive on one follower only
//! and be overwritten by the next leader: nobody has seen it applied, so that is the same as
//! never committing it. A SIGKILL loses nothing: the unsynced write is already in the
//! kernel's page cache. Followers keep syncing before they answer, since their answer is
//! what the leader counts. A failed background sync is final: every later apply fails and
//! openraft stops the member, as it does for any storage error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rocksdb::DB;
use tokio::sync::watch;

use crate::types::LogId;

/// The log positions written and made durable, shared by the log store, the state machine
/// and the transport.
pub struct Durability {
    positions: Mutex<Positions>,
    durable: watch::Sender<Option<LogId>>,
    /// Whether a background flush is running (at most one at a time).
    flushing: AtomicBool,
    /// The latest background flush, to wait for at shutdown: it holds the database open.
    job: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Signalled when the disk caught up with a held-back commit index, so followers can be
    /// told at once instead of at the next heartbeat.
    caught_up: tokio::sync::Notify,
}

#[derive(Default)]
struct Positions {
    /// The last entry written to the log, synced or not.
    written: Option<LogId>,
    /// Bumped by a truncation, so a flush that started before it cannot report a log
    /// position that no longer exists.
    generation: u64,
    /// Why the last background flush failed, if it did.
    failed: Option<String>,
    /// The highest commit index [`Durability::clamp_commit`] held back from followers, until
    /// the disk reaches it.
    held_back: Option<u64>,
}

impl Durability {
    /// Starts with everything in the log durable up to `last` (the caller synced it).
    pub fn new(last: Option<LogId>) -> Arc<Durability> {
        Arc::new(Durability {
            positions: Mutex::new(Positions {
                written: last,
                ..Positions::default()
            }),
            durable: watch::Sender::new(last),
            flushing: AtomicBool::new(false),
            job: Mutex::new(None),
            caught_up: tokio::sync::Notify::new(),
        })
    }

    fn positions(&self) -> std::sync::MutexGuard<'_, Positions> {
        self.positions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last log position known to be on disk.
    pub fn durable(&self) -> Option<LogId> {
        *self.durable.borrow()
    }

    /// Records a synced write up to `last`: it also made every earlier write durable.
    pub fn synced(&self, last: LogId) {
        let mut positions = self.positions();
        positions.written = Some(last);
        self.durable.send_replace(Some(last));
        self.advanced(&mut positions, last.index);
    }

    /// After the durable position moved to `index` (under the positions lock): wakes
    /// [`Durability::caught_up`] if a held-back commit index is now on disk.
    fn advanced(&self, positions: &mut Positions, index: u64) {
        if positions.held_back.is_some_and(|held| held <= index) {
            positions.held_back = None;
            self.caught_up.notify_one();
        }
    }

    /// Waits until the disk has caught up after a commit index was held back from followers.
    pub async fn caught_up(&self) {
        self.caught_up.notified().await;
    }

    /// Records a truncation that left `last` as the final entry (synced).
    pub fn truncated(&self, last: Option<LogId>) {
        let mut positions = self.positions();
        positions.generation += 1;
        positions.held_back = None;
        positions.written = last;
        self.durable.send_replace(last);
    }

    /// Records an unsynced write up to `last` and makes sure a background flush will sync it.
    pub fn written(self: &Arc<Self>, last: LogId, db: &Arc<DB>) {
        self.positions().written = Some(last);
        if self.flushing.swap(true, Ordering::AcqRel) {
            return; // the running flush looks at `written` again before it stops
        }
        let (me, db) = (self.clone(), db.clone());
        let job = tokio::task::spawn_blocking(move || me.flush_until_caught_up(&db));
        *self.job.lock().unwrap_or_else(|p| p.into_inner()) = Some(job);
    }

    /// Waits for the background flush, if one runs (after the last write: at shutdown).
    pub async fn settle(&self) {
        let job = self.job.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(job) = job {
            let _ = job.await;
        }
    }

    fn flush_until_caught_up(&self, db: &DB) {
        loop {
            let (target, generation) = {
                let positions = self.positions();
                (positions.written, positions.generation)
            };
            let result = db.flush_wal(true);
            {
                let mut positions = self.positions();
                match result {
                    Err(e) => {
                        positions.failed = Some(e.to_string());
                        self.durable.send_modify(|_| {}); // wake the waiters to fail
                    }
                    Ok(()) if positions.generation == generation => {
                        let moved = self.durable.send_if_modified(|durable| {
                            let newer = target.map(|t| t.index) > durable.map(|d| d.index);
                            if newer {
                                *durable = target;
                            }
                            newer
                        });
                        if let (true, Some(target)) = (moved, target) {
                            self.advanced(&mut positions, target.index);
                        }
                    }
                    Ok(()) => {}
                }
            }
            self.flushing.store(false, Ordering::Release);
            let behind = {
                let positions = self.positions();
                positions.failed.is_none()
                    && positions.written.map(|w| w.index) > self.durable().map(|d| d.index)
            };
            // Another writer may have seen the flag still set and left the work to us.
            if !behind || self.flushing.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }

    /// Waits until the log is durable through `index`; an error if a flush failed.
    pub async fn wait_for(&self, index: u64) -> Result<(), String> {
        let mut durable = self.durable.subscribe();
        loop {
            if durable
                .borrow_and_update()
                .is_some_and(|d| d.index >= index)
            {
                return Ok(());
            }
            if let Some(reason) = &self.positions().failed {
                return Err(format!("syncing the Raft log failed: {reason}"));
            }
            if durable.changed().await.is_err() {
                return Err("the Raft log was closed".into());
            }
        }
    }

    /// The commit index to tell followers: at most what this leader has on disk.
    /// Under the positions lock, so a flush that moves `durable` right after sees what was
    /// held back and reports it through [`Durability::caught_up`].
    pub fn clamp_commit(&self, committed: Option<LogId>) -> Option<LogId> {
        let c = committed?;
        let mut positions = self.positions();
        let durable = self.durable();
        if durable.is_some_and(|d| d.index >= c.index) {
            return committed;
        }
        positions.held_back = positions.held_back.max(Some(c.index));
        durable
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt as _;

    use super::*;

    fn log_id(term: u64, index: u64) -> LogId {
        openraft::LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    fn open_db() -> (tempfile::TempDir, Arc<DB>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = crate::db::open(dir.path()).expect("open RocksDB");
        (dir, db)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unsynced_write_becomes_durable_after_the_background_flush() {
        let (_dir, db) = open_db();
        let durability = Durability::new(Some(log_id(1, 3)));
        let waiting = durability.wait_for(5);
        futures::pin_mut!(waiting);
        assert!(
            waiting.as_mut().now_or_never().is_none(),
            "entry 5 was never written: nothing may report it durable"
        );
        durability.written(log_id(1, 5), &db);
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("the background flush finishes")
            .expect("the flush succeeds");
        assert_eq!(durability.durable(), Some(log_id(1, 5)));
    }

    #[test]
    fn followers_hear_no_commit_beyond_the_leaders_disk() {
        let durability = Durability::new(Some(log_id(2, 10)));
        assert_eq!(
            durability.clamp_commit(Some(log_id(2, 12))),
            Some(log_id(2, 10))
        );
        assert_eq!(
            durability.clamp_commit(Some(log_id(2, 9))),
            Some(log_id(2, 9))
        );
        assert_eq!(durability.clamp_commit(None), None);
        assert_eq!(Durability::new(None).clamp_commit(Some(log_id(1, 1))), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_back_commit_is_announced_once_the_disk_reaches_it() {
        let (_dir, db) = open_db();
        let durability = Durability::new(Some(log_id(1, 3)));
        assert_eq!(
            durability.clamp_commit(Some(log_id(1, 5))),
            Some(log_id(1, 3))
        );
        let announced = durability.caught_up();
        futures::pin_mut!(announced);
        assert!(announced.as_mut().now_or_never().is_none());
        durability.written(log_id(1, 5), &db);
        tokio::time::timeout(std::time::Duration::from_secs(10), announced)
            .await
            .expect("the flush reaching index 5 announces the commit");
        assert_eq!(
            durability.clamp_commit(Some(log_id(1, 5))),
            Some(log_id(1, 5))
        );
    }

    #[test]
    fn synced_writes_and_truncations_move_the_durable_position() {
        let durability = Durability::new(None);
        durability.synced(log_id(1, 7));
        assert_eq!(durability.durable(), Some(log_id(1, 7)));
        durability.truncated(Some(log_id(1, 4)));
        assert_eq!(durability.durable(), Some(log_id(1, 4)));
        assert!(durability.wait_for(4).now_or_never().is_some());
        assert!(durability.wait_for(5).now_or_never().is_none());
    }
}
