//! Records in place of bit lists: `POST /v1/spaces/{space}/encode`, and the one parser every
//! store and query route uses for its input, `active` (bits) or `record` (field values for the
//! space's encoder), exactly one of them. Every refusal of an input is a 422 `invalid-pattern`
//! naming `active` or `record`, as a bad bit list always was.

use super::error::ApiError;
use super::extract::{Json, Path};
use super::{AppState, ReadCost, Route};
use crate::engine::Pattern;
use crate::engine::encoder::{Code, Encoder};
use axum::extract::State;
use axum::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) fn routes() -> Vec<Route> {
    vec![Route::read(
        Method::POST,
        "/v1/spaces/{space}/encode",
        encode,
    )]
}

/// What a space needs to turn a request's input into a pattern.
#[derive(Clone)]
pub(super) struct Coder {
    pub input_size: u32,
    pub encoder: Option<Arc<Encoder>>,
}

impl Coder {
    pub fn of(space: &crate::engine::Space) -> Coder {
        Coder {
            input_size: space.params().input_size,
            encoder: space.params().encoder.clone(),
        }
    }

    /// The pattern of a request's input, and the record's code when it was a record. `place`
    /// prefixes error details (a batch item's position, `patterns[3]: `).
    pub fn pattern(
        &self,
        active: Option<&[i64]>,
        record: Option<&Value>,
        place: &str,
    ) -> Result<(Pattern, Option<Code>), ApiError> {
        match (active, record) {
            (Some(active), None) => Pattern::parse(active, self.input_size)
                .map(|pattern| (pattern, None))
                .map_err(|e| ApiError::invalid_pattern("active", format!("{place}{e}"))),
            (None, Some(record)) => {
                let code = self.encode(record, place)?;
                let pattern = Pattern::from_sorted(code.active.clone(), self.input_size).map_err(|_| {
                    ApiError::invalid_pattern(
                        "record",
                        format!("{place}the record gives no bits: none of the encoder's fields is in it"),
                    )
                })?;
                Ok((pattern, Some(code)))
            }
            (Some(_), Some(_)) => Err(ApiError::invalid_pattern(
                "record",
                format!("{place}give active or record, not both"),
            )),
            (None, None) => Err(ApiError::invalid_pattern(
                "active",
                format!(
                    "{place}give active (the input's bits) or record (field values for the space's encoder)"
                ),
            )),
        }
    }

    /// A record's code under the space's encoder.
    pub fn encode(&self, record: &Value, place: &str) -> Result<Code, ApiError> {
        let encoder = self.encoder.as_ref().ok_or_else(|| {
            ApiError::invalid_pattern(
                "record",
                format!("{place}this space has no encoder: send active bits, or create a space with an encoder to send records"),
            )
        })?;
        encoder
            .encode(record)
            .map_err(|e| ApiError::invalid_pattern("record", format!("{place}{e}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EncodeBody {
    record: Value,
}

#[derive(Serialize)]
struct EncodeAnswer {
    active: Vec<u32>,
    /// Per field, the bits it contributed (empty for a field the record leaves out).
    fields: Map<String, Value>,
}

async fn encode(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(body): Json<EncodeBody>,
) -> Result<Json<EncodeAnswer>, ApiError> {
    let coder = state.read_space(&space, ReadCost::Fixed, Coder::of).await?;
    // A text field may take milliseconds: off the async workers.
    let answer = state
        .cpu
        .run(move || {
            let code = coder.encode(&body.record, "")?;
            let encoder = coder.encoder.as_ref().expect("encode checked it");
            Ok::<_, ApiError>(EncodeAnswer {
                active: code.active,
                fields: encoder.named_fields(code.fields),
            })
        })
        .await??;
    Ok(Json(answer))
}
