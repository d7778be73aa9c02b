//! What only a shared PostgreSQL store has: replicas in one process writing the same neurons, a
//! log compacted past a replica, a server that drops the connection, turns read-only or is full,
//! and backups left to PostgreSQL's tools.
//! Each test runs only when the suite runs on PostgreSQL (`DENDRITE_TEST_POSTGRES_URL`).

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

/// Skips the rest of a test when the suite runs on SQLite.
macro_rules! postgres_only {
    () => {
        if postgres_admin_url().is_none() {
            eprintln!("skipped on SQLite: this test is about PostgreSQL");
            return;
        }
    };
}

/// Runs `sql` on the server's admin database (`{db}` stands for the test database's name).
async fn admin(app: &TestApp, sql: &str) {
    let url = app.database.display().to_string();
    let name = url.rsplit_once('/').unwrap().1;
    let mut connection = sqlx::PgConnection::connect(&postgres_admin_url().unwrap())
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.replace("{db}", name)))
        .execute(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
}

/// Ends every connection to the test database, the service's included.
const DROP_CONNECTIONS: &str = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()";

/// The same database behind a second server: another replica.
async fn replica_of(app: &TestApp) -> TestApp {
    TestApp::spawn_on(&app.database).await
}

#[tokio::test]
async fn two_replicas_writing_the_same_neurons_end_with_identical_engines() {
    postgres_only!();
    let first = TestApp::spawn().await;
    first.standard_space("s").await;
    let second = replica_of(&first).await;
    // Both replicas store into the same three neurons at once, every store racing one on the
    // other replica.
    let store = |app: &TestApp, i: u64| {
        let url = app.url(&format!("/v1/spaces/s/neurons/n{}/patterns", i % 3));
        let body = json!({ "active": cells(i, 40), "id": format!("p{i}") });
        let request = app.client.post(url).json(&body).send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), StatusCode::CREATED);
            sequence_of(&response)
        }
    };
    let mut last = 0;
    for round in 0..40u64 {
        let (a, b) = tokio::join!(store(&first, 2 * round), store(&second, 2 * round + 1));
        assert_ne!(a, b, "two commits never share a sequence across replicas");
        last = last.max(a).max(b);
    }
    // Each neuron as both replicas hold it, once both have applied every write.
    let neurons = |app: &TestApp| {
        let app_url = app.url("");
        let client = app.client.clone();
        async move {
            let mut reports = Vec::new();
            for neuron in ["n0", "n1", "n2"] {
                let url = format!("{app_url}/v1/spaces/s/neurons/{neuron}?min_sequence={last}");
                let report: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                reports.push(report);
            }
            reports
        }
    };
    let (seen_first, seen_second) = (neurons(&first).await, neurons(&second).await);
    assert_eq!(seen_first, seen_second);
    assert_eq!(seen_first[0]["patterns"], 27, "{}", seen_first[0]);
    // A replica started afterwards loads the same state from the tables.
    let third = replica_of(&first).await;
    assert_eq!(neurons(&third).await, seen_first);
    for probe in [7u64, 21, 64] {
        let active = cells(probe, 40);
        let answers = [
            first.query("s", &active).await,
            second.query("s", &active).await,
            third.query("s", &active).await,
        ];
        assert_eq!(answers[0]["matches"], answers[1]["matches"]);
        assert_eq!(answers[0]["matches"], answers[2]["matches"]);
    }
    let stats: Value = second.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["backend"], "postgres");
    assert_eq!(stats["applied_sequence"], last);
    assert_eq!(stats["replication_lag"], 0);
    for app in [first, second, third] {
        app.stop().await;
    }
}

#[tokio::test]
async fn a_replica_follows_forgets_and_deletions_made_elsewhere() {
    postgres_only!();
    let writer = TestApp::spawn().await;
    writer.standard_space("s").await;
    let reader = replica_of(&writer).await;
    for i in 0..5u64 {
        writer.store("s", "n", &cells(i, 40)).await;
    }
    let forgotten = writer.delete("/v1/spaces/s/neurons/n/patterns/2").await;
    assert_eq!(forgotten.status(), StatusCode::NO_CONTENT);
    let at = sequence_of(&forgotten);
    let gone = reader
        .get(&format!(
            "/v1/spaces/s/neurons/n/patterns/2?min_sequence={at}"
        ))
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    let deleted = writer.delete("/v1/spaces/s").await;
    let at = sequence_of(&deleted);
    let space = reader.get(&format!("/v1/spaces/s?min_sequence={at}")).await;
    assert_eq!(space.status(), StatusCode::NOT_FOUND);
    reader.stop().await;
    writer.stop().await;
}

