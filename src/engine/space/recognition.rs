//! Recognition: which neurons an input matches, and how far each answer can be trusted.
//!
//! Overlaps come from the inverted index (or, in tests, from the plain oracle); everything after
//! the counting is shared, so the two differ only in how they count. Probabilities that depend on
//! the query's own size are computed only for matches, and memoised by (synapses, overlap) within
//! a query, since many segments share a synapse count.

use super::sorted::intersection_len;
use super::{Neuron, NeuronSlot, Space};
use crate::engine::EngineError;
use crate::engine::encoder::Code;
use crate::engine::index::Overlaps;
use crate::engine::metadata::Metadata;
use crate::engine::pattern::{CellIndex, Name, Pattern};
use crate::theory::{self, LogNumber, LogSum, Probability};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::PoisonError;

/// (input size, threshold) pairs whose expected false matches are remembered between writes.
const EXPECTED_CACHE_ENTRIES: usize = 64;

/// The default number of matches returned.
pub const DEFAULT_LIMIT: usize = 10;

/// An input to recognise, with optional per-query threshold and result limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub active: Pattern,
    pub threshold: Option<u32>,
    pub limit: usize,
}

/// One neuron that matched, by its best segment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Match {
    pub neuron: Name,
    pub segment: u32,
    /// Active input bits on the segment's synapses.
    pub overlap: u32,
    /// The stored pattern of the segment whose own synapses the input overlaps most (the first
    /// stored among equals): which of the patterns learned together the input resembles.
    pub pattern: Name,
    /// Active input bits on that pattern's own synapses.
    pub pattern_overlap: u32,
    /// What the application stored with that pattern, if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pattern_metadata: Option<Metadata>,
    /// For a record, how many of the overlapping synapses each of its fields' bits reached: why
    /// it matched (`{"temperature": 9, "device": 5}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, u32>>,
    /// The chance that a random input of the query's size reaches this overlap on this segment.
    pub p_value: Probability,
    /// The chance that a random input of the query's size matches this neuron at the threshold.
    pub neuron_false_match: Probability,
}

