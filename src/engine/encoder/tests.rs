//! The encoders' properties, as their users rely on them: overlap that falls with distance,
//! exactly a share of distinct bits per field, cycles that wrap, local calendars, and codes that
//! never change (golden vectors).

use super::*;
use crate::rng::Rng;
use serde_json::json;

fn encoder(spec: Value, input_size: u32, seed: u64) -> Encoder {
    let spec: EncoderSpec = serde_json::from_value(spec).expect("a spec");
    Encoder::new(&spec, input_size, seed).expect("a valid spec")
}

fn overlap(x: &[u32], y: &[u32]) -> usize {
    x.iter().filter(|bit| y.contains(bit)).count()
}

fn code(encoder: &Encoder, record: Value) -> Code {
    encoder.encode(&record).expect("an encodable record")
}

/// The standard number field of htm.core's RDSE tests: 2000 bits, 8% active, radius 12.
fn rdse() -> Encoder {
    encoder(
        json!({"fields": {"x": {"type": "number", "active_bits": 160, "radius": 12}}}),
        2000,
        42,
    )
}

#[test]
fn consecutive_buckets_share_all_but_one_bit() {
    let encoder = rdse();
    let resolution = 12.0 / 160.0;
    let (mut exact, mut total) = (0, 0);
    for i in -500..500 {
        let x = f64::from(i) * resolution + resolution / 2.0;
        let here = code(&encoder, json!({ "x": x })).active;
        let next = code(&encoder, json!({ "x": x + resolution })).active;
        assert_eq!(here.len(), 160);
        let shared = overlap(&here, &next);
        // A probe moved by a collision may cost one more bit.
        assert!(shared >= 158, "{x}: {shared}");
        exact += usize::from(shared == 159);
        total += 1;
    }
    assert!(exact * 100 >= total * 90, "{exact} of {total}");
}

#[test]
fn values_a_radius_apart_share_only_chance() {
    let encoder = rdse();
    let mut overlaps = Vec::new();
    for i in 0..400 {
        let x = f64::from(i) * 0.37;
        let here = code(&encoder, json!({ "x": x })).active;
        let far = code(&encoder, json!({ "x": x + 12.0 })).active;
        overlaps.push(overlap(&here, &far) as f64 / 160.0);
    }
    // Chance is a_f / n = 0.08; htm.core's bounds: below 0.15 always, 0.10 on average.
    let mean = overlaps.iter().sum::<f64>() / overlaps.len() as f64;
    assert!(overlaps.iter().all(|&o| o < 0.15), "{overlaps:?}");
    assert!(mean < 0.10, "{mean}");
    // Halfway, half the bits.
    let here = code(&encoder, json!({ "x": 0.01 })).active;
    let half = code(&encoder, json!({ "x": 6.01 })).active;
    assert!((78..=84).contains(&overlap(&here, &half)));
}

#[test]
fn another_seed_or_field_name_gives_another_code() {
    let spec = json!({"fields": {"x": {"type": "number", "active_bits": 40, "resolution": 1}}});
    let one = code(&encoder(spec.clone(), 2048, 1), json!({"x": 5})).active;
    let two = code(&encoder(spec, 2048, 2), json!({"x": 5})).active;
    let renamed = encoder(
        json!({"fields": {"y": {"type": "number", "active_bits": 40, "resolution": 1}}}),
        2048,
        1,
    );
    let three = code(&renamed, json!({"y": 5})).active;
    assert!(overlap(&one, &two) < 8);
    assert!(overlap(&one, &three) < 8);
}

#[test]
fn a_cyclic_field_wraps() {
    let encoder = encoder(
        json!({"fields": {"heading": {"type": "number", "active_bits": 8, "resolution": 5, "period": 360}}}),
        2048,
        3,
    );
    let at = |x: f64| code(&encoder, json!({ "heading": x })).active;
    assert!(overlap(&at(357.0), &at(2.0)) >= 6);
    assert_eq!(at(10.0), at(370.0));
    assert_eq!(at(10.0), at(-350.0));
    assert!(overlap(&at(0.0), &at(180.0)) < 3);
}

