//! The failover timer: under a steady write load, kill (or pause) the leader and measure how
//! long writes stop, how long the election takes, and whether every acknowledged write is
//! still there.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use etcd_client::{Client, GetOptions};
use serde::Serialize;

use crate::procs;
use crate::target::EndpointSet;

/// How the leader is taken out.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// SIGKILL, then restart it from its command line.
    Kill,
    /// SIGSTOP for `--stop-secs`, then SIGCONT.
    Stop,
}

/// Failover knobs.
#[derive(Args, Clone, Debug)]
pub struct FailoverArgs {
    /// Fault to inject.
    #[arg(long, value_enum, default_value = "kill")]
    pub fault: Fault,
    /// How long a stopped leader stays stopped.
    #[arg(long, default_value_t = 5)]
    pub stop_secs: u64,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Seconds of load before the fault.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Seconds of load after the fault (after the pause ends, for `stop`).
    #[arg(long, default_value_t = 4)]
    pub after_secs: u64,
    /// Where a restarted process logs.
    #[arg(long, default_value = "/tmp/hanode-bench-restart.log")]
    pub restart_log: std::path::PathBuf,
}

/// What one failover measured.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverReport {
    /// Endpoint set.
    pub label: String,
    /// Fault injected.
    pub fault: Fault,
    /// The leader's endpoint.
    pub leader: String,
    /// Longest gap between consecutive acknowledged writes after the fault: the last ack
    /// before the outage to the first after it.
    pub window_ms: f64,
    /// Fault to the moment another member reported a new leader.
    pub election_ms: Option<f64>,
    /// Writes acknowledged.
    pub acked: usize,
    /// Acknowledged writes read back with the acknowledged value.
    pub read_back: usize,
    /// Writes that failed and were retried.
    pub retries: u64,
}

impl FailoverReport {
    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{} {:?} of leader {}: writes stopped for {:.0} ms, new leader after {} ; {} acked, {} read back{}",
            self.label,
            self.fault,
            self.leader,
            self.window_ms,
            self.election_ms
                .map_or("-".to_string(), |ms| format!("{ms:.0} ms")),
            self.acked,
            self.read_back,
            if self.acked == self.read_back {
                ""
            } else {
                "  LOST WRITES"
            }
        )
    }
}

struct Writer {
    acks: Vec<(u64, Instant)>,
    retries: u64,
}

async fn write_loop(
    set: EndpointSet,
    prefix: String,
    stop: Arc<AtomicBool>,
    start_at: usize,
) -> Writer {
    let mut clients: Vec<Option<Client>> = vec![None; set.endpoints.len()];
    let mut target = start_at % set.endpoints.len();
    let mut writer = Writer {
        acks: Vec::new(),
        retries: 0,
    };
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        if clients[target].is_none() {
            clients[target] = set.connect(&set.endpoints[target]).await.ok();
        }
        let Some(client) = clients[target].as_mut() else {
            target = (target + 1) % set.endpoints.len();
            writer.retries += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let key = format!("{prefix}{seq:08}");
        match tokio::time::timeout(
            Duration::from_secs(2),
            client.put(key, seq.to_string(), None),
        )
        .await
        {
            Ok(Ok(_)) => {
                writer.acks.push((seq, Instant::now()));
                seq += 1;
            }
            _ => {
                // Unacknowledged: retry the same key elsewhere (a retry writes the same value).
                clients[target] = None;
                target = (target + 1) % set.endpoints.len();
                writer.retries += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    writer
}

/// Runs one failover against `set`.
pub async fn run(set: &EndpointSet, args: &FailoverArgs) -> Result<FailoverReport> {
    let leader = set.leader().await?;
    let statuses = set.statuses().await;
    let leader_index = set
        .endpoints
        .iter()
        .position(|e| *e == leader)
        .context("leader endpoint")?;
    let (leader_id, _) = statuses[leader_index].context("leader status")?;
    let (host, port) = procs::host_port(&leader)?;
    let pid = procs::pid_listening_on(host, port)?;
    let spec = procs::capture(pid)?;

    let run_id = rand::random::<u32>();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..args.writers {
        let prefix = format!("bench/failover/{run_id:08x}/{w}/");
        // Writers start on the followers, as clients of a load-balanced cluster would be spread.
        let start_at = leader_index + 1 + w;
        writers.push(tokio::spawn(write_loop(
            set.clone(),
            prefix,
            stop.clone(),
            start_at,
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;

    let fault_at = Instant::now();
    match args.fault {
        Fault::Kill => procs::signal(pid, "KILL")?,
        Fault::Stop => procs::signal(pid, "STOP")?,
    }
    let survivors: Vec<String> = set
        .endpoints
        .iter()
        .filter(|e| **e != leader)
        .cloned()
        .collect();
    let survivor_set = set.subset(survivors.clone());
    let mut election_ms = None;
    while fault_at.elapsed() < Duration::from_secs(30) {
        let elected = survivor_set
            .statuses()
            .await
            .into_iter()
            .flatten()
            .any(|(_, l)| l != 0 && l != leader_id);
        if elected {
            election_ms = Some(fault_at.elapsed().as_secs_f64() * 1000.0);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if args.fault == Fault::Stop {
        let resume_at = fault_at + Duration::from_secs(args.stop_secs);
        tokio::time::sleep_until(resume_at.into()).await;
        procs::signal(pid, "CONT")?;
    }
    tokio::time::sleep(Duration::from_secs(args.after_secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked: BTreeMap<(usize, u64), Instant> = BTreeMap::new();
    let mut retries = 0;
    for (w, writer) in writers.into_iter().enumerate() {
        let writer = writer.await?;
        retries += writer.retries;
        for (seq, at) in writer.acks {
            acked.insert((w, seq), at);
        }
    }
    // The outage is the longest silence between two consecutive acknowledgements (over all
    // writers) that ends after the fault: acks still arriving just after the fault were for
    // writes committed before it.
    let mut times: Vec<Instant> = acked.values().copied().collect();
    times.sort();
    let window_ms = times
        .windows(2)
        .filter(|pair| pair[1] > fault_at)
        .map(|pair| pair[1].duration_since(pair[0]).as_secs_f64() * 1000.0)
        .fold(f64::NAN, f64::max);

    // Read back every acknowledged write, linearizably, from a survivor.
    let mut reader = survivor_set.connect(&survivors[0]).await?;
    let mut read_back = 0;
    for w in 0..args.writers {
        let prefix = format!("bench/failover/{run_id:08x}/{w}/");
        let resp = reader
            .get(prefix.clone(), Some(GetOptions::new().with_prefix()))
            .await?;
        let stored: BTreeMap<String, String> = resp
            .kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key_str().unwrap_or_default().to_string(),
                    kv.value_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        read_back += acked
            .keys()
            .filter(|(writer, _)| *writer == w)
            .filter(|(_, seq)| stored.get(&format!("{prefix}{seq:08}")) == Some(&seq.to_string()))
            .count();
    }

    if args.fault == Fault::Kill {
        procs::respawn(&spec, &args.restart_log)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let back = set.statuses().await[leader_index].is_some();
            if back {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the killed member did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(FailoverReport {
        label: set.label.clone(),
        fault: args.fault,
        leader,
        window_ms,
        election_ms,
        acked: acked.len(),
        read_back,
        retries,
    })
}
