//! Every write answers with the sequence of its change, and a read can wait for one: the contract
//! that gives clients read-your-writes across replicas, held on whichever backend the suite runs.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn each_write_answers_with_the_next_sequence_and_a_repeat_with_the_current_one() {
    let app = TestApp::spawn().await;
    let created = app
        .put(
            "/v1/spaces/s",
            &json!({"input_size": 2048, "active_bits": 40}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(sequence_of(&created), 1);
    let again = app
        .put(
            "/v1/spaces/s",
            &json!({"input_size": 2048, "active_bits": 40}),
        )
        .await;
    assert_eq!((again.status(), sequence_of(&again)), (StatusCode::OK, 1));
    let body = json!({ "active": cells(1, 40), "id": "a" });
    let stored = app.post("/v1/spaces/s/neurons/n/patterns", &body).await;
    assert_eq!(
        (stored.status(), sequence_of(&stored)),
        (StatusCode::CREATED, 2)
    );
    let repeated = app.post("/v1/spaces/s/neurons/n/patterns", &body).await;
    assert_eq!(
        (repeated.status(), sequence_of(&repeated)),
        (StatusCode::OK, 2)
    );
    let batch = json!({"patterns": [
        {"neuron": "n", "active": cells(2, 40)},
        {"neuron": "m", "active": cells(3, 40)},
    ]});
    let batched = app.post("/v1/spaces/s/patterns", &batch).await;
    assert_eq!(
        (batched.status(), sequence_of(&batched)),
        (StatusCode::OK, 3)
    );
    let forgotten = app.delete("/v1/spaces/s/neurons/n/patterns/a").await;
    assert_eq!(
        (forgotten.status(), sequence_of(&forgotten)),
        (StatusCode::NO_CONTENT, 4)
    );
    let deleted = app.delete("/v1/spaces/s/neurons/m").await;
    assert_eq!(
        (deleted.status(), sequence_of(&deleted)),
        (StatusCode::NO_CONTENT, 5)
    );
    // A refused write changes nothing and takes no number.
    let refused = app.delete("/v1/spaces/s/neurons/m").await;
    assert_eq!(refused.status(), StatusCode::NOT_FOUND);
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["applied_sequence"], 5);
    assert_eq!(stats["head_sequence"], 5);
    assert_eq!(stats["replication_lag"], 0);
    let backend = if postgres_admin_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(stats["backend"], backend);
    let gone = app.delete("/v1/spaces/s").await;
    assert_eq!(
        (gone.status(), sequence_of(&gone)),
        (StatusCode::NO_CONTENT, 6)
    );
    app.stop().await;
}

#[tokio::test]
async fn a_read_waits_for_its_min_sequence_and_is_refused_one_it_cannot_reach() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let stored = app.store("s", "n", &cells(1, 40)).await;
    let at = sequence_of(&stored);
    // Reached: the read runs as without the parameter, its own parameters intact.
    let page = app
        .get(&format!("/v1/spaces/s/neurons?limit=1&min_sequence={at}"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let page: Value = page.json().await.unwrap();
    assert_eq!(page["neurons"][0]["name"], "n");
    let query = app
        .post(
            &format!("/v1/spaces/s/query?min_sequence={at}"),
            &json!({ "active": cells(1, 40) }),
        )
        .await;
    assert_eq!(query.status(), StatusCode::OK);
    // Not a sequence, or given twice: a 400 naming the parameter.
    for bad in [
        "min_sequence=soon",
        "min_sequence=-1",
        "min_sequence=1&min_sequence=2",
    ] {
        let response = app.get(&format!("/v1/spaces/s?{bad}")).await;
        let body = problem(response, StatusCode::BAD_REQUEST).await;
        assert!(
            body["detail"].as_str().unwrap().contains("min_sequence"),
            "{body}"
        );
    }
    // Never reached (no write will ever take it): 503, to be retried or asked elsewhere.
    let ahead = app
        .get(&format!("/v1/spaces/s?min_sequence={}", at + 1000))
        .await;
    assert_eq!(ahead.headers()["retry-after"], "1");
    let body = problem(ahead, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("up to {at}")),
        "{body}"
    );
    app.stop().await;
}