#[test]
fn a_record_has_exactly_its_shares_of_distinct_bits() {
    let encoder = encoder(
        json!({"fields": {
            "temperature": {"type": "number", "active_bits": 16, "resolution": 0.25},
            "device": {"type": "category", "active_bits": 6},
            "time": {"type": "time", "timezone": "Europe/Berlin",
                     "time_of_day": {"active_bits": 6}, "weekend": {"active_bits": 2}},
            "note": {"type": "text", "active_bits": 4},
            "embedding": {"type": "vector", "dimensions": 8, "active_bits": 6}}}),
        // A small space, so fields collide often and the probing shows.
        64,
        9,
    );
    assert_eq!(encoder.active_bits(), 40);
    let names: Vec<&str> = encoder.field_names().collect();
    assert_eq!(
        names,
        ["device", "embedding", "note", "temperature", "time"]
    );
    let mut rng = Rng::new(5);
    let notes = ["quiet", "loud hum", "rattle and hum"];
    for i in 0..300 {
        let note = notes[rng.below(3) as usize];
        let record = json!({
            "temperature": f64::from(i) * 0.1 - 15.0,
            "device": format!("pump-{}", rng.below(10)),
            "time": format!("2026-03-{:02}T{:02}:15:00Z", 1 + rng.below(28), rng.below(24)),
            "note": note,
            "embedding": (0..8).map(|_| rng.below(100) as f64 - 50.0).collect::<Vec<_>>(),
        });
        let code = code(&encoder, record);
        assert_eq!(code.active.len(), 40, "{code:?}");
        assert!(code.active.windows(2).all(|w| w[0] < w[1]));
        let shares: Vec<usize> = code.fields.iter().map(Vec::len).collect();
        assert_eq!(shares, [6, 6, 4, 16, 8]);
    }
}

#[test]
fn a_missing_or_null_field_gives_no_bits_and_nesting_is_dotted() {
    let encoder = encoder(
        json!({"fields": {
            "engine.temperature": {"type": "number", "active_bits": 10, "resolution": 1},
            "engine.rpm": {"type": "number", "active_bits": 10, "resolution": 100},
            "site": {"type": "category", "active_bits": 5}}}),
        2048,
        0,
    );
    let nested = code(&encoder, json!({"engine": {"temperature": 80, "rpm": 900}}));
    let dotted = code(
        &encoder,
        json!({"engine.temperature": 80, "engine.rpm": 900}),
    );
    let mixed = code(
        &encoder,
        json!({"engine": {"rpm": 900}, "engine.temperature": 80}),
    );
    assert_eq!(nested, dotted);
    assert_eq!(nested, mixed);
    assert_eq!(nested.active.len(), 20);
    assert!(nested.fields[2].is_empty(), "site was not given");
    let partial = code(
        &encoder,
        json!({"engine": {"temperature": 80, "rpm": null}, "site": null}),
    );
    assert_eq!(partial.active.len(), 10);
    assert_eq!(partial.fields[1], nested.fields[1]);
    assert_eq!(code(&encoder, json!({"engine": null})).active.len(), 0);
}

