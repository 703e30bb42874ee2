//! The CPU twins of `shaders/net_ops.wgsl`: each op computed one output
//! value at a time with the shader's names and index math, so that the
//! tests can hold the GPU to them; and [`run`], a network run on them.

use std::collections::HashMap;
use std::time::Instant;

use rayon::prelude::*;

use super::fold::broadcast_source;
use super::movement::copies;
use super::ops::{
    Binary, Conv, ConvTranspose, Coordinates, Gemm, Op, Pool, Reduce, Resize, Rounding, Unary,
    UnaryKind,
};
use super::{Array, NetRun, Network, ValueId};
use crate::error::{Error, Result};

/// Runs `net` over `input` (the model's input value) with the CPU twins,
/// keeping the values `keep` lists; every other value is dropped after its
/// last reader.
pub fn run(net: &Network, input: Array, keep: &[ValueId]) -> Result<NetRun> {
    let started = Instant::now();
    check_input(net, &input)?;
    let last = net.last_readers();
    let mut live: HashMap<ValueId, Array> = HashMap::new();
    live.insert(net.input_value, input);
    let mut node_ms = Vec::with_capacity(net.nodes.len());
    let mut kept = HashMap::new();
    for (index, node) in net.nodes.iter().enumerate() {
        let node_started = Instant::now();
        let inputs: Vec<&Array> = node
            .inputs
            .iter()
            .map(|v| {
                live.get(v)
                    .or_else(|| net.constants.get(v))
                    .expect("a value read before it is written")
            })
            .collect();
        let output = compute(&node.op, &inputs, &net.values[node.output].shape);
        node_ms.push(node_started.elapsed().as_secs_f64() * 1e3);
        live.insert(node.output, output);
        for &value in node.inputs.iter().chain([&node.output]) {
            let done = last[value].is_none_or(|l| l <= index);
            if done
                && let Some(array) = live.remove(&value)
                && keep.contains(&value)
            {
                kept.insert(value, array);
            }
        }
    }
    for value in keep {
        if let Some(array) = live.remove(value) {
            kept.insert(*value, array);
        }
    }
    Ok(NetRun {
        values: kept,
        node_ms,
        gpu_ms: None,
        total: started.elapsed(),
        memory: super::memory::NetMemory::of_values(net, &super::buffers::BufferPlan::new(net)),
    })
}

/// Refuses an input whose shape is not the network's.
pub(super) fn check_input(net: &Network, input: &Array) -> Result<()> {
    let expected = &net.values[net.input_value].shape;
    if &input.shape != expected {
        return Err(Error::Mismatch(format!(
            "the model's input is {expected:?}, the tensor given is {:?}",
            input.shape
        )));
    }
    Ok(())
}

/// `op` over `inputs`, into an output of `shape`.
pub fn compute(op: &Op, inputs: &[&Array], shape: &[usize]) -> Array {
    let count: usize = shape.iter().product();
    let x = inputs[0];
    let data = match op {
        Op::Conv(conv) => conv_all(conv, inputs, shape),
        Op::Unary(unary) => x.data.iter().map(|&v| unary_value(unary, v)).collect(),
        Op::Binary(kind) => {
            let params = BroadcastParams::new(&x.shape, &inputs[1].shape, shape);
            (0..count)
                .map(|i| binary_value(*kind, &params, (&x.data, &inputs[1].data), i))
                .collect()
        }
        Op::Affine => {
            let channels = x.shape[1];
            let inner = count / channels;
            (0..count)
                .map(|i| affine_value(x, (&inputs[1].data, &inputs[2].data), inner, i))
                .collect()
        }
        Op::Pool(pool) => (0..count).map(|i| pool_value(pool, x, shape, i)).collect(),
        Op::GlobalAverage => {
            let plane = x.shape[2] * x.shape[3];
            (0..count)
                .map(|c| global_average_value(&x.data, plane, c))
                .collect()
        }
        Op::Gemm(gemm) => (0..count)
            .map(|i| gemm_value(gemm, inputs, shape[1], i))
            .collect(),
        Op::Softmax { size, inner } => softmax_all(&x.data, *size, *inner),
        Op::Reduce { kind, size, inner } => (0..count)
            .map(|g| reduce_value(*kind, &x.data, (*size, *inner), g))
            .collect(),
        Op::Move(movement) => {
            let shapes: Vec<&[usize]> = inputs.iter().map(|a| a.shape.as_slice()).collect();
            let mut out = vec![0.0; count];
            for copy in copies(movement, &shapes, shape) {
                for i in 0..copy.count() {
                    let (from, to) = copy.indices(i);
                    out[to] = inputs[copy.input].data[from];
                }
            }
            out
        }
        Op::Resize(resize) => (0..count)
            .map(|i| resize_value(resize, x, shape, i))
            .collect(),
        Op::ConvTranspose(conv) => (0..count)
            .map(|i| conv_transpose_value(conv, inputs, shape, i))
            .collect(),
        Op::View => x.data.clone(),
    };
    Array::new(shape.to_vec(), data)
}

