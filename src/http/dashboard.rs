//! The dashboard: one page and its scripts, built into the binary, fetching nothing but this
//! service's own API.
//!
//! The page holds no data, so it is served without a key; every number on it comes from the API,
//! which asks for a key when keys are set (the page then asks the person for one, and keeps it in
//! the browser's session only). A strict Content-Security-Policy lets it run only its own files.

use super::Route;
use super::error::ApiError;
use axum::extract::Path;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::open(Method::GET, "/", page),
        Route::open(Method::GET, "/dashboard/{file}", asset),
        // Browsers ask for it on their own; an SVG under the old name is shown by all of them.
        Route::open(Method::GET, "/favicon.ico", icon),
    ]
}

const ICON: &str = include_str!("dashboard/icon.svg");

/// Scripts, styles and images from this service only; no inline code, no framing.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The page's files: (name, content type, content). uPlot is vendored from npm with its licence.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/style.css"),
    ),
    (
        "uplot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/uplot.iife.min.js"),
    ),
    (
        "uplot.min.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/uplot.min.css"),
    ),
    ("icon.svg", "image/svg+xml", ICON),
    (
        "uplot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("dashboard/uplot.LICENSE"),
    ),
];

async fn page() -> Response {
    let mut response = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("dashboard/index.html"),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    response
}

async fn icon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        ICON,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (_, content_type, content) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found(format!("the dashboard has no file {file}")))?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *content).into_response())
}
