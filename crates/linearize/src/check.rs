//! Checking a whole history: split it per key, build each key's search, explain failures.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::history::{Input, Operation, Output};
use crate::search::{self, ABSENT, Limits, Outcome, SearchOp, Step, UNOBSERVED};

/// How much work the checker may spend on one key before it gives up and reports the key as
/// undecided instead of hanging on a pathological history.
///
/// Histories of about 2000 operations per key from up to about 16 concurrent clients are
/// decided in milliseconds, correct or not, when written values are unique (as in Jepsen).
/// Checking is NP-complete in general, and what can exhaust the budget is many clients on one
/// key (the cost grows steeply with concurrency; spread clients over keys instead), or an
/// incorrect history with many unknown outcomes whose writes reuse a few values (every unknown
/// write could explain many reads, and all those explanations must be ruled out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckBudget {
    /// Configurations (a set of linearized operations plus a register state) one key's
    /// search may hold in memory at once; each costs on the order of 100 bytes.
    pub max_states_per_key: usize,
    /// Units of search work for one key (a configuration tried, a pending operation
    /// examined, a remembered configuration compared); bounds time, at about ten million
    /// units per second in an optimized build.
    pub max_steps_per_key: u64,
}

impl Default for CheckBudget {
    /// At most about ten seconds and a few hundred MB per key in an optimized build (ten times
    /// longer in a debug build).
    fn default() -> Self {
        Self {
            max_states_per_key: 1_000_000,
            max_steps_per_key: 100_000_000,
        }
    }
}

/// The verdict on a history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// `true` only when every key was shown linearizable: no anomalies and no undecided keys.
    pub ok: bool,
    /// Distinct keys in the history.
    pub keys_checked: usize,
    /// Operations in the history, including those the checker ignores (failed operations,
    /// reads with no definite answer).
    pub operations: usize,
    /// What is wrong, at most one anomaly per key, in key order.
    pub anomalies: Vec<Anomaly>,
    /// Keys whose search ran out of [`CheckBudget`]: neither shown linearizable nor not.
    pub undecided_keys: Vec<String>,
}

/// Why an anomaly was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AnomalyKind {
    /// No order of the key's operations respects both their real-time order and the
    /// register's semantics.
    NotLinearizable,
    /// The history itself is inconsistent (an output that does not fit its input, a return
    /// before the call); the key was not searched. This is a bug in the recording harness.
    Malformed,
}

/// A problem found on one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The key concerned.
    pub key: String,
    /// What kind of problem it is.
    pub kind: AnomalyKind,
    /// Human-readable: the first operation that cannot be linearized and the states the
    /// register could hold instead, or what is malformed.
    pub description: String,
    /// The operations to look at, sorted by call time: for [`AnomalyKind::NotLinearizable`],
    /// a window ending at the blocked operation's return that starts with the most recent
    /// operations completed before its call; for [`AnomalyKind::Malformed`], the malformed
    /// operations.
    pub operations: Vec<Operation>,
}

/// How many operations completed before the blocked one an anomaly's window reaches back to.
const WINDOW_CONTEXT_OPS: usize = 8;

/// Decides whether `history` is linearizable for a map of independent registers that support
/// read, write and compare-and-swap, every key starting absent.
///
/// Operations with [`Output::Unknown`] may take effect at any time after their call, or never;
/// failed operations and reads without an answer are ignored. The history may be in any order.
pub fn check(history: &[Operation], budget: CheckBudget) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in history {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut anomalies = Vec::new();
    let mut undecided_keys = Vec::new();
    for (key, ops) in &by_key {
        match check_key(key, ops, budget) {
            Verdict::Linearizable => {}
            Verdict::Anomaly(anomaly) => anomalies.push(anomaly),
            Verdict::Undecided => undecided_keys.push((*key).to_owned()),
        }
    }
    Report {
        ok: anomalies.is_empty() && undecided_keys.is_empty(),
        keys_checked: by_key.len(),
        operations: history.len(),
        anomalies,
        undecided_keys,
    }
}

