//! Planning a store: which synapses, which segment and which id, decided from `&Space` without
//! changing it, so that the service can commit the decision before anyone sees it.
//!
//! The learning rule lives here: a pattern joins its neuron's first segment (by number) whose union
//! of synapses with the pattern's stays within the space's learning limit, and opens a new segment
//! when none has room. Without forgetting that is the newest segment, as older ones are full; with
//! it, the room a forgotten pattern left is filled again, so a neuron under store and forget churn
//! keeps as few segments (and as low a false-match probability) as its patterns need, rather than
//! growing a new segment for every store while old ones stand half empty.

use super::packed::PackedCells;
use super::sorted::{fits_within, merge_sorted};
use super::{Neuron, Space};
use crate::engine::EngineError;
use crate::engine::metadata::Metadata;
use crate::engine::pattern::{CellIndex, Name, Pattern};
use crate::rng::{FNV1A_START, Rng, fnv1a};
use std::collections::HashMap;

/// A pattern to store, parsed and validated against nothing but its own form.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreRequest {
    pub neuron: Name,
    pub active: Pattern,
    pub id: Option<Name>,
    pub metadata: Option<Metadata>,
}

/// Everything a store decided: applying it changes the space without further choices.
#[derive(Clone, Debug, PartialEq)]
pub struct StorePlan {
    pub neuron: Name,
    pub id: Name,
    pub active: Pattern,
    /// Sorted cells sampled as synapses.
    pub synapses: Vec<CellIndex>,
    /// The segment's number within the neuron (a new number opens a segment).
    pub segment: u32,
    pub metadata: Option<Metadata>,
}

/// What a store request turns into: a new pattern, or one the neuron already holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Planned {
    New(StorePlan),
    Existing { neuron: Name, id: Name },
}

impl Planned {
    pub fn neuron(&self) -> &Name {
        match self {
            Planned::New(plan) => &plan.neuron,
            Planned::Existing { neuron, .. } => neuron,
        }
    }

    pub fn id(&self) -> &Name {
        match self {
            Planned::New(plan) => &plan.id,
            Planned::Existing { id, .. } => id,
        }
    }
}

impl Space {
    /// Decides how to store each request, in order, as if the earlier ones were applied: the
    /// first invalid request stops the batch and is named by its position.
    pub fn plan_store(
        &self,
        requests: &[StoreRequest],
    ) -> Result<Vec<Planned>, (usize, EngineError)> {
        Planner::default().plan(self, requests)
    }

