//! `GET /metrics` moves with real requests and follows Prometheus' naming rules; every request
//! is logged once with its route template.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

/// The value of the sample whose name is `name` and whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let bare = series.split('{').next().unwrap_or(series);
            bare == name && labels.iter().all(|label| series.contains(label))
        })
        .and_then(|line| line.rsplit_once(' '))
        .map(|(_, value)| value.parse().unwrap())
}

async fn scrape(app: &TestApp) -> String {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_with_real_requests_and_follow_the_naming_rules() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for i in 0..3 {
        assert_eq!(app.store("s", "n", &cells(i, 40)).await.status(), 201);
    }
    for _ in 0..2 {
        app.query("s", &cells(0, 40)).await;
    }
    assert_eq!(app.get("/v1/nowhere").await.status(), 404);
    let text = scrape(&app).await;

    let requests = |route: &str, method: &str, status: &str| {
        sample(
            &text,
            "dendrite_http_request_duration_seconds_count",
            &[
                &format!("route=\"{route}\""),
                &format!("method=\"{method}\""),
                &format!("status=\"{status}\""),
            ],
        )
    };
    assert_eq!(
        requests("/v1/spaces/{space}/query", "POST", "200"),
        Some(2.0)
    );
    assert_eq!(
        requests(
            "/v1/spaces/{space}/neurons/{neuron}/patterns",
            "POST",
            "201"
        ),
        Some(3.0)
    );
    assert_eq!(requests("/v1/spaces/{space}", "PUT", "201"), Some(1.0));
    assert_eq!(requests("unmatched", "GET", "404"), Some(1.0));
    assert!(
        !text.contains("/v1/spaces/s/"),
        "a raw path is never a label"
    );

    let space = ["space=\"s\""];
    assert_eq!(sample(&text, "dendrite_space_patterns", &space), Some(3.0));
    assert_eq!(sample(&text, "dendrite_space_neurons", &space), Some(1.0));
    assert!(sample(&text, "dendrite_space_synapses", &space).unwrap() >= 24.0);
    assert!(sample(&text, "dendrite_space_memory_bytes", &space).unwrap() > 0.0);
    // One commit made the space, one each store.
    assert_eq!(sample(&text, "dendrite_commits_total", &[]), Some(4.0));
    assert_eq!(
        sample(&text, "dendrite_writes_committed_total", &[]),
        Some(4.0)
    );
    assert_eq!(sample(&text, "dendrite_writer_queue_depth", &[]), Some(0.0));
    // The whole process, as the operating system counts it: above the engine's estimate of its
    // own part in so small a space.
    assert!(
        sample(&text, "dendrite_resident_memory_bytes", &[]).unwrap()
            > sample(&text, "dendrite_space_memory_bytes", &space).unwrap()
    );
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert_eq!(sample(&text, "dendrite_build_info", &[&version]), Some(1.0));

    // Prometheus' rules: our prefix (or the standard `process_` of every client library),
    // `_total` on counters and only there.
    let mut kinds = 0;
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split(' ').skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        assert!(
            name.starts_with("dendrite_") || name.starts_with("process_"),
            "{line}"
        );
        assert_eq!(name.ends_with("_total"), kind == "counter", "{line}");
        kinds += 1;
    }
    assert!(kinds >= 9, "{text}");

    // More stores move the counters and the gauges at the next scrape.
    app.store("s", "m", &cells(7, 40)).await;
    let text = scrape(&app).await;
    assert_eq!(sample(&text, "dendrite_space_patterns", &space), Some(4.0));
    assert_eq!(sample(&text, "dendrite_space_neurons", &space), Some(2.0));
    assert_eq!(
        sample(&text, "dendrite_writes_committed_total", &[]),
        Some(5.0)
    );
    app.stop().await;
}

#[tokio::test]
async fn invented_methods_add_no_series_and_need_no_key_to_be_counted_as_other() {
    let app = TestApp::spawn_configured(|s| {
        s.access.api_key = Some("metrics-key-0123456789".into());
        s.access.metrics_without_key = true;
    })
    .await;
    for i in 0..20 {
        let method = format!("X{i}{}", "Y".repeat(10_000));
        let response = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url("/v1/spaces"),
            )
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let text = scrape(&app).await;
    assert!(!text.contains("YYYY"), "a method reached a label");
    assert!(
        text.len() < 64 * 1024,
        "/metrics grew to {} bytes",
        text.len()
    );
    let others = text
        .lines()
        .filter(|line| line.starts_with("dendrite_http_request_duration_seconds_count"))
        .filter(|line| line.contains("method=\"other\""))
        .map(|line| line.rsplit_once(' ').unwrap().1.parse::<f64>().unwrap())
        .sum::<f64>();
    assert_eq!(others, 20.0, "{text}");
}

