//! The second hostile probe's small findings, each refused at the door: cross-site writes, names
//! no client can reach, compressed bodies, query parameters a route does not take (and
//! `min_sequence` misspelt), thresholds no pattern can reach and timeouts that overflow.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One raw HTTP/1.1 request (reqwest resolves `.` and `..` segments away): the status.
async fn raw(app: &TestApp, method: &str, path: &str) -> u16 {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = r#"{"input_size": 2048, "active_bits": 40}"#;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn space_count(app: &TestApp) -> usize {
    let spaces: Value = app.get("/v1/spaces").await.json().await.unwrap();
    spaces["spaces"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_browser_on_another_site_cannot_change_state_even_without_keys() {
    let app = TestApp::spawn_configured(|settings| {
        settings.access.cors_origins = vec!["https://dashboard.example".into()];
    })
    .await;
    app.standard_space("s").await;
    let cross_site = |method: reqwest::Method, path: &str, headers: &[(&str, &str)]| {
        let mut request = app.client.request(method, app.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    // A page elsewhere: told by Sec-Fetch-Site, or by Origin alone (older browsers).
    for headers in [
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://evil.example"),
        ][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
    ] {
        let refused = cross_site(reqwest::Method::POST, "/v1/admin/backup", headers)
            .await
            .unwrap();
        let body = problem(refused, StatusCode::FORBIDDEN).await;
        assert_eq!(
            body["type"], "urn:dendrite:problem:cross-site",
            "{headers:?}"
        );
        let refused = cross_site(reqwest::Method::DELETE, "/v1/spaces/s", headers)
            .await
            .unwrap();
        problem(refused, StatusCode::FORBIDDEN).await;
    }
    let backups: Value = app.get("/v1/admin/backups").await.json().await.unwrap();
    assert_eq!(
        backups["backups"].as_array().map_or(0, Vec::len),
        0,
        "{backups}"
    );
    assert_eq!(space_count(&app).await, 1, "the space is still there");
    // Reads may come from anywhere (CORS decides what a page can see of them).
    let read = cross_site(
        reqwest::Method::GET,
        "/v1/spaces/s",
        &[("sec-fetch-site", "cross-site")],
    )
    .await
    .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    // The service's own pages, a configured origin and clients that are not browsers may write.
    let own = app.base.clone();
    for (i, headers) in [
        &[("sec-fetch-site", "same-origin"), ("origin", own.as_str())][..],
        &[("origin", own.as_str())][..],
        &[
            ("sec-fetch-site", "cross-site"),
            ("origin", "https://dashboard.example"),
        ][..],
        &[][..],
    ]
    .into_iter()
    .enumerate()
    {
        let mut request = app
            .client
            .put(app.url(&format!("/v1/spaces/t{i}")))
            .json(&json!({"input_size": 2048, "active_bits": 40}));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let created = request.send().await.unwrap();
        assert_eq!(created.status(), StatusCode::CREATED, "{headers:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn names_of_dots_alone_are_refused_as_unreachable() {
    let app = TestApp::spawn().await;
    for name in ["%2E", "%2E%2E", "..."] {
        assert_eq!(
            raw(&app, "PUT", &format!("/v1/spaces/{name}")).await,
            400,
            "{name}"
        );
    }
    assert_eq!(raw(&app, "PUT", "/v1/spaces/.a").await, 201);
    assert_eq!(space_count(&app).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_compressed_body_is_415_and_changes_nothing() {
    let app = TestApp::spawn().await;
    for encoding in ["gzip", "br", "identity, gzip"] {
        let response = app
            .client
            .put(app.url("/v1/spaces/s"))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(r#"{"input_size": 2048, "active_bits": 40}"#)
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(
            body["detail"]
                .as_str()
                .unwrap()
                .contains("Content-Encoding"),
            "{body}"
        );
    }
    assert_eq!(space_count(&app).await, 0);
    let identity = app
        .client
        .put(app.url("/v1/spaces/s"))
        .header("content-type", "application/json")
        .header("content-encoding", "identity")
        .body(r#"{"input_size": 2048, "active_bits": 40}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(identity.status(), StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn a_query_parameter_a_route_does_not_take_is_refused_naming_it() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let store = app
        .client
        .post(app.url("/v1/spaces/s/neurons/n/patterns?min_sequence=0"))
        .json(&json!({"active": cells(0, 40)}))
        .send()
        .await
        .unwrap();
    let body = problem(store, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "min_sequence", "writes take no min_sequence");
    assert_eq!(space_count(&app).await, 1);
    let neuron_absent = app.get("/v1/spaces/s/neurons").await;
    let neurons: Value = neuron_absent.json().await.unwrap();
    assert_eq!(
        neurons["neurons"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );
    for (path, field) in [
        ("/v1/spaces/s?min_sequense=1", "min_sequense"),
        ("/v1/stats?verbose", "verbose"),
        ("/v1/spaces/s/neurons?limit=5&sort=name", "sort"),
        ("/v1/theory?n=2048&a=40&bogus=1", ""),
    ] {
        let body = problem(app.get(path).await, StatusCode::BAD_REQUEST).await;
        if !field.is_empty() {
            assert_eq!(body["field"], field, "{path}: {body}");
        }
    }
    // Spellings of min_sequence that would otherwise be read as no wait at all.
    for query in [
        "min_sequence",
        "min_sequence=",
        "min_sequence=+1",
        "min_sequence=%31",
        "min%5Fsequence=1",
        "min_sequence=1&min_sequence=1",
    ] {
        for path in ["/v1/spaces/s", "/v1/theory?n=2048&a=40"] {
            let url = if path.contains('?') {
                format!("{path}&{query}")
            } else {
                format!("{path}?{query}")
            };
            let body = problem(app.get(&url).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(body["field"], "min_sequence", "{url}: {body}");
        }
    }
    assert_eq!(app.get("/v1/spaces/s?min_sequence=0").await.status(), 200);
    assert_eq!(
        app.get("/v1/spaces/s/neurons?limit=5&min_sequence=0")
            .await
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn a_threshold_no_pattern_of_the_space_can_reach_is_refused_at_creation() {
    let app = TestApp::spawn().await;
    let refused = app
        .put(
            "/v1/spaces/s",
            &json!({"input_size": 2048, "active_bits": 20, "synapses_per_pattern": 30, "threshold": 25}),
        )
        .await;
    let body = problem(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["field"], "threshold", "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("1..=20 (active_bits)"),
        "{body}"
    );
    assert_eq!(space_count(&app).await, 0);
    app.stop().await;
}

#[test]
fn a_timeout_beyond_a_day_is_refused_at_start_up_naming_the_setting() {
    for (flag, value) in [
        ("--header-timeout", "9223372036854775808"),
        ("--request-timeout", "0"),
        ("--body-timeout", "86401"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dendrite"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                "sqlite::memory:",
            ])
            .args([flag, value])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}

#[test]
fn a_mistyped_log_level_is_refused_at_start_up_naming_the_setting() {
    for level in ["inf", "verbose", ""] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_dendrite"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--database-url", "sqlite::memory:", "--log-level", level])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{level:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--log-level"), "{level:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_log_that_cannot_be_written_fails_no_request_and_is_counted() {
    if !std::path::Path::new("/dev/full").exists() {
        eprintln!("skipped: no /dev/full here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    // Both streams on a full device: where the log goes, and where its error report would.
    let _server = KilledOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_dendrite"))
            .args(["serve", "--log-level", "info", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--database-url")
            .arg(format!("sqlite://{}", dir.path().join("d.db").display()))
            .stdout(full())
            .stderr(full())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(answer) = client.get(format!("{base}/readyz")).send().await
            && answer.status() == StatusCode::OK
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the service did not start with its log on a full device"
    );
    let space =
        json!({"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12});
    let created = client
        .put(format!("{base}/v1/spaces/s"))
        .json(&space)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    for i in 0..20 {
        let stored = client
            .post(format!("{base}/v1/spaces/s/neurons/n/patterns"))
            .json(&json!({"active": cells(i, 40)}))
            .send()
            .await
            .unwrap();
        assert_eq!(stored.status(), StatusCode::CREATED);
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let failures: f64 = metrics
        .lines()
        .find(|l| l.starts_with("dendrite_log_write_failures_total "))
        .and_then(|l| l.rsplit_once(' '))
        .map(|(_, v)| v.parse().unwrap())
        .expect("the counter is exported");
    assert!(failures >= 20.0, "{failures} failed log writes counted");
}

#[tokio::test]
async fn a_query_batch_asking_for_too_many_matches_is_refused_before_it_runs() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let queries: Vec<Value> = (0..1000)
        .map(|i| json!({"active": cells(i, 40), "threshold": 1, "limit": 1000}))
        .collect();
    let refused = app
        .post("/v1/spaces/s/query/batch", &json!({ "queries": queries }))
        .await;
    let body = problem(refused, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["type"], "urn:dendrite:problem:answer-too-large");
    assert_eq!(body["field"], "limit");
    assert!(
        body["detail"].as_str().unwrap().contains("100000"),
        "{body}"
    );
    let queries: Vec<Value> = (0..1000)
        .map(|i| json!({"active": cells(i, 40), "threshold": 1, "limit": 100}))
        .collect();
    let answered = app
        .post("/v1/spaces/s/query/batch", &json!({ "queries": queries }))
        .await;
    assert_eq!(answered.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_query_batch_stops_at_the_first_slice_after_its_space_is_deleted() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    // Enough segments that a batch of 1,000 queries takes many 10 ms slices.
    for round in 0..16u64 {
        let patterns: Vec<Value> = (0..2_500u64)
            .map(|i| json!({"neuron": format!("n{}", i % 2_000), "active": cells(round * 2_500 + i, 40)}))
            .collect();
        let stored = app
            .post("/v1/spaces/s/patterns", &json!({ "patterns": patterns }))
            .await;
        assert_eq!(stored.status(), StatusCode::OK);
    }
    let queries: Vec<Value> = (0..1000)
        .map(|i| json!({"active": cells(100_000 + i, 40), "threshold": 4}))
        .collect();
    let started = std::time::Instant::now();
    let batch = {
        let request = app
            .client
            .post(app.url("/v1/spaces/s/query/batch"))
            .json(&json!({ "queries": queries }));
        tokio::spawn(async move {
            let answer = request.send().await.unwrap();
            (answer.status(), std::time::Instant::now())
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert_eq!(
        app.delete("/v1/spaces/s").await.status(),
        StatusCode::NO_CONTENT
    );
    let deleted = std::time::Instant::now();
    // Created anew at once, with other parameters: the batch must not go on in it either.
    assert_eq!(
        app.put(
            "/v1/spaces/s",
            &json!({"input_size": 4096, "active_bits": 40})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    let (status, answered) = batch.await.unwrap();
    eprintln!(
        "batch answered {status} after {:?}; the delete was acknowledged after {:?}",
        answered - started,
        deleted - started
    );
    if answered > deleted {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "answered from a deleted space"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_calibration_is_not_served_for_a_space_created_anew_under_its_name() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for i in 0..10 {
        app.store("s", &format!("n{i}"), &cells(i, 40)).await;
    }
    let calibrated = app
        .post(
            "/v1/spaces/s/calibrate",
            &json!({"sample": 5, "random_inputs": 10}),
        )
        .await;
    assert_eq!(calibrated.status(), StatusCode::OK);
    assert_eq!(app.get("/v1/spaces/s/calibration").await.status(), 200);
    assert_eq!(app.delete("/v1/spaces/s").await.status(), 204);
    assert_eq!(
        app.put(
            "/v1/spaces/s",
            &json!({"input_size": 4096, "active_bits": 20})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    problem(
        app.get("/v1/spaces/s/calibration").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn spaces_are_listed_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        let created = app
            .put(
                &format!("/v1/spaces/s{i}"),
                &json!({"input_size": 256, "active_bits": 8}),
            )
            .await;
        assert_eq!(created.status(), StatusCode::CREATED);
    }
    let mut names = Vec::new();
    let mut path = "/v1/spaces?limit=2".to_owned();
    loop {
        let page: Value = app.get(&path).await.json().await.unwrap();
        let spaces = page["spaces"].as_array().unwrap();
        assert!(spaces.len() <= 2, "{page}");
        names.extend(
            spaces
                .iter()
                .map(|s| s["name"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/spaces?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
    let all: Value = app.get("/v1/spaces").await.json().await.unwrap();
    assert_eq!(all["spaces"].as_array().unwrap().len(), 5);
    assert!(all["next"].is_null());
    for bad in [
        "/v1/spaces?limit=0",
        "/v1/spaces?limit=1001",
        "/v1/spaces?after=%2E%2E",
    ] {
        problem(app.get(bad).await, StatusCode::BAD_REQUEST).await;
    }
    app.stop().await;
}
