//! The listener: accepting connections within limits, and stopping within a deadline.
//!
//! `axum::serve` has no header timeout, no connection cap and no shutdown deadline, so one
//! client sending a byte a second, or a few thousand that connect and say nothing, could hold the
//! service's file descriptors and keep a stopping process alive for as long as they liked. Here
//! each connection is served by hyper directly, with:
//! - a header timeout: a connection that has not sent a whole request head within it, counted
//!   from when it opened or from the end of its previous answer, is closed (so it is also the
//!   keep-alive idle timeout: hyper starts the clock as soon as it waits for the next request);
//! - a cap on open connections: past it the service stops accepting, and new clients wait in the
//!   kernel's backlog until a connection closes, instead of the process running out of file
//!   descriptors;
//! - a shutdown deadline: after the stop signal, connections get this long to finish their
//!   requests, then the process stops regardless.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// The limits a connection is served within.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
}

/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish for
/// at most the shutdown timeout. Returns whether every connection closed in time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection closed with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(limits.shutdown_timeout) => {
            tracing::warn!(
                timeout_seconds = limits.shutdown_timeout.as_secs_f64(),
                "connections still open at the shutdown deadline: stopping without them"
            );
            false
        }
    }
}
