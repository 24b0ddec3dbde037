//! Linearizability under faults, CI-sized: short seeded runs of the fault driver (stop and
//! restart, pause, partitions, delays, membership changes) whose histories must be
//! linearizable, with every member converging. `make jepsen SEEDS=N` runs longer.

use std::time::Duration;

use hanode_testkit::jepsen::{RunConfig, run};

/// Seeded fault scenarios produce linearizable histories and converged members.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeded_fault_runs_are_linearizable() -> anyhow::Result<()> {
    for seed in 1..=3 {
        let config = RunConfig {
            seed,
            duration: Duration::from_secs(6),
            ..RunConfig::default()
        };
        let report = run(&config).await?;
        println!(
            "seed {seed}: {} operations ({} definite), faults: {}",
            report.operations,
            report.definite,
            report.faults.join("; ")
        );
        assert!(
            report.definite > 50,
            "seed {seed}: too few definite operations to mean anything"
        );
        assert!(
            !report.faults.is_empty(),
            "seed {seed}: no fault was injected"
        );
        assert!(
            report.check.ok,
            "seed {seed}: {}",
            serde_json::to_string_pretty(&report.check)?
        );
        assert!(report.converged, "seed {seed}: members diverged");
    }
    Ok(())
}