/// Softmax along an axis of `size` values `inner` apart, of every group
/// (the shader's `softmax`).
fn softmax_all(x: &[f32], size: usize, inner: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for g in 0..x.len() / size.max(1) {
        let first = (g / inner) * size * inner + g % inner;
        let row: Vec<f32> = (0..size).map(|j| x[first + j * inner]).collect();
        for (j, value) in softmax_row(&row).into_iter().enumerate() {
            out[first + j * inner] = value;
        }
    }
    out
}

/// Output `g` of a reduction of `size` values `inner` apart (the shader's
/// `reduce`).
pub fn reduce_value(kind: Reduce, x: &[f32], (size, inner): (usize, usize), g: usize) -> f32 {
    let first = (g / inner) * size * inner + g % inner;
    let values = (0..size).map(|j| x[first + j * inner]);
    match kind {
        Reduce::Mean => values.sum::<f32>() / size as f32,
        Reduce::Sum => values.sum(),
        Reduce::Max => values.fold(f32::NEG_INFINITY, f32::max),
    }
}

/// An output coordinate mapped back to the input (the shader's
/// `source_coordinate`).
pub fn source_coordinate(
    resize: &Resize,
    x: f32,
    scale: f32,
    (in_size, out_size): (usize, usize),
) -> f32 {
    match resize.coordinates {
        Coordinates::HalfPixel => (x + 0.5) / scale - 0.5,
        Coordinates::PytorchHalfPixel if out_size > 1 => (x + 0.5) / scale - 0.5,
        Coordinates::PytorchHalfPixel => 0.0,
        Coordinates::AlignCorners if out_size > 1 => {
            x * (in_size - 1) as f32 / (out_size - 1) as f32
        }
        Coordinates::AlignCorners => 0.0,
        Coordinates::Asymmetric => x / scale,
        Coordinates::TfHalfPixelForNn => (x + 0.5) / scale,
    }
}

/// The nearest input index to `x` (the shader's `nearest_index`).
pub fn nearest_index(resize: &Resize, x: f32, in_size: usize) -> usize {
    let halfway = x == x.floor() + 0.5;
    let index = match resize.rounding {
        Rounding::RoundPreferFloor if halfway => x.floor(),
        Rounding::RoundPreferCeil if halfway => x.ceil(),
        Rounding::RoundPreferFloor | Rounding::RoundPreferCeil => x.round(),
        Rounding::Floor => x.floor(),
        Rounding::Ceil => x.ceil(),
    };
    index.clamp(0.0, (in_size - 1) as f32) as usize
}

/// Output `index` of a resize of x `[1, C, H, W]` to `out` (the shader's
/// `resize`).
pub fn resize_value(resize: &Resize, x: &Array, out: &[usize], index: usize) -> f32 {
    let (h, w) = (x.shape[2], x.shape[3]);
    let (ox, oy, c) = (
        index % out[3],
        (index / out[3]) % out[2],
        index / (out[2] * out[3]),
    );
    let plane = &x.data[c * h * w..(c + 1) * h * w];
    let y = source_coordinate(resize, oy as f32, resize.scales[0], (h, out[2]));
    let xx = source_coordinate(resize, ox as f32, resize.scales[1], (w, out[3]));
    if !resize.linear {
        return plane[nearest_index(resize, y, h) * w + nearest_index(resize, xx, w)];
    }
    let cy = y.clamp(0.0, (h - 1) as f32);
    let cx = xx.clamp(0.0, (w - 1) as f32);
    let (y0, x0) = (cy.floor() as usize, cx.floor() as usize);
    let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
    let (wy, wx) = (cy - y0 as f32, cx - x0 as f32);
    let top = plane[y0 * w + x0] * (1.0 - wx) + plane[y0 * w + x1] * wx;
    let bottom = plane[y1 * w + x0] * (1.0 - wx) + plane[y1 * w + x1] * wx;
    top * (1.0 - wy) + bottom * wy
}

