//! Online backups: written while the service serves, listed, pruned, and restored by starting a
//! server on the file.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

async fn backup(app: &TestApp) -> Value {
    let response = app.post("/v1/admin/backup", &json!(null)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// Everything a client can read of space `s`: its report without the memory estimate, and each
/// neuron's report.
async fn state_of_space(app: &TestApp) -> Value {
    let mut report: Value = app.get("/v1/spaces/s").await.json().await.unwrap();
    report["counts"]
        .as_object_mut()
        .unwrap()
        .remove("memory_bytes");
    let neurons: Value = app
        .get("/v1/spaces/s/neurons?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let mut reports = BTreeMap::new();
    for neuron in neurons["neurons"].as_array().unwrap() {
        let name = neuron["name"].as_str().unwrap().to_owned();
        let path = format!("/v1/spaces/s/neurons/{name}?segments_limit=1000");
        reports.insert(name, app.get(&path).await.json::<Value>().await.unwrap());
    }
    json!({"space": report, "neurons": reports})
}

#[tokio::test]
async fn a_backup_holds_every_write_before_it_is_listed_pruned_and_restores_exactly() {
    crate::sqlite_only!();
    let app = TestApp::spawn_configured(|settings| settings.backup_keep = 2).await;
    app.standard_space("s").await;
    for i in 0..20 {
        let response = app.store("s", &format!("n{}", i % 4), &cells(i, 40)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    assert_eq!(
        app.delete("/v1/spaces/s/neurons/n0/patterns/1")
            .await
            .status(),
        204
    );
    let first = backup(&app).await;
    let name = first["name"].as_str().unwrap().to_owned();
    assert!(
        name.starts_with("dendrite-") && name.ends_with(".db"),
        "{name}"
    );
    assert_eq!(first["patterns"], 19);
    // One write creating the space, twenty stores one at a time, one forget.
    assert_eq!(first["last_write"], 22);
    let folder = PathBuf::from(&app.database)
        .parent()
        .unwrap()
        .join("backups");
    let file = folder.join(&name);
    assert_eq!(
        first["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    let leftovers: Vec<_> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A restored copy answers exactly as the original.
    let original = state_of_space(&app).await;
    let queries: Vec<Value> = (0..20).map(app_query_body).collect();
    let mut answers = Vec::new();
    for q in &queries {
        answers.push(
            app.post("/v1/spaces/s/query", q)
                .await
                .json::<Value>()
                .await
                .unwrap(),
        );
    }
    let copy = folder.parent().unwrap().join("restored.db");
    let (code, out) = restore(&file, &copy, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("19 patterns, last write 22"), "{out}");
    let restored = TestApp::spawn_on(&copy).await;
    assert_eq!(state_of_space(&restored).await, original);
    for (q, answer) in queries.iter().zip(&answers) {
        let again: Value = restored
            .post("/v1/spaces/s/query", q)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(&again, answer);
    }
    restored.stop().await;

    // Two more: only the newest two are kept, listed newest first.
    let second = backup(&app).await;
    let third = backup(&app).await;
    let listed: Value = app.get("/v1/admin/backups").await.json().await.unwrap();
    let names: Vec<&str> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            third["name"].as_str().unwrap(),
            second["name"].as_str().unwrap()
        ]
    );
    assert!(!file.exists(), "the oldest was pruned");
    app.stop().await;
}

/// Runs `dendrite restore BACKUP --database-url sqlite://DATABASE [--force]`: its exit code and
/// its output (stdout, then stderr).
fn restore(
    backup: &std::path::Path,
    database: &std::path::Path,
    force: bool,
) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .arg("restore")
        .arg(backup)
        .args([
            "--database-url",
            &format!("sqlite://{}", database.display()),
        ])
        .args(force.then_some("--force"))
        .env_remove("DENDRITE_DATABASE_URL")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[tokio::test]
async fn a_restore_checks_the_backup_and_never_replaces_a_live_or_existing_database_unasked() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for i in 0..10 {
        app.store("s", "n", &cells(i, 40)).await;
    }
    let taken = backup(&app).await;
    let database = PathBuf::from(&app.database);
    let file = database
        .parent()
        .unwrap()
        .join("backups")
        .join(taken["name"].as_str().unwrap());
    let before = state_of_space(&app).await;
    app.store("s", "n", &cells(99, 40)).await;

    // The service holds the file: nothing is touched.
    let (code, out) = restore(&file, &database, true);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("in use by process"), "{out}");
    let dir = app.stop().await;

    // An existing database needs --force.
    let (code, out) = restore(&file, &database, false);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("--force") && out.contains("11 patterns"),
        "{out}"
    );
    // A damaged backup is refused before anything is replaced.
    let damaged = database.parent().unwrap().join("damaged.db");
    let mut bytes = std::fs::read(&file).unwrap();
    let last_page = bytes.len() / 4096 - 1;
    bytes[last_page * 4096..].fill(0);
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, out) = restore(&damaged, &database, true);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("cannot be restored"), "{out}");

    // With --force the backup takes the database's place; the old file is kept beside it.
    let (code, out) = restore(&file, &database, true);
    assert_eq!(code, Some(0), "{out}");
    let kept = out
        .lines()
        .find_map(|line| line.strip_prefix("the database it replaced is kept as "))
        .expect("the replaced file is named");
    assert!(std::path::Path::new(kept).is_file(), "{out}");
    let app = TestApp::spawn_on(&database).await;
    assert_eq!(state_of_space(&app).await, before);
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn a_database_inside_its_own_backup_folder_is_refused_at_start_up() {
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("backups")).unwrap();
    let inside = dir
        .path()
        .join("backups")
        .join("dendrite-2026-11-27T02-15-30.123Z.db");
    let mut settings = args(&dir.path().join("dendrite.db"));
    settings.database_url = format!("sqlite://{}", inside.display());
    settings.backup_dir = Some(dir.path().join("backups"));
    let refused = dendrite::app::Application::build(&settings).await;
    let error = format!("{:#}", refused.err().expect("start-up is refused"));
    assert!(error.contains("dendrite restore"), "{error}");
    assert!(!inside.exists(), "nothing was created there");
}

