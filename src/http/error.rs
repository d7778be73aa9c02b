//! Every error the API answers, as RFC 9457 `application/problem+json`.
//!
//! This is the only place that knows status codes: domain errors map here exhaustively, so a new
//! engine error cannot silently become a 500. Client errors are not logged (they are the client's
//! to fix); server errors are logged in full and answered with a generic detail.

use crate::engine::{EngineError, NameError, PatternError};
use crate::store::backup::BackupError;
use crate::store::fault::{Fault, StorageError};
use crate::store::writer::WriteError;
use crate::theory::InvalidParameter;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answer: the problem's kind plus what the client needs to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    kind: Kind,
    detail: String,
    /// The position of the first bad item of a batch.
    index: Option<usize>,
    /// The request field at fault.
    field: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    MalformedRequest,
    InvalidParameter,
    /// No key, or a key that matches none, while keys are set.
    Unauthorized,
    /// A read-only key on a write.
    Forbidden,
    /// A `Host` that is not a name of this service, while no key is set.
    HostNotAllowed,
    /// A state-changing request a browser sent from another site.
    CrossSite,
    NotFound,
    MethodNotAllowed,
    Conflict,
    NeuronFull,
    PayloadTooLarge,
    UnsupportedMediaType,
    InvalidPattern,
    /// A query batch whose limits add up to more matches than one answer may carry.
    AnswerTooLarge,
    Busy,
    Unavailable,
    /// Writes fail because the disk (or the configured database size) is full.
    StorageFull,
    /// The write would take the engine past its memory limit.
    MemoryFull,
    /// Writes fail for a reason that may clear: a read-only disk, a lock, an I/O error.
    StorageUnavailable,
    /// The request body did not arrive within the body timeout.
    RequestTimeout,
    /// A read ran past the request timeout and was abandoned.
    Timeout,
    Internal,
}

