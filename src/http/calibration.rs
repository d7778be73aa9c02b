//! Calibration over HTTP: does the theory hold on this space's data? Measured on the CPU pool a
//! few recognitions at a time (the space's lock is released between them), its cost bounded
//! before it starts, and the last result kept per space for the dashboard.

use super::error::ApiError;
use super::extract::{Json, Path, in_range};
use super::{AppState, Route, parse_name};
use crate::engine::{Calibration, Calibrator};
use axum::extract::State;
use axum::http::Method;
use serde::Deserialize;
use std::sync::{Arc, PoisonError};

pub(super) fn routes() -> Vec<Route> {
    vec![
        // CPU work that replaces the stored result: a read-write key's, under the read deadline.
        Route::read(Method::POST, "/v1/spaces/{space}/calibrate", calibrate).with_write_key(),
        Route::read(Method::GET, "/v1/spaces/{space}/calibration", last),
    ]
}

const DEFAULT_SAMPLE: usize = 200;
const MAX_SAMPLE: usize = 2_000;
const DEFAULT_RANDOM_INPUTS: u64 = 1_000;
const MAX_RANDOM_INPUTS: u64 = 10_000;
/// Recognitions times segments one calibration may cost: a few seconds of counting on one core.
/// Past it the sample and the random inputs are scaled down together (the answer says how many
/// were used).
const WORK_BUDGET: u64 = 2_000_000_000;
/// Recognitions per hold of the space's read lock.
const STEP: u64 = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibrateBody {
    /// Stored patterns to sample (each asked 4 times).
    sample: Option<usize>,
    /// Random inputs to ask.
    random_inputs: Option<u64>,
    seed: Option<u64>,
}

async fn calibrate(
    State(state): State<AppState>,
    Path(space): Path<String>,
    Json(body): Json<CalibrateBody>,
) -> Result<Json<Calibration>, ApiError> {
    let name = parse_name("space", &space)?;
    let shared = state.space(&name)?;
    let sample = in_range("sample", body.sample.unwrap_or(DEFAULT_SAMPLE), MAX_SAMPLE)?;
    let random = in_range(
        "random_inputs",
        body.random_inputs.unwrap_or(DEFAULT_RANDOM_INPUTS),
        MAX_RANDOM_INPUTS,
    )?;
    let (sample, random) = within_budget(sample, random, shared.segment_count());
    let seed = body.seed.unwrap_or(0);
    let mut calibrator = {
        let shared = Arc::clone(&shared);
        state
            .cpu
            .run(move || {
                let space = shared.read().unwrap_or_else(PoisonError::into_inner);
                Calibrator::new(&space, sample, random, seed)
            })
            .await?
    };
    loop {
        let shared = Arc::clone(&shared);
        let (returned, done) = state
            .cpu
            .run(move || {
                let space = shared.read().unwrap_or_else(PoisonError::into_inner);
                let done = calibrator.step(&space, STEP);
                (calibrator, done)
            })
            .await?;
        calibrator = returned;
        if done {
            break;
        }
    }
    let calibration = calibrator.finish();
    // Kept only for the space it measured: one deleted (and perhaps created anew) meanwhile
    // gets no result, and a later GET cannot serve this one for its successor.
    let mut kept = state
        .calibrations
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    kept.retain(|_, (space, _)| space.strong_count() > 0);
    if !state
        .spaces
        .get(&name)
        .is_some_and(|current| Arc::ptr_eq(&current, &shared))
    {
        return Err(ApiError::not_found(format!(
            "space {name} was deleted while it was calibrated"
        )));
    }
    kept.insert(name, (Arc::downgrade(&shared), calibration.clone()));
    Ok(Json(calibration))
}

/// (sample, random inputs) scaled down together so that the recognitions times the space's
/// segments stay within [`WORK_BUDGET`]; at least one of each.
fn within_budget(sample: usize, random: u64, segments: u64) -> (usize, u64) {
    let recognitions = sample as u64 * 4 + random;
    let cost = recognitions.saturating_mul(segments.max(1));
    if cost <= WORK_BUDGET {
        return (sample, random);
    }
    let keep = WORK_BUDGET as f64 / cost as f64;
    (
        ((sample as f64 * keep) as usize).max(1),
        ((random as f64 * keep) as u64).max(1),
    )
}

/// The last calibration run on the space since the service started.
async fn last(
    State(state): State<AppState>,
    Path(space): Path<String>,
) -> Result<Json<Calibration>, ApiError> {
    let name = parse_name("space", &space)?;
    let current = state.space(&name)?;
    state
        .calibrations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&name)
        .filter(|(measured, _)| {
            measured
                .upgrade()
                .is_some_and(|measured| Arc::ptr_eq(&measured, &current))
        })
        .map(|(_, calibration)| Json(calibration.clone()))
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no calibration has been run on space {name} since the service started; POST .../calibrate runs one"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_calibration_of_a_large_space_is_scaled_down_to_the_budget() {
        assert_eq!(within_budget(200, 1_000, 10_000), (200, 1_000));
        let (sample, random) = within_budget(200, 1_000, 10_000_000);
        assert!((sample as u64 * 4 + random) * 10_000_000 <= WORK_BUDGET);
        assert_eq!((sample, random), (satisfied(200), satisfied(1_000) as u64));
        assert_eq!(within_budget(2_000, 10_000, u64::MAX), (1, 1));
    }

    /// 200 and 1,000 scaled by budget / cost for 10 million segments.
    fn satisfied(n: usize) -> usize {
        (n as f64 * (WORK_BUDGET as f64 / (1_800.0 * 10_000_000.0))) as usize
    }
}
