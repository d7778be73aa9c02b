//! The front door's limits, applied before a handler runs: a declared body over the limit is
//! refused at once, and reads are cut off at their deadline. Each answer is a problem document.
//!
//! Writes get no deadline here on purpose: once a write has reached the writer, cutting the
//! request off would answer "timed out" for a write that then commits. A write's wait is bounded
//! instead by the writer's queue and the database's busy timeout, and its answer is always its
//! real outcome. Slow bodies are cut by the body timeout (a layer in `app.rs`) before the writer
//! ever sees them.

use super::access::{self, Keys, Need, TrustedOrigins};
use super::error::ApiError;
use crate::store::writer::Progress;
use axum::extract::{Request, State};
use axum::http::{Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
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

/// Refuses (415) a body with a `Content-Encoding` other than `identity`: the service does not
/// decompress, and reading gzip bytes as JSON (or ignoring the header) would misread the request.
pub async fn refuse_encoded_body(request: Request, next: Next) -> Response {
    let encoded = request
        .headers()
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|value| {
            value.to_str().map_or(true, |v| {
                v.split(',')
                    .any(|coding| !coding.trim().eq_ignore_ascii_case("identity"))
            })
        });
    if encoded {
        return ApiError::encoded_body().into_response();
    }
    next.run(request).await
}

/// Answers a read that runs past `limit` with a timeout problem. The handler's work is dropped
/// with it: a query batch starts no further slice, and a slice under way ends within 10 ms.
async fn within_deadline(limit: Duration, answer: impl Future<Output = Response>) -> Response {
    match tokio::time::timeout(limit, answer).await {
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
async fn after_sequence(progress: &Progress, request: &mut Request) -> Result<(), ApiError> {
    let query = request.uri().query().unwrap_or_default();
    let (sequence, rest) = match split_min_sequence(query)? {
        (Some(sequence), rest) => (sequence, rest),
        (None, _) => return Ok(()),
    };
    if !progress.reached(sequence, SEQUENCE_WAIT).await {
        let waited = if progress.follows() {
            format!("after waiting {} s", SEQUENCE_WAIT.as_secs())
        } else {
            "and no other process writes its database".to_owned()
        };
        return Err(ApiError::busy(format!(
            "this replica has applied changes up to {}, not yet {sequence}, {waited}; retry, or read from another replica",
            progress.applied(),
        )));
    }
    // The handler sees the query without the parameter: its own parameters are checked strictly.
    let path = request.uri().path();
    let uri = if rest.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", rest.join("&"))
    };
    *request.uri_mut() = uri
        .parse()
        .map_err(|_| ApiError::invalid_parameter(MIN_SEQUENCE, "a malformed query"))?;
    Ok(())
}

/// The query's `min_sequence` and its other parameters. The parameter must be written plainly,
/// once, as `min_sequence=DIGITS`: a spelling that a client meant as it but that would not be
/// read as it (no `=`, percent-encoded, a sign) is refused rather than served without waiting.
fn split_min_sequence(query: &str) -> Result<(Option<u64>, Vec<&str>), ApiError> {
    let mut wanted = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != MIN_SEQUENCE {
            if decoded_name(name) == MIN_SEQUENCE {
                return Err(ApiError::invalid_parameter(
                    MIN_SEQUENCE,
                    "write min_sequence plainly, not percent-encoded",
                ));
            }
            rest.push(pair);
            continue;
        }
        if wanted.is_some() {
            return Err(ApiError::invalid_parameter(
                MIN_SEQUENCE,
                "give min_sequence once",
            ));
        }
        let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
        match value.parse::<u64>() {
            Ok(sequence) if digits && pair.contains('=') => wanted = Some(sequence),
            _ => {
                return Err(ApiError::invalid_parameter(
                    MIN_SEQUENCE,
                    format!(
                        "min_sequence must be written min_sequence=N, N a whole number from 0 to {} (a write's Dendrite-Sequence), not {:?}",
                        u64::MAX,
                        pair.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
    }
    Ok((wanted, rest))
}

/// A query parameter's name as a form decoder reads it: `+` a space, `%XX` a byte.
fn decoded_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (b'+', _) => {
                decoded.push(b' ');
                i += 1;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// Refuses (400) a query parameter a route does not take, naming it; a read's `min_sequence`
/// passes (it is checked by [`read_after_sequence`]). Routes with parameters of their own check
/// them with their extractor, which refuses unknown names too. Without this a typo such as
/// `min_sequense=7` would be answered from possibly stale data, without a word.
fn check_query(takes_min_sequence: bool, uri: &Uri) -> Result<(), ApiError> {
    let query = uri.query().unwrap_or_default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let name = pair.split_once('=').map_or(pair, |(name, _)| name);
        if takes_min_sequence && decoded_name(name) == MIN_SEQUENCE {
            continue;
        }
        let shown: String = name.chars().take(64).collect();
        let accepted = if takes_min_sequence {
            "it takes only min_sequence"
        } else {
            "it takes none"
        };
        return Err(ApiError::invalid_parameter(
            &shown,
            format!("this route has no query parameter {shown:?}: {accepted}"),
        ));
    }
    Ok(())
}

/// What one route checks before its handler runs, set up once with the router.
#[derive(Debug)]
pub struct RouteGuard {
    pub keys: Arc<Keys>,
    pub need: Need,
    /// For a route that changes state: the origins whose pages may call it across sites.
    pub trusted_origins: Option<Arc<TrustedOrigins>>,
    /// Whether the route reads its own query parameters (its extractor checks them).
    pub takes_query: bool,
    /// For a read: the replica's progress, for `min_sequence`, and the read's deadline.
    pub read: Option<(Arc<Progress>, Duration)>,
}

/// Every check of a route, in one layer (one clone of the state and one boxed future per
/// request, not one per check): the key first, so a refused request reads nothing and waits for
/// nothing; then a cross-site write, an unknown query parameter; then, for a read, its
/// `min_sequence` and its deadline, which covers that wait and the handler.
pub async fn check_route(
    State(guard): State<Arc<RouteGuard>>,
    mut request: Request,
    next: Next,
) -> Response {
    let checked = access::check_key(&guard.keys, guard.need, request.headers())
        .and_then(|()| match &guard.trusted_origins {
            Some(trusted) => access::check_same_site(trusted, request.headers()),
            None => Ok(()),
        })
        .and_then(|()| match guard.takes_query {
            true => Ok(()),
            false => check_query(guard.read.is_some(), request.uri()),
        });
    if let Err(refused) = checked {
        return refused.into_response();
    }
    let Some((progress, deadline)) = &guard.read else {
        return next.run(request).await;
    };
    within_deadline(*deadline, async move {
        match after_sequence(progress, &mut request).await {
            Ok(()) => next.run(request).await,
            Err(refused) => refused.into_response(),
        }
    })
    .await
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

    #[tokio::test]
    async fn a_read_past_its_deadline_is_a_503_problem_saying_so() {
        let response = within_deadline(Duration::from_millis(20), std::future::pending()).await;
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
