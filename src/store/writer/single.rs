//! Writes that are one change each: creating and deleting a space, forgetting a pattern,
//! deleting a neuron. Each is checked against the engine once caught up, so it cannot fail once
//! committed.

use super::command::Written;
use super::error::WriteError;
use super::task::WriterTask;
use crate::engine::{EngineError, Name, Space, SpaceReport, Spaces};
use crate::store::{Change, Purge, WriteStore};
use std::sync::PoisonError;

impl<S: WriteStore> WriterTask<S> {
    pub(super) async fn create_space(
        &mut self,
        space: Space,
    ) -> Result<Written<(SpaceReport, bool)>, WriteError> {
        let name = space.name().clone();
        self.check_served(&name)?;
        self.lock(&[&name]).await?;
        if let Some(existing) = self.spaces.get(&name) {
            let outcome = {
                let existing = existing.read().unwrap_or_else(PoisonError::into_inner);
                let differences = existing.params().differences(space.params());
                if differences.is_empty() {
                    Ok((existing.report(), false))
                } else {
                    Err(WriteError::SpaceConflict(name, differences))
                }
            };
            return self.unlock(outcome).await;
        }
        let params = space.params().clone();
        let report = space.report();
        let change = Change::CreateSpace {
            space: name,
            params,
        };
        let sequence = self.commit(change, Some(space)).await?;
        self.stats.record(1);
        Ok(Written {
            value: (report, true),
            sequence,
        })
    }

    pub(super) async fn delete_space(&mut self, name: Name) -> Result<Written<()>, WriteError> {
        self.checked(
            &name,
            |spaces| {
                spaces
                    .get(&name)
                    .map(drop)
                    .ok_or(WriteError::UnknownSpace(name.clone()))
            },
            Change::DeleteSpace {
                space: name.clone(),
            },
        )
        .await
    }

    pub(super) async fn forget(
        &mut self,
        space: Name,
        neuron: Name,
        id: Name,
    ) -> Result<Written<()>, WriteError> {
        let check = |spaces: &Spaces| {
            Self::check_in(spaces, &space, |checked| checked.check_forget(&neuron, &id))
        };
        let change = Change::Forget {
            space: space.clone(),
            neuron: neuron.clone(),
            id: id.clone(),
        };
        self.checked(&space, check, change).await
    }

    pub(super) async fn delete_neuron(
        &mut self,
        space: Name,
        neuron: Name,
    ) -> Result<Written<()>, WriteError> {
        let check = |spaces: &Spaces| {
            Self::check_in(spaces, &space, |checked| {
                checked.neuron_summary(&neuron).map(drop)
            })
        };
        let change = Change::DeleteNeuron {
            space: space.clone(),
            neuron: neuron.clone(),
        };
        self.checked(&space, check, change).await
    }

    /// Runs `check` against the space named `space`.
    fn check_in(
        spaces: &Spaces,
        space: &Name,
        check: impl FnOnce(&Space) -> Result<(), EngineError>,
    ) -> Result<(), WriteError> {
        let shared = spaces
            .get(space)
            .ok_or_else(|| WriteError::UnknownSpace(space.clone()))?;
        let checked = check(&shared.read().unwrap_or_else(PoisonError::into_inner));
        checked.map_err(|error| WriteError::Engine { index: 0, error })
    }

    /// A deletion: the space locked, checked against the engine once caught up (so it cannot
    /// fail once committed), committed as one write, then applied.
    async fn checked(
        &mut self,
        space: &Name,
        check: impl FnOnce(&Spaces) -> Result<(), WriteError>,
        change: Change,
    ) -> Result<Written<()>, WriteError> {
        self.check_served(space)?;
        self.lock(&[space]).await?;
        if let Err(error) = check(&self.spaces) {
            return self.unlock(Err(error)).await;
        }
        let purge = Purge::of(&change).filter(|_| self.store.purges_later());
        let sequence = self.commit(change, None).await?;
        self.purges.extend(purge);
        self.stats.record(1);
        Ok(Written {
            value: (),
            sequence,
        })
    }
}