/// The verdict on one key.
enum Verdict {
    Linearizable,
    Anomaly(Anomaly),
    Undecided,
}

fn check_key(key: &str, ops: &[&Operation], budget: CheckBudget) -> Verdict {
    let malformed: Vec<(&Operation, String)> = ops
        .iter()
        .filter_map(|op| op.malformation().map(|why| (*op, why)))
        .collect();
    if let Some((first, why)) = malformed.first() {
        return Verdict::Anomaly(Anomaly {
            key: key.to_owned(),
            kind: AnomalyKind::Malformed,
            description: format!(
                "{} malformed operation(s) on key {key:?}, the first: {first}: {why}",
                malformed.len()
            ),
            operations: malformed.iter().map(|(op, _)| (*op).clone()).collect(),
        });
    }

    let model = KeyModel::build(ops);
    let limits = Limits {
        max_states: budget.max_states_per_key,
        max_steps: budget.max_steps_per_key,
    };
    match search::search(&model.ops, &model.folded, limits) {
        Outcome::Linearizable => Verdict::Linearizable,
        Outcome::Undecided => Verdict::Undecided,
        Outcome::Violation(violation) => {
            let blocked = model.sources[violation.op];
            let states: Vec<String> = violation
                .states
                .iter()
                .map(|state| model.describe_state(*state))
                .collect();
            let held = match states.as_slice() {
                [only] => format!("could only hold {only}"),
                many => format!("could only hold one of {}", many.join(", ")),
            };
            Verdict::Anomaly(Anomaly {
                key: key.to_owned(),
                kind: AnomalyKind::NotLinearizable,
                description: format!(
                    "key {key:?}: {blocked} but no linearization allows it (while it was \
                     pending the register {held})"
                ),
                operations: model.window(blocked),
            })
        }
    }
}

/// One key's history translated for the search.
struct KeyModel<'a> {
    /// The operations the search considers.
    ops: Vec<SearchOp>,
    /// The recorded operation behind each of `ops`.
    sources: Vec<&'a Operation>,
    /// The value of each state id (`None` for [`ABSENT`]).
    values: Vec<Option<&'a str>>,
    /// The id each state is remembered under (see [`search::search`]).
    folded: Vec<u32>,
}

