//! How full a space's segments are, kept as segments change, so that a dashboard polling every
//! second pays O(1) per space instead of a pass over every segment.

use serde::Serialize;
use std::collections::BTreeMap;

/// Segments by how many patterns they hold, and how many are at capacity.
#[derive(Clone, Debug, Default)]
pub(super) struct Fill {
    /// Segments by their number of patterns; no entry for zero.
    by_patterns: BTreeMap<u32, u64>,
    /// Segments with at least `full_from` synapses.
    at_capacity: u64,
    /// The synapse count from which a segment is at capacity: one more random pattern would
    /// most likely take it past the learning limit, so the next store opens a new segment.
    full_from: u32,
}

/// A space's segments, how full: what a dashboard shows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FillReport {
    /// Patterns per segment, on average; 0 without segments.
    pub mean_patterns_per_segment: f64,
    pub max_patterns_per_segment: u32,
    /// Segments that would most likely not take one more random pattern.
    pub segments_at_capacity: u64,
}

impl Fill {
    /// For a space of `input_size` bits whose patterns give `synapses_per_pattern` synapses and
    /// whose segments may hold `limit` synapses. The expected union of a segment of X synapses
    /// with one more random pattern's s is n − (n − X)(1 − s/n); it passes the limit from
    /// X > n − (n − limit) / (1 − s/n).
    pub(super) fn new(input_size: u32, synapses_per_pattern: u32, limit: u32) -> Fill {
        let (n, s, limit) = (
            f64::from(input_size),
            f64::from(synapses_per_pattern),
            f64::from(limit),
        );
        let full_from = if limit >= n {
            u32::MAX
        } else {
            let boundary = n - (n - limit) / (1.0 - s / n);
            (boundary.floor() + 1.0).max(0.0) as u32
        };
        Fill {
            full_from,
            ..Fill::default()
        }
    }

    /// A segment with these counts appeared (or is back after a change).
    pub(super) fn add(&mut self, patterns: usize, synapses: usize) {
        if patterns == 0 {
            return;
        }
        *self.by_patterns.entry(patterns as u32).or_default() += 1;
        if synapses as u64 >= u64::from(self.full_from) {
            self.at_capacity += 1;
        }
    }

    /// A segment with these counts went away (or is about to change).
    pub(super) fn remove(&mut self, patterns: usize, synapses: usize) {
        if patterns == 0 {
            return;
        }
        let count = self
            .by_patterns
            .get_mut(&(patterns as u32))
            .expect("a segment counted when it was added");
        *count -= 1;
        if *count == 0 {
            self.by_patterns.remove(&(patterns as u32));
        }
        if synapses as u64 >= u64::from(self.full_from) {
            self.at_capacity -= 1;
        }
    }

    pub(super) fn report(&self, patterns: u64, segments: u64) -> FillReport {
        FillReport {
            mean_patterns_per_segment: if segments == 0 {
                0.0
            } else {
                patterns as f64 / segments as f64
            },
            max_patterns_per_segment: self.by_patterns.keys().next_back().copied().unwrap_or(0),
            segments_at_capacity: self.at_capacity,
        }
    }

    /// Whether a segment of `synapses` synapses is at capacity (for the plain recount in tests).
    #[cfg(test)]
    pub(super) fn is_full(&self, synapses: usize) -> bool {
        synapses as u64 >= u64::from(self.full_from)
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::{Name, Pattern, Planned, SpaceSpec, StoreRequest, space_for_tests};
    use crate::rng::Rng;

    /// Random stores, forgets and neuron deletions: the kept counts always equal a recount.
    #[test]
    fn the_kept_counts_equal_a_recount_through_stores_forgets_and_deletions() {
        // 64 bits, 8 active, threshold 4: segments fill after a few patterns at this target.
        let mut space = space_for_tests(
            "fill",
            SpaceSpec {
                input_size: 64,
                active_bits: 8,
                threshold: Some(4),
                max_false_match: Some(0.05),
                ..SpaceSpec::default()
            },
        );
        let mut rng = Rng::new(5);
        let mut stored: Vec<(Name, Name)> = Vec::new();
        let mut full_seen = false;
        for step in 0..3_000 {
            let neuron = Name::parse(&format!("n{}", rng.below(6))).unwrap();
            match rng.below(10) {
                0..=6 => {
                    let cells: Vec<i64> = rng
                        .distinct_below(64, 8)
                        .into_iter()
                        .map(i64::from)
                        .collect();
                    let request = StoreRequest {
                        neuron: neuron.clone(),
                        active: Pattern::parse(&cells, 64).unwrap(),
                        id: None,
                        metadata: None,
                    };
                    if let Ok(mut plans) = space.plan_store(&[request])
                        && let Planned::New(plan) = plans.remove(0)
                    {
                        stored.push((plan.neuron.clone(), plan.id.clone()));
                        space
                            .apply_store(plan)
                            .expect("a plan of this space applies");
                    }
                }
                7 | 8 if !stored.is_empty() => {
                    let (neuron, id) = stored.swap_remove(rng.below(stored.len() as u64) as usize);
                    space.apply_forget(&neuron, &id).unwrap();
                }
                _ => {
                    if space.delete_neuron(&neuron).is_ok() {
                        stored.retain(|(n, _)| *n != neuron);
                    }
                }
            }
            let kept = space.fill();
            assert_eq!(kept, space.fill_recounted(), "step {step}");
            full_seen |= kept.segments_at_capacity > 0;
        }
        assert!(
            full_seen,
            "no segment ever reached capacity: the test tested little"
        );
    }
}
