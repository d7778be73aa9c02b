//! Start-up's load, the same for both databases: every served space's row becomes an empty
//! space, its neurons' counters are restored, and its pattern rows are read in learning order and
//! applied on a thread of their own while the next chunk is read. Each database only says how its
//! rows are read ([`StoredRows`]); what is done with them, and every check on them, is here once.

use super::LoadSummary;
use crate::engine::{Metadata, Name, Pattern, Space, SpaceParams, SpaceSpec, Spaces, StorePlan};
use anyhow::Context;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

/// The rows a load reads, from one consistent view of the database.
pub(super) trait StoredRows {
    /// Every space's row.
    async fn spaces(&mut self) -> anyhow::Result<Vec<SpaceRow>>;
    /// A space's neurons: (name, next pattern number, next segment number).
    async fn neurons(&mut self, space: &Name) -> anyhow::Result<Vec<(String, i64, i64)>>;
    /// Reads a space's patterns as plans, in learning order, handing them to `chunks` a chunk
    /// at a time; returns how many there were.
    async fn patterns(
        &mut self,
        space: &Name,
        input_size: u32,
        chunks: SyncSender<Vec<StorePlan>>,
    ) -> anyhow::Result<u64>;
}

/// Rebuilds every space `spaces` serves from `rows` into it, counting what it loads in
/// `summary`. Another shard group's spaces are not read at all: their rows are that group's
/// memory.
pub(super) async fn load_spaces(
    rows: &mut impl StoredRows,
    spaces: &Spaces,
    summary: &mut LoadSummary,
) -> anyhow::Result<()> {
    for row in rows
        .spaces()
        .await?
        .into_iter()
        .filter(|row| row.served_by(spaces))
    {
        let mut space = row.space()?;
        let name = space.name().clone();
        summary.neurons += restore_neurons(&mut space, rows.neurons(&name).await?)?;
        let input_size = space.params().input_size;
        let rebuild = Rebuild::start(space);
        let read = rows.patterns(&name, input_size, rebuild.chunks()).await;
        // The applier's error, which names the row it refused, comes before the reader's
        // "stopped".
        let space = rebuild.finish(&name)?;
        summary.patterns += read.with_context(|| format!("the stored patterns of space {name}"))?;
        spaces.insert(space);
        summary.spaces += 1;
    }
    Ok(())
}

/// Plans handed on at a time while loading: the applier works on one chunk while the next is read.
pub(super) const LOAD_CHUNK: usize = 8_192;

/// One space rebuilt from its stored plans on a thread of its own, while the caller reads the
/// next chunk: loading costs about the larger of reading and applying, not their sum.
struct Rebuild {
    chunks: std::sync::mpsc::SyncSender<Vec<StorePlan>>,
    applier: std::thread::JoinHandle<Result<(Space, Duration), crate::engine::EngineError>>,
}

impl Rebuild {
    /// Starts the applier. A stored plan that breaks the space's rules stops it: the reader's
    /// next hand-over fails, and [`Rebuild::finish`] names the row.
    fn start(mut space: Space) -> Rebuild {
        let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<StorePlan>>(4);
        let applier = std::thread::spawn(move || {
            let mut busy = Duration::ZERO;
            for plans in received {
                let started = Instant::now();
                space.apply_stores_unrefreshed(plans)?;
                busy += started.elapsed();
            }
            let started = Instant::now();
            space.finish_loading();
            busy += started.elapsed();
            Ok((space, busy))
        });
        Rebuild { chunks, applier }
    }

    /// Where the reader hands chunks of plans, in learning order.
    fn chunks(&self) -> std::sync::mpsc::SyncSender<Vec<StorePlan>> {
        self.chunks.clone()
    }

    /// Waits for the applier to finish the chunks handed to it; `space` names the space in the
    /// error of a row that cannot be applied.
    fn finish(self, space: &Name) -> anyhow::Result<Space> {
        drop(self.chunks);
        let (space, busy) = self
            .applier
            .join()
            .map_err(|_| anyhow::anyhow!("the loader thread panicked"))?
            .with_context(|| format!("space {space}: a stored pattern breaks its rules (the database was changed outside dendrite, or by two processes at once)"))?;
        tracing::debug!(space = %space.name(), apply_ms = busy.as_millis() as u64, "space rebuilt");
        Ok(space)
    }
}

/// Restores each stored neuron's counters; returns how many there were.
fn restore_neurons(space: &mut Space, neurons: Vec<(String, i64, i64)>) -> anyhow::Result<u64> {
    let mut count = 0;
    for (neuron, next_pattern, next_segment) in neurons {
        let neuron =
            Name::parse(&neuron).with_context(|| format!("stored neuron name {neuron:?}"))?;
        space.restore_neuron(&neuron, next_pattern as u64, next_segment as u32);
        count += 1;
    }
    Ok(count)
}