impl Kind {
    fn status(self) -> StatusCode {
        match self {
            Kind::MalformedRequest | Kind::InvalidParameter => StatusCode::BAD_REQUEST,
            Kind::Unauthorized => StatusCode::UNAUTHORIZED,
            Kind::Forbidden | Kind::CrossSite => StatusCode::FORBIDDEN,
            Kind::HostNotAllowed => StatusCode::MISDIRECTED_REQUEST,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Kind::Conflict | Kind::NeuronFull => StatusCode::CONFLICT,
            Kind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Kind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Kind::InvalidPattern | Kind::AnswerTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            Kind::Busy | Kind::Unavailable | Kind::StorageUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Kind::StorageFull | Kind::MemoryFull => StatusCode::INSUFFICIENT_STORAGE,
            Kind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Kind::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, for conditions that clear by themselves.
    fn retry_after(self) -> Option<&'static str> {
        match self {
            Kind::Busy => Some("1"),
            Kind::StorageUnavailable => Some("5"),
            Kind::StorageFull => Some("30"),
            Kind::Timeout => Some("1"),
            Kind::MalformedRequest
            | Kind::InvalidParameter
            | Kind::Unauthorized
            | Kind::Forbidden
            | Kind::CrossSite
            | Kind::HostNotAllowed
            | Kind::NotFound
            | Kind::MethodNotAllowed
            | Kind::Conflict
            | Kind::NeuronFull
            | Kind::PayloadTooLarge
            | Kind::UnsupportedMediaType
            | Kind::InvalidPattern
            | Kind::AnswerTooLarge
            | Kind::Unavailable
            | Kind::MemoryFull
            | Kind::RequestTimeout
            | Kind::Internal => None,
        }
    }

    /// (type slug, title): the slug is stable, clients may branch on it.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Kind::MalformedRequest => ("malformed-request", "The request is malformed"),
            Kind::InvalidParameter => ("invalid-parameter", "A parameter is invalid"),
            Kind::Unauthorized => ("unauthorized", "A valid API key is needed"),
            Kind::Forbidden => ("forbidden", "The API key does not allow this"),
            Kind::HostNotAllowed => ("host-not-allowed", "The Host is not a name of this service"),
            Kind::CrossSite => ("cross-site", "A cross-site request may not change state"),
            Kind::NotFound => ("not-found", "Not found"),
            Kind::MethodNotAllowed => ("method-not-allowed", "Method not allowed"),
            Kind::Conflict => ("conflict", "Conflict with the current state"),
            Kind::NeuronFull => ("neuron-full", "The neuron is full"),
            Kind::PayloadTooLarge => ("payload-too-large", "The request body is too large"),
            Kind::UnsupportedMediaType => ("unsupported-media-type", "Unsupported media type"),
            Kind::InvalidPattern => ("invalid-pattern", "The pattern is invalid"),
            Kind::AnswerTooLarge => ("answer-too-large", "The answer would be too large"),
            Kind::Busy => ("busy", "The service is busy"),
            Kind::Unavailable => ("unavailable", "The service is unavailable"),
            Kind::StorageFull => ("storage-full", "The database's storage is full"),
            Kind::MemoryFull => ("memory-full", "The engine's memory limit is reached"),
            Kind::StorageUnavailable => (
                "storage-unavailable",
                "The database cannot take writes right now",
            ),
            Kind::RequestTimeout => ("request-timeout", "The request body came too slowly"),
            Kind::Timeout => ("timeout", "The request took too long"),
            Kind::Internal => ("internal", "Internal server error"),
        }
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    type_: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    fn new(kind: Kind, detail: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            detail: detail.into(),
            index: None,
            field: None,
        }
    }

    pub fn malformed(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::MalformedRequest, detail)
    }

    pub fn invalid_parameter(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::InvalidParameter, detail).with_field(field)
    }

    /// A request the service's current state rules out (as a space with other parameters is).
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Conflict, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::NotFound, detail)
    }

    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            Kind::MethodNotAllowed,
            "this path does not answer that method",
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Unavailable, detail)
    }

    /// Too much work in flight: retry shortly.
    pub fn busy(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Busy, detail)
    }

    /// A read that ran past the request timeout.
    pub fn timeout() -> ApiError {
        ApiError::new(
            Kind::Timeout,
            "the request ran past the service's request timeout and was stopped; retry, or ask for less at once",
        )
    }

    /// A body that did not arrive in time.
    pub fn request_timeout() -> ApiError {
        ApiError::new(
            Kind::RequestTimeout,
            "the request body did not arrive within the service's body timeout",
        )
    }

    /// A body larger than the limit, refused from its declared length or while reading it.
    pub fn answer_too_large(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::AnswerTooLarge, detail).with_field("limit")
    }

    pub fn encoded_body() -> ApiError {
        ApiError::new(
            Kind::UnsupportedMediaType,
            "the body has a Content-Encoding other than identity: send it uncompressed",
        )
    }

    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            Kind::PayloadTooLarge,
            format!("the request body exceeds the service's body limit of {limit} bytes"),
        )
    }

    /// No valid key while keys are set.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            Kind::Unauthorized,
            "send an API key as `api-key: <key>` or `Authorization: Bearer <key>`",
        )
    }

    /// A key whose scope does not cover the request.
    pub fn cross_site() -> ApiError {
        ApiError::new(
            Kind::CrossSite,
            "a browser sent this request from another site: requests that change state are accepted from this service's own pages and the origins of --cors-origin only",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Forbidden, detail)
    }

    /// A `Host` that is not a name of this service while no key is set.
    pub fn host_not_allowed() -> ApiError {
        ApiError::new(
            Kind::HostNotAllowed,
            "this service answers only to its own names while it has no API key: its listen address, localhost, IP addresses, or a name given with --allowed-host (DENDRITE_ALLOWED_HOSTS)",
        )
    }

    /// A failure on our side; `detail` goes to the log, not to the client.
    pub fn internal(detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::Internal, detail)
    }

    /// An invalid pattern at `field`.
    pub fn invalid_pattern(field: &str, detail: impl Into<String>) -> ApiError {
        ApiError::new(Kind::InvalidPattern, detail).with_field(field)
    }

    /// A name in a path that breaks the naming rule.
    /// An invalid name in the path or query string; `field` is the parameter's name there
    /// (`space`, `neuron`, `id`, `after`).
    pub fn invalid_name(field: &str, error: NameError) -> ApiError {
        ApiError::invalid_parameter(field, format!("{field} is not a valid name: {error}"))
    }

    pub fn with_field(mut self, field: &str) -> ApiError {
        self.field = Some(field.to_owned());
        self
    }

    /// Marks the error as caused by item `index` of a batch.
    pub fn at_index(mut self, index: usize) -> ApiError {
        self.index = Some(index);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The position of the batch item at fault, when one is.
    pub fn index(&self) -> Option<usize> {
        self.index
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let (slug, title) = self.kind.describe();
        let detail = if self.kind == Kind::Internal {
            // The cause is in the log; it may name files or SQL the client has no business seeing.
            tracing::error!(detail = %self.detail, "internal error");
            "something went wrong on our side; it has been logged"
        } else {
            &self.detail
        };
        let problem = Problem {
            type_: format!("urn:dendrite:problem:{slug}"),
            title,
            status: status.as_u16(),
            detail,
            index: self.index,
            field: self.field.as_deref(),
        };
        let mut response = (status, axum::Json(problem)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.kind == Kind::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"dendrite\""),
            );
        }
        if let Some(seconds) = self.kind.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static(seconds));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    #[allow(clippy::wildcard_enum_match_arm)] // JsonRejection is non_exhaustive
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                let reason = deepest_cause(&e);
                let error = ApiError::malformed(format!(
                    "the body does not have the expected fields and types: {reason}"
                ));
                match field_named_in(&reason) {
                    Some(field) => error.with_field(&field),
                    None => error,
                }
            }
            JsonRejection::JsonSyntaxError(e) => {
                ApiError::malformed(format!("the body is not valid JSON: {}", deepest_cause(&e)))
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                Kind::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new(
                    Kind::PayloadTooLarge,
                    "the request body exceeds the service's body limit",
                )
            }
            JsonRejection::BytesRejection(e) if caused_by_body_timeout(&e) => {
                ApiError::request_timeout()
            }
            other => ApiError::malformed(other.body_text()),
        }
    }
}