#[tokio::test]
async fn a_lost_connection_fails_one_write_cleanly_and_the_next_one_reconnects() {
    postgres_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    admin(&app, DROP_CONNECTIONS).await;
    let refused = app
        .post(
            "/v1/spaces/s/neurons/n/patterns",
            &json!({ "active": cells(1, 40), "id": "lost" }),
        )
        .await;
    let body = problem(refused, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was written"),
        "{body}"
    );
    let absent = app.get("/v1/spaces/s/neurons/n/patterns/lost").await;
    assert_eq!(absent.status(), StatusCode::NOT_FOUND);
    let stored = app.store("s", "n", &cells(2, 40)).await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_read_only_database_refuses_writes_until_it_is_writable_again() {
    postgres_only!();
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    admin(
        &app,
        "ALTER DATABASE \"{db}\" SET default_transaction_read_only = on",
    )
    .await;
    admin(&app, DROP_CONNECTIONS).await;
    // The first write may meet the dropped connection; the next meets the read-only server.
    let mut last = None;
    for i in 0..2 {
        let response = app.store("s", "n", &cells(i, 40)).await;
        last = Some(problem(response, StatusCode::SERVICE_UNAVAILABLE).await);
    }
    let detail = last.unwrap()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("cannot be written"), "{detail}");
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let space: Value = app.get("/v1/spaces/s").await.json().await.unwrap();
    assert_eq!(
        space["counts"]["patterns"], 0,
        "reads go on; nothing was stored"
    );
    admin(
        &app,
        "ALTER DATABASE \"{db}\" RESET default_transaction_read_only",
    )
    .await;
    admin(&app, DROP_CONNECTIONS).await;
    // The writer's probe notices by itself (once a second) that commits go through again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.get("/readyz").await.status() != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.store("s", "n", &cells(9, 40)).await.status(),
        StatusCode::CREATED
    );
    app.stop().await;
}

