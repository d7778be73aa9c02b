//! What every engine test builds on: names, patterns and spaces, and a store planned and applied
//! as the service does around its commit.

use dendrite::engine::*;
use dendrite::rng::Rng;

pub fn name(s: &str) -> Name {
    Name::parse(s).unwrap()
}

pub fn pattern(cells: &[u32], n: u32) -> Pattern {
    Pattern::parse(&cells.iter().map(|&c| i64::from(c)).collect::<Vec<_>>(), n).unwrap()
}

pub fn space(spec: SpaceSpec) -> Space {
    Space::new(name("test"), SpaceParams::new(&spec).unwrap())
}

pub fn standard_spec() -> SpaceSpec {
    SpaceSpec {
        input_size: 2048,
        active_bits: 40,
        synapses_per_pattern: Some(24),
        threshold: Some(12),
        ..SpaceSpec::default()
    }
}

/// Plans and applies one store, as the service does around its commit.
pub fn store(
    space: &mut Space,
    neuron: &str,
    active: &Pattern,
    id: Option<&str>,
) -> Result<PatternView, EngineError> {
    let request = StoreRequest {
        neuron: name(neuron),
        active: active.clone(),
        id: id.map(name),
        metadata: None,
    };
    let planned = space.plan_store(&[request]).map_err(|(_, e)| e)?.remove(0);
    if let Planned::New(plan) = &planned {
        space.apply_store(plan.clone()).unwrap();
    }
    space.pattern(planned.neuron(), planned.id())
}

/// Stores a fresh random pattern of the standard shape (40 of 2048 bits).
pub fn store_random(
    space: &mut Space,
    neuron: &str,
    rng: &mut Rng,
) -> Result<PatternView, EngineError> {
    store(
        space,
        neuron,
        &pattern(&rng.distinct_below(2048, 40), 2048),
        None,
    )
}

pub fn query(active: Pattern) -> Query {
    Query {
        active,
        threshold: None,
        limit: 1000,
    }
}
