//! Calibration: does the theory hold on this space's own data?
//!
//! Every probability dendrite reports assumes random, independent sparse codes. Real codes are
//! often correlated, and then the reported p-values are optimistic. A calibration measures three
//! rates and sets each beside the theory's prediction:
//!
//! - random inputs of the space's size matching a neuron (the engine's self-test: this must
//!   agree, whatever the data);
//! - the space's own stored patterns matching neurons other than their own (cross-matches);
//! - stored patterns missed by their own neuron at 10%, 20% and 30% noise.
//!
//! The work is a fixed number of recognitions, done a few at a time ([`Calibrator::step`]) so
//! that the caller can release the space's lock between steps and writes are not held up.

use super::{Space, StoredPattern};
use crate::engine::pattern::{CellIndex, Name, Pattern};
use crate::rng::Rng;
use crate::theory;
use serde::Serialize;

/// The normal quantile of a two-sided 99.9% interval.
const Z_999: f64 = 3.2905;
/// The noise levels recall is measured at.
const NOISE_LEVELS: [f64; 3] = [0.1, 0.2, 0.3];

/// One measured rate beside its prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationLine {
    pub check: String,
    pub description: String,
    pub trials: u64,
    pub events: u64,
    pub observed_rate: f64,
    /// The 99.9% interval of the observed rate (Wilson).
    pub interval: (f64, f64),
    pub predicted_rate: f64,
    /// `consistent` when the prediction lies in the interval; `optimistic` when errors are more
    /// frequent than predicted; `pessimistic` when less.
    pub verdict: &'static str,
    /// How far off the prediction is (observed / predicted, or its inverse), about; 1 when
    /// consistent.
    pub factor: f64,
}

/// A calibration's answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Calibration {
    pub space: Name,
    /// Stored patterns sampled.
    pub sample: u64,
    /// Random inputs asked.
    pub random_inputs: u64,
    pub lines: Vec<CalibrationLine>,
}

/// Events counted against a sum of per-trial predictions.
#[derive(Clone, Debug, Default)]
struct Tally {
    trials: u64,
    events: u64,
    predicted: f64,
}

impl Tally {
    fn add(&mut self, trials: u64, events: u64, predicted: f64) {
        self.trials += trials;
        self.events += events;
        self.predicted += predicted;
    }

    fn line(&self, check: &str, description: String) -> CalibrationLine {
        let trials = self.trials.max(1);
        let observed = self.events as f64 / trials as f64;
        let predicted = self.predicted / trials as f64;
        let (low, high) = theory::wilson_interval(self.events.min(trials), trials, Z_999);
        let (verdict, factor) = if predicted < low {
            ("optimistic", observed / predicted.max(f64::MIN_POSITIVE))
        } else if predicted > high {
            (
                "pessimistic",
                predicted / observed.max(high / 2.0).max(f64::MIN_POSITIVE),
            )
        } else {
            ("consistent", 1.0)
        };
        CalibrationLine {
            check: check.to_owned(),
            description,
            trials: self.trials,
            events: self.events,
            observed_rate: observed,
            interval: (low, high),
            predicted_rate: predicted,
            verdict,
            factor,
        }
    }
}

/// A calibration in progress: what to ask, and what was seen so far.
#[derive(Debug)]
pub struct Calibrator {
    space: Name,
    rng: Rng,
    random_left: u64,
    random_inputs: u64,
    /// Sampled stored patterns, (neuron, id), still to be asked.
    sample: Vec<(Name, Name)>,
    sampled: u64,
    random: Tally,
    cross: Tally,
    recall: [Tally; 3],
}

