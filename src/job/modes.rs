//! How a layer's maps become pictures, chosen per run. Every band hands
//! back each map's statistics, and pixels where asked, made where the
//! engine makes them (in a shader on a real GPU, on the host on the CPU and
//! on a software GPU; `settings::Settings::pictures`); then:
//!
//! * one pass: a fixed `--normalize LO,HI` needs no statistics, so each
//!   band's pixels are made and written as the band is computed;
//! * keep: the f32 maps stay in the engine's memory (GPU memory on a GPU)
//!   until every band's statistics are in, then each band's pixels are made
//!   there and written;
//! * recompute: a first pass gathers the statistics, a second computes each
//!   band again and makes its pixels: no f32 maps cross back at all;
//! * spill: the f32 maps are written to disk (`features.npy`, or a
//!   temporary file) and coloured on the CPU map by map.
//!
//! All four write the same files (pictures to the rounding rule of
//! `render::quantise`, the same bytes on a GPU that rounds as IEEE says).

use std::time::Duration;

use super::pictures::{StreamedPictures, map_ranges};
use super::{Counter, Job, Stage, Step};
use crate::engine::{
    Backend, KeptMaps, Pictures, PlannedTimings, SubmittedMaps, Wants, for_each_piece,
};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::graph::plan::LayerPlan;
use crate::layer::Layer;
use crate::render::colormap::Normalize;
use crate::render::quantise::Quantise;
pub use crate::settings::MapsMode;
use crate::settings::{MAPS_MODE, Settings};
use crate::stats::MapStats;
use crate::tensor::RowSource;

/// A maps mode and why it was chosen, as `summary.json` says it.
pub(super) type Chosen = (MapsMode, String);

/// The most bytes of f32 maps a software GPU (lavapipe) spills rather than
/// computing them twice. Measured on two cores: a 12 MP photo's 32 maps
/// (1.6 GB) take about 3 s to store and read back against about 4 s to
/// compute again; a 50 MP photo's 64 maps (12.6 GB) spill at 32–48 s,
/// far longer than a second compute pass.
const SOFTWARE_GPU_SPILL_BYTES: u64 = 4 << 30;

