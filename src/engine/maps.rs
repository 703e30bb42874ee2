//! A band as a job wants it back: each map's statistics always, and as
//! asked the f32 maps, their 8-bit pixels, or the maps kept on the engine
//! for a second pass ([`Wants`], [`super::Pictures::submit_maps`]).
//!
//! An engine that makes none of it itself computes it on the host from the
//! f32 maps ([`SubmittedMaps::on_host`]: the CPU twins); a GPU engine makes
//! the statistics and pixels in shaders, so that only they cross back.

use std::sync::Arc;

use rayon::prelude::*;

use super::{SlotLease, Submitted};
use crate::error::Result;
use crate::gpu::{DeviceTensor, Gpu, InFlight, RunTimings};
use crate::render::quantise::{BandPixels, Quantise};
use crate::stats::{MapStats, Partial};
use crate::tensor::{Tensor3, TensorView};

/// What a job asks of one band.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wants<'a> {
    /// Each map's statistics over the band (a second pass needs none).
    pub stats: bool,
    /// The f32 maps themselves (for `features.npy`, or a spill file).
    pub maps: bool,
    /// The maps' 8-bit pixels, coloured as this says (one range per map).
    pub pixels: Option<&'a Quantise>,
    /// The f32 maps kept on the engine, for [`super::Pictures::draw_kept`].
    pub keep: bool,
}

/// One band `[n, rows, OW]` as an engine hands it back.
pub struct BandOut<'a> {
    /// Each map's statistics over the band, when asked for (else empty).
    pub stats: Vec<MapStats>,
    /// The f32 maps, when asked for.
    pub maps: Option<TensorView<'a>>,
    /// The pixels, when asked for.
    pub pixels: Option<BandPixels>,
}

/// A band's f32 maps `[n, rows, OW]` kept on the engine between a job's
/// passes: in host memory, or in GPU memory.
pub struct KeptMaps(pub(super) Kept);

pub(super) enum Kept {
    Host(Tensor3),
    Gpu(DeviceTensor),
}

impl KeptMaps {
    /// `[n, rows, OW]`.
    pub fn shape(&self) -> [u32; 3] {
        match &self.0 {
            Kept::Host(tensor) => [tensor.channels, tensor.height, tensor.width],
            Kept::Gpu(tensor) => tensor.shape(),
        }
    }
}

/// A band submitted by [`super::Pictures::submit_maps`] or
/// [`super::Pictures::draw_kept`]; [`SubmittedMaps::read`] hands it over.
pub struct SubmittedMaps(Pending);

enum Pending {
    /// The f32 maps are read back and the rest is made on the host.
    Host {
        band: Submitted,
        stats: bool,
        maps: bool,
        pixels: Option<Quantise>,
        keep: bool,
    },
    /// Made already.
    Done {
        pixels: BandPixels,
        timings: RunTimings,
    },
    /// Made on the GPU: one readback each.
    Gpu(Box<GpuBand>),
}

/// The readbacks of one band made on the GPU, all of one submission.
pub(super) struct GpuBand {
    pub(super) gpu: Arc<Gpu>,
    /// `[n, rows, OW]`.
    pub(super) shape: [u32; 3],
    /// Each map's [`Partial`]s, map after map.
    pub(super) stats: Option<InFlight>,
    /// The pixels, with `(map_len, map_stride)`.
    pub(super) pixels: Option<(InFlight, (usize, usize))>,
    /// The f32 maps.
    pub(super) maps: Option<InFlight>,
    /// The maps' GPU buffer, when kept.
    pub(super) kept: Option<DeviceTensor>,
    /// The output slot, when the maps were written into one. Declared
    /// last: the mappings are released before the slot goes back.
    pub(super) _lease: Option<SlotLease>,
}

impl SubmittedMaps {
    /// `band`, whose statistics, pixels and kept copy are made on the host
    /// from its f32 maps when read: the CPU twins of the GPU's.
    pub fn on_host(band: Submitted, wants: Wants<'_>) -> Self {
        SubmittedMaps(Pending::Host {
            band,
            stats: wants.stats,
            maps: wants.maps,
            pixels: wants.pixels.cloned(),
            keep: wants.keep,
        })
    }

