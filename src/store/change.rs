//! A committed write as a value: what the change log holds, and what a replica applies.
//!
//! Every write transaction commits exactly one [`Change`], numbered in commit order. A replica's
//! engine is the result of applying the changes in that order, whether it made them itself or
//! read them from the log another replica wrote: [`Change::apply`] is the one place that turns a
//! change into engine state, so the two paths cannot drift apart. The log stores a change as JSON
//! (PostgreSQL's `json`), which an operator can read with plain SQL.

use crate::engine::encoder::EncoderSpec;
use crate::engine::{
    EngineError, Metadata, Name, Pattern, Space, SpaceParams, SpaceSpec, Spaces, StorePlan,
};
use serde::{Deserialize, Serialize};

/// What one write transaction changed.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    CreateSpace {
        space: Name,
        params: SpaceParams,
    },
    DeleteSpace {
        space: Name,
    },
    /// New patterns, each with the decisions learning made for it, in the order they were planned
    /// (a group commit may carry several spaces).
    Store {
        patterns: Vec<(Name, StorePlan)>,
    },
    Forget {
        space: Name,
        neuron: Name,
        id: Name,
    },
    DeleteNeuron {
        space: Name,
        neuron: Name,
    },
    /// Neurons with their counters, raised to at least these (never lowered): made only by
    /// `dendrite import`, so a moved neuron keeps handing out the ids and segment numbers it
    /// would have, and one whose patterns were all forgotten moves too.
    Neurons {
        space: Name,
        neurons: Vec<NeuronCounters>,
    },
}

/// A neuron's counters: its next server-assigned pattern number and its next segment number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeuronCounters {
    pub neuron: Name,
    pub next_pattern: u64,
    pub next_segment: u32,
}

/// Why a change from the log could not be applied: the replica no longer matches the database
/// and must reload.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("change {sequence} names space {space}, which this replica does not hold")]
    NoSpace { sequence: u64, space: Name },
    #[error("change {sequence} cannot be applied: {error}")]
    Engine { sequence: u64, error: EngineError },
}

