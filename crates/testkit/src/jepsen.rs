//! A Jepsen-style run: clients read, write and compare-and-swap a few keys on a three-member
//! in-process cluster while a seeded driver injects faults (stop and restart, pause and
//! resume, partitions, delays, membership changes); the recorded history is then checked for
//! linearizability and the members for convergence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use hanode_kv::{
    Compare, CompareResult, CompareTarget, KvBackend, KvError, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};
use hanode_linearize::{CheckBudget, Input, Output, Recorder, Report};
use hanode_store::StoreNode;

use crate::{ClusterOptions, TestCluster};

/// Knobs of a run.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Seed of the fault schedule and the clients' choices.
    pub seed: u64,
    /// How long clients run.
    pub duration: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Keys (independent registers).
    pub keys: usize,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            seed: 1,
            duration: Duration::from_secs(8),
            clients: 6,
            keys: 4,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// The seed, to reproduce it.
    pub seed: u64,
    /// Operations recorded.
    pub operations: usize,
    /// Operations with a definite answer.
    pub definite: usize,
    /// Faults injected, in order.
    pub faults: Vec<String>,
    /// The linearizability verdict.
    pub check: Report,
    /// Whether every member ended with the same values for every key.
    pub converged: bool,
}

impl RunReport {
    /// True when the history is linearizable and the members converged.
    pub fn ok(&self) -> bool {
        self.check.ok && self.converged
    }
}

type Handles = Arc<RwLock<Vec<Option<StoreNode>>>>;

fn handles_of(cluster: &TestCluster) -> Vec<Option<StoreNode>> {
    (0..cluster.len())
        .map(|i| cluster.live().contains(&i).then(|| cluster.node(i).clone()))
        .collect()
}

/// What the client saw, as the checker's vocabulary. `None` for errors that may or may not
/// have applied.
fn definite(error: &KvError) -> bool {
    // NoLeader and Unhealthy mean the request was never appended to any log.
    matches!(error, KvError::NoLeader | KvError::Unhealthy)
}

async fn client(
    id: u64,
    keys: usize,
    seed: u64,
    handles: Handles,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (id.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let node = {
            let live: Vec<StoreNode> = handles
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .flatten()
                .cloned()
                .collect();
            if live.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            live[rng.random_range(0..live.len())].clone()
        };
        let key = format!("jepsen/{}", rng.random_range(0..keys));
        seq += 1;
        let value = format!("c{id}-{seq}");
        let choice = rng.random_range(0..10);
        if choice < 4 {
            let op = recorder.invoke(id, &key, Input::Read);
            let output = match node
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await
            {
                Ok(resp) => Output::Read(
                    resp.kvs
                        .first()
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                ),
                Err(_) => Output::Failed,
            };
            let _ = recorder.complete(op, output);
        } else if choice < 7 {
            let op = recorder.invoke(id, &key, Input::Write(value.clone()));
            let put = PutRequest {
                key: key.clone().into_bytes(),
                value: value.into_bytes(),
                ..Default::default()
            };
            let output = match node.put(put).await {
                Ok(_) => Output::Write,
                Err(e) if definite(&e) => Output::Failed,
                Err(_) => Output::Unknown,
            };
            let _ = recorder.complete(op, output);
        } else {
            // CAS from the value a serializable read saw: often stale, so both outcomes occur.
            let seen = node
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    serializable: true,
                    ..Default::default()
                })
                .await
                .ok()
                .and_then(|r| {
                    r.kvs
                        .first()
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                });
            let Some(from) = seen else { continue };
            let op = recorder.invoke(
                id,
                &key,
                Input::Cas {
                    from: from.clone(),
                    to: value.clone(),
                },
            );
            let txn = TxnRequest {
                compare: vec![Compare {
                    result: CompareResult::Equal,
                    target: CompareTarget::Value(from.into_bytes()),
                    key: key.clone().into_bytes(),
                    range_end: Vec::new(),
                }],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.into_bytes(),
                    value: value.into_bytes(),
                    ..Default::default()
                })],
                failure: Vec::new(),
            };
            let output = match node.txn(txn).await {
                Ok(resp) => Output::Cas(resp.succeeded),
                Err(e) if definite(&e) => Output::Failed,
                Err(_) => Output::Unknown,
            };
            let _ = recorder.complete(op, output);
        }
        ops.fetch_add(1, Ordering::Relaxed);
    }
}

