//! Reports: what a neuron and a space hold, and what the theory says of them.

use super::EngineError;
use super::params::{DEFAULT_NOISE, SpaceParams};
use super::pattern::Name;
use super::space::Space;
use crate::theory::{self, Probability};
use serde::Serialize;
use std::collections::HashMap;

/// One segment of a neuron.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentReport {
    pub segment: u32,
    /// Ids of the patterns whose union the segment holds, sorted.
    pub patterns: Vec<Name>,
    pub synapses: u32,
    pub false_match: Probability,
}

/// The miss probability of a stored pattern under one level of noise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoiseMiss {
    pub noise: f64,
    pub noise_bits: u64,
    pub probability: Probability,
}

/// A neuron: its segments (a page of them) and its error probabilities.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeuronReport {
    pub name: Name,
    pub patterns: u64,
    /// Segments on the neuron, all pages together.
    pub segment_count: u64,
    /// The page of segments asked for, by number.
    pub segments: Vec<SegmentReport>,
    /// Pass as `segments_after` for the next page of segments; null on the last one.
    pub next_segment: Option<u32>,
    pub false_match: Probability,
    pub false_miss: Vec<NoiseMiss>,
    /// How many more random patterns the newest segment is expected to take before the neuron
    /// opens a new one; null when segments never fill.
    pub patterns_before_new_segment: Option<u64>,
}

/// A neuron in a listing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NeuronSummary {
    pub name: Name,
    pub patterns: u64,
    pub segments: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counts {
    pub neurons: u64,
    pub segments: u64,
    pub patterns: u64,
    pub synapses: u64,
    /// The memory the space takes, estimated (what the memory limit is checked against).
    pub memory_bytes: u64,
}

/// The theory for a space's parameters.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpaceTheory {
    /// One pattern's segment, for a random input of the nominal size.
    pub segment_false_match: Probability,
    /// The largest number of patterns a segment holds within `max_false_match` (the paper's way);
    /// null when there is no limit.
    pub capacity_per_segment: Option<u64>,
    pub false_miss_at_20_percent_noise: Probability,
    pub threshold_min_error: u64,
    pub threshold_for_target: Option<u64>,
}

impl SpaceTheory {
    pub fn of(params: &SpaceParams) -> SpaceTheory {
        let (n, a, s, theta) = (
            u64::from(params.input_size),
            u64::from(params.active_bits),
            u64::from(params.synapses_per_pattern),
            u64::from(params.threshold),
        );
        let noise_bits = noise_bits(DEFAULT_NOISE, a);
        SpaceTheory {
            segment_false_match: params.segment_false_match(s.min(a) as u32),
            capacity_per_segment: theory::max_patterns_per_segment(
                n,
                a,
                s,
                theta,
                params.max_false_match,
            ),
            false_miss_at_20_percent_noise: theory::false_miss(a, s, noise_bits, theta),
            threshold_min_error: theory::threshold_min_error(n, a, s, noise_bits),
            threshold_for_target: theory::threshold_for_target(n, a, s, params.max_false_match),
        }
    }
}

/// A space: its parameters, what it holds and its theory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpaceReport {
    pub name: Name,
    pub parameters: SpaceParams,
    pub counts: Counts,
    pub theory: SpaceTheory,
}

/// round(fraction · a), halves up.
fn noise_bits(fraction: f64, a: u64) -> u64 {
    (fraction * a as f64 + 0.5).floor() as u64
}

impl Space {
    /// Segments in the space: what the cost of a recognition grows with.
    pub fn segment_count(&self) -> u64 {
        self.segment_count
    }

    pub fn counts(&self) -> Counts {
        Counts {
            neurons: self.neuron_slots.len() as u64,
            segments: self.segment_count,
            patterns: self.pattern_count,
            synapses: self.synapse_count() as u64,
            memory_bytes: self.estimated_bytes(),
        }
    }

