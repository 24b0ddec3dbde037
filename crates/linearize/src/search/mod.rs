//! The search for a linearization of one key's history.
//!
//! A configuration is the set of operations linearized so far plus the register state. Both
//! searches below explore configurations reachable from "nothing linearized, key absent" by
//! linearizing one more operation that real time allows: an operation may be linearized only
//! if no operation that returned before it was called is still waiting. The history is
//! linearizable iff a configuration with every required operation linearized is reachable.
//!
//! Two searches run one after the other on the same model:
//! 1. [`dfs`]: Wing & Gong's depth-first search with Lowe's just-in-time linearization and a
//!    memo of visited configurations, as in porcupine. It finds a linearization of a correct
//!    history almost without backtracking, and refutes most incorrect ones quickly.
//! 2. [`sweep`], only if the first ran out of budget: the same configurations, explored level by
//!    level (by how many required operations are linearized) and, within a level, by how many
//!    unknown-outcome operations were used. Depth first, a configuration is often reached
//!    first with more unknown outcomes applied than necessary and its whole subtree explored
//!    again when a cheaper way appears; this order reaches the cheapest way first. It is what
//!    refutes incorrect histories with many unknown outcomes over few distinct values.
//!
//! Reductions shared by both, each sound because the configuration it skips has a
//! linearization only if one that is explored has one:
//! - operations with an unknown outcome have no return, so they never block others and never
//!   have to be linearized (they are *optional*); linearizing one is skipped when it does not
//!   change the state or when no pending operation can observe the state it leaves;
//! - an observation (a read, a failed compare) that agrees with the current state is
//!   linearized at once, alone: it leaves the state as it is, and since its call precedes every
//!   pending return, moving it to the front of any linearization breaks no real-time order;
//! - values that nothing reads or compares against are indistinguishable, so configurations are
//!   compared with all of them folded into one;
//! - pending optional operations with the same effect are interchangeable, so only the
//!   earliest-called one is ever tried;
//! - a configuration is dominated, and skipped, when an explored one has the same required
//!   operations and state and a subset of its optional ones: the smaller one can make every
//!   move the larger one can and has the same goal.

mod dfs;
mod sweep;

/// The state id of an absent key; values are numbered from 1.
pub(crate) const ABSENT: u32 = 0;

/// The folded state id shared by all values that no operation ever observes.
pub(crate) const UNOBSERVED: u32 = u32::MAX;

/// The depth-first search gets this fraction (1/n) of the step budget, the sweep the rest.
const DFS_STEP_SHARE: u64 = 10;

/// How many distinct candidate states a violation reports.
const MAX_REPORTED_STATES: usize = 8;

/// An operation's effect on the register, with values interned as state ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A read that returned this state.
    Read(u32),
    /// A write of this value.
    Write(u32),
    /// A compare-and-swap that applied (or, for an unknown outcome, that would apply).
    CasApplied {
        /// The state the swap requires.
        from: u32,
        /// The state the swap leaves.
        to: u32,
    },
    /// A compare-and-swap whose compare failed.
    CasRejected {
        /// The state it compared against.
        from: u32,
    },
}

/// What linearizing a step at some state does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Effect {
    /// The step is consistent with the state and does not change it.
    Observe,
    /// The step moves the register to this state.
    Mutate(u32),
}

impl Step {
    /// The effect of linearizing this step when the register is in `state`, or `None` when the
    /// observed outcome is impossible in that state.
    fn apply(self, state: u32) -> Option<Effect> {
        match self {
            Step::Read(seen) => (seen == state).then_some(Effect::Observe),
            Step::Write(value) => Some(Effect::Mutate(value)),
            Step::CasApplied { from, to } => (from == state).then_some(Effect::Mutate(to)),
            Step::CasRejected { from } => (from != state).then_some(Effect::Observe),
        }
    }
}