#[test]
fn bad_records_are_refused_naming_the_field() {
    let encoder = encoder(
        json!({"fields": {
            "engine.temperature": {"type": "number", "active_bits": 10, "resolution": 1},
            "site": {"type": "category", "active_bits": 5},
            "at": {"type": "time", "timezone": "UTC", "time_of_day": {"active_bits": 5}},
            "v": {"type": "vector", "dimensions": 3, "active_bits": 5},
            "note": {"type": "text", "active_bits": 5}}}),
        2048,
        0,
    );
    let refusal = |record: Value| encoder.encode(&record).unwrap_err().to_string();
    assert_eq!(
        refusal(json!([1, 2])),
        "a record is a JSON object of field values"
    );
    assert_eq!(
        refusal(json!({"engine": {"pressure": 1}})),
        "engine.pressure is not a field of this space's encoder"
    );
    assert_eq!(
        refusal(json!({"engine": 5})),
        "engine is not a field of this space's encoder"
    );
    assert_eq!(
        refusal(json!({"engine": {"temperature": 1}, "engine.temperature": 2})),
        "engine.temperature is given twice (nested and dotted)"
    );
    assert_eq!(
        refusal(json!({"engine.temperature": "hot"})),
        "engine.temperature must be a number"
    );
    assert!(refusal(json!({"engine.temperature": 1e300})).starts_with("engine.temperature: "));
    assert_eq!(
        refusal(json!({"site": 1.5})),
        "site must be a string, an integer or a boolean"
    );
    assert!(refusal(json!({"at": "noon"})).contains("is not an RFC 3339 timestamp"));
    assert_eq!(
        refusal(json!({"at": 5})),
        "at must be an RFC 3339 timestamp string"
    );
    assert_eq!(
        refusal(json!({"v": [1, 2]})),
        "v: has 2 values, not dimensions (3)"
    );
    assert_eq!(
        refusal(json!({"v": [1, "x", 2]})),
        "v must be an array of `dimensions` numbers"
    );
    assert_eq!(
        refusal(json!({"v": [1.7e308, 1.7e308, 1.7e308]})),
        "v: its values are too large to project"
    );
    let many_words: String = (0..3000).map(|i| format!("w{i} ")).collect();
    assert!(
        refusal(json!({ "note": many_words }))
            .starts_with("note: has more distinct words than fit")
    );
}

#[test]
fn bad_specs_are_refused_naming_the_setting() {
    let refusal = |spec: Value, n: u32| {
        let spec: EncoderSpec = serde_json::from_value(spec).unwrap();
        Encoder::new(&spec, n, 0).unwrap_err().to_string()
    };
    let number = json!({"type": "number", "active_bits": 4, "resolution": 1});
    assert_eq!(
        refusal(json!({"fields": {}}), 64),
        "fields: an encoder needs at least one field"
    );
    assert_eq!(
        refusal(json!({"fields": {"a": number, "a.b": number}}), 64),
        "fields.a.b: lies inside field a: a field is a value or an object of fields, not both"
    );
    assert!(refusal(json!({"fields": {"a b": number}}), 64).starts_with("fields.a b: "));
    assert_eq!(
        refusal(
            json!({"fields": {"a": {"type": "category", "active_bits": 65}}}),
            64
        ),
        "fields.a.active_bits: must be in 1..=64 (input_size), not 65"
    );
    assert_eq!(
        refusal(
            json!({"fields": {"a": {"type": "category", "active_bits": 40}, "b": {"type": "category", "active_bits": 40}}}),
            64
        ),
        "fields: the fields' active_bits sum to 80, more than input_size (64)"
    );
    assert_eq!(
        refusal(
            json!({"fields": {"t": {"type": "time", "timezone": "Moon/Base", "weekend": {"active_bits": 2}}}}),
            64
        ),
        "fields.t.timezone: \"Moon/Base\" is not an IANA time zone name"
    );
    assert_eq!(
        refusal(
            json!({"fields": {"t": {"type": "time", "timezone": "UTC"}}}),
            64
        ),
        "fields.t: a time field needs at least one of time_of_day, hour_of_week, weekend, day_of_year"
    );
    assert_eq!(
        refusal(
            json!({"fields": {"t": {"type": "time", "timezone": "UTC", "weekend": {"active_bits": 2, "resolution": 1}}}}),
            64
        ),
        "fields.t.weekend: weekend is a flag: it takes active_bits only"
    );
    assert_eq!(
        refusal(
            json!({"fields": {"t": {"type": "time", "timezone": "UTC", "active_bits": 5, "weekend": {"active_bits": 2}}}}),
            64
        ),
        "fields.t.active_bits: is 5, but its components' active_bits sum to 2"
    );
    assert_eq!(
        refusal(
            json!({"fields": {"v": {"type": "vector", "dimensions": 2, "active_bits": 2, "mean": [1]}}}),
            64
        ),
        "fields.v.mean: has 1 values, not dimensions (2)"
    );
    assert!(
        refusal(
            json!({"fields": {"v": {"type": "text", "active_bits": 2}}}),
            1 << 20
        )
        .contains("need input_size at most 65536")
    );
    assert_eq!(
        refusal(
            json!({"fields": {"x": {"type": "number", "active_bits": 4}}}),
            64
        ),
        "fields.x: needs a resolution (or a radius)"
    );
    let unknown: Result<EncoderSpec, _> =
        serde_json::from_value(json!({"fields": {"x": {"type": "colour", "active_bits": 4}}}));
    assert!(unknown.is_err());
}

