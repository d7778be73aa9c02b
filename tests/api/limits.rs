//! Limits and timeouts: each answered at once, as a problem document, and never a lie about a
//! write's outcome.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes and reads the answer's status line and body, giving up after `patience`.
async fn raw_exchange(app: &TestApp, request: &[u8], patience: Duration) -> (u16, String) {
    let address = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    let read = tokio::time::timeout(patience, async {
        loop {
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&answer);
            if let Some(head_end) = text.find("\r\n\r\n") {
                let length = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if answer.len() >= head_end + 4 + length {
                    break;
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer while the body was still missing");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text[9..12].parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn an_oversized_declared_body_is_refused_before_it_is_sent() {
    let app = TestApp::spawn_configured(|settings| settings.body_timeout = 600).await;
    app.standard_space("s").await;
    let request = b"POST /v1/spaces/s/patterns HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n";
    let (status, text) = raw_exchange(&app, request, Duration::from_secs(10)).await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(
        text.contains("urn:dendrite:problem:payload-too-large"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_and_stores_nothing() {
    let app = TestApp::spawn_configured(|settings| settings.body_timeout = 1).await;
    app.standard_space("s").await;
    let request = b"POST /v1/spaces/s/neurons/n/patterns HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 400\r\n\r\n{\"active\": [1, 2,";
    let (status, text) = raw_exchange(&app, request, Duration::from_secs(20)).await;
    assert_eq!(status, 408, "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(
        text.contains("urn:dendrite:problem:request-timeout"),
        "{text}"
    );
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["patterns"], 0);
    app.stop().await;
}

#[tokio::test]
async fn a_write_slower_than_the_request_timeout_is_answered_with_its_real_outcome() {
    crate::sqlite_only!();
    let app = TestApp::spawn_configured(|settings| settings.request_timeout = 1).await;
    app.standard_space("s").await;
    // Another process holds the database for two seconds: the write waits past the request
    // timeout, then commits. It must say 201, not "timed out".
    let db = inspector(&app).await;
    let holder = DatabaseLock::take(&db).await;
    let store = {
        let client = app.client.clone();
        let url = app.url("/v1/spaces/s/neurons/n/patterns");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"active": cells(1, 40)}))
                .send()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    holder.release().await;
    assert_eq!(store.await.unwrap().status(), StatusCode::CREATED);
    let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM patterns")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(committed, 1);
    db.close().await;
    app.stop().await;
}

#[tokio::test]
async fn one_bit_patterns_in_a_wide_space_cost_bytes_not_kilobytes() {
    let app = TestApp::spawn().await;
    let bomb = json!({"input_size": 65_536, "active_bits": 1, "synapses_per_pattern": 1, "threshold": 1, "max_false_match": 1});
    assert_eq!(
        app.put("/v1/spaces/wide", &bomb).await.status(),
        StatusCode::CREATED
    );
    let patterns: Vec<Value> = (0..2_000)
        .map(|i| json!({"neuron": format!("n{i}"), "active": [i * 17 % 65_536]}))
        .collect();
    let stored = app
        .post("/v1/spaces/wide/patterns", &json!({ "patterns": patterns }))
        .await;
    assert_eq!(stored.status(), StatusCode::OK);
    let space: Value = app.get("/v1/spaces/wide").await.json().await.unwrap();
    let per_pattern = space["counts"]["memory_bytes"].as_u64().unwrap() / 2_000;
    // A dense matrix would give each one-synapse segment its own 8 KiB column.
    assert!(per_pattern < 1_500, "{per_pattern} bytes per pattern");
    app.stop().await;
}

#[tokio::test]
async fn a_space_s_first_pattern_reserves_bytes_in_proportion_to_its_synapses() {
    let app = TestApp::spawn().await;
    let wide = json!({"input_size": 65_536, "active_bits": 256, "synapses_per_pattern": 256, "threshold": 256});
    assert_eq!(
        app.put("/v1/spaces/wide", &wide).await.status(),
        StatusCode::CREATED
    );
    app.standard_space("standard").await;
    let wide_pattern: Vec<u32> = (0..256).map(|i| i * 256 + 3).collect();
    assert_eq!(
        app.store("wide", "n", &wide_pattern).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(
        app.store("standard", "n", &cells(1, 40)).await.status(),
        StatusCode::CREATED
    );
    for (space, synapses) in [("wide", 256), ("standard", 24)] {
        let report: Value = app
            .get(&format!("/v1/spaces/{space}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(report["counts"]["synapses"], synapses);
        // A dense matrix's first block would be 16 MiB here, and 512 KiB in the standard space.
        let bytes = report["counts"]["memory_bytes"].as_u64().unwrap();
        assert!(
            bytes < 200 * synapses,
            "{space}: {bytes} bytes for {synapses} synapses"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn stores_past_the_memory_limit_are_507_and_change_nothing() {
    let limit = 3_000_000u64;
    let app = TestApp::spawn_configured(|settings| settings.memory_limit = Some(limit)).await;
    app.standard_space("s").await;
    app.standard_space("t").await;
    let batch = |round: u64, neuron: &str| {
        let patterns: Vec<Value> = (0..200)
            .map(|i| json!({"neuron": format!("{neuron}{}", i % 50), "active": cells(round * 1_000 + i, 40)}))
            .collect();
        json!({ "patterns": patterns })
    };
    let mut refused = None;
    for round in 0..100 {
        let response = app.post("/v1/spaces/s/patterns", &batch(round, "a")).await;
        if response.status() != StatusCode::OK {
            refused = Some(response);
            break;
        }
    }
    let refused = refused.expect("the limit is reached");
    let body = problem(refused, StatusCode::INSUFFICIENT_STORAGE).await;
    assert_eq!(body["type"], "urn:dendrite:problem:memory-full");
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert!(stats["memory_bytes"].as_u64().unwrap() <= limit, "{stats}");
    assert_eq!(stats["memory_limit"], limit);
    assert!(stats["resident_bytes"].as_u64().unwrap() > 0, "{stats}");
    let patterns = stats["patterns"].clone();
    problem(
        app.post("/v1/spaces/t/patterns", &batch(500, "b")).await,
        StatusCode::INSUFFICIENT_STORAGE,
    )
    .await;
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(
        stats["patterns"], patterns,
        "a refused batch stores nothing"
    );
    // Deleting a space gives its memory back.
    assert_eq!(
        app.delete("/v1/spaces/s").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.post("/v1/spaces/t/patterns", &batch(500, "b"))
            .await
            .status(),
        StatusCode::OK
    );
    app.stop().await;
}
