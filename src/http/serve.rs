//! The listener: accepting connections within limits, and stopping within a deadline.
//!
//! `axum::serve` has no header timeout, no connection cap and no shutdown deadline, so one
//! client sending a byte a second, or a few thousand that connect and say nothing, could hold the
//! service's file descriptors and keep a stopping process alive for as long as they liked. Here
//! each connection is served by hyper directly, with:
//! - a header timeout: a connection that has not sent a whole request head within it, counted
//!   from when it opened or from the end of its previous answer, is closed (so it is also the
//!   keep-alive idle timeout: hyper starts the clock as soon as it waits for the next request);
//! - a cap on open connections, and on those of one peer: at the cap, the connection that has
//!   waited longest without a request in progress (an idle keep-alive connection, or one that has
//!   not finished sending its head) is closed to make room, as nginx reclaims idle keep-alive
//!   connections; only when every connection is busy does a new client wait in the kernel's
//!   backlog. So neither a thousand polite keep-alive clients nor thousands of half-sent heads
//!   can lock new clients out;
//! - a drain window, then a shutdown deadline: for a short while after the stop signal the
//!   service still reads and answers requests, on open connections and on ones already waiting
//!   in the kernel's backlog, each answer with `Connection: close`, so a request a client had
//!   already sent is answered rather than cut off (hyper's graceful shutdown closes an idle
//!   connection at once, unread bytes and all); then connections get the shutdown timeout to
//!   finish their requests, and the process stops regardless.

use axum::Router;
use axum::body::Body;
use axum::http::HeaderValue;
use axum::http::header::CONNECTION;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;

/// The limits a connection is served within.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub max_connections: usize,
    /// The most connections one peer address may hold.
    pub max_connections_per_peer: usize,
    pub shutdown_timeout: Duration,
}

/// Pause after a failed accept (out of file descriptors, say) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long after the stop signal requests are still read (within the shutdown timeout): ample
/// for bytes already in a socket's buffer to be read, short enough not to delay a deploy.
const DRAIN_WINDOW: Duration = Duration::from_millis(250);

/// Serves `router` on `listener` until `shutdown` resolves, then lets open requests finish for
/// at most the shutdown timeout; connections still open then are cut off (and logged).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let draining = Arc::new(AtomicBool::new(false));
    let stopping = async {
        shutdown.await;
        draining.store(true, Ordering::Relaxed);
        tokio::time::sleep(DRAIN_WINDOW.min(limits.shutdown_timeout)).await;
    };
    tokio::pin!(stopping);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer.ip()),
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        if open.count_of(peer) >= limits.max_connections_per_peer.max(1)
            && !open.close_longest_idle(Some(peer))
        {
            tracing::debug!(%peer, "refused a connection: the peer holds its most");
            continue;
        }
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // At the cap: make room by closing the longest idle connection, or wait for a
                // busy one to end when none is idle.
                open.close_longest_idle(None);
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => {
                        permit.expect("the connection semaphore is never closed")
                    }
                    () = &mut stopping => break,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (id, close) = open.register(peer);
        let service = {
            let (open, router, draining) =
                (Arc::clone(&open), router.clone(), Arc::clone(&draining));
            hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let busy = Busy::start(Arc::clone(&open), id);
                    let answer = router.clone().oneshot(request.map(Body::new));
                    let draining = Arc::clone(&draining);
                    async move {
                        let mut response = answer.await?;
                        if draining.load(Ordering::Relaxed) {
                            // hyper closes the connection once this answer is written.
                            response
                                .headers_mut()
                                .insert(CONNECTION, HeaderValue::from_static("close"));
                        }
                        // Idle again only once the whole answer is written: the guard goes with
                        // the body, which hyper drops when it has sent it.
                        Ok::<_, std::convert::Infallible>(
                            response.map(|body| Body::new(GuardedBody { body, _busy: busy })),
                        )
                    }
                },
            )
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            tokio::select! {
                outcome = connection => if let Err(error) = outcome {
                    tracing::debug!(%error, "connection closed with an error");
                },
                () = close.notified() => tracing::debug!("closed an idle connection to make room"),
            }
            open.unregister(id);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_timeout.saturating_sub(DRAIN_WINDOW)) => {
            tracing::warn!(
                timeout_seconds = limits.shutdown_timeout.as_secs_f64(),
                "connections still open at the shutdown deadline: stopping without them"
            );
        }
    }
}