#[test]
fn the_stored_spec_fills_in_defaults_and_compares_equal_across_spellings() {
    let by_radius = encoder(
        json!({"fields": {"x": {"type": "number", "active_bits": 8, "radius": 2},
                          "t": {"type": "time", "timezone": "UTC", "time_of_day": {"active_bits": 6}}}}),
        2048,
        0,
    );
    let by_resolution = encoder(
        json!({"fields": {"x": {"type": "number", "active_bits": 8, "resolution": 0.25},
                          "t": {"type": "time", "timezone": "UTC", "active_bits": 6,
                                "time_of_day": {"active_bits": 6, "resolution": 40}}}}),
        2048,
        0,
    );
    assert_eq!(by_radius, by_resolution);
    assert_eq!(
        serde_json::to_value(by_radius.spec()).unwrap(),
        json!({"fields": {
            "t": {"type": "time", "timezone": "UTC", "active_bits": 6,
                  "time_of_day": {"active_bits": 6, "resolution": 40.0}},
            "x": {"type": "number", "active_bits": 8, "resolution": 0.25}}})
    );
}

#[test]
fn categories_are_equal_or_overlap_by_chance() {
    let encoder = encoder(
        json!({"fields": {"device": {"type": "category", "active_bits": 40}}}),
        2048,
        11,
    );
    let of = |value: Value| code(&encoder, json!({ "device": value })).active;
    assert_eq!(of(json!("pump-3")), of(json!("pump-3")));
    assert_ne!(of(json!("1")), of(json!(1)));
    assert_ne!(of(json!(1)), of(json!(true)));
    let total: usize = (0..500)
        .map(|i| overlap(&of(json!(format!("d{i}"))), &of(json!(format!("e{i}")))))
        .sum();
    // a_f^2 / n = 0.78 on average; 500 pairs give a standard error near 0.04.
    let mean = total as f64 / 500.0;
    assert!((0.6..1.0).contains(&mean), "{mean}");
}

#[test]
fn hour_of_week_has_no_jump_at_midnight_and_zones_decide_the_day() {
    let encoder = encoder(
        json!({"fields": {"at": {"type": "time", "timezone": "Europe/Berlin",
                                 "hour_of_week": {"active_bits": 12, "resolution": 1}}}}),
        2048,
        4,
    );
    let at = |t: &str| code(&encoder, json!({ "at": t })).active;
    // One hour apart across Sunday's midnight, and one hour apart on a Wednesday: alike.
    let across = overlap(&at("2026-03-01T23:30:00"), &at("2026-03-02T00:30:00"));
    let midweek = overlap(&at("2026-03-04T11:30:00"), &at("2026-03-04T12:30:00"));
    assert!(across >= 10 && midweek >= 10, "{across} {midweek}");
    // The same instant given with an offset and as Berlin's wall clock.
    assert_eq!(at("2026-07-01T06:30:00Z"), at("2026-07-01T08:30:00"));
    // The day of the week is Berlin's, not UTC's.
    assert_eq!(at("2026-03-06T23:30:00Z"), at("2026-03-07T00:30:00"));
}

