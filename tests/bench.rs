//! `dendrite bench` as users run it: a workload directory in, one JSON object out.

use dendrite::engine::Kernel;
use dendrite::workload::{Workload, WorkloadSpec};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dendrite"))
        .arg("bench")
        .args(args)
        .output()
        .expect("dendrite runs")
}

/// A small workload written as the shared generator writes it, with a key the reader must ignore.
fn workload_dir() -> tempfile::TempDir {
    let workload = Workload::generate(&WorkloadSpec {
        neurons: 5,
        patterns_per_neuron: 20,
        queries: 40,
        ..WorkloadSpec::STANDARD
    });
    let dir = tempfile::tempdir().unwrap();
    let mut stores = std::fs::File::create(dir.path().join("store.ndjson")).unwrap();
    for store in &workload.stores {
        let line = json!({"neuron": store.neuron, "active": store.active, "note": "ignored"});
        writeln!(stores, "{line}").unwrap();
    }
    let mut queries = std::fs::File::create(dir.path().join("query.ndjson")).unwrap();
    for query in &workload.queries {
        writeln!(
            queries,
            "{}",
            json!({"active": query.active, "source": query.source})
        )
        .unwrap();
    }
    dir
}

#[test]
fn a_workload_directory_is_measured_and_reported_as_one_json_object() {
    let dir = workload_dir();
    let output = bench(&["--workload", dir.path().to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "segments",
        "synapses",
        "kernel",
        "learning_per_second",
        "queries_per_second",
        "queries_per_second_all_threads",
        "query_p50_us",
        "query_p99_us",
        "bytes_per_synapse",
    ] {
        assert!(report.get(key).is_some(), "{key} missing from {report}");
    }
    assert_eq!(
        (&report["neurons"], &report["patterns"], &report["queries"]),
        (&json!(5), &json!(100), &json!(40))
    );
    // 100 patterns are too few for the dense matrix to pay for itself: the space, as the service
    // would hold it, counts with postings.
    assert_eq!(report["kernel"], "postings");
    assert_eq!(
        report["noisy_found"], report["noisy_queries"],
        "every noisy copy finds its neuron"
    );
    assert_eq!(report["noisy_queries"], 20);
    assert!(report["query_p50_us"].as_f64().unwrap() <= report["query_p99_us"].as_f64().unwrap());
}

#[test]
fn each_supported_kernel_can_be_chosen_and_an_unsupported_one_is_refused() {
    let dir = workload_dir();
    let path = dir.path().to_str().unwrap();
    for kernel in Kernel::available() {
        let output = bench(&["--workload", path, "--kernel", kernel.name()]);
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["kernel"], kernel.name());
    }
    let refused = bench(&["--workload", path, "--kernel", "sse9"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("sse9") && stderr.contains("portable"),
        "{stderr}"
    );
}

#[test]
fn a_malformed_workload_line_is_named_by_file_and_line() {
    let dir = workload_dir();
    let mut queries = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("query.ndjson"))
        .unwrap();
    writeln!(queries, "{{\"active\": [1, 2,").unwrap();
    let output = bench(&["--workload", dir.path().to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("query.ndjson, line 41"), "{stderr}");
    let missing = bench(&["--workload", "/nonexistent/workload"]);
    assert!(
        String::from_utf8(missing.stderr)
            .unwrap()
            .contains("store.ndjson")
    );
}

#[test]
fn a_written_workload_is_what_bench_measures_and_a_folder_it_cannot_make_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("standard");
    let written = bench(&[
        "--write-workload",
        folder.to_str().unwrap(),
        "--neurons",
        "5",
        "--patterns",
        "50",
        "--queries",
        "20",
    ]);
    assert!(written.status.success(), "{written:?}");
    let store = std::fs::read_to_string(folder.join("store.ndjson")).unwrap();
    assert_eq!(store.lines().count(), 50);
    let measured = bench(&["--workload", folder.to_str().unwrap()]);
    assert!(measured.status.success(), "{measured:?}");
    // A file where the folder should go: nothing measured, one line saying why, status 1.
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let refused = bench(&["--write-workload", blocker.join("x").to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("cannot create"), "{stderr}");
}
