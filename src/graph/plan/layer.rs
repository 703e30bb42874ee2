//! The plan of one conv computed whole: which output rows and which
//! filters each pass computes, so that no buffer exceeds the device's
//! limits and host memory stays bounded, whatever the photo's size.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::layer::LayerSpec;

/// Bands of output rows and chunks of filters. Every band is computed for
/// every chunk; together they cover the output exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerPlan {
    /// Output rows per band, in order.
    pub bands: Vec<Range<u32>>,
    /// Filters per chunk, on group boundaries, in order.
    pub filter_chunks: Vec<Range<u32>>,
}

impl LayerPlan {
    /// Splits the layer over an `in_height`×`in_width` input so that each
    /// band's output `[filters, rows, OW]` and input `[C, rows_in, W]` take at
    /// most `budget` bytes of f32. Filters are split (on group boundaries)
    /// only when one output row of all of them exceeds the budget.
    pub fn new(spec: &LayerSpec, in_height: u32, in_width: u32, budget: u64) -> Result<LayerPlan> {
        let (out_height, out_width) = spec.output_size(in_height, in_width)?;
        let per_group = spec.filters_per_group();
        let input_bytes = |rows: u64, channels: u64| {
            // A band's input rows, zero padding included (at most the padded image).
            let padded_height =
                in_height as u64 + spec.padding.top as u64 + spec.padding.bottom as u64;
            let rows_in =
                ((rows - 1) * spec.stride as u64 + spec.dilated_kernel().0).min(padded_height);
            channels * rows_in * in_width as u64 * 4
        };
        let output_row = |filters: u64| filters * out_width as u64 * 4;
        let channels_for =
            |filters: u32| (filters.div_ceil(per_group) * spec.channels_per_group()) as u64;

        let mut chunk = spec.filters;
        while chunk > per_group
            && (output_row(chunk as u64) > budget || input_bytes(1, channels_for(chunk)) > budget)
        {
            chunk = ((chunk / 2) / per_group).max(1) * per_group;
        }
        if output_row(chunk as u64) > budget || input_bytes(1, channels_for(chunk)) > budget {
            return Err(Error::TooLarge(format!(
                "one output row of {chunk} filters ({} bytes) with the input rows it reads ({} bytes) \
                 does not fit in a band of {budget} bytes; the photo is too wide for this engine",
                output_row(chunk as u64),
                input_bytes(1, channels_for(chunk))
            )));
        }
        let channels = channels_for(chunk);
        let mut rows = (budget / output_row(chunk as u64)).clamp(1, out_height as u64);
        while rows > 1 && input_bytes(rows, channels) > budget {
            rows /= 2;
        }
        let rows = rows as u32;
        let bands = (0..out_height)
            .step_by(rows as usize)
            .map(|y| y..(y + rows).min(out_height))
            .collect();
        let filter_chunks = (0..spec.filters)
            .step_by(chunk as usize)
            .map(|k| k..(k + chunk).min(spec.filters))
            .collect();
        Ok(LayerPlan {
            bands,
            filter_chunks,
        })
    }

    /// Bytes of the largest piece's output `[filters, rows, OW]`, for an
    /// output `out_width` wide.
    pub fn largest_piece_bytes(&self, out_width: u32) -> u64 {
        let rows = self.bands.iter().map(|band| band.len()).max().unwrap_or(0) as u64;
        let filters = self
            .filter_chunks
            .iter()
            .map(|c| c.len())
            .max()
            .unwrap_or(0) as u64;
        4 * filters * rows * out_width as u64
    }
}