/// One operation as the search sees it.
#[derive(Clone, Debug)]
pub(crate) struct SearchOp {
    /// Its effect.
    pub step: Step,
    /// `false` for unknown outcomes: such an operation may be linearized any time after its
    /// call, or never.
    pub required: bool,
    /// When it was called.
    pub call_ns: u64,
    /// When it returned; ignored unless `required`.
    pub return_ns: u64,
}

/// Limits on one key's search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// Configurations held in memory at once.
    pub max_states: usize,
    /// Units of work: a configuration tried, a pending operation examined, a remembered
    /// configuration compared.
    pub max_steps: u64,
}

/// How the search ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists; this is the operation no linearization gets past.
    Violation(Violation),
    /// A limit was reached first.
    Undecided,
}

/// The first operation (in return order) that no linearization can include.
#[derive(Debug)]
pub(crate) struct Violation {
    /// Its index in the searched operations.
    pub op: usize,
    /// Register states (actual ids, not folded) found while it was the earliest pending
    /// return, at most [`MAX_REPORTED_STATES`] of them, in discovery order.
    pub states: Vec<u32>,
}

/// Searches for a linearization of `ops`. `folded[id]` is the id under which state `id` is
/// compared ([`UNOBSERVED`] for values nobody observes); the key starts [`ABSENT`].
pub(crate) fn search(ops: &[SearchOp], folded: &[u32], limits: Limits) -> Outcome {
    let dfs_steps = limits.max_steps / DFS_STEP_SHARE;
    let dfs_limits = Limits {
        max_steps: dfs_steps,
        ..limits
    };
    match dfs::search(ops, folded, dfs_limits) {
        Outcome::Undecided => {
            let sweep_limits = Limits {
                max_steps: limits.max_steps - dfs_steps,
                ..limits
            };
            sweep::search(ops, folded, sweep_limits)
        }
        decided => decided,
    }
}

/// The furthest a search got: the earliest pending return it could not get past (by position
/// in return order), the operation that returns there, and the states it was tried in.
///
/// No linearization includes that operation: including it would have moved the earliest
/// pending return further.
#[derive(Debug, Default)]
struct Frontier {
    furthest: Option<(usize, usize, Vec<u32>)>,
}

impl Frontier {
    /// Notes that operation `op`, at `position` in return order, is the earliest pending
    /// return in a configuration whose state is `state`.
    fn note(&mut self, position: usize, op: usize, state: u32) {
        match &mut self.furthest {
            Some((furthest, _, states)) if *furthest == position => {
                if states.len() < MAX_REPORTED_STATES && !states.contains(&state) {
                    states.push(state);
                }
            }
            Some((furthest, _, _)) if *furthest > position => {}
            _ => self.furthest = Some((position, op, vec![state])),
        }
    }

    /// The verdict of a search that explored everything without finding a linearization.
    fn into_outcome(self) -> Outcome {
        match self.furthest {
            Some((_, op, states)) => Outcome::Violation(Violation { op, states }),
            // Only reachable with no required operation, which is linearizable at once.
            None => Outcome::Linearizable,
        }
    }
}

