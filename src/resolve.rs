//! The one step from what the user asked for to a validated [`Layer`]:
//! the layer's options, the input's shape and where the parameters come
//! from go in; a layer whose every size has been checked comes out. Nothing
//! patches the layer afterwards.

use std::path::{Path, PathBuf};

use crate::banks::{self, Init};
use crate::error::{Error, Result};
use crate::layer::{Activation, Geometry, Layer, LayerSpec, Padding};
use crate::model::load::{ConvInFile, ConvShape, FoldBatchNorm, LoadedWeights, WeightsOrigin};
use crate::model::npy::NpyWeights;
use crate::model::{FileGeometry, FilePadding};

/// The layer as the user states it, before it meets an input. Field names
/// follow the command line's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerOptions {
    /// Filters, kernel, stride, padding, dilation and groups (`--filters`,
    /// `--kernel-size`, …); a weights file gives K and the kernel size, a
    /// model file that states its geometry the rest.
    pub geometry: Geometry,
    /// Whether the layer has biases (false: `--no-bias`; a file's bias is dropped).
    pub bias: bool,
    /// Applied after the bias (`--activation`).
    pub activation: Activation,
    /// Which of stride, padding, dilation and groups the user set: a model
    /// file that states its own geometry refuses them.
    pub explicit: ExplicitGeometry,
}

/// Which geometry options were set explicitly (on the command line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExplicitGeometry {
    /// `--stride`.
    pub stride: bool,
    /// `--padding`.
    pub padding: bool,
    /// `--dilation`.
    pub dilation: bool,
    /// `--groups`.
    pub groups: bool,
}

impl ExplicitGeometry {
    /// The options set, as the command line names them.
    fn names(&self) -> Vec<&'static str> {
        [
            (self.stride, "--stride"),
            (self.padding, "--padding"),
            (self.dilation, "--dilation"),
            (self.groups, "--groups"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

impl Default for LayerOptions {
    /// PyTorch's `nn.Conv2d` defaults ([`Geometry::default`]), with bias
    /// and no activation.
    fn default() -> Self {
        LayerOptions {
            geometry: Geometry::default(),
            bias: true,
            activation: Activation::None,
            explicit: ExplicitGeometry::default(),
        }
    }
}

impl LayerOptions {
    /// Checks what can be checked before the input is known, for an input
    /// of `in_channels` channels and weights made here (not read from a
    /// file, which sets K and the kernel size): sizes of at least 1,
    /// groups that divide C and K, `same` padding with stride 1. The sizes
    /// that depend on the input are checked by [`resolve`].
    pub fn validate(&self, in_channels: u32) -> Result<()> {
        let input = InputShape {
            channels: in_channels,
            photo: false,
            height: 1,
            width: 1,
        };
        spec_for(self, input, None).map(|_| ())
    }
}

/// Where the layer's parameters come from.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsSource {
    /// A built-in bank ([`banks::filter_bank`]); `Random` is PyTorch's
    /// default initialisation with this seed.
    Init {
        /// Which bank.
        init: Init,
        /// The generator's seed (for `Random`).
        seed: u64,
    },
    /// A model file (safetensors, PyTorch, ONNX) and the conv in it.
    Model {
        /// The file.
        path: PathBuf,
        /// The conv's name in the file; `None` takes the one that sees
        /// the model's input.
        layer_name: Option<String>,
        /// The BatchNorm to fold into the conv, if any.
        fold_bn: Option<FoldBatchNorm>,
    },
    /// `.npy` files: the weight and, unless the layer has no bias, the bias.
    Npy {
        /// `[K, C/G, FH, FW]`, f32.
        weight: PathBuf,
        /// `[K]`, f32.
        bias: Option<PathBuf>,
    },
}

impl WeightsSource {
    /// What the summary says the weights are: `random: kaiming-uniform
    /// (seed 42)`, a bank's name, or the file's path.
    pub fn describe(&self) -> String {
        match self {
            WeightsSource::Init {
                init: Init::Random,
                seed,
            } => format!("random: kaiming-uniform (seed {seed})"),
            WeightsSource::Init { init, .. } => init.name().to_string(),
            WeightsSource::Model { path, .. } => path.display().to_string(),
            WeightsSource::Npy { weight, .. } => weight.display().to_string(),
        }
    }

    /// The parameters: a bank to fill the layer with, or a file's tensors.
    /// A file's conv is checked against `options` and `input` as the file
    /// states its shape, before any of its values is read: a conv the
    /// input cannot feed costs no memory for its weights, however many it
    /// claims.
    fn load(&self, options: &LayerOptions, input: InputShape) -> Result<Parameters<'_>> {
        let (conv, path, fold) = match self {
            WeightsSource::Init { init, seed } => return Ok(Parameters::Bank(*init, *seed)),
            WeightsSource::Model {
                path,
                layer_name,
                fold_bn,
            } => (
                ConvInFile::open(path, layer_name.as_deref())?,
                path,
                fold_bn.as_ref(),
            ),
            WeightsSource::Npy { weight, bias } => {
                let files = NpyWeights::open(weight, bias.as_deref())?;
                (ConvInFile::choose(Box::new(files), None)?, weight, None)
            }
        };
        spec_for(options, input, Some((&conv.shape(), path)))?;
        Ok(Parameters::File(Box::new(conv.read(fold)?), path))
    }
}

/// Where a layer's numbers come from, once read.
enum Parameters<'a> {
    /// A built-in bank and its seed.
    Bank(Init, u64),
    /// A file's tensors and its path.
    File(Box<LoadedWeights>, &'a PathBuf),
}

/// The shape of the input a layer runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShape {
    /// Channels C. For a photo, the channels of an RGB reading (3); a
    /// weights file that takes 1 or 4 channels reads it as luma or RGBA.
    pub channels: u32,
    /// Whether the input is a photo, which can be read as 1, 3 or 4
    /// channels ([`crate::preprocess::Layout`]).
    pub photo: bool,
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
}

