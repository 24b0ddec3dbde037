//! A thread-safe log of invocations and completions that becomes a history.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use thiserror::Error;

use crate::history::{Input, Operation, Output};

/// Names one invocation logged by a [`Recorder`], to complete it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(usize);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Why a [`Recorder`] refused a completion. Both are bugs in the test harness, not in the
/// system under test.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RecordError {
    /// The id was not handed out by this recorder.
    #[error("operation {0} was never invoked on this recorder")]
    UnknownOperation(OpId),
    /// The operation already has an output; a second one would make the history ambiguous.
    #[error("operation {0} was already completed")]
    AlreadyCompleted(OpId),
}

/// A source of nanosecond timestamps, monotonic and shared by every client of one recorder.
type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

/// One invocation, completed or not.
struct Slot {
    client: u64,
    key: String,
    input: Input,
    call_ns: u64,
    completion: Option<(Output, u64)>,
}

/// Records a history from many threads: call [`Recorder::invoke`] just before sending a
/// request and [`Recorder::complete`] just after its answer (or its failure) arrives.
///
/// Taking the call time before sending and the return time after receiving makes each
/// recorded interval contain the real one, which is what the checker needs to be sound.
pub struct Recorder {
    clock: Clock,
    slots: Mutex<Vec<Slot>>,
}

impl Recorder {
    /// A recorder whose clock counts nanoseconds from its creation, using [`Instant`].
    pub fn new() -> Self {
        let start = Instant::now();
        Self::with_clock(move || u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// A recorder reading time from `clock`, which must be monotonic and return nanoseconds.
    /// Lets tests write histories with exact timestamps.
    pub fn with_clock(clock: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self {
            clock: Box::new(clock),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Logs that `client` is about to send `input` for `key`, and returns the id to complete.
    pub fn invoke(&self, client: u64, key: &str, input: Input) -> OpId {
        // Read the clock before taking the lock: waiting for the lock can only widen the
        // interval, which keeps it sound.
        let call_ns = (self.clock)();
        let mut slots = self.slots();
        slots.push(Slot {
            client,
            key: key.to_owned(),
            input,
            call_ns,
            completion: None,
        });
        OpId(slots.len() - 1)
    }

    /// Logs the outcome of the invocation `id`. Use [`Output::Unknown`] when the client cannot
    /// tell whether the operation took effect, and [`Output::Failed`] only when it certainly
    /// did not.
    pub fn complete(&self, id: OpId, output: Output) -> Result<(), RecordError> {
        let return_ns = (self.clock)();
        let mut slots = self.slots();
        let slot = slots
            .get_mut(id.0)
            .ok_or(RecordError::UnknownOperation(id))?;
        if slot.completion.is_some() {
            return Err(RecordError::AlreadyCompleted(id));
        }
        slot.completion = Some((output, return_ns));
        Ok(())
    }

    /// The history so far, in invocation order. Operations that were never completed are
    /// reported with [`Output::Unknown`] and `return_ns == u64::MAX`: a client that gave up
    /// waiting cannot know whether they took effect.
    pub fn history(&self) -> Vec<Operation> {
        self.slots()
            .iter()
            .map(|slot| {
                let (output, return_ns) = slot
                    .completion
                    .clone()
                    .unwrap_or((Output::Unknown, u64::MAX));
                Operation {
                    client: slot.client,
                    key: slot.key.clone(),
                    input: slot.input.clone(),
                    output,
                    call_ns: slot.call_ns,
                    return_ns,
                }
            })
            .collect()
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        // A panic elsewhere while holding the lock cannot leave the Vec half-updated (every
        // critical section is a single push or assignment), so the data is still usable.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("operations", &self.slots().len())
            .finish_non_exhaustive()
    }
}
