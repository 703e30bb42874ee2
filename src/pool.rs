//! Max pooling, as PyTorch's `MaxPool2d(size, stride)` with no padding and
//! floor rounding: each output pixel is the largest value of its window,
//! channel by channel.

use std::ops::Range;

use crate::error::{Error, Result};

/// A max-pooling step's geometry: a `size`×`size` window moved by `stride`
/// pixels, no padding, no dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    /// Side of the square window, in pixels (≥ 1).
    pub size: u32,
    /// Step between windows, in pixels (≥ 1).
    pub stride: u32,
}

impl PoolSpec {
    /// `maxpoolN`: an N×N window with stride N.
    pub fn square(size: u32) -> Self {
        PoolSpec { size, stride: size }
    }

    /// Output size `(OH, OW)` of an `in_height`×`in_width` input:
    /// `floor((H − size) / stride) + 1`, likewise for the width. Fails when
    /// the window is larger than the input or a size is zero.
    pub fn output_size(&self, in_height: u32, in_width: u32) -> Result<(u32, u32)> {
        if self.size == 0 || self.stride == 0 {
            return Err(Error::InvalidLayer(format!(
                "max pooling needs a window and a stride of at least 1, got {}/s{}",
                self.size, self.stride
            )));
        }
        if self.size > in_height || self.size > in_width {
            return Err(Error::Mismatch(format!(
                "the input is {in_width}×{in_height} pixels, smaller than the {0}×{0} pooling window",
                self.size
            )));
        }
        Ok((
            (in_height - self.size) / self.stride + 1,
            (in_width - self.size) / self.stride + 1,
        ))
    }

    /// The input rows that output rows `out_rows` read: `[start·S, (end−1)·S + size)`.
    pub fn input_rows(&self, out_rows: Range<u32>) -> Range<u32> {
        if out_rows.is_empty() {
            return 0..0;
        }
        out_rows.start * self.stride..(out_rows.end - 1) * self.stride + self.size
    }
}
