//! Phase two: the same configurations explored level by level.
//!
//! Level `k` holds the configurations with `k` required operations linearized; within a level,
//! configurations are expanded in increasing number of optional (unknown-outcome) operations
//! used. Linearizing a required operation moves to the next level, an optional one stays in
//! the level with one more used, so when a configuration is expanded every configuration that
//! dominates it has been seen already, and nothing is ever explored twice. Only the current
//! and the next level are held in memory.
//!
//! Required operations are identified by their rank in return order; the linearized ones are
//! all ranks below `base` plus a few `extra` ones above it, so `base` is the earliest pending
//! return. Pending optional operations with the same effect form a class, and since the
//! earliest-called member is always the one tried, the optional operations used are described
//! by how many members of each class were used.

use std::collections::HashMap;

use super::{Effect, Frontier, Limits, Outcome, SearchOp, Step, index};

/// Searches level by level; see the module documentation.
pub(super) fn search(ops: &[SearchOp], folded: &[u32], limits: Limits) -> Outcome {
    Sweep::new(ops, folded).run(limits)
}

/// How many members of each class were used, as (class, count) sorted by class, without
/// zero counts.
type Counts = Vec<(usize, usize)>;

/// A configuration.
#[derive(Clone, Debug)]
struct Config {
    /// Every required operation of rank below `base` is linearized; `base` is not.
    base: usize,
    /// The linearized required operations of rank above `base`, ascending.
    extra: Vec<usize>,
    /// The register state (not folded).
    state: u32,
    /// The optional operations used.
    counts: Counts,
}

/// What a configuration may do next.
struct Moves {
    /// Required operations, by rank, with the state each leaves.
    required: Vec<(usize, u32)>,
    /// Optional operations, by class, with the state each leaves.
    optional: Vec<(usize, u32)>,
}

/// Configurations of one level, bucketed by how many optional operations they used.
type Level = Vec<Vec<Config>>;

struct Sweep<'a> {
    ops: &'a [SearchOp],
    folded: &'a [u32],
    /// Required operations in return order.
    required: Vec<usize>,
    /// For each rank `i`, the ranks `j >= i` called no later than rank `i` returned, ascending:
    /// the required operations that may be linearized while `i` is the earliest pending
    /// return.
    open: Vec<Vec<usize>>,
    /// Optional operations with the same effect, each class in call order.
    classes: Vec<Vec<usize>>,
    /// When each class's first member was called; ascending, as classes are numbered so.
    class_first_call_ns: Vec<u64>,
    frontier: Frontier,
    /// Work done so far, in the units of [`Limits::max_steps`].
    work: u64,
}

impl<'a> Sweep<'a> {
    fn new(ops: &'a [SearchOp], folded: &'a [u32]) -> Self {
        let mut required: Vec<usize> = (0..ops.len()).filter(|&op| ops[op].required).collect();
        // Ties in return time do not matter: the operations that may be linearized depend only
        // on the earliest pending return's time.
        required.sort_by_key(|&op| (ops[op].return_ns, ops[op].call_ns, op));
        let mut by_call: Vec<usize> = (0..required.len()).collect();
        by_call.sort_by_key(|&rank| (ops[required[rank]].call_ns, rank));
        let mut open = Vec::with_capacity(required.len());
        let mut called: Vec<usize> = Vec::new();
        let mut next_call = by_call.iter().peekable();
        for (rank, &op) in required.iter().enumerate() {
            let horizon_ns = ops[op].return_ns;
            while let Some(&&candidate) = next_call.peek() {
                if ops[required[candidate]].call_ns > horizon_ns {
                    break;
                }
                called.push(candidate);
                next_call.next();
            }
            called.retain(|&other| other >= rank);
            let mut pending = called.clone();
            pending.sort_unstable();
            open.push(pending);
        }

        let mut optional: Vec<usize> = (0..ops.len()).filter(|&op| !ops[op].required).collect();
        optional.sort_by_key(|&op| (ops[op].call_ns, op));
        let fold = |id: u32| folded[index(id)];
        let mut class_of: HashMap<(u32, u32, bool), usize> = HashMap::new();
        let mut classes: Vec<Vec<usize>> = Vec::new();
        let mut class_first_call_ns = Vec::new();
        for op in optional {
            let effect = match ops[op].step {
                Step::Write(value) => (0, fold(value), false),
                Step::CasApplied { from, to } => (from, fold(to), true),
                // Only writes and swaps can have an unknown outcome.
                Step::Read(_) | Step::CasRejected { .. } => continue,
            };
            let class = *class_of.entry(effect).or_insert_with(|| {
                classes.push(Vec::new());
                class_first_call_ns.push(ops[op].call_ns);
                classes.len() - 1
            });
            classes[class].push(op);
        }
        Self {
            ops,
            folded,
            required,
            open,
            classes,
            class_first_call_ns,
            frontier: Frontier::default(),
            work: 0,
        }
    }

