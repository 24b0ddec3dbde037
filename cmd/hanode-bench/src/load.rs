//! Closed-loop workloads: N client tasks over M connections, each issuing one request at a
//! time until the total or the duration is reached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, ValueEnum};
use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp, WatchOptions};
use rand::Rng;

use crate::stats::{Samples, Summary};
use crate::target::EndpointSet;

/// Which members clients talk to.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Spread {
    /// Every connection to the leader.
    Leader,
    /// Connections spread over all endpoints.
    All,
}

/// Read consistency.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub enum Consistency {
    /// Linearizable (read index through the leader).
    L,
    /// Serializable (local).
    S,
}

/// Knobs shared by workloads.
#[derive(Args, Clone, Debug)]
pub struct LoadArgs {
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Connections the clients share (0 = min(clients, 16)).
    #[arg(long, default_value_t = 0)]
    pub conns: usize,
    /// Requests per run.
    #[arg(long, default_value_t = 10_000)]
    pub total: u64,
    /// Stop a run after this many seconds even if `total` is not reached.
    #[arg(long, default_value_t = 60)]
    pub max_secs: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Random keys out of this many (0 = sequential keys).
    #[arg(long, default_value_t = 100_000)]
    pub key_space: u64,
    /// Which members to send to.
    #[arg(long, value_enum, default_value = "leader")]
    pub target: Spread,
    /// Read consistency (range).
    #[arg(long, value_enum, default_value = "l")]
    pub consistency: Consistency,
}

/// A workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Put.
    Put,
    /// Range of one key.
    Range,
    /// Txn with one put.
    TxnPut,
    /// Put, then time until watchers see the event.
    WatchLatency,
    /// Lease keep-alive round trips.
    LeaseKeepAlive,
}

fn key(prefix: &str, n: u64, size: usize) -> Vec<u8> {
    let mut key = format!("{prefix}{n:020}").into_bytes();
    key.resize(size.max(prefix.len() + 1), b'k');
    key
}

async fn connections(set: &EndpointSet, args: &LoadArgs) -> Result<Vec<Client>> {
    let endpoints = match args.target {
        Spread::Leader => vec![set.leader().await?],
        Spread::All => set.endpoints.clone(),
    };
    let conns = if args.conns == 0 {
        args.clients.clamp(1, 16)
    } else {
        args.conns
    };
    let mut clients = Vec::with_capacity(conns);
    for i in 0..conns {
        clients.push(set.connect(&endpoints[i % endpoints.len()]).await?);
    }
    Ok(clients)
}

fn progress(label: String, issued: Arc<AtomicU64>, total: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let done = issued.load(Ordering::Relaxed).min(total);
            eprint!("\r  {label}: {done}/{total} requests   ");
        }
    })
}

