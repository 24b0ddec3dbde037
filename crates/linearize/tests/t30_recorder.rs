//! The recorder turns invocations and completions into a history the checker accepts.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{SplitMix64, verdict};
use hanode_linearize::{Input, Operation, Output, RecordError, Recorder};

/// A recorder on a clock that advances by 10ns at every reading.
fn stepping_recorder() -> Recorder {
    let ticks = Arc::new(AtomicU64::new(0));
    Recorder::with_clock(move || ticks.fetch_add(10, Ordering::SeqCst))
}

/// Each completed invocation becomes one operation with its call and return times read from
/// the clock, in invocation order.
#[test]
fn history_lists_invocations_with_their_times_and_outputs() {
    let recorder = stepping_recorder();
    let write = recorder.invoke(1, "k", Input::Write("1".into()));
    let read = recorder.invoke(2, "k", Input::Read);
    recorder.complete(read, Output::Read(None)).unwrap();
    recorder.complete(write, Output::Write).unwrap();
    assert_eq!(
        recorder.history(),
        vec![
            Operation {
                client: 1,
                key: "k".into(),
                input: Input::Write("1".into()),
                output: Output::Write,
                call_ns: 0,
                return_ns: 30,
            },
            Operation {
                client: 2,
                key: "k".into(),
                input: Input::Read,
                output: Output::Read(None),
                call_ns: 10,
                return_ns: 20,
            },
        ]
    );
}

/// An operation that was never completed (the client timed out or crashed) is reported with an
/// unknown outcome, so the checker lets it take effect or not.
#[test]
fn never_completed_operation_is_unknown() {
    let recorder = stepping_recorder();
    recorder.invoke(1, "k", Input::Write("1".into()));
    let history = recorder.history();
    assert_eq!(history[0].output, Output::Unknown);
    assert_eq!(history[0].return_ns, u64::MAX);
}

/// Completing an operation twice, or one this recorder never handed out, is refused instead of
/// silently producing an ambiguous history.
#[test]
fn completing_twice_or_an_unknown_id_is_refused() {
    let recorder = stepping_recorder();
    let id = recorder.invoke(1, "k", Input::Read);
    recorder.complete(id, Output::Read(None)).unwrap();
    assert_eq!(
        recorder.complete(id, Output::Read(None)),
        Err(RecordError::AlreadyCompleted(id))
    );
    // An id from a recorder that handed out more ids than this one.
    let foreign = Recorder::new();
    let stranger = (0..3)
        .map(|_| foreign.invoke(1, "k", Input::Read))
        .last()
        .unwrap();
    assert_eq!(
        recorder.complete(stranger, Output::Read(None)),
        Err(RecordError::UnknownOperation(stranger))
    );
    assert_eq!(
        RecordError::UnknownOperation(stranger).to_string(),
        "operation #2 was never invoked on this recorder"
    );
}

/// Threads recording real concurrent operations on a mutex-protected map (linearizable by
/// construction: each operation takes effect inside the lock, between invoke and complete)
/// produce a history the checker accepts.
#[test]
fn threads_recording_a_locked_map_produce_a_linearizable_history() {
    let recorder = Recorder::new();
    let store: Mutex<HashMap<String, String>> = Mutex::new(HashMap::new());
    std::thread::scope(|scope| {
        for client in 0..6u64 {
            let (recorder, store) = (&recorder, &store);
            scope.spawn(move || {
                let mut rng = SplitMix64::new(client);
                for _ in 0..300 {
                    let key = format!("k{}", rng.below(3));
                    let value = format!("v{}", rng.below(4));
                    let input = match rng.below(3) {
                        0 => Input::Read,
                        1 => Input::Write(value),
                        _ => Input::Cas {
                            from: format!("v{}", rng.below(4)),
                            to: value,
                        },
                    };
                    let id = recorder.invoke(client, &key, input.clone());
                    let output = {
                        let mut map = store.lock().unwrap();
                        match input {
                            Input::Read => Output::Read(map.get(&key).cloned()),
                            Input::Write(value) => {
                                map.insert(key, value);
                                Output::Write
                            }
                            Input::Cas { from, to } => {
                                let applied = map.get(&key) == Some(&from);
                                if applied {
                                    map.insert(key, to);
                                }
                                Output::Cas(applied)
                            }
                        }
                    };
                    recorder.complete(id, output).unwrap();
                }
            });
        }
    });
    let history = recorder.history();
    assert_eq!(history.len(), 1_800);
    let report = verdict(&history);
    assert!(report.ok, "{report}");
    assert_eq!(report.keys_checked, 3);
}
