//! Prometheus metrics (`/metrics`, text format): requests by verb, resource and code, latency
//! histograms, open watches, and the store's Raft state.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The Raft state of the store behind this server, when it has one locally.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreSnapshot {
    /// Current term.
    pub term: u64,
    /// Current leader id (0 if none).
    pub leader: u64,
    /// Whether this member leads.
    pub is_leader: bool,
    /// Last log index.
    pub last_log_index: u64,
    /// Last applied index.
    pub applied_index: u64,
    /// AppendEntries sent to peers over Raft links.
    pub append_entries_link: u64,
    /// AppendEntries sent to peers over gRPC.
    pub append_entries_grpc: u64,
}

/// Source of [`StoreSnapshot`]s.
pub trait StoreStats: Send + Sync + 'static {
    /// The current state, if this server has a local store member.
    fn snapshot(&self) -> Option<StoreSnapshot>;
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabels {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    resource: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    verb: String,
    resource: String,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    watches: Gauge,
    term: Gauge<i64, AtomicI64>,
    leader: Gauge<i64, AtomicI64>,
    is_leader: Gauge<i64, AtomicI64>,
    last_log_index: Gauge<i64, AtomicI64>,
    applied_index: Gauge<i64, AtomicI64>,
    append_entries: Family<TransportLabels, Counter>,
    store: Option<Arc<dyn StoreStats>>,
}

impl Metrics {
    /// Metrics with an optional local store to report on.
    pub fn new(store: Option<Arc<dyn StoreStats>>) -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<LatencyLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let watches = Gauge::default();
        let (term, leader, is_leader, last_log_index, applied_index) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register(
            "apiserver_request",
            "Requests by verb, resource and HTTP code",
            requests.clone(),
        );
        registry.register(
            "apiserver_request_duration_seconds",
            "Request latency by verb and resource",
            latency.clone(),
        );
        registry.register(
            "apiserver_longrunning_watches",
            "Watch streams open now",
            watches.clone(),
        );
        registry.register("hanode_raft_term", "Current Raft term", term.clone());
        registry.register(
            "hanode_raft_leader",
            "Id of the Raft leader (0 = none)",
            leader.clone(),
        );
        registry.register(
            "hanode_raft_is_leader",
            "1 when this member leads",
            is_leader.clone(),
        );
        registry.register(
            "hanode_raft_last_log_index",
            "Last Raft log index",
            last_log_index.clone(),
        );
        registry.register(
            "hanode_raft_applied_index",
            "Last applied Raft log index",
            applied_index.clone(),
        );
        let append_entries = Family::<TransportLabels, Counter>::default();
        registry.register(
            "hanode_peer_append_entries",
            "AppendEntries sent to peers, by transport (link, or grpc for peers without links)",
            append_entries.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            watches,
            term,
            leader,
            is_leader,
            last_log_index,
            applied_index,
            append_entries,
            store,
        }
    }

    /// Counts one finished request.
    pub fn observe(&self, verb: &str, resource: &str, code: u16, latency: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.into(),
                resource: resource.into(),
                code: code.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&LatencyLabels {
                verb: verb.into(),
                resource: resource.into(),
            })
            .observe(latency.as_secs_f64());
    }

    /// A watch opened; the guard closes it.
    pub fn watch_opened(self: &Arc<Self>) -> WatchGuard {
        self.watches.inc();
        WatchGuard {
            metrics: self.clone(),
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        if let Some(snapshot) = self.store.as_ref().and_then(|s| s.snapshot()) {
            self.term.set(snapshot.term as i64);
            self.leader.set(snapshot.leader as i64);
            self.is_leader.set(i64::from(snapshot.is_leader));
            self.last_log_index.set(snapshot.last_log_index as i64);
            self.applied_index.set(snapshot.applied_index as i64);
            for (transport, sent) in [
                ("link", snapshot.append_entries_link),
                ("grpc", snapshot.append_entries_grpc),
            ] {
                let counter = self
                    .append_entries
                    .get_or_create(&TransportLabels { transport });
                counter.inc_by(sent.saturating_sub(counter.get()));
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}

/// Decrements the open-watch gauge when dropped.
pub struct WatchGuard {
    metrics: Arc<Metrics>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.metrics.watches.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_watches_appear_in_the_exposition() {
        let metrics = Arc::new(Metrics::new(None));
        metrics.observe("list", "pods", 200, Duration::from_millis(3));
        let guard = metrics.watch_opened();
        let text = metrics.render();
        assert!(
            text.contains(
                "apiserver_request_total{verb=\"list\",resource=\"pods\",code=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("apiserver_longrunning_watches 1"), "{text}");
        drop(guard);
        assert!(metrics.render().contains("apiserver_longrunning_watches 0"));
    }

    struct Fixed(StoreSnapshot);

    impl StoreStats for Fixed {
        fn snapshot(&self) -> Option<StoreSnapshot> {
            Some(self.0)
        }
    }

    #[test]
    fn store_state_and_peer_traffic_appear_in_the_exposition() {
        let metrics = Metrics::new(Some(Arc::new(Fixed(StoreSnapshot {
            term: 3,
            leader: 7,
            is_leader: true,
            last_log_index: 10,
            applied_index: 9,
            append_entries_link: 42,
            append_entries_grpc: 1,
        }))));
        let text = metrics.render();
        for expected in [
            "hanode_raft_term 3",
            "hanode_raft_applied_index 9",
            "hanode_peer_append_entries_total{transport=\"link\"} 42",
            "hanode_peer_append_entries_total{transport=\"grpc\"} 1",
        ] {
            assert!(text.contains(expected), "{expected}: {text}");
        }
        // Rendering again does not count twice.
        assert!(metrics.render().contains("transport=\"link\"} 42"));
    }
}
