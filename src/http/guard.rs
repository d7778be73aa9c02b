//! The front door's limits, applied before a handler runs: a declared body over the limit is
//! refused at once, and reads are cut off at their deadline. Each answer is a problem document.
//!
//! Writes get no deadline here on purpose: once a write has reached the writer, cutting the
//! request off would answer "timed out" for a write that then commits. A write's wait is bounded
//! instead by the writer's queue and the database's busy timeout, and its answer is always its
//! real outcome. Slow bodies are cut by the body timeout (a layer in `app.rs`) before the writer
//! ever sees them.

use super::error::ApiError;
use crate::store::writer::Writer;
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

/// The query parameter with which a read waits for this replica to have applied a change.
pub const MIN_SEQUENCE: &str = "min_sequence";
/// The most a read waits for its `min_sequence`: replication lag is milliseconds when all is
/// well, so a longer wait means this replica is stuck, and another should be asked.
const SEQUENCE_WAIT: Duration = Duration::from_secs(5);

/// Read-your-writes across replicas: a read with `?min_sequence=N` (the `Dendrite-Sequence` of
/// a write) waits until this replica has applied change N, at most 5 s, then runs
/// as if the parameter had not been there. A replica that does not get there in time answers 503
/// (at once on SQLite, where no change can arrive from elsewhere).
pub async fn read_after_sequence(
    State(writer): State<Writer>,
    mut request: Request,
    next: Next,
) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let mut wanted = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        match pair.split_once('=') {
            Some((MIN_SEQUENCE, value)) if wanted.is_none() => wanted = Some(value.to_owned()),
            Some((MIN_SEQUENCE, _)) => {
                return ApiError::invalid_parameter(MIN_SEQUENCE, "give min_sequence once")
                    .into_response();
            }
            _ => rest.push(pair),
        }
    }
    let Some(wanted) = wanted else {
        return next.run(request).await;
    };
    let Ok(sequence) = wanted.parse::<u64>() else {
        return ApiError::invalid_parameter(
            MIN_SEQUENCE,
            format!(
                "min_sequence must be a whole number from 0 to {} (a write's Dendrite-Sequence), not {wanted:?}",
                u64::MAX
            ),
        )
        .into_response();
    };
    let progress = writer.progress();
    if !progress.reached(sequence, SEQUENCE_WAIT).await {
        let waited = if progress.follows() {
            format!("after waiting {} s", SEQUENCE_WAIT.as_secs())
        } else {
            "and no other process writes its database".to_owned()
        };
        return ApiError::busy(format!(
            "this replica has applied changes up to {}, not yet {sequence}, {waited}; retry, or read from another replica",
            progress.applied(),
        ))
        .into_response();
    }
    // The handler sees the query without the parameter: its own parameters are checked strictly.
    let path = request.uri().path();
    let uri = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    match uri.parse() {
        Ok(uri) => *request.uri_mut() = uri,
        Err(_) => {
            return ApiError::invalid_parameter(MIN_SEQUENCE, "a malformed query").into_response();
        }
    }
    next.run(request).await
}

/// The header that carries a write's sequence.
pub const SEQUENCE_HEADER: &str = "dendrite-sequence";

/// A write's answer with its sequence in the `Dendrite-Sequence` header.
pub fn with_sequence(sequence: u64, answer: impl IntoResponse) -> Response {
    (
        [(
            header::HeaderName::from_static(SEQUENCE_HEADER),
            header::HeaderValue::from(sequence),
        )],
        answer,
    )
        .into_response()
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