#[tokio::test]
async fn metrics_need_a_key_when_keys_are_set_unless_opened_to_scrapers() {
    let key = "metrics-key-0123456789";
    let app = TestApp::spawn_configured(|s| s.access.read_only_api_key = Some(key.into())).await;
    problem(app.get("/metrics").await, StatusCode::UNAUTHORIZED).await;
    let with_key = app
        .client
        .get(app.url("/metrics"))
        .header("api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(with_key.status(), StatusCode::OK);
    app.stop().await;

    let open = TestApp::spawn_configured(|s| {
        s.access.read_only_api_key = Some(key.into());
        s.access.metrics_without_key = true;
    })
    .await;
    assert_eq!(open.get("/metrics").await.status(), StatusCode::OK);
    problem(open.get("/v1/stats").await, StatusCode::UNAUTHORIZED).await;
    open.stop().await;
}

#[test]
fn every_request_is_logged_once_with_its_route_template_at_the_default_level() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KilledOnDrop(
        Command::new(env!("CARGO_BIN_EXE_dendrite"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.path().join("d.db").display()))
            .env_remove("DENDRITE_LOG_LEVEL")
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let address = loop {
        let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if event["message"] == "listening" {
            break event["address"].as_str().unwrap().to_owned();
        }
    };
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /v1/spaces/missing HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let logged: Value = loop {
        let event: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        if event["message"] == "request" {
            break event;
        }
    };
    drop(child);
    assert_eq!(logged["level"], "INFO");
    assert_eq!(logged["route"], "/v1/spaces/{space}");
    assert_eq!(logged["method"], "GET");
    assert_eq!(logged["status"], 404);
    assert!(logged["duration_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn stats_move_with_real_requests() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for (neuron, seed) in [("n", 1), ("n", 2), ("n", 3), ("m", 4)] {
        assert_eq!(app.store("s", neuron, &cells(seed, 40)).await.status(), 201);
    }
    let found = app.query("s", &cells(1, 40)).await;
    app.query("s", &cells(99, 40)).await;
    let batch =
        serde_json::json!({"queries": [{"active": cells(2, 40)}, {"active": cells(98, 40)}]});
    assert_eq!(
        app.post("/v1/spaces/s/query/batch", &batch).await.status(),
        200
    );
    assert_eq!(app.get("/v1/spaces/nowhere").await.status(), 404);

    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        stats["kernel"],
        dendrite::engine::Kernel::detected().name(),
        "the kernel in use is the fastest this CPU supports"
    );
    assert_eq!(
        (stats["spaces"].as_u64(), stats["patterns"].as_u64()),
        (Some(1), Some(4))
    );
    assert_eq!(stats["queries"], 4, "two single queries and a batch of two");
    assert!(
        stats["matches"].as_u64().unwrap() >= found["matches"].as_array().unwrap().len() as u64
    );
    assert_eq!(stats["stores"], 4);
    assert_eq!(stats["errors_by_status"], serde_json::json!({"404": 1}));
    assert_eq!(stats["query_latency"]["count"], 3, "requests, not queries");
    assert_eq!(stats["store_latency"]["count"], 4);
    for window in ["query_latency", "store_latency"] {
        let (p50, p99) = (
            stats[window]["p50_ms"].as_f64().unwrap(),
            stats[window]["p99_ms"].as_f64().unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p99, "{window}: {p50} {p99}");
    }
    assert_eq!(stats["writer_queue_depth"], 0);
    assert!(stats["database_bytes"].as_u64().unwrap() > 0);
    let segments = stats["segments"].as_u64().unwrap();
    assert_eq!(
        stats["mean_patterns_per_segment"].as_f64().unwrap(),
        4.0 / segments as f64
    );
    assert!(
        stats["max_patterns_per_segment"].as_u64().unwrap() >= 3,
        "n's three on one segment"
    );

    let space = &stats["by_space"][0];
    assert_eq!(
        (space["name"].as_str(), space["patterns"].as_u64()),
        (Some("s"), Some(4))
    );
    let alone: Value = app.get("/v1/spaces/s/stats").await.json().await.unwrap();
    assert_eq!(&alone, space);
    problem(
        app.get("/v1/spaces/nowhere/stats").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_without_a_key_under_a_strict_policy() {
    let app =
        TestApp::spawn_configured(|s| s.access.api_key = Some("dashboard-key-0123456789".into()))
            .await;
    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = page.text().await.unwrap();
    for file in ["app.js", "style.css", "uplot.iife.min.js", "uplot.min.css"] {
        assert!(
            html.contains(&format!("/dashboard/{file}")),
            "the page loads {file}"
        );
        let asset = app.get(&format!("/dashboard/{file}")).await;
        assert_eq!(asset.status(), StatusCode::OK, "{file}");
        assert!(asset.text().await.unwrap().len() > 100, "{file}");
    }
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline code"
    );
    problem(
        app.get("/dashboard/secret.txt").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // The icon the page names, and the one browsers ask for on their own: no 404 in the console.
    assert!(html.contains("/dashboard/icon.svg"));
    for path in ["/dashboard/icon.svg", "/favicon.ico"] {
        let icon = app.get(path).await;
        assert_eq!(icon.status(), StatusCode::OK, "{path}");
        assert_eq!(icon.headers()["content-type"], "image/svg+xml", "{path}");
        assert!(icon.text().await.unwrap().starts_with("<svg"), "{path}");
    }
    // The data behind it still needs the key.
    problem(app.get("/v1/stats").await, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

#[tokio::test]
async fn process_replication_and_database_metrics_come_in_a_stable_order() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    app.store("s", "n", &cells(1, 40)).await;
    let first = scrape(&app).await;
    for name in [
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "dendrite_applied_sequence",
        "dendrite_head_sequence",
        "dendrite_replication_lag",
    ] {
        assert!(
            sample(&first, name, &[]).is_some(),
            "{name} missing:\n{first}"
        );
    }
    assert!(first.contains("# TYPE process_cpu_seconds_total counter"));
    assert_eq!(sample(&first, "dendrite_applied_sequence", &[]), Some(2.0));
    assert_eq!(sample(&first, "dendrite_replication_lag", &[]), Some(0.0));
    if postgres_admin_url().is_none() {
        assert!(sample(&first, "dendrite_database_bytes", &[]).unwrap() > 0.0);
    }
    let started = sample(&first, "process_start_time_seconds", &[]).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now && started > now - 600.0,
        "{started} vs {now}"
    );
    // Families by name, in the same order on every scrape.
    let families = |text: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect()
    };
    let names = families(&first);
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for _ in 0..3 {
        assert_eq!(families(&scrape(&app).await), names);
    }
    app.stop().await;
}
