//! Watches: a hub that fans every applied revision out to live watchers, and a [`Watcher`] that
//! first replays history from its start revision and then follows the hub.
//!
//! A watcher that cannot keep up is not allowed to block the apply path: when its channel is
//! full the hub marks it lagging and stops sending; the watcher then re-reads the missed
//! revisions from the store (as etcd moves slow watchers to its "unsynced" group). Batches are
//! de-duplicated by revision, so the switch between history and live events loses nothing and
//! repeats nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use tokio::sync::mpsc;

use hanode_types::Revision;

use crate::api::{Event, EventType, WatchMessage, WatchRequest};
use crate::error::{KvError, KvResult};
use crate::index::in_range;

/// Batches a live watcher may have queued before it is marked lagging.
const LIVE_QUEUE_BATCHES: usize = 256;

/// Revisions read from history per step of a catch-up.
const HISTORY_STEP_REVISIONS: usize = 128;

/// A stream of watch messages, as front-ends consume it.
pub type WatchStream = BoxStream<'static, WatchMessage>;

/// Where a watcher reads revisions it did not see live.
pub trait History: Send + Sync + 'static {
    /// Events of revisions `from..=to` for keys in `[key, range_end)`, grouped per revision,
    /// at most `max_revisions` revisions; `Compacted` if `from` was compacted away.
    fn history(
        &self,
        key: &[u8],
        range_end: &[u8],
        from: Revision,
        to: Revision,
        max_revisions: usize,
    ) -> KvResult<Vec<(Revision, Vec<Event>)>>;
}

type Batch = Arc<(Revision, Vec<Event>)>;

struct Subscriber {
    key: Vec<u8>,
    range_end: Vec<u8>,
    tx: mpsc::Sender<Batch>,
    lagging: Arc<AtomicBool>,
}

struct HubState {
    published: Revision,
    next_id: u64,
    subscribers: HashMap<u64, Subscriber>,
}

/// Fans applied revisions out to watchers. Publish calls must come in revision order.
pub struct WatchHub {
    state: Mutex<HubState>,
}

