//! The op registry: each op a network can run, with its attributes parsed
//! and checked, and its output shape inferred from its inputs' shapes.
//! Each op has a CPU twin in `net::cpu` and a WGSL entry point in
//! `shaders/net_ops.wgsl` (a conv whose strides and dilations are the
//! same along both axes runs on the fast conv shader instead).
//!
//! Shapes are ONNX's, batch included: a conv reads `[1, C, H, W]`.

use std::fmt;

/// What a node computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// A 2-D convolution: inputs x `[1, C, H, W]`, weight `[K, C/G, FH, FW]`
    /// and optionally bias `[K]`; output `[1, K, OH, OW]`.
    Conv(Conv),
    /// One value in, one value out, as [`Unary`] says.
    Unary(Unary),
    /// Two inputs, broadcast against each other as ONNX (and numpy) do.
    Binary(Binary),
    /// BatchNormalization at inference: x `[1, C, …]` times scale `[C]`
    /// plus shift `[C]`, both made from its four tensors when the model
    /// is loaded.
    Affine,
    /// Max or average pooling over windows of H and W.
    Pool(Pool),
    /// The mean of each channel's H×W values: `[1, C, H, W]` → `[1, C, 1, 1]`
    /// (GlobalAveragePool; ReduceMean over H and W, `[1, C]` without
    /// keepdims).
    GlobalAverage,
    /// `alpha·A·B + beta·C`: A `[M, K]`, B `[K, N]` (either transposed as
    /// stated), C broadcast to `[M, N]` (Gemm; MatMul of two matrices).
    Gemm(Gemm),
    /// exp(x − max) / Σ exp(x − max) along one axis of `size` values,
    /// `inner` values apart (the axes after it; before opset 13, the axes
    /// from `axis` on as one, `inner` 1).
    Softmax {
        /// Values per softmax.
        size: usize,
        /// Values between two of one softmax.
        inner: usize,
    },
    /// The mean, sum or largest value along axes of `size` values in all,
    /// `inner` values apart (contiguous axes of the input).
    Reduce {
        /// What is computed.
        kind: Reduce,
        /// Values reduced into each output.
        size: usize,
        /// Values between two of one reduction.
        inner: usize,
    },
    /// Values moved, not computed: concatenated, sliced, transposed or
    /// broadcast (`net::movement`), as strided copies.
    Move(Movement),
    /// Nearest or linear resizing of H and W of `[1, C, H, W]`.
    Resize(Resize),
    /// A transposed 2-D convolution: x `[1, C, H, W]`, weight
    /// `[C, K/G, FH, FW]`, optionally bias `[K]`; output `[1, K, OH, OW]`.
    ConvTranspose(ConvTranspose),
    /// The same values under another shape (Flatten, Reshape, Squeeze,
    /// Unsqueeze), or unchanged (Identity, Dropout at inference).
    View,
}

/// A conv's geometry, and the activation fused into it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv {
    /// `[FH, FW]`.
    pub kernel: [u32; 2],
    /// `[height, width]` steps between windows.
    pub strides: [u32; 2],
    /// Zero padding `[top, left, bottom, right]` (ONNX's `pads` order).
    pub pads: [u32; 4],
    /// `[height, width]` steps between taps.
    pub dilations: [u32; 2],
    /// Groups G.
    pub group: u32,
    /// Whether a bias input is given.
    pub bias: bool,
    /// An activation applied after the bias (and the residual): the
    /// model's next node, fused into the conv where no one reads the conv's
    /// own output (`net::fuse`).
    pub activation: Option<Unary>,
    /// Whether a value of the output's shape (the node's fourth input,
    /// after the bias) is added before the activation: the model's next Add
    /// (a residual connection), fused the same way.
    pub residual: bool,
}

/// Kinds of [`Unary`] op, with the code `net_ops.wgsl` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryKind {
    /// max(x, 0).
    Relu = 0,
    /// x ≥ 0 ? x : alpha·x.
    LeakyRelu = 1,
    /// min(max(x, alpha), beta).
    Clip = 2,
    /// 1 / (1 + exp(−x)).
    Sigmoid = 3,
    /// max(0, min(1, alpha·x + beta)).
    HardSigmoid = 4,
    /// x · max(0, min(1, x/6 + 1/2)).
    HardSwish = 5,
    /// tanh(x).
    Tanh = 6,
    /// eˣ.
    Exp = 7,
    /// ln x.
    Log = 8,
    /// √x.
    Sqrt = 9,
    /// −x.
    Neg = 10,
    /// |x|.
    Abs = 11,
    /// 1/x.
    Reciprocal = 12,
    /// x · sigmoid(x) (SiLU, also called swish): a Sigmoid and the Mul
    /// of its input by it, fused (`net::fuse`).
    Silu = 13,
}