/// The noisy copy of a stored pattern that query `i` asks for.
fn app_query_body(i: u64) -> Value {
    let stored = cells(i, 40);
    let fresh: Vec<u32> = cells(1000 + i, 60)
        .into_iter()
        .filter(|c| !stored.contains(c))
        .take(8)
        .collect();
    let mut active: Vec<u32> = stored[..32].iter().copied().chain(fresh).collect();
    active.sort_unstable();
    json!({ "active": active })
}

/// One write of the load, with when it was sent and when it was answered.
#[derive(Clone, Debug)]
struct Write {
    neuron: String,
    id: String,
    forget: bool,
    sent: Instant,
    answered: Instant,
    /// The stored pattern as the store answered it.
    stored: Value,
}

#[tokio::test]
async fn a_backup_under_load_holds_the_writes_acknowledged_before_it_and_nothing_torn() {
    crate::sqlite_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let base = app.base.clone();
    let started = Instant::now();
    let stop_at = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut clients = Vec::new();
    for client in 0..16u64 {
        let (base, stop) = (base.clone(), std::sync::Arc::clone(&stop_at));
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let neuron = format!("c{client}");
            let mut writes = Vec::new();
            let stopped = stop.notified();
            tokio::pin!(stopped);
            for i in 0u64.. {
                let id = format!("p{i}");
                let active = cells(client * 10_000 + i, 40);
                let url = format!("{base}/v1/spaces/s/neurons/{neuron}/patterns");
                let sent = Instant::now();
                let response = tokio::select! {
                    response = http.post(&url).json(&json!({"active": active, "id": id})).send() => response.unwrap(),
                    () = &mut stopped => break,
                };
                assert_eq!(response.status(), StatusCode::CREATED);
                let stored: Value = response.json().await.unwrap();
                writes.push(Write {
                    neuron: neuron.clone(),
                    id: id.clone(),
                    forget: false,
                    sent,
                    answered: Instant::now(),
                    stored,
                });
                if i % 3 == 2 {
                    let victim = format!("p{}", i - 1);
                    let url = format!("{base}/v1/spaces/s/neurons/{neuron}/patterns/{victim}");
                    let sent = Instant::now();
                    let response = http.delete(&url).send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::NO_CONTENT);
                    writes.push(Write {
                        neuron: neuron.clone(),
                        id: victim,
                        forget: true,
                        sent,
                        answered: Instant::now(),
                        stored: Value::Null,
                    });
                }
            }
            writes
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backup_sent = Instant::now();
    let report = backup(&app).await;
    let backup_answered = Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop_at.notify_waiters();
    let mut writes = Vec::new();
    for client in clients {
        writes.extend(client.await.unwrap());
    }
    assert!(started.elapsed().as_secs() < 60);

    // What each pattern must be in the backup: certainly there, certainly not, or either.
    let before = |w: &Write| w.answered < backup_sent;
    let after = |w: &Write| w.sent > backup_answered;
    let mut stores: BTreeMap<(String, String), Write> = BTreeMap::new();
    let mut forgets: BTreeMap<(String, String), Write> = BTreeMap::new();
    for w in &writes {
        let key = (w.neuron.clone(), w.id.clone());
        if w.forget {
            forgets.insert(key, w.clone());
        } else {
            stores.insert(key, w.clone());
        }
    }
    let folder = PathBuf::from(&app.database)
        .parent()
        .unwrap()
        .join("backups");
    let copy = folder.join("restored.db");
    std::fs::copy(folder.join(report["name"].as_str().unwrap()), &copy).unwrap();
    let restored = TestApp::spawn_on(&copy).await;
    let (mut certain, mut either) = (0, 0);
    let mut present = 0;
    for (key, store) in &stores {
        let forget = forgets.get(key);
        let path = format!("/v1/spaces/s/neurons/{}/patterns/{}", key.0, key.1);
        let response = restored.get(&path).await;
        let found = response.status() == StatusCode::OK;
        if found {
            present += 1;
            // Whole: the same bits and synapses the store answered with.
            let pattern: Value = response.json().await.unwrap();
            assert_eq!(pattern["active"], store.stored["active"], "{key:?}");
            assert_eq!(pattern["synapses"], store.stored["synapses"], "{key:?}");
            assert_eq!(pattern["segment"], store.stored["segment"], "{key:?}");
        }
        let must_be_there = before(store) && forget.is_none_or(&after);
        let must_be_gone = after(store) || forget.is_some_and(&before);
        if must_be_there {
            assert!(found, "{key:?} was acknowledged before the backup began");
            certain += 1;
        } else if must_be_gone {
            assert!(
                !found,
                "{key:?} was written after the backup or forgotten before it"
            );
            certain += 1;
        } else {
            either += 1;
        }
    }
    let stats: Value = restored.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(
        report["patterns"], stats["patterns"],
        "the report counts what the file holds"
    );
    assert!(present > 0);
    assert!(
        certain > 100,
        "the load wrote too little to test: {certain} certain, {either} either"
    );

    // The restored segments are what a replay of its rows gives: a restart changes nothing.
    let state = state_of_space(&restored).await;
    let dir = restored.stop().await;
    assert!(dir.is_none());
    let replayed = TestApp::spawn_on(&copy).await;
    assert_eq!(state_of_space(&replayed).await, state);
    replayed.stop().await;

    // A backup taken when the load has stopped (and a store abandoned by its client as it
    // stopped has been handled) answers every query as the original does.
    app.settle_writes("s").await;
    let quiet = backup(&app).await;
    let quiet_copy = folder.join("quiet.db");
    std::fs::copy(folder.join(quiet["name"].as_str().unwrap()), &quiet_copy).unwrap();
    let restored = TestApp::spawn_on(&quiet_copy).await;
    assert_eq!(state_of_space(&restored).await, state_of_space(&app).await);
    for client in 0..16u64 {
        let body = json!({"active": cells(client * 10_000 + 3, 40)});
        let original: Value = app
            .post("/v1/spaces/s/query", &body)
            .await
            .json()
            .await
            .unwrap();
        let copy: Value = restored
            .post("/v1/spaces/s/query", &body)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(copy, original);
    }
    restored.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn an_in_memory_database_has_nowhere_to_back_up_to() {
    let app = TestApp::spawn_configured(|settings| {
        settings.database_url = "sqlite::memory:".into();
    })
    .await;
    let response = app.post("/v1/admin/backup", &json!(null)).await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains("--backup-dir"),
        "{body}"
    );
    let listed: Value = app.get("/v1/admin/backups").await.json().await.unwrap();
    assert_eq!(listed["backups"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn a_backup_folder_that_cannot_be_made_is_503_and_the_service_goes_on() {
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("a-file");
    std::fs::write(&not_a_folder, "in the way").unwrap();
    let app = TestApp::spawn_configured(|settings| {
        settings.backup_dir = Some(not_a_folder.clone());
    })
    .await;
    app.standard_space("s").await;
    let response = app.post("/v1/admin/backup", &json!(null)).await;
    let body = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["type"], "urn:dendrite:problem:storage-unavailable");
    // The backup folder is named, with what is wrong with it: not "the database" at all.
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains(&not_a_folder.display().to_string())
            && detail.contains("is a file, not a folder")
            && !detail.contains("database"),
        "{detail}"
    );
    assert_eq!(
        app.store("s", "n", &cells(1, 40)).await.status(),
        StatusCode::CREATED,
        "writes go on"
    );
    assert_eq!(
        std::fs::read_to_string(&not_a_folder).unwrap(),
        "in the way"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_backup_is_downloaded_whole_with_a_read_write_key_and_no_other_file_can_be() {
    crate::sqlite_only!();
    let app = TestApp::spawn_configured(|settings| {
        settings.access.api_key = Some("rw-key-0123456789abcdef".into());
        settings.access.read_only_api_key = Some("ro-key-0123456789abcdef".into());
    })
    .await;
    let client = |key: &str| {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("api-key", key.parse().unwrap());
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .unwrap()
    };
    let (read_write, read_only) = (
        client("rw-key-0123456789abcdef"),
        client("ro-key-0123456789abcdef"),
    );
    let written: Value = read_write
        .post(app.url("/v1/admin/backup"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = written["name"].as_str().unwrap();
    let path = format!("/v1/admin/backups/{name}");
    let response = read_write.get(app.url(&path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.sqlite3"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(disposition, format!("attachment; filename=\"{name}\""));
    let bytes = response.bytes().await.unwrap();
    let on_disk = std::fs::read(app.database.parent().unwrap().join("backups").join(name)).unwrap();
    assert_eq!(bytes.len() as u64, written["bytes"].as_u64().unwrap());
    assert!(bytes == on_disk, "the download is the file, byte for byte");
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    // The read-only key may not take the whole database away; nor may anyone without a key.
    problem(
        read_only.get(app.url(&path)).send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        reqwest::get(app.url(&path)).await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Only the folder's backups: the live database, other files and escapes are 404.
    for other in [
        "dendrite.db",
        "dendrite-x.db.partial",
        "..%2Fdendrite.db",
        "dendrite-..%2F..%2Fdendrite.db",
    ] {
        let response = read_write
            .get(app.url(&format!("/v1/admin/backups/{other}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{other}");
    }
    app.stop().await;
}

#[tokio::test]
async fn backups_written_on_a_schedule_are_listed_and_their_age_is_a_metric() {
    crate::sqlite_only!();
    let app = TestApp::spawn_configured(|settings| settings.backup_interval = 1).await;
    app.standard_space("s").await;
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let listed = loop {
        let listed: Value = app.get("/v1/admin/backups").await.json().await.unwrap();
        if !listed["backups"].as_array().unwrap().is_empty() || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(
        !listed["backups"].as_array().unwrap().is_empty(),
        "no scheduled backup in 20 s"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let age = metrics
        .lines()
        .find_map(|line| line.strip_prefix("dendrite_last_backup_age_seconds "))
        .expect("the backup's age is exported")
        .parse::<f64>()
        .unwrap();
    assert!((0.0..20.0).contains(&age), "{age}");
    app.stop().await;
}

#[tokio::test]
async fn a_backup_schedule_without_a_file_to_back_up_stops_start_up_saying_so() {
    let mut settings = args(std::path::Path::new("unused"));
    settings.database_url = "sqlite::memory:".into();
    settings.backup_interval = 60;
    let error = dendrite::app::Application::build(&settings)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("DENDRITE_BACKUP_INTERVAL"), "{error}");
}