/// Runs one workload against one endpoint set.
pub async fn run(set: &EndpointSet, workload: Workload, args: &LoadArgs) -> Result<Summary> {
    match workload {
        Workload::WatchLatency => return watch_latency(set, args).await,
        Workload::LeaseKeepAlive => return lease_keep_alive(set, args).await,
        _ => {}
    }
    let clients = connections(set, args).await?;
    let value: Arc<Vec<u8>> = Arc::new(
        (0..args.val_size)
            .map(|_| rand::rng().random_range(b'a'..=b'z'))
            .collect(),
    );
    let read_key = key("bench/range/", 0, args.key_size);
    if workload == Workload::Range {
        clients[0]
            .clone()
            .put(read_key.clone(), value.to_vec(), None)
            .await?;
    }
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let label = format!("{:?} on {}", workload, set.label);
    let ticker = progress(label, issued.clone(), args.total);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.clients {
        let mut client = clients[task % clients.len()].clone();
        let issued = issued.clone();
        let value = value.clone();
        let read_key = read_key.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::new();
            let serializable = args.consistency == Consistency::S;
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= args.total || Instant::now() >= deadline {
                    break;
                }
                let id = if args.key_space == 0 {
                    n
                } else {
                    rand::rng().random_range(0..args.key_space)
                };
                let begin = Instant::now();
                let result = match workload {
                    Workload::Put => client
                        .put(key("bench/put/", id, args.key_size), value.to_vec(), None)
                        .await
                        .map(|_| ()),
                    Workload::Range => {
                        let options = if serializable {
                            Some(GetOptions::new().with_serializable())
                        } else {
                            None
                        };
                        client.get(read_key.clone(), options).await.map(|_| ())
                    }
                    Workload::TxnPut => {
                        let op =
                            TxnOp::put(key("bench/txn/", id, args.key_size), value.to_vec(), None);
                        client.txn(Txn::new().and_then([op])).await.map(|_| ())
                    }
                    Workload::WatchLatency | Workload::LeaseKeepAlive => {
                        unreachable!("handled above")
                    }
                };
                match result {
                    Ok(()) => samples.record(begin.elapsed()),
                    Err(_) => samples.errors += 1,
                }
            }
            samples
        }));
    }
    let mut merged = Samples::new();
    for task in tasks {
        merged.merge(&task.await?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    eprint!("\r");
    Ok(merged.summary(elapsed))
}

/// Writers put keys (paced by the clients' round trips); every watcher on the prefix records
/// the time from the put's send to its event.
async fn watch_latency(set: &EndpointSet, args: &LoadArgs) -> Result<Summary> {
    let prefix = format!("bench/watch/{}/", rand::random::<u32>());
    let watchers = args.conns.max(1);
    let sent: Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, Instant>>> = Arc::default();
    let mut streams = Vec::new();
    for i in 0..watchers {
        let endpoint = &set.endpoints[i % set.endpoints.len()];
        let mut client = set.connect(endpoint).await?;
        let stream = client
            .watch(prefix.clone(), Some(WatchOptions::new().with_prefix()))
            .await?;
        streams.push((client, stream));
    }
    let expected = args.total;
    let started = Instant::now();
    let mut readers = Vec::new();
    for (_client, mut stream) in streams {
        let sent = sent.clone();
        readers.push(tokio::spawn(async move {
            let mut samples = Samples::new();
            let mut seen = 0;
            while seen < expected {
                let Ok(Ok(Some(message))) =
                    tokio::time::timeout(Duration::from_secs(10), stream.message()).await
                else {
                    samples.errors += expected - seen;
                    break;
                };
                for event in message.events() {
                    let Some(kv) = event.kv() else { continue };
                    let at = sent
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(kv.key())
                        .copied();
                    if let Some(at) = at {
                        samples.record(at.elapsed());
                    }
                    seen += 1;
                }
            }
            samples
        }));
    }
    let mut writer = set.connect(&set.leader().await?).await?;
    let value = vec![b'w'; args.val_size];
    for n in 0..expected {
        let k = key(&prefix, n, args.key_size);
        sent.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(k.clone(), Instant::now());
        writer
            .put(k, value.clone(), Some(PutOptions::new()))
            .await?;
    }
    let mut merged = Samples::new();
    for reader in readers {
        merged.merge(&reader.await?);
    }
    Ok(merged.summary(started.elapsed()))
}

/// Clients each renew their own lease in a loop; latency is one keep-alive round trip.
async fn lease_keep_alive(set: &EndpointSet, args: &LoadArgs) -> Result<Summary> {
    let clients = connections(set, args).await?;
    let issued = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.max_secs);
    let ticker = progress(
        format!("LeaseKeepAlive on {}", set.label),
        issued.clone(),
        args.total,
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..args.clients {
        let mut client = clients[task % clients.len()].clone();
        let issued = issued.clone();
        let total = args.total;
        tasks.push(tokio::spawn(async move {
            let mut samples = Samples::new();
            let Ok(lease) = client.lease_grant(60, None).await else {
                samples.errors += 1;
                return samples;
            };
            let Ok((mut keeper, mut replies)) = client.lease_keep_alive(lease.id()).await else {
                samples.errors += 1;
                return samples;
            };
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total || Instant::now() >= deadline {
                    break;
                }
                let begin = Instant::now();
                let ok = keeper.keep_alive().await.is_ok()
                    && matches!(replies.message().await, Ok(Some(reply)) if reply.ttl() > 0);
                if ok {
                    samples.record(begin.elapsed())
                } else {
                    samples.errors += 1
                }
            }
            let _ = client.lease_revoke(lease.id()).await;
            samples
        }));
    }
    let mut merged = Samples::new();
    for task in tasks {
        merged.merge(&task.await?);
    }
    let elapsed = started.elapsed();
    ticker.abort();
    eprint!("\r");
    Ok(merged.summary(elapsed))
}
