//! One conv layer's parameters out of a model file: the layer chosen by
//! name or by default, its stated shape (to check against the input before
//! anything is read), its weight and bias as f32, each read bounded by the
//! shape the conv states, and the BatchNorm after it folded in when asked.

use std::path::Path;

use super::{
    BatchNorm, BatchNormRef, ConvRef, DType, FileGeometry, FileTensor, MAX_TENSOR_VALUES,
    ModelFile, fold_batch_norm, values_within,
};
use crate::error::{Error, Result};

/// Which BatchNorm to fold into the conv, and its ε where the file has none.
#[derive(Clone, Debug, PartialEq)]
pub struct FoldBatchNorm {
    /// The BatchNorm's name (a state dict's prefix, such as `bn1`); `None`
    /// takes the one the file says follows the conv (ONNX), or in a state
    /// dict the one its names suggest (`conv1` → `bn1`, `features.0` →
    /// `features.1`).
    pub name: Option<String>,
    /// ε for a BatchNorm whose file does not state it (state dicts); 1e-5
    /// is PyTorch's default.
    pub epsilon: f32,
    /// With no name: a conv that no BatchNorm follows is loaded as it is
    /// (each conv of a stack), instead of being an error.
    pub if_present: bool,
}

/// Where a layer's numbers came from, for the summary and the page.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WeightsOrigin {
    /// "safetensors", "pytorch (zip)", "pytorch (legacy)", "onnx" or "npy".
    pub format: String,
    /// The conv's name in the file, where it has names.
    pub layer: Option<String>,
    /// The dtype the weight was stored in (read as f32).
    pub dtype: DType,
    /// Whether the conv itself has a bias.
    pub conv_bias: bool,
    /// The BatchNorm folded into the layer, if any.
    pub batch_norm: Option<String>,
}

/// A conv layer's parameters read from a file: the weight tensor with its
/// shape `[K, C/G, FH, FW]`, the bias `[K]` if there is one (after folding
/// a BatchNorm there always is), the geometry the file states, and where
/// they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedWeights {
    /// Weights, row-major OIHW.
    pub weight: Vec<f32>,
    /// The weight tensor's shape `[K, C/G, FH, FW]`.
    pub shape: [u32; 4],
    /// Biases `[K]`, when the layer has them.
    pub bias: Option<Vec<f32>>,
    /// Strides, padding, dilations and groups, where the file states them.
    pub geometry: Option<FileGeometry>,
    /// The weight tensor's name in the file (`conv1.weight`).
    pub weight_name: String,
    /// Where they came from.
    pub origin: WeightsOrigin,
}

impl LoadedWeights {
    /// The conv's shape, as read.
    pub fn conv_shape(&self) -> ConvShape {
        ConvShape {
            weight_name: self.weight_name.clone(),
            weight: self.shape,
            bias: self.bias.is_some(),
            geometry: self.geometry,
        }
    }
}

/// What a file states of a conv's shape: all a layer needs to check that
/// the conv fits its input, known before any value is read.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvShape {
    /// The weight tensor's name in the file (`conv1.weight`).
    pub weight_name: String,
    /// The weight's shape `[K, C/G, FH, FW]`.
    pub weight: [u32; 4],
    /// Whether the conv has a bias `[K]`.
    pub bias: bool,
    /// Strides, padding, dilations and groups, where the file states them.
    pub geometry: Option<FileGeometry>,
}

/// A conv chosen in an open model file, none of whose values has been read:
/// [`ConvInFile::shape`] can be checked against the layer's input first
/// (the resolve step does), and [`ConvInFile::read`] then reads
/// the weight's `K·C/G·FH·FW` values and no more, the bias's `K`, and a
/// folded BatchNorm's `K` each.
pub struct ConvInFile {
    model: Box<dyn ModelFile>,
    conv: ConvRef,
    shape: [u32; 4],
}

impl ConvInFile {
    /// Opens the model file at `path` and chooses its conv `layer_name`
    /// (see [`load_conv`] for the default).
    pub fn open(path: &Path, layer_name: Option<&str>) -> Result<Self> {
        Self::choose(super::open(path)?, layer_name)
    }

    /// Chooses the conv `layer_name` of `model` (see [`load_conv`] for the
    /// default), refusing one whose weight is not 4-D, with every size 1 to
    /// `u32::MAX`.
    pub fn choose(model: Box<dyn ModelFile>, layer_name: Option<&str>) -> Result<Self> {
        let conv = choose_conv(model.as_ref(), layer_name)?;
        let shape = conv_weight_shape(&conv.weight_shape)
            .map_err(|m| Error::weights(model.path(), format!("{}: {m}", conv.weight)))?;
        Ok(ConvInFile { model, conv, shape })
    }