/// An elementwise function of one value, with its two parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unary {
    /// Which function.
    pub kind: UnaryKind,
    /// LeakyRelu's slope, Clip's minimum, HardSigmoid's alpha.
    pub alpha: f32,
    /// Clip's maximum, HardSigmoid's beta.
    pub beta: f32,
}

/// Kinds of [`Op::Binary`], with the code `net_ops.wgsl` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    /// a + b.
    Add = 0,
    /// a − b.
    Sub = 1,
    /// a · b.
    Mul = 2,
    /// a / b.
    Div = 3,
    /// a ≥ 0 ? a : b · a (PRelu, b the slope).
    PRelu = 4,
    /// aᵇ (a negative a only to a whole power).
    Pow = 5,
}

/// Kinds of [`Op::Reduce`], with the code `net_ops.wgsl` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// The mean.
    Mean = 0,
    /// The sum.
    Sum = 1,
    /// The largest value.
    Max = 2,
}

/// How values move (`Op::Move`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Movement {
    /// The inputs one after the other along `axis`.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Every `steps[d]`-th value along each axis d from `starts[d]`, as many
    /// as the output's shape says (negative steps go backwards).
    Slice {
        /// First index along each axis.
        starts: Vec<i64>,
        /// Step along each axis (not 0).
        steps: Vec<i64>,
    },
    /// Axis d of the output is axis `perm[d]` of the input.
    Transpose {
        /// The permutation.
        perm: Vec<usize>,
    },
    /// The input broadcast to the output's shape.
    Expand,
}

/// How a resized pixel's coordinate maps back to the input
/// (`coordinate_transformation_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coordinates {
    /// (x + ½)/scale − ½.
    HalfPixel = 0,
    /// As half_pixel, but 0 for an output of one pixel.
    PytorchHalfPixel = 1,
    /// x · (in − 1)/(out − 1).
    AlignCorners = 2,
    /// x / scale.
    Asymmetric = 3,
    /// (x + ½)/scale.
    TfHalfPixelForNn = 4,
}

/// How nearest resizing rounds (`nearest_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Halves down.
    RoundPreferFloor = 0,
    /// Halves up.
    RoundPreferCeil = 1,
    /// Down.
    Floor = 2,
    /// Up.
    Ceil = 3,
}

/// A resize's attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Resize {
    /// Linear, else nearest.
    pub linear: bool,
    /// How coordinates map back.
    pub coordinates: Coordinates,
    /// How nearest rounds.
    pub rounding: Rounding,
    /// Output over input size, `[height, width]`.
    pub scales: [f32; 2],
}

/// A transposed conv's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose {
    /// `[FH, FW]`.
    pub kernel: [u32; 2],
    /// `[height, width]` steps between input pixels' windows on the output.
    pub strides: [u32; 2],
    /// Padding taken off the output `[top, left, bottom, right]`.
    pub pads: [u32; 4],
    /// `[height, width]` steps between taps.
    pub dilations: [u32; 2],
    /// Groups G.
    pub group: u32,
    /// Extra rows and columns at the bottom and right of the output.
    pub output_padding: [u32; 2],
    /// Whether a bias input is given.
    pub bias: bool,
}

impl ConvTranspose {
    /// `[1, K, OH, OW]` for x of `input` and a weight of `weight`:
    /// OH = (H − 1)·stride − pads + dilation·(FH − 1) + output_padding + 1.
    pub fn output_shape(&self, input: &[usize], weight: &[usize]) -> Result<Vec<usize>, String> {
        let (&[1, c, h, w], &[wc, kg, fh, fw]) = (input, weight) else {
            return Err(format!(
                "expected an input [1, C, H, W] and a weight [C, K/G, FH, FW], got {} and {}",
                ShapeText(input),
                ShapeText(weight)
            ));
        };
        if wc != c || [fh, fw] != self.kernel.map(|s| s as usize) || c % self.group as usize != 0 {
            return Err(format!(
                "a weight {} does not fit an input of {c} channels in {} groups",
                ShapeText(weight),
                self.group
            ));
        }
        let axis = |size: usize, a: usize| -> Option<usize> {
            let full = (size as i64 - 1) * self.strides[a] as i64
                + self.dilations[a] as i64 * (self.kernel[a] as i64 - 1)
                + self.output_padding[a] as i64
                + 1;
            usize::try_from(full - self.pads[a] as i64 - self.pads[a + 2] as i64)
                .ok()
                .filter(|&s| s > 0)
        };
        match (axis(h, 0), axis(w, 1)) {
            (Some(oh), Some(ow)) => Ok(vec![1, kg * self.group as usize, oh, ow]),
            _ => Err(format!("its pads {:?} leave no output", self.pads)),
        }
    }
}

