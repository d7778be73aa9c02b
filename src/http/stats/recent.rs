//! What the service has done, for `/v1/stats`: requests served, matches returned, errors by
//! status, and the latency of queries and stores over the last minute.
//!
//! A dashboard polls this every second under load, so reading it costs a fixed amount: counters
//! are atomics, and latencies go into a histogram per second of the last minute (60 slots of
//! log-spaced buckets), whose percentiles are read from the merged buckets.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Counters and latency windows of one service.
#[derive(Debug)]
pub struct Activity {
    queries: AtomicU64,
    matches: AtomicU64,
    stores: AtomicU64,
    errors: Mutex<BTreeMap<u16, u64>>,
    query_latency: LatencyWindow,
    store_latency: LatencyWindow,
}

/// What `/v1/stats` reports of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ActivityReport {
    /// Queries answered (each query of a batch counts).
    pub queries: u64,
    /// Matches those answers returned.
    pub matches: u64,
    /// Patterns stored or found already stored, in answered store requests.
    pub stores: u64,
    /// Answers with a 4xx or 5xx status, by status.
    pub errors_by_status: BTreeMap<u16, u64>,
    /// Query requests (`query` and `query/batch`) over the last minute.
    pub query_latency: LatencyReport,
    /// Store requests (one pattern or a batch) over the last minute.
    pub store_latency: LatencyReport,
}

/// Latency percentiles over the last minute, in milliseconds; null without requests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LatencyReport {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Which latency window a request belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Query,
    Store,
    Other,
}

impl Kind {
    /// The kind of a route template and method.
    pub fn of(method: &str, route: &str) -> Kind {
        match method {
            "POST" if route.ends_with("/query") || route.ends_with("/query/batch") => Kind::Query,
            "POST" if route.ends_with("/patterns") => Kind::Store,
            _ => Kind::Other,
        }
    }
}

impl Default for Activity {
    fn default() -> Activity {
        Activity {
            queries: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            stores: AtomicU64::new(0),
            errors: Mutex::default(),
            query_latency: LatencyWindow::new(Instant::now()),
            store_latency: LatencyWindow::new(Instant::now()),
        }
    }
}

impl Activity {
    /// `queries` answered, returning `matches` in all.
    pub fn answered(&self, queries: u64, matches: u64) {
        self.queries.fetch_add(queries, Ordering::Relaxed);
        self.matches.fetch_add(matches, Ordering::Relaxed);
    }

    /// `patterns` stored (or found stored) by an answered request.
    pub fn stored(&self, patterns: u64) {
        self.stores.fetch_add(patterns, Ordering::Relaxed);
    }

    /// One answered request.
    pub fn request(&self, kind: Kind, status: u16, took: Duration) {
        if status >= 400 {
            *self
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(status)
                .or_default() += 1;
        }
        let now = Instant::now();
        match kind {
            Kind::Query => self.query_latency.record(now, took),
            Kind::Store => self.store_latency.record(now, took),
            Kind::Other => {}
        }
    }

    pub fn report(&self) -> ActivityReport {
        let now = Instant::now();
        ActivityReport {
            queries: self.queries.load(Ordering::Relaxed),
            matches: self.matches.load(Ordering::Relaxed),
            stores: self.stores.load(Ordering::Relaxed),
            errors_by_status: self
                .errors
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            query_latency: self.query_latency.report(now),
            store_latency: self.store_latency.report(now),
        }
    }
}

/// Buckets per factor of 10: each bucket spans 10^(1/BUCKETS_PER_DECADE), about 12%, the most a
/// percentile read from a bucket can be off by.
const BUCKETS_PER_DECADE: f64 = 20.0;
/// The smallest latency told apart: 10 µs; anything faster falls in the first bucket.
const SMALLEST_SECONDS: f64 = 1e-5;
/// 10 µs to 1000 s in buckets; slower is counted in the last.
const BUCKETS: usize = 8 * BUCKETS_PER_DECADE as usize;
/// One slot per second of the window.
const SLOTS: usize = 60;

/// Latencies of the last minute: one histogram per second, reused as the minute turns over.
#[derive(Debug)]
struct LatencyWindow {
    started: Instant,
    slots: Mutex<Vec<Slot>>,
}

#[derive(Clone, Debug)]
struct Slot {
    /// The second since `started` this slot holds; a slot of an older second is stale.
    second: u64,
    counts: Vec<u64>,
}

fn bucket_of(took: Duration) -> usize {
    let seconds = took.as_secs_f64().max(SMALLEST_SECONDS);
    let index = ((seconds / SMALLEST_SECONDS).log10() * BUCKETS_PER_DECADE).floor();
    (index as usize).min(BUCKETS - 1)
}

/// The upper edge of a bucket, in milliseconds: what a percentile falling in it reports.
fn bucket_upper_ms(bucket: usize) -> f64 {
    SMALLEST_SECONDS * 10f64.powf((bucket + 1) as f64 / BUCKETS_PER_DECADE) * 1000.0
}