/// Output `index` of a transposed conv into `out` `[1, K, OH, OW]` (the
/// shader's `conv_transpose`).
pub fn conv_transpose_value(
    conv: &ConvTranspose,
    inputs: &[&Array],
    out: &[usize],
    index: usize,
) -> f32 {
    let (x, weight) = (inputs[0], inputs[1]);
    let (height, width) = (x.shape[2] as i64, x.shape[3] as i64);
    let (ox, oy, k) = (
        index % out[3],
        (index / out[3]) % out[2],
        index / (out[2] * out[3]),
    );
    let channels_per_group = x.shape[1] / conv.group as usize;
    let filters_per_group = weight.shape[1];
    let (group, k_in_group) = (k / filters_per_group, k % filters_per_group);
    let [fh, fw] = conv.kernel.map(|s| s as usize);
    let (sy, sx) = (conv.strides[0] as i64, conv.strides[1] as i64);
    let mut sum = 0.0f32;
    for ch in 0..channels_per_group {
        let in_channel = group * channels_per_group + ch;
        for ky in 0..fh {
            let ny = oy as i64 + conv.pads[0] as i64 - (ky as i64) * conv.dilations[0] as i64;
            if ny < 0 || ny % sy != 0 || ny / sy >= height {
                continue;
            }
            for kx in 0..fw {
                let nx = ox as i64 + conv.pads[1] as i64 - (kx as i64) * conv.dilations[1] as i64;
                if nx < 0 || nx % sx != 0 || nx / sx >= width {
                    continue;
                }
                let (in_y, in_x) = ((ny / sy) as usize, (nx / sx) as usize);
                let input_index = (in_channel * height as usize + in_y) * width as usize + in_x;
                let weight_index =
                    ((in_channel * filters_per_group + k_in_group) * fh + ky) * fw + kx;
                sum += x.data[input_index] * weight.data[weight_index];
            }
        }
    }
    sum + inputs.get(2).map_or(0.0, |b| b.data[k])
}

/// Every output value of a conv, filters in parallel.
fn conv_all(conv: &Conv, inputs: &[&Array], shape: &[usize]) -> Vec<f32> {
    let plane = shape[2] * shape[3];
    let mut out = vec![0.0; shape.iter().product()];
    let bias = inputs.get(2).map(|b| b.data.as_slice());
    // A fused residual is added to the sum before the activation.
    let residual = conv.residual.then(|| inputs[3].data.as_slice());
    let sum_only = Conv {
        activation: None,
        residual: false,
        ..*conv
    };
    let summing = if residual.is_some() { &sum_only } else { conv };
    out.par_chunks_mut(plane.max(1))
        .enumerate()
        .for_each(|(k, maps)| {
            for (p, value) in maps.iter_mut().enumerate() {
                let at = [k, p / shape[3], p % shape[3]];
                *value = conv_value(summing, (inputs[0], inputs[1], bias), at);
                if let Some(residual) = residual {
                    let sum = *value + residual[k * plane + p];
                    *value = conv
                        .activation
                        .map_or(sum, |unary| unary_value(&unary, sum));
                }
            }
        });
    out
}