impl Change {
    /// The log's name for the kind of change (the `kind` column).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::CreateSpace { .. } => "create_space",
            Change::DeleteSpace { .. } => "delete_space",
            Change::Store { .. } => "store",
            Change::Forget { .. } => "forget",
            Change::DeleteNeuron { .. } => "delete_neuron",
            Change::Neurons { .. } => "neurons",
        }
    }

    /// Makes the change visible in `spaces`. `sequence` only names the change in errors.
    ///
    /// A change is applied exactly as the replica that made it applied it, so every replica ends
    /// with the same segments and synapses. A new space's theory is computed here (milliseconds):
    /// the replica that created it had done so before its commit.
    pub fn apply(self, spaces: &Spaces, sequence: u64) -> Result<(), ApplyError> {
        let space_of = |name: &Name| {
            spaces.get(name).ok_or_else(|| ApplyError::NoSpace {
                sequence,
                space: name.clone(),
            })
        };
        let engine = |error| ApplyError::Engine { sequence, error };
        match self {
            // Another shard group's spaces are neither held nor followed here.
            Change::CreateSpace { space, .. }
            | Change::DeleteSpace { space }
            | Change::Forget { space, .. }
            | Change::DeleteNeuron { space, .. }
            | Change::Neurons { space, .. }
                if !spaces.serves(&space) => {}
            Change::CreateSpace { space, params } => {
                spaces.insert(Space::new(space, params));
            }
            Change::DeleteSpace { space } => {
                let removed = spaces
                    .remove(&space)
                    .ok_or(ApplyError::NoSpace { sequence, space })?;
                free_elsewhere(removed);
            }
            Change::Store { patterns } => {
                // Consecutive plans of one space are applied under one write lock.
                let mut patterns = patterns
                    .into_iter()
                    .filter(|(space, _)| spaces.serves(space))
                    .peekable();
                while let Some((space, plan)) = patterns.next() {
                    let mut run = vec![plan];
                    while let Some((_, next)) = patterns.next_if(|(next, _)| *next == space) {
                        run.push(next);
                    }
                    // Every plan is checked against the space as it applies: a log entry that
                    // breaks a rule (a synapse past the input, an over-full segment) is an error
                    // the replica answers by reloading, never a panic in the index.
                    space_of(&space)?
                        .update(|s| s.apply_stores(run))
                        .map_err(engine)?;
                }
            }
            Change::Forget { space, neuron, id } => {
                space_of(&space)?
                    .update(|s| s.apply_forget(&neuron, &id))
                    .map_err(engine)?;
            }
            Change::DeleteNeuron { space, neuron } => {
                space_of(&space)?
                    .update(|s| s.delete_neuron(&neuron))
                    .map_err(engine)?;
            }
            Change::Neurons { space, neurons } => {
                space_of(&space)?.update(|s| {
                    for counters in &neurons {
                        s.restore_neuron(
                            &counters.neuron,
                            counters.next_pattern,
                            counters.next_segment,
                        );
                    }
                });
            }
        }
        Ok(())
    }

    /// The change's body in the log.
    pub fn to_json(&self) -> String {
        let body = match self {
            Change::CreateSpace { space, params } => Body::CreateSpace {
                space: space.as_str(),
                params: StoredParams::from(params),
            },
            Change::DeleteSpace { space } => Body::DeleteSpace {
                space: space.as_str(),
            },
            Change::Store { patterns } => Body::Store {
                patterns: patterns
                    .iter()
                    .map(|(space, plan)| StoredPattern {
                        space: space.as_str(),
                        neuron: plan.neuron.as_str(),
                        id: plan.id.as_str(),
                        segment: plan.segment,
                        active: plan.active.cells().to_vec(),
                        synapses: plan.synapses.clone(),
                        metadata: plan.metadata.as_ref().map(|m| m.as_str().to_owned()),
                    })
                    .collect(),
            },
            Change::Forget { space, neuron, id } => Body::Forget {
                space: space.as_str(),
                neuron: neuron.as_str(),
                id: id.as_str(),
            },
            Change::DeleteNeuron { space, neuron } => Body::DeleteNeuron {
                space: space.as_str(),
                neuron: neuron.as_str(),
            },
            Change::Neurons { space, neurons } => Body::Neurons {
                space: space.as_str(),
                neurons: neurons.clone(),
            },
        };
        serde_json::to_string(&body).expect("a change always serialises")
    }

    /// A change read back from the log: `kind` and its JSON body.
    pub fn from_json(kind: &str, json: &str) -> anyhow::Result<Change> {
        use anyhow::Context;
        let body: Body<'_> = serde_json::from_str(json)
            .with_context(|| format!("a {kind} change whose body does not parse"))?;
        anyhow::ensure!(
            body.kind() == kind,
            "a {kind} change with a {} body",
            body.kind()
        );
        let name = |raw: &str| Name::parse(raw).with_context(|| format!("the name {raw:?}"));
        Ok(match body {
            Body::CreateSpace { space, params } => Change::CreateSpace {
                space: name(space)?,
                params: SpaceParams::new(&params.into())?,
            },
            Body::DeleteSpace { space } => Change::DeleteSpace {
                space: name(space)?,
            },
            Body::Store { patterns } => Change::Store {
                patterns: patterns
                    .into_iter()
                    .map(|p| -> anyhow::Result<(Name, StorePlan)> {
                        // The input size is checked when the plan is applied to its space; here
                        // the cells only need to be a valid sorted set.
                        let active = Pattern::from_sorted(p.active, u32::MAX)?;
                        Ok((
                            name(p.space)?,
                            StorePlan {
                                neuron: name(p.neuron)?,
                                id: name(p.id)?,
                                active,
                                synapses: p.synapses,
                                segment: p.segment,
                                metadata: p.metadata.as_deref().map(Metadata::parse).transpose()?,
                            },
                        ))
                    })
                    .collect::<anyhow::Result<_>>()?,
            },
            Body::Forget { space, neuron, id } => Change::Forget {
                space: name(space)?,
                neuron: name(neuron)?,
                id: name(id)?,
            },
            Body::DeleteNeuron { space, neuron } => Change::DeleteNeuron {
                space: name(space)?,
                neuron: name(neuron)?,
            },
            Body::Neurons { space, neurons } => Change::Neurons {
                space: name(space)?,
                neurons,
            },
        })
    }
}