    fn plan_one(&self, request: &StoreRequest, draft: &mut Draft) -> Result<Planned, EngineError> {
        request.active.check_fits(self.params.input_size)?;
        // (whether the bits are the request's, the metadata) of a pattern stored or planned.
        let existing_id = |draft: &Draft, id: &Name| -> Option<(bool, Option<Metadata>)> {
            if let Some((active, metadata)) = draft.new_ids.get(id) {
                return Some((*active == request.active, metadata.clone()));
            }
            let stored = self.neuron(&request.neuron)?.patterns.get(id)?;
            let same_bits = stored
                .active
                .cells()
                .eq(request.active.cells().iter().copied());
            Some((same_bits, stored.metadata.clone()))
        };
        // Storing is idempotent: the same pattern under the same id again is answered with the
        // one stored; other bits or other metadata under a stored id are a conflict, not an edit.
        if let Some(id) = &request.id
            && let Some((same_bits, metadata)) = existing_id(draft, id)
        {
            let (neuron, id) = (request.neuron.clone(), id.clone());
            return if !same_bits {
                Err(EngineError::IdConflict { neuron, id })
            } else if metadata != request.metadata {
                Err(EngineError::MetadataConflict { neuron, id })
            } else {
                Ok(Planned::Existing { neuron, id })
            };
        }
        let same_content = draft
            .new_contents
            .get(&request.active)
            .cloned()
            .or_else(|| {
                let neuron = self.neuron(&request.neuron)?;
                neuron
                    .id_of_content(&PackedCells::pack(request.active.cells()))
                    .cloned()
            });
        if let Some(id) = same_content {
            return Ok(Planned::Existing {
                neuron: request.neuron.clone(),
                id,
            });
        }
        let theta = self.params.threshold as usize;
        if request.active.len() < theta {
            return Err(EngineError::TooFewActiveBits {
                active: request.active.len(),
                threshold: self.params.threshold,
            });
        }
        let synapses = self.sample_synapses(&request.neuron, &request.active);
        let segment = match self.segment_with_room(request, draft, &synapses) {
            Some(number) => number,
            None => {
                if draft.segments >= self.params.max_segments_per_neuron {
                    return Err(EngineError::NeuronFull {
                        neuron: request.neuron.clone(),
                        segments: draft.segments,
                    });
                }
                draft.segments += 1;
                draft.next_segment += 1;
                draft.next_segment - 1
            }
        };
        let held = draft.touched.get(&segment).map_or_else(
            || self.segment_cells(&request.neuron, segment),
            Clone::clone,
        );
        draft
            .touched
            .insert(segment, merge_sorted(&held, &synapses));
        let id = match &request.id {
            Some(id) => id.clone(),
            None => draft.fresh_id(|id| existing_id_in(self.neuron(&request.neuron), id)),
        };
        draft.new_ids.insert(
            id.clone(),
            (request.active.clone(), request.metadata.clone()),
        );
        draft
            .new_contents
            .insert(request.active.clone(), id.clone());
        Ok(Planned::New(StorePlan {
            neuron: request.neuron.clone(),
            id,
            active: request.active.clone(),
            synapses,
            segment,
            metadata: request.metadata.clone(),
        }))
    }

    /// The first segment of the neuron, by number, that can take `synapses` within the learning
    /// limit, with this group's earlier plans folded in; `None` when every one is full.
    fn segment_with_room(
        &self,
        request: &StoreRequest,
        draft: &Draft,
        synapses: &[CellIndex],
    ) -> Option<u32> {
        let limit = self.max_synapses_per_segment as usize;
        let stored = self
            .neuron(&request.neuron)
            .map_or(&[][..], |n| &n.segments[..]);
        let numbers: std::collections::BTreeSet<u32> = stored
            .iter()
            .map(|&(number, _)| number)
            .chain(draft.touched.keys().copied())
            .collect();
        numbers.into_iter().find(|number| {
            let held = match draft.touched.get(number) {
                Some(held) => held,
                None => {
                    let slot = stored
                        .binary_search_by_key(number, |&(n, _)| n)
                        .map(|at| stored[at].1)
                        .expect("a stored segment");
                    &self.segment(slot).synapses
                }
            };
            fits_within(held, synapses, limit)
        })
    }

    /// The cells of a stored segment of `neuron` (none for a segment not stored yet).
    fn segment_cells(&self, neuron: &Name, number: u32) -> Vec<CellIndex> {
        self.neuron(neuron)
            .and_then(|n| {
                let at = n.segments.binary_search_by_key(&number, |&(n, _)| n).ok()?;
                Some(self.segment(n.segments[at].1).synapses.clone())
            })
            .unwrap_or_default()
    }

    /// Samples min(s, |pattern|) of the pattern's bits. The generator is seeded by the space's
    /// seed, the neuron and the pattern, so the same store gives the same synapses whatever came
    /// before it, on any machine.
    fn sample_synapses(&self, neuron: &Name, active: &Pattern) -> Vec<CellIndex> {
        let mut key = fnv1a(FNV1A_START, &self.params.seed.to_le_bytes());
        key = fnv1a(key, neuron.as_str().as_bytes());
        key = fnv1a(key, &[0xFF]);
        for cell in active.cells() {
            key = fnv1a(key, &cell.to_le_bytes());
        }
        let mut rng = Rng::new(key);
        let count = (self.params.synapses_per_pattern as usize).min(active.len());
        let mut synapses = rng.choose(active.cells(), count);
        synapses.sort_unstable();
        synapses
    }
}

