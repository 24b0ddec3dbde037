//! `hanode-bench api`: the Kubernetes-style API of a set of servers under load, the way
//! controllers and kubectl use it. Per run, in a fresh namespace:
//!
//! 1. create: ConfigMaps at a fixed rate (open loop, spread over the servers); latency counts
//!    from each request's scheduled time, so a stall shows up instead of slowing the load;
//! 2. watch: one watch per server sees every create; latency from the create's send to the
//!    event;
//! 3. get: the ConfigMaps read back at the same rate, each from a server that did not write it;
//! 4. pods: `--pods` Pods created by `--concurrency` closed-loop clients (throughput);
//! 5. list: every server lists all Pods of the namespace as JSON and as a kubectl Table.
//!
//! Everything is bounded: requests by count, each request by a timeout, waits by deadlines.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::stats::{Samples, Summary};

/// How long any one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long watchers may lag behind the last create before the run gives up on them.
const WATCH_DRAIN: Duration = Duration::from_secs(10);

/// Requests in flight at most in the paced phases; past this the schedule slips (and the
/// slip counts in the latency).
const MAX_IN_FLIGHT: usize = 512;

/// What kubectl's `get` asks for.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// The servers to measure.
#[derive(Args, Clone, Debug)]
pub struct ApiTarget {
    /// Comma-separated API server URLs (https://host:6443).
    #[arg(long, value_delimiter = ',', required = true)]
    pub servers: Vec<String>,
    /// CA certificate that signed the servers' certificates (`<data-dir>/pki/ca.crt`).
    #[arg(long)]
    pub cacert: PathBuf,
    /// Client certificate of a `system:masters` user (`<data-dir>/pki/admin.crt`).
    #[arg(long)]
    pub cert: PathBuf,
    /// Its key (`<data-dir>/pki/admin.key`).
    #[arg(long)]
    pub key: PathBuf,
    /// Name of this server set in reports.
    #[arg(long, default_value = "A")]
    pub label: String,
}

/// A second server set for a side-by-side run.
#[derive(Args, Clone, Debug)]
pub struct ApiVs {
    /// API URLs of a second system: runs alternate A B A B and ratios are printed.
    #[arg(long, value_delimiter = ',')]
    pub vs_servers: Vec<String>,
    /// CA for the second set.
    #[arg(long)]
    pub vs_cacert: Option<PathBuf>,
    /// Client certificate for the second set.
    #[arg(long)]
    pub vs_cert: Option<PathBuf>,
    /// Client key for the second set.
    #[arg(long)]
    pub vs_key: Option<PathBuf>,
    /// Name of the second set in reports.
    #[arg(long, default_value = "B")]
    pub vs_label: String,
}

impl ApiVs {
    /// The second set, if one was given.
    pub fn target(&self) -> Result<Option<ApiTarget>> {
        if self.vs_servers.is_empty() {
            return Ok(None);
        }
        let need = |file: &Option<PathBuf>, flag: &str| {
            file.clone()
                .with_context(|| format!("--vs-servers needs {flag} too"))
        };
        Ok(Some(ApiTarget {
            servers: self.vs_servers.clone(),
            cacert: need(&self.vs_cacert, "--vs-cacert")?,
            cert: need(&self.vs_cert, "--vs-cert")?,
            key: need(&self.vs_key, "--vs-key")?,
            label: self.vs_label.clone(),
        }))
    }
}

/// The load.
#[derive(Args, Clone, Debug)]
pub struct ApiLoad {
    /// Creates (and gets) per second in the paced phases.
    #[arg(long, default_value_t = 500.0)]
    pub rate: f64,
    /// Length of each paced phase in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Pods to create, then list.
    #[arg(long, default_value_t = 10_000)]
    pub pods: u64,
    /// Closed-loop clients creating the Pods.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Lists per server and format.
    #[arg(long, default_value_t = 3)]
    pub lists: usize,
    /// Leave the run's namespace and objects in place (to look at them afterwards).
    #[arg(long)]
    pub keep: bool,
}

