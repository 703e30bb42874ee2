//! Each value's receptive field on the model's input: the rows and columns
//! of the photo that pixel p of the value depends on, through every
//! window (conv, pooling, transposed conv, resize) before it; where the
//! graph merges (an Add, a Concat of channels) the union over its paths.
//! Values that no longer have rows and columns of their own (after a
//! global pool, a Gemm) depend on the whole photo.

use serde::Serialize;

use super::ops::Op;
use super::{Layout, Network};

/// Along rows and columns (`[rows, columns]`): pixel p of a value covers
/// the input pixels from `p·jump + start` to `p·jump + start + size − 1`,
/// clipped to the input (`jump` 0: every pixel covers the whole input).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Field {
    /// Input pixels between neighbouring pixels' fields.
    pub jump: [f64; 2],
    /// Where pixel 0's field starts (negative: in the padding).
    pub start: [f64; 2],
    /// Input pixels one pixel's field spans.
    pub size: [f64; 2],
}

impl Field {
    /// The field whose `(jump, start, size)` along axis a (0: rows, 1:
    /// columns) `axis(a)` gives.
    fn from_axes(axis: impl Fn(usize) -> (f64, f64, f64)) -> Field {
        let ((j0, s0, z0), (j1, s1, z1)) = (axis(0), axis(1));
        Field {
            jump: [j0, j1],
            start: [s0, s1],
            size: [z0, z1],
        }
    }

    /// Pixel `[row, column]`'s field `[y0, x0, y1, x1]`, inclusive,
    /// clipped to an input of `[height, width]`.
    pub fn rectangle(&self, [row, column]: [u32; 2], [height, width]: [u32; 2]) -> [u32; 4] {
        let axis = |a: usize, p: u32, size: u32| {
            let first = p as f64 * self.jump[a] + self.start[a];
            let last = first + self.size[a] - 1.0;
            let clip = |v: f64| v.floor().clamp(0.0, size.saturating_sub(1) as f64) as u32;
            (clip(first), clip(last.ceil()))
        };
        let (y0, y1) = axis(0, row, height);
        let (x0, x1) = axis(1, column, width);
        [y0, x0, y1, x1]
    }
}

/// Every value's field, by [`super::ValueId`]; `None` for weights and
/// constants, and for values whose rows and columns are not the photo's
/// (after a Transpose, or in a model whose input is NHWC).
pub fn fields(net: &Network) -> Vec<Option<Field>> {
    let mut fields: Vec<Option<Field>> = vec![None; net.values.len()];
    let input = &net.values[net.input_value].shape;
    if net.input.layout != Layout::Nchw || input.len() != 4 {
        return fields;
    }
    let whole = Field {
        jump: [0.0; 2],
        start: [0.0; 2],
        size: [input[2] as f64, input[3] as f64],
    };
    fields[net.input_value] = Some(Field {
        jump: [1.0; 2],
        start: [0.0; 2],
        size: [1.0; 2],
    });
    for node in &net.nodes {
        let reads: Vec<(usize, Field)> = node
            .inputs
            .iter()
            .filter_map(|&v| fields[v].map(|f| (v, f)))
            .collect();
        let Some(&(_, first)) = reads.first() else {
            continue;
        };
        let spatial = |v: usize| net.values[v].shape.len() == 4;
        fields[node.output] = match &node.op {
            Op::Conv(c) => Some(window(first, (c.kernel, c.strides, c.pads, c.dilations))),
            Op::Pool(p) => Some(window(first, (p.kernel, p.strides, p.pads, p.dilations))),
            Op::ConvTranspose(c) => Some(transposed(
                first,
                (c.kernel, c.strides, c.pads, c.dilations),
            )),
            Op::Resize(r) => Some(resized(first, r.scales, r.linear)),
            Op::GlobalAverage | Op::Gemm(_) => Some(whole),
            _ if !spatial(node.output) => Some(whole),
            Op::Move(super::ops::Movement::Transpose { .. }) => None,
            _ => same_rows_and_columns(net, node, &reads),
        };
    }
    fields
}

