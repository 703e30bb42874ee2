//! Conv2d geometry and parameters, with no GPU in it: output size, padding,
//! parameter count and validation.

use std::ops::Range;

use crate::error::{Error, Result};

/// Zero padding on each side of the input, in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Padding {
    /// Zero rows above the image.
    pub top: u32,
    /// Zero rows below the image.
    pub bottom: u32,
    /// Zero columns left of the image.
    pub left: u32,
    /// Zero columns right of the image.
    pub right: u32,
}

/// The largest padded input side and dilated kernel extent, in pixels:
/// the shaders compute window coordinates as 32-bit signed integers.
pub const MAX_EXTENT: u64 = i32::MAX as u64;

impl std::fmt::Display for Padding {
    /// `5` when every side is the same, else `top/bottom/left/right`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Padding {
            top,
            bottom,
            left,
            right,
        } = *self;
        if top == bottom && top == left && top == right {
            write!(f, "{top}")
        } else {
            write!(f, "{top}/{bottom}/{left}/{right} (top/bottom/left/right)")
        }
    }
}

impl Padding {
    /// `total_y` zero rows and `total_x` zero columns split between the two
    /// sides of each axis; an odd one out goes at the end (bottom/right), or
    /// at the beginning when `extra_first`.
    pub fn split(total_y: u32, total_x: u32, extra_first: bool) -> Self {
        let halves = |total: u32| {
            let (small, large) = (total / 2, total - total / 2);
            if extra_first {
                (large, small)
            } else {
                (small, large)
            }
        };
        let ((top, bottom), (left, right)) = (halves(total_y), halves(total_x));
        Padding {
            top,
            bottom,
            left,
            right,
        }
    }

    /// The same padding on every side.
    pub fn uniform(pixels: u32) -> Self {
        Padding {
            top: pixels,
            bottom: pixels,
            left: pixels,
            right: pixels,
        }
    }
}

/// Padding as the user states it, resolved against the kernel by
/// [`PaddingMode::resolve`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingMode {
    /// No padding.
    #[default]
    Valid,
    /// PyTorch's `padding='same'`: the output is as large as the input
    /// (stride 1 only); D·(F−1) zeros per axis, the odd extra one at the
    /// bottom/right.
    Same,
    /// The same number of zero pixels on every side.
    Pixels(u32),
}

impl PaddingMode {
    /// The padding on each side for a kernel of `kernel_height`×`kernel_width`
    /// with `dilation` and `stride`.
    pub fn resolve(
        self,
        kernel_height: u32,
        kernel_width: u32,
        dilation: u32,
        stride: u32,
    ) -> Result<Padding> {
        match self {
            PaddingMode::Valid => Ok(Padding::default()),
            PaddingMode::Pixels(pixels) => Ok(Padding::uniform(pixels)),
            PaddingMode::Same if stride != 1 => Err(Error::InvalidLayer(format!(
                "padding 'same' needs stride 1 (got {stride}), as in PyTorch"
            ))),
            PaddingMode::Same => {
                let total_y = dilation.saturating_mul(kernel_height.saturating_sub(1));
                let total_x = dilation.saturating_mul(kernel_width.saturating_sub(1));
                Ok(Padding::split(total_y, total_x, false))
            }
        }
    }
}

/// A conv's shape as the command line, a stack item or the defaults state
/// it, before it meets an input: K filters of FH×FW and how their windows
/// step over the input. [`LayerSpec`] is the same resolved against an
/// input (its channels known, its padding in pixels).
///
/// Defaults (as PyTorch's `nn.Conv2d`, and 32 filters of 5×5): stride 1,
/// no padding, dilation 1, one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Filters K.
    pub filters: u32,
    /// Kernel size `(FH, FW)`, in pixels.
    pub kernel_size: (u32, u32),
    /// Step between windows, in pixels.
    pub stride: u32,
    /// Zero padding, resolved against the kernel.
    pub padding: PaddingMode,
    /// Step between kernel taps, in pixels.
    pub dilation: u32,
    /// Groups G.
    pub groups: u32,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            filters: 32,
            kernel_size: (5, 5),
            stride: 1,
            padding: PaddingMode::Valid,
            dilation: 1,
            groups: 1,
        }
    }
}

/// What is applied to each output value after its bias.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// The raw sum plus bias.
    #[default]
    None,
    /// max(0, sum + bias).
    Relu,
}

impl Activation {
    /// The code the shaders' `Params.activation` uses: 0 none, 1 ReLU.
    pub fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
        }
    }

    /// Applies the activation to one value.
    pub fn apply(self, value: f32) -> f32 {
        match self {
            Activation::None => value,
            Activation::Relu => value.max(0.0),
        }
    }
}

