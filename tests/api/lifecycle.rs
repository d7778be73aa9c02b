use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn health_readiness_and_the_spec_answer() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.get("/healthz").await.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    assert_eq!(
        app.get("/readyz").await.json::<Value>().await.unwrap(),
        json!({"status": "ready"})
    );
    let spec = app.get("/openapi.yaml").await;
    assert_eq!(spec.headers()["content-type"], "application/yaml");
    assert!(spec.text().await.unwrap().starts_with("openapi: 3.1"));
    app.stop().await;
}

#[tokio::test]
async fn a_space_is_created_once_then_reported_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let body = json!({"input_size": 2048, "active_bits": 40});
    let created = app.put("/v1/spaces/s", &body).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let report: Value = created.json().await.unwrap();
    assert_eq!(
        report["parameters"]["threshold"], 16,
        "the theory's default"
    );
    assert_eq!(report["parameters"]["synapses_per_pattern"], 24);
    assert_eq!(report["theory"]["max_patterns_per_segment"], 9);
    let again = app.put("/v1/spaces/s", &body).await;
    assert_eq!(again.status(), StatusCode::OK, "the same parameters again");
    let explicit = app
        .put(
            "/v1/spaces/s",
            &json!({"input_size": 2048, "active_bits": 40, "threshold": 16}),
        )
        .await;
    assert_eq!(
        explicit.status(),
        StatusCode::OK,
        "the defaults spelled out are the same parameters"
    );
    let other = app
        .put(
            "/v1/spaces/s",
            &json!({"input_size": 2048, "active_bits": 41}),
        )
        .await;
    let conflict = problem(other, StatusCode::CONFLICT).await;
    // What differs, and nothing else.
    let detail = conflict["detail"].as_str().unwrap();
    assert!(detail.contains("active_bits is 40, not 41"), "{conflict}");
    assert!(!detail.contains("input_size"), "{conflict}");
    assert_eq!(
        app.get("/v1/spaces/s").await.json::<Value>().await.unwrap(),
        report
    );
    let list: Value = app.get("/v1/spaces").await.json().await.unwrap();
    assert_eq!(list["spaces"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.delete("/v1/spaces/s").await.status(),
        StatusCode::NO_CONTENT
    );
    problem(app.get("/v1/spaces/s").await, StatusCode::NOT_FOUND).await;
    problem(app.delete("/v1/spaces/s").await, StatusCode::NOT_FOUND).await;
    app.stop().await;
}

#[tokio::test]
async fn a_neuron_s_patterns_are_listed_in_pages_in_id_order() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let mut stored = std::collections::BTreeMap::new();
    for i in 0..12u64 {
        // Ids given for some, assigned by the server for the others.
        let id = (i % 3 == 0).then(|| format!("given-{i}"));
        let body = match &id {
            Some(id) => json!({"active": cells(i, 40), "id": id}),
            None => json!({"active": cells(i, 40)}),
        };
        let answer: Value = app
            .post("/v1/spaces/s/neurons/n/patterns", &body)
            .await
            .json()
            .await
            .unwrap();
        stored.insert(
            answer["id"].as_str().unwrap().to_owned(),
            answer["active"].clone(),
        );
    }
    app.store("s", "other", &cells(500, 40)).await;
    let mut listed = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(after) => format!("/v1/spaces/s/neurons/n/patterns?limit=5&after={after}"),
            None => "/v1/spaces/s/neurons/n/patterns?limit=5".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        let patterns = page["patterns"].as_array().unwrap();
        assert!(patterns.len() <= 5, "{page}");
        for pattern in patterns {
            assert_eq!(pattern["neuron"], "n");
            let id = pattern["id"].as_str().unwrap().to_owned();
            assert_eq!(pattern["active"], stored[&id], "{id}");
            listed.push(id);
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    // Every pattern once, in the ids' string order.
    assert_eq!(listed, stored.keys().cloned().collect::<Vec<_>>());
    problem(
        app.get("/v1/spaces/s/neurons/nobody/patterns").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.get("/v1/spaces/s/neurons/n/patterns?limit=0").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn neurons_are_listed_in_pages_reported_and_deleted() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for (i, name) in ["c", "a", "b"].iter().enumerate() {
        assert_eq!(
            app.store("s", name, &cells(i as u64, 40)).await.status(),
            StatusCode::CREATED
        );
    }
    let first: Value = app
        .get("/v1/spaces/s/neurons?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = first["neurons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(first["next"], "b");
    let second: Value = app
        .get("/v1/spaces/s/neurons?limit=2&after=b")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["neurons"][0]["name"], "c");
    assert_eq!(second["next"], Value::Null);
    let report: Value = app
        .get("/v1/spaces/s/neurons/a")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["patterns"], 1);
    assert_eq!(report["segments"][0]["synapses"], 24);
    assert_eq!(report["false_miss_by_noise"].as_array().unwrap().len(), 3);
    assert_eq!(
        app.delete("/v1/spaces/s/neurons/a").await.status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.get("/v1/spaces/s/neurons/a").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.delete("/v1/spaces/s/neurons/a").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(
        (
            stats["spaces"].as_u64(),
            stats["neurons"].as_u64(),
            stats["patterns"].as_u64()
        ),
        (Some(1), Some(2), Some(2))
    );
    assert!(stats["commits"].as_u64().unwrap() >= 5);
    app.stop().await;
}

#[tokio::test]
async fn the_theory_endpoint_answers_what_the_cli_prints() {
    let app = TestApp::spawn().await;
    let answer: Value = app
        .get("/v1/theory?n=2048&a=40&s=24&theta=12&patterns=5&segments=20&noise_bits=8&target=1e-6")
        .await
        .json()
        .await
        .unwrap();
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args([
            "theory",
            "--n",
            "2048",
            "--a",
            "40",
            "--s",
            "24",
            "--theta",
            "12",
            "--patterns",
            "5",
            "--segments",
            "20",
        ])
        .args(["--noise-bits", "8", "--target", "1e-6"])
        .output()
        .unwrap();
    let printed: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(answer, printed);

    // The noise as a fraction, as the CLI takes it: 20% of 42 bits is 8.4, so 8.
    let by_fraction: Value = app
        .get("/v1/theory?n=2048&a=42&s=24&theta=12&noise=0.2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_fraction["noise_bits"], 8);
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["theory", "--n", "2048", "--a", "42", "--s", "24"])
        .args(["--theta", "12", "--noise", "0.2"])
        .output()
        .unwrap();
    assert_eq!(
        by_fraction,
        serde_json::from_slice::<Value>(&cli.stdout).unwrap()
    );

    for (query, field) in [
        ("n=2048&a=40&s=24&theta=25", "theta"),
        ("n=2048&a=40&s=24", "theta"),
        ("n=2048&a=40&s=24&theta=x", "theta"),
        ("n=2048&a=40&s=24&theta=12&bogus=1", "bogus"),
        ("n=2048&a=40&s=24&theta=12&noise=0.2&noise_bits=8", "noise"),
        ("n=2048&a=40&s=24&theta=12&noise=2", "noise"),
    ] {
        let body = problem(
            app.get(&format!("/v1/theory?{query}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    app.stop().await;
}