impl LatencyWindow {
    fn new(started: Instant) -> LatencyWindow {
        LatencyWindow {
            started,
            slots: Mutex::new(vec![
                Slot {
                    second: u64::MAX,
                    counts: vec![0; BUCKETS],
                };
                SLOTS
            ]),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.started).as_secs()
    }

    fn record(&self, now: Instant, took: Duration) {
        let second = self.second(now);
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut slots[(second % SLOTS as u64) as usize];
        if slot.second != second {
            slot.second = second;
            slot.counts.fill(0);
        }
        slot.counts[bucket_of(took)] += 1;
    }

    fn report(&self, now: Instant) -> LatencyReport {
        let second = self.second(now);
        let mut merged = vec![0u64; BUCKETS];
        {
            let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            for slot in slots.iter() {
                // The current second and the 59 before it.
                if slot.second != u64::MAX && second - slot.second.min(second) < SLOTS as u64 {
                    for (total, count) in merged.iter_mut().zip(&slot.counts) {
                        *total += count;
                    }
                }
            }
        }
        let count: u64 = merged.iter().sum();
        let percentile = |p: f64| {
            if count == 0 {
                return None;
            }
            // The smallest bucket holding at least p of the requests.
            let wanted = (p * count as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            merged.iter().enumerate().find_map(|(bucket, &n)| {
                seen += n;
                (seen >= wanted).then(|| bucket_upper_ms(bucket))
            })
        };
        LatencyReport {
            count,
            p50_ms: percentile(0.50),
            p90_ms: percentile(0.90),
            p99_ms: percentile(0.99),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Against a sorted list of the same latencies: each percentile is at or above the exact one
    /// and within one bucket of it.
    #[test]
    fn percentiles_are_within_a_bucket_of_the_exact_ones() {
        let start = Instant::now();
        let window = LatencyWindow::new(start);
        let mut rng = Rng::new(3);
        let mut exact = Vec::new();
        for i in 0..5_000u64 {
            // Latencies from 20 µs to about 2 s, spread over 30 seconds.
            let magnitude = rng.below(21);
            let micros = 20 + rng.below(1 << magnitude);
            let took = Duration::from_micros(micros);
            window.record(start + Duration::from_millis(i * 6), took);
            exact.push(took.as_secs_f64() * 1000.0);
        }
        exact.sort_by(f64::total_cmp);
        let report = window.report(start + Duration::from_secs(30));
        assert_eq!(report.count, 5_000);
        for (p, got) in [
            (0.5, report.p50_ms),
            (0.9, report.p90_ms),
            (0.99, report.p99_ms),
        ] {
            // The ceil(p·n)-th smallest, as the window defines a percentile.
            let want = exact[(p * 5_000.0_f64).ceil() as usize - 1];
            let got = got.unwrap();
            assert!(
                got >= want * 0.999 && got <= want * 1.13,
                "p{p}: {got} ms vs {want} ms"
            );
        }
    }

    #[test]
    fn the_window_forgets_what_is_older_than_a_minute() {
        let start = Instant::now();
        let window = LatencyWindow::new(start);
        window.record(start, Duration::from_millis(5));
        window.record(start + Duration::from_secs(30), Duration::from_millis(50));
        assert_eq!(window.report(start + Duration::from_secs(59)).count, 2);
        let later = window.report(start + Duration::from_secs(61));
        assert_eq!(later.count, 1, "the first request is over a minute old");
        assert!(later.p50_ms.unwrap() >= 50.0);
        let empty = window.report(start + Duration::from_secs(200));
        assert_eq!((empty.count, empty.p99_ms), (0, None));
    }

    #[test]
    fn requests_are_sorted_into_queries_stores_and_the_rest() {
        assert_eq!(Kind::of("POST", "/v1/spaces/{space}/query"), Kind::Query);
        assert_eq!(
            Kind::of("POST", "/v1/spaces/{space}/query/batch"),
            Kind::Query
        );
        assert_eq!(Kind::of("POST", "/v1/spaces/{space}/patterns"), Kind::Store);
        assert_eq!(
            Kind::of("POST", "/v1/spaces/{space}/neurons/{neuron}/patterns"),
            Kind::Store
        );
        assert_eq!(
            Kind::of("GET", "/v1/spaces/{space}/neurons/{neuron}/patterns/{id}"),
            Kind::Other
        );
        let activity = Activity::default();
        activity.request(Kind::Other, 404, Duration::ZERO);
        activity.request(Kind::Store, 201, Duration::from_millis(1));
        activity.request(Kind::Query, 503, Duration::from_millis(1));
        let report = activity.report();
        assert_eq!(
            report.errors_by_status,
            BTreeMap::from([(404, 1), (503, 1)])
        );
        assert_eq!(
            (report.store_latency.count, report.query_latency.count),
            (1, 1)
        );
    }
}
