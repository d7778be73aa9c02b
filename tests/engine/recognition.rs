//! Recognition: what a match says (p-value, the stored pattern it resembles), the order and limit
//! of matches, and answers that do not depend on how the space was built or counted.

use crate::helpers::*;
use dendrite::engine::*;
use dendrite::rng::Rng;
use dendrite::theory;
use dendrite::workload::noisy;

#[test]
fn a_stored_pattern_is_recognised_with_its_p_value() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(1);
    let p = pattern(&rng.distinct_below(2048, 40), 2048);
    let stored = store(&mut s, "cat", &p, None).unwrap();
    assert_eq!(stored.id.as_str(), "1");
    assert_eq!(stored.synapses.len(), 24);
    assert!(stored.synapses.iter().all(|c| p.cells().contains(c)));
    let answer = s.recognize(&query(p)).unwrap();
    assert_eq!(answer.matches.len(), 1);
    let m = &answer.matches[0];
    assert_eq!((m.neuron.as_str(), m.overlap), ("cat", 24));
    let expected = theory::overlap_p_value(2048, 40, 24, 24);
    assert_eq!(m.p_value, expected);
    assert_eq!(
        m.neuron_false_match,
        theory::segment_false_match(2048, 40, 24, 12)
    );
    assert_eq!(answer.threshold, 12);
    assert_eq!(answer.segments_overlapped, 1);
}

/// Two patterns learned on one segment: a noisy copy of either matches that segment and names the
/// pattern it came from, with the overlap of that pattern's own synapses.
#[test]
fn a_match_names_the_stored_pattern_the_input_resembles() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(11);
    let morning = pattern(&rng.distinct_below(2048, 40), 2048);
    let evening = pattern(&rng.distinct_below(2048, 40), 2048);
    let morning_view = store(&mut s, "door", &morning, Some("open-morning")).unwrap();
    let evening_view = store(&mut s, "door", &evening, Some("open-evening")).unwrap();
    assert_eq!(
        (morning_view.segment, evening_view.segment),
        (0, 0),
        "one segment"
    );
    for (stored, view) in [(&morning, &morning_view), (&evening, &evening_view)] {
        let input = pattern(&noisy(&mut rng, 2048, stored.cells(), 8), 2048);
        let answer = s.recognize(&query(input.clone())).unwrap();
        let m = &answer.matches[0];
        assert_eq!((m.neuron.as_str(), m.segment), ("door", 0));
        assert_eq!(m.pattern, view.id);
        let own = view
            .synapses
            .iter()
            .filter(|c| input.cells().contains(c))
            .count();
        assert_eq!(m.pattern_overlap as usize, own);
        assert!(m.pattern_overlap <= m.overlap);
    }
}

#[test]
fn matches_come_by_p_value_then_name_within_the_limit() {
    let mut s = space(SpaceSpec {
        synapses_per_pattern: Some(40),
        threshold: Some(10),
        max_false_match: Some(0.5),
        ..standard_spec()
    });
    let full = pattern(&(0..40).collect::<Vec<_>>(), 2048);
    store(&mut s, "b", &full, None).unwrap();
    store(&mut s, "a", &full, None).unwrap();
    store(
        &mut s,
        "c",
        &pattern(&(10..50).collect::<Vec<_>>(), 2048),
        None,
    )
    .unwrap();
    let answer = s.recognize(&query(full.clone())).unwrap();
    let order: Vec<_> = answer
        .matches
        .iter()
        .map(|m| (m.neuron.as_str(), m.overlap))
        .collect();
    assert_eq!(order, vec![("a", 40), ("b", 40), ("c", 30)]);
    let limited = s
        .recognize(&Query {
            active: full.clone(),
            threshold: None,
            limit: 2,
        })
        .unwrap();
    assert_eq!(limited.matches.len(), 2);
    let strict = s
        .recognize(&Query {
            active: full.clone(),
            threshold: Some(35),
            limit: 10,
        })
        .unwrap();
    assert_eq!(strict.matches.len(), 2);
    assert_eq!(strict.threshold, 35);
    assert_eq!(
        strict.matches[0].neuron_false_match,
        theory::segment_false_match(2048, 40, 40, 35),
        "a query's own threshold sets its neurons' false-match probability"
    );
    assert_eq!(
        s.recognize(&Query {
            active: full,
            threshold: Some(0),
            limit: 10
        }),
        Err(EngineError::InvalidThreshold(0))
    );
}

