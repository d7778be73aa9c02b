//! What operators scrape: `GET /metrics` in the Prometheus text format, and one log line per
//! request.
//!
//! Request durations go into a histogram labelled by route template, method and status (never by
//! the raw path, whose names would make a series per neuron). The engine's size per space, the
//! write path's counters, the writer's queue and the build are read when a scrape comes, so
//! nothing is kept up to date between scrapes. Names follow Prometheus' rules: a `dendrite_`
//! prefix, base units in the name, `_total` only on counters.
//!
//! Each service has a recorder of its own rather than the process-wide one, so services that
//! share a process (the tests start many) keep their own numbers.

use super::recent::{self, Activity};
use crate::http::AppState;
use crate::http::error::ApiError;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::MetricKindMask;
use std::sync::Arc;
use std::time::{Duration, Instant};

const REQUEST_DURATION: &str = "dendrite_http_request_duration_seconds";

/// Request-duration buckets, in seconds: from a cheap read (about 50 µs) to the read deadline.
const DURATION_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// Gauges set at each scrape vanish this long after their last one: a deleted space's series
/// disappear instead of showing its last size forever.
const STALE_GAUGES: Duration = Duration::from_secs(5);

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The service's recorder and what renders it.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.into()), &DURATION_BUCKETS)
            .expect("the buckets are not empty")
            .idle_timeout(MetricKindMask::GAUGE, Some(STALE_GAUGES))
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle };
        metrics.describe();
        metrics
    }
}

impl Metrics {
    fn describe(&self) {
        let r = &self.recorder;
        let text = |s: &'static str| SharedString::from(s);
        r.describe_histogram(
            REQUEST_DURATION.into(),
            Some(Unit::Seconds),
            text("Time from a request's head to its answer, by route template, method and status."),
        );
        for (name, help) in [
            ("dendrite_space_neurons", "Neurons in the space."),
            (
                "dendrite_space_segments",
                "Dendritic segments in the space.",
            ),
            ("dendrite_space_patterns", "Patterns stored in the space."),
            ("dendrite_space_synapses", "Synapses in the space."),
            (
                "dendrite_space_memory_bytes",
                "The engine's estimate of the memory the space takes.",
            ),
            (
                "dendrite_writer_queue_depth",
                "Write commands waiting for the writer.",
            ),
            (
                "dendrite_resident_memory_bytes",
                "This process's resident memory, as the operating system counts it.",
            ),
            (
                "dendrite_build_info",
                "Always 1; the labels say which build is running.",
            ),
            (
                "dendrite_database_bytes",
                "The database's size: a SQLite file with its write-ahead log, or PostgreSQL's database.",
            ),
            (
                "dendrite_applied_sequence",
                "The last change (write) this replica has applied.",
            ),
            (
                "dendrite_head_sequence",
                "The newest change this replica knows the database holds.",
            ),
            (
                "dendrite_replication_lag",
                "Changes committed that this replica has not applied yet (0 on SQLite).",
            ),
            (
                "dendrite_last_backup_age_seconds",
                "Seconds since the newest backup in the backup folder was written; absent while there is none.",
            ),
        ] {
            r.describe_gauge(name.into(), None, text(help));
        }
        r.describe_counter(
            "dendrite_commits_total".into(),
            None,
            text("Write transactions committed since start."),
        );
        r.describe_counter(
            "dendrite_log_write_failures_total".into(),
            None,
            text("Log lines that could not be written (the log's disk full or its reader gone), since start."),
        );
        r.describe_counter(
            "dendrite_writes_committed_total".into(),
            None,
            text("Writes committed since start; per commit, the ratio of the two counters' rates."),
        );
    }

