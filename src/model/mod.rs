//! Conv layers read from a model file: safetensors, PyTorch checkpoints
//! (`.pt`, `.pth`, `.bin`) and ONNX. Each format lists its conv layers in
//! the file's order ([`ModelFile::convs`]) and reads a tensor by name on
//! demand ([`ModelFile::tensor_within`]), converted to f32 from any float
//! dtype, never more values than its caller bounds it to. A `.npy` weight
//! and bias are one more such file ([`npy::NpyWeights`]).
//! [`fold_batch_norm`] folds a BatchNorm into the conv before it.

pub mod load;
pub mod npy;
pub mod onnx;
pub mod pytorch;
pub mod safetensors;
pub mod table;

use std::path::Path;

use crate::error::{Error, Result};
use crate::layer::Padding;
pub use crate::tensor::DType;

/// A tensor read from a model file, as f32.
#[derive(Clone, Debug, PartialEq)]
pub struct FileTensor {
    /// Its shape, outermost first.
    pub shape: Vec<usize>,
    /// The dtype it was stored in.
    pub dtype: DType,
    /// Its values in row-major (C) order, converted to f32.
    pub values: Vec<f32>,
}

/// Padding as a file states it (ONNX's `pads` or `auto_pad`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePadding {
    /// Explicit pixels on each side.
    Explicit(Padding),
    /// ONNX `SAME_UPPER`: output = ceil(input / stride), the extra pixel
    /// at the end (bottom/right).
    SameUpper,
    /// ONNX `SAME_LOWER`: the same, the extra pixel at the beginning.
    SameLower,
}

/// The geometry a file states for a conv (ONNX does; state dicts do not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileGeometry {
    /// Strides `[height, width]`.
    pub strides: [u32; 2],
    /// Padding.
    pub padding: FilePadding,
    /// Dilations `[height, width]`.
    pub dilations: [u32; 2],
    /// Groups.
    pub group: u32,
}

/// The BatchNorm after a conv: its name, its tensors' names and its epsilon.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormRef {
    /// The BatchNorm's name (a node or a state-dict prefix such as `bn1`).
    pub name: String,
    /// γ, `[K]`.
    pub scale: String,
    /// β, `[K]`.
    pub shift: String,
    /// The running mean μ, `[K]`.
    pub mean: String,
    /// The running variance σ², `[K]`.
    pub variance: String,
    /// ε, when the file states it (ONNX); else the caller's (`--bn-eps`).
    pub epsilon: Option<f32>,
}

/// One conv layer of a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvRef {
    /// The layer's name: a node's name, or a state-dict prefix (`conv1`).
    pub name: String,
    /// The weight tensor's name, `[K, C/G, FH, FW]`.
    pub weight: String,
    /// The bias tensor's name, `[K]`, when the layer has one.
    pub bias: Option<String>,
    /// The weight's shape.
    pub weight_shape: Vec<usize>,
    /// The geometry the file states, if it states any.
    pub geometry: Option<FileGeometry>,
    /// The BatchNorm the file says follows the conv (ONNX's graph).
    pub batch_norm: Option<BatchNormRef>,
    /// Whether the layer reads the model's own input (ONNX), when known.
    pub reads_input: Option<bool>,
    /// What the graph computes before the conv, when the file has a graph
    /// (ONNX).
    pub feed: Option<Feed>,
}

/// What a conv reads, as a model's graph says: the value a chain of
/// single-input steps starts from, and those steps in the order they run.
#[derive(Clone, Debug, PartialEq)]
pub struct Feed {
    /// Where the chain starts.
    pub from: FeedSource,
    /// The steps between, first to last (`Identity` and `Dropout`, which
    /// change nothing at inference, left out).
    pub steps: Vec<FeedStep>,
}

/// Where the chain of steps before a conv starts.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedSource {
    /// The model's own input.
    Input,
    /// The output of the conv of this name.
    Conv(String),
    /// The output of a node that is neither a conv nor a step a stack can
    /// run (an `Add`, a `Sigmoid`, …): its op and name.
    Node {
        /// Its op type.
        op: String,
        /// Its name.
        name: String,
    },
    /// A value no node of the graph writes: its name.
    Unknown(String),
}

/// A step between two convs of a model's graph that a stack can run or
/// fold.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedStep {
    /// A BatchNormalization of this name.
    BatchNorm(String),
    /// `max(x, 0)`.
    Relu,
    /// Max pooling.
    MaxPool {
        /// `kernel_shape`, `[height, width]`.
        kernel: [u32; 2],
        /// `strides`, `[height, width]`.
        strides: [u32; 2],
        /// Whether it pads, dilates or rounds its output size up: none of
        /// which a stack's `maxpoolN/sS` does.
        padded: bool,
    },
}

