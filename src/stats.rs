//! Statistics of each feature map (min, max, mean), gathered band by band
//! as the maps are computed.

use rayon::prelude::*;

pub use crate::gpu::pictures::Partial;
use crate::gpu::pictures::{CHUNK, ITEMS, WORKGROUP};
use crate::tensor::TensorView;

/// Running statistics of one map.
#[derive(Clone, Copy, Debug)]
pub struct MapStats {
    /// Smallest value seen.
    pub min: f32,
    /// Largest value seen.
    pub max: f32,
    sum: f64,
    count: u64,
}

impl Default for MapStats {
    fn default() -> Self {
        MapStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            sum: 0.0,
            count: 0,
        }
    }
}

impl MapStats {
    /// Takes in more of the map's values.
    pub fn add(&mut self, values: &[f32]) {
        // Eight independent lanes, so that the compiler can use vector
        // instructions instead of one long chain of dependent additions.
        const LANES: usize = 8;
        let mut lo = [self.min; LANES];
        let mut hi = [self.max; LANES];
        let mut sum = [0.0f64; LANES];
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for lane in 0..LANES {
                let v = chunk[lane];
                lo[lane] = if v < lo[lane] { v } else { lo[lane] };
                hi[lane] = if v > hi[lane] { v } else { hi[lane] };
                sum[lane] += v as f64;
            }
        }
        for &v in rest {
            lo[0] = lo[0].min(v);
            hi[0] = hi[0].max(v);
            sum[0] += v as f64;
        }
        self.min = lo.into_iter().fold(f32::INFINITY, f32::min);
        self.max = hi.into_iter().fold(f32::NEG_INFINITY, f32::max);
        self.sum += sum.iter().sum::<f64>();
        self.count += values.len() as u64;
    }

    /// Takes in a band of maps `[n, rows, OW]` into `stats`, one per map, in
    /// parallel.
    pub fn add_band(stats: &mut [MapStats], maps: TensorView<'_>) {
        stats
            .par_iter_mut()
            .zip(maps.data.par_chunks(maps.plane_len().max(1)))
            .for_each(|(stats, map)| stats.add(map));
    }

    /// Takes in another part of the same map (a band's statistics into the
    /// whole map's): the same as having added its values here.
    pub fn merge(&mut self, other: &MapStats) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
        self.count += other.count;
    }

    /// Statistics of `values`, one map or a band of it.
    pub fn of(values: &[f32]) -> MapStats {
        let mut stats = MapStats::default();
        stats.add(values);
        stats
    }

    /// A map's statistics from its chunks' [`Partial`]s, which hold `count`
    /// values in all: min and max exact, the sum of the chunks' f32 sums
    /// taken in f64.
    pub fn from_partials(partials: &[Partial], count: u64) -> MapStats {
        let mut stats = MapStats {
            count,
            ..MapStats::default()
        };
        for partial in partials {
            stats.min = stats.min.min(partial.min);
            stats.max = stats.max.max(partial.max);
            stats.sum += partial.sum as f64;
        }
        stats
    }

    /// Min, max and mean of the values seen.
    pub fn summary(&self) -> MapSummary {
        MapSummary {
            min: self.min,
            max: self.max,
            mean: if self.count == 0 {
                0.0
            } else {
                (self.sum / self.count as f64) as f32
            },
        }
    }
}

/// The CPU twin of the shader's `map_stats` over one map: a [`Partial`]
/// per chunk of [`CHUNK`] values, each with the shader's lanes and its
/// additions in the same order (lane i takes values i, i + 256, …; the
/// 256 lanes are then halved 8 times).
pub fn gpu_partials(map: &[f32]) -> Vec<Partial> {
    map.chunks(CHUNK)
        .map(|chunk| {
            let mut low = [f32::INFINITY; WORKGROUP];
            let mut high = [f32::NEG_INFINITY; WORKGROUP];
            let mut total = [0.0f32; WORKGROUP];
            for lane in 0..WORKGROUP {
                for item in 0..ITEMS {
                    if let Some(&v) = chunk.get(item * WORKGROUP + lane) {
                        low[lane] = low[lane].min(v);
                        high[lane] = high[lane].max(v);
                        total[lane] += v;
                    }
                }
            }
            let mut half = WORKGROUP / 2;
            while half > 0 {
                for lane in 0..half {
                    low[lane] = low[lane].min(low[lane + half]);
                    high[lane] = high[lane].max(high[lane + half]);
                    total[lane] += total[lane + half];
                }
                half /= 2;
            }
            Partial::new(low[0], high[0], total[0])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_give_the_same_min_max_and_nearly_the_same_mean() {
        let map: Vec<f32> = (0..10_000)
            .map(|i| ((i * 37 % 1001) as f32 - 500.0) / 7.0)
            .collect();
        let cpu = MapStats::of(&map).summary();
        let partials = gpu_partials(&map);
        assert_eq!(partials.len(), 3);
        let gpu = MapStats::from_partials(&partials, map.len() as u64).summary();
        assert_eq!((gpu.min, gpu.max), (cpu.min, cpu.max));
        assert!(
            (gpu.mean - cpu.mean).abs() <= 1e-6 * cpu.max.abs(),
            "{gpu:?} {cpu:?}"
        );
    }

    #[test]
    fn merged_bands_equal_one_pass_over_the_map() {
        let map: Vec<f32> = (0..1000).map(|i| (i as f32).sin()).collect();
        let mut merged = MapStats::default();
        for band in map.chunks(333) {
            merged.merge(&MapStats::of(band));
        }
        let mut whole = MapStats::default();
        for band in map.chunks(333) {
            whole.add(band);
        }
        assert_eq!(merged.summary(), whole.summary());
    }
}

/// The range of one map's raw values (before normalisation).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct MapSummary {
    /// Smallest value.
    pub min: f32,
    /// Largest value.
    pub max: f32,
    /// Mean value.
    pub mean: f32,
}
