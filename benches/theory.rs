//! The cost of the theory on the query path: one segment false-match probability (eq. 3), which
//! recognition evaluates for every match's p-value; and the most a request can make the theory
//! cost: a space's theory and an analysis at the largest parameters the service accepts.

use criterion::{Criterion, criterion_group, criterion_main};
use dendrite::analysis::{Analysis, Parameters};
use dendrite::engine::{Name, Space, SpaceParams, SpaceSpec};
use dendrite::theory;
use dendrite::theory::limits::{MAX_ACTIVE_BITS, MAX_INPUT_SIZE, MAX_SYNAPSES_PER_PATTERN};
use std::hint::black_box;

fn segment_false_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment_false_match");
    for (name, n, a, s, theta) in [
        (
            "n65536_a2000_s64_theta32",
            65_536u64,
            2_000u64,
            64u64,
            32u64,
        ),
        ("n2048_a40_s24_theta12", 2_048, 40, 24, 12),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                theory::segment_false_match(
                    black_box(n),
                    black_box(a),
                    black_box(s),
                    black_box(theta),
                )
            })
        });
    }
    group.finish();
}

/// The costliest accepted requests: creating a space with default threshold at the bounds, and
/// `GET /v1/theory` with the exact union model at its placement bound.
fn worst_accepted(c: &mut Criterion) {
    let mut group = c.benchmark_group("worst_accepted");
    group.sample_size(10);
    let (n, a, s) = (
        MAX_INPUT_SIZE as u32,
        MAX_ACTIVE_BITS as u32,
        MAX_SYNAPSES_PER_PATTERN as u32,
    );
    group.bench_function("create_space_at_the_bounds", |b| {
        b.iter(|| {
            let spec = SpaceSpec {
                input_size: n,
                active_bits: a,
                synapses_per_pattern: Some(s),
                max_false_match: Some(1.0),
                ..SpaceSpec::default()
            };
            Space::new(
                Name::parse("x").unwrap(),
                SpaceParams::new(black_box(&spec)).unwrap(),
            )
        })
    });
    for (name, n, a, s) in [
        ("analysis_n65536_a4096_s1024", 65_536, 4_096, 1_024),
        (
            "analysis_at_the_bounds",
            u64::from(n),
            u64::from(a),
            u64::from(s),
        ),
    ] {
        let parameters = Parameters {
            n,
            a,
            s,
            theta: s,
            patterns: 48,
            segments: 1,
            noise_bits: a / 2,
            target: Some(1e-300),
        };
        group.bench_function(name, |b| b.iter(|| Analysis::of(black_box(&parameters))));
    }
    group.finish();
}

criterion_group!(benches, segment_false_match, worst_accepted);
criterion_main!(benches);
