//! Connections a client opens and neglects: cut at the header timeout, capped in number, and
//! unable to keep a stopping server alive.

use crate::helpers::*;
use dendrite::config::ServeArgs;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn spawn(header_timeout: u64, max_connections: usize, shutdown_timeout: u64) -> TestApp {
    TestApp::spawn_configured(|settings: &mut ServeArgs| {
        settings.header_timeout = header_timeout;
        settings.max_connections = max_connections;
        settings.shutdown_timeout = shutdown_timeout;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Whether the server closes the connection (end of stream) within `patience`.
async fn closed_by_server(stream: &mut TcpStream, patience: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    matches!(
        tokio::time::timeout(patience, stream.read(&mut buffer)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn a_client_sending_its_head_a_byte_at_a_time_is_cut_off() {
    let app = spawn(1, 1024, 10).await;
    let mut slow = connect(&app).await;
    let head = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: ";
    let mut cut = false;
    for byte in head
        .iter()
        .chain(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter())
    {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        cut || closed_by_server(&mut slow, Duration::from_secs(5)).await,
        "the slow client was never cut off"
    );
    app.stop().await;
}

#[tokio::test]
async fn silent_connections_beyond_the_cap_neither_exhaust_nor_wedge_the_service() {
    let app = spawn(1, 4, 10).await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(connect(&app).await);
    }
    // Four are served (and cut at the header timeout), four wait in the backlog for their turn
    // (and are cut in turn): a real request still gets through once they are gone.
    let health = tokio::time::timeout(Duration::from_secs(15), app.get("/healthz"))
        .await
        .expect("a request gets through");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    for stream in &mut silent {
        assert!(closed_by_server(stream, Duration::from_secs(10)).await);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_half_sent_request_cannot_keep_a_stopping_server_alive() {
    let app = spawn(600, 1024, 1).await;
    let mut stuck = connect(&app).await;
    stuck
        .write_all(b"POST /v1/spaces/s/neurons/n/patterns HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 100\r\n\r\n{")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(15), app.stop())
        .await
        .expect("the server stops at its shutdown deadline");
}
