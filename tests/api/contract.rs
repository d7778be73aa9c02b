//! `openapi.yaml` against the router: every route served is in the spec and every path and method
//! in the spec is served. (`scripts/check_openapi.py` validates each example against its schema.)

use crate::helpers::*;
use dendrite::http::access::Need;
use std::collections::{BTreeMap, BTreeSet};
use yaml_rust2::{Yaml, YamlLoader};

/// (METHOD, path) for every operation under `paths:` in the spec.
fn spec_operations() -> BTreeSet<(String, String)> {
    spec_responses().into_keys().collect()
}

/// For every operation under `paths:`: the status codes it documents (the keys of its
/// `responses`) and whether it opts out of the keys (`security: []`).
fn spec_responses() -> BTreeMap<(String, String), (BTreeSet<String>, bool)> {
    let documents =
        YamlLoader::load_from_str(dendrite::http::OPENAPI).expect("openapi.yaml parses");
    let paths = documents[0]["paths"]
        .as_hash()
        .expect("openapi.yaml has a paths map");
    // An unquoted status code is a number to YAML.
    let text = |key: &Yaml| {
        key.as_str()
            .map(str::to_owned)
            .or_else(|| key.as_i64().map(|number| number.to_string()))
            .unwrap_or_else(|| panic!("a key that is neither text nor a number: {key:?}"))
    };
    let mut operations = BTreeMap::new();
    for (path, item) in paths {
        let item = item.as_hash().expect("a path item is a map");
        for (method, operation) in item {
            let method = text(method);
            if !["get", "put", "post", "delete", "patch", "head", "options"].contains(&&*method) {
                continue; // a path item's own `parameters` or `summary`
            }
            let codes = operation["responses"]
                .as_hash()
                .expect("an operation documents its responses")
                .keys()
                .map(text)
                .collect();
            let open = operation["security"]
                .as_vec()
                .is_some_and(|requirements| requirements.is_empty());
            operations.insert((method.to_uppercase(), text(path)), (codes, open));
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
