//! Every error status a client can cause, each a problem document that changes nothing.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn pattern_count(app: &TestApp) -> u64 {
    app.get("/v1/stats").await.json::<Value>().await.unwrap()["patterns"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_400() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let path = "/v1/spaces/s/neurons/n/patterns";
    for (body, field) in [
        (&b""[..], None),
        (b"{", None),
        (b"[1,2]", None),
        (b"{\"active\": \"1,2\"}", Some("active")),
        (b"{\"active\": [1.5]}", Some("active[0]")),
        (b"{\"active\": [1], \"extra\": 1}", Some("extra")),
    ] {
        let response = app
            .send_raw(Method::POST, path, Some("application/json"), body.to_vec())
            .await;
        let problem = problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["field"].as_str(), field, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(!detail.contains("Failed to"), "our own words: {detail}");
    }
    // No input at all is well-formed JSON that names no input: 422 naming `active` (the body
    // may give `record` instead, in a space with an encoder).
    let empty = app
        .send_raw(Method::POST, path, Some("application/json"), b"{}".to_vec())
        .await;
    let empty = problem(empty, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(empty["field"], "active", "{empty}");
    let unparsable = app
        .send_raw(Method::POST, path, Some("application/json"), b"{".to_vec())
        .await;
    let detail = problem(unparsable, StatusCode::BAD_REQUEST).await["detail"].clone();
    assert!(
        detail
            .as_str()
            .unwrap()
            .starts_with("the body is not valid JSON: EOF while parsing"),
        "{detail}"
    );
    let negative_size = app
        .put("/v1/spaces/t", &json!({"input_size": -1, "active_bits": 4}))
        .await;
    problem(negative_size, StatusCode::BAD_REQUEST).await;
    assert_eq!(pattern_count(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn inconsistent_space_parameters_are_400_naming_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"input_size": 0, "active_bits": 1}), "input_size"),
        (
            json!({"input_size": 100, "active_bits": 101}),
            "active_bits",
        ),
        (
            json!({"input_size": 100, "active_bits": 10, "threshold": 11}),
            "threshold",
        ),
        (
            json!({"input_size": 100, "active_bits": 10, "max_false_match": 2.0}),
            "max_false_match",
        ),
        (
            json!({"input_size": 100, "active_bits": 10, "max_segments_per_neuron": 0}),
            "max_segments_per_neuron",
        ),
        // Parameters whose theory would take minutes to hours are refused before any of it runs.
        (
            json!({"input_size": 16_777_216, "active_bits": 40_000, "synapses_per_pattern": 40_000, "max_false_match": 1}),
            "active_bits",
        ),
        (
            json!({"input_size": 16_777_216, "active_bits": 16_384, "synapses_per_pattern": 1_000_000, "threshold": 1_000_000}),
            "synapses_per_pattern",
        ),
    ] {
        let body = problem(
            app.put("/v1/spaces/t", &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["field"], field);
    }
    problem(
        app.put(
            "/v1/spaces/bad%20name",
            &json!({"input_size": 100, "active_bits": 10}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let long = "x".repeat(129);
    problem(
        app.put(
            &format!("/v1/spaces/{long}"),
            &json!({"input_size": 100, "active_bits": 10}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(
        app.get("/v1/spaces").await.json::<Value>().await.unwrap()["spaces"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}

#[tokio::test]
async fn a_neuron_report_page_out_of_bounds_and_an_overlong_pattern_are_refused() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    assert_eq!(
        app.store("s", "n", &cells(1, 40)).await.status(),
        StatusCode::CREATED
    );
    for limit in [0, 1001] {
        let body = problem(
            app.get(&format!("/v1/spaces/s/neurons/n?segments_limit={limit}"))
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["field"], "segments_limit");
    }
    let wide = json!({"input_size": 1_000_000, "active_bits": 40});
    assert_eq!(
        app.put("/v1/spaces/wide", &wide).await.status(),
        StatusCode::CREATED
    );
    let overlong: Vec<u32> = (0..16_385).collect();
    let body = problem(
        app.store("wide", "n", &overlong).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("16384"), "{body}");
    let stats: Value = app.get("/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["patterns"], 1, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn theory_requests_beyond_the_cost_bounds_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    for (query, field) in [
        ("n=16777216&a=5000000&s=40&theta=10&target=1e-6", "target"),
        ("n=16777216&a=16384&s=2000&theta=1", "s"),
        ("n=65536&a=40&s=40&theta=10&patterns=1250", "patterns"),
    ] {
        let body = problem(
            app.get(&format!("/v1/theory?{query}")).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(body["field"], field, "{query}: {body}");
    }
    // Large `a` itself is no cost: only the capacity search walks it.
    let wide = app
        .get("/v1/theory?n=1000000&a=20000&s=1024&theta=200&target=1e-9")
        .await;
    assert_eq!(wide.status(), StatusCode::OK);
    let wide: Value = wide.json().await.unwrap();
    assert!(wide["max_patterns_per_segment"].is_u64(), "{wide}");
    app.stop().await;
}

#[tokio::test]
async fn invalid_patterns_are_422_naming_the_bad_index() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let mut out_of_range = cells(1, 40);
    out_of_range[3] = 2048;
    let mut duplicate = cells(2, 40);
    duplicate[7] = duplicate[6];
    for (active, needle) in [
        (json!([]), "at least one".to_string()),
        (json!(out_of_range), "active[3] = 2048".to_string()),
        (json!(duplicate), format!("active[7] = {}", duplicate[7])),
        (json!([-1]), "active[0] = -1".to_string()),
        (json!([1, 2, 3]), "fewer than the threshold".to_string()),
    ] {
        let response = app
            .post(
                "/v1/spaces/s/neurons/n/patterns",
                &json!({ "active": active }),
            )
            .await;
        let body = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(body["detail"].as_str().unwrap().contains(&needle), "{body}");
        assert_eq!(body["field"], "active", "{body}");
    }
    let query = app
        .post("/v1/spaces/s/query", &json!({"active": [5000]}))
        .await;
    problem(query, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(pattern_count(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn bad_query_parameters_are_400() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    for body in [
        json!({"active": [1], "limit": 0}),
        json!({"active": [1], "limit": 1001}),
        json!({"active": [1], "threshold": 0}),
    ] {
        problem(
            app.post("/v1/spaces/s/query", &body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let too_many = json!({"queries": vec![json!({"active": [1]}); 1001]});
    problem(
        app.post("/v1/spaces/s/query/batch", &too_many).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    for (path, field) in [
        ("/v1/spaces/s/neurons/n/patterns/bad%20id", "id"),
        ("/v1/spaces/s/neurons/bad%20name", "neuron"),
        ("/v1/spaces/s/neurons?limit=0", "limit"),
        ("/v1/spaces/s/neurons?limit=x", "limit"),
        ("/v1/spaces/s/neurons?after=a%20b", "after"),
        ("/v1/spaces/s/neurons?bogus=1", "bogus"),
    ] {
        let body = problem(app.get(path).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_spaces_neurons_and_routes_are_404() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    problem(
        app.store("nope", "n", &cells(1, 40)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.post("/v1/spaces/nope/query", &json!({"active": [1]}))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.get("/v1/spaces/s/neurons/ghost").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        app.get("/v1/spaces/s/neurons/ghost/patterns/1").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(app.get("/v1/nothing/here").await, StatusCode::NOT_FOUND).await;
    problem(
        app.send_raw(Method::PATCH, "/v1/spaces/s", None, vec![])
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_body_without_json_content_type_is_415_and_an_oversized_one_413() {
    let app = TestApp::spawn_configured(|settings| settings.body_limit = 4096).await;
    app.standard_space("s").await;
    let body = serde_json::to_vec(&json!({"active": cells(1, 40)})).unwrap();
    let plain = app
        .send_raw(
            Method::POST,
            "/v1/spaces/s/neurons/n/patterns",
            Some("text/plain"),
            body.clone(),
        )
        .await;
    problem(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    problem(
        app.send_raw(Method::POST, "/v1/spaces/s/neurons/n/patterns", None, body)
            .await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    let huge = serde_json::to_vec(&json!({"active": (0..2000).collect::<Vec<u32>>()})).unwrap();
    assert!(huge.len() > 4096);
    problem(
        app.send_raw(
            Method::POST,
            "/v1/spaces/s/neurons/n/patterns",
            Some("application/json"),
            huge,
        )
        .await,
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    assert_eq!(pattern_count(&app).await, 0);
    app.stop().await;
}