/// The JSON of a change. Tagged by `kind` as well as stored beside it, so a body read on its own
/// says what it is.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Body<'a> {
    CreateSpace {
        space: &'a str,
        params: StoredParams,
    },
    DeleteSpace {
        space: &'a str,
    },
    Store {
        #[serde(borrow)]
        patterns: Vec<StoredPattern<'a>>,
    },
    Forget {
        space: &'a str,
        neuron: &'a str,
        id: &'a str,
    },
    DeleteNeuron {
        space: &'a str,
        neuron: &'a str,
    },
    Neurons {
        space: &'a str,
        neurons: Vec<NeuronCounters>,
    },
}

impl Body<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Body::CreateSpace { .. } => "create_space",
            Body::DeleteSpace { .. } => "delete_space",
            Body::Store { .. } => "store",
            Body::Forget { .. } => "forget",
            Body::DeleteNeuron { .. } => "delete_neuron",
            Body::Neurons { .. } => "neurons",
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredPattern<'a> {
    space: &'a str,
    neuron: &'a str,
    id: &'a str,
    segment: u32,
    active: Vec<u32>,
    synapses: Vec<u32>,
    /// The pattern's metadata as compact JSON text; absent when it has none (so entries of
    /// patterns without metadata read as they did before metadata existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<String>,
}

/// A space's parameters with every default filled in, as the `spaces` table keeps them.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredParams {
    input_size: u32,
    active_bits: u32,
    synapses_per_pattern: u32,
    threshold: u32,
    max_false_match: f64,
    max_segments_per_neuron: u32,
    seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encoder: Option<EncoderSpec>,
}

impl From<&SpaceParams> for StoredParams {
    fn from(p: &SpaceParams) -> StoredParams {
        StoredParams {
            input_size: p.input_size,
            active_bits: p.active_bits,
            synapses_per_pattern: p.synapses_per_pattern,
            threshold: p.threshold,
            max_false_match: p.max_false_match,
            max_segments_per_neuron: p.max_segments_per_neuron,
            seed: p.seed,
            encoder: p.encoder.as_ref().map(|encoder| encoder.spec().clone()),
        }
    }
}

impl From<StoredParams> for SpaceSpec {
    fn from(p: StoredParams) -> SpaceSpec {
        SpaceSpec {
            input_size: p.input_size,
            active_bits: p.active_bits,
            synapses_per_pattern: Some(p.synapses_per_pattern),
            threshold: Some(p.threshold),
            max_false_match: Some(p.max_false_match),
            max_segments_per_neuron: Some(p.max_segments_per_neuron),
            seed: Some(p.seed),
            encoder: p.encoder,
        }
    }
}

