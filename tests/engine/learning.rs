//! Learning and forgetting: ids, sampled synapses, segments filling to the learning limit, full
//! neurons, and the room forgetting leaves.

use crate::helpers::*;
use dendrite::engine::oracle::PlainIndex;
use dendrite::engine::*;
use dendrite::rng::Rng;
use dendrite::theory;

#[test]
fn storing_the_same_pattern_again_returns_the_existing_one() {
    let mut s = space(standard_spec());
    let p = pattern(&(0..40).collect::<Vec<_>>(), 2048);
    let first = store(&mut s, "n", &p, Some("a")).unwrap();
    assert_eq!(store(&mut s, "n", &p, None).unwrap(), first);
    assert_eq!(store(&mut s, "n", &p, Some("a")).unwrap(), first);
    assert_eq!(store(&mut s, "n", &p, Some("other")).unwrap(), first);
    assert_eq!(s.counts().patterns, 1);
    let other = pattern(&(100..140).collect::<Vec<_>>(), 2048);
    assert_eq!(
        store(&mut s, "n", &other, Some("a")),
        Err(EngineError::IdConflict {
            neuron: name("n"),
            id: name("a")
        })
    );
    assert_eq!(s.counts().patterns, 1, "a refused store changes nothing");
}

#[test]
fn server_ids_count_up_and_skip_ids_clients_took() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(5);
    let mut next = || pattern(&rng.distinct_below(2048, 40), 2048);
    assert_eq!(
        store(&mut s, "n", &next(), Some("2")).unwrap().id.as_str(),
        "2"
    );
    assert_eq!(store(&mut s, "n", &next(), None).unwrap().id.as_str(), "3");
    assert_eq!(store(&mut s, "m", &next(), None).unwrap().id.as_str(), "1");
}

#[test]
fn the_same_seed_samples_the_same_synapses() {
    let p = pattern(&(0..40).map(|i| i * 7).collect::<Vec<_>>(), 2048);
    let mut one = space(standard_spec());
    let mut two = space(standard_spec());
    store(
        &mut two,
        "x",
        &pattern(&(1..41).collect::<Vec<_>>(), 2048),
        None,
    )
    .unwrap();
    let a = store(&mut one, "n", &p, None).unwrap().synapses;
    let b = store(&mut two, "n", &p, None).unwrap().synapses;
    assert_eq!(a, b, "sampling depends on seed, neuron and pattern only");
    let mut reseeded = space(SpaceSpec {
        seed: Some(9),
        ..standard_spec()
    });
    assert_ne!(store(&mut reseeded, "n", &p, None).unwrap().synapses, a);
}

#[test]
fn a_segment_grows_until_the_target_then_a_new_one_opens() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(11);
    for _ in 0..40 {
        store_random(&mut s, "n", &mut rng).unwrap();
    }
    let report = s.neuron_report(&name("n"), None, usize::MAX).unwrap();
    assert!(
        report.segments.len() >= 5,
        "{} segments",
        report.segments.len()
    );
    let limit = 1e-6;
    for segment in &report.segments {
        assert!(segment.false_match.value() <= limit);
        assert_eq!(
            segment.false_match,
            theory::segment_false_match(2048, 40, segment.synapses.into(), 12)
        );
    }
    // Every closed segment was refused one more pattern: adding a pattern would pass the target,
    // so each holds about the theory's capacity (5 for these parameters).
    let capacity = theory::max_patterns_per_segment(2048, 40, 24, 12, limit).unwrap() as usize;
    for segment in &report.segments[..report.segments.len() - 1] {
        assert!(
            segment.patterns.len().abs_diff(capacity) <= 2,
            "{:?}",
            segment.patterns
        );
    }
    let total: usize = report.segments.iter().map(|s| s.patterns.len()).sum();
    assert_eq!(total, 40);
    let expected = theory::neuron_false_match_of(report.segments.iter().map(|s| s.false_match));
    assert_eq!(report.false_match, expected);
}

