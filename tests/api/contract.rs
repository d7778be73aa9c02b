//! `openapi.yaml` against the router: every route served is in the spec and every path and method
//! in the spec is served. (`scripts/check_openapi.py` validates each example against its schema.)

use crate::helpers::*;
use dendrite::http::access::Need;
use std::collections::{BTreeMap, BTreeSet};

/// (METHOD, path) for every operation under `paths:` in the spec.
fn spec_operations() -> BTreeSet<(String, String)> {
    spec_responses().into_keys().collect()
}

/// For every operation under `paths:`, read from the spec's indentation (paths at two spaces,
/// methods at four): the status codes it documents (quoted keys at eight spaces under its
/// `responses:`) and whether it opts out of the keys (`security: []`).
fn spec_responses() -> BTreeMap<(String, String), (BTreeSet<String>, bool)> {
    let spec = dendrite::http::OPENAPI;
    let mut operations: BTreeMap<(String, String), (BTreeSet<String>, bool)> = BTreeMap::new();
    let (mut in_paths, mut path, mut current) = (false, String::new(), None);
    for line in spec.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line
            .strip_prefix("  /")
            .and_then(|rest| rest.strip_suffix(':'))
        {
            path = format!("/{p}");
        } else if let Some(method) = line
            .strip_prefix("    ")
            .and_then(|rest| rest.strip_suffix(':'))
            .filter(|m| ["get", "put", "post", "delete", "patch", "head", "options"].contains(m))
        {
            let operation = (method.to_uppercase(), path.clone());
            operations.entry(operation.clone()).or_default();
            current = Some(operation);
        } else if let Some(operation) = &current {
            let entry = operations.entry(operation.clone()).or_default();
            if line == "      security: []" {
                entry.1 = true;
            } else if let Some(code) = line
                .strip_prefix("        '")
                .and_then(|rest| rest.strip_suffix("':"))
            {
                entry.0.insert(code.to_owned());
            }
        }
    }
    operations
}

#[test]
fn the_spec_documents_what_each_route_needs_of_a_key() {
    let documented = spec_responses();
    for route in dendrite::http::routes() {
        let key = (route.method.to_string(), route.path.to_owned());
        let (codes, open) = &documented[&key];
        let has = |code: &str| codes.contains(code);
        match route.need() {
            Need::Nothing => assert!(*open && !has("401"), "{key:?} is open"),
            Need::Read => assert!(
                !*open && has("401") && !has("403") && has("421"),
                "{key:?} needs any key: {codes:?}"
            ),
            Need::Write => assert!(
                !*open && has("401") && has("403") && has("421"),
                "{key:?} needs a read-write key: {codes:?}"
            ),
        }
    }
}

#[test]
fn every_route_is_in_the_spec_and_every_spec_operation_is_routed() {
    let routed: BTreeSet<(String, String)> = dendrite::http::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let documented = spec_operations();
    assert!(
        documented.len() >= 15,
        "the spec parser found only {documented:?}"
    );
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from openapi.yaml: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "openapi.yaml operations the router does not serve: {unrouted:?}"
    );
}

#[tokio::test]
async fn every_documented_path_answers_and_other_methods_are_405() {
    let app = TestApp::spawn().await;
    app.standard_space("s").await;
    let documented = spec_operations();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        let concrete = path
            .replace("{space}", "s")
            .replace("{neuron}", "n")
            .replace("{id}", "1");
        for method in ["GET", "PUT", "POST", "DELETE", "PATCH"] {
            let response = app
                .send_raw(
                    method.parse().unwrap(),
                    &concrete,
                    Some("application/json"),
                    b"{}".to_vec(),
                )
                .await;
            let served = documented.contains(&(method.to_string(), path.clone()));
            if served {
                // Served: any answer but "no such route" or "method not allowed".
                assert_ne!(
                    response.status(),
                    reqwest::StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    let body: serde_json::Value = response.json().await.unwrap();
                    assert!(
                        !body["detail"].as_str().unwrap().contains("no such route"),
                        "{method} {path}"
                    );
                }
            } else {
                assert_eq!(
                    response.status(),
                    reqwest::StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
            }
        }
    }
    app.stop().await;
}
