//! Metadata on a pattern: stored with it, answered with it and with every match it explains,
//! kept through restarts (and, on PostgreSQL, seen by other replicas); bad metadata refused.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PATTERNS: &str = "/v1/spaces/s/neurons/pump-3/patterns";

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

/// The first match's attribution for `active`: (pattern id, metadata).
async fn attribution(app: &TestApp, active: &[u32]) -> (Value, Value) {
    let answer = app.query("s", active).await;
    let best = &answer["matches"][0];
    (best["pattern"].clone(), best["pattern_metadata"].clone())
}

#[tokio::test]
async fn metadata_comes_back_with_the_pattern_and_with_each_match_it_explains() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let label = json!({"shift": "night", "state": "normal", "line": {"pump": 3}});
    let stored = json_of(
        app.post(
            PATTERNS,
            &json!({"active": cells(1, 40), "id": "a", "metadata": label}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(stored["metadata"], label);
    // Without metadata the field is left out, not null.
    let plain = json_of(
        app.post(PATTERNS, &json!({"active": cells(2, 40), "id": "b"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert!(plain.get("metadata").is_none(), "{plain}");
    let batch = json_of(
        app.post(
            "/v1/spaces/s/patterns",
            &json!({"patterns": [
                {"neuron": "pump-4", "active": cells(3, 40), "metadata": {"shift": "day"}},
                {"neuron": "pump-4", "active": cells(4, 40), "metadata": null},
            ]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(batch["results"][0]["metadata"], json!({"shift": "day"}));
    assert!(batch["results"][1].get("metadata").is_none());

    let read = json_of(app.get(&format!("{PATTERNS}/a")).await, StatusCode::OK).await;
    assert_eq!(read["metadata"], label);
    let page = json_of(app.get(PATTERNS).await, StatusCode::OK).await;
    assert_eq!(page["patterns"][0]["metadata"], label);
    assert!(page["patterns"][1].get("metadata").is_none());

    // A noisy copy of pattern a is explained by a, with a's metadata; of b, by b, with none.
    let mut noisy = cells(1, 40);
    noisy.truncate(32);
    assert_eq!(attribution(&app, &noisy).await, (json!("a"), label.clone()));
    assert_eq!(
        attribution(&app, &cells(2, 40)).await,
        (json!("b"), Value::Null)
    );
    assert_eq!(
        attribution(&app, &cells(3, 40)).await.1,
        json!({"shift": "day"})
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stored_pattern_s_metadata_is_set_once() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let first = json!({"active": cells(1, 40), "id": "a", "metadata": {"v": 1}});
    json_of(app.post(PATTERNS, &first).await, StatusCode::CREATED).await;
    // The same store again is answered with the stored pattern (a retry is safe).
    let again = json_of(app.post(PATTERNS, &first).await, StatusCode::OK).await;
    assert_eq!(again["metadata"], json!({"v": 1}));
    // Other metadata, or none, under the same id is a conflict that names the id.
    for other in [json!({"v": 2}), Value::Null] {
        let body = json!({"active": cells(1, 40), "id": "a", "metadata": other});
        let refused = problem(app.post(PATTERNS, &body).await, StatusCode::CONFLICT).await;
        let detail = refused["detail"].as_str().unwrap();
        assert!(
            detail.contains("pattern a") && detail.contains("metadata"),
            "{detail}"
        );
    }
    // The same bits without an id are the stored pattern: answered as stored, unchanged.
    let same_bits = json!({"active": cells(1, 40), "metadata": {"v": 3}});
    let answered = json_of(app.post(PATTERNS, &same_bits).await, StatusCode::OK).await;
    assert_eq!(
        (&answered["id"], &answered["metadata"]),
        (&json!("a"), &json!({"v": 1}))
    );
    app.stop().await;
}

#[tokio::test]
async fn metadata_that_is_not_a_small_object_is_refused_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let too_large = json!({"note": "x".repeat(dendrite::engine::MAX_METADATA_BYTES)});
    for (metadata, says) in [
        (json!(["pump", 3]), "not an array"),
        (json!("pump-3"), "not a string"),
        (json!(3), "not a number"),
        (too_large.clone(), "at most 2048"),
    ] {
        let body = json!({"active": cells(1, 40), "metadata": metadata});
        let refused = problem(
            app.post(PATTERNS, &body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["field"], "metadata");
        let detail = refused["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{detail}");
    }
    let batch = json!({"patterns": [
        {"neuron": "n", "active": cells(2, 40), "metadata": {"ok": true}},
        {"neuron": "n", "active": cells(3, 40), "metadata": too_large},
    ]});
    let refused = problem(
        app.post("/v1/spaces/s/patterns", &batch).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(
        (&refused["field"], &refused["index"]),
        (&json!("metadata"), &json!(1))
    );
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .starts_with("patterns[1]: ")
    );
    let stats = json_of(app.get("/v1/stats").await, StatusCode::OK).await;
    assert_eq!(stats["patterns"], 0, "refused stores changed nothing");
    app.stop().await;
}

#[tokio::test]
async fn metadata_is_kept_through_a_restart_and_seen_by_other_replicas() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let label = json!({"shift": "night", "ü": "ünïcode \"quoted\""});
    let body = json!({"active": cells(1, 40), "id": "a", "metadata": label});
    json_of(app.post(PATTERNS, &body).await, StatusCode::CREATED).await;
    if postgres_admin_url().is_some() {
        // Another replica learns the pattern from the change log, metadata included.
        let replica = TestApp::spawn_on(&app.database).await;
        let written = app
            .post(
                PATTERNS,
                &json!({"active": cells(2, 40), "id": "b", "metadata": {"n": 2}}),
            )
            .await;
        let sequence = written.headers()["dendrite-sequence"]
            .to_str()
            .unwrap()
            .to_owned();
        let read = replica
            .get(&format!("{PATTERNS}/b?min_sequence={sequence}"))
            .await;
        assert_eq!(
            json_of(read, StatusCode::OK).await["metadata"],
            json!({"n": 2})
        );
        replica.stop().await;
    }
    let database = app.database.clone();
    let dir = app.stop().await;
    let app = TestApp::spawn_on(&database).await;
    let read = json_of(app.get(&format!("{PATTERNS}/a")).await, StatusCode::OK).await;
    assert_eq!(read["metadata"], label);
    assert_eq!(attribution(&app, &cells(1, 40)).await.1, label);
    app.stop().await;
    drop(dir);
}
