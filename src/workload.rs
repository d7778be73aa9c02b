//! The standard workload (the README's Performance section): neurons × patterns of `a` distinct
//! uniformly random bits of `n` to store, then queries, half a stored pattern with a fraction of
//! its bits replaced by other random bits (rounded as `theory::noise_bits` rounds), half a fresh
//! random pattern. Benchmarks and load scripts share this
//! definition so that their figures compare across issues.

use crate::rng::Rng;
use crate::theory;

/// The shape of a workload; [`Workload::standard`] is the one every figure quotes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkloadSpec {
    pub n: u32,
    pub a: u32,
    pub neurons: usize,
    pub patterns_per_neuron: usize,
    pub queries: usize,
    pub noise: f64,
    pub seed: u64,
}

impl WorkloadSpec {
    pub const STANDARD: WorkloadSpec = WorkloadSpec {
        n: 2048,
        a: 40,
        neurons: 1000,
        patterns_per_neuron: 100,
        queries: 10_000,
        noise: 0.2,
        seed: 1,
    };
}

/// A pattern to store on a neuron.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreItem {
    pub neuron: String,
    pub active: Vec<u32>,
}

/// A query, with the neuron whose pattern it is a noisy copy of (None for a random input).
#[derive(Clone, Debug, PartialEq)]
pub struct QueryItem {
    pub active: Vec<u32>,
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    pub stores: Vec<StoreItem>,
    pub queries: Vec<QueryItem>,
}

/// Neuron names as the shared generator writes them: `n000017`.
pub fn neuron_name(i: usize) -> String {
    format!("n{i:06}")
}

impl Workload {
    pub fn standard() -> Workload {
        Workload::generate(&WorkloadSpec::STANDARD)
    }

    pub fn generate(spec: &WorkloadSpec) -> Workload {
        let mut rng = Rng::new(spec.seed);
        let mut stores = Vec::with_capacity(spec.neurons * spec.patterns_per_neuron);
        for i in 0..spec.neurons {
            for _ in 0..spec.patterns_per_neuron {
                stores.push(StoreItem {
                    neuron: neuron_name(i),
                    active: rng.distinct_below(spec.n, spec.a),
                });
            }
        }
        let replaced = theory::noise_bits(spec.noise, spec.a.into()) as usize;
        let queries = (0..spec.queries)
            .map(|q| {
                if q % 2 == 0 && !stores.is_empty() {
                    let stored = &stores[rng.below(stores.len() as u64) as usize];
                    QueryItem {
                        active: noisy(&mut rng, spec.n, &stored.active, replaced),
                        source: Some(stored.neuron.clone()),
                    }
                } else {
                    QueryItem {
                        active: rng.distinct_below(spec.n, spec.a),
                        source: None,
                    }
                }
            })
            .collect();
        Workload { stores, queries }
    }
}

/// `active` with `replaced` of its bits swapped for bits it did not have, sorted.
pub fn noisy(rng: &mut Rng, n: u32, active: &[u32], replaced: usize) -> Vec<u32> {
    let mut kept = rng.choose(active, active.len() - replaced);
    let mut fresh = Vec::with_capacity(replaced);
    while fresh.len() < replaced {
        let bit = rng.below(u64::from(n)) as u32;
        if !active.contains(&bit) && !fresh.contains(&bit) {
            fresh.push(bit);
        }
    }
    kept.extend(fresh);
    kept.sort_unstable();
    kept
}