    /// The conv's shape as the file states it.
    pub fn shape(&self) -> ConvShape {
        ConvShape {
            weight_name: self.conv.weight.clone(),
            weight: self.shape,
            bias: self.conv.bias.is_some(),
            geometry: self.conv.geometry,
        }
    }

    /// Reads the conv's weight and bias, folding `fold`'s BatchNorm into
    /// them when given; refuses non-finite values, naming the tensor.
    pub fn read(self, fold: Option<&FoldBatchNorm>) -> Result<LoadedWeights> {
        let ConvInFile {
            mut model,
            conv,
            shape,
        } = self;
        let path = model.path().to_path_buf();
        let weight = read_weight(model.as_mut(), &conv.weight, shape)?;
        let bias = match &conv.bias {
            Some(name) => Some(read_vector(model.as_mut(), name, shape[0])?),
            None => None,
        };
        let mut loaded = LoadedWeights {
            weight: weight.values,
            shape,
            bias,
            geometry: conv.geometry,
            weight_name: conv.weight.clone(),
            origin: WeightsOrigin {
                format: model.format().to_string(),
                layer: Some(conv.name.clone()).filter(|n| !n.is_empty()),
                dtype: weight.dtype,
                conv_bias: conv.bias.is_some(),
                batch_norm: None,
            },
        };
        if let Some(fold) = fold {
            match batch_norm_for(model.as_ref(), &conv, fold)? {
                Some(bn) => fold_into(model.as_mut(), &mut loaded, &bn, fold.epsilon)?,
                None if fold.if_present => {}
                None => {
                    return Err(Error::weights(
                        &path,
                        format!(
                            "no BatchNorm follows conv {:?} in the file; name the one to fold with --fold-bn NAME",
                            conv.name
                        ),
                    ));
                }
            }
        }
        check_finite(&loaded.weight, &conv.weight)
            .map_err(|m| Error::weights(model.tensor_path(&conv.weight), m))?;
        let bias_name = conv.bias.as_deref().unwrap_or("bias");
        check_finite(loaded.bias.as_deref().unwrap_or(&[]), "bias")
            .map_err(|m| Error::weights(model.tensor_path(bias_name), m))?;
        Ok(loaded)
    }
}

/// Reads the conv `layer_name` (by default the one that sees the model's
/// input: in ONNX the first Conv fed by the graph's input, in a state dict
/// the first 4-D `*.weight` in the file's order that reads 1, 3 or 4
/// channels, else the first) from the model file at `path`, folding
/// `fold`'s BatchNorm into it when given. Nothing is checked against an
/// input; [`ConvInFile`] lets a caller check the conv's shape first.
pub fn load_conv(
    path: &Path,
    layer_name: Option<&str>,
    fold: Option<&FoldBatchNorm>,
) -> Result<LoadedWeights> {
    ConvInFile::open(path, layer_name)?.read(fold)
}

/// Refuses NaN and infinities, naming the first.
fn check_finite(values: &[f32], name: &str) -> std::result::Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!(
            "{name} holds a non-finite value ({}) at index {i}",
            values[i]
        )),
        None => Ok(()),
    }
}

/// The weight `name` of the stated `shape` `[K, C/G, FH, FW]`: its reader
/// reads at most the shape's values.
fn read_weight(model: &mut dyn ModelFile, name: &str, shape: [u32; 4]) -> Result<FileTensor> {
    let dims = shape.map(|d| d as usize);
    let count = values_within(name, &dims, MAX_TENSOR_VALUES)
        .map_err(|m| Error::weights(model.tensor_path(name), m))?;
    let weight = model.tensor_within(name, count)?;
    match conv_weight_shape(&weight.shape) {
        Ok(read) if read == shape => Ok(weight),
        _ => Err(Error::weights(
            model.tensor_path(name),
            format!(
                "{name}: read as shape {:?}, but the file states {shape:?}",
                weight.shape
            ),
        )),
    }
}