/// A window's kernel, strides, pads `[top, left, bottom, right]` and
/// dilations, as a conv, a pooling or a transposed conv states them.
type Taps = ([u32; 2], [u32; 2], [u32; 4], [u32; 2]);

/// The field after a window of `kernel` taps `dilations` apart, `strides`
/// apart, padded by `pads`.
fn window(f: Field, (kernel, strides, pads, dilations): Taps) -> Field {
    let axis = |a: usize| {
        (
            f.jump[a] * strides[a] as f64,
            f.start[a] - pads[a] as f64 * f.jump[a],
            f.size[a] + (kernel[a] as f64 - 1.0) * dilations[a] as f64 * f.jump[a],
        )
    };
    Field::from_axes(axis)
}

/// The field after a transposed conv: output pixel o reads the input
/// pixels i with i·stride = o + pad − k·dilation for a tap k.
fn transposed(f: Field, (kernel, strides, pads, dilations): Taps) -> Field {
    let axis = |a: usize| {
        let s = strides[a] as f64;
        let reach = (kernel[a] as f64 - 1.0) * dilations[a] as f64;
        let first = (pads[a] as f64 - reach) / s;
        (
            f.jump[a] / s,
            f.start[a] + first * f.jump[a],
            f.size[a] + (reach / s).ceil() * f.jump[a],
        )
    };
    Field::from_axes(axis)
}

/// The field after resizing by `scales`: nearest reads one input pixel,
/// linear two along each axis.
fn resized(f: Field, scales: [f32; 2], linear: bool) -> Field {
    let axis = |a: usize| {
        let jump = f.jump[a] / scales[a] as f64;
        let extra = if linear { f.jump[a] } else { 0.0 };
        (jump, f.start[a] - extra / 2.0, f.size[a] + extra)
    };
    Field::from_axes(axis)
}

/// An op that keeps rows and columns where they are (an activation, an
/// Add, a Concat of channels, a product with a squeeze-excitation's [1, C,
/// 1, 1]): the union of its inputs' fields, where each input's rows and
/// columns are the output's or one broadcast pixel; else none.
fn same_rows_and_columns(
    net: &Network,
    node: &super::Node,
    reads: &[(usize, Field)],
) -> Option<Field> {
    let out = &net.values[node.output].shape;
    let rows_and_columns = |shape: &[usize]| shape[shape.len().saturating_sub(2)..].to_vec();
    let kept = reads.iter().all(|&(v, _)| {
        let here = rows_and_columns(&net.values[v].shape);
        here == rows_and_columns(out) || here == [1, 1]
    });
    if !kept {
        return None;
    }
    let mut union = reads[0].1;
    for (_, f) in &reads[1..] {
        for a in 0..2 {
            let end = (union.start[a] + union.size[a]).max(f.start[a] + f.size[a]);
            union.start[a] = union.start[a].min(f.start[a]);
            union.size[a] = end - union.start[a];
            union.jump[a] = union.jump[a].max(f.jump[a]);
        }
    }
    Some(union)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stem_conv_and_pool_see_eleven_pixels() {
        let input = Field {
            jump: [1.0; 2],
            start: [0.0; 2],
            size: [1.0; 2],
        };
        let conv = window(input, ([7, 7], [2, 2], [3, 3, 3, 3], [1, 1]));
        assert_eq!(
            (conv.jump, conv.start, conv.size),
            ([2.0; 2], [-3.0; 2], [7.0; 2])
        );
        let pool = window(conv, ([3, 3], [2, 2], [1, 1, 1, 1], [1, 1]));
        assert_eq!(
            (pool.jump, pool.start, pool.size),
            ([4.0; 2], [-5.0; 2], [11.0; 2])
        );
        assert_eq!(pool.rectangle([0, 0], [40, 40]), [0, 0, 5, 5]);
        assert_eq!(pool.rectangle([2, 3], [40, 40]), [3, 7, 13, 17]);
        assert_eq!(pool.rectangle([9, 9], [40, 40]), [31, 31, 39, 39]);
    }
}