    /// The pixels of kept host maps, made now with `quantise`.
    pub(super) fn drawn_on_host(maps: &Tensor3, quantise: &Quantise) -> Self {
        let started = std::time::Instant::now();
        let pixels = quantise.pixels_cpu(maps.view());
        // Made on the host: reading back, as for a band read from a GPU.
        SubmittedMaps(Pending::Done {
            pixels,
            timings: RunTimings {
                readback: started.elapsed(),
                ..Default::default()
            },
        })
    }

    /// A band made on the GPU.
    pub(super) fn on_gpu(band: GpuBand) -> Self {
        SubmittedMaps(Pending::Gpu(Box::new(band)))
    }

    /// Waits for the band and hands `read` what was asked for. Returns what
    /// `read` returns, the band's timings, and its maps when kept.
    pub fn read<T>(
        self,
        read: impl FnOnce(BandOut<'_>) -> Result<T>,
    ) -> Result<(T, RunTimings, Option<KeptMaps>)> {
        match self.0 {
            Pending::Host {
                band,
                stats,
                maps,
                pixels,
                keep,
            } => {
                // Making them counts as reading the band back, as on a GPU.
                let mut made = std::time::Duration::ZERO;
                let ((value, kept), mut timings) = band.read(|view| {
                    let started = std::time::Instant::now();
                    let kept = keep.then(|| KeptMaps(Kept::Host(view.to_tensor())));
                    let out = BandOut {
                        stats: if stats { stats_of(view) } else { Vec::new() },
                        maps: maps.then_some(view),
                        pixels: pixels.map(|quantise| quantise.pixels_cpu(view)),
                    };
                    made = started.elapsed();
                    Ok((read(out)?, kept))
                })?;
                timings.readback += made;
                Ok((value, timings, kept))
            }
            Pending::Done { pixels, timings } => {
                let out = BandOut {
                    stats: Vec::new(),
                    maps: None,
                    pixels: Some(pixels),
                };
                Ok((read(out)?, timings, None))
            }
            Pending::Gpu(band) => band.read(read),
        }
    }
}

/// Each map's statistics over a band `[n, rows, OW]`, in parallel.
fn stats_of(maps: TensorView<'_>) -> Vec<MapStats> {
    (0..maps.channels)
        .into_par_iter()
        .map(|k| MapStats::of(maps.plane(k)))
        .collect()
}

impl GpuBand {
    /// Waits for the submission and reads each readback in turn.
    fn read<T>(
        self,
        read: impl FnOnce(BandOut<'_>) -> Result<T>,
    ) -> Result<(T, RunTimings, Option<KeptMaps>)> {
        // The lease first: bindings drop in reverse, so that every mapping
        // is released before the slot goes back, on every path.
        let GpuBand {
            _lease,
            gpu,
            shape: [count, rows, width],
            stats,
            pixels,
            maps,
            kept,
        } = self;
        let mut timings = RunTimings::default();
        let plane_len = rows as u64 * width as u64;
        let stats = match stats {
            Some(run) => {
                let (stats, run_timings) = run.read_bytes(&gpu, |bytes| {
                    let partials: Vec<Partial> = bytemuck::pod_collect_to_vec(bytes);
                    let per_map = partials.len() / count.max(1) as usize;
                    Ok((0..count as usize)
                        .map(|k| {
                            let mine = &partials[k * per_map..(k + 1) * per_map];
                            MapStats::from_partials(mine, plane_len)
                        })
                        .collect())
                })?;
                timings.add(run_timings);
                stats
            }
            None => Vec::new(),
        };
        let pixels = match pixels {
            Some((run, (map_len, map_stride))) => {
                let (data, run_timings) = run.read_bytes(&gpu, |bytes| Ok(bytes.to_vec()))?;
                timings.add(run_timings);
                Some(BandPixels {
                    data,
                    maps: count,
                    map_len,
                    map_stride,
                })
            }
            None => None,
        };
        let kept = kept.map(|tensor| KeptMaps(Kept::Gpu(tensor)));
        let value = match maps {
            Some(run) => {
                let mut pixels = pixels;
                let (value, run_timings) = run.read(&gpu, |view| {
                    read(BandOut {
                        stats,
                        maps: Some(view),
                        pixels: pixels.take(),
                    })
                })?;
                timings.add(run_timings);
                value
            }
            None => read(BandOut {
                stats,
                maps: None,
                pixels,
            })?,
        };
        Ok((value, timings, kept))
    }
}