    fn run(mut self, limits: Limits) -> Outcome {
        let total = self.required.len();
        if total == 0 {
            return Outcome::Linearizable;
        }
        let root = Config {
            base: 0,
            extra: Vec::new(),
            state: super::ABSENT,
            counts: Vec::new(),
        };
        let mut level: Level = vec![vec![root]];
        loop {
            let mut next: Level = Vec::new();
            let mut next_len = 0;
            // Expanded configurations of this level: for each linearized set and folded
            // state, the optional counts seen with it.
            let mut seen: HashMap<(usize, Vec<usize>, u32), Vec<Counts>> = HashMap::new();
            let mut held = 0;
            let mut used = 0;
            while used < level.len() {
                for config in std::mem::take(&mut level[used]) {
                    let key = (config.base, config.extra.clone(), self.fold(config.state));
                    let counts_seen = seen.entry(key).or_default();
                    self.work += 1 + u64::try_from(counts_seen.len()).unwrap_or(u64::MAX);
                    // Buckets are expanded in increasing use, so anything that dominates this
                    // configuration is already here.
                    if counts_seen.iter().any(|seen| at_most(seen, &config.counts)) {
                        continue;
                    }
                    counts_seen.push(config.counts.clone());
                    held += 1;
                    let moves = self.moves(&config);
                    if self.work > limits.max_steps || held + next_len > limits.max_states {
                        return Outcome::Undecided;
                    }
                    for (rank, after) in moves.required {
                        let successor = linearize_required(&config, rank, after);
                        if successor.base == total {
                            return Outcome::Linearizable;
                        }
                        push(&mut next, used, successor);
                        next_len += 1;
                    }
                    for (class, after) in moves.optional {
                        let successor = linearize_optional(&config, class, after);
                        push(&mut level, used + 1, successor);
                    }
                }
                used += 1;
            }
            if next_len == 0 {
                return self.frontier.into_outcome();
            }
            level = next;
        }
    }

