//! What survives a restart, a clean one and a kill -9.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[tokio::test]
async fn queries_answer_identically_after_a_restart() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let mut stored = Vec::new();
    for neuron in 0..20u64 {
        for p in 0..12u64 {
            let active = cells(neuron * 100 + p, 40);
            assert_eq!(
                app.store("s", &format!("n{neuron}"), &active)
                    .await
                    .status(),
                StatusCode::CREATED
            );
            stored.push(active);
        }
    }
    // Forget some, so replay must reproduce shared synapses and vanished segments too.
    for neuron in 0..5 {
        assert_eq!(
            app.delete(&format!("/v1/spaces/s/neurons/n{neuron}/patterns/12"))
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        app.delete("/v1/spaces/s/neurons/n19").await.status(),
        StatusCode::NO_CONTENT
    );
    let mut probes: Vec<Vec<u32>> = stored.iter().step_by(7).cloned().collect();
    probes.extend((0..10).map(|i| cells(10_000 + i, 40)));
    let mut before = Vec::new();
    for probe in &probes {
        before.push(app.query("s", probe).await);
    }
    let neuron_before: Value = app
        .get("/v1/spaces/s/neurons/n3")
        .await
        .json()
        .await
        .unwrap();
    let space_before = state_of(app.get("/v1/spaces/s").await.json().await.unwrap());
    let database = app.database.clone();
    let dir = app.stop().await;

    let app = TestApp::spawn_on(&database).await;
    for (probe, answer) in probes.iter().zip(&before) {
        assert_eq!(&app.query("s", probe).await, answer);
    }
    assert_eq!(
        app.get("/v1/spaces/s/neurons/n3")
            .await
            .json::<Value>()
            .await
            .unwrap(),
        neuron_before
    );
    assert_eq!(
        state_of(app.get("/v1/spaces/s").await.json().await.unwrap()),
        space_before
    );
    // Ids of forgotten patterns are not handed out again.
    let next: Value = app
        .store("s", "n0", &cells(99_999, 40))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["id"], "13");
    app.stop().await;
    drop(dir);
}

/// A space's report without its memory estimate: a restart packs the tables (slots freed by
/// forgetting are not rebuilt), so the same state may take a little less memory.
fn state_of(mut report: Value) -> Value {
    report["counts"]
        .as_object_mut()
        .unwrap()
        .remove("memory_bytes");
    report
}

/// The real binary, listening on a port it reports in its log; killed when dropped, so a failing
/// test leaves no server behind.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    /// SIGKILL: no shutdown, no checkpoint.
    fn kill_9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_binary(database: &std::path::Path) -> Server {
    start_binary_with(&crate::helpers::database_url(database), &[])
}