/// The open connections: whose they are, and since when each has been idle.
#[derive(Debug, Default)]
struct Connections {
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    by_id: HashMap<u64, Connection>,
    per_peer: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Connection {
    peer: IpAddr,
    /// Requests in progress on it (more than one only while an answer's body is still written).
    busy: usize,
    /// When it last had no request in progress (or opened).
    idle_since: Instant,
    close: Arc<Notify>,
}

impl Connections {
    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self, peer: IpAddr) -> (u64, Arc<Notify>) {
        let mut table = self.table();
        let id = table.next_id;
        table.next_id += 1;
        let close = Arc::new(Notify::new());
        table.by_id.insert(
            id,
            Connection {
                peer,
                busy: 0,
                idle_since: Instant::now(),
                close: Arc::clone(&close),
            },
        );
        *table.per_peer.entry(peer).or_default() += 1;
        (id, close)
    }

    fn unregister(&self, id: u64) {
        let mut table = self.table();
        if let Some(connection) = table.by_id.remove(&id)
            && let Some(count) = table.per_peer.get_mut(&connection.peer)
        {
            *count -= 1;
            if *count == 0 {
                table.per_peer.remove(&connection.peer);
            }
        }
    }

    fn count_of(&self, peer: IpAddr) -> usize {
        self.table().per_peer.get(&peer).copied().unwrap_or(0)
    }

    fn set_busy(&self, id: u64, started: bool) {
        if let Some(connection) = self.table().by_id.get_mut(&id) {
            if started {
                connection.busy += 1;
            } else {
                connection.busy -= 1;
                if connection.busy == 0 {
                    connection.idle_since = Instant::now();
                }
            }
        }
    }

    /// Tells the connection idle longest (of `peer`, when given) to close; whether there was one.
    fn close_longest_idle(&self, peer: Option<IpAddr>) -> bool {
        let mut table = self.table();
        let longest = table
            .by_id
            .iter()
            .filter(|(_, c)| c.busy == 0 && peer.is_none_or(|p| c.peer == p))
            .min_by_key(|(_, c)| c.idle_since)
            .map(|(&id, _)| id);
        match longest.and_then(|id| table.by_id.get_mut(&id)) {
            Some(connection) => {
                // Busy from now on, so that it is not chosen twice while it closes.
                connection.busy += 1;
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A request in progress on a connection, until dropped.
struct Busy {
    open: Arc<Connections>,
    id: u64,
}

impl Busy {
    fn start(open: Arc<Connections>, id: u64) -> Busy {
        open.set_busy(id, true);
        Busy { open, id }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.open.set_busy(self.id, false);
    }
}

/// An answer's body, holding its connection busy until it is written (or abandoned).
struct GuardedBody {
    body: Body,
    _busy: Busy,
}

impl axum::body::HttpBody for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_idle_connection_is_the_one_closed_and_busy_ones_never_are() {
        let open = Arc::new(Connections::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let (first, first_close) = open.register(a);
        std::thread::sleep(Duration::from_millis(2));
        let (second, _) = open.register(b);
        let busy = Busy::start(Arc::clone(&open), second);
        assert_eq!((open.count_of(a), open.count_of(b)), (1, 1));
        assert!(
            !open.close_longest_idle(Some(b)),
            "b's only connection is busy"
        );
        assert!(open.close_longest_idle(None));
        // The first one was told to close, and is not chosen again.
        let told = first_close.notified();
        tokio::pin!(told);
        assert!(futures_util::FutureExt::now_or_never(told.as_mut()).is_some());
        assert!(!open.close_longest_idle(None), "nothing else is idle");
        drop(busy);
        assert!(
            open.close_longest_idle(Some(b)),
            "idle once its answer is written"
        );
        open.unregister(first);
        open.unregister(second);
        assert_eq!((open.count_of(a), open.count_of(b)), (0, 0));
    }
}