/// Whether reading the body failed because its deadline passed (the body-timeout layer's error
/// sits somewhere in the chain of sources).
fn caused_by_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::new(Kind::InvalidParameter, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        let reason = deepest_cause(&rejection);
        let error = ApiError::new(
            Kind::InvalidParameter,
            format!("the query string is not what this route takes: {reason}"),
        );
        match field_named_in(&reason) {
            Some(field) => error.with_field(&field),
            None => error,
        }
    }
}

impl From<InvalidParameter> for ApiError {
    fn from(error: InvalidParameter) -> ApiError {
        ApiError::invalid_parameter(error.field, error.to_string())
    }
}

/// The message of the innermost error in a chain: the parser's own words ("missing field `n`",
/// "expected value at line 1 column 1"), without the framework's restatement of what failed.
fn deepest_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = error;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

/// The request field a deserialisation error is about: the path serde reports before the first
/// `": "` (`patterns[2].active`), completed with a field it names in backquotes when the path
/// stops short of it (a missing field is named inside its parent); `None` when it names neither,
/// or when the body is not an object at all (a top-level path like `[0]`).
fn field_named_in(reason: &str) -> Option<String> {
    let (path, rest) = match reason.split_once(": ") {
        Some((path, rest)) if !path.is_empty() && !path.contains(' ') && path != "." => {
            (Some(path), rest)
        }
        _ => (None, reason),
    };
    if path.is_some_and(|path| path.starts_with('[')) {
        return None;
    }
    let named = rest
        .split_once("field `")
        .and_then(|(_, after)| after.split_once('`'))
        .map(|(name, _)| name);
    match (path, named) {
        (Some(path), Some(name)) if path == name || path.ends_with(&format!(".{name}")) => {
            Some(path.to_owned())
        }
        (Some(path), Some(name)) => Some(format!("{path}.{name}")),
        (Some(path), None) => Some(path.to_owned()),
        (None, Some(name)) => Some(name.to_owned()),
        (None, None) => None,
    }
}

