//! A long read of one space stalls nothing else: not `/healthz`, not other spaces, not the
//! async workers. Held here by taking a space's read lock for as long as the test likes, which is
//! what a long read does; with a write waiting behind it, as in production.

use crate::helpers::InProcess;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use dendrite::engine::{Name, Space, SpaceParams, SpaceSpec};
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;
use tower::ServiceExt;

fn standard(name: &str) -> Space {
    let params = SpaceParams::new(&SpaceSpec {
        input_size: 2048,
        active_bits: 40,
        synapses_per_pattern: Some(24),
        threshold: Some(12),
        ..SpaceSpec::default()
    })
    .unwrap();
    Space::new(Name::parse(name).unwrap(), params)
}

/// Sends one request; it must be answered while the other space stays locked (a hang is the
/// failure this file is about, so it is bounded rather than awaited forever).
async fn answered(router: &Router, request: Request<Body>) -> Response<Body> {
    tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(request))
        .await
        .expect("answered while another space is locked")
        .unwrap()
}

fn post(path: &str, body: serde_json::Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn a_locked_space_stalls_neither_health_nor_other_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::helpers::database_url(&dir.path().join("d.db"));
    let InProcess {
        router,
        spaces,
        writer,
        thread,
        ..
    } = InProcess::on(&url).await;
    for name in ["busy", "free"] {
        writer.create_space(standard(name)).await.unwrap();
    }
    let active: Vec<u32> = (0..40).map(|i| i * 50).collect();

    // A long read of `busy`: its read lock, held until told to let go.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (holding, held) = std::sync::mpsc::channel::<()>();
    let busy = spaces.get(&Name::parse("busy").unwrap()).unwrap();
    let reader = std::thread::spawn(move || {
        let _lock = busy.read().unwrap();
        holding.send(()).unwrap();
        released.recv().unwrap();
    });
    held.recv().unwrap();

    // A write to `busy` now waits for that reader (and new readers of `busy` wait behind it).
    let waiting_store = tokio::spawn({
        let router = router.clone();
        let body = json!({ "active": active });
        async move {
            router
                .oneshot(post("/v1/spaces/busy/neurons/n/patterns", body))
                .await
                .unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting_store.is_finished(),
        "the write waits for the reader"
    );

    let health = answered(
        &router,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(health.status(), StatusCode::OK);
    let query = answered(
        &router,
        post("/v1/spaces/free/query", json!({ "active": active })),
    )
    .await;
    assert_eq!(query.status(), StatusCode::OK);
    let report = answered(
        &router,
        Request::get("/v1/spaces/free").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(report.status(), StatusCode::OK);
    // Totals need every space, `busy` too: they wait for the reader, on a CPU worker.
    let stats = tokio::spawn(
        router
            .clone()
            .oneshot(Request::get("/v1/stats").body(Body::empty()).unwrap()),
    );

    // The reader finishes: the waiting write goes through, and so do writes to other spaces.
    release.send(()).unwrap();
    reader.join().unwrap();
    assert_eq!(stats.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(waiting_store.await.unwrap().status(), StatusCode::CREATED);
    let store = answered(
        &router,
        post(
            "/v1/spaces/free/neurons/n/patterns",
            json!({ "active": active }),
        ),
    )
    .await;
    assert_eq!(store.status(), StatusCode::CREATED);
    drop(router);
    drop(writer);
    thread.stop().await;
}
