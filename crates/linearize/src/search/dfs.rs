//! Phase one: Wing & Gong depth-first search with Lowe's just-in-time linearization.
//!
//! The call and return events of all operations sit in one doubly linked list sorted by time
//! (calls before returns at the same instant, so operations that merely touch count as
//! concurrent). An operation may be linearized only while its call precedes the first
//! remaining return, i.e. while no operation that has already finished is still waiting. A
//! linearized operation is unlinked from the list and relinked when the search backtracks, and
//! a configuration that was already explored (or is dominated, see [`super`]) is not explored
//! again. Unknown-outcome operations have only a call event.

use std::collections::HashMap;

use super::{ABSENT, Effect, Frontier, Limits, Outcome, SearchOp, Step, index};

/// Searches depth first; see the module documentation.
pub(super) fn search(ops: &[SearchOp], folded: &[u32], limits: Limits) -> Outcome {
    Search::new(ops, folded).run(limits)
}

/// What a list node stands for.
#[derive(Clone, Copy, Debug)]
enum Event {
    /// The sentinel that starts and ends the circular list.
    Head,
    /// The call of an operation.
    Call(usize),
    /// The return of a required operation.
    Return(usize),
}

/// A level of the depth-first search: the operations that may be linearized next, and which
/// one is currently applied.
struct Frame {
    candidates: Vec<usize>,
    tried: usize,
    /// The applied candidate and the state before it.
    applied: Option<(usize, u32)>,
}

struct Search<'a> {
    ops: &'a [SearchOp],
    folded: &'a [u32],
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    call_node: Vec<usize>,
    return_node: Vec<Option<usize>>,
    /// Bit position of each operation, in `required` or `optional` depending on its kind.
    bit: Vec<usize>,
    required: Bits,
    optional: Bits,
    memo: Memo,
    frontier: Frontier,
    /// Work done so far, in the units of [`Limits::max_steps`].
    work: u64,
}

impl<'a> Search<'a> {
    fn new(ops: &'a [SearchOp], folded: &'a [u32]) -> Self {
        // Calls sort before returns at the same instant: operations that merely touch count as
        // concurrent, because timestamps cannot order them.
        let mut order: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
        for (index, op) in ops.iter().enumerate() {
            order.push((op.call_ns, 0, index));
            if op.required {
                order.push((op.return_ns, 1, index));
            }
        }
        order.sort_unstable();

        let mut events = Vec::with_capacity(order.len() + 1);
        events.push(Event::Head);
        let mut call_node = vec![0; ops.len()];
        let mut return_node = vec![None; ops.len()];
        let mut bit = vec![0; ops.len()];
        let (mut required_count, mut optional_count) = (0, 0);
        for (_, kind, index) in order {
            let node = events.len();
            // Required operations are numbered in return order: every operation that
            // returned before the earliest pending return is linearized, so the set is a run
            // of full words and a short tail, which the memo stores compactly.
            if kind == 0 {
                events.push(Event::Call(index));
                call_node[index] = node;
                if !ops[index].required {
                    bit[index] = optional_count;
                    optional_count += 1;
                }
            } else {
                events.push(Event::Return(index));
                return_node[index] = Some(node);
                bit[index] = required_count;
                required_count += 1;
            }
        }
        let len = events.len();
        let next = (0..len).map(|node| (node + 1) % len).collect();
        let prev = (0..len).map(|node| (node + len - 1) % len).collect();
        Self {
            ops,
            folded,
            events,
            next,
            prev,
            call_node,
            return_node,
            bit,
            required: Bits::new(required_count),
            optional: Bits::new(optional_count),
            memo: Memo::default(),
            frontier: Frontier::default(),
            work: 0,
        }
    }

    fn run(mut self, limits: Limits) -> Outcome {
        let mut remaining = self.ops.iter().filter(|op| op.required).count();
        if remaining == 0 {
            return Outcome::Linearizable;
        }
        let mut state = ABSENT;
        let mut stack = vec![self.frame(state, false)];
        while let Some(frame) = stack.last_mut() {
            if let Some((op, before)) = frame.applied.take() {
                self.relink(op);
                let position = self.bit[op];
                self.bits(op).clear(position);
                state = before;
                remaining += usize::from(self.ops[op].required);
            }
            let mut advanced = None;
            while let Some(&op) = frame.candidates.get(frame.tried) {
                frame.tried += 1;
                self.work += 1;
                if self.work > limits.max_steps {
                    return Outcome::Undecided;
                }
                let after = match self.ops[op].step.apply(state) {
                    Some(Effect::Mutate(after)) => after,
                    Some(Effect::Observe) => state,
                    None => continue,
                };
                let position = self.bit[op];
                self.bits(op).set(position);
                let fresh = self.memo.visit(
                    self.fold(after),
                    &self.required.words,
                    &self.optional.words,
                    &mut self.work,
                );
                if !fresh {
                    self.bits(op).clear(position);
                    continue;
                }
                if self.memo.len > limits.max_states {
                    return Outcome::Undecided;
                }
                self.unlink(op);
                frame.applied = Some((op, state));
                state = after;
                remaining -= usize::from(self.ops[op].required);
                advanced = Some(op);
                break;
            }
            if remaining == 0 {
                return Outcome::Linearizable;
            }
            if let Some(op) = advanced {
                let frame = self.frame(state, !self.ops[op].required);
                stack.push(frame);
            } else {
                stack.pop();
            }
        }
        self.frontier.into_outcome()
    }