    /// Records one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let key = Key::from_parts(
            REQUEST_DURATION,
            vec![
                Label::new("route", route.to_owned()),
                Label::new("method", method.to_owned()),
                Label::new("status", status.to_string()),
            ],
        );
        self.recorder
            .register_histogram(&key, &METADATA)
            .record(took.as_secs_f64());
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>, value: f64) {
        let key = Key::from_parts(name, labels);
        self.recorder.register_gauge(&key, &METADATA).set(value);
    }

    fn counter(&self, name: &'static str, value: u64) {
        let key = Key::from_static_name(name);
        self.recorder
            .register_counter(&key, &METADATA)
            .absolute(value);
    }

    /// The text a scrape gets, with the gauges and counters read from `state` now. Rendering
    /// thousands of spaces' series takes a while, so it runs on a blocking thread.
    async fn render(self: Arc<Self>, state: &AppState) -> Result<String, ApiError> {
        let spaces = state
            .read_every_space(|space| (space.name().to_string(), space.counts()))
            .await?;
        let (commits, writes) = state.writer.stats().snapshot();
        let queue_depth = state.writer.queue_depth();
        let database_bytes = state.db.size_bytes().await;
        let progress = state.writer.progress();
        let (applied, head) = (progress.applied(), progress.head().max(progress.applied()));
        let backups = Arc::clone(&state.backups);
        let started = std::time::SystemTime::now() - state.started.elapsed();
        tokio::task::spawn_blocking(move || {
            for (name, counts) in spaces {
                let label = || vec![Label::new("space", name.clone())];
                self.gauge("dendrite_space_neurons", label(), counts.neurons as f64);
                self.gauge("dendrite_space_segments", label(), counts.segments as f64);
                self.gauge("dendrite_space_patterns", label(), counts.patterns as f64);
                self.gauge("dendrite_space_synapses", label(), counts.synapses as f64);
                self.gauge(
                    "dendrite_space_memory_bytes",
                    label(),
                    counts.memory_bytes as f64,
                );
            }
            self.counter("dendrite_commits_total", commits);
            self.counter("dendrite_writes_committed_total", writes);
            self.counter(
                "dendrite_log_write_failures_total",
                crate::telemetry::failed_writes(),
            );
            self.gauge(
                "dendrite_writer_queue_depth",
                Vec::new(),
                queue_depth as f64,
            );
            if let Some(resident) = crate::host::resident_memory() {
                self.gauge(
                    "dendrite_resident_memory_bytes",
                    Vec::new(),
                    resident as f64,
                );
            }
            self.gauge(
                "dendrite_build_info",
                vec![Label::new("version", env!("CARGO_PKG_VERSION"))],
                1.0,
            );
            if let Some(bytes) = database_bytes {
                self.gauge("dendrite_database_bytes", Vec::new(), bytes as f64);
            }
            self.gauge("dendrite_applied_sequence", Vec::new(), applied as f64);
            self.gauge("dendrite_head_sequence", Vec::new(), head as f64);
            self.gauge(
                "dendrite_replication_lag",
                Vec::new(),
                (head - applied) as f64,
            );
            if let Some(age) = backups.newest_age() {
                self.gauge(
                    "dendrite_last_backup_age_seconds",
                    Vec::new(),
                    age.as_secs_f64(),
                );
            }
            let mut text = self.handle.render();
            text.push_str(&process_families(started));
            in_stable_order(&text)
        })
        .await
        .map_err(|e| ApiError::internal(format!("rendering the metrics failed: {e}")))
    }
}

/// The process metrics every Prometheus client library exports, under their usual names, so
/// dashboards built for them work unchanged. Written here rather than recorded: CPU time is a
/// counter in seconds with a fraction, which the recorder's integer counters cannot hold.
fn process_families(started: std::time::SystemTime) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, help: &str, value: Option<f64>| {
        if let Some(value) = value {
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
            );
        }
    };
    family(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        crate::host::cpu_seconds(),
    );
    family(
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
        crate::host::open_files().map(|n| n as f64),
    );
    family(
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft as f64),
    );
    family(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        crate::host::resident_memory().map(|n| n as f64),
    );
    family(
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        started
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|since| since.as_secs_f64()),
    );
    text
}