/// The answer to a query.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recognition {
    pub matches: Vec<Match>,
    /// The expected number of neurons a random input of the query's size would falsely match.
    pub expected_false_matches: LogNumber,
    /// Segments with at least one synapse on the input's active bits: the ones whose overlap
    /// was counted.
    pub segments_overlapped: u64,
    /// The threshold used: the query's own, or the space's.
    pub threshold: u32,
    /// Why the answer is what it is, when that is not obvious.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Space {
    /// Recognises an input through the inverted index.
    pub fn recognize(&self, query: &Query) -> Result<Recognition, EngineError> {
        self.recognize_with(query, |theta| {
            self.index
                .overlaps_reaching(query.active.cells(), theta, self.segments.slot_count())
        })
    }

    /// Recognition with the overlaps that reach a threshold found by `count`.
    pub(in crate::engine) fn recognize_with(
        &self,
        query: &Query,
        count: impl FnOnce(u32) -> Overlaps,
    ) -> Result<Recognition, EngineError> {
        let theta = query.threshold.unwrap_or(self.params.threshold);
        if theta == 0 {
            return Err(EngineError::InvalidThreshold(theta));
        }
        let active = query.active.len() as u64;
        if active < u64::from(theta) {
            return Ok(Recognition {
                matches: Vec::new(),
                expected_false_matches: LogNumber::from_ln(f64::NEG_INFINITY),
                segments_overlapped: 0,
                threshold: theta,
                note: Some(format!(
                    "the query has {active} active bits, fewer than the threshold {theta}: no segment can match it"
                )),
            });
        }
        let n = u64::from(self.params.input_size);
        let overlaps = count(theta);
        // Most queries match a handful of segments, so the memo and the per-neuron best are
        // short vectors: a linear scan beats hashing at that size, and a sort groups the rest.
        let mut p_values: Vec<((usize, u32), Probability)> = Vec::new();
        let mut candidates: Vec<(NeuronSlot, (Probability, u32, u32))> =
            Vec::with_capacity(overlaps.reaching.len());
        for &(slot, overlap) in &overlaps.reaching {
            let segment = self.segments.get(slot);
            let synapses = segment.synapses.len();
            let key = (synapses, overlap);
            let p = match p_values.iter().find(|(k, _)| *k == key) {
                Some(&(_, p)) => p,
                None => {
                    let p = theory::overlap_p_value(n, active, synapses as u64, overlap.into());
                    p_values.push((key, p));
                    p
                }
            };
            candidates.push((segment.neuron, (p, overlap, segment.number)));
        }
        // Each neuron's best segment first, then one entry per neuron.
        candidates.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| rank(a.1, b.1)));
        candidates.dedup_by_key(|(neuron, _)| *neuron);
        let mut ranked = candidates;
        let name = |slot: NeuronSlot| &self.neurons.get(slot).name;
        ranked.sort_by(|a, b| {
            a.1.0
                .ln()
                .total_cmp(&b.1.0.ln())
                .then_with(|| name(a.0).cmp(name(b.0)))
        });
        ranked.truncate(query.limit);

        let nominal =
            active == u64::from(self.params.active_bits) && theta == self.params.threshold;
        let mut segment_memo = HashMap::new();
        let matches = ranked
            .into_iter()
            .map(|(slot, (p_value, overlap, segment))| {
                let neuron = self.neurons.get(slot);
                let neuron_false_match = if nominal {
                    neuron.false_match
                } else {
                    self.neuron_false_match_at(slot, active, theta, &mut segment_memo)
                };
                let (pattern, pattern_overlap, pattern_metadata) =
                    self.closest_pattern(neuron, segment, query.active.cells());
                Match {
                    neuron: neuron.name.clone(),
                    segment,
                    overlap,
                    pattern,
                    pattern_overlap,
                    pattern_metadata,
                    fields: None,
                    p_value,
                    neuron_false_match,
                }
            })
            .collect();
        let expected_ln = self.expected_false_matches(active, theta, nominal, &mut segment_memo);
        Ok(Recognition {
            matches,
            expected_false_matches: LogNumber::from_ln(expected_ln),
            segments_overlapped: overlaps.touched,
            threshold: theta,
            note: None,
        })
    }

    /// ln of the expected number of neurons a random input of `active` bits falsely matches at
    /// `theta`. It costs a pass over every segment, so it is cached per (size, threshold) until
    /// the next write: clients tend to send inputs of a few sizes over and over.
    fn expected_false_matches(
        &self,
        active: u64,
        theta: u32,
        nominal: bool,
        segment_memo: &mut HashMap<usize, Probability>,
    ) -> f64 {
        let cached = self
            .expected_false_matches
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(active, theta))
            .copied();
        if let Some(ln) = cached {
            return ln;
        }
        // Summed in name order, not slot order: slots depend on the order neurons were created,
        // which a restart (or a restored backup) does not repeat, and a floating-point sum in
        // another order may differ in its last digit.
        let mut sum = LogSum::default();
        for &slot in self.neuron_slots.values() {
            let neuron = self.neurons.get(slot);
            let p = if nominal {
                neuron.false_match
            } else {
                self.neuron_false_match_at(slot, active, theta, segment_memo)
            };
            sum.add(p.ln());
        }
        let mut cached = self
            .expected_false_matches
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cached.len() >= EXPECTED_CACHE_ENTRIES {
            cached.clear();
        }
        cached.insert((active, theta), sum.ln());
        sum.ln()
    }

    /// The pattern on segment `number` of `neuron` whose own synapses hold the most of the
    /// input's bits, with that count and its metadata; the earliest stored wins a tie. One merge of sorted lists
    /// per pattern on the segment, and only for the matches returned.
    fn closest_pattern(
        &self,
        neuron: &Neuron,
        number: u32,
        input: &[CellIndex],
    ) -> (Name, u32, Option<Metadata>) {
        let at = neuron
            .segments
            .binary_search_by_key(&number, |&(n, _)| n)
            .expect("a matched segment belongs to its neuron");
        let segment = self.segment(neuron.segments[at].1);
        let mut closest: Option<(&Name, u32)> = None;
        for (id, synapses) in segment.pattern_runs() {
            let overlap = intersection_len(synapses, input) as u32;
            if closest.is_none_or(|(_, most)| overlap > most) {
                closest = Some((id, overlap));
            }
        }
        let (id, overlap) = closest.expect("a live segment holds at least one pattern");
        (id.clone(), overlap, neuron.patterns[id].metadata.clone())
    }

    /// Fills in each match's `fields`: the overlap of its segment's synapses with each field's
    /// bits of the record `code` (the encoder's fields, in its order).
    pub fn attribute(&self, answer: &mut Recognition, code: &Code) {
        let Some(encoder) = &self.params.encoder else {
            return;
        };
        for found in &mut answer.matches {
            let Some(&slot) = self.neuron_slots.get(&found.neuron) else {
                continue;
            };
            let neuron = self.neurons.get(slot);
            let Ok(at) = neuron
                .segments
                .binary_search_by_key(&found.segment, |&(n, _)| n)
            else {
                continue;
            };
            let synapses = &self.segment(neuron.segments[at].1).synapses;
            found.fields = Some(
                encoder
                    .field_names()
                    .zip(&code.fields)
                    .map(|(name, bits)| {
                        let reached = bits
                            .iter()
                            .filter(|&&bit| synapses.binary_search(&bit).is_ok())
                            .count();
                        (name.to_owned(), reached as u32)
                    })
                    .collect(),
            );
        }
    }

    /// A neuron's false-match probability for random inputs of `active` bits at `theta`.
    pub(super) fn neuron_false_match_at(
        &self,
        slot: NeuronSlot,
        active: u64,
        theta: u32,
        memo: &mut HashMap<usize, Probability>,
    ) -> Probability {
        let n = u64::from(self.params.input_size);
        let neuron = self.neurons.get(slot);
        Probability::any_of(neuron.segments.iter().map(|&(_, s)| {
            let synapses = self.segment(s).synapses.len();
            *memo.entry(synapses).or_insert_with(|| {
                theory::segment_false_match(n, active, synapses as u64, theta.into())
            })
        }))
    }
}

/// The order of a neuron's segments, best first: the smallest p-value, then the larger overlap,
/// then the older segment.
fn rank(a: (Probability, u32, u32), b: (Probability, u32, u32)) -> std::cmp::Ordering {
    let (p, overlap, number) = a;
    let (q, other_overlap, other_number) = b;
    p.ln()
        .total_cmp(&q.ln())
        .then(other_overlap.cmp(&overlap))
        .then(number.cmp(&other_number))
}