impl Calibrator {
    /// Plans a calibration of `space` with up to `sample` stored patterns and `random_inputs`
    /// random inputs, seeded by `seed`.
    pub fn new(space: &Space, sample: usize, random_inputs: u64, seed: u64) -> Calibrator {
        let mut rng = Rng::new(seed);
        // Reservoir sampling: one pass over the stored patterns, cloning only the ids kept, so
        // a space of millions of patterns costs no copy of them all.
        let mut kept: Vec<(Name, Name)> = Vec::with_capacity(sample);
        let stored = space
            .neurons
            .iter()
            .flat_map(|(_, neuron)| neuron.patterns.keys().map(move |id| (neuron, id)));
        for (seen, (neuron, id)) in stored.enumerate() {
            if kept.len() < sample {
                kept.push((neuron.name.clone(), id.clone()));
            } else {
                let at = rng.below(seen as u64 + 1) as usize;
                if at < sample {
                    kept[at] = (neuron.name.clone(), id.clone());
                }
            }
        }
        let sample = kept;
        Calibrator {
            space: space.name.clone(),
            rng,
            random_left: if space.neurons.iter().next().is_some() {
                random_inputs
            } else {
                0
            },
            random_inputs: 0,
            sampled: 0,
            sample,
            random: Tally::default(),
            cross: Tally::default(),
            recall: Default::default(),
        }
    }

    /// Recognitions still to do.
    pub fn remaining(&self) -> u64 {
        self.random_left + self.sample.len() as u64 * (1 + NOISE_LEVELS.len() as u64)
    }

    /// Does up to `work` recognitions against `space`; true when nothing is left.
    pub fn step(&mut self, space: &Space, work: u64) -> bool {
        let mut done = 0;
        // The expected false matches of a random input: the same for every input of this step.
        let expected: f64 = if self.random_left > 0 {
            space
                .neurons
                .iter()
                .map(|(_, neuron)| neuron.false_match.value())
                .sum()
        } else {
            0.0
        };
        while done < work && self.random_left > 0 {
            self.ask_random(space, expected);
            self.random_left -= 1;
            done += 1;
        }
        while done < work {
            let Some((neuron, id)) = self.sample.pop() else {
                break;
            };
            // Forgotten since it was sampled: skip it.
            if let Some(stored) = space.neuron(&neuron).and_then(|n| n.patterns.get(&id)) {
                let stored = stored.clone();
                self.ask_stored(space, &neuron, &stored);
                self.sampled += 1;
            }
            done += 1 + NOISE_LEVELS.len() as u64;
        }
        self.remaining() == 0
    }

    /// One random input of the space's nominal size: every neuron it matches is a false match.
    fn ask_random(&mut self, space: &Space, expected: f64) {
        let params = &space.params;
        let input = self
            .rng
            .distinct_below(params.input_size, params.active_bits);
        let active = Pattern::from_sorted(input, params.input_size).expect("distinct, in range");
        let neurons = space.neuron_slots.len() as u64;
        let matched = matching_neurons(space, active.cells()).len() as u64;
        self.random.add(neurons, matched, expected);
        self.random_inputs += 1;
    }

    /// A stored pattern as it is, against every other neuron; then with noise, against its own.
    fn ask_stored(&mut self, space: &Space, neuron: &Name, stored: &StoredPattern) {
        let params = &space.params;
        let own_slot = space.neuron_slots[neuron];
        let active = stored.active.unpack();
        let others = space.neuron_slots.len() as u64 - 1;
        if others > 0 {
            let matched = matching_neurons(space, &active[..])
                .into_iter()
                .filter(|&slot| slot != own_slot)
                .count() as u64;
            let size = active.len() as u64;
            let mut memo = std::collections::HashMap::new();
            let predicted: f64 = space
                .neurons
                .iter()
                .filter(|&(slot, _)| slot != own_slot)
                .map(|(slot, _)| {
                    space
                        .neuron_false_match_at(slot, size, params.threshold, &mut memo)
                        .value()
                })
                .sum();
            self.cross.add(others, matched, predicted);
        }
        let cells = &active[..];
        let a = cells.len() as u64;
        for (level, fraction) in NOISE_LEVELS.into_iter().enumerate() {
            let replaced = theory::noise_bits(fraction, a) as usize;
            let noisy = with_noise(&mut self.rng, params.input_size, cells, replaced);
            let missed = !matching_neurons(space, noisy.cells()).contains(&own_slot);
            let predicted = theory::false_miss(
                a,
                u64::from(params.synapses_per_pattern),
                replaced as u64,
                u64::from(params.threshold),
            );
            self.recall[level].add(1, u64::from(missed), predicted.value());
        }
    }

