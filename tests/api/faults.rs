//! A failing disk and racing requests: no acknowledged write is lost, nothing unloadable is
//! committed, and the service says when it cannot take writes.

use crate::helpers::*;
use dendrite::app::Application;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn committed_patterns(db: &sqlx::SqlitePool, neuron: &str) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM patterns WHERE neuron = ?1 ORDER BY id")
        .bind(neuron)
        .fetch_all(db)
        .await
        .unwrap()
}

async fn stats(app: &TestApp) -> Value {
    app.get("/v1/stats").await.json().await.unwrap()
}

fn batch(seed: u64, neuron: &str, count: u64) -> Value {
    let patterns: Vec<Value> = (0..count)
        .map(|i| json!({"neuron": neuron, "active": cells(seed * 100_000 + i, 40)}))
        .collect();
    json!({ "patterns": patterns })
}

#[tokio::test]
async fn a_full_database_refuses_writes_with_507_and_every_acknowledged_write_stays() {
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("dendrite.db");
    let app = TestApp::spawn_with(dendrite::config::ServeArgs {
        max_database_size: Some(384 * 1024),
        ..args(&database)
    })
    .await;
    app.standard_space("s").await;
    app.standard_space("filler").await;
    let db = inspector(&app).await;

    // Fill the database until it refuses.
    let mut full = None;
    for round in 0..200 {
        let response = app
            .post("/v1/spaces/filler/patterns", &batch(round, "f", 50))
            .await;
        if response.status() != StatusCode::OK {
            full = Some(response);
            break;
        }
    }
    assert!(full.is_some(), "a 384 KiB database fills up");
    // A batch no longer fits; fill the last pages with single stores of new neurons.
    let mut full = None;
    for i in 0..500 {
        let response = app
            .store("filler", &format!("g{i}"), &cells(70_000 + i, 40))
            .await;
        if response.status() != StatusCode::CREATED {
            full = Some(response);
            break;
        }
    }
    let refused = full.expect("single stores fill the last pages");
    assert!(refused.headers().contains_key("retry-after"));
    let refusal = problem(refused, StatusCode::INSUFFICIENT_STORAGE).await;
    assert_eq!(refusal["type"], "urn:dendrite:problem:storage-full");
    // The configured limit, not the disk, and what to do about it.
    let detail = refusal["detail"].as_str().unwrap();
    assert!(
        detail.contains("--max-database-size") && !detail.contains("disk is full"),
        "{refusal}"
    );
    let patterns_when_full = stats(&app).await["patterns"].clone();

    // While full: the refused batch left nothing behind, writes keep answering 507 without
    // hanging, readiness says why, and reads are served.
    for i in 0..3 {
        let response = app
            .store("s", &format!("during{i}"), &cells(500 + i, 40))
            .await;
        problem(response, StatusCode::INSUFFICIENT_STORAGE).await;
    }
    assert_eq!(stats(&app).await["patterns"], patterns_when_full);
    let unready = problem(app.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        unready["detail"].as_str().unwrap().contains("size limit"),
        "{unready}"
    );
    // The writer's probe (a commit small enough to fit) has run since: readiness still says
    // what the stores meet.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let unready = problem(app.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        unready["detail"]
            .as_str()
            .unwrap()
            .contains("DENDRITE_MAX_DATABASE_SIZE"),
        "{unready}"
    );
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let stored_filler: Value = app
        .get("/v1/spaces/filler/neurons/f/patterns/1")
        .await
        .json()
        .await
        .unwrap();
    let recognised = app
        .query(
            "filler",
            &stored_filler["active"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap() as u32)
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(recognised["matches"][0]["neuron"], "f");

    // Free room by deleting the filler: writes succeed again, without a restart, and every one
    // of them is committed for good (visible to another connection), forgets included.
    assert_eq!(
        app.delete("/v1/spaces/filler").await.status(),
        StatusCode::NO_CONTENT
    );
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let response = app.store("s", "after", &cells(900 + i, 40)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let stored: Value = response.json().await.unwrap();
        acknowledged.push(stored["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        app.delete("/v1/spaces/s/neurons/after/patterns/2")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    acknowledged.retain(|id| id != "2");
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(committed_patterns(&db, "after").await, acknowledged);
    for i in 0..3 {
        assert!(
            committed_patterns(&db, &format!("during{i}"))
                .await
                .is_empty()
        );
    }
    db.close().await;

    // And after a restart the same holds.
    app.stop().await;
    let app = TestApp::spawn_on(&database).await;
    for id in &acknowledged {
        assert_eq!(
            app.get(&format!("/v1/spaces/s/neurons/after/patterns/{id}"))
                .await
                .status(),
            StatusCode::OK
        );
    }
    problem(
        app.get("/v1/spaces/s/neurons/after/patterns/2").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_database_locked_by_another_process_answers_503_then_recovers() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let db = inspector(&app).await;
    let holder = DatabaseLock::take(&db).await;
    // The writer waits out SQLite's busy timeout (5 s), then refuses.
    let response = app.store("s", "n", &cells(1, 40)).await;
    assert_eq!(response.headers()["retry-after"], "5");
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["type"], "urn:dendrite:problem:storage-unavailable");
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    holder.release().await;
    assert_eq!(
        app.store("s", "n", &cells(1, 40)).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(committed_patterns(&db, "n").await, ["1"]);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    db.close().await;
    app.stop().await;
}

#[tokio::test]
async fn readiness_returns_by_itself_once_the_fault_clears() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let db = inspector(&app).await;
    let holder = DatabaseLock::take(&db).await;
    problem(
        app.store("s", "n", &cells(1, 40)).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    holder.release().await;
    // No write comes: the writer's own probe notices that commits work again.
    let mut ready = false;
    for _ in 0..50 {
        if app.get("/readyz").await.status() == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "readiness came back without a write");
    db.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_store_racing_the_re_creation_of_its_space_is_checked_against_the_new_space() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    let large =
        json!({"input_size": 4096, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12});
    let small =
        json!({"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12});
    assert_eq!(
        app.put("/v1/spaces/dense", &large).await.status(),
        StatusCode::CREATED
    );
    // Hold the writer: its next commit waits for this lock, and everything behind it queues.
    let db = inspector(&app).await;
    let holder = DatabaseLock::take(&db).await;
    let base = app.base.clone();
    let client = app.client.clone();
    let send = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let request = client.request(method, format!("{base}{path}"));
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        tokio::spawn(request.send())
    };
    // The first command the writer takes waits on the lock; each one after it queues, and is
    // sent only once the one before is seen queued, so the writer takes them in this order. The
    // first is not a store: the writer would take a deletion queued behind a store with it (a
    // group gathers what waits), out of the queue's count.
    let held = send(
        reqwest::Method::PUT,
        "/v1/spaces/blocker",
        Some(small.clone()),
    );
    let deleted = send(reqwest::Method::DELETE, "/v1/spaces/dense", None);
    app.wait_for_queued(1).await;
    let recreated = send(reqwest::Method::PUT, "/v1/spaces/dense", Some(small));
    app.wait_for_queued(2).await;
    // Valid for the space as it still is in memory (4096 bits), not for the one it will be.
    let mut outside: Vec<u32> = cells(2, 39);
    outside.push(3000);
    let raced = send(
        reqwest::Method::POST,
        "/v1/spaces/dense/neurons/n/patterns",
        Some(json!({ "active": outside })),
    );
    app.wait_for_queued(3).await;
    holder.release().await;
    assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::CREATED);
    assert_eq!(
        deleted.await.unwrap().unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        recreated.await.unwrap().unwrap().status(),
        StatusCode::CREATED
    );
    let body = problem(
        raced.await.unwrap().unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("3000"), "{body}");
    // The writer lives on, and the database still loads.
    assert_eq!(
        app.store("dense", "n", &cells(3, 40)).await.status(),
        StatusCode::CREATED
    );
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    db.close().await;
    let database = app.database.clone();
    let dir = app.stop().await;
    let app = TestApp::spawn_on(&database).await;
    let space: Value = app.get("/v1/spaces/dense").await.json().await.unwrap();
    assert_eq!(space["counts"]["patterns"], 1);
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn a_database_that_cannot_be_written_is_refused_at_start_up_naming_the_fix() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    let database = app.database.clone();
    let dir = app.stop().await;
    let read_only = dendrite::config::ServeArgs {
        database_url: format!("sqlite://{}?mode=ro", database.display()),
        ..args(&database)
    };
    let error = match Application::build(&read_only).await {
        Ok(_) => panic!("a read-only database was accepted"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains(&database.display().to_string()), "{error}");
    assert!(error.contains("writable"), "{error}");
    drop(dir);
}