impl MapsMode {
    /// The mode for `job`'s graph on `engine`, and why: the one choice
    /// for every run. A graph of one conv (a one-layer run) may take any
    /// mode; a longer chain keeps its blocks' maps in memory or spills them.
    /// A mode forced by the settings that the run cannot take is refused,
    /// naming the variable.
    pub(super) fn choose(job: &Job, engine: &dyn Pictures, graph: &Graph) -> Result<Chosen> {
        let whole = graph.is_one_layer();
        let fixed = matches!(job.view.normalize, Normalize::Fixed { .. });
        if let Some(forced) = job.settings.maps_mode {
            return forced_mode(forced, whole, fixed, job.raw);
        }
        let bytes: u64 = (0..graph.blocks.len())
            .map(|block| {
                4 * graph
                    .block_output(block)
                    .map(u64::from)
                    .iter()
                    .product::<u64>()
            })
            .sum();
        let megabytes = bytes as f64 / 1048576.0;
        let keep_budget = keep_budget(engine, &job.settings);
        let maps = if whole {
            "the maps"
        } else {
            "the stack's maps"
        };
        Ok(if fixed && whole {
            (
                MapsMode::OnePass,
                "a fixed --normalize range needs no statistics".into(),
            )
        } else if job.raw {
            (
                MapsMode::Spill,
                "--raw writes the f32 maps anyway; the pictures are read from them".into(),
            )
        } else if bytes <= keep_budget {
            (
                MapsMode::Keep,
                format!(
                    "{maps} ({megabytes:.0} MB of f32) fit in the {:.0} MB kept in the engine's memory",
                    keep_budget as f64 / 1048576.0
                ),
            )
        } else if !whole {
            (
                MapsMode::Spill,
                format!("{maps} ({megabytes:.0} MB of f32) go through the disk"),
            )
        } else if engine.info().backend == Backend::Cpu {
            (
                MapsMode::Spill,
                "on the CPU, computing the maps twice costs more than storing them".into(),
            )
        } else if engine.info().software_gpu() && bytes <= SOFTWARE_GPU_SPILL_BYTES {
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

/// The mode the settings force, when the run can take it: one pass needs a
/// fixed `--normalize` range, and a chain (`whole` false) keeps or spills;
/// keeping with `--raw` spills, as the f32 maps are written anyway.
fn forced_mode(
    forced: MapsMode,
    whole: bool,
    fixed: bool,
    raw: bool,
) -> Result<(MapsMode, String)> {
    let refuse = |why: &str| {
        Err(Error::Setting(format!(
            "{MAPS_MODE}={}: {why}",
            forced.name()
        )))
    };
    match forced {
        MapsMode::OnePass if !fixed => refuse("one pass needs a fixed --normalize LO,HI"),
        MapsMode::OnePass | MapsMode::Recompute if !whole => {
            refuse("a stack's maps are kept in memory or spilled (keep or spill)")
        }
        MapsMode::Keep if raw && !whole => Ok((
            MapsMode::Spill,
            "--raw writes the f32 maps anyway; the pictures are read from them".into(),
        )),
        _ => Ok((forced, format!("{MAPS_MODE}={}", forced.name()))),
    }
}

/// The most bytes of f32 maps kept on `engine`: as `settings` say, else
/// [`Pictures::keep_budget`].
pub(super) fn keep_budget(engine: &dyn Pictures, settings: &Settings) -> u64 {
    settings.keep_bytes.unwrap_or_else(|| engine.keep_budget())
}

/// The first pass over every band, in any mode: each map's statistics,
/// and, as the mode needs, the f32 maps handed to `raw_sink`, the pixels
/// over `fixed` ranges written into `pictures`, or the maps kept.
pub(super) struct FirstPass<'a> {
    /// The mode.
    pub mode: MapsMode,
    /// Each map's fixed range (one pass).
    pub fixed: Option<&'a [(f32, f32)]>,
    /// Where the f32 maps go (the raw file), when they come back.
    pub raw_sink: Option<&'a crate::npy::BandedNpy>,
    /// The pictures, written band by band (one pass).
    pub pictures: Option<&'a mut StreamedPictures>,
}

/// What the first pass leaves.
pub(super) struct FirstPassOut {
    /// Each map's statistics.
    pub stats: Vec<MapStats>,
    /// The kept bands: first map, first row, the maps.
    pub kept: Vec<(u32, u32, KeptMaps)>,
    /// The engine's and the store's times.
    pub timings: PlannedTimings,
}

/// Runs the first pass of `layer` over `input`.
pub(super) fn first_pass(
    engine: &dyn Pictures,
    input: &dyn RowSource,
    (layer, plan, job): (&Layer, &LayerPlan, &Job),
    mut pass: FirstPass<'_>,
    progress: &(dyn Fn(Step) + Sync),
) -> Result<FirstPassOut> {
    let filters = layer.spec.filters as usize;
    let mut out = FirstPassOut {
        stats: vec![MapStats::default(); filters],
        kept: Vec::new(),
        timings: PlannedTimings::default(),
    };
    let total = (plan.bands.len() * plan.filter_chunks.len()) as u64;
    let mut counter = Counter::new(Stage::Compute, total, progress);
    let keep = pass.mode == MapsMode::Keep;
    let wants_maps = pass.raw_sink.is_some();
    // Kept maps get buffers of their own: no output slots to reserve.
    for_each_piece(
        engine,
        input,
        (layer, plan, !keep),
        |band, chunk, first| {
            let quantise = pass
                .fixed
                .map(|ranges| band_quantise(job, ranges, first, chunk));
            let wants = Wants {
                stats: true,
                maps: wants_maps,
                pixels: quantise.as_ref(),
                keep,
            };
            engine.submit_maps(band, chunk, wants)
        },
        |first, row, piece: SubmittedMaps| {
            let mut store = Duration::ZERO;
            let ((), run, kept) = piece.read(|band| {
                let started = std::time::Instant::now();
                let at = first as usize;
                for (total, part) in out.stats[at..].iter_mut().zip(&band.stats) {
                    total.merge(part);
                }
                if let (Some(raw), Some(maps)) = (pass.raw_sink, band.maps) {
                    raw.write_band(first, row, maps)?;
                }
                if let (Some(pictures), Some(pixels)) = (pass.pictures.as_deref_mut(), &band.pixels)
                {
                    pictures.write_pixels(first, row, pixels)?;
                }
                store = started.elapsed();
                Ok(())
            })?;
            out.timings.store += store;
            out.timings.run.add(run);
            out.kept.extend(kept.map(|kept| (first, row, kept)));
            counter.tick();
            Ok(())
        },
    )?;
    Ok(out)
}

/// How the maps `first..` of `chunk` are coloured, over `ranges` (one per
/// map of the layer).
fn band_quantise(job: &Job, ranges: &[(f32, f32)], first: u32, chunk: &Layer) -> Quantise {
    let first = first as usize;
    Quantise {
        colormap: job.view.colormap,
        ranges: ranges[first..first + chunk.spec.filters as usize].to_vec(),
    }
}

/// Starts the pictures of a one-pass run: every map coloured over the
/// fixed range. Returns them with the ranges.
pub(super) fn one_pass_pictures(
    job: &Job,
    shape: [u32; 3],
) -> Result<(StreamedPictures, Vec<(f32, f32)>)> {
    let ranges = map_ranges(&vec![MapStats::default(); shape[0] as usize], &job.view);
    let pictures = StreamedPictures::create(&job.out_dir, shape, &ranges, &job.view)?;
    Ok((pictures, ranges))
}

/// The second pass of a recompute run: each band computed again and its
/// pixels made and written, coloured over the ranges of the first pass's
/// `stats`. Returns the file names and the pass's times.
pub(super) fn recompute_pictures(
    engine: &dyn Pictures,
    input: &dyn RowSource,
    layer: &Layer,
    plan: &LayerPlan,
    (job, stats, shape): (&Job, &[MapStats], [u32; 3]),
    progress: &(dyn Fn(Step) + Sync),
) -> Result<(Vec<String>, PlannedTimings)> {
    let ranges = map_ranges(stats, &job.view);
    let mut pictures = StreamedPictures::create(&job.out_dir, shape, &ranges, &job.view)?;
    let total = (plan.bands.len() * plan.filter_chunks.len()) as u64;
    let mut counter = Counter::new(Stage::Encode, total, progress);
    let mut timings = PlannedTimings::default();
    for_each_piece(
        engine,
        input,
        (layer, plan, true),
        |band, chunk, first| {
            let quantise = band_quantise(job, &ranges, first, chunk);
            let wants = Wants {
                pixels: Some(&quantise),
                ..Wants::default()
            };
            engine.submit_maps(band, chunk, wants)
        },
        |first, row, piece: SubmittedMaps| {
            let ((), run, _) =
                piece.read(|band| write_band_pixels(&mut pictures, first, row, &band))?;
            timings.run.add(run);
            counter.tick();
            Ok(())
        },
    )?;
    Ok((pictures.finish(&job.out_dir)?, timings))
}

/// The second pass of a keep run: each kept band's pixels made on the
/// engine, coloured over the ranges of the first pass's `stats`, and
/// written; each band is freed once drawn. Returns the file names and the
/// pass's times.
pub(super) fn draw_kept_pictures(
    engine: &dyn Pictures,
    kept: Vec<(u32, u32, KeptMaps)>,
    (job, stats, shape): (&Job, &[MapStats], [u32; 3]),
    progress: &(dyn Fn(Step) + Sync),
) -> Result<(Vec<String>, PlannedTimings)> {
    let ranges = map_ranges(stats, &job.view);
    let mut pictures = StreamedPictures::create(&job.out_dir, shape, &ranges, &job.view)?;
    let mut counter = Counter::new(Stage::Encode, kept.len() as u64, progress);
    let mut timings = PlannedTimings::default();
    let mut pending: Option<(u32, u32, SubmittedMaps)> = None;
    let mut hand_over = |(first, row, piece): (u32, u32, SubmittedMaps)| -> Result<()> {
        let ((), run, _) =
            piece.read(|band| write_band_pixels(&mut pictures, first, row, &band))?;
        timings.run.add(run);
        counter.tick();
        Ok(())
    };
    for (first, row, maps) in kept {
        let first_map = first as usize;
        let quantise = Quantise {
            colormap: job.view.colormap,
            ranges: ranges[first_map..first_map + maps.shape()[0] as usize].to_vec(),
        };
        let piece = engine.draw_kept(&maps, &quantise)?;
        drop(maps);
        if let Some(previous) = pending.replace((first, row, piece)) {
            hand_over(previous)?;
        }
    }
    if let Some(last) = pending {
        hand_over(last)?;
    }
    Ok((pictures.finish(&job.out_dir)?, timings))
}

/// Writes a band's pixels into `pictures`.
fn write_band_pixels(
    pictures: &mut StreamedPictures,
    first: u32,
    row: u32,
    band: &crate::engine::BandOut<'_>,
) -> Result<()> {
    let pixels = band.pixels.as_ref().ok_or_else(|| Error::Gpu {
        stage: "readback",
        message: "a band came back without the pixels asked for".into(),
    })?;
    pictures.write_pixels(first, row, pixels)
}

/// The engine's share of `timings` (upload, compute, readback), which a
/// second pass spends inside the encode stage.
pub(super) fn engine_time(timings: &PlannedTimings) -> Duration {
    timings.run.upload + timings.run.compute + timings.run.readback
}
