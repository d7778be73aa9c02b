//! The HTTP floor: the least an axum server on this machine does to answer `GET /healthz` with
//! dendrite's JSON, for `tools/load/http_floor.py` to measure dendrite's `/healthz` against in
//! the same run. Plain `axum::serve` on a multi-threaded tokio runtime: no middleware, no metrics, no
//! logging, no limits. Not a criterion benchmark: it serves until killed, or for `--seconds`.
//!
//! `cargo bench --bench http_floor -- --listen 127.0.0.1:18099 [--seconds 60]`. Without
//! `--listen` (as `cargo test --all-targets` runs it) it answers one request to itself and exits.

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};
use std::time::Duration;

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

fn main() {
    let mut listen = None;
    let mut seconds = 3600u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = Some(args.next().expect("--listen ADDRESS")),
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--seconds N")
            }
            // cargo bench passes --bench to every target it runs.
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen.as_deref().unwrap_or("127.0.0.1:0"))
            .await
            .expect("the listen address");
        let address = listener.local_addr().expect("a bound address");
        let app = axum::Router::new().route("/healthz", get(healthz));
        let server = axum::serve(listener, app);
        if listen.is_none() {
            tokio::spawn(async move { server.await });
            let answer = ask_once(address).await;
            assert!(answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
            return;
        }
        eprintln!("http_floor: listening on {address} for {seconds} s");
        let _ = tokio::time::timeout(Duration::from_secs(seconds), server).await;
    });
}

/// One `GET /healthz` over a fresh connection, the whole answer as text.
async fn ask_once(address: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("the floor's port");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .expect("a request sent");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("an answer");
    answer
}