impl From<PatternError> for ApiError {
    fn from(error: PatternError) -> ApiError {
        ApiError::invalid_pattern("active", error.to_string())
    }
}

impl From<BackupError> for ApiError {
    fn from(error: BackupError) -> ApiError {
        match error {
            BackupError::NoFolder | BackupError::NotSqlite => {
                ApiError::new(Kind::Conflict, error.to_string())
            }
            BackupError::Running => ApiError::busy(error.to_string()),
            BackupError::Folder { fault, .. } => {
                let kind = match fault {
                    Fault::Full | Fault::SizeLimit => Kind::StorageFull,
                    Fault::ReadOnly | Fault::Locked | Fault::Io | Fault::Behind | Fault::Other => {
                        Kind::StorageUnavailable
                    }
                };
                tracing::warn!(%error, "a backup could not be written");
                ApiError::new(kind, format!("{error}; no backup was written"))
            }
            BackupError::Storage(storage) => storage_error(storage, "no backup was written"),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let kind = match &error {
            EngineError::UnknownNeuron(_) | EngineError::UnknownPattern { .. } => Kind::NotFound,
            EngineError::IdConflict { .. } | EngineError::MetadataConflict { .. } => Kind::Conflict,
            EngineError::NeuronFull { .. } => Kind::NeuronFull,
            EngineError::TooFewActiveBits { .. } | EngineError::InvalidPattern(_) => {
                return ApiError::invalid_pattern("active", error.to_string());
            }
            EngineError::InvalidThreshold(_) => Kind::InvalidParameter,
            // Only stored rows and logged changes are checked this way, never a request.
            EngineError::InvalidPlan { .. } => Kind::Internal,
        };
        ApiError::new(kind, error.to_string())
    }
}

impl From<WriteError> for ApiError {
    fn from(error: WriteError) -> ApiError {
        match error {
            WriteError::Engine { error, .. } => error.into(),
            WriteError::UnknownSpace(_) | WriteError::NotServed(..) => {
                ApiError::not_found(error.to_string())
            }
            WriteError::SpaceConflict(..) => ApiError::new(Kind::Conflict, error.to_string()),
            WriteError::Busy => ApiError::new(Kind::Busy, error.to_string()),
            WriteError::MemoryFull { .. } => ApiError::new(Kind::MemoryFull, error.to_string()),
            WriteError::Closed => ApiError::unavailable(error.to_string()),
            WriteError::Reloaded(_) => ApiError::unavailable(error.to_string()),
            // A bug, not a passing condition: retrying will not help until a restart.
            WriteError::WriterFailed(_) => ApiError::internal(error.to_string()),
            WriteError::Storage(storage) => storage_error(storage, "nothing was written"),
        }
    }
}

/// A failure of the database or its disk, by what fixes it. The driver's message may name files
/// and SQL: the log has it, the client gets what it can act on.
fn storage_error(storage: StorageError, outcome: &str) -> ApiError {
    let kind = match storage.fault() {
        Fault::Full | Fault::SizeLimit => Kind::StorageFull,
        Fault::ReadOnly | Fault::Locked | Fault::Io | Fault::Behind => Kind::StorageUnavailable,
        Fault::Other => Kind::Internal,
    };
    tracing::warn!(%storage, "the database or its disk refused a write");
    let remedy = match storage.fault() {
        // Waiting will not help: room must be made, or the limit raised.
        Fault::SizeLimit => {
            "forget patterns or delete neurons or spaces to make room, or raise the limit and restart"
        }
        Fault::Full
        | Fault::ReadOnly
        | Fault::Locked
        | Fault::Io
        | Fault::Behind
        | Fault::Other => "retry later",
    };
    ApiError::new(
        kind,
        format!("{}; {outcome}: {remedy}", storage.fault().describe()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Name, SpaceSet};

    fn storage(fault: Fault, message: &str) -> WriteError {
        WriteError::Storage(StorageError::Database {
            fault,
            source: std::sync::Arc::new(sqlx::Error::Protocol(message.into())),
        })
    }

    async fn body(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, retry, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn write_errors_map_to_their_statuses() {
        let name = Name::parse("s").unwrap();
        let cases = [
            (
                WriteError::UnknownSpace(name.clone()),
                StatusCode::NOT_FOUND,
            ),
            (
                WriteError::NotServed(name.clone(), SpaceSet::parse("t*").unwrap()),
                StatusCode::NOT_FOUND,
            ),
            (
                WriteError::SpaceConflict(name.clone(), vec!["seed is 0, not 1".into()]),
                StatusCode::CONFLICT,
            ),
            (WriteError::Busy, StatusCode::SERVICE_UNAVAILABLE),
            (WriteError::Closed, StatusCode::SERVICE_UNAVAILABLE),
            (
                storage(Fault::Other, "no such table: patterns"),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (
                storage(Fault::Full, "database or disk is full"),
                StatusCode::INSUFFICIENT_STORAGE,
            ),
            (
                storage(Fault::ReadOnly, "attempt to write a readonly database"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                storage(Fault::Locked, "database is locked"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                storage(Fault::Io, "disk I/O error"),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            // Faults of the storage layer itself: transient, so "retry", not a server error.
            (
                WriteError::Storage(StorageError::LogGap {
                    applied: 4,
                    sequence: 9,
                }),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                WriteError::Storage(StorageError::ConnectTimeout(
                    std::time::Duration::from_secs(10),
                )),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                WriteError::WriterFailed("a panic".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
            (WriteError::Closed, StatusCode::SERVICE_UNAVAILABLE),
            (
                WriteError::Engine {
                    index: 3,
                    error: EngineError::NeuronFull {
                        neuron: name.clone(),
                        segments: 2,
                    },
                },
                StatusCode::CONFLICT,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(ApiError::from(error).status(), status);
        }
    }

    #[test]
    fn the_field_of_a_deserialisation_error_is_named_by_its_path() {
        for (reason, field) in [
            ("missing field `active` at line 1 column 2", Some("active")),
            (".: missing field `active`", Some("active")),
            (
                "patterns[2]: missing field `active`",
                Some("patterns[2].active"),
            ),
            (
                "patterns[2].active[0]: invalid type: floating point",
                Some("patterns[2].active[0]"),
            ),
            (
                "bogus: unknown field `bogus`, expected one of `n`",
                Some("bogus"),
            ),
            ("limit: invalid digit found in string", Some("limit")),
            ("[0]: invalid type: integer `1`, expected a sequence", None),
            ("invalid type: integer `1`, expected struct", None),
            ("EOF while parsing an object at line 1 column 1", None),
        ] {
            assert_eq!(field_named_in(reason).as_deref(), field, "{reason}");
        }
    }

    #[tokio::test]
    async fn a_busy_answer_says_when_to_retry_and_a_500_hides_its_cause() {
        let (status, retry, _) = body(WriteError::Busy.into()).await;
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("1"))
        );
        let (status, retry, problem) =
            body(storage(Fault::Full, "disk full writing table patterns").into()).await;
        assert_eq!(
            (status, retry.as_deref()),
            (StatusCode::INSUFFICIENT_STORAGE, Some("30"))
        );
        assert!(!problem["detail"].as_str().unwrap().contains("patterns"));
        assert_eq!(problem["type"], "urn:dendrite:problem:storage-full");
        let (status, _, problem) =
            body(storage(Fault::Other, "no such table: patterns").into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!problem["detail"].as_str().unwrap().contains("patterns"));
        assert_eq!(problem["type"], "urn:dendrite:problem:internal");
    }

    #[tokio::test]
    async fn a_batch_error_carries_its_index_and_field() {
        let (_, _, problem) = body(ApiError::invalid_pattern("active", "bad").at_index(7)).await;
        assert_eq!(
            (problem["index"].as_u64(), problem["field"].as_str()),
            (Some(7), Some("active"))
        );
    }
}
