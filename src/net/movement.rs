//! Values that move without arithmetic (Concat, Slice, Split, Transpose,
//! Expand) as strided copies: each output value of a copy is read from
//! `in_base + Σ coordinate[d]·in_strides[d]` of one input and written to
//! `out_base + Σ coordinate[d]·out_strides[d]` of the output, over a box of
//! `sizes`. One index rule serves every movement; the shader's `copy` and
//! its twin `cpu::copy_value` follow it.

use super::array::strides;
use super::ops::{Movement, ShapeText};

/// The most axes a copy has (shapes are padded with leading 1s).
pub const COPY_RANK: usize = 6;

/// One strided copy from one input into the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedCopy {
    /// Which of the node's inputs it reads.
    pub input: usize,
    /// The box copied, `COPY_RANK` axes.
    pub sizes: [usize; COPY_RANK],
    /// Where in the input the box starts.
    pub in_base: i64,
    /// Steps in the input per step along each axis of the box.
    pub in_strides: [i64; COPY_RANK],
    /// Where in the output the box starts.
    pub out_base: i64,
    /// Steps in the output per step along each axis of the box.
    pub out_strides: [i64; COPY_RANK],
}

impl StridedCopy {
    /// Values copied.
    pub fn count(&self) -> usize {
        self.sizes.iter().product()
    }

    /// The input and output indices of the copy's value `index` (row-major
    /// in the box).
    pub fn indices(&self, index: usize) -> (usize, usize) {
        let (mut rest, mut from, mut to) = (index, self.in_base, self.out_base);
        for axis in (0..COPY_RANK).rev() {
            let coordinate = (rest % self.sizes[axis]) as i64;
            rest /= self.sizes[axis];
            from += coordinate * self.in_strides[axis];
            to += coordinate * self.out_strides[axis];
        }
        (from as usize, to as usize)
    }
}

/// `values` padded at the front to `COPY_RANK` with `fill`.
fn padded<T: Copy>(values: &[T], fill: T) -> [T; COPY_RANK] {
    let mut out = [fill; COPY_RANK];
    out[COPY_RANK - values.len()..].copy_from_slice(values);
    out
}

/// Row-major strides of `shape` as i64.
fn strides_i64(shape: &[usize]) -> Vec<i64> {
    strides(shape).into_iter().map(|s| s as i64).collect()
}

/// The copies that make the output `out` of `movement` from inputs of
/// `inputs`' shapes.
pub fn copies(movement: &Movement, inputs: &[&[usize]], out: &[usize]) -> Vec<StridedCopy> {
    let out_strides = strides_i64(out);
    let whole = |input: usize, sizes: &[usize], in_base, in_strides: &[i64]| StridedCopy {
        input,
        sizes: padded(sizes, 1),
        in_base,
        in_strides: padded(in_strides, 0),
        out_base: 0,
        out_strides: padded(&out_strides, 0),
    };
    match movement {
        Movement::Concat { axis } => {
            let mut offset = 0;
            inputs
                .iter()
                .enumerate()
                .map(|(i, shape)| {
                    let copy = StridedCopy {
                        out_base: offset as i64 * out_strides[*axis],
                        ..whole(i, shape, 0, &strides_i64(shape))
                    };
                    offset += shape[*axis];
                    copy
                })
                .collect()
        }
        Movement::Slice { starts, steps } => {
            let in_strides = strides_i64(inputs[0]);
            let base = starts.iter().zip(&in_strides).map(|(s, t)| s * t).sum();
            let stepped: Vec<i64> = steps.iter().zip(&in_strides).map(|(s, t)| s * t).collect();
            vec![whole(0, out, base, &stepped)]
        }
        Movement::Transpose { perm } => {
            let in_strides = strides_i64(inputs[0]);
            let permuted: Vec<i64> = perm.iter().map(|&p| in_strides[p]).collect();
            vec![whole(0, out, 0, &permuted)]
        }
        Movement::Expand => {
            let input = inputs[0];
            let in_strides = strides_i64(input);
            let offset = out.len() - input.len();
            let broadcast: Vec<i64> = (0..out.len())
                .map(|d| match d.checked_sub(offset) {
                    Some(i) if input[i] != 1 => in_strides[i],
                    _ => 0,
                })
                .collect();
            vec![whole(0, out, 0, &broadcast)]
        }
    }
}

/// The output shape of a Concat of `inputs` along `axis`, or why they do
/// not concatenate.
pub fn concat_shape(inputs: &[&[usize]], axis: usize) -> Result<Vec<usize>, String> {
    let first = inputs.first().ok_or("it has no input")?;
    let mut out = first.to_vec();
    out[axis] = 0;
    for shape in inputs {
        let fits = shape.len() == first.len()
            && (0..first.len()).all(|d| d == axis || shape[d] == first[d]);
        if !fits {
            return Err(format!(
                "{} and {} do not concatenate along axis {axis}",
                ShapeText(first),
                ShapeText(shape)
            ));
        }
        out[axis] += shape[axis];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(movement: &Movement, inputs: &[(&[usize], Vec<f32>)], out: &[usize]) -> Vec<f32> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|(s, _)| *s).collect();
        let mut result = vec![f32::NAN; out.iter().product()];
        for copy in copies(movement, &shapes, out) {
            for i in 0..copy.count() {
                let (from, to) = copy.indices(i);
                result[to] = inputs[copy.input].1[from];
            }
        }
        result
    }

    #[test]
    fn concat_places_each_input_after_the_last() {
        let a = (&[1usize, 1, 2][..], vec![1.0, 2.0]);
        let b = (&[1usize, 2, 2][..], vec![3.0, 4.0, 5.0, 6.0]);
        let out = apply(
            &Movement::Concat { axis: 1 },
            &[a.clone(), b.clone()],
            &[1, 3, 2],
        );
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let out = apply(
            &Movement::Concat { axis: 2 },
            &[a, (&[1, 1, 2], vec![7.0, 8.0])],
            &[1, 1, 4],
        );
        assert_eq!(out, [1.0, 2.0, 7.0, 8.0]);
    }

    #[test]
    fn slices_step_forwards_and_backwards() {
        let x = (
            &[1usize, 6][..],
            (0..6).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let every_other = Movement::Slice {
            starts: vec![0, 1],
            steps: vec![1, 2],
        };
        assert_eq!(
            apply(&every_other, std::slice::from_ref(&x), &[1, 3]),
            [1.0, 3.0, 5.0]
        );
        let reversed = Movement::Slice {
            starts: vec![0, 5],
            steps: vec![1, -1],
        };
        assert_eq!(
            apply(&reversed, &[x], &[1, 6]),
            [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]
        );
    }

    #[test]
    fn transpose_and_expand_read_the_right_values() {
        let x = (&[2usize, 3][..], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let t = Movement::Transpose { perm: vec![1, 0] };
        assert_eq!(apply(&t, &[x], &[3, 2]), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        let row = (&[3usize][..], vec![7.0, 8.0, 9.0]);
        assert_eq!(
            apply(&Movement::Expand, &[row], &[2, 3]),
            [7.0, 8.0, 9.0, 7.0, 8.0, 9.0]
        );
    }
}