#[test]
fn a_full_neuron_refuses_and_changes_nothing() {
    let mut s = space(SpaceSpec {
        max_segments_per_neuron: Some(2),
        ..standard_spec()
    });
    let mut rng = Rng::new(3);
    let mut stored = 0;
    let error = loop {
        match store_random(&mut s, "n", &mut rng) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(
        error,
        EngineError::NeuronFull {
            neuron: name("n"),
            segments: 2
        }
    );
    assert_eq!(s.counts().patterns, stored);
    assert_eq!(s.counts().segments, 2);
}

#[test]
fn a_pattern_shorter_than_theta_cannot_be_stored_but_can_be_asked() {
    let mut s = space(standard_spec());
    let short = pattern(&(0..11).collect::<Vec<_>>(), 2048);
    assert_eq!(
        store(&mut s, "n", &short, None),
        Err(EngineError::TooFewActiveBits {
            active: 11,
            threshold: 12
        })
    );
    let answer = s.recognize(&query(short)).unwrap();
    assert!(answer.matches.is_empty());
    assert!(answer.note.unwrap().contains("fewer than the threshold 12"));
    assert_eq!(answer.expected_false_matches.value(), 0.0);
}

#[test]
fn forgetting_keeps_synapses_other_patterns_use_and_drops_empty_segments() {
    let mut s = space(SpaceSpec {
        synapses_per_pattern: Some(40),
        threshold: Some(10),
        max_false_match: Some(0.5),
        ..standard_spec()
    });
    let a = pattern(&(0..40).collect::<Vec<_>>(), 2048);
    let b = pattern(&(20..60).collect::<Vec<_>>(), 2048);
    store(&mut s, "n", &a, Some("a")).unwrap();
    let both = store(&mut s, "n", &b, Some("b")).unwrap();
    assert_eq!(both.segment, 0, "both fit one segment");
    assert_eq!(s.synapse_count(), 60);
    s.apply_forget(&name("n"), &name("a")).unwrap();
    assert_eq!(s.synapse_count(), 40, "the 20 shared synapses stay");
    assert_eq!(
        s.recognize(&query(a.clone())).unwrap().matches[0].overlap,
        20
    );
    assert_eq!(
        s.recognize(&query(b.clone())).unwrap().matches[0].overlap,
        40
    );
    s.apply_forget(&name("n"), &name("b")).unwrap();
    assert_eq!((s.counts().segments, s.synapse_count()), (0, 0));
    assert!(s.recognize(&query(b)).unwrap().matches.is_empty());
    assert_eq!(
        s.apply_forget(&name("n"), &name("b")),
        Err(EngineError::UnknownPattern {
            neuron: name("n"),
            id: name("b")
        })
    );
    assert_eq!(
        s.apply_forget(&name("x"), &name("b")),
        Err(EngineError::UnknownNeuron(name("x")))
    );
    assert_eq!(s.counts().neurons, 1, "a neuron stays until deleted");
}

#[test]
fn deleting_a_neuron_removes_all_of_it() {
    let mut s = space(standard_spec());
    let p = pattern(&(0..40).collect::<Vec<_>>(), 2048);
    store(&mut s, "n", &p, None).unwrap();
    store(&mut s, "m", &p, None).unwrap();
    s.delete_neuron(&name("n")).unwrap();
    let answer = s.recognize(&query(p)).unwrap();
    assert_eq!(
        answer
            .matches
            .iter()
            .map(|m| m.neuron.as_str())
            .collect::<Vec<_>>(),
        vec!["m"]
    );
    assert_eq!(s.counts().neurons, 1);
    assert_eq!(
        s.delete_neuron(&name("n")),
        Err(EngineError::UnknownNeuron(name("n")))
    );
    assert!(s.neuron_report(&name("n"), None, usize::MAX).is_err());
}

/// Under store and forget churn at a constant number of patterns, new patterns fill the room
/// forgetting left, so a neuron's segments (its memory, and its false-match probability) level
/// off instead of growing until the neuron is full.
#[test]
fn churn_at_a_constant_size_fills_the_room_forgetting_leaves() {
    let mut s = space(standard_spec());
    let mut rng = Rng::new(5);
    let mut stored: Vec<Name> = (0..60)
        .map(|_| store_random(&mut s, "n", &mut rng).unwrap().id)
        .collect();
    let at_start = s.segment_count();
    let mut most = at_start;
    for _ in 0..3_000 {
        let forgotten = stored.swap_remove(rng.below(stored.len() as u64) as usize);
        s.apply_forget(&name("n"), &forgotten).unwrap();
        stored.push(store_random(&mut s, "n", &mut rng).unwrap().id);
        most = most.max(s.segment_count());
    }
    // Each segment holds at most the learning limit: the patterns need about as many segments
    // as at the start, give or take how the holes fall.
    assert!(
        most <= at_start + at_start / 2 + 1,
        "segments grew from {at_start} to {most} at a constant 60 patterns"
    );
    let plain = PlainIndex::build(&s);
    let query = Query {
        active: pattern(&rng.distinct_below(2048, 40), 2048),
        threshold: None,
        limit: 100,
    };
    assert_eq!(s.recognize(&query), plain.recognize(&s, &query));
}