/// A layer ready to run over its input.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The layer: geometry and parameters, validated.
    pub layer: Layer,
    /// Output map size `(OH, OW)` over the input.
    pub output_size: (u32, u32),
    /// Where a file's parameters came from (none for a built-in bank).
    pub origin: Option<WeightsOrigin>,
}

/// Resolves `options` over an input of `input`'s shape with parameters
/// from `source` into a validated layer, once: K and the kernel size come
/// from a weights file when there is one (and C/G·G must be the input's C),
/// the padding is resolved against the kernel, and every size is checked
/// without wrapping, including an output map of at most `max_output_pixels`
/// pixels. Fails with an error naming the option or file at fault, before
/// anything is allocated for the run; a file's conv is checked against the
/// input as the file states its shape, before any of its values is read.
pub fn resolve(
    options: &LayerOptions,
    input: InputShape,
    source: &WeightsSource,
    max_output_pixels: u64,
) -> Result<Resolved> {
    let parameters = source.load(options, input)?;
    let file = match &parameters {
        Parameters::File(weights, path) => Some((weights.conv_shape(), *path)),
        Parameters::Bank(..) => None,
    };
    let spec = spec_for(
        options,
        input,
        file.as_ref().map(|(conv, path)| (conv, *path)),
    )?;
    let output_size = checked_output_size(&spec, input, max_output_pixels)?;
    let (layer, origin) = match parameters {
        Parameters::Bank(init, seed) => (banks::filter_bank(init, spec, seed)?, None),
        Parameters::File(weights, path) => {
            let bias = weights.bias.filter(|_| spec.bias).unwrap_or_default();
            let layer = Layer::new(spec, weights.weight, bias)
                .map_err(|e| Error::weights_caused(path, "does not make a valid layer", e))?;
            (layer, Some(weights.origin))
        }
    };
    Ok(Resolved {
        layer,
        output_size,
        origin,
    })
}

/// The layer's shape: the options, with K, C/G and the kernel size from
/// the file's weight tensor when there is one.
fn spec_for(
    options: &LayerOptions,
    input: InputShape,
    file: Option<(&ConvShape, &PathBuf)>,
) -> Result<LayerSpec> {
    let (filters, (kernel_height, kernel_width)) = match file {
        Some((conv, _)) => (conv.weight[0], (conv.weight[2], conv.weight[3])),
        None => (options.geometry.filters, options.geometry.kernel_size),
    };
    let spec = LayerSpec {
        in_channels: input_channels(options, input, file)?,
        filters,
        kernel_height,
        kernel_width,
        stride: options.geometry.stride,
        padding: Default::default(),
        dilation: options.geometry.dilation,
        groups: options.geometry.groups,
        bias: options.bias && file.is_none_or(|(conv, _)| conv.bias),
        activation: options.activation,
    };
    let Some((conv, path)) = file else {
        spec.validate()?;
        return with_padding(spec, options);
    };
    let spec = match &conv.geometry {
        Some(geometry) => with_file_geometry(spec, geometry, options, input, path)?,
        None => spec,
    };
    check_file_fits(&spec, conv, path)?;
    spec.validate()?;
    if conv.geometry.is_some() {
        return Ok(spec);
    }
    with_padding(spec, options)
}

/// `spec` with the options' padding resolved against its kernel.
fn with_padding(spec: LayerSpec, options: &LayerOptions) -> Result<LayerSpec> {
    let padding = options.geometry.padding.resolve(
        spec.kernel_height,
        spec.kernel_width,
        spec.dilation,
        spec.stride,
    )?;
    Ok(LayerSpec { padding, ..spec })
}

