//! Latency samples and the figures derived from them.

use std::time::Duration;

use serde_json::{json, Value};

/// Per-operation latencies.
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples(Vec::with_capacity(n))
    }

    pub fn push(&mut self, d: Duration) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The sum of the samples, in seconds.
    pub fn total(&self) -> f64 {
        self.0.iter().map(Duration::as_secs_f64).sum()
    }

    /// The `q` quantile in microseconds (nearest rank).
    pub fn percentile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1].as_secs_f64() * 1e6
    }

    /// Adds `<prefix>p50_us` and `<prefix>p99_us`.
    pub fn report(&self, out: &mut Fields, prefix: &str) {
        out.insert(
            format!("{prefix}p50_us"),
            json!(super::round(self.percentile(0.50), 1)),
        );
        out.insert(
            format!("{prefix}p99_us"),
            json!(super::round(self.percentile(0.99), 1)),
        );
    }
}

pub fn ops_per_sec(ops: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        ops as f64 / seconds
    } else {
        0.0
    }
}

/// `a / b`, three decimals.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        super::round(a / b, 3)
    } else {
        0.0
    }
}

/// The fields of one output line, in insertion order.
pub struct Fields(pub Vec<(String, Value)>);

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.0.push((key.into(), value));
    }
}

impl std::fmt::Display for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (key, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}:{value}", Value::String(key.clone()))?;
        }
        f.write_str("}")
    }
}