/// One fault: inject, hold, repair. Returns its description.
async fn inject(cluster: &mut TestCluster, handles: &Handles, rng: &mut StdRng) -> Result<String> {
    let hold = Duration::from_millis(rng.random_range(500..1500));
    let live = cluster.live();
    let target = live[rng.random_range(0..live.len())];
    let leader = cluster.leader(Duration::from_secs(10)).await.ok();
    let fault = rng.random_range(0..6);
    let text = match fault {
        0 => {
            let victim = if rng.random_bool(0.5) {
                leader.unwrap_or(target)
            } else {
                target
            };
            handles.write().unwrap_or_else(|p| p.into_inner())[victim] = None;
            cluster.stop(victim).await;
            tokio::time::sleep(hold).await;
            // The stopped member's last handles may still be closing its database.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            while let Err(e) = cluster.restart(victim).await {
                anyhow::ensure!(
                    tokio::time::Instant::now() < deadline,
                    "restarting n{}: {e:#}",
                    victim + 1
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            format!("stop n{} for {hold:?}, restart", victim + 1)
        }
        1 => {
            let victim = leader.unwrap_or(target);
            cluster.pause(victim);
            tokio::time::sleep(hold).await;
            cluster.heal();
            format!("pause n{} (leader) for {hold:?}", victim + 1)
        }
        2 => {
            let rest: Vec<usize> = live.iter().copied().filter(|i| *i != target).collect();
            cluster.partition(&[&[target], &rest]);
            tokio::time::sleep(hold).await;
            cluster.heal();
            format!("partition n{} from the others for {hold:?}", target + 1)
        }
        3 => {
            let victim = leader.unwrap_or(target);
            cluster.isolate(victim);
            tokio::time::sleep(hold).await;
            cluster.heal();
            format!("isolate the leader n{} for {hold:?}", victim + 1)
        }
        4 => {
            for from in &live {
                for to in &live {
                    if from != to {
                        cluster.delay(*from, *to, Duration::from_millis(rng.random_range(5..60)));
                    }
                }
            }
            tokio::time::sleep(hold).await;
            cluster.heal();
            format!("random peer delays up to 60 ms for {hold:?}")
        }
        _ => {
            // Membership change under load: a fourth member joins as a learner, then is removed.
            let index = cluster.join().await?;
            handles
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(None);
            tokio::time::sleep(hold).await;
            let id = cluster.node_id(index);
            let leader = cluster.leader(Duration::from_secs(10)).await?;
            cluster.node(leader).member_remove(id).await?;
            cluster.stop(index).await;
            format!("add learner n{} then remove it", index + 1)
        }
    };
    *handles.write().unwrap_or_else(|p| p.into_inner()) = handles_of(cluster);
    Ok(text)
}

/// Runs one seeded scenario.
pub async fn run(config: &RunConfig) -> Result<RunReport> {
    crate::init();
    let options = ClusterOptions {
        snapshot_logs_since_last: 300,
        logs_to_keep_after_snapshot: 50,
        request_timeout: Duration::from_secs(2),
        ..ClusterOptions::default()
    };
    let mut cluster = TestCluster::start_with(3, options).await?;
    let handles: Handles = Arc::new(RwLock::new(handles_of(&cluster)));
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for id in 0..config.clients as u64 {
        clients.push(tokio::spawn(client(
            id,
            config.keys,
            config.seed,
            handles.clone(),
            recorder.clone(),
            stop.clone(),
            ops.clone(),
        )));
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut faults = Vec::new();
    let end = tokio::time::Instant::now() + config.duration;
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..800))).await;
        if tokio::time::Instant::now() >= end {
            break;
        }
        faults.push(inject(&mut cluster, &handles, &mut rng).await?);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    cluster.heal();

    // Final linearizable reads of every key go into the history too, so a lost write shows.
    let leader = cluster.leader(Duration::from_secs(15)).await?;
    for k in 0..config.keys {
        let key = format!("jepsen/{k}");
        let op = recorder.invoke(u64::MAX, &key, Input::Read);
        let read = cluster
            .node(leader)
            .range(RangeRequest {
                key: key.clone().into_bytes(),
                ..Default::default()
            })
            .await?;
        let _ = recorder.complete(
            op,
            Output::Read(
                read.kvs
                    .first()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            ),
        );
    }
    // Every live member applies up to the leader's position and holds the same values.
    let target = cluster
        .node(leader)
        .metrics()
        .last_applied
        .map_or(0, |l| l.index);
    let mut converged = true;
    for index in cluster.live() {
        if cluster
            .wait_applied(index, target, Duration::from_secs(15))
            .await
            .is_err()
        {
            converged = false;
            continue;
        }
        for k in 0..config.keys {
            let req = RangeRequest {
                key: format!("jepsen/{k}").into_bytes(),
                serializable: true,
                ..Default::default()
            };
            let here = cluster.node(index).range(req.clone()).await?.kvs;
            let there = cluster.node(leader).range(req).await?.kvs;
            converged &= here == there;
        }
    }
    let history = recorder.history();
    let definite = history
        .iter()
        .filter(|op| !matches!(op.output, Output::Unknown | Output::Failed))
        .count();
    let check = hanode_linearize::check(&history, CheckBudget::default());
    cluster.shutdown().await;
    Ok(RunReport {
        seed: config.seed,
        operations: history.len(),
        definite,
        faults,
        check,
        converged,
    })
}
