//! Builders for hand-written histories and a deterministic simulator of a correct register.

#![allow(dead_code)] // each test file uses a different part

use std::collections::HashMap;

use hanode_linearize::{CheckBudget, Input, Operation, Output, Report, check};

/// A read by `client` on `key` during `[call_ns, return_ns]` that saw `seen`.
pub fn read(client: u64, key: &str, seen: Option<&str>, call_ns: u64, return_ns: u64) -> Operation {
    op(
        client,
        key,
        Input::Read,
        Output::Read(seen.map(str::to_owned)),
        call_ns,
        return_ns,
    )
}

/// An acknowledged write.
pub fn write(client: u64, key: &str, value: &str, call_ns: u64, return_ns: u64) -> Operation {
    op(
        client,
        key,
        Input::Write(value.to_owned()),
        Output::Write,
        call_ns,
        return_ns,
    )
}

/// A write whose outcome the client never learned.
pub fn write_unknown(client: u64, key: &str, value: &str, call_ns: u64) -> Operation {
    op(
        client,
        key,
        Input::Write(value.to_owned()),
        Output::Unknown,
        call_ns,
        u64::MAX,
    )
}

/// A compare-and-swap that answered `applied`.
pub fn cas(
    client: u64,
    key: &str,
    (from, to): (&str, &str),
    applied: bool,
    call_ns: u64,
    return_ns: u64,
) -> Operation {
    op(
        client,
        key,
        Input::Cas {
            from: from.to_owned(),
            to: to.to_owned(),
        },
        Output::Cas(applied),
        call_ns,
        return_ns,
    )
}

/// Any operation.
pub fn op(
    client: u64,
    key: &str,
    input: Input,
    output: Output,
    call_ns: u64,
    return_ns: u64,
) -> Operation {
    Operation {
        client,
        key: key.to_owned(),
        input,
        output,
        call_ns,
        return_ns,
    }
}

/// Checks with the default budget.
pub fn verdict(history: &[Operation]) -> Report {
    check(history, CheckBudget::default())
}

/// splitmix64: a tiny, well-mixed, deterministic generator.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..bound` (modulo bias is irrelevant here).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// `true` with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// How the simulated workload is shaped.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    pub seed: u64,
    pub clients: u64,
    pub keys: u64,
    pub ops_per_client: usize,
    /// Distinct values written per key; small makes reads ambiguous and CAS succeed often.
    /// `None` writes a unique value every time.
    pub value_space: Option<u64>,
    /// Percentage of operations whose outcome the client does not learn.
    pub unknown_percent: u64,
    /// Percentage of operations that fail without taking effect.
    pub failed_percent: u64,
}

/// A history of a correct linearizable store: each client issues operations one after the
/// other with random gaps and latencies; each operation takes effect at a random instant
/// inside its interval (an unknown-outcome one at a random instant after its call, possibly
/// after the client gave up, or never), and outputs come from applying the operations to a
/// sequential map in the order of those instants.
pub fn simulate(workload: Workload) -> Vec<Operation> {
    let mut rng = SplitMix64::new(workload.seed);
    // (op, instant it takes effect or None)
    let mut planned: Vec<(Operation, Option<u64>)> = Vec::new();
    let mut unique = 0u64;
    for client in 0..workload.clients {
        let mut now = rng.below(50);
        for _ in 0..workload.ops_per_client {
            let key = format!("k{}", rng.below(workload.keys));
            let input = match rng.below(10) {
                0..=3 => Input::Read,
                4..=6 => Input::Write(fresh_value(&mut rng, workload, &mut unique)),
                _ => {
                    let from = match workload.value_space {
                        Some(space) => format!("v{}", rng.below(space)),
                        // Compare against a recent unique value so some swaps apply.
                        None => format!("u{}", unique.saturating_sub(rng.below(6))),
                    };
                    Input::Cas {
                        from,
                        to: fresh_value(&mut rng, workload, &mut unique),
                    }
                }
            };
            let call_ns = now + rng.below(20);
            let latency_ns = 1 + rng.below(100);
            let return_ns = call_ns + latency_ns;
            let outcome = rng.below(100);
            let (output, effect_ns) = if outcome < workload.unknown_percent {
                let took_effect = rng.percent(50);
                let effect_ns = call_ns + rng.below(4 * latency_ns);
                (Output::Unknown, took_effect.then_some(effect_ns))
            } else if outcome < workload.unknown_percent + workload.failed_percent {
                (Output::Failed, None)
            } else {
                // Placeholder; the sequential replay fills in the real output.
                (Output::Write, Some(call_ns + rng.below(latency_ns + 1)))
            };
            planned.push((
                Operation {
                    client,
                    key,
                    input,
                    output,
                    call_ns,
                    return_ns,
                },
                effect_ns,
            ));
            now = return_ns;
        }
    }

    let mut order: Vec<usize> = (0..planned.len())
        .filter(|i| planned[*i].1.is_some())
        .collect();
    order.sort_by_key(|i| (planned[*i].1, *i));
    let mut store: HashMap<String, String> = HashMap::new();
    for i in order {
        let (op, _) = &mut planned[i];
        let current = store.get(&op.key).cloned();
        let result = match &op.input {
            Input::Read => Output::Read(current),
            Input::Write(value) => {
                store.insert(op.key.clone(), value.clone());
                Output::Write
            }
            Input::Cas { from, to } => {
                let applied = current.as_deref() == Some(from.as_str());
                if applied {
                    store.insert(op.key.clone(), to.clone());
                }
                Output::Cas(applied)
            }
        };
        if op.output != Output::Unknown {
            op.output = result;
        }
    }
    planned.into_iter().map(|(op, _)| op).collect()
}

/// A value to write: from the small value space, or the next unique one.
fn fresh_value(rng: &mut SplitMix64, workload: Workload, unique: &mut u64) -> String {
    match workload.value_space {
        Some(space) => format!("v{}", rng.below(space)),
        None => {
            *unique += 1;
            format!("u{unique}")
        }
    }
}
