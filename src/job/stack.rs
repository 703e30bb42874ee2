//! A run of a stack of layers (`--layers`): the input read once, the
//! stack resolved against it, computed band by band with every group's
//! maps and statistics, then each group's folder (pictures, filters,
//! weights, raw maps), the stack's page and its summary.

use std::time::{Duration, Instant};

use super::pictures::{StreamedPictures, map_ranges};
use super::{
    Counter, Job, MapsMode, Stage, Step, input_prep, timed, with_bands, write_maps,
    write_weights_and_raw,
};
use crate::engine::run_chain;
use crate::engine::{Engine, PlannedTimings};
use crate::error::{Error, Result};
use crate::graph::{BandPlan, Graph};
use crate::input::InputFile;
use crate::npy::BandedNpy;
use crate::output::{create_output_dir, write_bytes_atomic};
use crate::render;
use crate::render::filters::filters_picture;
use crate::render::quantise::Quantise;
use crate::report::stack::{LayerEntry, StackRecord, StackSummary, stack_html};
use crate::report::{MapSummary, MapsModeSummary, RunRecord, Summary};
use crate::resolve::InputShape;
use crate::settings::MAPS_MODE;
use crate::stats::MapStats;
use crate::tensor::{RowSource, Tensor3};

/// Runs `job`'s stack on `engine` and writes every output file: one folder
/// per conv, the top-level page, `input.png` and `summary.json`. Returns the
/// summary.
pub fn run_stack(
    engine: &dyn Engine,
    job: &Job,
    setup: Duration,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<StackSummary> {
    let started = Instant::now();
    let stack_job = job.stack.as_ref().ok_or_else(|| {
        Error::InvalidLayer("run_stack needs a job with a stack (--layers)".into())
    })?;
    crate::output::check_output_dir(&job.out_dir)?;
    let (file, header) =
        timed(|| InputFile::open(&job.input, job.max_pixels, job.apply_orientation))?;
    let shape = file.shape();
    let (stack, weights_time) = timed(|| resolve_stack(job, shape))?;
    let orientation = file.orientation();
    let (decoded, decode) = timed(|| file.decode())?;
    let prep = input_prep(job, stack.block_input(0)[0], &decoded)?;
    let plan = BandPlan::new(&stack, super::band_budget(engine, &job.settings))?;

    create_output_dir(&job.out_dir)?;
    let (keep, why) = keep_stack(engine, &stack, job)?;
    let (maps_of, stats, block_timings) = with_bands(&decoded, prep.as_ref(), |input| {
        compute(engine, input, (&stack, &plan, keep), job, progress)
    })?;
    let mut timings = PlannedTimings::default();
    for group in &block_timings {
        timings.run.add(group.run);
        timings.store += group.store;
    }
    let encode_started = Instant::now();
    let mut layers = Vec::new();
    let bands = plan.band_count() as u32;
    for (group, (maps, stats)) in maps_of.into_iter().zip(&stats).enumerate() {
        let record = BlockRecord {
            engine: engine.info(),
            bands,
            orientation,
            timings: block_timings[group],
            why: why.clone(),
        };
        layers.push(write_block(
            job, &stack, group, maps, stats, record, progress,
        )?);
    }
    let mut summary = StackSummary::new(StackRecord {
        input: &job.input,
        input_shape: [stack.block_input(0)[0], shape.height, shape.width],
        preprocessing: prep,
        orientation,
        spec: stack_job.spec.clone(),
        stack: &stack,
        layers,
        bands,
        engine: engine.info(),
        timings,
        decode: header + decode,
        weights: weights_time,
        setup,
    });
    let preview = decoded.preview(super::INPUT_PREVIEW_SIDE);
    render::write_png_rgb(&job.out_dir.join("input.png"), &preview)?;
    write_bytes_atomic(
        &job.out_dir.join("index.html"),
        stack_html(&summary).as_bytes(),
    )?;
    summary.files.extend([
        "input.png".into(),
        "index.html".into(),
        "summary.json".into(),
    ]);
    summary.finish(encode_started.elapsed(), setup + started.elapsed());
    summary.write(&job.out_dir.join("summary.json"))?;
    Ok(summary)
}

/// The stack resolved against the input's shape, every conv checked.
fn resolve_stack(job: &Job, shape: InputShape) -> Result<Graph> {
    let stack_job = job.stack.as_ref().ok_or_else(|| {
        Error::InvalidLayer("run_stack needs a job with a stack (--layers)".into())
    })?;
    Graph::resolve(&stack_job.items, shape, &stack_job.options)
}

/// Where a group's maps wait until their statistics are known.
enum BlockMaps {
    /// On disk: `features.npy` in its folder, or a temporary spill.
    Raw(BandedNpy),
    /// In host memory, band by band: each band's first row and its maps
    /// `[K, rows, OW]`.
    Kept(Vec<(u32, Tensor3)>),
}

/// Each group's maps, each map's statistics, and the times.
type Computed = (Vec<BlockMaps>, Vec<Vec<MapStats>>, Vec<PlannedTimings>);

/// Whether a stack's maps are kept in memory, and why: when every group's
/// maps together fit the engine's keep budget and no `--raw` asks for them
/// on disk (`CONVMAPS_MAPS_MODE=keep` or `spill` forces one).
fn keep_stack(engine: &dyn Engine, stack: &Graph, job: &Job) -> Result<(bool, String)> {
    let bytes: u64 = (0..stack.blocks.len())
        .map(|group| {
            stack
                .block_output(group)
                .iter()
                .map(|&n| n as u64)
                .product::<u64>()
                * 4
        })
        .sum();
    let megabytes = bytes as f64 / 1048576.0;
    let budget = super::modes::keep_budget(engine, &job.settings);
    Ok(match job.settings.maps_mode {
        Some(MapsMode::Keep) if !job.raw => (true, format!("{MAPS_MODE}=keep")),
        Some(MapsMode::Spill) => (false, format!("{MAPS_MODE}=spill")),
        Some(other @ (MapsMode::OnePass | MapsMode::Recompute)) => {
            return Err(Error::Setting(format!(
                "{MAPS_MODE}={}: a stack's maps are kept in memory or spilled (keep or spill)",
                other.name()
            )));
        }
        _ if job.raw => (
            false,
            "--raw writes the f32 maps anyway; the pictures are read from them".into(),
        ),
        _ if bytes <= budget => (
            true,
            format!(
                "the stack's maps ({megabytes:.0} MB of f32) fit in the {:.0} MB kept in memory",
                budget as f64 / 1048576.0
            ),
        ),
        _ => (
            false,
            format!("the stack's maps ({megabytes:.0} MB of f32) go through the disk"),
        ),
    })
}

/// Computes the stack band by band into each group's maps, kept in memory
/// when `keep`, else written to its raw maps file, keeping each map's
/// statistics.
fn compute(
    engine: &dyn Engine,
    input: &dyn RowSource,
    (stack, plan, keep): (&Graph, &BandPlan, bool),
    job: &Job,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Computed> {
    let mut maps_of = Vec::new();
    let mut stats = Vec::new();
    for (group, layer) in stack.blocks.iter().enumerate() {
        let folder = job.out_dir.join(&layer.folder);
        create_output_dir(&folder)?;
        let shape = stack.block_output(group);
        maps_of.push(if keep {
            BlockMaps::Kept(Vec::new())
        } else {
            BlockMaps::Raw(BandedNpy::create(&folder.join("features.npy"), shape)?)
        });
        stats.push(vec![MapStats::default(); shape[0] as usize]);
    }
    let total = (plan.band_count() * stack.blocks.len()) as u64;
    let mut counter = Counter::new(Stage::Compute, total, progress);
    let timings = run_chain(engine, input, stack, plan, |group, row, maps| {
        MapStats::add_band(&mut stats[group], maps);
        match &mut maps_of[group] {
            BlockMaps::Raw(raw) => raw.write_band(0, row, maps)?,
            BlockMaps::Kept(bands) => bands.push((row, maps.to_tensor())),
        }
        counter.tick();
        Ok(())
    })?;
    Ok((maps_of, stats, timings))
}

/// Writes a group's feature PNGs and grid into `folder` from its maps kept
/// in memory, coloured over the ranges `stats` give, and its weights;
/// returns the file names.
fn write_kept_maps(
    folder: &std::path::Path,
    job: &Job,
    layer: &crate::layer::Layer,
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

/// What a group's summary says about the run as a whole.
struct BlockRecord {
    engine: crate::engine::EngineInfo,
    bands: u32,
    orientation: crate::photo::Orientation,
    /// The group's compute and store times.
    timings: PlannedTimings,
    /// Why its maps were kept in memory or went through the disk.
    why: String,
}

/// Writes group `group`'s folder: its pictures, `filters.png`, weights and
/// (with `--raw`) raw maps; returns its entry of the summary.
fn write_block(
    job: &Job,
    stack: &Graph,
    group: usize,
    maps: BlockMaps,
    stats: &[MapStats],
    record: BlockRecord,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<LayerEntry> {
    let info = &stack.blocks[group];
    let layer = stack.layer(group);
    let folder = job.out_dir.join(&info.folder);
    let started = Instant::now();
    let (mode, mut files) = match maps {
        BlockMaps::Raw(raw) => (
            MapsMode::Spill,
            write_maps(&folder, job, layer, raw, stats, progress)?,
        ),
        BlockMaps::Kept(bands) => {
            let kept = (bands, stats, stack.block_output(group));
            (MapsMode::Keep, write_kept_maps(&folder, job, layer, kept)?)
        }
    };
    render::write_png_rgb(
        &folder.join("filters.png"),
        &filters_picture(layer, job.view.per_channel_filters),
    )?;
    files.push("filters.png".into());
    let [channels, height, width] = stack.block_input(group);
    let [_, out_height, out_width] = stack.block_output(group);
    let mut summary = Summary::new(RunRecord {
        input: &job.input,
        input_size: (width, height, channels),
        preprocessing: None,
        orientation: record.orientation,
        layer,
        weights_source: info.weights_source.clone(),
        pieces: (record.bands, 1),
        output_size: (out_height, out_width),
        maps: stats
            .iter()
            .map(MapStats::summary)
            .collect::<Vec<MapSummary>>(),
        engine: record.engine,
        timings: record.timings,
        decode: Duration::ZERO,
        weights: Duration::ZERO,
        setup: Duration::ZERO,
        files,
        weights_file: info.origin.clone(),
    });
    summary.maps_mode = Some(MapsModeSummary {
        mode: mode.name(),
        why: record.why,
        statistics: "host",
        pixels: "host",
    });
    summary.finish(started.elapsed(), started.elapsed());
    Ok(LayerEntry::new(info, stack, group, summary))
}