/// A pooling's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool {
    /// Max pooling, else average.
    pub max: bool,
    /// `[height, width]` of the window.
    pub kernel: [u32; 2],
    /// `[height, width]` steps between windows.
    pub strides: [u32; 2],
    /// Padding `[top, left, bottom, right]` (never read: max pooling skips
    /// it, average pooling counts it only with `count_include_pad`).
    pub pads: [u32; 4],
    /// `[height, width]` steps between taps (max pooling).
    pub dilations: [u32; 2],
    /// Whether the output size rounds up (a last, partial window).
    pub ceil_mode: bool,
    /// Average pooling: whether the padding counts in the divisor.
    pub count_include_pad: bool,
}

/// Gemm's attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    /// Whether A is stored `[K, M]`.
    pub trans_a: bool,
    /// Whether B is stored `[N, K]` (as a Linear layer's weight is).
    pub trans_b: bool,
    /// Scale of A·B.
    pub alpha: f32,
    /// Scale of C.
    pub beta: f32,
}

impl Default for Gemm {
    fn default() -> Self {
        Gemm {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 1.0,
        }
    }
}

/// The output size along one axis of a window sliding over `size` values
/// padded by `pads` (before, after), `window` wide with taps `dilation`
/// apart, `stride` apart; rounded up with `ceil` (no window may start in
/// the padding after the end). `None` when no window fits.
pub fn window_count(
    size: u32,
    pads: (u32, u32),
    (window, dilation, stride): (u32, u32, u32),
    ceil: bool,
) -> Option<u32> {
    let padded = size as i64 + pads.0 as i64 + pads.1 as i64;
    let span = (window as i64 - 1) * dilation as i64 + 1;
    let room = padded - span;
    if room < 0 || stride == 0 {
        return None;
    }
    let stride = stride as i64;
    let mut count = if ceil {
        (room + stride - 1) / stride + 1
    } else {
        room / stride + 1
    };
    if ceil && (count - 1) * stride >= size as i64 + pads.0 as i64 {
        count -= 1;
    }
    u32::try_from(count).ok()
}

/// A shape as `[1, 3, 224, 224]`.
pub struct ShapeText<'a>(pub &'a [usize]);

impl fmt::Display for ShapeText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dims: Vec<String> = self.0.iter().map(usize::to_string).collect();
        write!(f, "[{}]", dims.join(", "))
    }
}

/// The shape `a` and `b` broadcast to, as ONNX's multidirectional
/// broadcasting says (sizes aligned from the last; each pair equal or one
/// of them 1), or an error saying which sizes clash.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let at = |shape: &[usize], axis: usize| {
        (axis + shape.len())
            .checked_sub(rank)
            .map_or(1, |i| shape[i])
    };
    (0..rank)
        .map(|axis| match (at(a, axis), at(b, axis)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            (x, y) => Err(format!(
                "shapes {} and {} do not broadcast (sizes {x} and {y})",
                ShapeText(a),
                ShapeText(b)
            )),
        })
        .collect()
}

