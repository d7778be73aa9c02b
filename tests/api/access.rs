//! Who may do what: API keys and their scopes, rotation, key files, the start-up warning of an
//! open service, `Host` checks against DNS rebinding, and the headers every answer carries.

use crate::helpers::*;
use dendrite::app::Application;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const READ_WRITE: &str = "rw-key-0123456789abcdef";
const READ_ONLY: &str = "ro-key-0123456789abcdef";

/// A client that sends `key` in the `api-key` header, or as a bearer token.
fn client_with(key: &str, bearer: bool) -> Client {
    let mut headers = HeaderMap::new();
    if bearer {
        let value = HeaderValue::from_str(&format!("Bearer {key}")).unwrap();
        headers.insert("authorization", value);
    } else {
        headers.insert("api-key", HeaderValue::from_str(key).unwrap());
    }
    Client::builder().default_headers(headers).build().unwrap()
}

async fn keyed_app() -> TestApp {
    TestApp::spawn_configured(|settings| {
        settings.access.api_key = Some(READ_WRITE.into());
        settings.access.read_only_api_key = Some(READ_ONLY.into());
    })
    .await
}

async fn send(client: &Client, app: &TestApp, method: Method, path: &str, body: &Value) -> u16 {
    let request = client.request(method.clone(), app.url(path));
    let request = if method == Method::GET || method == Method::DELETE {
        request
    } else {
        request.json(body)
    };
    request.send().await.unwrap().status().as_u16()
}

