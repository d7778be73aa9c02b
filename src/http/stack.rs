//! The middleware around every route, in one place: what each request passes through before
//! the route's own guard (`guard::check_route`, set up per route by its class) and its handler.
//!
//! Outermost first: the request's metrics and log line (so every answer is counted, refusals
//! included), the headers every answer carries, cross-origin access, the Host check, then the
//! body's limits: a declared length over the limit, a compressed body, a body that arrives too
//! slowly, and the limit itself for bodies of unknown length.

use super::access::{self, AllowedHosts};
use super::{AppState, guard, metrics, router};
use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;

/// What the middleware around the routes takes from the settings.
pub struct Edge {
    /// The Host headers this service answers to (DNS rebinding).
    pub hosts: AllowedHosts,
    /// Cross-origin access, from [`cors_layer`]; `None` keeps it closed.
    pub cors: Option<CorsLayer>,
    /// The largest request body, in bytes.
    pub body_limit: usize,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
}

/// The whole HTTP service: every route with its guard, inside the middleware every request
/// passes through.
pub fn service(state: AppState, edge: Edge) -> Router {
    let observers = (Arc::clone(&state.metrics), Arc::clone(&state.activity));
    let keys = Arc::clone(&state.keys);
    router(state).layer(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn_with_state(
                observers,
                metrics::observe,
            ))
            // On every answer, errors included: browsers must not sniff a type or cache one.
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .option_layer(edge.cors)
            .layer(axum::middleware::from_fn_with_state(
                (keys, Arc::new(edge.hosts)),
                access::check_host,
            ))
            .layer(axum::middleware::from_fn_with_state(
                edge.body_limit,
                guard::refuse_declared_oversize,
            ))
            .layer(axum::middleware::from_fn(guard::refuse_encoded_body))
            .layer(RequestBodyDeadlineLayer::new(edge.body_timeout))
            .layer(DefaultBodyLimit::max(edge.body_limit)),
    )
}

/// Cross-origin access for the configured origins only; `None` (closed) when there is none.
pub fn cors_layer(origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    if origins.is_empty() {
        return Ok(None);
    }
    let origins = origins
        .iter()
        .map(|origin| {
            HeaderValue::from_str(origin.trim())
                .with_context(|| format!("DENDRITE_CORS_ORIGIN: {origin:?} is not a valid origin"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("api-key"),
                // A batch store's `Prefer: return=minimal`, and the answer saying it applied.
                HeaderName::from_static("prefer"),
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::WWW_AUTHENTICATE,
                HeaderName::from_static(super::guard::SEQUENCE_HEADER),
                HeaderName::from_static("preference-applied"),
            ]),
    ))
}
