//! The index against the plain oracle: random stores, forgets and deletions on both layouts, and
//! readers racing a writer through the service's own lock.

use crate::helpers::*;
use dendrite::engine::oracle::PlainIndex;
use dendrite::engine::*;
use dendrite::rng::Rng;
use proptest::prelude::*;

/// A random sequence of stores, forgets and neuron deletions on a small space.
#[derive(Clone, Debug)]
enum Op {
    Store { neuron: u8, cells: Vec<u32> },
    Forget { neuron: u8, nth: usize },
    Delete { neuron: u8 },
}

fn op(n: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..6, proptest::collection::btree_set(0..n, 6..16)).prop_map(|(neuron, cells)| Op::Store { neuron, cells: cells.into_iter().collect() }),
        2 => (0u8..6, 0usize..8).prop_map(|(neuron, nth)| Op::Forget { neuron, nth }),
        1 => (0u8..6).prop_map(|neuron| Op::Delete { neuron }),
    ]
}

/// Applies random operations to a space, then checks every query against the plain oracle.
fn agrees_with_the_oracle(
    spec: SpaceSpec,
    expect_dense: bool,
    ops: Vec<Op>,
    queries: Vec<(std::collections::BTreeSet<u32>, Option<u32>)>,
) -> Result<(), TestCaseError> {
    let n = spec.input_size;
    let mut s = space(spec);
    // Every space starts in postings; one whose segments suit the dense matrix moves to it, here
    // halfway through the operations, so the move itself is checked too.
    prop_assert!(!s.is_dense());
    let halfway = ops.len() / 2;
    for (i, op) in ops.into_iter().enumerate() {
        if i == halfway {
            prop_assert_eq!(s.use_dense_layout(), expect_dense);
        }
        match op {
            Op::Store { neuron, cells } => {
                let cells: Vec<u32> = cells
                    .into_iter()
                    .map(|c| c % n)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let _ = store(&mut s, &format!("n{neuron}"), &pattern(&cells, n), None);
            }
            Op::Forget { neuron, nth } => {
                let neuron = name(&format!("n{neuron}"));
                if let Ok(report) = s.neuron_report(&neuron, None, usize::MAX) {
                    let ids: Vec<Name> = report
                        .segments
                        .iter()
                        .flat_map(|seg| seg.patterns.clone())
                        .collect();
                    if let Some(id) = ids.get(nth) {
                        s.apply_forget(&neuron, id).unwrap();
                    }
                }
            }
            Op::Delete { neuron } => {
                let _ = s.delete_neuron(&name(&format!("n{neuron}")));
            }
        }
    }
    let plain = PlainIndex::build(&s);
    prop_assert_eq!(s.report().counts.synapses, s.synapse_count() as u64);
    for (cells, threshold) in queries {
        let cells: Vec<u32> = cells
            .into_iter()
            .map(|c| c % n)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let q = Query {
            active: pattern(&cells, n),
            threshold,
            limit: 100,
        };
        let expected = plain.recognize(&s, &q);
        prop_assert_eq!(s.recognize(&q), expected.clone());
        if expect_dense {
            // Every counting kernel this CPU has, forced in turn.
            for kernel in Kernel::available() {
                s.use_kernel(kernel);
                prop_assert_eq!(s.recognize(&q), expected.clone(), "kernel {}", kernel);
            }
            s.use_kernel(Kernel::detected());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_dense_index_agrees_with_the_plain_oracle(
        ops in proptest::collection::vec(op(96), 1..80),
        queries in proptest::collection::vec((proptest::collection::btree_set(0u32..96, 1..30), proptest::option::of(1u32..8)), 1..12),
    ) {
        let spec = SpaceSpec { input_size: 96, active_bits: 10, synapses_per_pattern: Some(6), threshold: Some(3), max_false_match: Some(0.9), max_segments_per_neuron: Some(4), seed: Some(3), encoder: None };
        agrees_with_the_oracle(spec, true, ops, queries)?;
    }

    #[test]
    fn the_postings_index_agrees_with_the_plain_oracle(
        ops in proptest::collection::vec(op(200), 1..80),
        queries in proptest::collection::vec((proptest::collection::btree_set(0u32..200, 1..30), proptest::option::of(1u32..8)), 1..12),
    ) {
        // A sparse space (6 synapses per pattern on 100,000 bits) whose patterns all fall in the
        // first 200 bits, so that queries overlap them.
        let spec = SpaceSpec { input_size: 100_000, active_bits: 10, synapses_per_pattern: Some(6), threshold: Some(2), max_false_match: Some(1e-3), max_segments_per_neuron: Some(64), seed: Some(3), encoder: None };
        agrees_with_the_oracle(spec, false, ops, queries)?;
    }
}

/// Readers racing a writer through the service's own lock see every store whole or not at all.
/// Each pattern has 40 synapses on its own neuron and the threshold is 20, so a store seen half
/// applied would match with an overlap between 20 and 39, and the index would disagree with the
/// segment tables the plain oracle reads.
#[test]
fn queries_see_a_store_wholly_or_not_at_all() {
    let shared = SpaceLock::new(space(SpaceSpec {
        synapses_per_pattern: Some(40),
        threshold: Some(20),
        ..standard_spec()
    }));
    let mut rng = Rng::new(4);
    let patterns: Vec<Pattern> = (0..200)
        .map(|_| pattern(&rng.distinct_below(2048, 40), 2048))
        .collect();
    let seen_whole = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for (i, p) in patterns.iter().enumerate() {
                let neuron = name(&format!("n{i}"));
                shared.update(|s| {
                    let request = StoreRequest {
                        neuron: neuron.clone(),
                        active: p.clone(),
                        id: None,
                        metadata: None,
                    };
                    if let Planned::New(plan) = s.plan_store(&[request]).unwrap().remove(0) {
                        s.apply_store(plan).unwrap();
                    }
                });
                if i % 3 == 0 {
                    shared.update(|s| s.apply_forget(&neuron, &name("1")).unwrap());
                }
            }
        });
        for reader in 0..2 {
            let (shared, patterns, seen_whole) = (&shared, &patterns, &seen_whole);
            scope.spawn(move || {
                for round in 0..2_000 {
                    let at = (round * 7 + reader) % patterns.len();
                    let s = shared.read().unwrap();
                    let answer = s.recognize(&query(patterns[at].clone())).unwrap();
                    for m in &answer.matches {
                        assert_eq!(m.neuron.as_str(), format!("n{at}"), "only its own neuron");
                        assert_eq!(m.overlap, 40, "a store seen in part");
                        seen_whole.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    let plain = PlainIndex::build(&s).recognize(&s, &query(patterns[at].clone()));
                    assert_eq!(plain.unwrap(), answer, "the index and the tables disagree");
                }
            });
        }
    });
    assert!(
        seen_whole.into_inner() > 0,
        "the readers never saw a stored pattern: the race was not run"
    );
}