/// The shape of a Conv2d layer, as PyTorch's `nn.Conv2d` describes it.
///
/// Defaults: stride 1, no padding ("valid"), dilation 1, one group, with bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Input channels C (3 for an RGB photo).
    pub in_channels: u32,
    /// Filters K, which is also the number of output maps.
    pub filters: u32,
    /// Kernel height FH, in pixels.
    pub kernel_height: u32,
    /// Kernel width FW, in pixels.
    pub kernel_width: u32,
    /// Step between windows, in input pixels.
    pub stride: u32,
    /// Zero padding around the input.
    pub padding: Padding,
    /// Step between kernel taps, in input pixels (1 = a dense kernel).
    pub dilation: u32,
    /// Groups G: C and K split into G groups; filter k sees only its group's C/G channels.
    pub groups: u32,
    /// Whether each filter has a bias.
    pub bias: bool,
    /// Applied after the bias (not a parameter).
    pub activation: Activation,
}

impl LayerSpec {
    /// K square filters of `kernel_size`×`kernel_size` over `in_channels`
    /// channels, with every other option at its default.
    pub fn new(in_channels: u32, filters: u32, kernel_size: u32) -> Self {
        LayerSpec {
            in_channels,
            filters,
            kernel_height: kernel_size,
            kernel_width: kernel_size,
            stride: 1,
            padding: Padding::default(),
            dilation: 1,
            groups: 1,
            bias: true,
            activation: Activation::None,
        }
    }

    /// The layer as PyTorch writes it: `nn.Conv2d(3, 32, kernel_size=5)`,
    /// with `stride`, `padding`, `dilation`, `groups` and `bias=False` only
    /// where they differ from PyTorch's defaults. A padding that differs
    /// between top and bottom or left and right (`same` with an even
    /// kernel, or an ONNX file's) has no `nn.Conv2d` argument: the line
    /// then pads nothing and says, in a comment, what to pad first.
    pub fn pytorch_line(&self) -> String {
        let pair = |a: u32, b: u32| {
            if a == b {
                a.to_string()
            } else {
                format!("({a}, {b})")
            }
        };
        let mut line = format!(
            "nn.Conv2d({}, {}, kernel_size={}",
            self.in_channels,
            self.filters,
            pair(self.kernel_height, self.kernel_width)
        );
        let p = self.padding;
        let symmetric = p.top == p.bottom && p.left == p.right;
        let arguments = [
            ("stride", self.stride != 1, self.stride.to_string()),
            (
                "padding",
                symmetric && p.top + p.left > 0,
                pair(p.top, p.left),
            ),
            ("dilation", self.dilation != 1, self.dilation.to_string()),
            ("groups", self.groups != 1, self.groups.to_string()),
            ("bias", !self.bias, "False".to_string()),
        ];
        for (name, given, value) in arguments {
            if given {
                line.push_str(&format!(", {name}={value}"));
            }
        }
        line.push(')');
        if !symmetric {
            line.push_str(&format!(
                "  # after F.pad(x, ({}, {}, {}, {}))",
                p.left, p.right, p.top, p.bottom
            ));
        }
        line
    }