#[test]
fn expected_false_matches_follow_the_query_size_and_every_write() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(31);
    for i in 0..30 {
        store_random(&mut s, &format!("n{}", i % 4), &mut rng).unwrap();
    }
    // Σ over neurons of 1 − Π(1 − p(|X|)) for inputs of `a` bits at `theta`, from the reports.
    let direct =
        |s: &Space, a: u64, theta: u64| -> f64 {
            (0..4)
                .map(|i| {
                    let report = s
                        .neuron_report(&name(&format!("n{i}")), None, usize::MAX)
                        .unwrap();
                    theory::neuron_false_match_of(report.segments.iter().map(|seg| {
                        theory::segment_false_match(2048, a, seg.synapses.into(), theta)
                    }))
                    .value()
                })
                .sum()
        };
    let ask = |s: &Space, bits: u32, threshold: Option<u32>| {
        let q = Query {
            active: pattern(&Rng::new(5).distinct_below(2048, bits), 2048),
            threshold,
            limit: 10,
        };
        s.recognize(&q).unwrap().expected_false_matches.value()
    };
    for (bits, threshold) in [(40, None), (39, None), (60, Some(10)), (40, Some(10))] {
        let want = direct(&s, bits.into(), threshold.unwrap_or(12).into());
        let got = ask(&s, bits, threshold);
        assert!(
            (got - want).abs() <= 1e-12 * want,
            "{bits} bits, theta {threshold:?}: {got} vs {want}"
        );
        assert_eq!(
            ask(&s, bits, threshold),
            got,
            "a second query of that size is answered from the cache"
        );
    }
    let before = ask(&s, 39, None);
    store_random(&mut s, "n0", &mut rng).unwrap();
    let after = ask(&s, 39, None);
    assert!(
        after > before,
        "a write clears the cache: {after} vs {before}"
    );
    assert!((after - direct(&s, 39, 12)).abs() <= 1e-12 * after);
}

/// A restart or a restored backup creates neurons in another order than the original did; every
/// answer must still be the same to the last digit (a sum over neurons in slot order was not).
#[test]
fn answers_do_not_depend_on_the_order_neurons_were_created() {
    let mut rng = Rng::new(21);
    // Neurons with 1 to 40 patterns, so their false-match probabilities differ widely.
    let neurons: Vec<(String, Vec<Pattern>)> = (0..300)
        .map(|n| {
            let count = 1 + (n * 17) % 40;
            let patterns = (0..count)
                .map(|_| pattern(&rng.distinct_below(2048, 40), 2048))
                .collect();
            (format!("n{n}"), patterns)
        })
        .collect();
    let (mut forward, mut backward) = (space(standard_spec()), space(standard_spec()));
    for (neuron, patterns) in &neurons {
        for p in patterns {
            store(&mut forward, neuron, p, None).unwrap();
        }
    }
    for (neuron, patterns) in neurons.iter().rev() {
        for p in patterns {
            store(&mut backward, neuron, p, None).unwrap();
        }
    }
    for (neuron, patterns) in neurons.iter().take(40) {
        let input = pattern(&noisy(&mut rng, 2048, patterns[0].cells(), 8), 2048);
        for threshold in [None, Some(8)] {
            let q = Query {
                threshold,
                ..query(input.clone())
            };
            assert_eq!(
                forward.recognize(&q).unwrap(),
                backward.recognize(&q).unwrap(),
                "{neuron}"
            );
        }
    }
}

/// The service keeps a query on its async worker only when the space counts on one thread; that
/// must follow the segment slots counting walks over, free ones included, not the live segments.
#[test]
fn recognition_counts_in_parallel_by_segment_slots_not_by_live_segments() {
    let mut s = space(SpaceSpec {
        input_size: 64,
        active_bits: 8,
        threshold: Some(4),
        max_false_match: Some(1.0),
        ..SpaceSpec::default()
    });
    let mut rng = Rng::new(8);
    // One segment per neuron: 33,000 segments fill more than 16 blocks of 2048 slots.
    for i in 0..33_000 {
        store(
            &mut s,
            &format!("n{i}"),
            &pattern(&rng.distinct_below(64, 8), 64),
            None,
        )
        .unwrap();
    }
    assert!(s.is_dense(), "the space moved to the matrix as it grew");
    assert!(s.counts_in_parallel());
    for i in 100..33_000 {
        s.delete_neuron(&name(&format!("n{i}"))).unwrap();
    }
    assert_eq!(s.segment_count(), 100);
    assert!(
        s.counts_in_parallel(),
        "the freed slots are still counted over"
    );
    assert!(!space(standard_spec()).counts_in_parallel());
}
