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
        settings.max_connections = Some(max_connections as u64);
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

/// The whole answer on `stream` up to the server closing it.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection after answering")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn requests_sent_as_the_server_stops_are_answered_then_the_connection_closed() {
    let app = spawn(600, 1024, 10).await;
    let mut kept_alive = connect(&app).await;
    assert_eq!(ask_health(&mut kept_alive).await, "HTTP/1.1 200 OK");
    let mut fresh = connect(&app).await;
    let stopping = tokio::spawn(app.stop());
    // The stop has begun: a connection waiting for its next request used to be closed here,
    // with whatever its client had just sent unread.
    tokio::time::sleep(Duration::from_millis(30)).await;
    for stream in [&mut kept_alive, &mut fresh] {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let answer = read_until_closed(stream).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
    }
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("the server stops once they are answered")
        .unwrap();
}

async fn spawn_capped(max_connections: u64, per_peer: u64) -> TestApp {
    TestApp::spawn_configured(|settings: &mut ServeArgs| {
        // Long enough that only reclaiming, never the header timeout, can free a connection.
        settings.header_timeout = 600;
        settings.max_connections = Some(max_connections);
        settings.max_connections_per_peer = Some(per_peer);
    })
    .await
}

/// A request on `stream`, kept alive: its status line.
async fn ask_health(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..read])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_keep_alive_connection_makes_room_for_a_new_client() {
    let app = spawn_capped(4, 100).await;
    let mut polite = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        assert!(ask_health(&mut stream).await.starts_with("HTTP/1.1 200"));
        polite.push(stream);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let health = tokio::time::timeout(Duration::from_secs(2), app.get("/healthz"))
        .await
        .expect("a new client is served at once, not after the idle ones time out");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    assert!(
        closed_by_server(&mut polite[0], Duration::from_secs(2)).await,
        "the connection idle longest was the one closed"
    );
    app.stop().await;
}

#[tokio::test]
async fn half_sent_heads_at_the_cap_cannot_lock_out_a_new_client() {
    let app = spawn_capped(8, 100).await;
    let mut stalled = Vec::new();
    for _ in 0..30 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: 12")
            .await
            .unwrap();
        stalled.push(stream);
    }
    let health = tokio::time::timeout(Duration::from_secs(2), app.get("/healthz"))
        .await
        .expect("a new client is served within a second or two");
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn one_peer_cannot_hold_more_than_its_share_of_busy_connections() {
    let app = spawn_capped(100, 2).await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        let mut stream = connect(&app).await;
        // A whole head, then a body that never comes: the request is in progress.
        stream
            .write_all(b"POST /v1/spaces/s/neurons/n/patterns HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{")
            .await
            .unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = connect(&app).await;
    assert!(
        closed_by_server(&mut third, Duration::from_secs(2)).await,
        "a third connection from the same peer was kept"
    );
    for stream in &mut busy {
        assert!(
            !closed_by_server(stream, Duration::from_millis(300)).await,
            "a busy connection was closed"
        );
    }
    drop(busy);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.get("/healthz").await.status(), reqwest::StatusCode::OK);
    app.stop().await;
}