    pub fn report(&self) -> SpaceReport {
        SpaceReport {
            name: self.name.clone(),
            parameters: self.params.clone(),
            counts: self.counts(),
            theory: self.theory.clone(),
        }
    }

    pub fn neuron_summary(&self, name: &Name) -> Result<NeuronSummary, EngineError> {
        let neuron = self
            .neuron(name)
            .ok_or_else(|| EngineError::UnknownNeuron(name.clone()))?;
        Ok(NeuronSummary {
            name: name.clone(),
            patterns: neuron.patterns.len() as u64,
            segments: neuron.segments.len() as u64,
        })
    }

    /// A neuron's report with the segments numbered after `after` (all from the first when
    /// `None`), at most `limit` of them. Its cost is one pass over the neuron's patterns plus the
    /// page: a neuron with tens of thousands of segments is read a page at a time.
    pub fn neuron_report(
        &self,
        name: &Name,
        after: Option<u32>,
        limit: usize,
    ) -> Result<NeuronReport, EngineError> {
        let neuron = self
            .neuron(name)
            .ok_or_else(|| EngineError::UnknownNeuron(name.clone()))?;
        let start = after.map_or(0, |after| {
            neuron
                .segments
                .partition_point(|&(number, _)| number <= after)
        });
        let page = &neuron.segments[start..(start + limit).min(neuron.segments.len())];
        let next_segment = (start + page.len() < neuron.segments.len())
            .then(|| page.last().map(|&(number, _)| number))
            .flatten();
        let mut ids: HashMap<u32, Vec<Name>> = page
            .iter()
            .map(|&(number, _)| (number, Vec::new()))
            .collect();
        for (id, pattern) in &neuron.patterns {
            if let Some(ids) = ids.get_mut(&pattern.segment) {
                ids.push(id.clone());
            }
        }
        let segments = page
            .iter()
            .map(|&(number, slot)| {
                let segment = self.segment(slot);
                let mut patterns = ids.remove(&number).unwrap_or_default();
                patterns.sort();
                SegmentReport {
                    segment: number,
                    patterns,
                    synapses: segment.synapses.len() as u32,
                    false_match: segment.false_match,
                }
            })
            .collect();
        let p = &self.params;
        let (a, s, theta) = (
            u64::from(p.active_bits),
            u64::from(p.synapses_per_pattern),
            u64::from(p.threshold),
        );
        let false_miss = [0.1, 0.2, 0.3]
            .into_iter()
            .map(|noise| {
                let bits = noise_bits(noise, a);
                NoiseMiss {
                    noise,
                    noise_bits: bits,
                    probability: theory::false_miss(a, s, bits, theta),
                }
            })
            .collect();
        let newest = neuron
            .segments
            .last()
            .map_or(0, |&(_, slot)| self.segment(slot).synapses.len());
        Ok(NeuronReport {
            name: name.clone(),
            patterns: neuron.patterns.len() as u64,
            segment_count: neuron.segments.len() as u64,
            segments,
            next_segment,
            false_match: neuron.false_match,
            false_miss,
            patterns_before_new_segment: self.expected_patterns_until_full(newest as u64),
        })
    }

    /// How many more random patterns a segment with `synapses` synapses is expected to take
    /// while its expected size E = n − (n − X)(1 − s/n)^j stays within the learning limit.
    fn expected_patterns_until_full(&self, synapses: u64) -> Option<u64> {
        let n = f64::from(self.params.input_size);
        let limit = f64::from(self.max_synapses_per_segment);
        if limit >= n {
            return None;
        }
        let x = synapses as f64;
        if x > limit {
            return Some(0);
        }
        let s = f64::from(
            self.params
                .synapses_per_pattern
                .min(self.params.active_bits),
        );
        let j = ((n - limit) / (n - x)).ln() / (-s / n).ln_1p();
        Some(j.floor().max(0.0) as u64)
    }
}