/// Frees a deleted space's memory on a thread of its own: dropping half a million patterns
/// takes a good part of a second, which the writer (and every other space's writes behind it)
/// would otherwise wait for. Should no thread start, it is freed here after all.
fn free_elsewhere(space: impl Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("dendrite-free".into())
        .spawn(move || drop(space));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{StoreRequest, tiny_space};

    fn name(raw: &str) -> Name {
        Name::parse(raw).unwrap()
    }

    /// Plans for `count` stores to neuron `n` of a tiny space.
    fn planned_stores(space: &Space, count: u32) -> Vec<StorePlan> {
        let requests: Vec<StoreRequest> = (0..count)
            .map(|i| StoreRequest {
                neuron: name("n"),
                active: Pattern::parse(&[i64::from(i), 20, 30, 40, 50], 64).unwrap(),
                id: None,
                metadata: None,
            })
            .collect();
        space
            .plan_store(&requests)
            .unwrap()
            .into_iter()
            .filter_map(|p| match p {
                crate::engine::Planned::New(plan) => Some(plan),
                crate::engine::Planned::Existing { .. } => None,
            })
            .collect()
    }

    #[test]
    fn every_kind_of_change_round_trips_through_its_json() {
        let space = tiny_space("s");
        let mut plans = planned_stores(&space, 3);
        plans[1].metadata = Some(Metadata::parse(r#"{"shift":"night"}"#).unwrap());
        let changes = vec![
            Change::CreateSpace {
                space: name("s"),
                params: space.params().clone(),
            },
            Change::Store {
                patterns: plans.into_iter().map(|p| (name("s"), p)).collect(),
            },
            Change::Forget {
                space: name("s"),
                neuron: name("n"),
                id: name("2"),
            },
            Change::DeleteNeuron {
                space: name("s"),
                neuron: name("n"),
            },
            Change::DeleteSpace { space: name("s") },
            Change::Neurons {
                space: name("s"),
                neurons: vec![NeuronCounters {
                    neuron: name("n"),
                    next_pattern: 12,
                    next_segment: 3,
                }],
            },
        ];
        for change in changes {
            let json = change.to_json();
            assert_eq!(Change::from_json(change.kind(), &json).unwrap(), change);
        }
    }

    #[test]
    fn a_body_that_does_not_match_its_kind_is_refused() {
        let json = Change::DeleteSpace { space: name("s") }.to_json();
        let error = Change::from_json("forget", &json).unwrap_err();
        assert!(error.to_string().contains("delete_space body"), "{error}");
        assert!(Change::from_json("store", "{\"kind\": \"store\"}").is_err());
    }

    #[test]
    fn a_replica_serving_some_spaces_skips_the_others_changes_without_error() {
        let spaces = Spaces::serving(crate::engine::SpaceSet::parse("s").unwrap());
        let (s, t) = (tiny_space("s"), tiny_space("t"));
        let log = vec![
            Change::CreateSpace {
                space: name("t"),
                params: t.params().clone(),
            },
            Change::CreateSpace {
                space: name("s"),
                params: s.params().clone(),
            },
            // One commit may carry stores to several spaces: only the served ones apply.
            Change::Store {
                patterns: planned_stores(&t, 3)
                    .into_iter()
                    .map(|p| (name("t"), p))
                    .chain(planned_stores(&s, 2).into_iter().map(|p| (name("s"), p)))
                    .collect(),
            },
            Change::Forget {
                space: name("t"),
                neuron: name("n"),
                id: name("1"),
            },
            Change::DeleteNeuron {
                space: name("t"),
                neuron: name("n"),
            },
            Change::DeleteSpace { space: name("t") },
        ];
        for (sequence, change) in (1..).zip(log) {
            change.apply(&spaces, sequence).unwrap();
        }
        assert!(spaces.get(&name("t")).is_none());
        let held = spaces.get(&name("s")).unwrap();
        assert_eq!(held.read().unwrap().counts().patterns, 2);
    }

    #[test]
    fn applying_the_log_rebuilds_what_the_writer_applied() {
        let written = Spaces::default();
        let followed = Spaces::default();
        let space = tiny_space("s");
        let log = vec![
            Change::CreateSpace {
                space: name("s"),
                params: space.params().clone(),
            },
            Change::Store {
                patterns: planned_stores(&space, 12)
                    .into_iter()
                    .map(|p| (name("s"), p))
                    .collect(),
            },
            Change::Forget {
                space: name("s"),
                neuron: name("n"),
                id: name("3"),
            },
        ];
        for (sequence, change) in (1..).zip(log) {
            let read_back = Change::from_json(change.kind(), &change.to_json()).unwrap();
            change.apply(&written, sequence).unwrap();
            read_back.apply(&followed, sequence).unwrap();
        }
        let report = |spaces: &Spaces| {
            let space = spaces.get(&name("s")).unwrap();
            let space = space.read().unwrap();
            (space.counts(), space.neuron_summary(&name("n")).unwrap())
        };
        assert_eq!(report(&written), report(&followed));
        let error = Change::Forget {
            space: name("s"),
            neuron: name("n"),
            id: name("3"),
        }
        .apply(&followed, 4)
        .unwrap_err();
        assert!(matches!(error, ApplyError::Engine { sequence: 4, .. }));
    }
}