/// The channels the layer reads: the input's, or for a photo and a weights
/// file, the file's C/G·G when a photo can be read so (1 luma, 3 RGB,
/// 4 RGBA).
fn input_channels(
    options: &LayerOptions,
    input: InputShape,
    file: Option<(&ConvShape, &PathBuf)>,
) -> Result<u32> {
    let Some((conv, path)) = file.filter(|_| input.photo) else {
        return Ok(input.channels);
    };
    let groups = conv.geometry.map_or(options.geometry.groups, |g| g.group);
    let channels = conv.weight[1] as u64 * groups as u64;
    match channels {
        1 | 3 | 4 => Ok(channels as u32),
        other => Err(Error::weights(
            path,
            format!(
                "{:?} has shape {:?}: the conv reads {other} channels; \
                 a photo can be read as 1 (luma), 3 (RGB) or 4 (RGBA)",
                conv.weight_name, conv.weight
            ),
        )),
    }
}

/// `spec` with the stride, padding, dilation and groups a model file
/// states, refusing the command-line options that would set them too.
fn with_file_geometry(
    spec: LayerSpec,
    geometry: &FileGeometry,
    options: &LayerOptions,
    input: InputShape,
    path: &Path,
) -> Result<LayerSpec> {
    let given = options.explicit.names();
    if !given.is_empty() {
        return Err(Error::weights(
            path,
            format!(
                "states the conv's stride, padding, dilation and groups; {} cannot change them",
                given.join(", ")
            ),
        ));
    }
    let same = |pair: [u32; 2], what: &str| {
        if pair[0] == pair[1] {
            Ok(pair[0])
        } else {
            Err(Error::weights(
                path,
                format!("the conv's {what} differ by axis ({pair:?}); convmaps takes one for both"),
            ))
        }
    };
    let stride = same(geometry.strides, "strides")?;
    let dilation = same(geometry.dilations, "dilations")?;
    let spec = LayerSpec {
        stride,
        dilation,
        groups: geometry.group,
        ..spec
    };
    let padding = match geometry.padding {
        FilePadding::Explicit(padding) => padding,
        FilePadding::SameUpper => same_padding(&spec, input, false),
        FilePadding::SameLower => same_padding(&spec, input, true),
    };
    Ok(LayerSpec { padding, ..spec })
}

/// ONNX's `SAME_UPPER` / `SAME_LOWER` padding over `input`: the output is
/// ceil(input / stride) on each axis; the odd extra pixel goes at the end
/// (upper) or the beginning (`lower`).
fn same_padding(spec: &LayerSpec, input: InputShape, lower: bool) -> Padding {
    let (kernel_height, kernel_width) = spec.dilated_kernel();
    let stride = spec.stride.max(1) as u64;
    let total = |size: u32, kernel: u64| -> u32 {
        let size = size as u64;
        let out = size.div_ceil(stride);
        let needed = ((out - 1) * stride + kernel).saturating_sub(size);
        needed.min(u32::MAX as u64) as u32
    };
    Padding::split(
        total(input.height, kernel_height),
        total(input.width, kernel_width),
        lower,
    )
}

/// Refuses a weight file whose channels or filters do not fit the input
/// and the groups. (A bias read from a file always has one value per
/// filter: [`ConvInFile::read`] refuses any other.)
fn check_file_fits(spec: &LayerSpec, conv: &ConvShape, path: &Path) -> Result<()> {
    let weights_error = |message: String| Err(Error::weights(path, message));
    let [filters, channels_per_group, ..] = conv.weight;
    let groups = spec.groups.max(1);
    if channels_per_group as u64 * groups as u64 != spec.in_channels as u64 {
        return weights_error(format!(
            "{:?} has shape {:?}: {channels_per_group} input channels per group × {groups} groups \
             do not match the input's {} channels",
            conv.weight_name, conv.weight, spec.in_channels
        ));
    }
    if !filters.is_multiple_of(groups) {
        return weights_error(format!(
            "{:?} has {filters} filters, which groups = {groups} does not divide",
            conv.weight_name
        ));
    }
    Ok(())
}

/// The output size, refusing an output map larger than `max_pixels`.
fn checked_output_size(spec: &LayerSpec, input: InputShape, max_pixels: u64) -> Result<(u32, u32)> {
    let (out_height, out_width) = spec.output_size(input.height, input.width)?;
    let pixels = out_height as u64 * out_width as u64;
    if pixels > max_pixels {
        let cause = if spec.padding == Default::default() {
            String::new()
        } else {
            format!(" with --padding {}", spec.padding)
        };
        return Err(Error::InvalidLayer(format!(
            "each output map would be {out_width}×{out_height} = {:.1} megapixels{cause}, \
             more than --max-pixels allows ({:.1} megapixels)",
            pixels as f64 / 1e6,
            max_pixels as f64 / 1e6
        )));
    }
    Ok((out_height, out_width))
}
