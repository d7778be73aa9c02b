//! The front door's limits, applied before a handler runs: a declared body over the limit is
//! refused at once, and reads are cut off at their deadline. Each answer is a problem document.
//!
//! Writes get no deadline here on purpose: once a write has reached the writer, cutting the
//! request off would answer "timed out" for a write that then commits. A write's wait is bounded
//! instead by the writer's queue and the database's busy timeout, and its answer is always its
//! real outcome. Slow bodies are cut by the body timeout (a layer in `app.rs`) before the writer
//! ever sees them.

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// Refuses a request whose declared `Content-Length` exceeds `limit` before reading a byte of
/// it, instead of waiting for a body the service would refuse anyway.
pub async fn refuse_declared_oversize(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::payload_too_large(limit).into_response(),
        _ => next.run(request).await,
    }
}

/// Answers a read that runs past `limit` with a timeout problem. The handler's work is dropped
/// with it: a query batch starts no further slice, and a slice under way ends within 10 ms.
pub async fn read_deadline(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::timeout().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_read_past_its_deadline_is_a_503_problem_saying_so() {
        let app = Router::new()
            .route("/slow", get(std::future::pending::<&'static str>))
            .layer(axum::middleware::from_fn_with_state(
                Duration::from_millis(20),
                read_deadline,
            ));
        let response = app
            .oneshot(Request::get("/slow").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(response.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["type"], "urn:dendrite:problem:timeout");
    }
}
