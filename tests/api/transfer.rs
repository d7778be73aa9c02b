//! `dendrite export` and `dendrite import`: data moved from SQLite to PostgreSQL (when the suite
//! has a server; another SQLite file otherwise) and back answers every query as it did, keeps
//! metadata and counters, and importing again changes nothing; bad lines are refused by number.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}", file.display())
}

/// A server on a SQLite file, whatever database the suite runs on.
async fn sqlite_app(file: &Path) -> TestApp {
    let mut settings = args(file);
    settings.database_url = sqlite_url(file);
    TestApp::spawn_with(settings).await
}

fn export(url: &str) -> Vec<u8> {
    let output = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["export", "--database-url", url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "export failed: {stderr}");
    assert!(stderr.contains("exported"), "{stderr}");
    output.stdout
}

fn import(url: &str, lines: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .args(["import", "--database-url", url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal may come before the importer reads its input (a database in use): the pipe
    // then breaks under this write, and the refusal is what the caller checks.
    if let Err(error) = child.stdin.take().unwrap().write_all(lines) {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    child.wait_with_output().unwrap()
}

fn imported(url: &str, lines: &[u8]) -> String {
    let output = import(url, lines);
    assert!(
        output.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Queries (noisy copies of what was stored, and random inputs) and reports, as answered.
async fn answers(app: &TestApp) -> Vec<Value> {
    let mut all = Vec::new();
    for seed in 0..40u64 {
        let mut noisy = cells(seed, 40);
        noisy.truncate(30);
        let extra: Vec<u32> = cells(5_000 + seed, 10)
            .into_iter()
            .filter(|c| !noisy.contains(c))
            .collect();
        noisy.extend(extra);
        all.push(app.query("s", &noisy).await);
        all.push(app.query("s", &cells(9_000 + seed, 40)).await);
    }
    for path in [
        "/v1/spaces/s",
        "/v1/spaces/small",
        "/v1/spaces/s/neurons",
        "/v1/spaces/s/neurons/n1",
        "/v1/spaces/s/neurons/n1/patterns",
        "/v1/spaces/small/neurons/kept-empty",
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let mut answer: Value = response.json().await.unwrap();
        // The memory estimate counts table slots, which the deleted neuron's left free in the
        // source and the import never made: the one number allowed to differ.
        if let Some(counts) = answer.get_mut("counts") {
            counts["memory_bytes"] = Value::Null;
        }
        all.push(answer);
    }
    all
}

#[tokio::test]
async fn data_moved_to_postgresql_and_back_answers_every_query_identically() {
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite_app(&dir.path().join("source.db")).await;
    source.standard_space("s").await;
    let small = json!({"input_size": 512, "active_bits": 16, "threshold": 8, "max_false_match": 0.001, "seed": 7});
    assert_eq!(
        source.put("/v1/spaces/small", &small).await.status(),
        StatusCode::CREATED
    );
    let patterns: Vec<Value> = (0..120u64)
        .map(|i| {
            let mut item = json!({"neuron": format!("n{}", i % 4), "active": cells(i % 40 + 1000 * (i / 40), 40)});
            if i % 3 == 0 {
                item["metadata"] = json!({"i": i, "label": format!("pump-{}", i % 4)});
            }
            item
        })
        .collect();
    let stored = source
        .post("/v1/spaces/s/patterns", &json!({ "patterns": patterns }))
        .await;
    assert_eq!(stored.status(), StatusCode::OK);
    // Forgetting the newest ids and deleting a neuron: counters must carry the forgotten ids.
    let newest: Value = source
        .get("/v1/spaces/s/neurons/n1/patterns?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    let last_id = newest["patterns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().parse::<u64>().unwrap())
        .max()
        .unwrap();
    let forgotten = source
        .delete(&format!("/v1/spaces/s/neurons/n1/patterns/{last_id}"))
        .await;
    assert_eq!(forgotten.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        source.delete("/v1/spaces/s/neurons/n3").await.status(),
        StatusCode::NO_CONTENT
    );
    // A neuron whose only pattern was forgotten still exists, and moves.
    let only = source
        .store("small", "kept-empty", &(1..=16).collect::<Vec<u32>>())
        .await;
    assert_eq!(only.status(), StatusCode::CREATED);
    assert_eq!(
        source
            .delete("/v1/spaces/small/neurons/kept-empty/patterns/1")
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    let before = answers(&source).await;

    // Exported while the service runs on the file.
    let first = export(&sqlite_url(&dir.path().join("source.db")));
    // The service streams the same lines itself.
    let streamed = source.get("/v1/admin/export").await;
    assert_eq!(streamed.status(), StatusCode::OK);
    assert_eq!(streamed.headers()["content-type"], "application/x-ndjson");
    assert!(
        streamed.bytes().await.unwrap() == first,
        "GET /v1/admin/export is the CLI's export"
    );
    source.stop().await;
    let text = String::from_utf8(first.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"header","format":"dendrite-export","version":1}"#),
        "{text:.200}"
    );
    assert!(
        !text.contains(r#""neuron":"n3""#),
        "a deleted neuron is not exported"
    );

    // Into PostgreSQL when the suite has a server (another SQLite file otherwise), and out again:
    // the same lines.
    let middle = database_url(&dir.path().join("middle.db"));
    ensure_database(&middle).await;
    let said = imported(&middle, &first);
    assert!(said.starts_with("imported 2 spaces"), "{said}");
    let second = export(&middle);
    assert_eq!(String::from_utf8(second.clone()).unwrap(), text);

    // Back into a fresh SQLite file, then again: the second import finds everything held.
    let last = dir.path().join("last.db");
    imported(&sqlite_url(&last), &second);
    let again = imported(&sqlite_url(&last), &second);
    let lines = text.lines().count() - 1;
    assert!(
        again.ends_with(&format!(": 0 new, {lines} already held as the lines say\n")),
        "{again}"
    );

    let app = sqlite_app(&last).await;
    let after = answers(&app).await;
    assert_eq!(after.len(), before.len());
    for (i, (now, then)) in after.iter().zip(&before).enumerate() {
        assert!(now == then, "answer {i} differs:\n{now}\n{then}");
    }
    // The counters moved: the forgotten id is not handed out again.
    let next: Value = app
        .store("s", "n1", &cells(777_777, 40))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(next["id"], json!((last_id + 1).to_string()));
    app.stop().await;
}

#[tokio::test]
async fn an_import_refuses_bad_lines_by_number_and_commits_none_of_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("d.db");
    let url = sqlite_url(&file);
    let header = r#"{"kind":"header","format":"dendrite-export","version":1}"#;
    let space = r#"{"kind":"space","space":"s","parameters":{"input_size":64,"active_bits":8,"synapses_per_pattern":8,"threshold":4,"max_false_match":1.0,"max_segments_per_neuron":16,"seed":0}}"#;
    let pattern = |id: &str, active: &str, synapses: &str| {
        format!(
            r#"{{"kind":"pattern","space":"s","neuron":"n","id":"{id}","segment":0,"active":{active},"synapses":{synapses}}}"#
        )
    };
    let good = pattern("a", "[1,2,3,4,5,6,7,8]", "[1,2,3,4,5,6,7,8]");
    // A synapse on a bit outside the pattern: planning never makes one.
    let forged = pattern(
        "b",
        "[11,12,13,14,15,16,17,18]",
        "[11,12,13,14,15,16,17,40]",
    );
    let refusals = [
        (
            String::from("{\"kind\":\"space\"}"),
            "line 1 is not an export line",
        ),
        (format!("{space}\n"), "line 1 is not the header"),
        (
            format!("{header}\n{good}\n"),
            "line 2: space s has no line of its own",
        ),
        (
            format!("{header}\n{space}\n{good}\n{forged}\n"),
            "line 4: stored pattern b of neuron n cannot be applied: a synapse lies on a bit outside the pattern",
        ),
        (
            r#"{"kind":"header","format":"dendrite-export","version":2}"#.to_owned(),
            "version 2",
        ),
    ];
    for (input, says) in refusals {
        let output = import(&url, input.as_bytes());
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(says), "expected {says:?} in {stderr}");
    }
    // The refused batch held the good line too: nothing of it was committed.
    let app = sqlite_app(&file).await;
    let report: Value = app.get("/v1/spaces/s").await.json().await.unwrap();
    assert_eq!(report["counts"]["patterns"], 0);
    // A space that exists with other parameters is refused naming the difference; a file a
    // service runs on is refused outright.
    let other = space.replace("\"threshold\":4", "\"threshold\":5");
    let output = import(&url, format!("{header}\n{other}\n").as_bytes());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another dendrite process") || stderr.contains("in use"),
        "{stderr}"
    );
    app.stop().await;
    let output = import(&url, format!("{header}\n{other}\n").as_bytes());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("line 2: space s exists with other parameters: threshold is 4, not 5"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_in_memory_database_cannot_be_exported_over_http() {
    let app = TestApp::spawn_configured(|settings| {
        settings.database_url = "sqlite::memory:".into();
    })
    .await;
    let refused = problem(app.get("/v1/admin/export").await, StatusCode::CONFLICT).await;
    assert!(
        refused["detail"].as_str().unwrap().contains("in memory"),
        "{refused}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_space_s_encoder_moves_with_it_and_encodes_alike_after_import() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("from.db"), dir.path().join("to.db"));
    let spec = json!({"input_size": 2048, "seed": 3, "encoder": {"fields": {
        "heading": {"type": "number", "active_bits": 10, "resolution": 5, "period": 360},
        "site": {"type": "category", "active_bits": 10}}}});
    let record = json!({"heading": 355, "site": "north"});
    let app = sqlite_app(&from).await;
    assert_eq!(
        app.put("/v1/spaces/s", &spec).await.status(),
        StatusCode::CREATED
    );
    let path = "/v1/spaces/s/neurons/n/patterns";
    let stored: Value = app
        .post(path, &json!({ "record": record }))
        .await
        .json()
        .await
        .unwrap();
    let before: Value = app.get("/v1/spaces/s").await.json().await.unwrap();
    app.stop().await;
    imported(&sqlite_url(&to), &export(&sqlite_url(&from)));
    let app = sqlite_app(&to).await;
    let after: Value = app.get("/v1/spaces/s").await.json().await.unwrap();
    assert_eq!(after["parameters"], before["parameters"]);
    assert!(after["parameters"]["encoder"].is_object(), "{after}");
    let code: Value = app
        .post("/v1/spaces/s/encode", &json!({ "record": record }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(code["active"], stored["active"]);
    app.stop().await;
}