impl<'a> KeyModel<'a> {
    fn build(ops: &[&'a Operation]) -> Self {
        let mut interner = Interner::default();
        let mut model_ops = Vec::new();
        let mut sources = Vec::new();
        for op in ops {
            let (step, required) = match (&op.input, &op.output) {
                (Input::Read, Output::Read(seen)) => {
                    let seen = match seen {
                        Some(value) => interner.observed(value),
                        None => ABSENT,
                    };
                    (Step::Read(seen), true)
                }
                (Input::Write(value), Output::Write) => (Step::Write(interner.id(value)), true),
                (Input::Write(value), Output::Unknown) => (Step::Write(interner.id(value)), false),
                (Input::Cas { from, to }, Output::Cas(true)) => {
                    let from = interner.observed(from);
                    (
                        Step::CasApplied {
                            from,
                            to: interner.id(to),
                        },
                        true,
                    )
                }
                (Input::Cas { from, .. }, Output::Cas(false)) => (
                    Step::CasRejected {
                        from: interner.observed(from),
                    },
                    true,
                ),
                // An unknown compare-and-swap matters only if it applied; not applying it is
                // the same as leaving it out.
                (Input::Cas { from, to }, Output::Unknown) => {
                    let from = interner.observed(from);
                    (
                        Step::CasApplied {
                            from,
                            to: interner.id(to),
                        },
                        false,
                    )
                }
                // Failed operations never took effect and reads without an answer observed
                // nothing; malformed operations were rejected before.
                _ => continue,
            };
            model_ops.push(SearchOp {
                step,
                required,
                call_ns: op.call_ns,
                return_ns: op.return_ns,
            });
            sources.push(*op);
        }
        // Values no operation ever reads or compares against cannot be told apart: a state
        // holding any of them allows exactly the same next steps. Folding them into one makes
        // more configurations recognisably equal.
        let folded = interner
            .observed
            .iter()
            .enumerate()
            .map(|(id, observed)| match u32::try_from(id) {
                Ok(id) if id == ABSENT || *observed => id,
                _ => UNOBSERVED,
            })
            .collect();
        Self {
            ops: model_ops,
            sources,
            values: interner.values,
            folded,
        }
    }

    /// A state as a description shows it. A value nothing observes stands for all of them:
    /// the search does not tell them apart.
    fn describe_state(&self, state: u32) -> String {
        let id = usize::try_from(state).unwrap_or(usize::MAX);
        match self.values.get(id) {
            Some(Some(value)) if self.folded.get(id) == Some(&UNOBSERVED) => {
                format!("{value:?} (or another value no operation observed)")
            }
            Some(Some(value)) => format!("{value:?}"),
            _ => "the key absent".to_owned(),
        }
    }

    /// The operations around `blocked`: everything overlapping the span from the calls of the
    /// last few operations completed before it was called, to its return.
    fn window(&self, blocked: &Operation) -> Vec<Operation> {
        let mut earlier: Vec<&Operation> = self
            .sources
            .iter()
            .zip(&self.ops)
            .filter(|(op, model)| model.required && op.return_ns < blocked.call_ns)
            .map(|(op, _)| *op)
            .collect();
        earlier.sort_by_key(|op| std::cmp::Reverse(op.return_ns));
        let start_ns = earlier
            .iter()
            .take(WINDOW_CONTEXT_OPS)
            .map(|op| op.call_ns)
            .fold(blocked.call_ns, u64::min);
        let mut window: Vec<Operation> = self
            .sources
            .iter()
            .zip(&self.ops)
            .filter(|(op, model)| {
                let overlaps = if model.required {
                    op.return_ns >= start_ns
                } else {
                    // Pending forever; only the recent ones are worth reading.
                    op.call_ns >= start_ns
                };
                op.call_ns <= blocked.return_ns && overlaps
            })
            .map(|(op, _)| (*op).clone())
            .collect();
        window.sort_by_key(|op| (op.call_ns, op.return_ns));
        window
    }
}

/// Numbers the values of one key; id 0 is [`ABSENT`].
struct Interner<'a> {
    ids: HashMap<&'a str, u32>,
    values: Vec<Option<&'a str>>,
    observed: Vec<bool>,
}

impl Default for Interner<'_> {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            values: vec![None],
            observed: vec![true],
        }
    }
}

impl<'a> Interner<'a> {
    fn id(&mut self, value: &'a str) -> u32 {
        if let Some(id) = self.ids.get(value) {
            return *id;
        }
        // Ids stay below UNOBSERVED: a key would need four billion distinct values first,
        // far more than any history fits in memory.
        let id = u32::try_from(self.values.len()).unwrap_or(UNOBSERVED - 1);
        self.ids.insert(value, id);
        self.values.push(Some(value));
        self.observed.push(false);
        id
    }

    /// The id of a value some operation reads or compares against.
    fn observed(&mut self, value: &'a str) -> u32 {
        let id = self.id(value);
        if let Some(flag) = usize::try_from(id)
            .ok()
            .and_then(|id| self.observed.get_mut(id))
        {
            *flag = true;
        }
        id
    }
}

/// A summary for logs and assertion messages: the verdict, then each anomaly and undecided key.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.ok {
            "linearizable"
        } else if self.anomalies.is_empty() {
            "undecided"
        } else {
            "NOT linearizable"
        };
        write!(
            f,
            "{verdict}: {} operations on {} keys",
            self.operations, self.keys_checked
        )?;
        for anomaly in &self.anomalies {
            write!(f, "\n- {}", anomaly.description)?;
            for op in &anomaly.operations {
                write!(f, "\n    {op}")?;
            }
        }
        if !self.undecided_keys.is_empty() {
            write!(
                f,
                "\n- budget exhausted, undecided keys: {:?}",
                self.undecided_keys
            )?;
        }
        Ok(())
    }
}
