//! The cost of the theory on the query path: one segment false-match probability (eq. 3), which
//! recognition evaluates for every match's p-value.

use criterion::{Criterion, criterion_group, criterion_main};
use dendrite::theory;
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

criterion_group!(benches, segment_false_match);
criterion_main!(benches);
