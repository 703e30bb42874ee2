//! A run of a stack of layers (`--layers`): the input read once, the
//! stack resolved against it, computed band by band with every group's
//! maps and statistics, then each group's folder (pictures, filters,
//! weights, raw maps), the stack's page and its summary.

use std::time::{Duration, Instant};

use super::{Counter, Job, Stage, Step, input_prep, timed, with_bands, write_maps};
use crate::engine::{Engine, PlannedTimings};
use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::npy::BandedNpy;
use crate::output::{create_output_dir, write_bytes_atomic};
use crate::render;
use crate::render::filters::filters_picture;
use crate::report::{MapSummary, RunRecord, Summary};
use crate::resolve::InputShape;
use crate::stack::report::{LayerEntry, StackRecord, StackSummary, stack_html};
use crate::stack::{Stack, StackPlan, run_planned};
use crate::stats::MapStats;
use crate::tensor::Bands;

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
    let prep = input_prep(job, stack.group_input(0)[0], &decoded)?;
    let plan = StackPlan::new(&stack, engine.band_budget())?;

    create_output_dir(&job.out_dir)?;
    let (raws, stats, group_timings) = with_bands(&decoded, prep.as_ref(), |input| {
        compute(engine, input, &stack, &plan, job, progress)
    })?;
    let mut timings = PlannedTimings::default();
    for group in &group_timings {
        timings.run.add(group.run);
        timings.store += group.store;
    }
    let encode_started = Instant::now();
    let mut layers = Vec::new();
    let bands = plan.band_count() as u32;
    for (group, (raw, stats)) in raws.into_iter().zip(&stats).enumerate() {
        let record = GroupRecord {
            engine: engine.info(),
            bands,
            orientation,
            timings: group_timings[group],
        };
        layers.push(write_group(
            job, &stack, group, raw, stats, record, progress,
        )?);
    }
    let mut summary = StackSummary::new(StackRecord {
        input: &job.input,
        input_shape: [stack.group_input(0)[0], shape.height, shape.width],
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
fn resolve_stack(job: &Job, shape: InputShape) -> Result<Stack> {
    let stack_job = job.stack.as_ref().ok_or_else(|| {
        Error::InvalidLayer("run_stack needs a job with a stack (--layers)".into())
    })?;
    Stack::resolve(&stack_job.items, shape, &stack_job.options)
}

/// Each group's raw maps (on disk), each map's statistics, and the times.
type Computed = (Vec<BandedNpy>, Vec<Vec<MapStats>>, Vec<PlannedTimings>);

/// Computes the stack band by band into each group's raw maps file
/// (`features.npy` in its folder, or a temporary spill), keeping each map's
/// statistics.
fn compute(
    engine: &dyn Engine,
    input: &dyn Bands,
    stack: &Stack,
    plan: &StackPlan,
    job: &Job,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Computed> {
    let mut raws = Vec::new();
    let mut stats = Vec::new();
    for (group, layer) in stack.groups.iter().enumerate() {
        let folder = job.out_dir.join(&layer.folder);
        create_output_dir(&folder)?;
        let shape = stack.group_output(group);
        raws.push(BandedNpy::create(&folder.join("features.npy"), shape)?);
        stats.push(vec![MapStats::default(); shape[0] as usize]);
    }
    let total = (plan.band_count() * stack.groups.len()) as u64;
    let mut counter = Counter::new(Stage::Compute, total, progress);
    let timings = run_planned(engine, input, stack, plan, |group, row, maps| {
        MapStats::add_band(&mut stats[group], maps);
        raws[group].write_band(0, row, maps)?;
        counter.tick();
        Ok(())
    })?;
    Ok((raws, stats, timings))
}

/// What a group's summary says about the run as a whole.
struct GroupRecord {
    engine: crate::engine::EngineInfo,
    bands: u32,
    orientation: crate::photo::Orientation,
    /// The group's compute and store times.
    timings: PlannedTimings,
}

/// Writes group `group`'s folder: its pictures, `filters.png`, weights and
/// (with `--raw`) raw maps; returns its entry of the summary.
fn write_group(
    job: &Job,
    stack: &Stack,
    group: usize,
    raw: BandedNpy,
    stats: &[MapStats],
    record: GroupRecord,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<LayerEntry> {
    let info = &stack.groups[group];
    let layer = stack.layer(group);
    let folder = job.out_dir.join(&info.folder);
    let started = Instant::now();
    let mut files = write_maps(&folder, job, layer, raw, stats, progress)?;
    render::write_png_rgb(
        &folder.join("filters.png"),
        &filters_picture(layer, job.view.per_channel_filters),
    )?;
    files.push("filters.png".into());
    let [channels, height, width] = stack.group_input(group);
    let [_, out_height, out_width] = stack.group_output(group);
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
    summary.finish(started.elapsed(), started.elapsed());
    Ok(LayerEntry::new(info, stack, group, summary))
}
