//! Statistics of each feature map (min, max, mean), gathered band by band
//! as the maps are computed.

use rayon::prelude::*;

use crate::report::MapSummary;
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