impl std::fmt::Display for FeedSource {
    /// `the model's input`, `` `conv1` ``, `` Add `add_1` ``.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedSource::Input => write!(f, "the model's input"),
            FeedSource::Conv(name) => write!(f, "`{name}`"),
            FeedSource::Node { op, name } => write!(f, "{op} `{name}`"),
            FeedSource::Unknown(value) => write!(f, "the value `{value}`"),
        }
    }
}

impl std::fmt::Display for Feed {
    /// Where the chain starts, then each step: `` `conv1` → Relu → MaxPool
    /// 2×2 stride 2×2 ``.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.from)?;
        for step in &self.steps {
            write!(f, " → {step}")?;
        }
        Ok(())
    }
}

impl std::fmt::Display for FeedStep {
    /// `BatchNorm bn1`, `Relu`, `MaxPool 3×3 stride 2 (padded)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedStep::BatchNorm(name) => write!(f, "BatchNormalization {name}"),
            FeedStep::Relu => write!(f, "Relu"),
            FeedStep::MaxPool {
                kernel,
                strides,
                padded,
            } => write!(
                f,
                "MaxPool {}×{} stride {}×{}{}",
                kernel[0],
                kernel[1],
                strides[0],
                strides[1],
                if *padded { " (padded)" } else { "" }
            ),
        }
    }
}

/// Most values [`ModelFile::tensor`] reads of one tensor: `u32::MAX`, the
/// most weights a layer can index ([`crate::layer::LayerSpec::validate`]).
/// A caller that knows the shape it expects passes a tighter bound to
/// [`ModelFile::tensor_within`].
pub const MAX_TENSOR_VALUES: usize = u32::MAX as usize;

/// A model file opened for reading.
///
/// Every reader is bounded: [`ModelFile::tensor_within`] refuses a tensor
/// of more values than its caller can use before it reads, expands or
/// allocates anything for them, so a small file that declares a huge
/// tensor costs no more memory than the values the caller expects.
pub trait ModelFile {
    /// The file's path.
    fn path(&self) -> &Path;

    /// The format's name: "safetensors", "pytorch (zip)", "pytorch (legacy)", "onnx", "npy".
    fn format(&self) -> &'static str;

    /// The conv layers, in the file's order.
    fn convs(&self) -> &[ConvRef];

    /// Every tensor's name, in the file's order.
    fn tensor_names(&self) -> Vec<String>;

    /// The shape the file declares for tensor `name`, outermost first, from
    /// its header or graph alone: no value is read. An error naming the
    /// file when it has no such tensor, or a size that is not one.
    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>>;

    /// Reads the tensor `name`, converting it to f32, when it holds at most
    /// `max_values` values; one of more is refused (an error naming the
    /// file, the tensor, its shape and the bound) before anything is read
    /// or allocated for its values. Only that tensor's bytes are read where
    /// the format allows.
    fn tensor_within(&mut self, name: &str, max_values: usize) -> Result<FileTensor>;

    /// Reads the tensor `name`, converting it to f32, refusing one of more
    /// than [`MAX_TENSOR_VALUES`] values.
    fn tensor(&mut self, name: &str) -> Result<FileTensor> {
        self.tensor_within(name, MAX_TENSOR_VALUES)
    }

    /// The file that holds tensor `name`'s values, for errors about them:
    /// [`ModelFile::path`], except where a format keeps tensors in files of
    /// their own (a `.npy` bias).
    fn tensor_path(&self, name: &str) -> &Path {
        let _ = name;
        self.path()
    }
}

/// The number of values of tensor `name` of `shape`, refusing one of more
/// than `max_values` (or of more than can be counted): the message names
/// the tensor, its shape and the bound. Readers call it before they read
/// or allocate anything for the values.
pub(crate) fn values_within(
    name: &str,
    shape: &[usize],
    max_values: usize,
) -> std::result::Result<usize, String> {
    match shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(count) if count <= max_values => Ok(count),
        count => Err(format!(
            "tensor {name:?} has shape {shape:?} ({}), more than the {max_values} it may hold here",
            count.map_or("more values than can be counted".to_string(), |c| format!(
                "{c} values"
            ))
        )),
    }
}

/// Opens a model file by its extension: `.safetensors`; `.pt`, `.pth`,
/// `.bin` (PyTorch); `.onnx`.
pub fn open(path: &Path) -> Result<Box<dyn ModelFile>> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match extension.as_str() {
        "safetensors" => Ok(Box::new(safetensors::SafetensorsFile::open(path)?)),
        "onnx" => Ok(Box::new(onnx::OnnxFile::open(path)?)),
        "pt" | "pth" | "bin" => Ok(Box::new(pytorch::PytorchFile::open(path)?)),
        _ => Err(Error::weights(
            path,
            "is not a model format convmaps reads (.safetensors, .pt, .pth, .bin, .onnx, or a .npy weight)",
        )),
    }
}

