//! Calibration over HTTP: random codes come out consistent, correlated ones optimistic.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Stores 300 patterns on 60 neurons, each from `pattern(i)`, in batches.
async fn filled(app: &TestApp, pattern: impl Fn(u64) -> Vec<u32>) {
    app.standard_space("s").await;
    let patterns: Vec<Value> = (0..300)
        .map(|i| json!({"neuron": format!("n{}", i % 60), "active": pattern(i)}))
        .collect();
    let response = app
        .post("/v1/spaces/s/patterns", &json!({ "patterns": patterns }))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

async fn calibrate(app: &TestApp) -> Value {
    let response = app
        .post(
            "/v1/spaces/s/calibrate",
            &json!({"sample": 150, "random_inputs": 300}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

fn verdicts(calibration: &Value) -> Vec<(String, String)> {
    calibration["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["check"].as_str().unwrap().to_owned(),
                l["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn random_codes_calibrate_consistent_and_the_result_is_kept() {
    let app = TestApp::spawn().await;
    filled(&app, |i| cells(i, 40)).await;
    problem(
        app.get("/v1/spaces/s/calibration").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let calibration = calibrate(&app).await;
    assert_eq!(
        (
            calibration["sample"].as_u64(),
            calibration["random_inputs"].as_u64()
        ),
        (Some(150), Some(300))
    );
    let lines = verdicts(&calibration);
    assert_eq!(lines.len(), 5);
    for (check, verdict) in &lines {
        assert_eq!(verdict, "consistent", "{check}: {calibration}");
    }
    let kept: Value = app
        .get("/v1/spaces/s/calibration")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept, calibration);
    app.stop().await;
}

#[tokio::test]
async fn correlated_codes_calibrate_optimistic() {
    let app = TestApp::spawn().await;
    // Every pattern holds the same 30 bits and 10 of its own.
    let core = cells(1_000_000, 30);
    filled(&app, |i| {
        let mut active = core.clone();
        active.extend(
            cells(i, 60)
                .into_iter()
                .filter(|c| !core.contains(c))
                .take(10),
        );
        active.sort_unstable();
        active
    })
    .await;
    let calibration = calibrate(&app).await;
    let lines = verdicts(&calibration);
    assert_eq!(
        lines[0],
        ("random_inputs".into(), "consistent".into()),
        "{calibration}"
    );
    assert_eq!(
        lines[1],
        ("stored_patterns_cross_match".into(), "optimistic".into()),
        "{calibration}"
    );
    assert!(calibration["lines"][1]["factor"].as_f64().unwrap() > 10.0);
    app.stop().await;
}

#[tokio::test]
async fn a_calibration_s_size_is_bounded_and_checked() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for (body, field) in [
        (json!({"sample": 0}), "sample"),
        (json!({"sample": 2001}), "sample"),
        (json!({"random_inputs": 10001}), "random_inputs"),
        (json!({"bogus": 1}), "bogus"),
    ] {
        let answer = problem(
            app.post("/v1/spaces/s/calibrate", &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(answer["field"], field);
    }
    problem(
        app.post("/v1/spaces/nowhere/calibrate", &json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    // An empty space: nothing to sample, the random inputs have no neuron to match.
    let empty: Value = app
        .post("/v1/spaces/s/calibrate", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (empty["sample"].as_u64(), empty["random_inputs"].as_u64()),
        (Some(0), Some(0))
    );
    app.stop().await;
}