/// The conv named `name` (its name, or its weight tensor's name), else the
/// default one; an error listing the convs the file has otherwise.
fn choose_conv(model: &dyn ModelFile, name: Option<&str>) -> Result<ConvRef> {
    let convs = model.convs();
    let found = match name {
        Some(name) => convs.iter().find(|c| c.name == name || c.weight == name),
        // ONNX knows which conv reads the model's input. A state dict does
        // not, and safetensors files sort their tensors by name, not by
        // module: take the first conv that reads an image's channels.
        None => convs
            .iter()
            .find(|c| c.reads_input == Some(true))
            .or_else(|| {
                convs
                    .iter()
                    .find(|c| matches!(c.weight_shape.get(1), Some(1 | 3 | 4)))
            })
            .or(convs.first()),
    };
    found.cloned().ok_or_else(|| {
        let names: Vec<&str> = convs.iter().map(|c| c.name.as_str()).collect();
        let listed = if names.is_empty() {
            "it has no conv layers (4-D weights)".to_string()
        } else {
            format!("its conv layers: {}", names.join(", "))
        };
        let asked = match name {
            Some(name) => format!("has no conv layer {name:?} (--layer-name)"),
            None => "has no conv layer".to_string(),
        };
        Error::weights(model.path(), format!("{asked}; {listed}"))
    })
}

/// The BatchNorm to fold: the named one, else the one the file says
/// follows `conv`.
fn batch_norm_for(
    model: &dyn ModelFile,
    conv: &ConvRef,
    fold: &FoldBatchNorm,
) -> Result<Option<BatchNormRef>> {
    match (&fold.name, &conv.batch_norm) {
        (Some(name), Some(bn)) if bn.name == *name => Ok(Some(bn.clone())),
        (Some(name), _) => super::state_dict_batch_norm(model, name).map(Some),
        (None, Some(bn)) => Ok(Some(bn.clone())),
        (None, None) => match super::table::batch_norm_by_name(&conv.name, &model.tensor_names()) {
            Some(name) => super::state_dict_batch_norm(model, &name).map(Some),
            None => Ok(None),
        },
    }
}

/// Folds `bn` into `loaded`'s weight and bias.
fn fold_into(
    model: &mut dyn ModelFile,
    loaded: &mut LoadedWeights,
    bn: &BatchNormRef,
    default_epsilon: f32,
) -> Result<()> {
    let filters = loaded.shape[0];
    let values = BatchNorm {
        scale: read_vector(model, &bn.scale, filters)?,
        shift: read_vector(model, &bn.shift, filters)?,
        mean: read_vector(model, &bn.mean, filters)?,
        variance: read_vector(model, &bn.variance, filters)?,
        epsilon: bn.epsilon.unwrap_or(default_epsilon),
    };
    let bias = loaded.bias.as_deref().unwrap_or(&[]);
    let (weight, bias) = fold_batch_norm(&loaded.weight, bias, &values, filters as usize)
        .map_err(|m| Error::weights(model.path(), format!("BatchNorm {:?}: {m}", bn.name)))?;
    loaded.weight = weight;
    loaded.bias = Some(bias);
    loaded.origin.batch_norm = Some(bn.name.clone());
    Ok(())
}

/// The 1-D tensor `name`, which must hold `len` values: its stated shape
/// is checked first, and its reader reads at most `len` values.
fn read_vector(model: &mut dyn ModelFile, name: &str, len: u32) -> Result<Vec<f32>> {
    let shape = model.tensor_shape(name)?;
    let message = if shape.len() != 1 {
        format!("{name} has shape {shape:?}, expected [{len}] (one value per filter)")
    } else if shape[0] != len as usize {
        format!(
            "{name} has {} values, expected {len} (one per filter)",
            shape[0]
        )
    } else {
        let tensor = model.tensor_within(name, len as usize)?;
        if tensor.values.len() == len as usize {
            return Ok(tensor.values);
        }
        format!(
            "{name} has {} values, expected {len} (one per filter)",
            tensor.values.len()
        )
    };
    Err(Error::weights(model.tensor_path(name), message))
}

/// The weight's shape as `[K, C/G, FH, FW]`, refusing anything but four
/// dimensions of 1 to `u32::MAX`.
pub fn conv_weight_shape(dims: &[usize]) -> std::result::Result<[u32; 4], String> {
    let refuse =
        || format!("has shape {dims:?}, expected [K, C/G, FH, FW] with every size at least 1");
    let [a, b, c, d] = dims else {
        return Err(refuse());
    };
    let to_u32 = |v: usize| u32::try_from(v).ok().filter(|&v| v > 0);
    match (to_u32(*a), to_u32(*b), to_u32(*c), to_u32(*d)) {
        (Some(a), Some(b), Some(c), Some(d)) => Ok([a, b, c, d]),
        _ => Err(refuse()),
    }
}
