//! Large simulated histories: a correct register is accepted, a single corrupted read is not.

mod common;

use std::time::Instant;

use common::{SplitMix64, Workload, simulate, verdict};
use hanode_linearize::{CheckBudget, Input, Operation, Output, check};

/// One key, 8 clients, 2000 operations, values from a small space so that reads are ambiguous
/// and swaps often apply.
const CONTENDED: Workload = Workload {
    seed: 1,
    clients: 8,
    keys: 1,
    ops_per_client: 250,
    value_space: Some(4),
    unknown_percent: 0,
    failed_percent: 0,
};

/// Simulated histories of a correct register are accepted, for several seeds, with and
/// without unknown and failed outcomes, with one or several keys.
#[test]
fn simulated_linearizable_register_is_accepted() {
    let workloads = [
        CONTENDED,
        Workload {
            seed: 2,
            ..CONTENDED
        },
        Workload {
            seed: 3,
            value_space: None,
            ..CONTENDED
        },
        Workload {
            seed: 4,
            unknown_percent: 5,
            failed_percent: 5,
            ..CONTENDED
        },
        Workload {
            seed: 5,
            value_space: None,
            unknown_percent: 5,
            failed_percent: 5,
            ..CONTENDED
        },
        Workload {
            seed: 6,
            keys: 5,
            unknown_percent: 2,
            failed_percent: 2,
            ..CONTENDED
        },
    ];
    for workload in workloads {
        let history = simulate(workload);
        assert_eq!(history.len(), 2_000);
        let started = Instant::now();
        let report = verdict(&history);
        eprintln!("{workload:?}: {:?}", started.elapsed());
        assert!(report.ok, "{workload:?}: {report}");
        assert_eq!(report.keys_checked, workload.keys as usize);
    }
}

/// Indexes of the definite reads in `history`.
fn definite_reads(history: &[Operation]) -> Vec<usize> {
    history
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op.output, Output::Read(_)))
        .map(|(i, _)| i)
        .collect()
}

/// Changing one read of a valid simulated history to a value nobody ever wrote makes it
/// rejected, and the anomaly points at that read.
#[test]
fn one_read_of_a_never_written_value_is_rejected() {
    for seed in 10..13 {
        let mut history = simulate(Workload {
            seed,
            value_space: None,
            unknown_percent: 3,
            failed_percent: 3,
            ..CONTENDED
        });
        assert!(
            verdict(&history).ok,
            "seed {seed}: valid before the mutation"
        );
        let reads = definite_reads(&history);
        let mut rng = SplitMix64::new(seed);
        let victim = reads[rng.below(reads.len() as u64) as usize];
        history[victim].output = Output::Read(Some("never-written".into()));
        let started = Instant::now();
        let report = verdict(&history);
        eprintln!("seed {seed}: rejected in {:?}", started.elapsed());
        assert!(!report.ok, "seed {seed}: mutation at {victim} accepted");
        assert_eq!(report.anomalies.len(), 1, "{report}");
        let anomaly = &report.anomalies[0];
        assert!(anomaly.operations.contains(&history[victim]), "{report}");
        assert!(anomaly.description.contains("never-written"), "{report}");
    }
}

/// With unknown outcomes over only four distinct values, unknown writes could explain many
/// reads and all those explanations must be ruled out; one impossible read is still found
/// within the default budget.
#[test]
fn impossible_read_among_unknown_writes_over_few_values_is_rejected() {
    let mut history = simulate(Workload {
        seed: 10,
        unknown_percent: 3,
        ..CONTENDED
    });
    assert!(verdict(&history).ok, "valid before the mutation");
    let reads = definite_reads(&history);
    let mut rng = SplitMix64::new(10);
    let victim = reads[rng.below(reads.len() as u64) as usize];
    history[victim].output = Output::Read(Some("never-written".into()));
    let started = Instant::now();
    let report = verdict(&history);
    eprintln!("rejected in {:?}", started.elapsed());
    assert!(!report.ok, "mutation at {victim} accepted");
    assert_eq!(report.anomalies.len(), 1, "{report}");
    assert!(
        report.anomalies[0].description.contains("never-written"),
        "{report}"
    );
}

/// Changing one read to a value that exists but whose every write was called only after the
/// read returned (a read from the future) makes the history rejected. Values are unique, so
/// the search must rule out every ordering of the concurrent operations before the read.
#[test]
fn one_read_of_a_value_from_the_future_is_rejected() {
    for seed in 20..23 {
        let mut history = simulate(Workload {
            seed,
            value_space: None,
            ..CONTENDED
        });
        assert!(
            verdict(&history).ok,
            "seed {seed}: valid before the mutation"
        );
        let reads = definite_reads(&history);
        let mut rng = SplitMix64::new(seed);
        // A read in the middle third, and a value first written well after it returned.
        let victim = loop {
            let candidate = reads[rng.below(reads.len() as u64) as usize];
            let return_ns = history[candidate].return_ns;
            let (first, last) = (history.len() / 3, 2 * history.len() / 3);
            let mid_history = history.iter().filter(|op| op.call_ns < return_ns).count();
            if (first..last).contains(&mid_history) {
                break candidate;
            }
        };
        let return_ns = history[victim].return_ns;
        let future = history
            .iter()
            .filter_map(|op| match &op.input {
                Input::Write(value) if op.call_ns > return_ns => Some(value.clone()),
                _ => None,
            })
            .next()
            .unwrap();
        assert!(
            history.iter().all(|op| op.call_ns > return_ns
                || !matches!(&op.input, Input::Write(v) | Input::Cas { to: v, .. } if *v == future)),
            "values are unique"
        );
        history[victim].output = Output::Read(Some(future));
        let started = Instant::now();
        let report = verdict(&history);
        eprintln!("seed {seed}: rejected in {:?}", started.elapsed());
        assert!(!report.ok, "seed {seed}: mutation at {victim} accepted");
        assert!(
            report.anomalies[0].operations.contains(&history[victim]),
            "{report}"
        );
    }
}

/// A budget too small for the history leaves the key undecided: the report is not ok, yet it
/// does not claim an anomaly it did not find.
#[test]
fn exhausted_budget_reports_the_key_undecided() {
    let history = simulate(CONTENDED);
    let report = check(
        &history,
        CheckBudget {
            // Fewer steps than operations: neither search can get to the end.
            max_steps_per_key: 1_000,
            ..CheckBudget::default()
        },
    );
    assert!(!report.ok);
    assert!(report.anomalies.is_empty(), "{report}");
    assert_eq!(report.undecided_keys, vec!["k0".to_owned()]);
}
