//! `hanode-jepsen`: runs seeded fault scenarios against an in-process three-member cluster and
//! checks every history for linearizability (`make jepsen SEEDS=N`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use hanode_testkit::jepsen::{RunConfig, run};

#[derive(Parser)]
#[command(
    name = "hanode-jepsen",
    about = "Fault injection with a linearizability check"
)]
struct Args {
    /// Number of seeded runs.
    #[arg(long, default_value_t = 10)]
    seeds: u64,
    /// First seed (a failing run prints its seed; rerun it with --first-seed S --seeds 1).
    #[arg(long, default_value_t = 1)]
    first_seed: u64,
    /// Seconds of client load per run.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 6)]
    clients: usize,
    /// Print each run's report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut runs, mut operations, mut faults, mut anomalies, mut failed_seeds) =
        (0, 0, 0, 0, Vec::new());
    for seed in args.first_seed..args.first_seed + args.seeds {
        let config = RunConfig {
            seed,
            duration: Duration::from_secs(args.secs),
            clients: args.clients,
            ..RunConfig::default()
        };
        match runtime.block_on(run(&config)) {
            Ok(report) => {
                runs += 1;
                operations += report.operations;
                faults += report.faults.len();
                anomalies += report.check.anomalies.len();
                if args.json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    println!(
                        "seed {seed}: {} operations ({} definite), {} faults [{}], {}{}",
                        report.operations,
                        report.definite,
                        report.faults.len(),
                        report.faults.join("; "),
                        if report.check.ok {
                            "linearizable"
                        } else {
                            "NOT LINEARIZABLE"
                        },
                        if report.converged {
                            ""
                        } else {
                            ", members DIVERGED"
                        },
                    );
                    for anomaly in &report.check.anomalies {
                        println!("  anomaly: {}", anomaly.description);
                    }
                    for key in &report.check.undecided_keys {
                        println!("  undecided (budget exhausted): {key}");
                    }
                }
                if !report.ok() {
                    failed_seeds.push(seed);
                }
            }
            Err(e) => {
                println!("seed {seed}: run failed: {e:#}");
                failed_seeds.push(seed);
            }
        }
    }
    println!(
        "{runs} runs, {operations} operations, {faults} faults injected, {anomalies} anomalies{}",
        if failed_seeds.is_empty() {
            String::new()
        } else {
            format!("; failing seeds: {failed_seeds:?}")
        }
    );
    if failed_seeds.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
