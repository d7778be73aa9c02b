//! A space: the neurons that listen to one input space, their segments, learning and forgetting.
//!
//! Writes come in two steps so that the service can make them durable in between: `plan_*` decides
//! everything (which synapses, which segment, which id) from `&self` without changing anything,
//! the caller commits the plan to storage, then `apply` makes it visible. Applying a plan makes no
//! decisions, so replaying stored plans at start-up rebuilds exactly the same segments.

use super::EngineError;
use super::index::{InvertedIndex, SegmentSlot};
use super::params::SpaceParams;
use super::pattern::{CellIndex, Name, Pattern};
use super::report::SpaceTheory;
use crate::rng::Rng;
use crate::theory::Probability;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{PoisonError, RwLock};

pub(super) type NeuronSlot = u32;

/// One pattern learned by a neuron: its bits, the synapses sampled from them and their segment.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct StoredPattern {
    pub(super) active: Pattern,
    pub(super) synapses: Box<[CellIndex]>,
    pub(super) segment: u32,
}

#[derive(Clone, Debug)]
pub(super) struct Neuron {
    pub(super) name: Name,
    /// (segment number, slot), by number: the newest segment is last.
    pub(super) segments: Vec<(u32, SegmentSlot)>,
    pub(super) next_segment: u32,
    pub(super) patterns: HashMap<Name, StoredPattern>,
    pub(super) by_content: HashMap<Pattern, Name>,
    pub(super) next_pattern_number: u64,
    /// 1 − prod(1 − p_i) over the segments, at the space's nominal a and threshold.
    pub(super) false_match: Probability,
}

#[derive(Clone, Debug)]
pub(super) struct Segment {
    pub(super) neuron: NeuronSlot,
    pub(super) number: u32,
    /// (cell, number of the segment's patterns that sampled it), by cell.
    pub(super) synapses: Vec<(CellIndex, u32)>,
    pub(super) patterns: u32,
    /// Eq. 3 at the segment's synapse count, the space's nominal a and threshold.
    pub(super) false_match: Probability,
}

/// A pattern to store, parsed and validated against nothing but its own form.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreRequest {
    pub neuron: Name,
    pub active: Pattern,
    pub id: Option<Name>,
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

/// Heap bytes a space holds for its synapses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// The inverted index's postings.
    pub index: usize,
    /// The segments' (cell, uses) tables.
    pub segment_tables: usize,
    /// Each stored pattern's own synapse list (needed to forget it).
    pub pattern_synapses: usize,
}

impl MemoryUse {
    pub fn synapse_bytes(&self) -> usize {
        self.index + self.segment_tables + self.pattern_synapses
    }
}

/// A stored pattern as callers see it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PatternView {
    pub id: Name,
    pub neuron: Name,
    pub segment: u32,
    pub active: Pattern,
    pub synapses: Vec<CellIndex>,
    pub segment_false_match: Probability,
    pub neuron_false_match: Probability,
}

/// The neurons of one input space.
#[derive(Debug)]
pub struct Space {
    pub(super) name: Name,
    pub(super) params: SpaceParams,
    /// The most synapses a segment may hold and still meet `max_false_match` (eq. 3 grows with
    /// the synapse count, so the learning rule is a comparison with this number).
    pub(super) max_synapses_per_segment: u32,
    pub(super) neuron_slots: BTreeMap<Name, NeuronSlot>,
    pub(super) neurons: Vec<Option<Neuron>>,
    free_neurons: Vec<NeuronSlot>,
    pub(super) segments: Vec<Option<Segment>>,
    free_segments: Vec<SegmentSlot>,
    pub(super) index: InvertedIndex,
    pub(super) pattern_count: u64,
    /// Active bits plus sampled synapses over every stored pattern: what their own lists hold.
    pattern_cells: u64,
    pub(super) segment_count: u64,
    /// Eq. 3 per synapse count at the nominal a and threshold, filled as segments grow.
    false_match_by_synapses: HashMap<u32, Probability>,
    /// ln of the expected false matches of a query, by (input size, threshold); cleared by
    /// every write.
    pub(super) expected_false_matches: RwLock<HashMap<(u64, u32), f64>>,
    /// The theory for the parameters, computed once.
    pub(super) theory: SpaceTheory,
}

