//! Neurons and their patterns: store (one or a batch), read, forget, list, report, delete.

use super::encoding::Coder;
use super::error::ApiError;
use super::extract::{Json, Path, Query, in_range};
use super::guard::with_sequence;
use super::{AppState, ReadCost, Route, parse_name};
use crate::engine::{Metadata, Name, NeuronReport, NeuronSummary, PatternView, StoreRequest};
use crate::store::writer::{Stored, Written};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The most patterns one batch may store.
pub const MAX_BATCH: usize = 10_000;
/// The most neurons one page lists.
pub const MAX_PAGE: usize = 1_000;
const DEFAULT_PAGE: usize = 100;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::write(Method::POST, "/v1/spaces/{space}/patterns", store_batch),
        Route::read(Method::GET, "/v1/spaces/{space}/neurons", list).with_query(),
        Route::read(Method::GET, "/v1/spaces/{space}/neurons/{neuron}", report).with_query(),
        Route::write(
            Method::DELETE,
            "/v1/spaces/{space}/neurons/{neuron}",
            delete,
        ),
        Route::write(
            Method::POST,
            "/v1/spaces/{space}/neurons/{neuron}/patterns",
            store,
        ),
        Route::read(
            Method::GET,
            "/v1/spaces/{space}/neurons/{neuron}/patterns",
            list_patterns,
        )
        .with_query(),
        Route::read(
            Method::GET,
            "/v1/spaces/{space}/neurons/{neuron}/patterns/{id}",
            pattern,
        ),
        Route::write(
            Method::DELETE,
            "/v1/spaces/{space}/neurons/{neuron}/patterns/{id}",
            forget,
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternBody {
    active: Option<Vec<i64>>,
    record: Option<serde_json::Value>,
    id: Option<String>,
    metadata: Option<serde_json::Value>,
}

/// What the space's patterns are parsed and encoded with.
async fn coder(state: &AppState, space: &Name) -> Result<Coder, ApiError> {
    state
        .read_space(space.as_str(), ReadCost::Fixed, Coder::of)
        .await
}

/// A request's metadata (`null` or absent: none); `place` prefixes the error's detail (a batch
/// item's position).
fn parse_metadata(
    raw: Option<serde_json::Value>,
    place: &str,
) -> Result<Option<Metadata>, ApiError> {
    raw.map(|value| {
        Metadata::from_value(value)
            .map_err(|e| ApiError::invalid_pattern("metadata", format!("{place}{e}")))
    })
    .transpose()
}

fn parse_id(raw: Option<&str>) -> Result<Option<Name>, ApiError> {
    raw.map(|id| {
        Name::parse(id)
            .map_err(|e| ApiError::invalid_pattern("id", format!("invalid pattern id: {e}")))
    })
    .transpose()
}

async fn store(
    State(state): State<AppState>,
    Path((space, neuron)): Path<(String, String)>,
    Json(body): Json<PatternBody>,
) -> Result<Response, ApiError> {
    let (space, neuron) = (parse_name("space", &space)?, parse_name("neuron", &neuron)?);
    let coder = coder(&state, &space).await?;
    let (active, _) = coder.pattern(body.active.as_deref(), body.record.as_ref(), "")?;
    let request = StoreRequest {
        neuron,
        active,
        id: parse_id(body.id.as_deref())?,
        metadata: parse_metadata(body.metadata, "")?,
    };
    let Written {
        value: mut stored,
        sequence,
    } = state.writer.store(space, vec![request]).await?;
    state.activity.stored(1);
    let Stored { pattern, created } = stored.remove(0);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(with_sequence(sequence, (status, Json(pattern))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    patterns: Vec<BatchItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchItem {
    neuron: String,
    active: Option<Vec<i64>>,
    record: Option<serde_json::Value>,
    id: Option<String>,
    metadata: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct BatchResult {
    created: bool,
    #[serde(flatten)]
    pattern: PatternView,
}

/// One item of a batch's answer under `Prefer: return=minimal`: where the pattern went and
/// whether it was new. A bulk load rarely reads back the bits it sent, and the full view is about
/// ten times the bytes (most of a client's time, decoding them).
#[derive(Serialize)]
struct BatchSummary {
    created: bool,
    id: Name,
    neuron: Name,
    segment: u32,
}

#[derive(Serialize)]
struct BatchAnswer<T> {
    results: Vec<T>,
}

/// Whether the request asks for the minimal answer (RFC 7240 `Prefer: return=minimal`, among
/// other preferences or parameters, in any case); other preferences are ignored, as the RFC says.
fn prefers_minimal(headers: &HeaderMap) -> bool {
    headers
        .get_all(HeaderName::from_static("prefer"))
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|preference| {
            let token = preference.split(';').next().unwrap_or_default();
            token.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("return")
                    && value
                        .trim()
                        .trim_matches('"')
                        .eq_ignore_ascii_case("minimal")
            })
        })
}

/// A batch's items as store requests (records encoded), or the first bad item's problem.
fn parse_batch(coder: &Coder, items: Vec<BatchItem>) -> Result<Vec<StoreRequest>, ApiError> {
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let at = |e: ApiError| e.at_index(index);
            let neuron = Name::parse(&item.neuron)
                .map_err(|e| {
                    ApiError::invalid_pattern(
                        "neuron",
                        format!("patterns[{index}]: invalid neuron name: {e}"),
                    )
                })
                .map_err(at)?;
            let (active, _) = coder
                .pattern(
                    item.active.as_deref(),
                    item.record.as_ref(),
                    &format!("patterns[{index}]: "),
                )
                .map_err(at)?;
            let id = parse_id(item.id.as_deref()).map_err(at)?;
            let metadata =
                parse_metadata(item.metadata, &format!("patterns[{index}]: ")).map_err(at)?;
            Ok(StoreRequest {
                neuron,
                active,
                id,
                metadata,
            })
        })
        .collect()
}