async fn pattern_count(app: &TestApp) -> u64 {
    let stats: Value = client_with(READ_ONLY, false)
        .get(app.url("/v1/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["patterns"].as_u64().unwrap()
}

#[tokio::test]
async fn with_keys_set_every_route_but_the_probes_needs_one_and_writes_a_read_write_one() {
    let app = keyed_app().await;
    let read_write = client_with(READ_WRITE, false);
    let read_only = client_with(READ_ONLY, true);
    let anonymous = Client::new();
    let wrong = client_with("not-a-key-0123456789abc", true);
    let space =
        json!({"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12});
    assert_eq!(
        send(&read_write, &app, Method::PUT, "/v1/spaces/s", &space).await,
        201
    );
    let store = json!({"active": cells(1, 40)});
    let query = json!({"active": cells(1, 40)});
    let batch = json!({"queries": [{"active": cells(1, 40)}]});

    // Without a valid key: 401 with a problem document and a challenge, on reads and writes.
    for client in [&anonymous, &wrong] {
        for (method, path, body) in [
            (Method::GET, "/v1/spaces", &json!(null)),
            (Method::GET, "/v1/stats", &json!(null)),
            (Method::POST, "/v1/spaces/s/query", &query),
            (Method::POST, "/v1/spaces/s/neurons/n/patterns", &store),
            (Method::DELETE, "/v1/spaces/s", &json!(null)),
        ] {
            let response = client
                .request(method.clone(), app.url(path))
                .json(body)
                .send()
                .await
                .unwrap();
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(
                challenge.starts_with("Bearer"),
                "{method} {path}: {challenge}"
            );
            problem(response, StatusCode::UNAUTHORIZED).await;
        }
    }
    // The probes and the API's description stay open.
    for path in ["/healthz", "/readyz", "/openapi.yaml"] {
        assert_eq!(
            send(&anonymous, &app, Method::GET, path, &json!(null)).await,
            200
        );
    }

    // A read-only key reads and queries (a query is a POST), and gets 403 on every write.
    for (method, path, body) in [
        (Method::GET, "/v1/spaces/s", &json!(null)),
        (Method::POST, "/v1/spaces/s/query", &query),
        (Method::POST, "/v1/spaces/s/query/batch", &batch),
    ] {
        assert_eq!(
            send(&read_only, &app, method, path, body).await,
            200,
            "{path}"
        );
    }
    // Calibration too: it costs CPU and replaces the stored result.
    for (method, path, body) in [
        (Method::POST, "/v1/spaces/s/neurons/n/patterns", &store),
        (Method::PUT, "/v1/spaces/t", &space),
        (Method::DELETE, "/v1/spaces/s", &json!(null)),
        (Method::POST, "/v1/spaces/s/calibrate", &json!({})),
    ] {
        let response = read_only
            .request(method, app.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        problem(response, StatusCode::FORBIDDEN).await;
    }
    assert_eq!(
        pattern_count(&app).await,
        0,
        "refused writes change nothing"
    );

    // A read-write key, in either header, does everything.
    assert_eq!(
        send(
            &read_write,
            &app,
            Method::POST,
            "/v1/spaces/s/neurons/n/patterns",
            &store
        )
        .await,
        201
    );
    let bearer = client_with(READ_WRITE, true);
    assert_eq!(
        send(
            &bearer,
            &app,
            Method::DELETE,
            "/v1/spaces/s/neurons/n",
            &json!(null)
        )
        .await,
        204
    );
    app.stop().await;
}

#[tokio::test]
async fn a_key_is_rotated_by_listing_old_and_new_then_dropping_the_old() {
    let (old, new) = ("old-key-0123456789abcdef", "new-key-0123456789abcdef");
    let app = TestApp::spawn_configured(|settings| {
        settings.access.api_key = Some(format!("{old}, {new}"));
    })
    .await;
    for key in [old, new] {
        assert_eq!(
            send(
                &client_with(key, false),
                &app,
                Method::GET,
                "/v1/spaces",
                &json!(null)
            )
            .await,
            200
        );
    }
    let dir = app.stop().await.unwrap();
    let mut settings = args(&dir.path().join("dendrite.db"));
    settings.access.api_key = Some(new.into());
    let app = TestApp::spawn_with(settings).await;
    assert_eq!(
        send(
            &client_with(old, false),
            &app,
            Method::GET,
            "/v1/spaces",
            &json!(null)
        )
        .await,
        401
    );
    assert_eq!(
        send(
            &client_with(new, false),
            &app,
            Method::GET,
            "/v1/spaces",
            &json!(null)
        )
        .await,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn keys_come_from_files_and_a_short_key_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("api-key");
    std::fs::write(&secret, format!("{READ_WRITE}\n")).unwrap();
    let app = TestApp::spawn_configured(|settings| {
        settings.access.api_key_file = Some(secret.clone());
    })
    .await;
    let with_key = client_with(READ_WRITE, true);
    assert_eq!(
        send(&with_key, &app, Method::GET, "/v1/spaces", &json!(null)).await,
        200
    );
    assert_eq!(
        send(
            &Client::new(),
            &app,
            Method::GET,
            "/v1/spaces",
            &json!(null)
        )
        .await,
        401
    );
    app.stop().await;

    for (change, setting) in [
        (
            Box::new(|s: &mut dendrite::config::ServeArgs| s.access.api_key = Some("short".into()))
                as Box<dyn Fn(&mut dendrite::config::ServeArgs)>,
            "DENDRITE_API_KEY:",
        ),
        (
            Box::new(|s: &mut dendrite::config::ServeArgs| {
                s.access.read_only_api_key = Some("also-too-short".into())
            }),
            "DENDRITE_READ_ONLY_API_KEY:",
        ),
    ] {
        let mut settings = args(&dir.path().join("refused.db"));
        change(&mut settings);
        let error = Application::build(&settings)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with(setting), "{error}");
        assert!(error.contains("at least 16 characters"), "{error}");
    }
    assert!(
        !dir.path().join("refused.db").exists(),
        "refused before the database is opened"
    );
}

/// One raw HTTP/1.1 request with the given head lines (reqwest always sends the URL's own
/// `Host`): the status and the whole answer.
async fn raw_get(app: &TestApp, path: &str, head: &str) -> (u16, String) {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    (status, answer)
}

async fn status_with_host(app: &TestApp, path: &str, host: &str) -> (u16, String) {
    raw_get(app, path, &format!("Host: {host}\r\n")).await
}

#[tokio::test]
async fn without_keys_only_the_service_s_own_names_are_accepted_as_host() {
    let app = TestApp::spawn_configured(|settings| {
        settings.access.allowed_hosts = vec!["dendrite".into()];
    })
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("dendrite:{port}"),
        "10.0.0.7".to_owned(),
        "[::1]:8080".to_owned(),
    ] {
        let (status, _) = status_with_host(&app, "/v1/spaces", &host).await;
        assert_eq!(status, 200, "{host}");
    }
    // A page on a hostile name that resolves to this machine (DNS rebinding).
    let (status, answer) =
        status_with_host(&app, "/v1/spaces", &format!("evil.example:{port}")).await;
    assert_eq!(status, 421);
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("host-not-allowed"), "{answer}");
    // Probes answer whatever name a platform uses.
    assert_eq!(
        status_with_host(&app, "/healthz", "evil.example").await.0,
        200
    );
    app.stop().await;

    // With keys the key is the defence: any name, as behind a proxy.
    let keyed = keyed_app().await;
    let head = format!("Host: dendrite.example\r\napi-key: {READ_ONLY}\r\n");
    let (status, answer) = raw_get(&keyed, "/v1/spaces", &head).await;
    assert_eq!(status, 200, "{answer}");
    keyed.stop().await;
}

#[tokio::test]
async fn every_answer_says_nosniff_and_no_store() {
    let app = TestApp::spawn().await;
    for (path, status) in [
        ("/v1/spaces", 200),
        ("/v1/spaces/missing", 404),
        ("/healthz", 200),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    app.stop().await;
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    Client::new()
        .request(Method::OPTIONS, app.url("/v1/spaces/s/query"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, api-key")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cross_origin_access_is_closed_unless_origins_are_named() {
    let app = TestApp::spawn().await;
    let closed = preflight(&app, "https://dash.example").await;
    assert!(
        closed
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;

    let app = TestApp::spawn_configured(|settings| {
        settings.access.cors_origins = vec!["https://dash.example".into()];
    })
    .await;
    let allowed = preflight(&app, "https://dash.example").await;
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let allowed_headers = allowed.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(allowed_headers.contains("api-key"), "{allowed_headers}");
    assert!(allowed_headers.contains("prefer"), "{allowed_headers}");
    let other = preflight(&app, "https://other.example").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

/// The log lines the real binary writes up to "listening", with these extra settings.
fn start_up_log(extra: &[&str]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut child = KilledOnDrop(
        Command::new(env!("CARGO_BIN_EXE_dendrite"))
            .args(["serve", "--log-format", "json", "--database-url"])
            .arg(format!("sqlite://{}", dir.path().join("d.db").display()))
            .args(extra)
            .env_remove("DENDRITE_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut events = Vec::new();
    for line in BufReader::new(child.0.stdout.take().unwrap()).lines() {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let listening = event["message"] == "listening";
        events.push(event);
        if listening {
            break;
        }
    }
    drop(child);
    events
}

#[test]
fn an_open_service_on_a_network_address_warns_at_start_up() {
    let warned = |events: &[Value]| {
        events.iter().any(|e| {
            e["level"] == "WARN" && e["message"].as_str().unwrap_or("").contains("NO API KEY")
        })
    };
    assert!(warned(&start_up_log(&["--listen", "0.0.0.0:0"])));
    assert!(!warned(&start_up_log(&["--listen", "127.0.0.1:0"])));
    assert!(!warned(&start_up_log(&[
        "--listen",
        "0.0.0.0:0",
        "--api-key",
        READ_WRITE
    ])));
}

#[test]
fn a_key_setting_present_but_empty_stops_start_up_naming_it_instead_of_serving_openly() {
    let dir = tempfile::tempdir().unwrap();
    let empty_secret = dir.path().join("empty-secret");
    std::fs::write(&empty_secret, "\n").unwrap();
    let empty_secret = empty_secret.display().to_string();
    // (environment, flags, the setting the refusal names)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str], &'a str);
    let cases: [Case; 6] = [
        (&[("DENDRITE_API_KEY", "")], &[], "DENDRITE_API_KEY "),
        (&[], &["--api-key", ",,"], "DENDRITE_API_KEY "),
        (&[], &["--api-key", "  ,  "], "DENDRITE_API_KEY "),
        (
            &[("DENDRITE_READ_ONLY_API_KEY", "")],
            &[],
            "DENDRITE_READ_ONLY_API_KEY ",
        ),
        (
            &[("DENDRITE_API_KEY_FILE", &empty_secret)],
            &[],
            "DENDRITE_API_KEY_FILE ",
        ),
        (
            &[],
            &["--read-only-api-key-file", &empty_secret],
            "DENDRITE_READ_ONLY_API_KEY_FILE ",
        ),
    ];
    for (env, flags, setting) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_dendrite"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
            .arg(format!("sqlite://{}", dir.path().join("d.db").display()))
            .args(flags)
            .env_remove("DENDRITE_API_KEY")
            .env_remove("DENDRITE_API_KEY_FILE")
            .env_remove("DENDRITE_READ_ONLY_API_KEY")
            .env_remove("DENDRITE_READ_ONLY_API_KEY_FILE")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{env:?} {flags:?} started");
        assert!(
            stderr.contains(&format!("{setting}is set but holds no key")),
            "{env:?} {flags:?}: {stderr}"
        );
    }
}