/// One server set, connected.
pub struct ApiSet {
    /// Report name.
    pub label: String,
    servers: Vec<String>,
    /// One client (one HTTP/2 connection) per server.
    clients: Vec<reqwest::Client>,
}

impl ApiSet {
    /// Reads the certificates and prepares a client per server.
    pub fn new(target: &ApiTarget) -> Result<ApiSet> {
        let read = |path: &PathBuf| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        };
        let ca = read(&target.cacert)?;
        let identity = hanode_pki::CertKey {
            cert_pem: read(&target.cert)?,
            key_pem: read(&target.key)?,
        };
        let mut clients = Vec::new();
        for _ in &target.servers {
            let tls =
                hanode_pki::tls::client_config(&ca, Some(&identity), hanode_pki::tls::ALPN_HTTP)?;
            let client = reqwest::Client::builder()
                .use_preconfigured_tls((*tls).clone())
                .timeout(REQUEST_TIMEOUT)
                .build()?;
            clients.push(client);
        }
        Ok(ApiSet {
            label: target.label.clone(),
            servers: target
                .servers
                .iter()
                .map(|s| s.trim_end_matches('/').to_string())
                .collect(),
            clients,
        })
    }

    fn server(&self, i: u64) -> (&reqwest::Client, &str) {
        let i = (i % self.servers.len() as u64) as usize;
        (&self.clients[i], &self.servers[i])
    }
}

/// What one run measured.
#[derive(Clone, Debug, Serialize)]
pub struct ApiReport {
    /// Server set.
    pub label: String,
    /// ConfigMap creates at the paced rate.
    pub create: Summary,
    /// Create-to-event latency over all watchers.
    pub watch: Summary,
    /// ConfigMap gets at the paced rate.
    pub get: Summary,
    /// Pod creates, closed loop.
    pub pods: Summary,
    /// Full JSON lists of all Pods.
    pub list_json: Summary,
    /// Full Table lists of all Pods (what `kubectl get pods` asks for).
    pub list_table: Summary,
    /// Items in the last list.
    pub listed: u64,
    /// Bytes of the last JSON list.
    pub list_bytes: u64,
}

impl ApiReport {
    /// Human-readable lines.
    pub fn lines(&self) -> Vec<(String, &Summary)> {
        vec![
            ("create".into(), &self.create),
            ("watch".into(), &self.watch),
            ("get".into(), &self.get),
            ("pod-create".into(), &self.pods),
            (format!("list {} pods json", self.listed), &self.list_json),
            (format!("list {} pods table", self.listed), &self.list_table),
        ]
    }
}

/// Sends `request(i)` for i in 0..total at `rate` per second; each latency counts from the
/// request's scheduled time.
async fn paced<F, Fut>(rate: f64, total: u64, request: F) -> Result<Summary>
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let mut running = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let slot = slots.clone().acquire_owned().await?;
        let sent = request(i);
        running.push(tokio::spawn(async move {
            let ok = sent.await;
            drop(slot);
            (ok, scheduled.elapsed())
        }));
    }
    let mut samples = Samples::new();
    for task in running {
        match task.await? {
            (true, latency) => samples.record(latency),
            (false, _) => samples.errors += 1,
        }
    }
    Ok(samples.summary(started.elapsed()))
}

/// Sends one request; true on a 2xx answer.
async fn send(request: reqwest::RequestBuilder) -> bool {
    match request.send().await {
        Ok(response) if response.status().is_success() => response.bytes().await.is_ok(),
        Ok(response) => {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            eprintln!("  {status}: {}", text.chars().take(200).collect::<String>());
            false
        }
        Err(error) => {
            eprintln!("  request failed: {error}");
            false
        }
    }
}

fn config_map(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"key": "x".repeat(200)},
    })
}

fn pod(name: &str, node: u64) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": (node % 8).to_string()}},
        "spec": {
            "nodeName": format!("node-{}", node % 100),
            "containers": [{
                "name": "app",
                "image": "registry.example/app:1.0",
                "ports": [{"containerPort": 8080}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }],
        },
    })
}