/// Stores every pattern of the batch in one transaction, or none.
async fn store_batch(
    State(state): State<AppState>,
    Path(space): Path<String>,
    headers: HeaderMap,
    Json(body): Json<BatchBody>,
) -> Result<Response, ApiError> {
    let space = parse_name("space", &space)?;
    if body.patterns.is_empty() || body.patterns.len() > MAX_BATCH {
        return Err(ApiError::invalid_parameter(
            "patterns",
            format!(
                "a batch holds 1 to {MAX_BATCH} patterns, not {}",
                body.patterns.len()
            ),
        ));
    }
    let coder = coder(&state, &space).await?;
    // Off the async workers: 10,000 records of text fields take a good part of a second to
    // encode, which /healthz and every other request would otherwise wait for.
    let requests = state
        .cpu
        .run(move || parse_batch(&coder, body.patterns))
        .await??;
    let Written {
        value: stored,
        sequence,
    } = state
        .writer
        .store(space, requests)
        .await
        .map_err(|error| match error.item() {
            Some(index) => ApiError::from(error).at_index(index),
            None => ApiError::from(error),
        })?;
    state.activity.stored(stored.len() as u64);
    if prefers_minimal(&headers) {
        let results = stored
            .into_iter()
            .map(|Stored { pattern, created }| BatchSummary {
                created,
                id: pattern.id,
                neuron: pattern.neuron,
                segment: pattern.segment,
            })
            .collect();
        let applied = [(
            HeaderName::from_static("preference-applied"),
            "return=minimal",
        )];
        let answer = (applied, Json(BatchAnswer { results })).into_response();
        return Ok(with_sequence(sequence, answer));
    }
    let results = stored
        .into_iter()
        .map(|Stored { pattern, created }| BatchResult { created, pattern })
        .collect();
    Ok(with_sequence(sequence, Json(BatchAnswer { results })))
}

async fn pattern(
    State(state): State<AppState>,
    Path((space, neuron, id)): Path<(String, String, String)>,
) -> Result<Json<PatternView>, ApiError> {
    let (neuron, id) = (parse_name("neuron", &neuron)?, parse_name("id", &id)?);
    let pattern = state
        .read_space(&space, ReadCost::Fixed, move |space| {
            space.pattern(&neuron, &id)
        })
        .await??;
    Ok(Json(pattern))
}

