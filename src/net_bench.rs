//! `convmaps bench --model`: a whole network's forward pass timed on each
//! engine, warm (after one untimed pass, as other runtimes are timed), with
//! BatchNorms, activations and residual Adds fused as a `--maps none` run
//! fuses them; only the graph's outputs are read back (such a run also
//! keeps the maps CAM is made from).

use std::time::Duration;

use crate::engine::Engine;
use crate::error::Result;
use crate::net::{self, Array, Network};

/// One engine's passes over one network.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NetBenchRow {
    /// Shader name ("direct", "fast"), or "cpu" for the CPU twins.
    pub shader: String,
    /// The model file.
    pub model: String,
    /// The input's width × height.
    pub size: String,
    /// The median forward pass on the GPU's clock, in milliseconds; none
    /// where the device has no timestamps (or on the CPU).
    pub gpu_ms: Option<f64>,
    /// The fastest of those.
    pub gpu_min_ms: Option<f64>,
    /// The median wall time of a pass, from the input's upload to the
    /// outputs read back, in milliseconds.
    pub wall_ms: f64,
    /// Floating-point operations of one pass / the median pass (GPU clock
    /// where known, else wall), in GFLOP/s.
    pub gflops: f64,
    /// What one pass holds in memory at once, in bytes.
    pub memory_bytes: u64,
    /// Timed passes.
    pub runs: u32,
    /// Where it ran.
    pub adapter: String,
}

/// `path`'s network for an input of `size` [H, W] (the model's own size
/// where it fixes one), fused for a run that reads back only its outputs,
/// and a deterministic input in `[0, 1)`.
pub fn network(path: &std::path::Path, size: [u32; 2]) -> Result<(Network, Array)> {
    let mut model = net::open(path)?;
    let size = model.input.size.unwrap_or(size);
    let mut network = model.network(size)?;
    let outputs = network.outputs.clone();
    net::fuse::fuse(&mut network, &outputs);
    let shape = network.values[network.input_value].shape.clone();
    let count: usize = shape.iter().product();
    let data = (0..count)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    Ok((network, Array::new(shape, data)))
}

/// Times `runs` passes of `network` over `input` on `engine` after one
/// untimed pass.
pub fn measure(
    engine: &dyn Engine,
    network: &Network,
    input: &Array,
    runs: u32,
) -> Result<NetBenchRow> {
    let outputs = network.outputs.clone();
    let first = engine.run_network(network, input.clone(), &outputs)?;
    let mut gpu = Vec::new();
    let mut wall = Vec::new();
    for _ in 0..runs.max(1) {
        let run = engine.run_network(network, input.clone(), &outputs)?;
        gpu.extend(run.gpu_ms);
        wall.push(run.total);
    }
    let wall_ms = median(wall.iter().map(Duration::as_secs_f64).collect()) * 1e3;
    let gpu_ms = (gpu.len() == wall.len()).then(|| median(gpu.clone()));
    let flops: u64 = network.nodes.iter().map(|n| network.flops(n)).sum();
    let info = engine.info();
    let size = match network.values[network.input_value].shape[..] {
        [_, _, h, w] => format!("{w}×{h}"),
        _ => "?".into(),
    };
    Ok(NetBenchRow {
        shader: info.shader_name().to_string(),
        model: network.path.display().to_string(),
        size,
        gpu_ms,
        gpu_min_ms: gpu_ms.and_then(|_| gpu.iter().copied().reduce(f64::min)),
        wall_ms,
        gflops: flops as f64 / (gpu_ms.unwrap_or(wall_ms) / 1e3) / 1e9,
        memory_bytes: first.memory.total(),
        runs: runs.max(1),
        adapter: info.adapter_line(),
    })
}

/// The median of `values` (the upper one of an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The rows as an aligned table.
pub fn table(rows: &[NetBenchRow]) -> String {
    let ms = |value: Option<f64>| value.map_or_else(|| "-".into(), |v| format!("{v:.1}"));
    let mut lines = vec![format!(
        "{:<8} {:>9} {:>13} {:>11} {:>12} {:>9} {:>10}  adapter",
        "shader", "size", "GPU ms (med)", "GPU ms min", "wall ms med", "GFLOP/s", "memory MB"
    )];
    for row in rows {
        lines.push(format!(
            "{:<8} {:>9} {:>13} {:>11} {:>12.1} {:>9.2} {:>10.1}  {}",
            row.shader,
            row.size,
            ms(row.gpu_ms),
            ms(row.gpu_min_ms),
            row.wall_ms,
            row.gflops,
            row.memory_bytes as f64 / 1e6,
            row.adapter
        ));
    }
    lines.join("\n")
}
