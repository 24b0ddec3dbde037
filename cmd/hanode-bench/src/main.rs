//! `hanode-bench`: measures any etcd v3 endpoint set — throughput and latency of standard
//! workloads, leader failover, and a server's footprint — and with `--vs` compares two sets in
//! alternation (A B A B) so that a noisy machine affects both alike.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

mod api;
mod failover;
mod load;
mod procs;
mod stats;
mod target;

use failover::FailoverArgs;
use load::{LoadArgs, Workload};
use stats::Summary;
use target::{EndpointSet, TargetArgs, VsArgs};

#[derive(Parser)]
#[command(
    name = "hanode-bench",
    about = "Benchmark etcd v3 endpoints, side by side"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Common {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    vs: VsArgs,
    /// Rounds per endpoint set (with --vs: A B A B ...).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Put keys.
    Put {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Read one key (linearizable with --consistency l, serializable with s).
    Range {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Transactions of one put.
    TxnPut {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Time from a put to its event on `--conns` watchers.
    WatchLatency {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Lease keep-alive round trips.
    LeaseKeepalive {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Kill or pause the leader under write load; time the outage and check every acked write.
    Failover {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        failover: FailoverArgs,
    },
    /// Idle and loaded memory, CPU per 1k writes and binary size of the process behind the
    /// first endpoint.
    Footprint {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: LoadArgs,
    },
    /// The Kubernetes-style API: paced creates and gets, watch latency, Pod creates and lists
    /// of all Pods, through every server of a set (API URLs, not etcd endpoints).
    Api {
        #[command(flatten)]
        target: api::ApiTarget,
        #[command(flatten)]
        vs: api::ApiVs,
        #[command(flatten)]
        load: api::ApiLoad,
        /// Rounds per server set (with --vs-servers: A B A B ...).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a CA, a server certificate for the given addresses and a client certificate (to
    /// run another etcd with the same TLS setup).
    Certs {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Server addresses (repeatable).
        #[arg(long = "ip", value_delimiter = ',')]
        ips: Vec<String>,
    },
}

#[derive(Serialize)]
struct Pair<T: Serialize> {
    round: usize,
    a: T,
    b: Option<T>,
}

fn sets(common: &Common) -> Result<(EndpointSet, Option<EndpointSet>)> {
    let a = EndpointSet::new(&common.target)?;
    let b = common
        .vs
        .target()
        .map(|t| EndpointSet::new(&t))
        .transpose()?;
    Ok((a, b))
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

async fn compare_load(common: &Common, workload: Workload, load: &LoadArgs) -> Result<()> {
    let (a, b) = sets(common)?;
    let mut pairs = Vec::new();
    for round in 1..=common.rounds {
        let ra = load::run(&a, workload, load).await?;
        let rb = match &b {
            Some(b) => Some(load::run(b, workload, load).await?),
            None => None,
        };
        if !common.json {
            println!("{workload:?} round {round}  {:<8} {}", a.label, ra.line());
            if let (Some(b), Some(rb)) = (&b, &rb) {
                println!("{workload:?} round {round}  {:<8} {}", b.label, rb.line());
                println!(
                    "{workload:?} round {round}  {}/{} throughput x{}  p50 x{}  p99 x{}",
                    a.label,
                    b.label,
                    ratio(ra.ops_per_sec, rb.ops_per_sec),
                    ratio(ra.p50_ms, rb.p50_ms),
                    ratio(ra.p99_ms, rb.p99_ms)
                );
            }
        }
        pairs.push(Pair::<Summary> {
            round,
            a: ra,
            b: rb,
        });
    }
    if common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "workload": format!("{workload:?}"), "load": format!("{load:?}"), "rounds": pairs })
            )?
        );
    }
    Ok(())
}

async fn compare_failover(common: &Common, args: &FailoverArgs) -> Result<()> {
    let (a, b) = sets(common)?;
    let mut pairs = Vec::new();
    for round in 1..=common.rounds {
        let ra = failover::run(&a, args).await?;
        if !common.json {
            println!("failover round {round}  {}", ra.line());
        }
        let rb = match &b {
            Some(b) => {
                let rb = failover::run(b, args).await?;
                if !common.json {
                    println!("failover round {round}  {}", rb.line());
                }
                Some(rb)
            }
            None => None,
        };
        let lost = ra.acked != ra.read_back || rb.as_ref().is_some_and(|r| r.acked != r.read_back);
        pairs.push(Pair {
            round,
            a: ra,
            b: rb,
        });
        anyhow::ensure!(!lost, "acknowledged writes were lost");
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&pairs)?);
    }
    Ok(())
}

#[derive(Serialize)]
struct Footprint {
    label: String,
    pid: u32,
    binary_bytes: u64,
    stripped_bytes: Option<u64>,
    idle_rss_mib: f64,
    loaded_rss_mib: f64,
    cpu_ms_per_1k_writes: f64,
    writes: Summary,
}