impl Op {
    /// The output shape for inputs of `shapes` (in the node's order), or
    /// what does not fit. View's shape is decided by its loader.
    pub fn output_shape(&self, shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
        let first = shapes.first().copied().unwrap_or_default();
        match self {
            Op::Conv(conv) => conv.output_shape(first, shapes.get(1).copied().unwrap_or_default()),
            Op::Unary(_) | Op::Softmax { .. } => Ok(first.to_vec()),
            Op::View | Op::Reduce { .. } | Op::Move(_) => {
                Err("its output shape is set where it is loaded".into())
            }
            Op::ConvTranspose(conv) => {
                conv.output_shape(first, shapes.get(1).copied().unwrap_or_default())
            }
            Op::Resize(resize) => match first {
                &[1, c, h, w] => Ok(vec![
                    1,
                    c,
                    (h as f64 * resize.scales[0] as f64).floor() as usize,
                    (w as f64 * resize.scales[1] as f64).floor() as usize,
                ]),
                _ => Err(format!("expected [1, C, H, W], got {}", ShapeText(first))),
            },
            Op::Affine => match first {
                [1, c, ..]
                    if shapes[1..]
                        .iter()
                        .all(|s| s.iter().product::<usize>() == *c) =>
                {
                    Ok(first.to_vec())
                }
                _ => Err(format!(
                    "expected [1, C, …] and C scales and shifts, got {}",
                    ShapeText(first)
                )),
            },
            Op::Binary(_) => broadcast(first, shapes.get(1).copied().unwrap_or_default()),
            Op::Pool(pool) => pool.output_shape(first),
            Op::GlobalAverage => match first {
                [1, c, _, _] => Ok(vec![1, *c, 1, 1]),
                _ => Err(format!("expected [1, C, H, W], got {}", ShapeText(first))),
            },
            Op::Gemm(gemm) => gemm.output_shape(shapes),
        }
    }

    /// The learned values it holds: a conv's or Gemm's weights and biases,
    /// an affine's scales and shifts (from its inputs after the first).
    pub fn parameters(&self, shapes: &[&[usize]]) -> u64 {
        match self {
            // A fused residual is a value, not a parameter.
            Op::Conv(conv) => shapes[1..2 + conv.bias as usize]
                .iter()
                .map(|s| s.iter().product::<usize>() as u64)
                .sum(),
            Op::ConvTranspose(_) | Op::Gemm(_) | Op::Affine => shapes[1..]
                .iter()
                .map(|s| s.iter().product::<usize>() as u64)
                .sum(),
            _ => 0,
        }
    }

    /// Floating-point operations for an output of `output` from inputs of
    /// `shapes`: 2 per multiply-add, 1 per other arithmetic operation.
    pub fn flops(&self, shapes: &[&[usize]], output: &[usize]) -> u64 {
        let out: u64 = output.iter().product::<usize>() as u64;
        let first: u64 = shapes[0].iter().product::<usize>() as u64;
        match self {
            Op::Conv(conv) => {
                let weight = shapes[1];
                let taps = weight[1..].iter().product::<usize>() as u64;
                out * (2 * taps + conv.bias as u64 + conv.residual as u64)
            }
            Op::Gemm(gemm) => {
                let a = shapes[0];
                let inner = if gemm.trans_a { a[0] } else { a[1] } as u64;
                out * 2 * inner
            }
            Op::Pool(pool) => out * (pool.kernel[0] * pool.kernel[1]) as u64,
            Op::GlobalAverage => first,
            Op::Affine => 2 * out,
            Op::Softmax { .. } => 4 * out,
            Op::Reduce { .. } => first,
            Op::ConvTranspose(_) => {
                let weight = shapes[1];
                2 * first / shapes[0][1].max(1) as u64 * weight.iter().product::<usize>() as u64
            }
            Op::Resize(resize) => out * if resize.linear { 8 } else { 1 },
            Op::Move(_) => 0,
            Op::Unary(_) | Op::Binary(_) => out,
            Op::View => 0,
        }
    }
}

impl Conv {
    /// `[1, K, OH, OW]` for x of `input` and a weight of `weight`.
    fn output_shape(&self, input: &[usize], weight: &[usize]) -> Result<Vec<usize>, String> {
        let (&[1, c, h, w], &[k, cg, fh, fw]) = (input, weight) else {
            return Err(format!(
                "expected an input [1, C, H, W] and a weight [K, C/G, FH, FW], got {} and {}",
                ShapeText(input),
                ShapeText(weight)
            ));
        };
        let g = self.group as usize;
        if cg * g != c || k % g != 0 || [fh, fw] != self.kernel.map(|s| s as usize) {
            return Err(format!(
                "a weight {} does not fit an input of {c} channels in {g} groups with kernel {:?}",
                ShapeText(weight),
                self.kernel
            ));
        }
        let axis = |size: usize, axis: usize| {
            let window = (self.kernel[axis], self.dilations[axis], self.strides[axis]);
            let pads = (self.pads[axis], self.pads[axis + 2]);
            window_count(u32::try_from(size).ok()?, pads, window, false)
        };
        match (axis(h, 0), axis(w, 1)) {
            (Some(oh), Some(ow)) => Ok(vec![1, k, oh as usize, ow as usize]),
            _ => Err(format!(
                "its {fh}×{fw} window (dilations {:?}, pads {:?}) does not fit the {h}×{w} input",
                self.dilations, self.pads
            )),
        }
    }
}