    /// Checks the options on their own (not against an image).
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("in_channels", self.in_channels),
            ("filters", self.filters),
            ("kernel height", self.kernel_height),
            ("kernel width", self.kernel_width),
            ("stride", self.stride),
            ("dilation", self.dilation),
            ("groups", self.groups),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::InvalidLayer(format!(
                    "{name} is 0, expected at least 1"
                )));
            }
        }
        if !self.in_channels.is_multiple_of(self.groups)
            || !self.filters.is_multiple_of(self.groups)
        {
            return Err(Error::InvalidLayer(format!(
                "groups = {} must divide both the input channels ({}) and the filters ({})",
                self.groups, self.in_channels, self.filters
            )));
        }
        // The weight buffer's length must fit in u32 index math on the GPU
        // (counted in u128, so that it cannot wrap).
        let weight_len = self.filters as u128
            * self.channels_per_group() as u128
            * self.kernel_height as u128
            * self.kernel_width as u128;
        if weight_len > u32::MAX as u128 {
            return Err(Error::InvalidLayer(format!(
                "{weight_len} weights are more than a layer can index"
            )));
        }
        Ok(())
    }

    /// Input channels each filter sees: C/G.
    pub fn channels_per_group(&self) -> u32 {
        self.in_channels / self.groups
    }

    /// Filters in each group: K/G.
    pub fn filters_per_group(&self) -> u32 {
        self.filters / self.groups
    }

    /// Shape of the weight tensor: `[K, C/G, FH, FW]` (PyTorch's OIHW).
    pub fn weight_shape(&self) -> [usize; 4] {
        [
            self.filters as usize,
            self.channels_per_group() as usize,
            self.kernel_height as usize,
            self.kernel_width as usize,
        ]
    }

    /// Number of weights: K·C/G·FH·FW.
    pub fn weight_len(&self) -> usize {
        self.weight_shape().iter().product()
    }

    /// Number of biases: K, or 0 for a layer without bias.
    pub fn bias_len(&self) -> usize {
        if self.bias { self.filters as usize } else { 0 }
    }

    /// Extent of the dilated kernel, in input pixels: `(D·(FH−1)+1, D·(FW−1)+1)`.
    pub fn dilated_kernel(&self) -> (u64, u64) {
        let d = self.dilation as u64;
        (
            d * (self.kernel_height as u64).saturating_sub(1) + 1,
            d * (self.kernel_width as u64).saturating_sub(1) + 1,
        )
    }

    /// Output size `(OH, OW)` for an `in_height`×`in_width` input:
    /// `floor((H + pad_top + pad_bottom − D·(FH−1) − 1) / S) + 1`, likewise for the width.
    ///
    /// All of it is computed in u64, without wrapping. Fails when the
    /// dilated kernel or the padded input is larger than [`MAX_EXTENT`]
    /// (the shaders' coordinates are 32-bit signed integers), or when the
    /// dilated kernel is larger than the padded input.
    pub fn output_size(&self, in_height: u32, in_width: u32) -> Result<(u32, u32)> {
        let (kernel_height, kernel_width) = self.dilated_kernel();
        if kernel_height.max(kernel_width) > MAX_EXTENT {
            return Err(Error::InvalidLayer(format!(
                "--dilation {} with a {}×{} kernel (--kernel-size) reaches {} pixels, \
                 more than the {MAX_EXTENT} any image can have",
                self.dilation,
                self.kernel_height,
                self.kernel_width,
                kernel_height.max(kernel_width)
            )));
        }
        let padded_height = in_height as u64 + self.padding.top as u64 + self.padding.bottom as u64;
        let padded_width = in_width as u64 + self.padding.left as u64 + self.padding.right as u64;
        if padded_height.max(padded_width) > MAX_EXTENT {
            return Err(Error::InvalidLayer(format!(
                "--padding {} makes the {in_width}×{in_height} input {padded_width}×{padded_height} \
                 pixels, more than the {MAX_EXTENT} a side can have",
                self.padding
            )));
        }
        if kernel_height > padded_height || kernel_width > padded_width {
            return Err(Error::Mismatch(format!(
                "the input is {in_width}×{in_height} pixels ({padded_width}×{padded_height} padded), \
                 smaller than the {kernel_width}×{kernel_height} kernel (width×height, dilation included)"
            )));
        }
        let stride = self.stride.max(1) as u64;
        let out_height = (padded_height - kernel_height) / stride + 1;
        let out_width = (padded_width - kernel_width) / stride + 1;
        // Both are at most the padded sizes, which fit in 31 bits.
        Ok((out_height as u32, out_width as u32))
    }

    /// Bytes of the f32 output maps `[K, OH, OW]`: 4·K·OH·OW.
    pub fn output_bytes(&self, out_height: u32, out_width: u32) -> u64 {
        4 * self.filters as u64 * out_height as u64 * out_width as u64
    }

    /// Floating-point operations of the layer over an output of
    /// `out_height`×`out_width`: 2 per multiply-add, 2·K·OH·OW·C/G·FH·FW.
    pub fn flops(&self, out_height: u32, out_width: u32) -> f64 {
        2.0 * self.filters as f64
            * out_height as f64
            * out_width as f64
            * self.taps_per_output() as f64
    }

    /// The part of the layer that computes output rows `out_rows`: the
    /// input rows it reads (the band plus its halo of D·(FH−1) rows), in the
    /// image's row numbers, negative above the image and at or past its
    /// height below it, where they are the zero padding; and the spec that,
    /// applied to exactly those rows, gives exactly those output rows: the
    /// same spec without top and bottom padding, which the band's input
    /// carries ([`crate::tensor::RowSource::padded_rows`]). The result is
    /// identical to the same rows of an untiled run.
    pub fn band(&self, out_rows: Range<u32>) -> (Range<i64>, LayerSpec) {
        let stride = self.stride as i64;
        let first = out_rows.start as i64 * stride - self.padding.top as i64;
        let end = (out_rows.end as i64 - 1) * stride - self.padding.top as i64
            + self.dilated_kernel().0 as i64;
        let mut band = *self;
        band.padding.top = 0;
        band.padding.bottom = 0;
        (first..end, band)
    }

    /// Multiply-adds per output pixel and filter: C/G·FH·FW.
    pub fn taps_per_output(&self) -> u64 {
        self.channels_per_group() as u64 * self.kernel_height as u64 * self.kernel_width as u64
    }
}