    /// What `config` may linearize next (see the reductions in [`super`]).
    fn moves(&mut self, config: &Config) -> Moves {
        let state = config.state;
        let base = config.base;
        self.frontier.note(base, self.required[base], state);
        let horizon_ns = self.ops[self.required[base]].return_ns;
        let mut required = Vec::new();
        // What pending operations could consume: states they read or compare against, and
        // whether one needs the state to change at all (a failed compare against it).
        let mut wanted: Vec<u32> = Vec::new();
        let mut wants_change = false;
        self.work += u64::try_from(self.open[base].len()).unwrap_or(u64::MAX);
        for &rank in &self.open[base] {
            if config.extra.binary_search(&rank).is_ok() {
                continue;
            }
            let step = self.ops[self.required[rank]].step;
            match step {
                Step::Read(seen) => wanted.push(self.fold(seen)),
                Step::CasApplied { from, .. } => wanted.push(self.fold(from)),
                Step::CasRejected { from } => wants_change |= from == state,
                Step::Write(_) => {}
            }
            match step.apply(state) {
                None => {}
                Some(Effect::Observe) => {
                    return Moves {
                        required: vec![(rank, state)],
                        optional: Vec::new(),
                    };
                }
                Some(Effect::Mutate(after)) => required.push((rank, after)),
            }
        }

        let mut optional = Vec::new();
        let called = self
            .class_first_call_ns
            .partition_point(|&call_ns| call_ns <= horizon_ns);
        self.work += u64::try_from(called).unwrap_or(u64::MAX);
        for class in 0..called {
            let used = config
                .counts
                .binary_search_by_key(&class, |&(class, _)| class)
                .map_or(0, |at| config.counts[at].1);
            let Some(&member) = self.classes[class].get(used) else {
                continue;
            };
            let op = &self.ops[member];
            if op.call_ns > horizon_ns {
                continue;
            }
            if let Step::CasApplied { from, .. } = op.step {
                wanted.push(self.fold(from));
            }
            if let Some(Effect::Mutate(after)) = op.step.apply(state)
                && self.fold(after) != self.fold(state)
            {
                optional.push((class, after));
            }
        }
        wanted.sort_unstable();
        optional
            .retain(|&(_, after)| wants_change || wanted.binary_search(&self.fold(after)).is_ok());
        Moves { required, optional }
    }

    /// The id under which a state is compared.
    fn fold(&self, state: u32) -> u32 {
        self.folded[index(state)]
    }
}

/// `config` after linearizing the required operation of `rank`, leaving `state`.
fn linearize_required(config: &Config, rank: usize, state: u32) -> Config {
    let mut base = config.base;
    let mut extra = config.extra.clone();
    if rank == base {
        base += 1;
        let absorbed = extra
            .iter()
            .enumerate()
            .take_while(|&(i, &other)| other == base + i)
            .count();
        extra.drain(..absorbed);
        base += absorbed;
    } else if let Err(at) = extra.binary_search(&rank) {
        extra.insert(at, rank);
    }
    Config {
        base,
        extra,
        state,
        counts: config.counts.clone(),
    }
}

/// `config` after using one more member of the optional `class`, leaving `state`.
fn linearize_optional(config: &Config, class: usize, state: u32) -> Config {
    let mut counts = config.counts.clone();
    match counts.binary_search_by_key(&class, |&(class, _)| class) {
        Ok(at) => counts[at].1 += 1,
        Err(at) => counts.insert(at, (class, 1)),
    }
    Config {
        base: config.base,
        extra: config.extra.clone(),
        state,
        counts,
    }
}

fn push(level: &mut Level, used: usize, config: Config) {
    if level.len() <= used {
        level.resize_with(used + 1, Vec::new);
    }
    level[used].push(config);
}

/// Whether `small` used no more members of any class than `large`.
fn at_most(small: &Counts, large: &Counts) -> bool {
    small.iter().all(|&(class, count)| {
        large
            .binary_search_by_key(&class, |&(class, _)| class)
            .is_ok_and(|at| large[at].1 >= count)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Linearizing the earliest pending return absorbs the already linearized ranks that
    /// follow it; linearizing a later one records it as extra.
    #[test]
    fn linearized_set_stays_canonical() {
        let config = Config {
            base: 2,
            extra: vec![3, 4, 6],
            state: 0,
            counts: Vec::new(),
        };
        let after = linearize_required(&config, 2, 1);
        assert_eq!((after.base, after.extra), (5, vec![6]));
        let after = linearize_required(&config, 5, 1);
        assert_eq!((after.base, after.extra), (2, vec![3, 4, 5, 6]));
    }

    /// Dominance between optional counts is pointwise, and missing classes count as zero.
    #[test]
    fn counts_compare_pointwise() {
        assert!(at_most(&vec![], &vec![(1, 1)]));
        assert!(at_most(&vec![(1, 1)], &vec![(0, 1), (1, 2)]));
        assert!(!at_most(&vec![(1, 1)], &vec![(0, 1)]));
        assert!(!at_most(&vec![(1, 3)], &vec![(1, 2)]));
    }
}
