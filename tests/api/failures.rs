//! When the database fails: readiness says so, and a failed commit applies nothing.

use crate::helpers::*;
use axum::body::Body;
use axum::http::Request;
use reqwest::StatusCode;
use serde_json::Value;
use tower::ServiceExt;

#[tokio::test]
async fn readiness_is_503_when_the_database_does_not_answer() {
    let InProcess { router, db, .. } = InProcess::on("sqlite::memory:").await;
    let ready = router
        .clone()
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    db.close().await;
    let unready = router
        .clone()
        .oneshot(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(unready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        unready.headers()["content-type"],
        "application/problem+json"
    );
    let live = router
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(
        live.status(),
        StatusCode::OK,
        "the process itself is still up"
    );
}

#[tokio::test]
async fn a_failed_commit_answers_500_and_applies_nothing() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    assert_eq!(
        app.store("s", "kept", &cells(1, 40)).await.status(),
        StatusCode::CREATED
    );
    // Break the schema behind the service's back: the next commit must fail.
    let saboteur = sqlx::SqlitePool::connect(&format!("sqlite://{}", app.database.display()))
        .await
        .unwrap();
    sqlx::query("DROP TABLE patterns")
        .execute(&saboteur)
        .await
        .unwrap();
    saboteur.close().await;
    let body = problem(
        app.store("s", "lost", &cells(2, 40)).await,
        StatusCode::INTERNAL_SERVER_ERROR,
    )
    .await;
    assert!(
        !body["detail"].as_str().unwrap().contains("patterns"),
        "no SQL details leak: {body}"
    );
    problem(
        app.get("/v1/spaces/s/neurons/lost").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(
        stats["patterns"], 1,
        "the engine did not apply the failed store"
    );
    app.stop().await;
}
