//! A graph run as a chain band by band (a stack, `--layers`): every
//! block's maps and statistics kept in memory or spilled to disk as
//! [`MapsMode::choose`] says, then each block's folder (pictures, filters,
//! weights, raw maps).

use std::path::Path;
use std::time::Instant;

use super::chain_detail::stack_arithmetic;
use super::modes::Chosen;
use super::pictures::{self, StreamedPictures, map_ranges};
use super::{Computed, Counter, Job, MapsMode, Stage, Step, write_filters, write_weights_and_raw};
use crate::engine::{EngineInfo, Pictures, PlannedTimings, run_chain};
use crate::error::Result;
use crate::graph::{ChainPlan, Graph};
use crate::layer::Layer;
use crate::npy::BandedNpy;
use crate::output::create_output_dir;
use crate::photo::Orientation;
use crate::render::arithmetic::Embedded;
use crate::render::quantise::Quantise;
use crate::render::strip::{STRIP_MAPS, strip_json};
use crate::report::{LayerEntry, LayerRecord, LayerReport, MapsModeSummary};
use crate::settings::Placement;
use crate::stats::MapStats;
use crate::tensor::{RowSource, Tensor3};

/// Computes `graph`'s blocks over `input` band by band, as a chain, and
/// writes each block's folder; returns their entries of the summary.
pub(super) fn compute(
    engine: &dyn Pictures,
    input: &dyn RowSource,
    (graph, plan, (mode, why)): (&Graph, &ChainPlan, Chosen),
    (job, orientation): (&Job, Orientation),
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Computed> {
    let (maps_of, stats, block_timings) = compute_blocks(
        engine,
        input,
        (graph, plan, mode == MapsMode::Keep),
        job,
        progress,
    )?;
    let arithmetic = page_data(graph, input, job, (&maps_of, &stats))?;
    let mut timings = PlannedTimings::default();
    for block in &block_timings {
        timings.run.add(block.run);
        timings.store += block.store;
    }
    let encode_started = Instant::now();
    let mut layers = Vec::new();
    let bands = plan.band_count() as u32;
    for (block, (maps, stats)) in maps_of.into_iter().zip(&stats).enumerate() {
        let record = BlockRecord {
            engine: engine.info(),
            bands,
            orientation,
            timings: block_timings[block],
            why: why.clone(),
        };
        layers.push(write_block(
            job, graph, block, maps, stats, record, progress,
        )?);
    }
    Ok(Computed {
        layers,
        bands,
        timings,
        encode: encode_started.elapsed(),
        arithmetic: Some(arithmetic),
    })
}

/// What the stack's page embeds: each block's strip (its first maps, read
/// once), and the arithmetic of the blocks that fit the page's budget.
fn page_data(
    graph: &Graph,
    input: &dyn RowSource,
    job: &Job,
    (maps_of, stats): (&[BlockMaps], &[Vec<MapStats>]),
) -> Result<Embedded> {
    let mut firsts = Vec::new();
    let mut strips = Vec::new();
    for (block, maps) in maps_of.iter().enumerate() {
        let [count, height, width] = graph.block_output(block);
        let shown = (count as usize).min(STRIP_MAPS) as u32;
        let values = block_values(maps, [count, height, width], shown)?;
        strips.push(strip_json(
            &values,
            [count, height, width].map(|s| s as usize),
        ));
        firsts.push(values);
    }
    let largest = |block: usize| {
        stats[block]
            .iter()
            .fold(0f32, |m, s| m.max(s.min.abs()).max(s.max.abs()))
    };
    let first_map = |block: usize| {
        let [_, height, width] = graph.block_output(block);
        let plane = (height * width) as usize;
        Ok((firsts[block][..plane].to_vec(), largest(block)))
    };
    let all_maps = |block: usize| {
        let shape = graph.block_output(block);
        block_values(&maps_of[block], shape, shape[0])
    };
    let mut page = stack_arithmetic((graph, job.page_budget), input, all_maps, first_map)?;
    page.strips = strips;
    Ok(page)
}

/// The first `first` maps of a block's maps `[K, H, W]` as one vector,
/// from memory or from their file.
fn block_values(maps: &BlockMaps, [_, height, width]: [u32; 3], first: u32) -> Result<Vec<f32>> {
    let plane = (height * width) as usize;
    let mut values = vec![0.0; first as usize * plane];
    match maps {
        BlockMaps::Kept(bands) => {
            for (row, band) in bands {
                let length = band.plane_len();
                let offset = *row as usize * width as usize;
                for (map, part) in band.data.chunks(length).take(first as usize).enumerate() {
                    values[map * plane + offset..][..length].copy_from_slice(part);
                }
            }
        }
        BlockMaps::Raw(raw) => {
            for (map, part) in values.chunks_mut(plane).enumerate() {
                raw.map_reader(map as u32)?.read(part)?;
            }
        }
    }
    Ok(values)
}

/// Where a block's maps wait until their statistics are known.
enum BlockMaps {
    /// On disk: `features.npy` in its folder, or a temporary spill.
    Raw(BandedNpy),
    /// In host memory, band by band: each band's first row and its maps
    /// `[K, rows, OW]`.
    Kept(Vec<(u32, Tensor3)>),
}

/// Each block's maps, each map's statistics, and the times.
type BlockResults = (Vec<BlockMaps>, Vec<Vec<MapStats>>, Vec<PlannedTimings>);

/// Computes the chain band by band into each block's maps, kept in memory
/// when `keep`, else written to its raw maps file, keeping each map's
/// statistics.
fn compute_blocks(
    engine: &dyn Pictures,
    input: &dyn RowSource,
    (graph, plan, keep): (&Graph, &ChainPlan, bool),
    job: &Job,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<BlockResults> {
    let mut maps_of = Vec::new();
    let mut stats = Vec::new();
    for (block, layer) in graph.blocks.iter().enumerate() {
        let folder = job.out_dir.join(&layer.folder);
        create_output_dir(&folder)?;
        let shape = graph.block_output(block);
        maps_of.push(if keep {
            BlockMaps::Kept(Vec::new())
        } else {
            BlockMaps::Raw(BandedNpy::create(&folder.join("features.npy"), shape)?)
        });
        stats.push(vec![MapStats::default(); shape[0] as usize]);
    }
    let total = (plan.band_count() * graph.blocks.len()) as u64;
    let mut counter = Counter::new(Stage::Compute, total, progress);
    let timings = run_chain(engine, input, (graph, plan), |block, row, maps| {
        MapStats::add_band(&mut stats[block], maps);
        match &mut maps_of[block] {
            BlockMaps::Raw(raw) => raw.write_band(0, row, maps)?,
            BlockMaps::Kept(bands) => bands.push((row, maps.to_tensor())),
        }
        counter.tick();
        Ok(())
    })?;
    Ok((maps_of, stats, timings))
}

/// Writes a block's feature PNGs and grid into `folder` from its maps kept
/// in memory, coloured over the ranges `stats` give, and its weights;
/// returns the file names.
fn write_kept_maps(
    folder: &Path,
    job: &Job,
    layer: &Layer,
    (bands, stats, shape): (Vec<(u32, Tensor3)>, &[MapStats], [u32; 3]),
) -> Result<Vec<String>> {
    let ranges = map_ranges(stats, &job.view);
    let mut pictures = StreamedPictures::create(folder, shape, &ranges, &job.view)?;
    let quantise = Quantise {
        colormap: job.view.colormap,
        ranges,
    };
    for (row, maps) in bands {
        pictures.write_pixels(0, row, &quantise.pixels_cpu(maps.view()))?;
    }
    let mut files = pictures.finish(folder)?;
    files.extend(write_weights_and_raw(folder, job, layer, None)?);
    Ok(files)
}

/// What a block's summary says about the run as a whole.
struct BlockRecord {
    engine: EngineInfo,
    bands: u32,
    orientation: Orientation,
    /// The block's compute and store times.
    timings: PlannedTimings,
    /// Why its maps were kept in memory or went through the disk.
    why: String,
}

/// Writes block `block`'s folder: its pictures, `filters.png`, weights and
/// (with `--raw`) raw maps; returns its entry of the summary.
fn write_block(
    job: &Job,
    graph: &Graph,
    block: usize,
    maps: BlockMaps,
    stats: &[MapStats],
    record: BlockRecord,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<LayerEntry> {
    let info = &graph.blocks[block];
    let layer = graph.layer(block);
    let folder = job.out_dir.join(&info.folder);
    let started = Instant::now();
    let (mode, mut files) = match maps {
        BlockMaps::Raw(raw) => (
            MapsMode::Spill,
            write_maps(&folder, job, layer, raw, stats, progress)?,
        ),
        BlockMaps::Kept(bands) => {
            let kept = (bands, stats, graph.block_output(block));
            (MapsMode::Keep, write_kept_maps(&folder, job, layer, kept)?)
        }
    };
    files.push(write_filters(&folder, layer, &job.view)?);
    let mut report = LayerReport::new(LayerRecord {
        block: (graph, block),
        input: &job.input,
        preprocessing: None,
        orientation: record.orientation,
        pieces: (record.bands, 1),
        maps: stats.iter().map(MapStats::summary).collect(),
        engine: record.engine,
        timings: record.timings,
        files,
    });
    report.maps_mode = Some(MapsModeSummary {
        mode: mode.name(),
        why: record.why,
        statistics: Placement::Host.name(),
        pixels: Placement::Host.name(),
    });
    report.finish(started.elapsed(), started.elapsed());
    Ok(LayerEntry::new(graph, block, report))
}

/// Writes the feature PNGs, the grid and `weights.safetensors`, and keeps
/// `features.npy` when asked for (else the spill file is deleted); returns
/// the file names.
fn write_maps(
    out_dir: &Path,
    job: &Job,
    layer: &Layer,
    raw: BandedNpy,
    stats: &[MapStats],
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Vec<String>> {
    let mut files = pictures::write_pictures(out_dir, &raw, stats, &job.view, progress)?;
    files.extend(write_weights_and_raw(out_dir, job, layer, Some(raw))?);
    Ok(files)
}
