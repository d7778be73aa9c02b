//! Shard groups: a replica started with `--spaces` holds, follows and answers for only the spaces
//! it names, and refuses the others with a 404 naming the setting.

use crate::helpers::*;
use dendrite::engine::SpaceSet;
use reqwest::StatusCode;
use serde_json::Value;

fn serving(app_database: &std::path::Path, list: &str) -> dendrite::config::ServeArgs {
    let mut settings = args(app_database);
    settings.spaces = SpaceSet::parse(list).unwrap();
    settings
}

/// Asserts a 404 that names the space and the setting.
async fn refused_as_not_served(response: reqwest::Response, space: &str) {
    let problem = problem(response, StatusCode::NOT_FOUND).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("space {space} is not served"))
            && detail.contains("--spaces")
            && detail.contains("DENDRITE_SPACES"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_replica_serves_only_its_spaces_and_the_others_come_back_without_the_setting() {
    let everything = TestApp::spawn().await;
    everything.standard_space("alpha").await;
    everything.standard_space("beta").await;
    assert_eq!(
        everything.store("beta", "n", &cells(1, 40)).await.status(),
        StatusCode::CREATED
    );
    let database = everything.database.clone();
    // Kept until the end: the SQLite file lives in it.
    let dir = everything.stop().await;

    let shard = TestApp::spawn_with(serving(&database, "al*,gamma")).await;
    let stats: Value = shard.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["spaces"], 1, "{stats}");
    assert_eq!(stats["patterns"], 0, "beta's pattern is not held: {stats}");
    let listed: Value = shard.get("/v1/spaces").await.json().await.unwrap();
    let names: Vec<&str> = listed["spaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha"]);
    // Reads, writes, deletions and creations of another group's space: 404 naming the setting.
    refused_as_not_served(shard.get("/v1/spaces/beta").await, "beta").await;
    refused_as_not_served(shard.store("beta", "n", &cells(2, 40)).await, "beta").await;
    let query = shard
        .post(
            "/v1/spaces/beta/query",
            &serde_json::json!({"active": cells(3, 40)}),
        )
        .await;
    refused_as_not_served(query, "beta").await;
    refused_as_not_served(shard.delete("/v1/spaces/beta").await, "beta").await;
    let create = shard
        .put(
            "/v1/spaces/delta",
            &serde_json::json!({"input_size": 2048, "active_bits": 40}),
        )
        .await;
    refused_as_not_served(create, "delta").await;
    // Named exactly: served, and may be created here.
    let gamma = shard
        .put(
            "/v1/spaces/gamma",
            &serde_json::json!({"input_size": 2048, "active_bits": 40}),
        )
        .await;
    assert_eq!(gamma.status(), StatusCode::CREATED);
    assert_eq!(
        shard.store("alpha", "n", &cells(4, 40)).await.status(),
        StatusCode::CREATED
    );
    shard.stop().await;

    // Nothing of beta was touched: without the setting it is served again, its pattern intact.
    let again = TestApp::spawn_with(args(&database)).await;
    let beta: Value = again.get("/v1/spaces/beta").await.json().await.unwrap();
    assert_eq!(beta["counts"]["patterns"], 1, "{beta}");
    let stats: Value = again.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["spaces"], 3, "{stats}");
    again.stop().await;
    drop(dir);
}

#[tokio::test]
async fn two_shard_groups_on_one_database_each_follow_only_their_spaces() {
    if postgres_admin_url().is_none() {
        eprintln!("skipped on SQLite: shard groups share a PostgreSQL database");
        return;
    }
    let first = TestApp::spawn_configured(|settings| {
        settings.spaces = SpaceSet::parse("left-*").unwrap();
    })
    .await;
    let second = TestApp::spawn_with(serving(&first.database, "right-*")).await;
    first.standard_space("left-1").await;
    second.standard_space("right-1").await;
    for i in 0..20 {
        assert_eq!(
            first.store("left-1", "n", &cells(i, 40)).await.status(),
            StatusCode::CREATED
        );
    }
    let last = second.store("right-1", "n", &cells(100, 40)).await;
    assert_eq!(last.status(), StatusCode::CREATED);
    let left_written = sequence_of(&first.store("left-1", "m", &cells(101, 40)).await);
    // The second group skips the first's changes yet moves past them, so a client's session
    // sequence from one group is honoured by the other.
    let right = second
        .get(&format!("/v1/spaces/right-1?min_sequence={left_written}"))
        .await;
    assert_eq!(right.status(), StatusCode::OK);
    refused_as_not_served(second.get("/v1/spaces/left-1").await, "left-1").await;
    refused_as_not_served(first.store("right-1", "n", &cells(5, 40)).await, "right-1").await;
    let held = |stats: &Value| (stats["spaces"].clone(), stats["patterns"].clone());
    let stats: Value = first.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(held(&stats), (1.into(), 21.into()), "{stats}");
    let stats: Value = second.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(held(&stats), (1.into(), 1.into()), "{stats}");
    second.stop().await;
    first.stop().await;
}
