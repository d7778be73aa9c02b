//! The engine on the standard workload (src/workload.rs), single thread: learning rate, recognition
//! rate against the plain oracle's, and memory per synapse; then the same with 10x the patterns.
//!
//! `cargo bench --bench engine` prints one block per scale. Times are medians of repeated runs;
//! memory is what the allocator handed out while the space was built, counted by a wrapper around
//! the system allocator.

#![allow(unsafe_code)] // the counting allocator below

use dendrite::bench::{learn, queries, standard_space, store_requests};
use dendrite::engine::oracle::PlainIndex;
use dendrite::engine::{Query, SpaceParams};
use dendrite::workload::{Workload, WorkloadSpec};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn run(
    label: &str,
    workload_spec: WorkloadSpec,
    learn_runs: usize,
    query_runs: usize,
    plain_queries: usize,
) {
    let workload = Workload::generate(&workload_spec);
    let params = SpaceParams::new(&standard_space()).unwrap();
    let requests = store_requests(&workload.stores, workload_spec.n).unwrap();
    let queries: Vec<Query> = queries(&workload.queries, workload_spec.n).unwrap();
    let learn = |requests| learn(params.clone(), requests);

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let space = learn(&requests);
    let heap = (LIVE_BYTES.load(Ordering::Relaxed) - before) as f64;
    let mut learn_rates = vec![
        requests.len() as f64 / {
            let t = Instant::now();
            drop(learn(&requests));
            t.elapsed().as_secs_f64()
        },
    ];
    for _ in 1..learn_runs {
        let t = Instant::now();
        drop(learn(&requests));
        learn_rates.push(requests.len() as f64 / t.elapsed().as_secs_f64());
    }

    let mut query_rates = Vec::new();
    let (mut found, mut false_matches) = (0, 0);
    for run in 0..query_runs {
        let t = Instant::now();
        for (q, item) in queries.iter().zip(&workload.queries) {
            let answer = space.recognize(q).unwrap();
            if run == 0 {
                match &item.source {
                    Some(source) => {
                        found +=
                            usize::from(answer.matches.iter().any(|m| m.neuron.as_str() == source))
                    }
                    None => false_matches += answer.matches.len(),
                }
            }
        }
        query_rates.push(queries.len() as f64 / t.elapsed().as_secs_f64());
    }

    let plain = PlainIndex::build(&space);
    let plain_rates = (0..3)
        .map(|_| {
            let t = Instant::now();
            for q in queries.iter().take(plain_queries) {
                std::hint::black_box(plain.recognize(&space, q).unwrap());
            }
            plain_queries as f64 / t.elapsed().as_secs_f64()
        })
        .collect();
    let plain_rate = median(plain_rates);
    for q in queries.iter().take(50) {
        assert_eq!(
            plain.recognize(&space, q).unwrap(),
            space.recognize(q).unwrap()
        );
    }

    let counts = space.counts();
    let patterns_bytes = (counts.patterns * u64::from(workload_spec.a) * 4) as f64;
    let memory = space.memory();
    let noisy = queries.len().div_ceil(2);
    println!(
        "== {label}: {} neurons x {} patterns, {} queries",
        workload_spec.neurons,
        workload_spec.patterns_per_neuron,
        queries.len()
    );
    println!(
        "   segments {}, synapses {}",
        counts.segments, counts.synapses
    );
    println!(
        "   learning:     {:>10.0} patterns/s (median of {learn_runs})",
        median(learn_rates)
    );
    println!(
        "   recognition:  {:>10.0} queries/s (median of {query_runs})",
        median(query_rates.clone())
    );
    println!(
        "   plain oracle: {:>10.0} queries/s (median of 3 x {plain_queries} queries); index/plain = {:.0}x",
        plain_rate,
        median(query_rates) / plain_rate
    );
    println!(
        "   noisy queries finding their neuron: {found}/{noisy}; false matches over {} random queries: {false_matches}",
        queries.len() - noisy
    );
    println!(
        "   memory: synapse structures {:.1} B/synapse (index {:.1} + segment tables {:.1} + per-pattern synapse lists {:.1}); whole heap {:.1} B/synapse, {:.1} B/synapse beyond the raw pattern bits",
        memory.synapse_bytes() as f64 / counts.synapses as f64,
        memory.index as f64 / counts.synapses as f64,
        memory.segment_tables as f64 / counts.synapses as f64,
        memory.pattern_synapses as f64 / counts.synapses as f64,
        heap / counts.synapses as f64,
        (heap - patterns_bytes) / counts.synapses as f64,
    );
    // The memory limit is checked against the estimate: it should not fall below the heap.
    println!(
        "   memory estimate (what --memory-limit checks): {:.1} MiB against a whole heap of {:.1} MiB ({:.2}x)",
        space.estimated_bytes() as f64 / f64::from(1 << 20),
        heap / f64::from(1 << 20),
        space.estimated_bytes() as f64 / heap
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this file without it, and
    // then it only checks that it builds (tests/engine/oracle.rs holds the index to the oracle).
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    run("standard", WorkloadSpec::STANDARD, 5, 5, 300);
    run(
        "10x patterns",
        WorkloadSpec {
            patterns_per_neuron: 1000,
            ..WorkloadSpec::STANDARD
        },
        1,
        3,
        20,
    );
}
