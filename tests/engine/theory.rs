//! The engine against the theory: observed false matches and misses under noise, for codes and
//! for encoded records, agree with the probabilities it reports.

use crate::helpers::*;
use dendrite::engine::*;
use dendrite::rng::Rng;
use dendrite::theory;
use dendrite::workload::noisy;

#[test]
fn the_observed_false_match_rate_agrees_with_the_theory() {
    // One pattern per neuron: a segment of 24 synapses at theta 4 falsely matches a random input
    // of 40 bits with probability about 1e-3.
    let spec = SpaceSpec {
        threshold: Some(4),
        max_false_match: Some(0.5),
        ..standard_spec()
    };
    let mut s = space(spec);
    let mut rng = Rng::new(77);
    let neurons = 200;
    for i in 0..neurons {
        store_random(&mut s, &format!("n{i}"), &mut rng).unwrap();
    }
    let per_neuron = theory::segment_false_match(2048, 40, 24, 4).value();
    let queries = 5_000;
    let mut false_matches = 0u64;
    let mut predicted = 0.0;
    for _ in 0..queries {
        let answer = s
            .recognize(&query(pattern(&rng.distinct_below(2048, 40), 2048)))
            .unwrap();
        false_matches += answer.matches.len() as u64;
        predicted += answer.expected_false_matches.value();
    }
    let trials = (neurons * queries) as f64;
    assert!((predicted - trials * per_neuron).abs() < 1e-6 * predicted);
    let sd = (trials * per_neuron * (1.0 - per_neuron)).sqrt();
    assert!(
        (false_matches as f64 - predicted).abs() <= 3.2905 * sd,
        "{false_matches} false matches, {predicted:.1} predicted (sd {sd:.1})"
    );
}

#[test]
fn the_observed_miss_rate_under_noise_agrees_with_the_theory() {
    // theta 18 of 24 synapses, 8 of 40 bits replaced: misses with probability about 0.08.
    let spec = SpaceSpec {
        threshold: Some(18),
        ..standard_spec()
    };
    let mut s = space(spec);
    let mut rng = Rng::new(78);
    let stored: Vec<(String, Vec<u32>)> = (0..200)
        .map(|i| {
            let cells = rng.distinct_below(2048, 40);
            store(&mut s, &format!("n{i}"), &pattern(&cells, 2048), None).unwrap();
            (format!("n{i}"), cells)
        })
        .collect();
    let p = theory::false_miss(40, 24, 8, 18).value();
    let trials = 5_000;
    let mut misses = 0u64;
    for _ in 0..trials {
        let (neuron, cells) = &stored[rng.below(stored.len() as u64) as usize];
        let input = pattern(&noisy(&mut rng, 2048, cells, 8), 2048);
        let answer = s.recognize(&query(input)).unwrap();
        misses += u64::from(!answer.matches.iter().any(|m| m.neuron.as_str() == neuron));
    }
    let sd = (trials as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (misses as f64 - trials as f64 * p).abs() <= 3.2905 * sd,
        "{misses} misses of {trials}, p = {p}"
    );
}

/// A space whose records have a 16-bit temperature, an 8-bit device and a 16-bit load.
fn encoded_space() -> Space {
    let encoder = serde_json::from_value(serde_json::json!({"fields": {
        "temperature": {"type": "number", "active_bits": 16, "resolution": 1.0},
        "device": {"type": "category", "active_bits": 8},
        "load": {"type": "number", "active_bits": 16, "resolution": 0.5}}}))
    .unwrap();
    space(SpaceSpec {
        input_size: 2048,
        synapses_per_pattern: Some(24),
        threshold: Some(14),
        seed: Some(5),
        encoder: Some(encoder),
        ..SpaceSpec::default()
    })
}

#[test]
fn moving_one_field_misses_a_stored_record_as_often_as_the_theory_says() {
    // Each record on a neuron of its own; then each is queried with its temperature moved by k
    // buckets, which replaces k of its 40 bits. The theory's miss probability for k noise bits
    // must fall inside the 99.9% interval of the observed miss rate.
    let mut s = encoded_space();
    let encoder = s.params().encoder.clone().unwrap();
    let record = |i: u32, temperature: f64| serde_json::json!({"temperature": temperature, "device": format!("d{i}"), "load": f64::from(i) * 40.0});
    let trials = 600u32;
    for i in 0..trials {
        let code = encoder.encode(&record(i, f64::from(i) * 100.0)).unwrap();
        store(&mut s, &format!("n{i}"), &pattern(&code.active, 2048), None).unwrap();
    }
    let (a, synapses, theta) = (40, 24, 14);
    // The shift whose predicted miss is nearest one half, where a wrong model shows most.
    let k = (0..=16u64)
        .min_by(|&x, &y| {
            let off = |k| (theory::false_miss(a, synapses, k, theta).value() - 0.5).abs();
            off(x).total_cmp(&off(y))
        })
        .unwrap();
    let predicted = theory::false_miss(a, synapses, k, theta).value();
    let mut missed = 0u64;
    for i in 0..trials {
        let moved = f64::from(i) * 100.0 + k as f64;
        let code = encoder.encode(&record(i, moved)).unwrap();
        let answer = s.recognize(&query(pattern(&code.active, 2048))).unwrap();
        let own = format!("n{i}");
        missed += u64::from(!answer.matches.iter().any(|m| m.neuron.as_str() == own));
    }
    let (low, high) = theory::wilson_interval(missed, u64::from(trials), 3.29);
    assert!(
        (low..=high).contains(&predicted),
        "k = {k}: missed {missed} of {trials}, [{low:.3}, {high:.3}], predicted {predicted:.3}"
    );
    // And the report's recognition radius keeps a moved record recognised: a miss rate of at
    // most 1% predicted, so at most a handful observed.
    let radius = s.report().encoder.unwrap().fields["temperature"]
        .recognition_radius
        .unwrap();
    let mut missed_at_radius = 0;
    for i in 0..trials {
        let moved = f64::from(i) * 100.0 + radius;
        let code = encoder.encode(&record(i, moved)).unwrap();
        let answer = s.recognize(&query(pattern(&code.active, 2048))).unwrap();
        let own = format!("n{i}");
        missed_at_radius += u32::from(!answer.matches.iter().any(|m| m.neuron.as_str() == own));
    }
    // 1% of 600 is 6 expected at most; 15 would be 3.7 standard deviations above it.
    assert!(
        missed_at_radius <= 15,
        "{missed_at_radius} missed at the radius {radius}"
    );
}