/// Create times by object name, shared between the creating tasks and the watchers.
type SendTimes = Arc<Mutex<HashMap<String, Instant>>>;

/// Watches ConfigMaps in `namespace` on one server from `revision`, recording for every
/// ADDED object the time since its create was sent, until `expected` were seen or `until`.
async fn watch_creates(
    client: reqwest::Client,
    url: String,
    sent: SendTimes,
    expected: Arc<std::sync::atomic::AtomicU64>,
    until: Arc<Mutex<Option<Instant>>>,
) -> Samples {
    let mut samples = Samples::new();
    let mut response = match client
        .get(&url)
        .timeout(Duration::from_secs(3600))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            eprintln!("  watch {url}: {}", r.status());
            samples.errors += 1;
            return samples;
        }
        Err(e) => {
            eprintln!("  watch {url}: {e}");
            samples.errors += 1;
            return samples;
        }
    };
    let mut buffer = Vec::new();
    let mut seen = 0u64;
    loop {
        let deadline = until
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let target = expected.load(std::sync::atomic::Ordering::Relaxed);
        if target > 0 && seen >= target {
            break;
        }
        let chunk = match tokio::time::timeout_at(
            deadline.into(),
            // Short polls, so a watcher that has everything notices without another event.
            tokio::time::timeout(Duration::from_millis(200), response.chunk()),
        )
        .await
        {
            Err(_) => break,
            Ok(Err(_)) => continue,
            Ok(Ok(Ok(Some(chunk)))) => chunk,
            Ok(Ok(_)) => break,
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if event["type"] != "ADDED" {
                continue;
            }
            let Some(name) = event["object"]["metadata"]["name"].as_str() else {
                continue;
            };
            let at = sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(name)
                .copied();
            if let Some(at) = at {
                samples.record(at.elapsed());
                seen += 1;
            }
        }
    }
    let target = expected.load(std::sync::atomic::Ordering::Relaxed);
    samples.errors += target.saturating_sub(seen);
    samples
}

/// A list of all Pods in `namespace` from every server, `times` times; (summary, items, bytes).
async fn lists(
    set: &ApiSet,
    namespace: &str,
    accept: &str,
    times: usize,
) -> Result<(Summary, u64, u64)> {
    let mut samples = Samples::new();
    let started = Instant::now();
    let (mut items, mut bytes) = (0, 0);
    for _ in 0..times {
        for (client, server) in set.clients.iter().zip(&set.servers) {
            let begin = Instant::now();
            let response = client
                .get(format!("{server}/api/v1/namespaces/{namespace}/pods"))
                .header("accept", accept)
                .send()
                .await?;
            let status = response.status();
            let body = response.bytes().await?;
            let elapsed = begin.elapsed();
            if !status.is_success() {
                samples.errors += 1;
                continue;
            }
            samples.record(elapsed);
            let list: Value = serde_json::from_slice(&body)?;
            let count = list["items"]
                .as_array()
                .or_else(|| list["rows"].as_array())
                .map_or(0, Vec::len);
            items = count as u64;
            bytes = body.len() as u64;
        }
    }
    Ok((samples.summary(started.elapsed()), items, bytes))
}

