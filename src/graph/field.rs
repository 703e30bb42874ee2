//! Receptive fields: the input pixels a value of a block's maps depends on,
//! walked back through every step before it (each conv's stride, padding
//! and dilation, each pooling's window and stride). This is the twin of the
//! page's `receptiveField` (`render/explore.js`), which walks the same steps.

use super::{Graph, Op};

/// An inclusive range of pixels along one axis, `first..=last`; empty when
/// `first > last` (a window that lies wholly in the zero padding).
type Span = (i64, i64);

/// Per step of a chain, how an output coordinate maps to the input it
/// reads along one axis: `first = out·stride − pad`, `last = first + extent
/// − 1`, the window's extent `(kernel − 1)·dilation + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Step between windows.
    pub stride: u32,
    /// Zero padding before the first input pixel.
    pub pad: u32,
    /// Pixels the window spans, dilation included.
    pub extent: u32,
}

impl Window {
    /// The input pixels (clipped to `0..size`) that outputs `span` read.
    fn reads(self, (first, last): Span, size: u32) -> Span {
        let (stride, pad) = (self.stride as i64, self.pad as i64);
        let first = first * stride - pad;
        let last = last * stride - pad + self.extent as i64 - 1;
        (first.max(0), last.min(size as i64 - 1))
    }
}

impl Graph {
    /// Each step's windows `(rows, columns)`: a ReLU's are one pixel wide.
    pub fn windows(&self) -> Vec<(Window, Window)> {
        self.steps
            .iter()
            .map(|step| match &step.op {
                Op::Conv(layer) => {
                    let spec = &layer.spec;
                    let (extent_y, extent_x) = spec.dilated_kernel();
                    (
                        Window {
                            stride: spec.stride,
                            pad: spec.padding.top,
                            extent: extent_y as u32,
                        },
                        Window {
                            stride: spec.stride,
                            pad: spec.padding.left,
                            extent: extent_x as u32,
                        },
                    )
                }
                Op::MaxPool(pool) => {
                    let window = Window {
                        stride: pool.stride,
                        pad: 0,
                        extent: pool.size,
                    };
                    (window, window)
                }
                Op::Relu => {
                    let window = Window {
                        stride: 1,
                        pad: 0,
                        extent: 1,
                    };
                    (window, window)
                }
            })
            .collect()
    }

    /// The input pixels `[x0, y0, x1, y1]` (inclusive, clipped to the
    /// input) that the value at `(x, y)` of block `block`'s maps depends
    /// on, through every step of the chain before it; `None` when it
    /// depends on none (a window wholly in the zero padding).
    pub fn receptive_field(&self, block: usize, x: u32, y: u32) -> Option<[u32; 4]> {
        let last = self.blocks.get(block)?.steps.end;
        let windows = self.windows();
        let (mut rows, mut columns): (Span, Span) = ((y as i64, y as i64), (x as i64, x as i64));
        for (step, (row_window, column_window)) in self.steps[..last].iter().zip(&windows).rev() {
            let [_, height, width] = self.input_of(step);
            rows = row_window.reads(rows, height);
            columns = column_window.reads(columns, width);
            if rows.0 > rows.1 || columns.0 > columns.1 {
                return None;
            }
        }
        Some([
            columns.0 as u32,
            rows.0 as u32,
            columns.1 as u32,
            rows.1 as u32,
        ])
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::test_stack as chain;

    #[test]
    fn a_value_depends_on_its_window_through_stride_padding_and_pooling() {
        // conv1 5×5: (x, y) reads x..x+4, y..y+4.
        let graph = chain("4x5,relu,maxpool2,6x3/s2/p1", 40, 50);
        assert_eq!(graph.receptive_field(0, 0, 0), Some([0, 0, 5, 5]));
        // conv2 3×3 stride 2 pad 1 over the pooled maps: (3, 2) reads pooled
        // columns 5..7 and rows 3..5, pooled k reads conv1 2k..2k+1, which
        // reads 2k..2k+5 of the photo.
        assert_eq!(graph.receptive_field(1, 3, 2), Some([10, 6, 19, 15]));
        // At the corner the padding is clipped away.
        assert_eq!(graph.receptive_field(1, 0, 0), Some([0, 0, 7, 7]));
    }

    #[test]
    fn dilation_widens_the_field_and_a_window_in_the_padding_reads_nothing() {
        let graph = chain("2x3/d3,2x1/p2", 20, 20);
        // conv1 3×3 dilation 3: (x, y) reads x..x+6.
        assert_eq!(graph.receptive_field(0, 4, 1), Some([4, 1, 10, 7]));
        // conv2 1×1 padding 2: output (0, 0) reads only padding.
        assert_eq!(graph.receptive_field(1, 0, 0), None);
        assert_eq!(graph.receptive_field(1, 2, 2), Some([0, 0, 6, 6]));
    }
}
