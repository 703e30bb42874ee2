//! Filling a layer's parameters: PyTorch's default initialisation from a
//! seed, and safetensors files in and out.

use std::collections::HashMap;
use std::path::Path;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::error::{Error, Result};
use crate::layer::{Layer, LayerSpec};
use crate::npy;

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

/// Reads `weight` `[K, C/G, FH, FW]` and `bias` `[K]` (f32) from a
/// safetensors file, as PyTorch's `save_file(conv.state_dict(), ...)` writes
/// them. A conv inside a bigger model is found by its prefix:
/// `layer_name = Some("conv1")` reads `conv1.weight` and `conv1.bias`; with
/// no name, a file whose only 4-D `*.weight` is `conv1.weight` works too.
pub fn load_safetensors(path: &Path, layer_name: Option<&str>) -> Result<LoadedWeights> {
    let weights_error = |message: String| Error::weights(path, message);
    let bytes = std::fs::read(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::weights_caused(path, "not a valid safetensors file", e))?;
    let weight_name = choose_weight(&tensors, layer_name).map_err(weights_error)?;
    let bias_name = format!("{}bias", weight_name.strip_suffix("weight").unwrap_or(""));

    let weight_view = tensors
        .tensor(&weight_name)
        .map_err(|e| Error::weights_caused(path, format!("cannot read {weight_name}"), e))?;
    let shape = conv_weight_shape(weight_view.shape(), &weight_name).map_err(weights_error)?;
    let weight = f32_values(&weight_view, &weight_name).map_err(weights_error)?;
    let bias = match tensors.tensor(&bias_name) {
        Ok(view) => {
            check_bias_shape(view.shape(), &bias_name).map_err(weights_error)?;
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

/// The name of the conv weight to read: `NAME.weight` for `--layer-name
/// NAME`, else `weight`, else the file's only 4-D `*.weight`; an error
/// listing what the file has otherwise.
fn choose_weight(
    tensors: &SafeTensors<'_>,
    layer_name: Option<&str>,
) -> std::result::Result<String, String> {
    let mut names = tensors.names();
    names.sort();
    if let Some(layer) = layer_name {
        let name = format!("{layer}.weight");
        return if names.contains(&name.as_str()) {
            Ok(name)
        } else {
            Err(format!(
                "has no tensor {name:?} (--layer-name {layer}); tensors: {}",
                names.join(", ")
            ))
        };
    }
    if names.contains(&"weight") {
        return Ok("weight".to_string());
    }
    let is_conv = |name: &&str| {
        name.ends_with(".weight") && tensors.tensor(name).is_ok_and(|t| t.shape().len() == 4)
    };
    let candidates: Vec<&str> = names.iter().copied().filter(is_conv).collect();
    match candidates.as_slice() {
        [one] => Ok(one.to_string()),
        [] => Err(format!(
            "has no `weight` tensor [K, C/G, FH, FW] (tensors: {})",
            names.join(", ")
        )),
        many => {
            let layers: Vec<&str> = many.iter().map(|n| n.trim_end_matches(".weight")).collect();
            Err(format!(
                "has several conv weights; choose one with --layer-name ({})",
                layers.join(", ")
            ))
        }
    }
}

/// Reads the weight `[K, C/G, FH, FW]` and, when given, the bias `[K]` from
/// `.npy` files of little-endian f32 in C order (numpy's
/// `np.save(path, w.astype('<f4'))`).
pub fn load_npy(weight_path: &Path, bias_path: Option<&Path>) -> Result<LoadedWeights> {
    let error_for = |path: &Path| {
        let path = path.to_path_buf();
        move |message: String| Error::weights(&path, message)
    };
    let (dims, weight) = npy::read_f32(weight_path)?;
    let shape = conv_weight_shape(&dims, "weight").map_err(error_for(weight_path))?;
    check_finite(&weight, "weight").map_err(error_for(weight_path))?;
    let bias = match bias_path {
        Some(path) => {
            let (dims, bias) = npy::read_f32(path)?;
            check_bias_shape(&dims, "bias").map_err(error_for(path))?;
            check_finite(&bias, "bias").map_err(error_for(path))?;
            Some(bias)
        }
        None => None,
    };
    Ok(LoadedWeights {
        weight,
        shape,
        bias,
    })
}

/// The weight's shape as `[K, C/G, FH, FW]`, refusing anything but four
/// dimensions of at least 1.
fn conv_weight_shape(dims: &[usize], name: &str) -> std::result::Result<[u32; 4], String> {
    let refuse = || {
        format!("{name} has shape {dims:?}, expected [K, C/G, FH, FW] with every size at least 1")
    };
    let [a, b, c, d] = dims else {
        return Err(refuse());
    };
    let to_u32 = |v: usize| u32::try_from(v).ok().filter(|&v| v > 0);
    match (to_u32(*a), to_u32(*b), to_u32(*c), to_u32(*d)) {
        (Some(a), Some(b), Some(c), Some(d)) => Ok([a, b, c, d]),
        _ => Err(refuse()),
    }
}

fn check_bias_shape(dims: &[usize], name: &str) -> std::result::Result<(), String> {
    if dims.len() == 1 {
        Ok(())
    } else {
        Err(format!(
            "{name} has shape {dims:?}, expected [K] (one value per filter)"
        ))
    }
}

fn check_finite(values: &[f32], name: &str) -> std::result::Result<(), String> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(format!(
            "{name} holds a non-finite value ({}) at index {i}",
            values[i]
        )),
        None => Ok(()),
    }
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
