use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn a_pattern_is_stored_read_and_forgotten() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let active = cells(1, 40);
    let created = app.store("s", "cat", &active).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let stored: Value = created.json().await.unwrap();
    assert_eq!(stored["id"], "1");
    assert_eq!(stored["neuron"], "cat");
    assert_eq!(stored["segment"], 0);
    assert_eq!(stored["active"], json!(active));
    assert_eq!(stored["synapses"].as_array().unwrap().len(), 24);
    assert!(stored["segment_false_match"]["log10"].as_f64().unwrap() < -14.0);
    let again = app.store("s", "cat", &active).await;
    assert_eq!(again.status(), StatusCode::OK, "the same pattern again");
    assert_eq!(again.json::<Value>().await.unwrap(), stored);
    assert_eq!(
        app.get("/v1/spaces/s/neurons/cat/patterns/1")
            .await
            .json::<Value>()
            .await
            .unwrap(),
        stored
    );
    assert_eq!(
        app.delete("/v1/spaces/s/neurons/cat/patterns/1")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(
        app.get("/v1/spaces/s/neurons/cat/patterns/1").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.delete("/v1/spaces/s/neurons/cat/patterns/1").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        app.query("s", &active).await["matches"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_id_is_kept_and_reusing_it_for_other_bits_conflicts() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let path = "/v1/spaces/s/neurons/n/patterns";
    let first = app
        .post(path, &json!({"active": cells(1, 40), "id": "left-paw"}))
        .await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let same = app
        .post(path, &json!({"active": cells(1, 40), "id": "left-paw"}))
        .await;
    assert_eq!(same.status(), StatusCode::OK);
    let other = app
        .post(path, &json!({"active": cells(2, 40), "id": "left-paw"}))
        .await;
    let body = problem(other, StatusCode::CONFLICT).await;
    assert!(body["detail"].as_str().unwrap().contains("left-paw"));
    problem(
        app.post(path, &json!({"active": cells(3, 40), "id": "bad id"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["patterns"], 1, "refused stores changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_asked_for_return_minimal_answers_only_where_each_pattern_went() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let batch = json!({"patterns": [
        {"neuron": "a", "active": cells(1, 40), "id": "p"},
        {"neuron": "b", "active": cells(2, 40)},
    ]});
    let send = |prefer: &'static str| {
        app.client
            .post(app.url("/v1/spaces/s/patterns"))
            .header("prefer", prefer)
            .json(&batch)
    };
    let response = send("respond-async, return=minimal").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["preference-applied"], "return=minimal");
    assert!(response.headers().contains_key("dendrite-sequence"));
    let answer: Value = response.json().await.unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        results[0],
        json!({"created": true, "id": "p", "neuron": "a", "segment": 0})
    );
    assert_eq!(results[1]["neuron"], "b");
    assert_eq!(
        results[1].as_object().unwrap().keys().collect::<Vec<_>>(),
        ["created", "id", "neuron", "segment"]
    );
    // Stored as a full answer would have it; a repeat is found, and other preferences change
    // nothing.
    let full = send("return=representation").send().await.unwrap();
    assert!(!full.headers().contains_key("preference-applied"));
    let full: Value = full.json().await.unwrap();
    assert_eq!(full["results"][0]["created"], false);
    assert_eq!(full["results"][0]["active"], json!(cells(1, 40)));
    app.stop().await;
}

#[tokio::test]
async fn a_batch_stores_all_or_nothing_and_names_the_first_bad_item() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let good = json!({"patterns": [
        {"neuron": "a", "active": cells(1, 40)},
        {"neuron": "b", "active": cells(2, 40), "id": "x"},
        {"neuron": "a", "active": cells(1, 40)},
    ]});
    let answer: Value = app
        .post("/v1/spaces/s/patterns", &good)
        .await
        .json()
        .await
        .unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(
        (
            results[0]["created"].as_bool(),
            results[2]["created"].as_bool()
        ),
        (Some(true), Some(false))
    );
    assert_eq!(results[0]["id"], results[2]["id"]);
    assert_eq!(results[1]["id"], "x");

    let mut bad_bits = cells(3, 40);
    bad_bits[5] = 5000;
    let bad = json!({"patterns": [{"neuron": "c", "active": cells(4, 40)}, {"neuron": "d", "active": bad_bits}]});
    let body = problem(
        app.post("/v1/spaces/s/patterns", &bad).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["index"], 1);
    assert!(body["detail"].as_str().unwrap().contains("5000"));
    let conflict = json!({"patterns": [{"neuron": "c", "active": cells(4, 40)}, {"neuron": "b", "active": cells(9, 40), "id": "x"}]});
    let body = problem(
        app.post("/v1/spaces/s/patterns", &conflict).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["index"], 1);
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(
        stats["patterns"], 2,
        "neither refused batch stored anything"
    );
    problem(
        app.post("/v1/spaces/s/patterns", &json!({"patterns": []}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    problem(
        app.post("/v1/spaces/nope/patterns", &good).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_full_neuron_answers_409_and_keeps_its_patterns() {
    let app = TestApp::spawn().await;
    let space = json!({"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12, "max_segments_per_neuron": 1});
    assert_eq!(
        app.put("/v1/spaces/s", &space).await.status(),
        StatusCode::CREATED
    );
    let mut stored = 0;
    let body = loop {
        let response = app.store("s", "n", &cells(100 + stored, 40)).await;
        if response.status() != StatusCode::CREATED {
            break problem(response, StatusCode::CONFLICT).await;
        }
        stored += 1;
    };
    assert_eq!(body["type"], "urn:dendrite:problem:neuron-full");
    let report: Value = app
        .get("/v1/spaces/s/neurons/n")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["patterns"], stored);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_single_stores_share_commits() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    app.standard_space("s").await;
    let clients: Vec<_> = (0..32)
        .map(|c| {
            let app = std::sync::Arc::clone(&app);
            tokio::spawn(async move {
                for i in 0..20 {
                    let response = app
                        .store("s", &format!("n{c}"), &cells(c * 1000 + i, 40))
                        .await;
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["patterns"], 640);
    // Every acknowledged store is counted once, whatever commit carried it.
    assert_eq!(stats["writes_committed"], 641, "640 patterns and the space");
    let app = std::sync::Arc::into_inner(app).unwrap();
    app.stop().await;
}
