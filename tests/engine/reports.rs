//! Reports and memory: a neuron's and a space's reports, and the memory estimate the service's
//! limit relies on.

use crate::helpers::*;
use dendrite::engine::*;
use dendrite::rng::Rng;
use dendrite::theory;

#[test]
fn a_neuron_report_pages_through_its_segments() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(12);
    for _ in 0..40 {
        store_random(&mut s, "n", &mut rng).unwrap();
    }
    let whole = s.neuron_report(&name("n"), None, usize::MAX).unwrap();
    assert_eq!(whole.segment_count, whole.segments.len() as u64);
    assert_eq!(whole.next_segment, None);
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = s.neuron_report(&name("n"), after, 2).unwrap();
        assert!(page.segments.len() <= 2);
        assert_eq!(page.segment_count, whole.segment_count);
        paged.extend(page.segments);
        match page.next_segment {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, whole.segments);
    let patterns: usize = paged.iter().map(|segment| segment.patterns.len()).sum();
    assert_eq!(patterns as u64, whole.patterns);
}

#[test]
fn reports_describe_the_neuron_and_the_space() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(21);
    for _ in 0..3 {
        store_random(&mut s, "n", &mut rng).unwrap();
    }
    let report = s.neuron_report(&name("n"), None, usize::MAX).unwrap();
    assert_eq!(report.patterns, 3);
    assert_eq!(
        report
            .false_miss_by_noise
            .iter()
            .map(|m| m.noise_bits)
            .collect::<Vec<_>>(),
        vec![4, 8, 12]
    );
    assert_eq!(
        report.false_miss_by_noise[1].probability,
        theory::false_miss(40, 24, 8, 12)
    );
    let room = report.patterns_before_new_segment.unwrap();
    assert!((1..=3).contains(&room), "capacity 5, 3 stored: {room}");
    let space = s.report();
    assert_eq!(
        (
            space.counts.neurons,
            space.counts.patterns,
            space.counts.segments
        ),
        (1, 3, 1)
    );
    assert_eq!(space.counts.synapses, s.synapse_count() as u64);
    assert_eq!(space.theory.max_patterns_per_segment, Some(5));
    assert_eq!(space.theory.threshold_for_target, Some(7));
    assert_eq!(space.theory.threshold_min_error, 16);
}

/// The memory budget is checked against `estimated_cost` before a store is applied: it must never
/// be less than what applying the store adds to `estimated_bytes`, in either layout; and memory
/// freed by forgetting is reused, so storing the same again does not grow past the first peak.
#[test]
fn a_stores_estimated_cost_covers_what_it_adds_and_forgotten_memory_is_reused() {
    let sparse = SpaceSpec {
        input_size: 100_000,
        active_bits: 40,
        synapses_per_pattern: Some(24),
        threshold: Some(12),
        ..SpaceSpec::default()
    };
    for spec in [standard_spec(), sparse] {
        let n = spec.input_size;
        let mut s = space(spec);
        let empty = s.estimated_bytes();
        let mut peaks = Vec::new();
        for round in 0..2 {
            let mut rng = Rng::new(21);
            let mut stored = Vec::new();
            for i in 0..300 {
                let neuron = format!("n{}", i % 37);
                let request = StoreRequest {
                    neuron: name(&neuron),
                    active: pattern(&rng.distinct_below(n, 40), n),
                    id: None,
                    metadata: None,
                };
                let planned = s.plan_store(std::slice::from_ref(&request)).unwrap();
                let Planned::New(plan) = &planned[0] else {
                    panic!("a new pattern")
                };
                let (before, cost) = (s.estimated_bytes(), s.estimated_cost([plan]));
                s.apply_store(plan.clone()).unwrap();
                let added = s.estimated_bytes() - before;
                assert!(
                    added <= cost,
                    "round {round}, store {i}: added {added} > {cost}"
                );
                stored.push((neuron, plan.id.clone()));
            }
            peaks.push(s.estimated_bytes());
            for (neuron, id) in &stored {
                s.apply_forget(&name(neuron), id).unwrap();
            }
            assert!(s.estimated_bytes() < peaks[round]);
        }
        assert!(peaks[0] > empty);
        assert!(peaks[1] <= peaks[0], "{peaks:?}");
    }
}