/// Output `[k, oy, ox]` of a conv (the shader's `conv`): `bias[k]` plus the
/// sum over the channels of k's group and the window of input × weight,
/// through the fused activation if any.
pub fn conv_value(
    conv: &Conv,
    (input, weight, bias): (&Array, &Array, Option<&[f32]>),
    [k, oy, ox]: [usize; 3],
) -> f32 {
    let (channels, height, width) = (input.shape[1], input.shape[2] as i64, input.shape[3] as i64);
    let channels_per_group = weight.shape[1];
    let filters_per_group = weight.shape[0] / conv.group as usize;
    let first_channel = (k / filters_per_group) * channels_per_group;
    let [fh, fw] = conv.kernel.map(|s| s as usize);
    let origin_y = (oy * conv.strides[0] as usize) as i64 - conv.pads[0] as i64;
    let origin_x = (ox * conv.strides[1] as usize) as i64 - conv.pads[1] as i64;
    let mut sum = 0.0f32;
    for c in 0..channels_per_group {
        let in_channel = first_channel + c;
        debug_assert!(in_channel < channels);
        for ky in 0..fh {
            let in_y = origin_y + (ky * conv.dilations[0] as usize) as i64;
            if in_y < 0 || in_y >= height {
                continue;
            }
            for kx in 0..fw {
                let in_x = origin_x + (kx * conv.dilations[1] as usize) as i64;
                if in_x < 0 || in_x >= width {
                    continue;
                }
                let input_index =
                    (in_channel * height as usize + in_y as usize) * width as usize + in_x as usize;
                let weight_index = ((k * channels_per_group + c) * fh + ky) * fw + kx;
                sum += input.data[input_index] * weight.data[weight_index];
            }
        }
    }
    let sum = sum + bias.map_or(0.0, |b| b[k]);
    conv.activation
        .map_or(sum, |unary| unary_value(&unary, sum))
}

/// One value through a [`Unary`] (the shader's `unary_value`).
pub fn unary_value(unary: &Unary, x: f32) -> f32 {
    match unary.kind {
        UnaryKind::Relu => x.max(0.0),
        UnaryKind::LeakyRelu => {
            if x >= 0.0 {
                x
            } else {
                unary.alpha * x
            }
        }
        UnaryKind::Clip => x.max(unary.alpha).min(unary.beta),
        UnaryKind::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryKind::HardSigmoid => (unary.alpha * x + unary.beta).clamp(0.0, 1.0),
        UnaryKind::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        UnaryKind::Tanh => x.tanh(),
        UnaryKind::Exp => x.exp(),
        UnaryKind::Log => x.ln(),
        UnaryKind::Sqrt => x.sqrt(),
        UnaryKind::Neg => -x,
        UnaryKind::Abs => x.abs(),
        UnaryKind::Reciprocal => 1.0 / x,
        UnaryKind::Silu => x * (1.0 / (1.0 + (-x).exp())),
    }
}

/// Shapes of a broadcast binary op padded to rank 4, with each input's
/// strides (0 along an axis it is repeated on), as the shader's params.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastParams {
    /// The output's sizes, rank 4.
    pub out: [u32; 4],
    /// A's strides, in values.
    pub a: [u32; 4],
    /// B's strides, in values.
    pub b: [u32; 4],
}

impl BroadcastParams {
    /// For inputs of `a` and `b` (rank 4 at most) and output `out`.
    pub fn new(a: &[usize], b: &[usize], out: &[usize]) -> Self {
        let pad = |shape: &[usize]| -> [usize; 4] {
            let mut padded = [1; 4];
            padded[4 - shape.len()..].copy_from_slice(shape);
            padded
        };
        let strides = |shape: &[usize]| -> [u32; 4] {
            let shape = pad(shape);
            let mut strides = [0u32; 4];
            let mut step = 1;
            for axis in (0..4).rev() {
                strides[axis] = if shape[axis] == 1 { 0 } else { step as u32 };
                step *= shape[axis];
            }
            strides
        };
        BroadcastParams {
            out: pad(out).map(|d| d as u32),
            a: strides(a),
            b: strides(b),
        }
    }

    /// The indices into A and B that output `index` reads.
    pub fn sources(&self, index: usize) -> (usize, usize) {
        let mut rest = index as u32;
        let (mut a, mut b) = (0, 0);
        for axis in (0..4).rev() {
            let coordinate = rest % self.out[axis];
            rest /= self.out[axis];
            a += coordinate * self.a[axis];
            b += coordinate * self.b[axis];
        }
        (a as usize, b as usize)
    }
}

/// Output `index` of a binary op (the shader's `binary`).
pub fn binary_value(
    kind: Binary,
    params: &BroadcastParams,
    (a, b): (&[f32], &[f32]),
    index: usize,
) -> f32 {
    let (i, j) = params.sources(index);
    let (x, y) = (a[i], b[j]);
    match kind {
        Binary::Add => x + y,
        Binary::Sub => x - y,
        Binary::Mul => x * y,
        Binary::Div => x / y,
        Binary::PRelu => {
            if x >= 0.0 {
                x
            } else {
                y * x
            }
        }
        Binary::Pow => x.powf(y),
    }
}

