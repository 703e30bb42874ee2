//! A graph of one conv written to the output directory itself (a
//! one-layer run) computed whole: band by band and filter chunk by filter
//! chunk as [`LayerPlan`] says, its maps made pictures in the mode
//! [`MapsMode::choose`] picks (one pass, keep, recompute or spill).

use std::time::{Duration, Instant};

use super::modes::{self, Chosen, MapsMode};
use super::pictures;
use super::{Computed, Job, Step, write_filters, write_weights_and_raw};
use crate::engine::{Pictures, PlannedTimings};
use crate::error::Result;
use crate::graph::Graph;
use crate::graph::plan::LayerPlan;
use crate::npy::BandedNpy;
use crate::photo::Orientation;
use crate::preprocess::InputPrep;
use crate::report::{LayerEntry, LayerRecord, LayerReport, MapsModeSummary};
use crate::settings::Placement;
use crate::stats::MapStats;
use crate::tensor::RowSource;

/// Computes the one conv of `graph` over `input` and writes its pictures,
/// weights, filters and raw maps; returns its entry of the summary.
pub(super) fn compute(
    engine: &dyn Pictures,
    input: &dyn RowSource,
    (graph, plan, mode): (&Graph, &LayerPlan, Chosen),
    (job, prep, orientation): (&Job, Option<&InputPrep>, Orientation),
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Computed> {
    let started = Instant::now();
    let drawn = draw_maps(engine, input, (graph, plan, mode), job, progress)?;
    let info = engine.info();
    let mut report = LayerReport::new(LayerRecord {
        block: (graph, 0),
        input: &job.input,
        preprocessing: prep.cloned(),
        orientation,
        pieces: (plan.bands.len() as u32, plan.filter_chunks.len() as u32),
        maps: drawn.stats.iter().map(MapStats::summary).collect(),
        engine: info.clone(),
        timings: drawn.timings,
        files: drawn.files,
    });
    report.maps_mode = Some(MapsModeSummary {
        mode: drawn.mode.name(),
        why: drawn.why,
        statistics: info.pictures.name(),
        pixels: match drawn.mode {
            MapsMode::Spill => Placement::Host.name(),
            _ => info.pictures.name(),
        },
    });
    report.finish(drawn.encode, started.elapsed());
    Ok(Computed {
        layers: vec![LayerEntry::new(graph, 0, report)],
        bands: plan.bands.len() as u32,
        timings: drawn.timings,
        encode: drawn.encode,
        arithmetic: None,
    })
}

/// What computing and drawing the maps leaves.
struct Drawn {
    /// Each map's statistics.
    stats: Vec<MapStats>,
    /// The engine's and the store's times, both passes.
    timings: PlannedTimings,
    /// The files written.
    files: Vec<String>,
    /// How the maps became pictures, and why.
    mode: MapsMode,
    why: String,
    /// Writing the pictures and weights, a second pass's engine time aside.
    encode: Duration,
}

/// Computes the layer and writes its pictures, weights and raw maps, in
/// the mode [`MapsMode::choose`] picked.
fn draw_maps(
    engine: &dyn Pictures,
    input: &dyn RowSource,
    (graph, plan, (mode, why)): (&Graph, &LayerPlan, Chosen),
    job: &Job,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<Drawn> {
    let layer = graph.layer(0);
    let maps_shape = graph.block_output(0);
    let (mut streamed, fixed) = match mode {
        MapsMode::OnePass => {
            let (pictures, ranges) = modes::one_pass_pictures(job, maps_shape)?;
            (Some(pictures), Some(ranges))
        }
        _ => (None, None),
    };
    let raw = (job.raw || mode == MapsMode::Spill)
        .then(|| BandedNpy::create(&job.out_dir.join("features.npy"), maps_shape))
        .transpose()?;
    let pass = modes::FirstPass {
        mode,
        fixed: fixed.as_deref(),
        raw_sink: raw.as_ref(),
        pictures: streamed.as_mut(),
    };
    let first = modes::first_pass(engine, input, (layer, plan, job), pass, progress)?;
    let (stats, mut timings) = (first.stats, first.timings);
    let encode_started = Instant::now();
    let second_pass = (job, stats.as_slice(), maps_shape);
    let (mut files, second) = match (mode, streamed, &raw) {
        (MapsMode::OnePass, Some(pictures), _) => (pictures.finish(&job.out_dir)?, None),
        (MapsMode::Spill, _, Some(raw)) => {
            let files = pictures::write_pictures(&job.out_dir, raw, &stats, &job.view, progress)?;
            (files, None)
        }
        (MapsMode::Keep, _, _) => {
            let (files, second) =
                modes::draw_kept_pictures(engine, first.kept, second_pass, progress)?;
            (files, Some(second))
        }
        _ => {
            let (files, second) =
                modes::recompute_pictures(engine, input, layer, plan, second_pass, progress)?;
            (files, Some(second))
        }
    };
    let second_pass = second.map_or(Duration::ZERO, |second| {
        timings.run.add(second.run);
        modes::engine_time(&second)
    });
    files.extend(write_weights_and_raw(&job.out_dir, job, layer, raw)?);
    files.push(write_filters(&job.out_dir, layer, &job.view)?);
    Ok(Drawn {
        stats,
        timings,
        files,
        mode,
        why,
        encode: encode_started.elapsed().saturating_sub(second_pass),
    })
}
