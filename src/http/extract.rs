//! Extractors whose rejections are problem documents, not axum's plain-text defaults, and the
//! one check of a count a request gives (a page size, a sample) against its bound.

use super::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::fmt::Display;

/// A JSON body (rejections become 400, 413 or 415 problems), and a JSON answer.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters (rejections become 400 problems).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query-string parameters (rejections become 400 problems).
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `value` when it is in 1..=`most`; else a 400 naming `field`, with one wording for every
/// bounded count a request gives.
pub fn in_range<T>(field: &'static str, value: T, most: T) -> Result<T, ApiError>
where
    T: Copy + PartialOrd + Display + From<u8>,
{
    if value >= T::from(1) && value <= most {
        Ok(value)
    } else {
        Err(ApiError::invalid_parameter(
            field,
            format!("{field} must be in 1..={most}, not {value}"),
        ))
    }
}