impl Space {
    pub fn new(name: Name, params: SpaceParams) -> Space {
        let max_synapses_per_segment = largest_count_meeting_target(&params);
        Space {
            name,
            max_synapses_per_segment,
            neuron_slots: BTreeMap::new(),
            neurons: Vec::new(),
            free_neurons: Vec::new(),
            segments: Vec::new(),
            free_segments: Vec::new(),
            // A stored pattern has at least theta active bits, so every segment holds at least
            // min(s, theta) synapses.
            index: InvertedIndex::for_space(
                params.input_size,
                params.synapses_per_pattern.min(params.threshold),
            ),
            pattern_count: 0,
            pattern_cells: 0,
            segment_count: 0,
            false_match_by_synapses: HashMap::new(),
            expected_false_matches: RwLock::default(),
            theory: SpaceTheory::of(&params),
            params,
        }
    }

    pub fn name(&self) -> &Name {
        &self.name
    }

    pub fn params(&self) -> &SpaceParams {
        &self.params
    }

    pub(super) fn neuron(&self, name: &Name) -> Option<&Neuron> {
        let slot = *self.neuron_slots.get(name)?;
        self.neurons[slot as usize].as_ref()
    }

    pub(super) fn segment(&self, slot: SegmentSlot) -> &Segment {
        self.segments[slot as usize]
            .as_ref()
            .expect("a neuron's segment slot is live")
    }

    /// Decides how to store each request, in order, as if the earlier ones were applied: the
    /// first invalid request stops the batch and is named by its position.
    pub fn plan_store(
        &self,
        requests: &[StoreRequest],
    ) -> Result<Vec<Planned>, (usize, EngineError)> {
        Planner::default().plan(self, requests)
    }