/// A random unit vector, and one at cosine `rho` from it.
fn pair(rng: &mut Rng, dimensions: usize, rho: f64) -> (Vec<f64>, Vec<f64>) {
    let mut normal = || {
        let u1 = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let unit = |v: Vec<f64>| {
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(|x| x / norm).collect::<Vec<f64>>()
    };
    let x = unit((0..dimensions).map(|_| normal()).collect());
    let z: Vec<f64> = (0..dimensions).map(|_| normal()).collect();
    let along: f64 = z.iter().zip(&x).map(|(a, b)| a * b).sum();
    let orthogonal = unit(z.iter().zip(&x).map(|(z, x)| z - along * x).collect());
    let y = x
        .iter()
        .zip(&orthogonal)
        .map(|(x, o)| rho * x + (1.0 - rho * rho).sqrt() * o)
        .collect();
    (x, y)
}

fn embedding_encoder() -> Encoder {
    encoder(
        json!({"fields": {"e": {"type": "vector", "dimensions": 384, "active_bits": 40}}}),
        2048,
        21,
    )
}

#[test]
fn vector_overlap_follows_the_bivariate_normal_formula() {
    let encoder = embedding_encoder();
    let mut rng = Rng::new(8);
    for (rho, expected) in [(0.5, 6.7), (0.9, 23.1)] {
        let trials = 300;
        let total: usize = (0..trials)
            .map(|_| {
                let (x, y) = pair(&mut rng, 384, rho);
                overlap(
                    &code(&encoder, json!({ "e": x })).active,
                    &code(&encoder, json!({ "e": y })).active,
                )
            })
            .sum();
        let mean = total as f64 / f64::from(trials);
        assert!(
            (mean - expected).abs() <= 0.1 * expected,
            "rho {rho}: {mean} against {expected}"
        );
        assert!((meaning::expected_shared_bits(40.0, 2048.0, rho) - expected).abs() < 0.06);
    }
}

/// ln C(n, k).
fn ln_choose(n: u64, k: u64) -> f64 {
    (0..k)
        .map(|i| ((n - i) as f64).ln() - ((i + 1) as f64).ln())
        .sum()
}

#[test]
fn unrelated_vectors_overlap_as_random_codes_do() {
    // Overlaps of 2,000 unrelated pairs against the hypergeometric (2048 bits, 40 and 40), by
    // a chi-square test over 0, 1, 2, 3 and 4 or more shared bits (4 degrees of freedom; the
    // 99.9% point is 18.47). The seed is fixed, so the test is deterministic.
    let encoder = embedding_encoder();
    let mut rng = Rng::new(12);
    let trials = 2_000;
    let mut observed = [0u32; 5];
    for _ in 0..trials {
        let (x, y) = pair(&mut rng, 384, 0.0);
        let shared = overlap(
            &code(&encoder, json!({ "e": x })).active,
            &code(&encoder, json!({ "e": y })).active,
        );
        observed[shared.min(4)] += 1;
    }
    let pmf = |k: u64| (ln_choose(40, k) + ln_choose(2008, 40 - k) - ln_choose(2048, 40)).exp();
    let mut expected: Vec<f64> = (0..4).map(|k| pmf(k) * f64::from(trials)).collect();
    expected.push(f64::from(trials) - expected.iter().sum::<f64>());
    let chi_square: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(&o, e)| (f64::from(o) - e).powi(2) / e)
        .sum();
    assert!(
        chi_square < 18.47,
        "{observed:?} against {expected:?}: {chi_square}"
    );
}

#[test]
fn a_mean_vector_centres_inputs_that_share_a_bias() {
    let mean = vec![10.0; 384];
    let centred = encoder(
        json!({"fields": {"e": {"type": "vector", "dimensions": 384, "active_bits": 40, "mean": mean}}}),
        2048,
        21,
    );
    let plain = embedding_encoder();
    let mut rng = Rng::new(2);
    let (mut with, mut without) = (0, 0);
    for _ in 0..50 {
        let (x, y) = pair(&mut rng, 384, 0.0);
        let biased = |v: &[f64]| v.iter().map(|x| x + 10.0).collect::<Vec<f64>>();
        let (bx, by) = (json!({ "e": biased(&x) }), json!({ "e": biased(&y) }));
        with += overlap(
            &code(&centred, bx.clone()).active,
            &code(&centred, by.clone()).active,
        );
        without += overlap(&code(&plain, bx).active, &code(&plain, by).active);
    }
    // Uncentred, the shared bias picks the same outputs every time.
    assert!(with < 100 && without > 1000, "{with} {without}");
}