/// The conv layers of a state dict (safetensors, PyTorch) from its tensors'
/// names and shapes in the file's order: each 4-D `PREFIX.weight` (or a
/// lone `weight`) is a conv named `PREFIX`, with `PREFIX.bias` when that is
/// 1-D. The first one is the layer that sees a network's input.
pub fn state_dict_convs(tensors: &[(String, Vec<usize>)]) -> Vec<ConvRef> {
    let vectors: std::collections::HashSet<&str> = tensors
        .iter()
        .filter(|(_, shape)| shape.len() == 1)
        .map(|(name, _)| name.as_str())
        .collect();
    tensors
        .iter()
        .filter(|(name, shape)| shape.len() == 4 && (name == "weight" || name.ends_with(".weight")))
        .map(|(weight, shape)| {
            let prefix = weight.strip_suffix("weight").unwrap_or("");
            let bias = format!("{prefix}bias");
            let has_bias = vectors.contains(bias.as_str());
            ConvRef {
                name: prefix.trim_end_matches('.').to_string(),
                weight: weight.clone(),
                bias: has_bias.then_some(bias),
                weight_shape: shape.clone(),
                geometry: None,
                batch_norm: None,
                reads_input: None,
                feed: None,
            }
        })
        .collect()
}

/// The BatchNorm named `name` in a state dict: `NAME.weight` (γ),
/// `NAME.bias` (β), `NAME.running_mean`, `NAME.running_var`.
pub fn state_dict_batch_norm(model: &dyn ModelFile, name: &str) -> Result<BatchNormRef> {
    let names = model.tensor_names();
    let part = |suffix: &str| format!("{name}.{suffix}");
    let wanted = ["weight", "bias", "running_mean", "running_var"].map(part);
    if let Some(missing) = wanted.iter().find(|w| !names.contains(w)) {
        return Err(Error::weights(
            model.path(),
            format!("has no BatchNorm {name:?}: no tensor {missing:?}"),
        ));
    }
    let [scale, shift, mean, variance] = wanted;
    Ok(BatchNormRef {
        name: name.to_string(),
        scale,
        shift,
        mean,
        variance,
        epsilon: None,
    })
}

/// The values of a BatchNorm, `[K]` each.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// γ.
    pub scale: Vec<f32>,
    /// β.
    pub shift: Vec<f32>,
    /// μ.
    pub mean: Vec<f32>,
    /// σ².
    pub variance: Vec<f32>,
    /// ε.
    pub epsilon: f32,
}

/// Folds `bn` into the conv with `weight` `[K, C/G·FH·FW]` (flat, filter by
/// filter) and `bias` `[K]` (empty for none): w' = w·γ/√(σ²+ε),
/// b' = (b − μ)·γ/√(σ²+ε) + β, computed in f64. Returns the folded weight
/// and bias; errors name the BatchNorm for a length that is not K or a
/// σ² + ε that is not positive.
pub fn fold_batch_norm(
    weight: &[f32],
    bias: &[f32],
    bn: &BatchNorm,
    filters: usize,
) -> std::result::Result<(Vec<f32>, Vec<f32>), String> {
    for (what, values) in [
        ("weight (γ)", &bn.scale),
        ("bias (β)", &bn.shift),
        ("running_mean", &bn.mean),
        ("running_var", &bn.variance),
    ] {
        if values.len() != filters {
            return Err(format!(
                "the BatchNorm's {what} has {} values, expected {filters} (one per filter)",
                values.len()
            ));
        }
    }
    let per_filter = weight.len() / filters.max(1);
    let mut folded_weight = Vec::with_capacity(weight.len());
    let mut folded_bias = Vec::with_capacity(filters);
    for k in 0..filters {
        let denominator = bn.variance[k] as f64 + bn.epsilon as f64;
        if denominator.is_nan() || denominator <= 0.0 {
            return Err(format!(
                "the BatchNorm's running_var + eps is {denominator} for filter {k}, expected above zero"
            ));
        }
        let factor = bn.scale[k] as f64 / denominator.sqrt();
        let filter = &weight[k * per_filter..(k + 1) * per_filter];
        folded_weight.extend(filter.iter().map(|&w| (w as f64 * factor) as f32));
        let b = bias.get(k).copied().unwrap_or(0.0) as f64;
        folded_bias.push(((b - bn.mean[k] as f64) * factor + bn.shift[k] as f64) as f32);
    }
    Ok((folded_weight, folded_bias))
}