impl Pool {
    /// `[1, C, OH, OW]` for x of `input`.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        let &[1, c, h, w] = input else {
            return Err(format!("expected [1, C, H, W], got {}", ShapeText(input)));
        };
        let axis = |size: usize, axis: usize| {
            let window = (self.kernel[axis], self.dilations[axis], self.strides[axis]);
            let pads = (self.pads[axis], self.pads[axis + 2]);
            window_count(u32::try_from(size).ok()?, pads, window, self.ceil_mode)
        };
        match (axis(h, 0), axis(w, 1)) {
            (Some(oh), Some(ow)) => Ok(vec![1, c, oh as usize, ow as usize]),
            _ => Err(format!(
                "its {:?} window does not fit the {h}×{w} input",
                self.kernel
            )),
        }
    }
}

impl Gemm {
    /// `[M, N]` for A, B and optionally C of `shapes`.
    fn output_shape(&self, shapes: &[&[usize]]) -> Result<Vec<usize>, String> {
        let (&[a0, a1], &[b0, b1]) = (shapes[0], shapes[1]) else {
            return Err(format!(
                "expected two matrices, got {} and {}",
                ShapeText(shapes[0]),
                ShapeText(shapes[1])
            ));
        };
        let (m, k) = if self.trans_a { (a1, a0) } else { (a0, a1) };
        let (kb, n) = if self.trans_b { (b1, b0) } else { (b0, b1) };
        if k != kb {
            return Err(format!(
                "A {} and B {} do not multiply (inner sizes {k} and {kb})",
                ShapeText(shapes[0]),
                ShapeText(shapes[1])
            ));
        }
        if let Some(c) = shapes.get(2) {
            let out = broadcast(&[m, n], c)?;
            if out != [m, n] {
                return Err(format!(
                    "C {} does not broadcast to [{m}, {n}]",
                    ShapeText(c)
                ));
            }
        }
        Ok(vec![m, n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_match_pytorchs_formulas() {
        // ResNet's stem: 224, 7×7, stride 2, padding 3 → 112; max pool 3/2/1 → 56.
        assert_eq!(window_count(224, (3, 3), (7, 1, 2), false), Some(112));
        assert_eq!(window_count(112, (1, 1), (3, 1, 2), false), Some(56));
        // ceil_mode: 6 → (6 − 3)/2 rounded up + 1 = 3; floor gives 2.
        assert_eq!(window_count(6, (0, 0), (3, 1, 2), true), Some(3));
        assert_eq!(window_count(6, (0, 0), (3, 1, 2), false), Some(2));
        // A last window that would start in the padding is dropped.
        assert_eq!(window_count(5, (1, 1), (2, 1, 2), true), Some(3));
        assert_eq!(window_count(2, (0, 0), (3, 1, 1), false), None);
    }

    #[test]
    fn broadcasting_aligns_from_the_last_axis() {
        assert_eq!(
            broadcast(&[1, 8, 4, 4], &[1, 8, 1, 1]),
            Ok(vec![1, 8, 4, 4])
        );
        assert_eq!(broadcast(&[3, 1], &[4]), Ok(vec![3, 4]));
        assert_eq!(broadcast(&[], &[2, 2]), Ok(vec![2, 2]));
        let error = broadcast(&[1, 8, 4, 4], &[3, 1, 1]).unwrap_err();
        assert!(error.contains("sizes 8 and 3"), "{error}");
    }

    #[test]
    fn gemm_checks_its_inner_sizes() {
        let gemm = Gemm {
            trans_b: true,
            ..Gemm::default()
        };
        let shape = Op::Gemm(gemm).output_shape(&[&[1, 32], &[10, 32], &[10]]);
        assert_eq!(shape, Ok(vec![1, 10]));
        let error = Op::Gemm(gemm)
            .output_shape(&[&[1, 32], &[10, 31]])
            .unwrap_err();
        assert!(error.contains("inner sizes 32 and 31"), "{error}");
    }
}