#[derive(sqlx::FromRow)]
pub(super) struct SpaceRow {
    pub(super) name: String,
    pub(super) input_size: i64,
    pub(super) active_bits: i64,
    pub(super) synapses_per_pattern: i64,
    pub(super) threshold: i64,
    pub(super) max_false_match: f64,
    pub(super) max_segments_per_neuron: i64,
    pub(super) seed: i64,
    /// The encoder's spec as JSON, when the space has one.
    pub(super) encoder: Option<String>,
}

impl SpaceRow {
    /// Whether `spaces` holds this space (a name that does not parse is kept, to be refused by
    /// [`SpaceRow::space`] with its reason).
    pub(super) fn served_by(&self, spaces: &Spaces) -> bool {
        Name::parse(&self.name).map_or(true, |name| spaces.serves(&name))
    }

    /// The empty space the row describes.
    pub(super) fn space(&self) -> anyhow::Result<Space> {
        let name = Name::parse(&self.name)
            .with_context(|| format!("stored space name {:?}", self.name))?;
        let params = self
            .params()
            .with_context(|| format!("stored parameters of space {name}"))?;
        Ok(Space::new(name, params))
    }

    pub(super) fn params(&self) -> anyhow::Result<SpaceParams> {
        let narrow = |v: i64| u32::try_from(v).context("out of range");
        let spec = SpaceSpec {
            input_size: narrow(self.input_size)?,
            active_bits: narrow(self.active_bits)?,
            synapses_per_pattern: Some(narrow(self.synapses_per_pattern)?),
            threshold: Some(narrow(self.threshold)?),
            max_false_match: Some(self.max_false_match),
            max_segments_per_neuron: Some(narrow(self.max_segments_per_neuron)?),
            seed: Some(u64::try_from(self.seed).context("negative seed")?),
            encoder: match &self.encoder {
                Some(text) => Some(serde_json::from_str(text).context("the stored encoder")?),
                None => None,
            },
        };
        Ok(SpaceParams::new(&spec)?)
    }
}

/// A `patterns` row as either backend reads it back, borrowed from the driver's buffer.
pub(super) struct PatternRow<'r> {
    pub(super) neuron: &'r str,
    pub(super) id: &'r str,
    pub(super) segment: i64,
    pub(super) active: &'r [u8],
    pub(super) synapses: &'r [u8],
    pub(super) metadata: Option<&'r str>,
}

/// A space's pattern rows on PostgreSQL, in learning order, as [`PatternRow::from_postgres`]
/// reads them.
pub(super) const POSTGRES_PATTERNS_OF_SPACE: &str = "SELECT neuron, id, segment, active, synapses, metadata FROM patterns WHERE space = $1 ORDER BY seq";

impl<'r> PatternRow<'r> {
    /// A row of [`POSTGRES_PATTERNS_OF_SPACE`].
    pub(super) fn from_postgres(
        row: &'r sqlx::postgres::PgRow,
    ) -> Result<PatternRow<'r>, sqlx::Error> {
        use sqlx::Row;
        Ok(PatternRow {
            neuron: row.try_get(0)?,
            id: row.try_get(1)?,
            segment: row.try_get(2)?,
            active: row.try_get(3)?,
            synapses: row.try_get(4)?,
            metadata: row.try_get(5)?,
        })
    }
}

impl PatternRow<'_> {
    /// The plan the row recorded. Rows come grouped by neuron more often than not, so the last
    /// neuron's name is reused instead of parsed again.
    pub(super) fn plan(
        &self,
        input_size: u32,
        last_neuron: &mut Option<Name>,
    ) -> anyhow::Result<StorePlan> {
        let neuron = match last_neuron {
            Some(name) if name.as_str() == self.neuron => name.clone(),
            _ => {
                let name = Name::parse(self.neuron)?;
                *last_neuron = Some(name.clone());
                name
            }
        };
        Ok(StorePlan {
            neuron,
            id: Name::parse(self.id)?,
            active: Pattern::from_sorted(decode_cells(self.active)?, input_size)?,
            synapses: decode_cells(self.synapses)?,
            segment: u32::try_from(self.segment)?,
            metadata: self.metadata.map(Metadata::parse).transpose()?,
        })
    }
}

pub(super) fn decode_cells(bytes: &[u8]) -> anyhow::Result<Vec<u32>> {
    anyhow::ensure!(
        bytes.len().is_multiple_of(4),
        "a cell list of {} bytes",
        bytes.len()
    );
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}