    /// The operations that may be linearized next from `state`, and a note of how far the
    /// search got. `after_optional` says the last linearized operation had an unknown outcome.
    fn frame(&mut self, state: u32, after_optional: bool) -> Frame {
        let mut observation = None;
        let mut required = Vec::new();
        let mut optional: Vec<(usize, u32)> = Vec::new();
        // What the pending operations could consume: states they read or compare against, and
        // whether one of them needs the state to change at all (a failed compare against the
        // current state).
        let mut wanted: Vec<u32> = Vec::new();
        let mut wants_change = false;
        let mut node = self.next[0];
        while node != 0 {
            let op = match self.events[node] {
                Event::Head => break,
                Event::Return(op) => {
                    self.frontier.note(node, op, state);
                    break;
                }
                Event::Call(op) => op,
            };
            node = self.next[node];
            self.work += 1;
            match self.ops[op].step {
                Step::Read(seen) => wanted.push(self.fold(seen)),
                Step::CasApplied { from, .. } => wanted.push(self.fold(from)),
                Step::CasRejected { from } => wants_change |= from == state,
                Step::Write(_) => {}
            }
            match self.ops[op].step.apply(state) {
                None => {}
                // An unknown-outcome operation followed at once by a write is overwritten
                // before anything sees it: leaving it out reaches the same configuration with
                // fewer unknown outcomes used, which the parent frame tries anyway.
                Some(_) if after_optional && matches!(self.ops[op].step, Step::Write(_)) => {}
                // An observation consistent with the current state can always go first: it
                // leaves the state unchanged, and since its call precedes every pending
                // return, moving it earlier in any linearization breaks no real-time order.
                // So trying it alone loses no linearization.
                Some(Effect::Observe) => {
                    observation.get_or_insert(op);
                }
                Some(Effect::Mutate(_)) if self.ops[op].required => required.push(op),
                // An unknown outcome that leaves the state as it is changes nothing.
                Some(Effect::Mutate(after)) if self.fold(after) == self.fold(state) => {}
                Some(Effect::Mutate(after)) => optional.push((op, after)),
            }
        }
        let candidates = match observation {
            Some(op) => vec![op],
            None => {
                // An unknown outcome is only worth applying if a pending operation can use the
                // state it leaves: the next frame refuses writes after it (see above) and has
                // the same pending operations, so otherwise it would have nothing to try.
                wanted.sort_unstable();
                optional.retain(|&(_, after)| {
                    wants_change || wanted.binary_search(&self.fold(after)).is_ok()
                });
                // Pending unknown-outcome operations with the same effect are interchangeable
                // (none has a return to respect), so only the earliest called needs trying.
                let mut distinct: Vec<usize> = Vec::with_capacity(optional.len());
                for (op, _) in optional {
                    if !distinct.iter().any(|&other| self.same_effect(other, op)) {
                        distinct.push(op);
                    }
                }
                // Required operations first: a linearization that leaves unknown outcomes out
                // is found before ones that use them, and remembered configurations with fewer
                // unknown outcomes cover more of the later ones.
                required.extend(distinct);
                required
            }
        };
        Frame {
            candidates,
            tried: 0,
            applied: None,
        }
    }

    /// The id under which a state is remembered.
    fn fold(&self, state: u32) -> u32 {
        self.folded[index(state)]
    }

    fn same_effect(&self, a: usize, b: usize) -> bool {
        let fold = |id: u32| self.fold(id);
        match (self.ops[a].step, self.ops[b].step) {
            (Step::Write(x), Step::Write(y)) => fold(x) == fold(y),
            (Step::CasApplied { from: f, to: x }, Step::CasApplied { from: g, to: y }) => {
                f == g && fold(x) == fold(y)
            }
            _ => false,
        }
    }

    fn bits(&mut self, op: usize) -> &mut Bits {
        if self.ops[op].required {
            &mut self.required
        } else {
            &mut self.optional
        }
    }