/// A state id as a slice index.
fn index(id: u32) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough for every history in these tests.
    const LIMITS: Limits = Limits {
        max_states: 100_000,
        max_steps: 1_000_000,
    };

    fn required(step: Step, call_ns: u64, return_ns: u64) -> SearchOp {
        SearchOp {
            step,
            required: true,
            call_ns,
            return_ns,
        }
    }

    /// The definition, by brute force: some order of all required operations and some of the
    /// optional ones respects real time and the register's semantics.
    fn linearizable_by_definition(ops: &[SearchOp]) -> bool {
        fn extend(ops: &[SearchOp], used: &mut [bool], state: u32) -> bool {
            if ops
                .iter()
                .zip(used.iter())
                .all(|(op, used)| *used || !op.required)
            {
                return true;
            }
            for next in 0..ops.len() {
                let blocked = ops.iter().zip(used.iter()).any(|(other, used)| {
                    !*used && other.required && other.return_ns < ops[next].call_ns
                });
                if used[next] || blocked {
                    continue;
                }
                let after = match ops[next].step.apply(state) {
                    Some(Effect::Mutate(after)) => after,
                    Some(Effect::Observe) => state,
                    None => continue,
                };
                used[next] = true;
                let found = extend(ops, used, after);
                used[next] = false;
                if found {
                    return true;
                }
            }
            false
        }
        extend(ops, &mut vec![false; ops.len()], ABSENT)
    }

    /// splitmix64, for deterministic random histories.
    fn next(seed: &mut u64) -> u64 {
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A random tiny history over values 1..=3 (value 3 never observed, so it is folded),
    /// correct or not, with overlapping intervals and some unknown outcomes.
    fn random_history(seed: &mut u64) -> Vec<SearchOp> {
        let len = 1 + next(seed) % 7;
        (0..len)
            .map(|_| {
                let value = 1 + u32::try_from(next(seed) % 3).unwrap();
                let observed = 1 + u32::try_from(next(seed) % 2).unwrap();
                let step = match next(seed) % 4 {
                    0 => Step::Read(u32::try_from(next(seed) % 3).unwrap()),
                    1 => Step::Write(value),
                    2 => Step::CasApplied {
                        from: observed,
                        to: value,
                    },
                    _ => Step::CasRejected { from: observed },
                };
                let call_ns = next(seed) % 20;
                let return_ns = call_ns + next(seed) % 8;
                let unknown = matches!(step, Step::Write(_) | Step::CasApplied { .. })
                    && next(seed).is_multiple_of(4);
                SearchOp {
                    step,
                    required: !unknown,
                    call_ns,
                    return_ns,
                }
            })
            .collect()
    }

    /// Both searches, and the combination, agree with the definition of linearizability on
    /// thousands of small random histories: the reductions lose no linearization and invent
    /// none.
    #[test]
    fn searches_agree_with_brute_force() {
        let folded = [0, 1, 2, UNOBSERVED];
        let mut seed = 7;
        let (mut valid, mut invalid) = (0, 0);
        for _ in 0..20_000 {
            let ops = random_history(&mut seed);
            let expected = linearizable_by_definition(&ops);
            if expected {
                valid += 1;
            } else {
                invalid += 1;
            }
            let verdicts = [
                ("dfs", dfs::search(&ops, &folded, LIMITS)),
                ("sweep", sweep::search(&ops, &folded, LIMITS)),
                ("both", search(&ops, &folded, LIMITS)),
            ];
            for (name, outcome) in verdicts {
                let got = match outcome {
                    Outcome::Linearizable => true,
                    Outcome::Violation(_) => false,
                    Outcome::Undecided => panic!("{name} undecided on {ops:?}"),
                };
                assert_eq!(got, expected, "{name} on {ops:?}");
            }
        }
        assert!(
            valid > 1_000 && invalid > 1_000,
            "{valid} valid, {invalid} invalid"
        );
    }

    /// A history with an impossible read names that read as the violation, with the state
    /// the register had to hold, whichever search decides.
    #[test]
    fn violation_names_the_blocked_operation_and_its_states() {
        let ops = [
            required(Step::Write(1), 0, 10),
            required(Step::Write(2), 20, 30),
            required(Step::Read(1), 40, 50),
        ];
        let folded = [0, 1, 2];
        for outcome in [
            dfs::search(&ops, &folded, LIMITS),
            sweep::search(&ops, &folded, LIMITS),
        ] {
            match outcome {
                Outcome::Violation(violation) => {
                    assert_eq!(violation.op, 2);
                    assert_eq!(violation.states, vec![2]);
                }
                other => panic!("expected a violation, got {other:?}"),
            }
        }
    }

    /// A budget of zero leaves a non-trivial history undecided in both searches rather than
    /// reporting a verdict they did not establish.
    #[test]
    fn exhausted_budget_is_undecided() {
        let ops = [required(Step::Write(1), 0, 10)];
        let limits = Limits {
            max_states: 0,
            max_steps: 0,
        };
        assert!(matches!(search(&ops, &[0, 1], limits), Outcome::Undecided));
    }
}