fn existing_id_in(neuron: Option<&Neuron>, id: &Name) -> bool {
    neuron.is_some_and(|n| n.patterns.contains_key(id))
}

/// Planning state carried across the store requests of one commit group, so that a request sees
/// the plans of the requests before it although none is applied yet.
#[derive(Debug, Default)]
pub struct Planner {
    drafts: HashMap<Name, Draft>,
}

impl Planner {
    /// Plans every request or none: on an error the drafts are as they were before the call.
    pub fn plan(
        &mut self,
        space: &Space,
        requests: &[StoreRequest],
    ) -> Result<Vec<Planned>, (usize, EngineError)> {
        let mut saved: HashMap<&Name, Option<Draft>> = HashMap::new();
        let mut plans = Vec::with_capacity(requests.len());
        for (position, request) in requests.iter().enumerate() {
            saved
                .entry(&request.neuron)
                .or_insert_with(|| self.drafts.get(&request.neuron).cloned());
            let draft = self
                .drafts
                .entry(request.neuron.clone())
                .or_insert_with(|| Draft::of(space.neuron(&request.neuron)));
            match space.plan_one(request, draft) {
                Ok(planned) => plans.push(planned),
                Err(error) => {
                    for (neuron, before) in saved {
                        match before {
                            Some(draft) => self.drafts.insert(neuron.clone(), draft),
                            None => self.drafts.remove(neuron),
                        };
                    }
                    return Err((position, error));
                }
            }
        }
        Ok(plans)
    }
}

/// What planning needs to know of a neuron, with the group's earlier plans folded in.
#[derive(Clone, Debug)]
struct Draft {
    segments: u32,
    next_segment: u32,
    /// The synapses of the segments this group's plans joined or opened, by number: the rest
    /// are read from the space.
    touched: std::collections::BTreeMap<u32, Vec<CellIndex>>,
    new_ids: HashMap<Name, (Pattern, Option<Metadata>)>,
    new_contents: HashMap<Pattern, Name>,
    next_pattern_number: u64,
}

impl Draft {
    fn of(neuron: Option<&Neuron>) -> Draft {
        Draft {
            segments: neuron.map_or(0, |n| n.segments.len() as u32),
            next_segment: neuron.map_or(0, |n| n.next_segment),
            touched: std::collections::BTreeMap::new(),
            new_ids: HashMap::new(),
            new_contents: HashMap::new(),
            next_pattern_number: neuron.map_or(1, |n| n.next_pattern_number),
        }
    }

    /// The next unused decimal id: server ids count up per neuron, skipping ids clients took.
    fn fresh_id(&mut self, taken: impl Fn(&Name) -> bool) -> Name {
        loop {
            let id = Name::parse(&self.next_pattern_number.to_string())
                .expect("digits are a valid name");
            self.next_pattern_number += 1;
            if !taken(&id) && !self.new_ids.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SpaceSpec, space_for_tests};

    /// Stored synapses depend on this sampling forever: a store replayed from the log or the
    /// tables must pick the same ones on any machine and version.
    #[test]
    fn synapse_sampling_is_frozen() {
        let space = space_for_tests(
            "s",
            SpaceSpec {
                input_size: 2048,
                active_bits: 40,
                synapses_per_pattern: Some(10),
                threshold: Some(6),
                seed: Some(42),
                ..SpaceSpec::default()
            },
        );
        let active: Vec<i64> = (0..40).map(|i| i * 51 + 7).collect();
        let active = Pattern::parse(&active, 2048).unwrap();
        let neuron = Name::parse("neuron-1").unwrap();
        let synapses = space.sample_synapses(&neuron, &active);
        assert_eq!(
            synapses,
            [58, 109, 466, 874, 1078, 1129, 1384, 1486, 1537, 1741]
        );
    }
}
