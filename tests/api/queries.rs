use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_noisy_copy_is_recognised_with_its_probabilities() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let active = cells(7, 40);
    let stored: Value = app.store("s", "cat", &active).await.json().await.unwrap();
    app.store("s", "cat", &cells(10, 40)).await;
    app.store("s", "dog", &cells(8, 40)).await;
    let mut noisy = active.clone();
    noisy.truncate(32);
    noisy.extend(
        cells(9, 60)
            .into_iter()
            .filter(|c| !active.contains(c))
            .take(8),
    );
    noisy.sort_unstable();
    let answer = app.query("s", &noisy).await;
    let matches = answer["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0]["neuron"], "cat");
    assert!(matches[0]["overlap"].as_u64().unwrap() >= 12);
    // Of the two patterns the cat neuron learned, the answer names the one the input came from,
    // with the overlap of that pattern's own synapses.
    assert_eq!(matches[0]["pattern"], stored["id"]);
    let own = stored["synapses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| noisy.contains(&(c.as_u64().unwrap() as u32)))
        .count();
    assert_eq!(matches[0]["pattern_overlap"], own);
    assert!(matches[0]["p_value"]["log10"].as_f64().unwrap() < -10.0);
    // Two patterns' union on the segment: about 48 synapses, so more false matches than one's.
    assert!(matches[0]["neuron_false_match"]["value"].as_f64().unwrap() < 1e-9);
    assert_eq!(answer["threshold"], 12);
    assert!(answer["expected_false_matches"]["log10"].as_f64().unwrap() < -10.0);
    assert!(answer["segments_overlapped"].as_u64().unwrap() >= 1);
    app.stop().await;
}

#[tokio::test]
async fn a_query_may_set_its_threshold_and_limit() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let active = cells(7, 40);
    for neuron in ["a", "b", "c"] {
        app.store("s", neuron, &active).await;
    }
    let limited: Value = app
        .post("/v1/spaces/s/query", &json!({"active": active, "limit": 2}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(limited["matches"].as_array().unwrap().len(), 2);
    assert_eq!(
        limited["matches"][0]["neuron"], "a",
        "ties in p-value go by name"
    );
    let strict: Value = app
        .post(
            "/v1/spaces/s/query",
            &json!({"active": active, "threshold": 25}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(
        strict["matches"].as_array().unwrap().is_empty(),
        "24 synapses cannot reach 25"
    );
    assert_eq!(strict["threshold"], 25);
    let short: Value = app
        .post("/v1/spaces/s/query", &json!({"active": [1, 2, 3]}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        short["note"]
            .as_str()
            .unwrap()
            .contains("fewer than the threshold")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_query_batch_answers_in_order_and_names_a_bad_query() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    app.store("s", "cat", &cells(1, 40)).await;
    let batch = json!({"queries": [{"active": cells(2, 40)}, {"active": cells(1, 40)}]});
    let answer: Value = app
        .post("/v1/spaces/s/query/batch", &batch)
        .await
        .json()
        .await
        .unwrap();
    let results = answer["results"].as_array().unwrap();
    assert!(results[0]["matches"].as_array().unwrap().is_empty());
    assert_eq!(results[1]["matches"][0]["neuron"], "cat");
    let bad = json!({"queries": [{"active": cells(2, 40)}, {"active": [1, 1]}]});
    let body = problem(
        app.post("/v1/spaces/s/query/batch", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["index"], 1);
    problem(
        app.post("/v1/spaces/s/query/batch", &json!({"queries": []}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    app.stop().await;
}