fn start_binary_with(database_url: &str, environment: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .envs(environment.iter().copied())
        .arg("--database-url")
        .arg(database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server logs before it exits")
            .unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "listening" {
            break event["address"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        base: format!("http://{address}"),
    }
}

/// Creates space `s` with the standard parameters on the server at `base`.
/// The service keeps transparent huge pages off (so resident memory tracks the engine's
/// estimate), unless the operator sets the allocator's own switch.
#[cfg(target_os = "linux")]
#[test]
fn the_service_runs_without_transparent_huge_pages_unless_asked() {
    let thp_enabled = |server: &Server| {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("THP_enabled:"))
            .unwrap()
            .to_owned();
        line.split_whitespace().nth(1).unwrap().to_owned()
    };
    // A SQLite file whichever database the suite runs on: this is about the process.
    let dir = tempfile::tempdir().unwrap();
    let url = |file: &str| format!("sqlite://{}", dir.path().join(file).display());
    let server = start_binary_with(&url("d.db"), &[]);
    assert_eq!(thp_enabled(&server), "0");
    drop(server);
    let asked = start_binary_with(&url("e.db"), &[("MIMALLOC_ALLOW_THP", "1")]);
    assert_eq!(thp_enabled(&asked), "1");
}

async fn create_standard_space(client: &reqwest::Client, base: &str) {
    let space =
        json!({"input_size": 2048, "active_bits": 40, "synapses_per_pattern": 24, "threshold": 12});
    let created = client
        .put(format!("{base}/v1/spaces/s"))
        .json(&space)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_acknowledged_write_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("dendrite.db");
    crate::helpers::ensure_database(&crate::helpers::database_url(&database)).await;
    let mut server = start_binary(&database);
    let client = reqwest::Client::new();
    create_standard_space(&client, &server.base).await;
    let mut acknowledged = Vec::new();
    for i in 0..50u64 {
        let active = cells(i, 40);
        let url = format!("{}/v1/spaces/s/neurons/n{}/patterns", server.base, i % 7);
        let response = client
            .post(url)
            .json(&json!({ "active": active }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        acknowledged.push((i % 7, response.json::<Value>().await.unwrap()));
    }
    server.kill_9();

    let restarted = start_binary(&database);
    for (neuron, stored) in &acknowledged {
        let url = format!(
            "{}/v1/spaces/s/neurons/n{neuron}/patterns/{}",
            restarted.base,
            stored["id"].as_str().unwrap()
        );
        let found: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        assert_eq!(found["active"], stored["active"]);
        assert_eq!(found["synapses"], stored["synapses"]);
    }
}

#[tokio::test]
async fn a_damaged_stored_pattern_stops_start_up_with_a_line_naming_it() {
    crate::sqlite_only!();
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("dendrite.db");
    crate::helpers::ensure_database(&crate::helpers::database_url(&database)).await;
    let mut server = start_binary(&database);
    let client = reqwest::Client::new();
    let base = server.base.clone();
    create_standard_space(&client, &base).await;
    let stored = client
        .post(format!("{base}/v1/spaces/s/neurons/n/patterns"))
        .json(&json!({"active": cells(0, 40)}))
        .send()
        .await
        .unwrap();
    assert_eq!(stored.status(), StatusCode::CREATED);
    server.kill_9();

    // Three bytes cannot be a list of 4-byte cells. (Without a checksum, as rows stored before
    // checksums were: the checksum would catch the change first.)
    let url = format!("sqlite://{}", database.display());
    let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE patterns SET synapses = X'010203', checksum = NULL")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let output = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("the stored patterns of space s") && stderr.contains("3 bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_second_process_on_the_same_file_refuses_to_start_and_a_killed_owner_leaves_no_lock() {
    crate::sqlite_only!();
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("dendrite.db");
    let mut first = start_binary(&database);
    let second = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(crate::helpers::database_url(&database))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second process started");
    let owner = format!("in use by process {}", first.child.id());
    assert!(stderr.contains(&owner), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    // The first one serves on, undisturbed.
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("{}/readyz", first.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    first.kill_9();
    let third = start_binary(&database);
    let ready = client
        .get(format!("{}/readyz", third.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        StatusCode::OK,
        "a crashed owner left its lock"
    );
}

/// Little-endian u32 cells, as the `patterns` table stores them.
fn cell_blob(cells: &[u32]) -> Vec<u8> {
    cells.iter().flat_map(|c| c.to_le_bytes()).collect()
}

/// The cells of a `patterns` column.
fn cells_of(blob: &[u8]) -> Vec<u32> {
    blob.chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn a_database_in_a_folder_that_does_not_exist_is_refused_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/missing-folder/x.db", dir.path().display());
    let (code, stderr) = start_expecting_refusal(&url);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("missing-folder does not exist"), "{stderr}");
}

/// Starts the real binary on `url`, expecting it to stop at start-up: its exit code and stderr.
fn start_expecting_refusal(url: &str) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[tokio::test]
async fn a_stored_pattern_that_breaks_the_space_s_rules_stops_start_up_naming_its_row() {
    crate::sqlite_only!();
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.db");
    let app = TestApp::spawn_on(&pristine).await;
    app.standard_space("s").await;
    // Enough patterns on one neuron to fill several segments.
    for i in 0..30 {
        assert_eq!(
            app.store("s", "n", &cells(i, 40)).await.status(),
            StatusCode::CREATED
        );
    }
    app.stop().await;
    let url = |path: &std::path::Path| format!("sqlite://{}", path.display());
    let mut connection = sqlx::SqliteConnection::connect(&url(&pristine))
        .await
        .unwrap();
    let (active, synapses): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT active, synapses FROM patterns WHERE neuron = 'n' AND id = '1'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    connection.close().await.unwrap();
    let (active, synapses) = (cells_of(&active), cells_of(&synapses));
    let mut past_the_input = synapses.clone();
    *past_the_input.last_mut().unwrap() = 5000;
    let mut unsorted = synapses.clone();
    unsorted.reverse();
    let outside = (0..2048).find(|c| !active.contains(c)).unwrap();
    let mut off_the_pattern = synapses.clone();
    off_the_pattern[0] = outside;
    off_the_pattern.sort_unstable();

    let cases: [(&str, Option<Vec<u8>>, &str); 4] = [
        (
            "UPDATE patterns SET synapses = ?1, checksum = NULL WHERE neuron = 'n' AND id = '1'",
            Some(cell_blob(&past_the_input)),
            "outside the pattern",
        ),
        (
            "UPDATE patterns SET synapses = ?1, checksum = NULL WHERE neuron = 'n' AND id = '1'",
            Some(cell_blob(&unsorted)),
            "not sorted",
        ),
        (
            "UPDATE patterns SET synapses = ?1, checksum = NULL WHERE neuron = 'n' AND id = '1'",
            Some(cell_blob(&off_the_pattern)),
            "outside the pattern",
        ),
        // What two processes on one file did: every pattern in one segment. (Checksums are cleared,
        // as for rows stored before they existed: the rules must hold without them.)
        (
            "UPDATE patterns SET segment = 0, checksum = NULL WHERE neuron = 'n'",
            None,
            "over the",
        ),
    ];
    for (n, (statement, blob, reason)) in cases.into_iter().enumerate() {
        let copy = dir.path().join(format!("case{n}.db"));
        std::fs::copy(&pristine, &copy).unwrap();
        let mut connection = sqlx::SqliteConnection::connect(&url(&copy)).await.unwrap();
        let mut query = sqlx::query(statement);
        if let Some(blob) = blob {
            query = query.bind(blob);
        }
        query.execute(&mut connection).await.unwrap();
        connection.close().await.unwrap();
        let (code, stderr) = start_expecting_refusal(&url(&copy));
        assert_eq!(code, Some(1), "case {n} started: {stderr}");
        assert!(
            stderr.contains("space s:")
                && stderr.contains("of neuron n")
                && stderr.contains(reason),
            "case {n}: {stderr}"
        );
    }
}

#[tokio::test]
async fn a_damaged_file_or_a_changed_pattern_stops_start_up_instead_of_being_served() {
    crate::sqlite_only!();
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.db");
    let app = TestApp::spawn_on(&pristine).await;
    app.standard_space("s").await;
    for i in 0..200 {
        app.store("s", &format!("n{}", i % 20), &cells(i, 40)).await;
    }
    app.stop().await;
    let url = |path: &std::path::Path| format!("sqlite://{}", path.display());

    // One bit of the pattern moved to another bit outside its synapses: still a valid pattern
    // (sorted, in range), so only the row's checksum can tell.
    let changed = dir.path().join("changed.db");
    std::fs::copy(&pristine, &changed).unwrap();
    let mut connection = sqlx::SqliteConnection::connect(&url(&changed))
        .await
        .unwrap();
    let (active, synapses): (Vec<u8>, Vec<u8>) =
        sqlx::query_as("SELECT active, synapses FROM patterns WHERE neuron = 'n3' AND id = '1'")
            .fetch_one(&mut connection)
            .await
            .unwrap();
    let (mut active, synapses) = (cells_of(&active), cells_of(&synapses));
    let at = active.iter().position(|c| !synapses.contains(c)).unwrap();
    active[at] = (0..2048).find(|c| !active.contains(c)).unwrap();
    active.sort_unstable();
    sqlx::query("UPDATE patterns SET active = ?1 WHERE neuron = 'n3' AND id = '1'")
        .bind(cell_blob(&active))
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    let (code, stderr) = start_expecting_refusal(&url(&changed));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("checksum does not match") && stderr.contains("\"n3\""),
        "{stderr}"
    );

    // Metadata written into a row by hand: the checksum covers metadata too. Without a checksum
    // (as rows stored before checksums), metadata that is not an object is still refused.
    for (update, says) in [
        (
            r#"UPDATE patterns SET metadata = '{"forged":true}' WHERE neuron = 'n3' AND id = '1'"#,
            "checksum does not match",
        ),
        (
            "UPDATE patterns SET metadata = '[1]', checksum = NULL WHERE neuron = 'n3' AND id = '1'",
            "metadata is a JSON object, not an array",
        ),
    ] {
        let labelled = dir.path().join("labelled.db");
        std::fs::copy(&pristine, &labelled).unwrap();
        let mut connection = sqlx::SqliteConnection::connect(&url(&labelled))
            .await
            .unwrap();
        sqlx::query(update).execute(&mut connection).await.unwrap();
        connection.close().await.unwrap();
        let (code, stderr) = start_expecting_refusal(&url(&labelled));
        assert_eq!(code, Some(1), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }

    // A page of the file zeroed, as a failing disk leaves it.
    let zeroed = dir.path().join("zeroed.db");
    std::fs::copy(&pristine, &zeroed).unwrap();
    let mut bytes = std::fs::read(&zeroed).unwrap();
    assert!(bytes.len() > 4 * 4096, "{} bytes", bytes.len());
    let last_page = bytes.len() / 4096 - 1;
    bytes[last_page * 4096..(last_page + 1) * 4096].fill(0);
    std::fs::write(&zeroed, &bytes).unwrap();
    let (code, stderr) = start_expecting_refusal(&url(&zeroed));
    assert_eq!(code, Some(1), "a zeroed page was served: {stderr}");
    assert!(
        stderr.contains("damaged") || stderr.contains("malformed"),
        "{stderr}"
    );
    // The pristine copy still starts.
    let app = TestApp::spawn_on(&pristine).await;
    app.stop().await;
}

/// Stores `count` patterns in batches of 1,000 (within the body limit), spread over `neurons`
/// neurons, with ids `p0`, `p1`, ...
async fn store_many(app: &TestApp, space: &str, count: u64, neurons: u64) {
    for start in (0..count).step_by(1_000) {
        let patterns: Vec<Value> = (start..count.min(start + 1_000))
            .map(|i| json!({"neuron": format!("n{}", i % neurons), "id": format!("p{i}"), "active": cells(i, 40)}))
            .collect();
        let stored = app
            .post(
                &format!("/v1/spaces/{space}/patterns"),
                &json!({ "patterns": patterns }),
            )
            .await;
        assert_eq!(
            stored.status(),
            StatusCode::OK,
            "{}",
            stored.text().await.unwrap()
        );
    }
}

/// Rows of `space` (of one neuron, or all) left in the file.
async fn rows_left(database: &std::path::Path, space: &str, neuron: Option<&str>) -> i64 {
    use sqlx::Connection;
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
    let count = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM patterns WHERE space = ?1 AND (?2 IS NULL OR neuron = ?2)) \
         + (SELECT count(*) FROM neurons WHERE space = ?1 AND (?2 IS NULL OR name = ?2))",
    )
    .bind(space)
    .bind(neuron)
    .fetch_one(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
    count
}

#[tokio::test]
async fn a_large_deleted_space_or_neuron_can_be_recreated_at_once_and_restarts_show_only_the_new() {
    let app = TestApp::spawn().await;
    app.standard_space("big").await;
    app.standard_space("keep").await;
    // More rows than one purge step deletes, so the rows go in several steps after the answer.
    store_many(&app, "big", 9_000, 300).await;
    store_many(&app, "keep", 9_000, 2).await;
    assert_eq!(
        app.delete("/v1/spaces/big").await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/v1/spaces/keep/neurons/n0").await.status(),
        StatusCode::NO_CONTENT
    );
    // The same names at once: the new space (other parameters) and the new neuron's ids, the
    // old ones included, must not meet the old rows.
    let recreated = app
        .put(
            "/v1/spaces/big",
            &json!({"input_size": 1024, "active_bits": 20}),
        )
        .await;
    assert_eq!(recreated.status(), StatusCode::CREATED);
    store_many(&app, "keep", 3, 1).await;
    let again = app
        .post(
            "/v1/spaces/big/neurons/n0/patterns",
            &json!({"active": (0..20).collect::<Vec<u32>>(), "id": "p0"}),
        )
        .await;
    assert_eq!(again.status(), StatusCode::CREATED);
    let database = app.database.clone();
    let dir = app.stop().await;

    let app = TestApp::spawn_on(&database).await;
    let big: Value = app.get("/v1/spaces/big").await.json().await.unwrap();
    assert_eq!(big["parameters"]["input_size"], 1024, "{big}");
    assert_eq!(big["counts"]["patterns"], 1, "{big}");
    let keep: Value = app.get("/v1/spaces/keep").await.json().await.unwrap();
    assert_eq!(keep["counts"]["patterns"], 4_503, "{keep}");
    app.stop().await;
    if postgres_admin_url().is_none() {
        assert_eq!(
            rows_left(&database, "big", None).await,
            2,
            "a pattern, a neuron"
        );
        assert_eq!(
            rows_left(&database, "keep", Some("n0")).await,
            4,
            "3 patterns, a neuron"
        );
    }
    drop(dir);
}

#[tokio::test]
async fn a_deletion_still_being_purged_at_a_stop_is_left_out_at_start_up_and_finished() {
    crate::sqlite_only!();
    use sqlx::Connection;
    let app = TestApp::spawn().await;
    app.standard_space("gone").await;
    app.standard_space("kept").await;
    store_many(&app, "gone", 5_000, 50).await;
    store_many(&app, "kept", 5_000, 2).await;
    let database = app.database.clone();
    let dir = app.stop().await;
    // As a stop mid-purge leaves the file: the deletions committed, their rows still there.
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", database.display()))
            .await
            .unwrap();
    sqlx::query("INSERT INTO purges (space, neuron) VALUES ('gone', ''), ('kept', 'n1')")
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();

    let app = TestApp::spawn_on(&database).await;
    assert_eq!(
        app.get("/v1/spaces/gone").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/v1/spaces/kept/neurons/n1").await.status(),
        StatusCode::NOT_FOUND
    );
    let kept: Value = app.get("/v1/spaces/kept").await.json().await.unwrap();
    assert_eq!(kept["counts"]["patterns"], 2_500, "{kept}");
    // A backup counts what a start-up on it would load, whether or not the purge has finished.
    let backup = app.post("/v1/admin/backup", &json!(null)).await;
    assert_eq!(backup.status(), StatusCode::CREATED);
    let backup: Value = backup.json().await.unwrap();
    assert_eq!(backup["patterns"], 2_500, "{backup}");
    // Re-creating the name waits for the purge the start-up resumed, then succeeds.
    assert_eq!(
        app.put(
            "/v1/spaces/gone",
            &json!({"input_size": 2048, "active_bits": 40})
        )
        .await
        .status(),
        StatusCode::CREATED
    );
    app.stop().await;
    assert_eq!(rows_left(&database, "gone", None).await, 0);
    assert_eq!(rows_left(&database, "kept", Some("n1")).await, 0);
    assert_eq!(rows_left(&database, "kept", Some("n0")).await, 2_501);
    drop(dir);
}
