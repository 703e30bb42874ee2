//! Filling a layer's parameters: PyTorch's default initialisation from a
//! seed, and safetensors files in and out.

use std::collections::HashMap;
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};
use crate::layer::{Layer, LayerSpec};

/// The seed used when the user gives none.
pub const DEFAULT_SEED: u64 = 42;

/// PyTorch's `nn.Conv2d` default initialisation: every weight and every bias
/// uniform in `±1/√fan_in`, with `fan_in = C/G·FH·FW` (this is
/// `kaiming_uniform_(a=√5)` for the weights and PyTorch's bias rule).
///
/// Values come from ChaCha8 seeded with `seed`, weights first in OIHW order,
/// then biases: each value is `(2u − 1)·bound` with `u = (next_u32 >> 8) / 2²⁴`,
/// so a seed gives bit-identical parameters on every platform.
pub fn kaiming_uniform(spec: LayerSpec, seed: u64) -> Result<Layer> {
    spec.validate()?;
    let bound = 1.0 / (spec.taps_per_output() as f64).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = || {
        let unit = (rng.next_u32() >> 8) as f64 / (1u32 << 24) as f64;
        ((2.0 * unit - 1.0) * bound) as f32
    };
    let weight = (0..spec.weight_len()).map(|_| draw()).collect();
    let bias = (0..spec.bias_len()).map(|_| draw()).collect();
    Layer::new(spec, weight, bias)
}

/// Parameters read from a file: the weight tensor with its shape
/// `[K, C/G, FH, FW]`, and the bias `[K]` if the file has one.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedWeights {
    /// Weights, row-major OIHW.
    pub weight: Vec<f32>,
    /// The weight tensor's shape `[K, C/G, FH, FW]`.
    pub shape: [u32; 4],
    /// Biases `[K]`, when the file has a bias tensor.
    pub bias: Option<Vec<f32>>,
}

impl LoadedWeights {
    /// Builds the layer these weights describe, taking K, C/G, FH and FW from
    /// the file and the rest (stride, padding, ...) from `spec`, and checking
    /// them against the photo's `in_channels`.
    pub fn into_layer(self, mut spec: LayerSpec, in_channels: u32, path: &Path) -> Result<Layer> {
        let weights_error = |message: String| Error::Weights {
            path: path.to_path_buf(),
            message,
        };
        let [filters, channels_per_group, kernel_height, kernel_width] = self.shape;
        spec.filters = filters;
        spec.kernel_height = kernel_height;
        spec.kernel_width = kernel_width;
        spec.in_channels = channels_per_group * spec.groups;
        if spec.in_channels != in_channels {
            return Err(weights_error(format!(
                "weight has shape {:?}, whose {} input channels (×{} groups) do not match the \
                 photo's {in_channels} channels",
                self.shape, channels_per_group, spec.groups
            )));
        }
        let bias = match self.bias {
            Some(bias) if bias.len() != filters as usize => {
                return Err(weights_error(format!(
                    "bias has {} values, expected {filters} (one per filter)",
                    bias.len()
                )));
            }
            Some(bias) => bias,
            None if spec.bias => {
                return Err(weights_error(
                    "has no bias tensor; the layer has a bias for each filter".into(),
                ));
            }
            None => Vec::new(),
        };
        spec.bias = !bias.is_empty();
        Layer::new(spec, self.weight, bias).map_err(|e| weights_error(e.to_string()))
    }
}

/// Reads `weight` `[K, C/G, FH, FW]` and `bias` `[K]` (f32) from a
/// safetensors file, as PyTorch's `save_file(conv.state_dict(), ...)` writes
/// them. A single conv's keys with a prefix (`conv1.weight`, `conv1.bias`)
/// are accepted too when there is exactly one such weight.
pub fn load_safetensors(path: &Path) -> Result<LoadedWeights> {
    let weights_error = |message: String| Error::Weights {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| weights_error(e.to_string()))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| weights_error(format!("not a valid safetensors file: {e}")))?;
    let names = tensors.names();
    let weight_name = if names.contains(&"weight") {
        "weight".to_string()
    } else {
        let candidates: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| n.ends_with(".weight"))
            .collect();
        match candidates.as_slice() {
            [one] => one.to_string(),
            [] => {
                return Err(weights_error(format!(
                    "has no `weight` tensor (tensors: {})",
                    names.join(", ")
                )));
            }
            many => {
                return Err(weights_error(format!(
                    "has several weight tensors ({}); keep one conv layer per file",
                    many.join(", ")
                )));
            }
        }
    };
    let bias_name = format!("{}bias", weight_name.strip_suffix("weight").unwrap_or(""));

    let weight_view = tensors
        .tensor(&weight_name)
        .map_err(|e| weights_error(e.to_string()))?;
    let dims = weight_view.shape();
    let shape: [u32; 4] = match dims {
        [a, b, c, d] => {
            let to_u32 = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            [to_u32(*a), to_u32(*b), to_u32(*c), to_u32(*d)]
        }
        _ => {
            return Err(weights_error(format!(
                "{weight_name} has shape {dims:?}, expected 4 dimensions [K, C/G, FH, FW]"
            )));
        }
    };
    let weight = f32_values(&weight_view, &weight_name).map_err(weights_error)?;

    let bias = match tensors.tensor(&bias_name) {
        Ok(view) => {
            if view.shape().len() != 1 {
                return Err(weights_error(format!(
                    "{bias_name} has shape {:?}, expected [K] (one value per filter)",
                    view.shape()
                )));
            }
            Some(f32_values(&view, &bias_name).map_err(weights_error)?)
        }
        Err(_) => None,
    };
    Ok(LoadedWeights {
        weight,
        shape,
        bias,
    })
}

/// A tensor's values as f32, refusing other dtypes and non-finite values.
fn f32_values(view: &TensorView<'_>, name: &str) -> std::result::Result<Vec<f32>, String> {
    if view.dtype() != Dtype::F32 {
        return Err(format!("{name} has dtype {:?}, expected F32", view.dtype()));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "{name} holds a non-finite value ({}) at index {i}",
            values[i]
        ));
    }
    Ok(values)
}

/// The layer's parameters as a safetensors file's bytes: `weight`
/// `[K, C/G, FH, FW]` and (with bias) `bias` `[K]`, f32, PyTorch's
/// state-dict names and layout.
pub fn to_safetensors(layer: &Layer) -> Result<Vec<u8>> {
    let weight_bytes: Vec<u8> = layer.weight.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bias_bytes: Vec<u8> = layer.bias.iter().flat_map(|v| v.to_le_bytes()).collect();
    let to_error = |e: safetensors::SafeTensorError| Error::InvalidLayer(e.to_string());
    let mut views = vec![(
        "weight",
        TensorView::new(
            Dtype::F32,
            layer.spec.weight_shape().to_vec(),
            &weight_bytes,
        )
        .map_err(to_error)?,
    )];
    if !layer.bias.is_empty() {
        views.push((
            "bias",
            TensorView::new(Dtype::F32, vec![layer.bias.len()], &bias_bytes).map_err(to_error)?,
        ));
    }
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize(views, Some(metadata)).map_err(to_error)
}