/// The exposition with its families sorted by name and, within a counter's or a gauge's family,
/// its series sorted: the recorder writes them in hash-map order, which changes from scrape to
/// scrape and makes two scrapes hard to compare by eye or by `diff`. A histogram's lines keep the
/// recorder's order, since each series' buckets must stay together and in order.
fn in_stable_order(text: &str) -> String {
    let mut families: Vec<(String, Vec<&str>)> = text
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines: Vec<&str> = block.lines().filter(|l| !l.is_empty()).collect();
            let mut kind_and_name = lines
                .iter()
                .find_map(|l| l.strip_prefix("# TYPE "))
                .unwrap_or("")
                .split_whitespace();
            let name = kind_and_name.next().unwrap_or("").to_owned();
            let kind = kind_and_name.next().unwrap_or("");
            if kind == "counter" || kind == "gauge" {
                let samples = lines
                    .iter()
                    .position(|l| !l.starts_with('#'))
                    .unwrap_or(lines.len());
                lines[samples..].sort_unstable();
            }
            (name, lines)
        })
        .collect();
    families.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sorted = String::with_capacity(text.len());
    for (_, lines) in families {
        for line in lines {
            sorted.push_str(line);
            sorted.push('\n');
        }
        sorted.push('\n');
    }
    sorted
}

/// `GET /metrics`.
pub(in crate::http) async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = Arc::clone(&state.metrics).render(&state).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Copies the route template the router matched onto the answer, for [`observe`], which runs
/// outside the router (so that it also sees the answers given before routing: 421, 413).
pub(in crate::http) async fn tag_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

/// Times every request, records it, and logs one line: the route template (not the raw path,
/// which names spaces and neurons), method, status and duration.
pub async fn observe(
    State((metrics, activity)): State<(Arc<Metrics>, Arc<Activity>)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let response = next.run(request).await;
    let took = started.elapsed();
    let status = response.status().as_u16();
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let label = method_label(&method);
    metrics.observe_request(route, label, status, took);
    activity.request(recent::Kind::of(label, route), status, took);
    tracing::info!(
        route = %route,
        method = %LoggedMethod(&method),
        status,
        duration_ms = took.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// The method as a metric label: one of the few methods HTTP defines, or `other`. Any token is a
/// valid method, so a label taken from the request would let a client add series without end
/// (and without a key: this runs before the key check).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "other",
    }
}

/// The most bytes of a method a log line repeats: enough for any real method.
const LOGGED_METHOD_BYTES: usize = 32;

/// A method as a log line shows it: cut to [`LOGGED_METHOD_BYTES`] and escaped, so a client's
/// 50 KB method costs the log a few dozen bytes.
struct LoggedMethod<'a>(&'a Method);

impl std::fmt::Display for LoggedMethod<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = self.0.as_str().as_bytes();
        let shown = &bytes[..bytes.len().min(LOGGED_METHOD_BYTES)];
        write!(f, "{}", shown.escape_ascii())?;
        if shown.len() < bytes.len() {
            write!(f, "...({} bytes)", bytes.len())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_their_series_come_out_sorted_and_histogram_lines_keep_their_order() {
        let rendered = "# TYPE b gauge\nb{s=\"y\"} 2\nb{s=\"x\"} 1\n\n# HELP a help\n# TYPE a histogram\na_bucket{le=\"1\"} 1\na_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n\n";
        assert_eq!(
            in_stable_order(rendered),
            "# HELP a help\n# TYPE a histogram\na_bucket{le=\"1\"} 1\na_bucket{le=\"+Inf\"} 1\na_sum 1\na_count 1\n\n# TYPE b gauge\nb{s=\"x\"} 1\nb{s=\"y\"} 2\n\n"
        );
    }

    #[test]
    fn a_method_outside_http_s_own_becomes_other_and_is_logged_cut_and_escaped() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let invented = Method::from_bytes(&[b'X'; 50_000]).unwrap();
        assert_eq!(method_label(&invented), "other");
        let logged = LoggedMethod(&invented).to_string();
        assert!(logged.len() < 64, "{logged}");
        assert!(logged.ends_with("...(50000 bytes)"), "{logged}");
        let quoted = Method::from_bytes(b"GE'T").unwrap();
        assert_eq!(LoggedMethod(&quoted).to_string(), r"GE\'T");
    }
}
