//! Reports: what a neuron and a space hold, and what the theory says of them.

use super::{FillReport, PatternView, Space};
use crate::engine::EngineError;
use crate::engine::encoder::meaning::EncoderMeaning;
use crate::engine::params::{SpaceParams, SpaceTheory};
use crate::engine::pattern::{Name, Pattern};
use crate::theory::{self, Probability};
use serde::Serialize;

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
    /// The chance that a stored pattern misses under each of three levels of noise.
    pub false_miss_by_noise: Vec<NoiseMiss>,
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

/// A space: its parameters, what it holds and its theory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpaceReport {
    pub name: Name,
    pub parameters: SpaceParams,
    pub counts: Counts,
    pub theory: SpaceTheory,
    /// For a space with an encoder: what its threshold means in each field's units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder: Option<EncoderMeaning>,
}

impl Space {
    /// How full the segments are, in O(1).
    pub fn fill(&self) -> FillReport {
        self.fill.report(self.pattern_count, self.segment_count())
    }

    /// The same, counted segment by segment: what [`Space::fill`] keeps up to date.
    #[cfg(test)]
    pub(super) fn fill_recounted(&self) -> FillReport {
        let (mut max, mut full) = (0, 0);
        for (_, segment) in self.segments.iter() {
            max = max.max(segment.patterns.len() as u32);
            full += u64::from(self.fill.is_full(segment.synapses.len()));
        }
        let segments = self.segments.iter().count() as u64;
        let patterns: u64 = self
            .segments
            .iter()
            .map(|(_, s)| s.patterns.len() as u64)
            .sum();
        FillReport {
            mean_patterns_per_segment: if segments == 0 {
                0.0
            } else {
                patterns as f64 / segments as f64
            },
            max_patterns_per_segment: max,
            segments_at_capacity: full,
        }
    }

    pub fn counts(&self) -> Counts {
        Counts {
            neurons: self.neuron_slots.len() as u64,
            segments: self.segment_count(),
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
            encoder: self.theory.encoder.clone(),
        }
    }

    pub fn pattern(&self, neuron: &Name, id: &Name) -> Result<PatternView, EngineError> {
        let found = self
            .neuron(neuron)
            .ok_or_else(|| EngineError::UnknownNeuron(neuron.clone()))?;
        let pattern = found
            .patterns
            .get(id)
            .ok_or_else(|| EngineError::UnknownPattern {
                neuron: neuron.clone(),
                id: id.clone(),
            })?;
        let slot = found
            .segments
            .iter()
            .find(|&&(n, _)| n == pattern.segment)
            .expect("segment of a stored pattern")
            .1;
        let segment = self.segment(slot);
        let (_, run) = segment
            .pattern_run(id)
            .expect("a stored pattern is listed by its segment");
        Ok(PatternView {
            id: id.clone(),
            neuron: neuron.clone(),
            segment: pattern.segment,
            active: Pattern::from_sorted(pattern.active.unpack(), self.params.input_size)
                .expect("a stored pattern unpacks to the pattern stored"),
            synapses: segment.pattern_synapses[run].to_vec(),
            segment_false_match: self.segment(slot).false_match,
            neuron_false_match: found.false_match,
            metadata: pattern.metadata.clone(),
        })
    }

    /// A page of a neuron's patterns: those whose ids come after `after` (exclusive) in string
    /// order, at most `limit` of them, in that order. The patterns are kept by id in a hash map
    /// (for O(1) stores and forgets), so a page costs one pass over the neuron's ids, then a sort
    /// of the page's worth only.
    pub fn neuron_patterns(
        &self,
        neuron: &Name,
        after: Option<&Name>,
        limit: usize,
    ) -> Result<Vec<PatternView>, EngineError> {
        let found = self
            .neuron(neuron)
            .ok_or_else(|| EngineError::UnknownNeuron(neuron.clone()))?;
        let mut ids: Vec<&Name> = found
            .patterns
            .keys()
            .filter(|id| after.is_none_or(|after| *id > after))
            .collect();
        if ids.len() > limit {
            ids.select_nth_unstable(limit);
            ids.truncate(limit);
        }
        ids.sort_unstable();
        ids.into_iter().map(|id| self.pattern(neuron, id)).collect()
    }

    /// The neuron names in order, after `after` (exclusive), at most `limit` of them.
    pub fn neuron_names(&self, after: Option<&Name>, limit: usize) -> Vec<&Name> {
        use std::ops::Bound::{Excluded, Unbounded};
        let start = after.map_or(Unbounded, Excluded);
        self.neuron_slots
            .range((start, Unbounded))
            .take(limit)
            .map(|(name, _)| name)
            .collect()
    }

    /// A neuron's counters: the next pattern number it assigns and its next segment number.
    pub fn neuron_counters(&self, name: &Name) -> Option<(u64, u32)> {
        let neuron = self.neuron(name)?;
        Some((neuron.next_pattern_number, neuron.next_segment))
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
    /// `None`), at most `limit` of them. Its cost follows the page: a neuron with tens of
    /// thousands of segments is read a page at a time.
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
        let segments = page
            .iter()
            .map(|&(number, slot)| {
                let segment = self.segment(slot);
                let mut patterns: Vec<Name> =
                    segment.patterns.iter().map(|(id, _)| id.clone()).collect();
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
        let false_miss_by_noise = [0.1, 0.2, 0.3]
            .into_iter()
            .map(|noise| {
                let bits = theory::noise_bits(noise, a);
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
            false_miss_by_noise,
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