#[tokio::test]
async fn backups_of_postgresql_are_left_to_its_own_tools() {
    postgres_only!();
    let app = TestApp::spawn().await;
    let response = app.post("/v1/admin/backup", &json!(null)).await;
    let body = problem(response, StatusCode::CONFLICT).await;
    assert!(
        body["detail"].as_str().unwrap().contains("pg_dump"),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_replica_behind_the_compacted_log_reloads_the_tables() {
    postgres_only!();
    use std::time::Duration;
    let app = TestApp::spawn_configured(|settings| settings.change_log_retention = 1).await;
    app.standard_space("s").await;
    for i in 0..5u64 {
        app.store("s", "n", &cells(i, 40)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let head = sequence_of(&app.store("s", "n", &cells(99, 40)).await);
    // A replica compacts at start-up, then every minute: every change older than the retention
    // goes, but never the newest.
    let url = app.database.display().to_string();
    let dir = app.stop().await;
    let app = TestApp::spawn_with(dendrite::config::ServeArgs {
        change_log_retention: 1,
        ..args(std::path::Path::new(&url))
    })
    .await;
    let mut log = sqlx::PgConnection::connect(&url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (compacted, kept) = loop {
        let compacted: i64 =
            sqlx::query_scalar("SELECT compacted_through FROM change_head WHERE id = 1")
                .fetch_one(&mut log)
                .await
                .unwrap();
        let kept: Vec<i64> = sqlx::query_scalar("SELECT seq FROM changes ORDER BY seq")
            .fetch_all(&mut log)
            .await
            .unwrap();
        if compacted > 0 || std::time::Instant::now() > deadline {
            break (compacted as u64, kept);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        compacted,
        head - 1,
        "every change but the newest was old enough"
    );
    assert_eq!(kept, [head as i64]);
    // A replica that had applied none of them cannot follow the log from where it is: it
    // reloads the tables and goes on from the head.
    let behind = InProcess::on(&url).await;
    assert_eq!(behind.writer.catch_up().await.unwrap(), head);
    assert_eq!(behind.writer.progress().applied(), head);
    let space = behind
        .spaces
        .get(&dendrite::engine::Name::parse("s").unwrap())
        .expect("the reload brought the space");
    assert_eq!(space.read().unwrap().counts().patterns, 6);
    behind.thread.stop().await;
    log.close().await.unwrap();
    app.stop().await;
    drop(dir);
}

#[tokio::test]
async fn a_full_server_refuses_writes_with_507_and_they_resume_once_it_has_room() {
    postgres_only!();
    use std::time::{Duration, Instant};
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    assert_eq!(
        app.store("s", "n", &cells(1, 40)).await.status(),
        StatusCode::CREATED
    );
    // What PostgreSQL answers when its disk is full (SQLSTATE 53100), raised by triggers on
    // every table a write touches: a real full disk cannot be made for one database alone.
    let url = app.database.display().to_string();
    let mut server = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION disk_is_full() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' \
         USING ERRCODE = 'disk_full'; END $$; \
         CREATE TRIGGER full_patterns BEFORE INSERT ON patterns \
         FOR EACH STATEMENT EXECUTE FUNCTION disk_is_full(); \
         CREATE TRIGGER full_heartbeat BEFORE INSERT OR UPDATE ON heartbeat \
         FOR EACH STATEMENT EXECUTE FUNCTION disk_is_full();",
    )
    .execute(&mut server)
    .await
    .unwrap();
    let refused = app
        .post(
            "/v1/spaces/s/neurons/n/patterns",
            &json!({ "active": cells(2, 40), "id": "late" }),
        )
        .await;
    let body = problem(refused, StatusCode::INSUFFICIENT_STORAGE).await;
    assert!(body["detail"].as_str().unwrap().contains("full"), "{body}");
    assert_eq!(
        app.get("/v1/spaces/s/neurons/n/patterns/late")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/readyz").await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let changes: i64 = sqlx::query_scalar("SELECT count(*) FROM changes")
        .fetch_one(&mut server)
        .await
        .unwrap();
    assert_eq!(changes, 2, "the refused store left no change in the log");
    sqlx::raw_sql(
        "DROP TRIGGER full_patterns ON patterns; DROP TRIGGER full_heartbeat ON heartbeat;",
    )
    .execute(&mut server)
    .await
    .unwrap();
    // The writer's probe notices by itself that commits go through again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.get("/readyz").await.status() != StatusCode::OK {
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = app
        .post(
            "/v1/spaces/s/neurons/n/patterns",
            &json!({ "active": cells(2, 40), "id": "late" }),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    server.close().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_log_entry_that_breaks_a_space_s_rules_makes_replicas_reload_not_panic() {
    postgres_only!();
    let first = TestApp::spawn().await;
    first.standard_space("s").await;
    let stored = first.store("s", "n", &cells(0, 40)).await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    let second = replica_of(&first).await;
    // A change no dendrite would log: a synapse at 5000 in a 2048-bit space, on bits that are
    // not the pattern's.
    let active: Vec<u32> = (0..40).collect();
    let mut synapses: Vec<u32> = (0..23).collect();
    synapses.push(5000);
    let body = json!({"kind": "store", "patterns": [{
        "space": "s", "neuron": "forged", "id": "x", "segment": 0,
        "active": active, "synapses": synapses,
    }]});
    let url = first.database.display().to_string();
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut transaction = connection.begin().await.unwrap();
    let sequence: i64 =
        sqlx::query_scalar("UPDATE change_head SET last = last + 1 WHERE id = 1 RETURNING last")
            .fetch_one(&mut *transaction)
            .await
            .unwrap();
    sqlx::query("INSERT INTO changes (seq, kind, body) VALUES ($1, 'store', $2::json)")
        .bind(sequence)
        .bind(body.to_string())
        .execute(&mut *transaction)
        .await
        .unwrap();
    sqlx::query("SELECT pg_notify('dendrite_changes', $1::text)")
        .bind(sequence)
        .execute(&mut *transaction)
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    connection.close().await.unwrap();

    // Both replicas reach the forged change's sequence by reloading the tables, which never held
    // it, and go on serving and writing.
    for (i, app) in [&first, &second].into_iter().enumerate() {
        let neuron = app
            .get(&format!(
                "/v1/spaces/s/neurons/forged?min_sequence={sequence}"
            ))
            .await;
        assert_eq!(neuron.status(), StatusCode::NOT_FOUND);
        assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
        let next = app.store("s", "n", &cells(i as u64 + 7, 40)).await;
        assert_eq!(next.status(), StatusCode::CREATED);
    }
    let report: Value = first
        .get("/v1/spaces/s?min_sequence=0")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["counts"]["neurons"], 1, "{report}");
    second.stop().await;
    first.stop().await;
}