/// A Conv2d layer: its shape and its parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The layer's geometry.
    pub spec: LayerSpec,
    /// Weights, `[K, C/G, FH, FW]`, row-major (PyTorch OIHW).
    pub weight: Vec<f32>,
    /// Biases, `[K]`: one per filter, shared by every channel and position.
    /// Empty for a layer without bias.
    pub bias: Vec<f32>,
}

impl Layer {
    /// Puts a spec and its parameters together, checking that the buffers
    /// have the spec's lengths and hold only finite values.
    pub fn new(spec: LayerSpec, weight: Vec<f32>, bias: Vec<f32>) -> Result<Self> {
        spec.validate()?;
        if weight.len() != spec.weight_len() {
            return Err(Error::InvalidLayer(format!(
                "weight has {} values, expected {} for shape {:?}",
                weight.len(),
                spec.weight_len(),
                spec.weight_shape()
            )));
        }
        if bias.len() != spec.bias_len() {
            return Err(Error::InvalidLayer(format!(
                "bias has {} values, expected {} (one per filter)",
                bias.len(),
                spec.bias_len()
            )));
        }
        Ok(Layer { spec, weight, bias })
    }

    /// Filters `filters` of this layer as a layer of their own, with the
    /// input channels they read. `filters` must start and end on group
    /// boundaries (multiples of K/G, or K).
    pub fn filter_chunk(&self, filters: Range<u32>) -> (Range<u32>, Layer) {
        let spec = &self.spec;
        let per_group = spec.filters_per_group();
        debug_assert!(filters.start.is_multiple_of(per_group));
        debug_assert!(filters.end.is_multiple_of(per_group) || filters.end == spec.filters);
        let (first_group, end_group) = (filters.start / per_group, filters.end.div_ceil(per_group));
        let channels =
            first_group * spec.channels_per_group()..end_group * spec.channels_per_group();
        let mut chunk = *spec;
        chunk.filters = filters.end - filters.start;
        chunk.groups = end_group - first_group;
        chunk.in_channels = channels.end - channels.start;
        let per_filter = spec.weight_len() / spec.filters as usize;
        let weight = self.weight
            [filters.start as usize * per_filter..filters.end as usize * per_filter]
            .to_vec();
        let bias = if self.bias.is_empty() {
            Vec::new()
        } else {
            self.bias[filters.start as usize..filters.end as usize].to_vec()
        };
        (
            channels,
            Layer {
                spec: chunk,
                weight,
                bias,
            },
        )
    }

    /// Output size `(OH, OW)` of this layer over `input` `[C, H, W]`, checking
    /// that the input has the layer's C channels and is large enough.
    pub fn output_size_for(&self, input: &crate::tensor::Tensor3) -> Result<(u32, u32)> {
        self.output_size_of([input.channels, input.height, input.width])
    }

    /// [`Layer::output_size_for`] an input of shape `[C, H, W]`, wherever
    /// it lies (host or GPU memory).
    pub fn output_size_of(&self, [channels, height, width]: [u32; 3]) -> Result<(u32, u32)> {
        if channels != self.spec.in_channels {
            return Err(Error::Mismatch(format!(
                "the input has {channels} channels, the layer expects {}",
                self.spec.in_channels
            )));
        }
        self.spec.output_size(height, width)
    }

    /// Parameter count, from the lengths of the buffers themselves.
    pub fn parameters(&self) -> ParameterCount {
        ParameterCount {
            weights: self.weight.len() as u64,
            biases: self.bias.len() as u64,
            total: (self.weight.len() + self.bias.len()) as u64,
        }
    }

    /// The parameter count spelled out as the question asks it, with the
    /// layer's own numbers: `(3·5·5 + 1)·32 = 2432`. With groups, the
    /// channels read `C/G`; without bias the `+ 1` is gone.
    pub fn parameter_formula(&self) -> String {
        let spec = &self.spec;
        let channels = if spec.groups == 1 {
            spec.in_channels.to_string()
        } else {
            format!("{}/{}", spec.in_channels, spec.groups)
        };
        let per_filter = format!("{channels}·{}·{}", spec.kernel_height, spec.kernel_width);
        let total = self.parameters().total;
        if self.bias.is_empty() {
            format!("{per_filter}·{} = {total}", spec.filters)
        } else {
            format!("({per_filter} + 1)·{} = {total}", spec.filters)
        }
    }
}

/// How many numbers a layer learns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ParameterCount {
    /// Length of the weight buffer: K·C/G·FH·FW.
    pub weights: u64,
    /// Length of the bias buffer: K (0 without bias).
    pub biases: u64,
    /// weights + biases.
    pub total: u64,
}