/// Output `index` of an affine op over `[1, C, inner…]` (the shader's
/// `affine`): `x · scale[c] + shift[c]`.
pub fn affine_value(
    x: &Array,
    (scale, shift): (&[f32], &[f32]),
    inner: usize,
    index: usize,
) -> f32 {
    let c = (index / inner) % scale.len();
    x.data[index] * scale[c] + shift[c]
}

/// Output `index` of a pooling into `out` `[1, C, OH, OW]` (the shader's
/// `pool`): the largest value of the window, or its mean over the taps in
/// the image (with the padding counted, under `count_include_pad`).
pub fn pool_value(pool: &Pool, x: &Array, out: &[usize], index: usize) -> f32 {
    let (height, width) = (x.shape[2] as i64, x.shape[3] as i64);
    let (ox, oy, c) = (
        index % out[3],
        (index / out[3]) % out[2],
        index / (out[2] * out[3]),
    );
    let origin_y = (oy * pool.strides[0] as usize) as i64 - pool.pads[0] as i64;
    let origin_x = (ox * pool.strides[1] as usize) as i64 - pool.pads[1] as i64;
    let mut largest = f32::NEG_INFINITY;
    let mut sum = 0.0f32;
    let mut taps = 0u32;
    for ky in 0..pool.kernel[0] as i64 {
        let in_y = origin_y + ky * pool.dilations[0] as i64;
        for kx in 0..pool.kernel[1] as i64 {
            let in_x = origin_x + kx * pool.dilations[1] as i64;
            if in_y < 0 || in_y >= height || in_x < 0 || in_x >= width {
                continue;
            }
            let value =
                x.data[(c * height as usize + in_y as usize) * width as usize + in_x as usize];
            largest = largest.max(value);
            sum += value;
            taps += 1;
        }
    }
    if pool.max {
        return largest;
    }
    let divisor = if pool.count_include_pad {
        let span = |origin: i64, axis: usize, size: i64| {
            let end = (origin + pool.kernel[axis] as i64).min(size + pool.pads[axis + 2] as i64);
            end - origin
        };
        (span(origin_y, 0, height) * span(origin_x, 1, width)) as f32
    } else {
        taps as f32
    };
    sum / divisor
}

/// The mean of plane `c` of planes of `plane` values (the shader's
/// `global_average`).
pub fn global_average_value(x: &[f32], plane: usize, c: usize) -> f32 {
    let values = &x[c * plane..(c + 1) * plane];
    values.iter().sum::<f32>() / plane as f32
}

/// Output `index` of a Gemm of `n` columns (the shader's `gemm`):
/// alpha · Σ A[m, i] · B[i, n] + beta · C[m, n], C broadcast.
pub fn gemm_value(gemm: &Gemm, inputs: &[&Array], n: usize, index: usize) -> f32 {
    let (a, b) = (inputs[0], inputs[1]);
    let (row, column) = (index / n, index % n);
    let inner = if gemm.trans_a { a.shape[0] } else { a.shape[1] };
    let mut sum = 0.0f32;
    for i in 0..inner {
        let a_index = if gemm.trans_a {
            i * a.shape[1] + row
        } else {
            row * inner + i
        };
        let b_index = if gemm.trans_b {
            column * inner + i
        } else {
            i * n + column
        };
        sum += a.data[a_index] * b.data[b_index];
    }
    let c = inputs.get(2).map_or(0.0, |c| {
        c.data[broadcast_source(index, &[a_rows(gemm, a), n], &c.shape)]
    });
    gemm.alpha * sum + gemm.beta * c
}

/// The rows M of A.
fn a_rows(gemm: &Gemm, a: &Array) -> usize {
    if gemm.trans_a { a.shape[1] } else { a.shape[0] }
}

/// Softmax of one row (the shader's `softmax`).
pub fn softmax_row(row: &[f32]) -> Vec<f32> {
    let largest = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = row.iter().map(|&v| (v - largest).exp()).collect();
    let total: f32 = exps.iter().sum();
    exps.iter().map(|e| e / total).collect()
}
