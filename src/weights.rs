//! Filling a layer's parameters: PyTorch's default initialisation from a
//! seed, and a layer's parameters written as a safetensors file. Reading
//! them from files (model files and `.npy`) is the model module's.

use std::collections::HashMap;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use safetensors::{Dtype, tensor::TensorView};

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
