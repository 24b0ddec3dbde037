//! Latency and throughput of one run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency samples of one client task, merged at the end of a run.
pub struct Samples {
    histogram: Histogram<u64>,
    /// Requests that failed.
    pub errors: u64,
}

impl Samples {
    /// An empty recorder (1 µs to 60 s, 3 significant digits).
    pub fn new() -> Samples {
        Samples {
            histogram: Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid histogram bounds"),
            errors: 0,
        }
    }

    /// Records one successful request.
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros() as u64).clamp(1, 60_000_000);
        self.histogram.saturating_record(micros);
    }

    /// Adds another task's samples.
    pub fn merge(&mut self, other: &Samples) {
        self.histogram
            .add(&other.histogram)
            .expect("histograms with the same bounds merge");
        self.errors += other.errors;
    }

    /// Summary over `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let ms = |q: f64| self.histogram.value_at_quantile(q) as f64 / 1000.0;
        let ops = self.histogram.len();
        Summary {
            ops,
            errors: self.errors,
            seconds: elapsed.as_secs_f64(),
            ops_per_sec: ops as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: self.histogram.max() as f64 / 1000.0,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Successful requests.
    pub ops: u64,
    /// Failed requests.
    pub errors: u64,
    /// Wall time of the run.
    pub seconds: f64,
    /// Successful requests per second.
    pub ops_per_sec: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 90th percentile latency.
    pub p90_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
    /// Slowest request.
    pub max_ms: f64,
}

impl Summary {
    /// One human-readable line.
    pub fn line(&self) -> String {
        format!(
            "{:>9.0} ops/s  p50 {:>7.2} ms  p90 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({} ops, {} errors, {:.1} s)",
            self.ops_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.ops,
            self.errors,
            self.seconds
        )
    }
}