impl WatchHub {
    /// A hub whose store is at `revision`.
    pub fn new(revision: Revision) -> Arc<WatchHub> {
        Arc::new(WatchHub {
            state: Mutex::new(HubState {
                published: revision,
                next_id: 1,
                subscribers: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic while holding this short lock cannot leave it inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The newest revision handed to watchers.
    pub fn published(&self) -> Revision {
        self.lock().published
    }

    /// Number of live watchers (for metrics).
    pub fn watcher_count(&self) -> usize {
        self.lock().subscribers.len()
    }

    /// Hands the events of one applied revision to every interested watcher.
    pub fn publish(&self, revision: Revision, events: Vec<Event>) {
        let mut state = self.lock();
        debug_assert!(
            revision > state.published,
            "revisions are published in order"
        );
        state.published = revision;
        let batch: Batch = Arc::new((revision, events));
        state.subscribers.retain(|_, sub| {
            if sub.lagging.load(Ordering::SeqCst) {
                return true;
            }
            if !batch
                .1
                .iter()
                .any(|e| in_range(&e.kv.key, &sub.key, &sub.range_end))
            {
                return true;
            }
            match sub.tx.try_send(batch.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.lagging.store(true, Ordering::SeqCst);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }

    /// The store jumped to `revision` without individual events (a snapshot was installed):
    /// every watcher re-reads from history.
    pub fn reset(&self, revision: Revision) {
        let mut state = self.lock();
        state.published = revision;
        for sub in state.subscribers.values() {
            sub.lagging.store(true, Ordering::SeqCst);
        }
    }

    /// Starts a watcher; `history` serves the revisions it needs from before now.
    pub fn watch(self: &Arc<Self>, req: WatchRequest, history: Arc<dyn History>) -> Watcher {
        let (tx, rx) = mpsc::channel(LIVE_QUEUE_BATCHES);
        let lagging = Arc::new(AtomicBool::new(false));
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        let published = state.published;
        state.subscribers.insert(
            id,
            Subscriber {
                key: req.key.clone(),
                range_end: req.range_end.clone(),
                tx,
                lagging: lagging.clone(),
            },
        );
        drop(state);
        let next_revision = if req.start_revision > 0 {
            req.start_revision
        } else {
            published + 1
        };
        Watcher {
            hub: self.clone(),
            id,
            history,
            req,
            rx,
            lagging,
            next_revision,
            catch_up_to: published,
            pending: VecDeque::new(),
            done: false,
        }
    }

    /// Clears a watcher's lagging mark and returns the revision it must catch up to.
    fn resync(&self, id: u64) -> Revision {
        let state = self.lock();
        if let Some(sub) = state.subscribers.get(&id) {
            sub.lagging.store(false, Ordering::SeqCst);
        }
        state.published
    }

    fn unsubscribe(&self, id: u64) {
        self.lock().subscribers.remove(&id);
    }
}

/// One watch: history from its start revision, then live events; batches per revision.
pub struct Watcher {
    hub: Arc<WatchHub>,
    id: u64,
    history: Arc<dyn History>,
    req: WatchRequest,
    rx: mpsc::Receiver<Batch>,
    lagging: Arc<AtomicBool>,
    /// The first revision not yet delivered.
    next_revision: Revision,
    /// Revisions up to here come from history.
    catch_up_to: Revision,
    pending: VecDeque<WatchMessage>,
    done: bool,
}

impl Watcher {
    /// The next message; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<WatchMessage> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            if self.done {
                return None;
            }
            if self.next_revision <= self.catch_up_to {
                if let Err(e) = self.catch_up_step() {
                    self.done = true;
                    if let KvError::Compacted { compact_revision } = e {
                        return Some(WatchMessage::Compacted { compact_revision });
                    }
                    tracing::warn!(error = %e, "watch ended: history could not be read");
                    return None;
                }
                continue;
            }
            if self.lagging.load(Ordering::SeqCst) {
                self.catch_up_to = self.hub.resync(self.id);
                continue;
            }
            match self.rx.recv().await {
                Some(batch) => self.deliver(batch.0, &batch.1),
                None => self.done = true,
            }
        }
    }

    fn catch_up_step(&mut self) -> KvResult<()> {
        let batches = self.history.history(
            &self.req.key,
            &self.req.range_end,
            self.next_revision,
            self.catch_up_to,
            HISTORY_STEP_REVISIONS,
        )?;
        let complete = batches.len() < HISTORY_STEP_REVISIONS;
        for (revision, events) in batches {
            self.deliver(revision, &events);
        }
        if complete {
            self.next_revision = self.next_revision.max(self.catch_up_to + 1);
        }
        Ok(())
    }

    fn deliver(&mut self, revision: Revision, events: &[Event]) {
        if revision < self.next_revision {
            return;
        }
        self.next_revision = revision + 1;
        let events: Vec<Event> = events
            .iter()
            .filter(|e| in_range(&e.kv.key, &self.req.key, &self.req.range_end))
            .filter(|e| match e.kind {
                EventType::Put => !self.req.no_put,
                EventType::Delete => !self.req.no_delete,
            })
            .map(|e| Event {
                kind: e.kind,
                kv: e.kv.clone(),
                prev_kv: if self.req.prev_kv {
                    e.prev_kv.clone()
                } else {
                    None
                },
            })
            .collect();
        if !events.is_empty() {
            self.pending
                .push_back(WatchMessage::Events { revision, events });
        }
    }

    /// This watcher as a boxed stream.
    pub fn into_stream(self) -> WatchStream {
        Box::pin(futures::stream::unfold(self, |mut watcher| async move {
            watcher.next().await.map(|message| (message, watcher))
        }))
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.hub.unsubscribe(self.id);
    }
}