/// One full run against `set`.
pub async fn run(set: &ApiSet, load: &ApiLoad) -> Result<ApiReport> {
    let namespace = format!("bench-{:08x}", rand::random::<u32>());
    let (client, server) = set.server(0);
    let created = client
        .post(format!("{server}/api/v1/namespaces"))
        .json(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
        .send()
        .await?;
    if !created.status().is_success() {
        bail!(
            "creating namespace {namespace} on {server}: {} {}",
            created.status(),
            created.text().await.unwrap_or_default()
        );
    }
    let base = |server: &str| format!("{server}/api/v1/namespaces/{namespace}/configmaps");
    let listed: Value = client.get(base(server)).send().await?.json().await?;
    let revision = listed["metadata"]["resourceVersion"]
        .as_str()
        .context("list without resourceVersion")?
        .to_string();

    // Watchers first, from the empty list's revision, so they see every create.
    let sent: SendTimes = Arc::default();
    let expected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let until: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut watchers = Vec::new();
    for (client, server) in set.clients.iter().zip(&set.servers) {
        let url = format!(
            "{}?watch=1&resourceVersion={revision}&allowWatchBookmarks=true",
            base(server)
        );
        watchers.push(tokio::spawn(watch_creates(
            client.clone(),
            url,
            sent.clone(),
            expected.clone(),
            until.clone(),
        )));
    }

    let total = (load.rate * load.seconds as f64).round().max(1.0) as u64;
    eprintln!("  {}: {total} creates at {}/s", set.label, load.rate);
    let create = paced(load.rate, total, |i| {
        let (client, server) = set.server(i);
        let name = format!("cm-{i}");
        let request = client.post(base(server)).json(&config_map(&name));
        let sent = sent.clone();
        async move {
            sent.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(name, Instant::now());
            send(request).await
        }
    })
    .await?;
    expected.store(create.ops, std::sync::atomic::Ordering::Relaxed);
    *until.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + WATCH_DRAIN);
    let mut watch = Samples::new();
    for watcher in watchers {
        watch.merge(&watcher.await?);
    }
    let watch = watch.summary(Duration::from_secs_f64(create.seconds));

    eprintln!("  {}: {total} gets at {}/s", set.label, load.rate);
    let get = paced(load.rate, total, |i| {
        // From the server after the one that wrote it.
        let (client, server) = set.server(i + 1);
        send(client.get(format!("{}/cm-{i}", base(server))))
    })
    .await?;

    eprintln!(
        "  {}: {} pods, {} clients",
        set.label, load.pods, load.concurrency
    );
    let pods = create_pods(set, &namespace, load).await?;

    let (list_json, listed, list_bytes) =
        lists(set, &namespace, "application/json", load.lists).await?;
    let (list_table, _, _) = lists(set, &namespace, TABLE, load.lists).await?;
    if listed != load.pods {
        eprintln!("  warning: listed {listed} pods, created {}", load.pods);
    }

    if load.keep {
        eprintln!("  {}: kept namespace {namespace}", set.label);
    } else {
        cleanup(set, &namespace).await;
    }
    Ok(ApiReport {
        label: set.label.clone(),
        create,
        watch,
        get,
        pods,
        list_json,
        list_table,
        listed,
        list_bytes,
    })
}

async fn create_pods(set: &ApiSet, namespace: &str, load: &ApiLoad) -> Result<Summary> {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let workers = futures::future::join_all((0..load.concurrency.max(1)).map(|_| {
        let next = next.clone();
        async move {
            let mut samples = Samples::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= load.pods {
                    break;
                }
                let (client, server) = set.server(i);
                let begin = Instant::now();
                let request = client
                    .post(format!("{server}/api/v1/namespaces/{namespace}/pods"))
                    .json(&pod(&format!("pod-{i}"), i));
                if send(request).await {
                    samples.record(begin.elapsed());
                } else {
                    samples.errors += 1;
                }
            }
            samples
        }
    }))
    .await;
    let mut merged = Samples::new();
    for samples in &workers {
        merged.merge(samples);
    }
    Ok(merged.summary(started.elapsed()))
}

/// Deletes what the run created; failures are reported, not fatal.
async fn cleanup(set: &ApiSet, namespace: &str) {
    let (client, server) = set.server(0);
    for resource in ["configmaps", "pods"] {
        let url = format!("{server}/api/v1/namespaces/{namespace}/{resource}");
        let deleted = client
            .delete(url)
            .timeout(Duration::from_secs(600))
            .send()
            .await;
        if !deleted.is_ok_and(|r| r.status().is_success()) {
            eprintln!("  warning: could not delete the {resource} of {namespace}");
        }
    }
    let _ = client
        .delete(format!("{server}/api/v1/namespaces/{namespace}"))
        .send()
        .await;
}