async fn footprint_of(set: &EndpointSet, load: &LoadArgs) -> Result<Footprint> {
    let endpoint = set.endpoints.first().context("no endpoint")?;
    let (host, port) = procs::host_port(endpoint)?;
    let pid = procs::pid_listening_on(host, port)?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))?;
    let binary_bytes = std::fs::metadata(&exe)?.len();
    let stripped = std::env::temp_dir().join(format!("hanode-bench-strip-{pid}"));
    let stripped_bytes = std::process::Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(&exe)
        .status()
        .ok()
        .filter(|s| s.success())
        .and_then(|_| std::fs::metadata(&stripped).ok().map(|m| m.len()));
    let _ = std::fs::remove_file(&stripped);
    let idle_rss_mib = procs::rss_kib(pid)? as f64 / 1024.0;
    let cpu_before = procs::cpu_ticks(pid)?;
    let sampling = {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler_peak = peak.clone();
        let sampler = tokio::spawn(async move {
            loop {
                if let Ok(kib) = procs::rss_kib(pid) {
                    sampler_peak.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        (peak, sampler)
    };
    let single = set.subset(vec![endpoint.clone()]);
    let mut writes_load = load.clone();
    writes_load.target = load::Spread::All;
    let writes = load::run(&single, Workload::Put, &writes_load).await?;
    sampling.1.abort();
    let cpu_after = procs::cpu_ticks(pid)?;
    let cpu_ms = (cpu_after - cpu_before) as f64 * 1000.0 / procs::ticks_per_second() as f64;
    Ok(Footprint {
        label: set.label.clone(),
        pid,
        binary_bytes,
        stripped_bytes,
        idle_rss_mib,
        loaded_rss_mib: sampling.0.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0,
        cpu_ms_per_1k_writes: cpu_ms * 1000.0 / writes.ops.max(1) as f64,
        writes,
    })
}

async fn footprint(common: &Common, load: &LoadArgs) -> Result<()> {
    let (a, b) = sets(common)?;
    let mut results = vec![footprint_of(&a, load).await?];
    if let Some(b) = &b {
        results.push(footprint_of(b, load).await?);
    }
    if common.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        for f in &results {
            println!(
                "footprint {:<8} idle RSS {:.1} MiB, loaded RSS {:.1} MiB, CPU {:.0} ms per 1k writes, binary {:.1} MB (stripped {})",
                f.label,
                f.idle_rss_mib,
                f.loaded_rss_mib,
                f.cpu_ms_per_1k_writes,
                f.binary_bytes as f64 / 1e6,
                f.stripped_bytes
                    .map_or("-".into(), |b| format!("{:.1} MB", b as f64 / 1e6)),
            );
        }
    }
    Ok(())
}

async fn compare_api(
    target: &api::ApiTarget,
    vs: &api::ApiVs,
    load: &api::ApiLoad,
    rounds: usize,
    json: bool,
) -> Result<()> {
    let a = api::ApiSet::new(target)?;
    let b = vs.target()?.map(|t| api::ApiSet::new(&t)).transpose()?;
    let mut pairs = Vec::new();
    for round in 1..=rounds {
        let ra = api::run(&a, load).await?;
        let rb = match &b {
            Some(b) => Some(api::run(b, load).await?),
            None => None,
        };
        if !json {
            for (i, (name, sa)) in ra.lines().into_iter().enumerate() {
                println!("api round {round}  {:<8} {name:<22} {}", a.label, sa.line());
                if let (Some(b), Some(rb)) = (&b, &rb) {
                    let sb = rb.lines()[i].1;
                    println!("api round {round}  {:<8} {name:<22} {}", b.label, sb.line());
                    println!(
                        "api round {round}  {}/{} {name:<22} throughput x{}  p50 x{}  p99 x{}",
                        a.label,
                        b.label,
                        ratio(sa.ops_per_sec, sb.ops_per_sec),
                        ratio(sa.p50_ms, sb.p50_ms),
                        ratio(sa.p99_ms, sb.p99_ms)
                    );
                }
            }
        }
        pairs.push(Pair {
            round,
            a: ra,
            b: rb,
        });
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&pairs)?);
    }
    Ok(())
}

fn certs(out: &std::path::Path, ips: &[String]) -> Result<()> {
    use hanode_pki::{ClusterCa, LeafKind, LeafRequest};
    let now = SystemTime::now();
    let ca = ClusterCa::generate(now)?;
    let mut sans = ips.to_vec();
    sans.extend(["127.0.0.1".to_string(), "localhost".to_string()]);
    let server = ca.issue(
        &LeafRequest {
            common_name: "bench-server".into(),
            organizations: vec![],
            sans,
            kind: LeafKind::Server,
        },
        now,
    )?;
    let client = ca.issue(
        &LeafRequest {
            common_name: "root".into(),
            organizations: vec![],
            sans: vec![],
            kind: LeafKind::Client,
        },
        now,
    )?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("ca.crt"), ca.cert_pem())?;
    std::fs::write(out.join("server.crt"), &server.cert_pem)?;
    std::fs::write(out.join("server.key"), &server.key_pem)?;
    std::fs::write(out.join("client.crt"), &client.cert_pem)?;
    std::fs::write(out.join("client.key"), &client.key_pem)?;
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match &cli.command {
            Command::Put { common, load } => compare_load(common, Workload::Put, load).await,
            Command::Range { common, load } => compare_load(common, Workload::Range, load).await,
            Command::TxnPut { common, load } => compare_load(common, Workload::TxnPut, load).await,
            Command::WatchLatency { common, load } => {
                compare_load(common, Workload::WatchLatency, load).await
            }
            Command::LeaseKeepalive { common, load } => {
                compare_load(common, Workload::LeaseKeepAlive, load).await
            }
            Command::Failover { common, failover } => compare_failover(common, failover).await,
            Command::Footprint { common, load } => footprint(common, load).await,
            Command::Api {
                target,
                vs,
                load,
                rounds,
                json,
            } => compare_api(target, vs, load, *rounds, *json).await,
            Command::Certs { out, ips } => certs(out, ips),
        }
    })
}