async fn forget(
    State(state): State<AppState>,
    Path((space, neuron, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let space = parse_name("space", &space)?;
    let (neuron, id) = (parse_name("neuron", &neuron)?, parse_name("id", &id)?);
    let written = state.writer.forget(space, neuron, id).await?;
    Ok(with_sequence(written.sequence, StatusCode::NO_CONTENT))
}

/// `?limit=N&after=NAME` of a listing (neurons here, spaces in `spaces.rs`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    limit: Option<usize>,
    after: Option<String>,
}

impl Page {
    /// The page's size (in 1..=[`MAX_PAGE`], [`DEFAULT_PAGE`] when not given) and the name it
    /// starts after.
    pub(super) fn checked(&self) -> Result<(usize, Option<Name>), ApiError> {
        let limit = in_range("limit", self.limit.unwrap_or(DEFAULT_PAGE), MAX_PAGE)?;
        let after = self
            .after
            .as_deref()
            .map(|a| parse_name("after", a))
            .transpose()?;
        Ok((limit, after))
    }
}

#[derive(Serialize)]
struct NeuronPage {
    neurons: Vec<NeuronSummary>,
    /// Pass as `after` for the next page; null on the last one.
    next: Option<Name>,
}

async fn list(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Query(page): Query<Page>,
) -> Result<Json<NeuronPage>, ApiError> {
    let (limit, after) = page.checked()?;
    let page = state
        .read_space(&space, ReadCost::Fixed, move |space| {
            let names = space.neuron_names(after.as_ref(), limit + 1);
            let next = (names.len() > limit).then(|| names[limit - 1].clone());
            let neurons = names
                .iter()
                .take(limit)
                .map(|name| space.neuron_summary(name).expect("a listed neuron exists"))
                .collect();
            NeuronPage { neurons, next }
        })
        .await?;
    Ok(Json(page))
}

#[derive(Serialize)]
struct PatternPage {
    patterns: Vec<PatternView>,
    /// Pass as `after` for the next page; null on the last one.
    next: Option<Name>,
}

/// A neuron's patterns a page at a time, in the order of their ids (as strings).
async fn list_patterns(
    State(state): State<AppState>,
    Path((space, neuron)): Path<(String, String)>,
    Query(page): Query<Page>,
) -> Result<Json<PatternPage>, ApiError> {
    let neuron = parse_name("neuron", &neuron)?;
    let (limit, after) = page.checked()?;
    let page = state
        .read_space(&space, ReadCost::GrowsWithSpace, move |space| {
            let mut patterns = space.neuron_patterns(&neuron, after.as_ref(), limit + 1)?;
            let next = (patterns.len() > limit).then(|| patterns[limit - 1].id.clone());
            patterns.truncate(limit);
            Ok::<_, ApiError>(PatternPage { patterns, next })
        })
        .await??;
    Ok(Json(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentPage {
    segments_limit: Option<usize>,
    segments_after: Option<u32>,
}

async fn report(
    State(state): State<AppState>,
    Path((space, neuron)): Path<(String, String)>,
    Query(page): Query<SegmentPage>,
) -> Result<Json<NeuronReport>, ApiError> {
    let neuron = parse_name("neuron", &neuron)?;
    let limit = in_range(
        "segments_limit",
        page.segments_limit.unwrap_or(DEFAULT_PAGE),
        MAX_PAGE,
    )?;
    let report = state
        .read_space(&space, ReadCost::GrowsWithSpace, move |space| {
            space.neuron_report(&neuron, page.segments_after, limit)
        })
        .await??;
    Ok(Json(report))
}

async fn delete(
    State(state): State<AppState>,
    Path((space, neuron)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (space, neuron) = (parse_name("space", &space)?, parse_name("neuron", &neuron)?);
    let written = state.writer.delete_neuron(space, neuron).await?;
    Ok(with_sequence(written.sequence, StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn asks(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("prefer", HeaderValue::from_str(value).unwrap());
        }
        prefers_minimal(&headers)
    }

    #[test]
    fn return_minimal_is_read_among_other_preferences() {
        assert!(asks(&["return=minimal"]));
        assert!(asks(&["Return = \"Minimal\""]));
        assert!(asks(&["respond-async, wait=10", "return=minimal; foo=bar"]));
        assert!(asks(&["handling=lenient, return=minimal"]));
        assert!(!asks(&[]));
        assert!(!asks(&["return=representation"]));
        assert!(!asks(&["minimal", "return", "wait=minimal"]));
    }
}