    pub(super) fn plan_one(
        &self,
        request: &StoreRequest,
        draft: &mut Draft,
    ) -> Result<Planned, EngineError> {
        request.active.check_fits(self.params.input_size)?;
        let existing_id = |draft: &Draft, id: &Name| -> Option<Pattern> {
            draft.new_ids.get(id).cloned().or_else(|| {
                let neuron = self.neuron(&request.neuron)?;
                neuron.patterns.get(id).map(|p| p.active.clone())
            })
        };
        if let Some(id) = &request.id
            && let Some(active) = existing_id(draft, id)
        {
            return if active == request.active {
                Ok(Planned::Existing {
                    neuron: request.neuron.clone(),
                    id: id.clone(),
                })
            } else {
                Err(EngineError::IdConflict {
                    neuron: request.neuron.clone(),
                    id: id.clone(),
                })
            };
        }
        let same_content = draft
            .new_contents
            .get(&request.active)
            .cloned()
            .or_else(|| {
                let neuron = self.neuron(&request.neuron)?;
                neuron.by_content.get(&request.active).cloned()
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
        let union = draft
            .newest_synapses
            .as_ref()
            .map(|newest| union_len(newest, &synapses));
        let segment = match union {
            Some(len) if len <= self.max_synapses_per_segment as usize => draft.newest_number,
            _ => {
                if draft.segments >= self.params.max_segments_per_neuron {
                    return Err(EngineError::NeuronFull {
                        neuron: request.neuron.clone(),
                        segments: draft.segments,
                    });
                }
                draft.segments += 1;
                draft.newest_number = draft.next_segment;
                draft.next_segment += 1;
                draft.newest_synapses = Some(Vec::new());
                draft.newest_number
            }
        };
        let newest = draft
            .newest_synapses
            .as_mut()
            .expect("a segment was chosen");
        *newest = merge_sorted(newest, &synapses);
        let id = match &request.id {
            Some(id) => id.clone(),
            None => draft.fresh_id(|id| existing_id_in(self.neuron(&request.neuron), id)),
        };
        draft.new_ids.insert(id.clone(), request.active.clone());
        draft
            .new_contents
            .insert(request.active.clone(), id.clone());
        Ok(Planned::New(StorePlan {
            neuron: request.neuron.clone(),
            id,
            active: request.active.clone(),
            synapses,
            segment,
        }))
    }

    /// Samples min(s, |pattern|) of the pattern's bits. The generator is seeded by the space's
    /// seed, the neuron and the pattern, so the same store gives the same synapses whatever came
    /// before it, on any machine.
    fn sample_synapses(&self, neuron: &Name, active: &Pattern) -> Vec<CellIndex> {
        let mut key = Fnv1a::new(self.params.seed);
        key.write(neuron.as_str().as_bytes());
        key.write(&[0xFF]);
        for cell in active.cells() {
            key.write(&cell.to_le_bytes());
        }
        let mut rng = Rng::new(key.finish());
        let count = (self.params.synapses_per_pattern as usize).min(active.len());
        let mut synapses = rng.choose(active.cells(), count);
        synapses.sort_unstable();
        synapses
    }

    /// Makes a planned store visible. Plans must be applied in the order they were made.
    pub fn apply_store(&mut self, plan: &StorePlan) {
        let slot = self.apply_store_quietly(plan);
        self.refresh_neuron(slot);
    }

    /// Applies plans in order, refreshing each touched neuron's probability once at the end
    /// (start-up replays millions of plans; a neuron's refresh costs one step per segment).
    pub fn apply_stores(&mut self, plans: &[StorePlan]) {
        let mut touched: Vec<NeuronSlot> =
            plans.iter().map(|p| self.apply_store_quietly(p)).collect();
        touched.sort_unstable();
        touched.dedup();
        for slot in touched {
            self.refresh_neuron(slot);
        }
    }

    /// Creates a neuron if needed and restores its id and segment counters (start-up), so that
    /// ids and segment numbers of forgotten patterns are not handed out again.
    pub fn restore_neuron(&mut self, name: &Name, next_pattern_number: u64, next_segment: u32) {
        let slot = self.neuron_slot_or_create(name);
        let neuron = self.neurons[slot as usize].as_mut().expect("live neuron");
        neuron.next_pattern_number = neuron.next_pattern_number.max(next_pattern_number);
        neuron.next_segment = neuron.next_segment.max(next_segment);
    }

    fn apply_store_quietly(&mut self, plan: &StorePlan) -> NeuronSlot {
        let neuron_slot = self.neuron_slot_or_create(&plan.neuron);
        let segment_slot = self.segment_slot_or_create(neuron_slot, plan.segment);
        let segment = self.segments[segment_slot as usize]
            .as_mut()
            .expect("live segment");
        // One merge of two sorted lists: inserting cell by cell would shift the table once per
        // synapse, which dominated replaying millions of stores at start-up.
        let mut merged = Vec::with_capacity(segment.synapses.len() + plan.synapses.len());
        let mut existing = segment.synapses.iter().copied().peekable();
        for &cell in &plan.synapses {
            while let Some(&(c, uses)) = existing.peek() {
                if c >= cell {
                    break;
                }
                merged.push((c, uses));
                existing.next();
            }
            match existing.peek() {
                Some(&(c, uses)) if c == cell => {
                    merged.push((c, uses + 1));
                    existing.next();
                }
                _ => {
                    merged.push((cell, 1));
                    self.index.add(cell, segment_slot);
                }
            }
        }
        merged.extend(existing);
        segment.synapses = merged;
        segment.patterns += 1;
        let synapse_count = segment.synapses.len() as u32;
        let false_match = self.false_match_for(synapse_count);
        self.segments[segment_slot as usize]
            .as_mut()
            .expect("live segment")
            .false_match = false_match;
        let neuron = self.neurons[neuron_slot as usize]
            .as_mut()
            .expect("live neuron");
        if let Ok(number) = plan.id.as_str().parse::<u64>() {
            neuron.next_pattern_number = neuron.next_pattern_number.max(number.saturating_add(1));
        }
        neuron
            .by_content
            .insert(plan.active.clone(), plan.id.clone());
        neuron.patterns.insert(
            plan.id.clone(),
            StoredPattern {
                active: plan.active.clone(),
                synapses: plan.synapses.clone().into_boxed_slice(),
                segment: plan.segment,
            },
        );
        self.pattern_count += 1;
        self.pattern_cells += (plan.active.len() + plan.synapses.len()) as u64;
        neuron_slot
    }

    /// Checks that a pattern exists, so that forgetting it cannot fail once committed.
    pub fn check_forget(&self, neuron: &Name, id: &Name) -> Result<(), EngineError> {
        let found = self
            .neuron(neuron)
            .ok_or_else(|| EngineError::UnknownNeuron(neuron.clone()))?;
        if found.patterns.contains_key(id) {
            Ok(())
        } else {
            Err(EngineError::UnknownPattern {
                neuron: neuron.clone(),
                id: id.clone(),
            })
        }
    }

    /// Forgets a pattern: its synapses go unless another pattern of the segment still uses them,
    /// and a segment left without patterns disappears.
    pub fn apply_forget(&mut self, neuron: &Name, id: &Name) -> Result<(), EngineError> {
        self.check_forget(neuron, id)?;
        let neuron_slot = self.neuron_slots[neuron];
        let found = self.neurons[neuron_slot as usize]
            .as_mut()
            .expect("live neuron");
        let pattern = found.patterns.remove(id).expect("checked above");
        found.by_content.remove(&pattern.active);
        self.pattern_cells -= (pattern.active.len() + pattern.synapses.len()) as u64;
        let at = found
            .segments
            .binary_search_by_key(&pattern.segment, |&(n, _)| n)
            .expect("segment of a stored pattern");
        let segment_slot = found.segments[at].1;
        let segment = self.segments[segment_slot as usize]
            .as_mut()
            .expect("live segment");
        for cell in pattern.synapses.iter() {
            let i = segment
                .synapses
                .binary_search_by_key(cell, |&(c, _)| c)
                .expect("synapse of a stored pattern");
            segment.synapses[i].1 -= 1;
            if segment.synapses[i].1 == 0 {
                segment.synapses.remove(i);
                self.index.remove(*cell, segment_slot);
            }
        }
        segment.patterns -= 1;
        if segment.patterns == 0 {
            debug_assert!(segment.synapses.is_empty());
            self.segments[segment_slot as usize] = None;
            self.free_segments.push(segment_slot);
            self.segment_count -= 1;
            found.segments.remove(at);
        } else {
            let count = segment.synapses.len() as u32;
            let p = self.false_match_for(count);
            self.segments[segment_slot as usize]
                .as_mut()
                .expect("live segment")
                .false_match = p;
        }
        self.pattern_count -= 1;
        self.refresh_neuron(neuron_slot);
        Ok(())
    }

    /// Removes a neuron with all its segments and patterns.
    pub fn delete_neuron(&mut self, neuron: &Name) -> Result<(), EngineError> {
        let slot = self
            .neuron_slots
            .remove(neuron)
            .ok_or_else(|| EngineError::UnknownNeuron(neuron.clone()))?;
        let removed = self.neurons[slot as usize].take().expect("live neuron");
        self.free_neurons.push(slot);
        for (_, segment_slot) in removed.segments {
            let segment = self.segments[segment_slot as usize]
                .take()
                .expect("live segment");
            for (cell, _) in segment.synapses {
                self.index.remove(cell, segment_slot);
            }
            self.free_segments.push(segment_slot);
            self.segment_count -= 1;
        }
        self.pattern_count -= removed.patterns.len() as u64;
        self.pattern_cells -= removed
            .patterns
            .values()
            .map(|p| (p.active.len() + p.synapses.len()) as u64)
            .sum::<u64>();
        self.forget_expected_false_matches();
        Ok(())
    }

    /// A stored pattern with its segment's and neuron's current probabilities.
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
        Ok(PatternView {
            id: id.clone(),
            neuron: neuron.clone(),
            segment: pattern.segment,
            active: pattern.active.clone(),
            synapses: pattern.synapses.to_vec(),
            segment_false_match: self.segment(slot).false_match,
            neuron_false_match: found.false_match,
        })
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

    fn neuron_slot_or_create(&mut self, name: &Name) -> NeuronSlot {
        if let Some(&slot) = self.neuron_slots.get(name) {
            return slot;
        }
        let neuron = Neuron {
            name: name.clone(),
            segments: Vec::new(),
            next_segment: 0,
            patterns: HashMap::new(),
            by_content: HashMap::new(),
            next_pattern_number: 1,
            false_match: Probability::ZERO,
        };
        let slot = match self.free_neurons.pop() {
            Some(slot) => {
                self.neurons[slot as usize] = Some(neuron);
                slot
            }
            None => {
                self.neurons.push(Some(neuron));
                (self.neurons.len() - 1) as NeuronSlot
            }
        };
        self.neuron_slots.insert(name.clone(), slot);
        slot
    }

    fn segment_slot_or_create(&mut self, neuron_slot: NeuronSlot, number: u32) -> SegmentSlot {
        let neuron = self.neurons[neuron_slot as usize]
            .as_mut()
            .expect("live neuron");
        match neuron.segments.binary_search_by_key(&number, |&(n, _)| n) {
            Ok(at) => neuron.segments[at].1,
            Err(at) => {
                let segment = Segment {
                    neuron: neuron_slot,
                    number,
                    synapses: Vec::new(),
                    patterns: 0,
                    false_match: Probability::ZERO,
                };
                let slot = match self.free_segments.pop() {
                    Some(slot) => {
                        self.segments[slot as usize] = Some(segment);
                        slot
                    }
                    None => {
                        self.segments.push(Some(segment));
                        (self.segments.len() - 1) as SegmentSlot
                    }
                };
                neuron.segments.insert(at, (number, slot));
                neuron.next_segment = neuron.next_segment.max(number + 1);
                self.segment_count += 1;
                slot
            }
        }
    }

    fn false_match_for(&mut self, synapses: u32) -> Probability {
        let params = &self.params;
        *self
            .false_match_by_synapses
            .entry(synapses)
            .or_insert_with(|| params.segment_false_match(synapses))
    }

    /// Recomputes a neuron's cached false-match probability after one of its segments changed.
    fn refresh_neuron(&mut self, slot: NeuronSlot) {
        let neuron = self.neurons[slot as usize].as_ref().expect("live neuron");
        let p = Probability::any_of(
            neuron
                .segments
                .iter()
                .map(|&(_, s)| self.segment(s).false_match),
        );
        self.neurons[slot as usize]
            .as_mut()
            .expect("live neuron")
            .false_match = p;
        self.forget_expected_false_matches();
    }

    /// Drops the cached expected false matches: the neurons changed.
    fn forget_expected_false_matches(&mut self) {
        self.expected_false_matches
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Heap bytes held for synapses, by structure (capacities: what the allocator gave).
    pub fn memory(&self) -> MemoryUse {
        let segment_tables = self.segments.capacity() * size_of::<Option<Segment>>()
            + self
                .segments
                .iter()
                .flatten()
                .map(|s| s.synapses.capacity() * size_of::<(CellIndex, u32)>())
                .sum::<usize>();
        let pattern_synapses = self
            .neurons
            .iter()
            .flatten()
            .flat_map(|n| n.patterns.values())
            .map(|p| p.synapses.len() * size_of::<CellIndex>())
            .sum();
        MemoryUse {
            index: self.index.heap_bytes(),
            segment_tables,
            pattern_synapses,
        }
    }

    /// The bytes the space takes in memory, estimated from its counts in O(1): the index, the
    /// segment and neuron tables, and the stored patterns with their maps. The service checks
    /// its memory budget against this before each write, so the estimate leans high.
    pub fn estimated_bytes(&self) -> u64 {
        let synapses = self.index.len() as u64;
        self.index.estimated_bytes()
            + (self.segments.len() * size_of::<Option<Segment>>()) as u64
            + synapses * SEGMENT_BYTES_PER_SYNAPSE
            + self.neurons.len() as u64 * NEURON_BYTES
            + self.pattern_count * PATTERN_BYTES
            + self.pattern_cells * size_of::<CellIndex>() as u64
    }

    /// The most bytes applying `plans` (in order, against the space as it is) can add to
    /// [`Space::estimated_bytes`]: their patterns, their synapses in the segment tables and the
    /// index, and the new neurons and segments they open, with the dense index's blocks for the
    /// slots those segments will take.
    pub fn estimated_cost<'a>(&self, plans: impl IntoIterator<Item = &'a StorePlan>) -> u64 {
        let mut bytes = 0;
        let mut new_neurons: HashSet<&Name> = HashSet::new();
        let mut new_segments: HashSet<(&Name, u32)> = HashSet::new();
        for plan in plans {
            let cells = (plan.active.len() + plan.synapses.len()) as u64;
            bytes += PATTERN_BYTES
                + cells * size_of::<CellIndex>() as u64
                + plan.synapses.len() as u64
                    * (SEGMENT_BYTES_PER_SYNAPSE + self.index.bytes_per_synapse());
            let neuron = self.neuron(&plan.neuron);
            if neuron.is_none() && new_neurons.insert(&plan.neuron) {
                bytes += NEURON_BYTES;
            }
            let segment_exists = neuron.is_some_and(|n| {
                n.segments
                    .binary_search_by_key(&plan.segment, |&(number, _)| number)
                    .is_ok()
            });
            if !segment_exists && new_segments.insert((&plan.neuron, plan.segment)) {
                bytes += size_of::<Option<Segment>>() as u64;
            }
        }
        // New segments take the freed slots first, then slots at the end of the table.
        let beyond_free = new_segments.len().saturating_sub(self.free_segments.len());
        if beyond_free > 0 {
            let last = (self.segments.len() + beyond_free - 1) as SegmentSlot;
            bytes += self.index.bytes_to_hold(last);
        }
        bytes
    }

    /// Whether recognition counts with the dense bit matrix (true) or with postings.
    pub fn is_dense(&self) -> bool {
        self.index.is_dense()
    }

    /// The number of synapses in the space.
    pub fn synapse_count(&self) -> usize {
        self.index.len()
    }
}

/// Heap bytes per synapse in a segment's (cell, uses) table, with room for its growth.
const SEGMENT_BYTES_PER_SYNAPSE: u64 = 12;
/// A neuron's slot, name, maps and bookkeeping, beyond its patterns.
const NEURON_BYTES: u64 = 256;
/// A stored pattern's entries in its neuron's two maps (by id and by content), its id and the
/// headers of its two cell lists, beyond the cells themselves.
const PATTERN_BYTES: u64 = 256;

fn existing_id_in(neuron: Option<&Neuron>, id: &Name) -> bool {
    neuron.is_some_and(|n| n.patterns.contains_key(id))
}

/// The largest synapse count whose false-match probability stays at or under the target; at least
/// one pattern's worth, which `SpaceParams::new` guarantees meets it.
fn largest_count_meeting_target(params: &SpaceParams) -> u32 {
    let target = params.max_false_match.ln();
    let meets = |count: u32| params.segment_false_match(count).ln() <= target;
    let (mut good, mut bad) = (
        params.synapses_per_pattern.min(params.active_bits),
        params.input_size + 1,
    );
    if meets(params.input_size) {
        return params.input_size;
    }
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if meets(mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    good
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
                .or_insert_with(|| Draft::of(space, space.neuron(&request.neuron)));
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
pub(super) struct Draft {
    segments: u32,
    next_segment: u32,
    newest_number: u32,
    newest_synapses: Option<Vec<CellIndex>>,
    new_ids: HashMap<Name, Pattern>,
    new_contents: HashMap<Pattern, Name>,
    next_pattern_number: u64,
}

impl Draft {
    fn of(space: &Space, neuron: Option<&Neuron>) -> Draft {
        let newest = neuron.and_then(|n| n.segments.last());
        Draft {
            segments: neuron.map_or(0, |n| n.segments.len() as u32),
            next_segment: neuron.map_or(0, |n| n.next_segment),
            newest_number: neuron
                .and_then(|n| n.segments.last())
                .map_or(0, |&(number, _)| number),
            newest_synapses: newest.map(|&(_, slot)| {
                space
                    .segment(slot)
                    .synapses
                    .iter()
                    .map(|&(c, _)| c)
                    .collect()
            }),
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

/// |a ∪ b| for sorted, distinct slices.
fn union_len(a: &[CellIndex], b: &[CellIndex]) -> usize {
    let (mut i, mut j, mut shared) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    a.len() + b.len() - shared
}

/// The sorted union of two sorted, distinct slices.
fn merge_sorted(a: &[CellIndex], b: &[CellIndex]) -> Vec<CellIndex> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// FNV-1a, 64-bit: a stable hash for seeding (std's hasher may change between releases).
struct Fnv1a(u64);

impl Fnv1a {
    fn new(seed: u64) -> Fnv1a {
        let mut h = Fnv1a(0xCBF2_9CE4_8422_2325);
        h.write(&seed.to_le_bytes());
        h
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