    /// The answer, from what was seen.
    pub fn finish(self) -> Calibration {
        let mut lines = vec![
            self.random.line(
                "random_inputs",
                "random inputs of the space's size matching a neuron, against the theory's false-match probability: a self-test of the engine, which must agree".to_owned(),
            ),
            self.cross.line(
                "stored_patterns_cross_match",
                "the space's own stored patterns matching neurons other than their own, against what the theory predicts for random codes: optimistic when the codes are correlated".to_owned(),
            ),
        ];
        for (level, fraction) in NOISE_LEVELS.into_iter().enumerate() {
            let percent = (fraction * 100.0).round();
            lines.push(self.recall[level].line(
                &format!("miss_at_{percent}_percent_noise"),
                format!(
                    "stored patterns with {percent}% of their bits replaced, missed by their own neuron, against the theory's miss probability"
                ),
            ));
        }
        Calibration {
            space: self.space,
            sample: self.sampled,
            random_inputs: self.random_inputs,
            lines,
        }
    }
}

/// The neurons an input matches at the space's threshold.
fn matching_neurons(space: &Space, active: &[CellIndex]) -> Vec<u32> {
    let overlaps =
        space
            .index
            .overlaps_reaching(active, space.params.threshold, space.segments.slot_count());
    let mut neurons: Vec<u32> = overlaps
        .reaching
        .iter()
        .map(|&(slot, _)| space.segment(slot).neuron)
        .collect();
    neurons.sort_unstable();
    neurons.dedup();
    neurons
}

/// `cells` with `replaced` of them swapped for other random bits below `n`.
fn with_noise(rng: &mut Rng, n: u32, cells: &[CellIndex], replaced: usize) -> Pattern {
    let mut kept = rng.choose(cells, cells.len() - replaced);
    while kept.len() < cells.len() {
        let bit = rng.below(u64::from(n)) as CellIndex;
        if !cells.contains(&bit) && !kept.contains(&bit) {
            kept.push(bit);
        }
    }
    kept.sort_unstable();
    Pattern::from_sorted(kept, n).expect("distinct, in range")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Planned, SpaceSpec, StoreRequest, space_for_tests};

    fn space_with(patterns: impl Fn(usize, &mut Rng) -> Vec<u32>) -> Space {
        let mut space = space_for_tests(
            "c",
            SpaceSpec {
                input_size: 2048,
                active_bits: 40,
                synapses_per_pattern: Some(24),
                threshold: Some(12),
                ..SpaceSpec::default()
            },
        );
        let mut rng = Rng::new(8);
        for i in 0..400 {
            let cells = patterns(i, &mut rng);
            let request = StoreRequest {
                neuron: Name::parse(&format!("n{}", i % 100)).unwrap(),
                active: Pattern::from_sorted(cells, 2048).unwrap(),
                id: None,
                metadata: None,
            };
            if let Planned::New(plan) = space.plan_store(&[request]).unwrap().remove(0) {
                space
                    .apply_store(plan)
                    .expect("a plan of this space applies");
            }
        }
        space
    }

    fn calibrate(space: &Space) -> Calibration {
        let mut calibrator = Calibrator::new(space, 200, 300, 1);
        while !calibrator.step(space, 16) {}
        calibrator.finish()
    }

    #[test]
    fn random_codes_calibrate_consistent() {
        let space = space_with(|_, rng| rng.distinct_below(2048, 40));
        let calibration = calibrate(&space);
        assert_eq!((calibration.sample, calibration.random_inputs), (200, 300));
        for line in &calibration.lines {
            assert_eq!(line.verdict, "consistent", "{line:?}");
        }
    }

    #[test]
    fn correlated_codes_calibrate_optimistic_on_cross_matches() {
        // Every pattern shares 30 of its 40 bits with one common core.
        let core: Vec<u32> = Rng::new(99).distinct_below(2048, 30);
        let space = space_with(|_, rng| {
            let mut cells = core.clone();
            while cells.len() < 40 {
                let bit = rng.below(2048) as u32;
                if !cells.contains(&bit) {
                    cells.push(bit);
                }
            }
            cells.sort_unstable();
            cells
        });
        let calibration = calibrate(&space);
        let cross = &calibration.lines[1];
        assert_eq!(cross.check, "stored_patterns_cross_match");
        assert_eq!(cross.verdict, "optimistic", "{cross:?}");
        assert!(cross.factor > 10.0, "{cross:?}");
        assert_eq!(
            calibration.lines[0].verdict, "consistent",
            "random inputs still agree"
        );
    }
}
