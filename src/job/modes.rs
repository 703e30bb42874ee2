//! How a layer's maps become pictures, chosen per run:
//!
//! * one pass: a fixed `--normalize LO,HI` needs no statistics, so each
//!   band's pictures are written as the band is computed;
//! * recompute: a first pass gathers each map's statistics, a second
//!   computes each band again and writes its pictures, so that no f32 maps
//!   go through the disk (a GPU computes faster than a disk stores);
//! * spill: the f32 maps are written to disk (`features.npy`, or a
//!   temporary file) and read back map by map for the pictures.
//!
//! All three write the same files.

use std::time::Duration;

use super::pictures::{StreamedPictures, map_ranges};
use super::{Counter, Job, Stage, Step};
use crate::engine::{Engine, PlannedTimings, convolve_planned};
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::plan::Plan;
use crate::render::colormap::Normalize;
use crate::stats::MapStats;
use crate::tensor::Bands;

/// How the maps become pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapsMode {
    /// Pictures written band by band in the one compute pass.
    OnePass,
    /// Statistics first, then each band computed again for its pictures.
    Recompute,
    /// The f32 maps through the disk.
    Spill,
}

/// Environment variable that forces a mode: `one-pass` (with a fixed
/// `--normalize` only), `recompute` or `spill` (tests use it).
pub const MAPS_MODE_ENV: &str = "CONVMAPS_MAPS_MODE";

/// The most bytes of f32 maps a software GPU (lavapipe) spills rather than
/// computing them twice. Measured on two cores: a 12 MP photo's 32 maps
/// (1.6 GB) take about 3 s to store and read back against about 4 s to
/// compute again; a 50 MP photo's 64 maps (12.6 GB) spill at 32–48 s,
/// far longer than a second compute pass.
const SOFTWARE_GPU_SPILL_BYTES: u64 = 4 << 30;

impl MapsMode {
    /// The mode's name in `summary.json`.
    pub fn name(self) -> &'static str {
        match self {
            MapsMode::OnePass => "one-pass",
            MapsMode::Recompute => "recompute",
            MapsMode::Spill => "spill",
        }
    }

    /// The mode for `job`'s layer over `plan` on `engine`, and why.
    pub(super) fn choose(
        job: &Job,
        engine: &dyn Engine,
        layer: &Layer,
        plan: &Plan,
        output_size: (u32, u32),
    ) -> Result<(MapsMode, String)> {
        let fixed = matches!(job.view.normalize, Normalize::Fixed { .. });
        if let Ok(forced) = std::env::var(MAPS_MODE_ENV) {
            let mode = match forced.as_str() {
                "one-pass" if fixed => MapsMode::OnePass,
                "recompute" => MapsMode::Recompute,
                "spill" => MapsMode::Spill,
                other => {
                    return Err(Error::InvalidLayer(format!(
                        "{MAPS_MODE_ENV}={other}: the modes are one-pass (with --normalize LO,HI), \
                         recompute and spill"
                    )));
                }
            };
            return Ok((mode, format!("{MAPS_MODE_ENV}={forced}")));
        }
        let bytes = layer.spec.output_bytes(output_size.0, output_size.1);
        let megabytes = bytes as f64 / 1048576.0;
        Ok(if fixed {
            (
                MapsMode::OnePass,
                "a fixed --normalize range needs no statistics".into(),
            )
        } else if job.raw {
            (
                MapsMode::Spill,
                "--raw writes the f32 maps anyway; the pictures are read from them".into(),
            )
        } else if engine.info().backend == "cpu" {
            (
                MapsMode::Spill,
                "on the CPU, computing the maps twice costs more than storing them".into(),
            )
        } else if plan.bands.len() * plan.filter_chunks.len() == 1 {
            (
                MapsMode::Spill,
                format!("the maps ({megabytes:.0} MB of f32) fit in one band"),
            )
        } else if engine
            .info()
            .adapter
            .is_some_and(|a| a.device_type == "Cpu")
            && bytes <= SOFTWARE_GPU_SPILL_BYTES
        {
            (
                MapsMode::Spill,
                format!(
                    "on a software GPU, storing {megabytes:.0} MB of f32 maps costs less than \
                     computing them again"
                ),
            )
        } else {
            (
                MapsMode::Recompute,
                format!(
                    "the maps ({megabytes:.0} MB of f32) would go through the disk; the GPU computes \
                     them again after the statistics instead"
                ),
            )
        })
    }
}

/// Starts the pictures of a one-pass run: every map coloured over the
/// fixed range.
pub(super) fn one_pass_pictures(job: &Job, shape: [u32; 3]) -> Result<StreamedPictures> {
    let ranges = map_ranges(&vec![MapStats::default(); shape[0] as usize], &job.view);
    StreamedPictures::create(&job.out_dir, shape, &ranges, &job.view)
}

/// The second pass of a recompute run: each band computed again and its
/// pictures written, coloured over the ranges of the first pass's
/// `stats`. Returns the file names and the pass's times.
pub(super) fn recompute_pictures(
    engine: &dyn Engine,
    input: &dyn Bands,
    layer: &Layer,
    plan: &Plan,
    (job, stats, shape): (&Job, &[MapStats], [u32; 3]),
    progress: &(dyn Fn(Step) + Sync),
) -> Result<(Vec<String>, PlannedTimings)> {
    let ranges = map_ranges(stats, &job.view);
    let mut pictures = StreamedPictures::create(&job.out_dir, shape, &ranges, &job.view)?;
    let total = (plan.bands.len() * plan.filter_chunks.len()) as u64;
    let mut counter = Counter::new(Stage::Encode, total, progress);
    let timings = convolve_planned(engine, input, layer, plan, |first, row, maps| {
        pictures.write_band(first, row, maps)?;
        counter.tick();
        Ok(())
    })?;
    Ok((pictures.finish(&job.out_dir)?, timings))
}

/// The engine's share of `timings` (upload, compute, readback), which a
/// recompute pass spends inside the encode stage.
pub(super) fn engine_time(timings: &PlannedTimings) -> Duration {
    timings.run.upload + timings.run.compute + timings.run.readback
}
