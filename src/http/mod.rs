//! The REST API: one module per resource, each a table of routes whose handlers parse, call the
//! engine or the writer, and map the answer. `error.rs` alone knows status codes.
//!
//! [`routes`] is the single list of (method, path, handler) the router is built from, so a test
//! can hold it against `openapi.yaml` in both directions.

pub mod error;
pub mod extract;
mod neurons;
mod recognition;
mod spaces;
mod system;

pub use system::OPENAPI;

use crate::engine::{Name, SharedSpace, Space, Spaces};
use crate::store::Database;
use crate::store::writer::Writer;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use error::ApiError;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub spaces: Arc<Spaces>,
    pub writer: Writer,
    pub db: Database,
    pub started: Instant,
}

/// One route of the API.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        handler: on(filter, handler),
    }
}

/// Every route the service answers.
pub fn routes() -> Vec<Route> {
    [
        system::routes(),
        spaces::routes(),
        neurons::routes(),
        recognition::routes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The router: every route, problem documents for unknown paths and methods, and the state.
pub fn router(state: AppState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .fallback(|| async { ApiError::not_found("no such route; see /openapi.yaml") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(state)
}

/// A name from the path, or a 400 naming which one is wrong.
fn parse_name(what: &str, raw: &str) -> Result<Name, ApiError> {
    Name::parse(raw).map_err(|e| ApiError::invalid_name(what, e))
}

impl AppState {
    /// The space named in the path, or a 404.
    fn space(&self, name: &Name) -> Result<SharedSpace, ApiError> {
        self.spaces
            .get(name)
            .ok_or_else(|| ApiError::not_found(format!("no space named {name}")))
    }

    /// Runs `read` on the space named `raw` under its read lock: the path every read handler
    /// takes (parse the name, 404 if absent, share the space with concurrent queries).
    fn read_space<T>(&self, raw: &str, read: impl FnOnce(&Space) -> T) -> Result<T, ApiError> {
        let shared = self.space(&parse_name("space", raw)?)?;
        let space = shared.read().unwrap_or_else(PoisonError::into_inner);
        Ok(read(&space))
    }
}