    /// Takes a linearized operation's events out of the list.
    fn unlink(&mut self, op: usize) {
        self.detach(self.call_node[op]);
        if let Some(node) = self.return_node[op] {
            self.detach(node);
        }
    }

    /// Puts back the events [`Self::unlink`] took out; only valid in reverse order of
    /// unlinking, which the depth-first search guarantees.
    fn relink(&mut self, op: usize) {
        if let Some(node) = self.return_node[op] {
            self.reattach(node);
        }
        self.reattach(self.call_node[op]);
    }

    fn detach(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    fn reattach(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

/// A fixed-size set of operation bit positions.
struct Bits {
    words: Vec<u64>,
}

impl Bits {
    fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
        }
    }

    fn set(&mut self, position: usize) {
        self.words[position / 64] |= 1 << (position % 64);
    }

    fn clear(&mut self, position: usize) {
        self.words[position / 64] &= !(1 << (position % 64));
    }
}

/// The remembered part of a configuration besides the unknown-outcome operations: the folded
/// state and the linearized required operations, as a count of leading full words and the
/// rest without trailing zero words.
#[derive(PartialEq, Eq, Hash)]
struct MemoKey {
    state: u32,
    full_words: usize,
    tail: Box<[u64]>,
}

/// Explored configurations.
#[derive(Default)]
struct Memo {
    /// For each key, the sets of linearized unknown-outcome operations explored with it,
    /// kept free of supersets (trailing zero words trimmed).
    seen: HashMap<MemoKey, Vec<Box<[u64]>>>,
    /// How many sets are stored in total.
    len: usize,
}

impl Memo {
    /// Remembers a configuration and tells whether it still needs exploring.
    ///
    /// Skipping a configuration whose unknown-outcome set is a superset of a remembered one is
    /// sound: the smaller configuration can make every move the larger one can (the extra
    /// unknown-outcome operations have no return event that could block it) and has the same
    /// goal, so it has a linearization whenever the larger one does.
    /// Adds the comparisons it makes to `work`.
    fn visit(&mut self, state: u32, required: &[u64], optional: &[u64], work: &mut u64) -> bool {
        let full_words = required
            .iter()
            .take_while(|word| **word == u64::MAX)
            .count();
        let rest = &required[full_words..];
        let key = MemoKey {
            state,
            full_words,
            tail: rest[..trimmed_len(rest)].into(),
        };
        let optional = &optional[..trimmed_len(optional)];
        let sets = self.seen.entry(key).or_default();
        *work += 1 + u64::try_from(sets.len()).unwrap_or(u64::MAX);
        if sets.iter().any(|seen| is_subset(seen, optional)) {
            return false;
        }
        let before = sets.len();
        sets.retain(|seen| !is_subset(optional, seen));
        sets.push(optional.into());
        self.len = self.len + sets.len() - before;
        true
    }
}

/// The length of `words` without its trailing zero words.
fn trimmed_len(words: &[u64]) -> usize {
    words
        .iter()
        .rposition(|word| *word != 0)
        .map_or(0, |last| last + 1)
}

/// Whether every bit of `small` is set in `large`; missing words count as zero.
fn is_subset(small: &[u64], large: &[u64]) -> bool {
    small
        .iter()
        .enumerate()
        .all(|(i, word)| word & !large.get(i).copied().unwrap_or(0) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn required(step: Step, call_ns: u64, return_ns: u64) -> SearchOp {
        SearchOp {
            step,
            required: true,
            call_ns,
            return_ns,
        }
    }

    /// A superset of remembered unknown-outcome operations is skipped; a subset is explored
    /// and replaces the supersets it covers.
    #[test]
    fn memo_skips_supersets_and_keeps_subsets() {
        let mut memo = Memo::default();
        assert!(memo.visit(1, &[0b1], &[0b11], &mut 0));
        assert!(!memo.visit(1, &[0b1], &[0b111], &mut 0));
        assert!(memo.visit(1, &[0b1], &[0b01], &mut 0));
        assert_eq!(memo.len, 1, "the subset replaced its superset");
        assert!(!memo.visit(1, &[0b1], &[0b11], &mut 0));
        assert!(
            memo.visit(2, &[0b1], &[0b11], &mut 0),
            "another state is another configuration"
        );
    }

    /// A configuration budget of zero leaves any non-trivial history undecided rather than
    /// reporting a verdict it did not establish.
    #[test]
    fn exhausted_budget_is_undecided() {
        let ops = [required(Step::Write(1), 0, 10)];
        let limits = Limits {
            max_states: 0,
            max_steps: 100,
        };
        assert!(matches!(search(&ops, &[0, 1], limits), Outcome::Undecided));
    }
}