#[test]
fn texts_sharing_words_overlap_more() {
    let encoder = encoder(
        json!({"fields": {"note": {"type": "text", "active_bits": 40}}}),
        2048,
        0,
    );
    let of = |text: &str| code(&encoder, json!({ "note": text })).active;
    let sky = of("The sky is beautiful today");
    let sun = of("The sun is beautiful today");
    let other = of("Compressor three reports a pressure fault");
    assert_eq!(sky.len(), 40);
    assert!(overlap(&sky, &sun) > overlap(&sky, &other) + 10);
    assert_eq!(of("THE SKY, is beautiful today!"), sky);
    assert!(of("  ,;").is_empty());
}

#[test]
fn golden_vectors_pin_every_type() {
    // These codes are stored in databases: if this test fails, the hash or a field's rule
    // changed, and every stored record would stop matching its queries.
    let encoder = encoder(
        json!({"fields": {
            "temperature": {"type": "number", "active_bits": 4, "resolution": 0.5},
            "heading": {"type": "number", "active_bits": 3, "resolution": 10, "period": 360},
            "device": {"type": "category", "active_bits": 3},
            "time": {"type": "time", "timezone": "Europe/Berlin",
                     "time_of_day": {"active_bits": 2}, "hour_of_week": {"active_bits": 2},
                     "weekend": {"active_bits": 1}, "day_of_year": {"active_bits": 2}},
            "embedding": {"type": "vector", "dimensions": 4, "active_bits": 3},
            "note": {"type": "text", "active_bits": 3}}}),
        2048,
        7,
    );
    let code = code(
        &encoder,
        json!({"temperature": 21.3, "heading": 275, "device": "pump-3",
               "time": "2026-12-03T08:15:00+01:00", "embedding": [0.5, -1.0, 0.25, 2.0],
               "note": "bearing noise"}),
    );
    let fields: Vec<(&str, &[u32])> = encoder
        .field_names()
        .zip(code.fields.iter().map(Vec::as_slice))
        .collect();
    let expected: Vec<(&str, &[u32])> = vec![
        ("device", &[583, 1563, 1630]),
        ("embedding", &[5, 28, 33]),
        ("heading", &[1005, 1403, 1572]),
        ("note", &[712, 1216, 1898]),
        ("temperature", &[471, 981, 1468, 1892]),
        ("time", &[150, 268, 730, 1074, 1413, 1485, 1641]),
    ];
    assert_eq!(fields, expected);
}

#[test]
fn the_sorted_bits_read_off_the_bitset_are_the_fields_bits_sorted() {
    // Below and above the size where the bitset is scanned rather than the fields' bits sorted.
    for input_size in [2048, 1 << 17] {
        let encoder = encoder(
            json!({"fields": {"a": {"type": "category", "active_bits": 30},
                              "b": {"type": "number", "active_bits": 30, "resolution": 1}}}),
            input_size,
            1,
        );
        for i in 0..50 {
            let code = code(&encoder, json!({"a": i, "b": i}));
            let mut plain: Vec<u32> = code.fields.concat();
            plain.sort_unstable();
            assert_eq!(code.active, plain);
            assert_eq!(code.active.len(), 60);
        }
    }
}

#[test]
fn a_record_s_texts_share_one_budget_of_words() {
    // At 2048 inputs a record's texts may hold 2^22 / 2048 = 2048 distinct words in all.
    let encoder = encoder(
        json!({"fields": {"a": {"type": "text", "active_bits": 4},
                          "b": {"type": "text", "active_bits": 4}}}),
        2048,
        0,
    );
    let words = |prefix: &str| {
        (0..1500)
            .map(|i| format!("{prefix}{i} "))
            .collect::<String>()
    };
    assert!(encoder.encode(&json!({"a": words("x")})).is_ok());
    let refused = encoder
        .encode(&json!({"a": words("x"), "b": words("y")}))
        .unwrap_err()
        .to_string();
    assert!(
        refused.starts_with("b: has more distinct words than fit"),
        "{refused}"
    );
    assert!(refused.contains("at most 2048 in all"), "{refused}");
}
