//! Encoders on a space: records stored and queried in place of bit lists, the code shown by
//! `/encode`, each match's per-field breakdown, the threshold in each field's units, and codes
//! that stay the same across a restart and (on PostgreSQL) another replica; bad specs and
//! records refused, changing nothing.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

fn pump_spec() -> Value {
    json!({"input_size": 2048, "seed": 7, "encoder": {"fields": {
        "temperature": {"type": "number", "active_bits": 16, "resolution": 0.5},
        "vibration": {"type": "number", "active_bits": 8, "resolution": 0.1},
        "time": {"type": "time", "timezone": "Europe/Berlin",
                 "time_of_day": {"active_bits": 6}, "weekend": {"active_bits": 2}},
        "device": {"type": "category", "active_bits": 8}}}})
}

/// A server holding the space "pumps" with [`pump_spec`]'s encoder.
async fn pumps_app() -> TestApp {
    let app = TestApp::spawn().await;
    let created = app.put("/v1/spaces/pumps", &pump_spec()).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    app
}

fn reading(temperature: f64, vibration: f64, time: &str, device: &str) -> Value {
    json!({"temperature": temperature, "vibration": vibration, "time": time, "device": device})
}

async fn encoded(app: &TestApp, record: &Value) -> Value {
    json_of(
        app.post("/v1/spaces/pumps/encode", &json!({ "record": record }))
            .await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn records_are_stored_and_recognised_with_a_per_field_breakdown() {
    let app = TestApp::spawn().await;
    let created = json_of(
        app.put("/v1/spaces/pumps", &pump_spec()).await,
        StatusCode::CREATED,
    )
    .await;
    // active_bits is the sum of the fields' shares.
    assert_eq!(created["parameters"]["active_bits"], 40);
    assert_eq!(
        created["parameters"]["encoder"]["fields"]["time"]["active_bits"], 8,
        "{created}"
    );
    let normal = reading(61.0, 0.4, "2026-12-03T09:00:00+01:00", "pump-3");
    let code = encoded(&app, &normal).await;
    assert_eq!(code["active"].as_array().unwrap().len(), 40);
    assert_eq!(code["fields"]["device"].as_array().unwrap().len(), 8);
    let stored = json_of(
        app.post(
            "/v1/spaces/pumps/neurons/pump-3/patterns",
            &json!({"record": normal, "id": "normal-morning"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    // The stored pattern is the record's code.
    assert_eq!(stored["active"], code["active"]);
    let batch = json_of(
        app.post(
            "/v1/spaces/pumps/patterns",
            &json!({"patterns": [
                {"neuron": "pump-4", "record": reading(58.0, 0.3, "2026-12-03T14:00:00+01:00", "pump-4")},
                {"neuron": "pump-4", "active": code["active"]},
            ]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(batch["results"].as_array().unwrap().len(), 2);

    // A slightly warmer reading, same morning: recognised, and the breakdown says why.
    let noisy = reading(61.6, 0.4, "2026-12-03T09:20:00+01:00", "pump-3");
    let answer = json_of(
        app.post("/v1/spaces/pumps/query", &json!({ "record": noisy }))
            .await,
        StatusCode::OK,
    )
    .await;
    let best = &answer["matches"][0];
    assert_eq!(best["neuron"], "pump-3", "{answer}");
    let fields = best["fields"].as_object().unwrap();
    let total: u64 = fields.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(total, best["overlap"].as_u64().unwrap(), "{answer}");
    assert!(fields["device"].as_u64().unwrap() > 0);
    // A bit-list query gets no breakdown.
    let plain = app.query("pumps", &as_cells(&code["active"])).await;
    assert!(plain["matches"][0].get("fields").is_none(), "{plain}");
    // An unusual reading (hot, shaking, at night, another device) matches nothing.
    let unusual = reading(95.0, 3.5, "2026-12-06T02:00:00+01:00", "pump-9");
    let answer = json_of(
        app.post(
            "/v1/spaces/pumps/query/batch",
            &json!({"queries": [{"record": unusual}, {"record": noisy}]}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["results"][0]["matches"], json!([]), "{answer}");
    assert_eq!(answer["results"][1]["matches"][0]["neuron"], "pump-3");
    app.stop().await;
}

fn as_cells(active: &Value) -> Vec<u32> {
    active
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[tokio::test]
async fn the_space_report_says_what_the_threshold_means_in_each_fields_units() {
    let app = pumps_app().await;
    let report = json_of(app.get("/v1/spaces/pumps").await, StatusCode::OK).await;
    let fields = &report["encoder"]["fields"];
    // 16 of 40 bits at 0.5 degrees a bucket: a few buckets of change keep a record recognised.
    let radius = fields["temperature"]["recognition_radius"]
        .as_f64()
        .unwrap();
    assert!(radius > 0.0 && radius < 8.0, "{report}");
    // A number's radius is in its own units: no unit is named.
    assert!(fields["temperature"].get("unit").is_none(), "{report}");
    assert_eq!(fields["time"]["unit"], "minutes");
    // The device is 8 of 40 bits: a record whose device alone changes is still likely to
    // match, and the report says so plainly.
    assert!(
        fields["device"]["match_if_changed_entirely"]["value"]
            .as_f64()
            .unwrap()
            > 0.5
    );
    assert!(
        fields["device"]["warning"]
            .as_str()
            .unwrap()
            .contains("cannot tell")
    );
    assert!(fields["device"]["recognition_radius"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn encoders_are_immutable_and_bad_specs_are_refused_creating_nothing() {
    let app = pumps_app().await;
    // The same spec again is idempotent; another is a conflict naming the encoder.
    assert_eq!(
        app.put("/v1/spaces/pumps", &pump_spec()).await.status(),
        StatusCode::OK
    );
    let mut other = pump_spec();
    other["encoder"]["fields"]["temperature"]["resolution"] = json!(1.0);
    let conflict = problem(
        app.put("/v1/spaces/pumps", &other).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(
        conflict["detail"].as_str().unwrap().contains("encoder is"),
        "{conflict}"
    );
    for (spec, says) in [
        (
            json!({"input_size": 2048, "encoder": {"fields": {"x": {"type": "number", "active_bits": 8}}}}),
            "fields.x: needs a resolution (or a radius)",
        ),
        (
            json!({"input_size": 2048, "active_bits": 30, "encoder": {"fields": {"x": {"type": "category", "active_bits": 8}}}}),
            "the encoder's fields' active_bits sum to 8",
        ),
        (
            json!({"input_size": 2048, "encoder": {"fields": {"t": {"type": "time", "timezone": "Mars/Base", "weekend": {"active_bits": 2}}}}}),
            "is not an IANA time zone name",
        ),
        (json!({"input_size": 2048}), "active_bits: is required"),
    ] {
        let refusal = problem(
            app.put("/v1/spaces/bad", &spec).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            refusal["detail"].as_str().unwrap().contains(says),
            "{says}: {refusal}"
        );
    }
    assert_eq!(
        app.get("/v1/spaces/bad").await.status(),
        StatusCode::NOT_FOUND
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_records_are_refused_naming_the_field_and_store_nothing() {
    let app = pumps_app().await;
    app.standard_space("plain").await;
    let patterns = "/v1/spaces/pumps/neurons/n/patterns";
    let bad_input = StatusCode::UNPROCESSABLE_ENTITY;
    for (body, status, field, says) in [
        (
            json!({"record": {"pressure": 3}}),
            bad_input,
            "record",
            "pressure is not a field of this space's encoder",
        ),
        (
            json!({"record": {"temperature": "hot"}}),
            bad_input,
            "record",
            "temperature must be a number",
        ),
        (
            json!({"record": {"time": "noon"}}),
            bad_input,
            "record",
            "is not an RFC 3339 timestamp",
        ),
        (
            json!({"record": {}}),
            bad_input,
            "record",
            "the record gives no bits",
        ),
        (
            json!({"record": {"device": "a"}, "active": [1, 2]}),
            bad_input,
            "record",
            "not both",
        ),
        (json!({}), bad_input, "active", "give active"),
    ] {
        let refusal = problem(app.post(patterns, &body).await, status).await;
        assert!(
            refusal["detail"].as_str().unwrap().contains(says),
            "{says}: {refusal}"
        );
        assert_eq!(refusal["field"], field, "{refusal}");
    }
    let batch = problem(
        app.post(
            "/v1/spaces/pumps/patterns",
            &json!({"patterns": [{"neuron": "n", "record": {"device": "a"}}, {"neuron": "n", "record": {"device": 1.5}}]}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        batch["detail"]
            .as_str()
            .unwrap()
            .starts_with("patterns[1]: device must be"),
        "{batch}"
    );
    let query = problem(
        app.post(
            "/v1/spaces/pumps/query",
            &json!({"record": {"vibration": [1]}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        query["detail"]
            .as_str()
            .unwrap()
            .contains("vibration must be a number")
    );
    // A space without an encoder says so.
    let plain = problem(
        app.post("/v1/spaces/plain/encode", &json!({"record": {"x": 1}}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(
        plain["detail"]
            .as_str()
            .unwrap()
            .contains("this space has no encoder")
    );
    let report = json_of(app.get("/v1/spaces/pumps").await, StatusCode::OK).await;
    assert_eq!(report["counts"]["patterns"], 0, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn codes_are_identical_across_a_restart_and_other_replicas() {
    let app = pumps_app().await;
    let record = reading(61.0, 0.4, "2026-12-03T09:00:00+01:00", "pump-3");
    let code = encoded(&app, &record).await;
    json_of(
        app.post(
            "/v1/spaces/pumps/neurons/pump-3/patterns",
            &json!({"record": record, "id": "a"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    if postgres_admin_url().is_some() {
        let replica = TestApp::spawn_on(&app.database).await;
        let sequence = app
            .post(
                "/v1/spaces/pumps/neurons/pump-3/patterns",
                &json!({"record": record, "id": "b"}),
            )
            .await
            .headers()["dendrite-sequence"]
            .to_str()
            .unwrap()
            .to_owned();
        let seen = json_of(
            replica
                .get(&format!("/v1/spaces/pumps?min_sequence={sequence}"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            seen["parameters"]["encoder"],
            normalised(pump_spec()["encoder"].clone())
        );
        assert_eq!(encoded(&replica, &record).await, code);
        replica.stop().await;
    }
    // A second server with a database of its own, given the same parameters, encodes alike.
    let second = TestApp::spawn().await;
    json_of(
        second.put("/v1/spaces/pumps", &pump_spec()).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(encoded(&second, &record).await, code);
    second.stop().await;
    // The CLI makes the same codes offline, from the same parameters.
    let other = reading(-3.25, 1.7, "2026-07-04T23:59:00Z", "pump-11");
    let (lines, stderr, ok) = cli_encode(&pump_spec(), &format!("{record}\n\n{other}\n"));
    assert!(ok, "{stderr}");
    assert_eq!(lines, [code.clone(), encoded(&app, &other).await]);
    let database = app.database.clone();
    let dir = app.stop().await;
    let app = TestApp::spawn_on(&database).await;
    assert_eq!(encoded(&app, &record).await, code);
    let answer = json_of(
        app.post("/v1/spaces/pumps/query", &json!({ "record": record }))
            .await,
        StatusCode::OK,
    )
    .await;
    // Every synapse of the stored record's segment is active again.
    let best = &answer["matches"][0];
    assert!(best["overlap"].as_u64().unwrap() >= 24, "{answer}");
    assert_eq!(best["pattern_overlap"], 24, "{answer}");
    app.stop().await;
    drop(dir);
}

/// `dendrite encode --spec FILE` with `input` on stdin: the codes it printed, its stderr, and
/// whether it succeeded.
fn cli_encode(spec: &Value, input: &str) -> (Vec<Value>, String, bool) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spec.json");
    std::fs::write(&file, spec.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .arg("encode")
        .arg("--spec")
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal may come before the input is read: the pipe then breaks, which is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let output = child.wait_with_output().unwrap();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let stderr = String::from_utf8(output.stderr).unwrap();
    (lines, stderr, output.status.success())
}

#[test]
fn the_cli_refuses_a_spec_without_an_encoder_and_names_a_bad_line() {
    let (_, stderr, ok) = cli_encode(&json!({"input_size": 2048, "active_bits": 40}), "{}\n");
    assert!(!ok && stderr.contains("has no encoder"), "{stderr}");
    let good = json!({"device": "pump-3"});
    let (lines, stderr, ok) = cli_encode(&pump_spec(), &format!("{good}\n{{\"pressure\": 1}}\n"));
    assert!(!ok, "{stderr}");
    assert_eq!(lines.len(), 1, "the line before the bad one was encoded");
    assert!(
        stderr.contains("line 2: pressure is not a field of this space's encoder"),
        "{stderr}"
    );
}

/// The encoder spec as the service stores it: time fields with their total and every
/// component's resolution filled in (the default radius over the component's bits).
fn normalised(mut encoder: Value) -> Value {
    let time = &mut encoder["fields"]["time"];
    time["active_bits"] = json!(8);
    time["time_of_day"]["resolution"] = json!(40.0);
    encoder
}
