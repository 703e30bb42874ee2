//! `convmaps bench`: each kernel's compute time and throughput on this
//! machine's GPU (and the CPU reference), for a table users can compare.

use std::time::Duration;

use crate::error::Result;
use crate::layer::{Layer, LayerSpec};
use crate::tensor::Tensor3;
use crate::weights;

/// One measured case.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// Kernel name ("direct", "fast", "cpu").
    pub kernel: String,
    /// Input width × height.
    pub size: String,
    /// Filters and kernel, e.g. "32×5×5".
    pub layer: String,
    /// Fastest compute time of the repeats, in milliseconds.
    pub ms: f64,
    /// 2·K·OH·OW·(C/G)·FH·FW / that time, in GFLOP/s.
    pub gflops: f64,
    /// Where it ran.
    pub adapter: String,
}

/// A deterministic `[3, height, width]` image in `[0, 1)` and a layer of
/// `filters` filters of `kernel`×`kernel` with PyTorch's default init.
pub fn case(width: u32, height: u32, filters: u32, kernel: u32) -> Result<(Tensor3, Layer)> {
    let len = 3 * width as usize * height as usize;
    let data = (0..len)
        .map(|i| ((i * 2654435761) % 1000) as f32 / 1000.0)
        .collect();
    let image = Tensor3::from_vec(3, height, width, data);
    let layer = weights::kaiming_uniform(LayerSpec::new(3, filters, kernel), 42)?;
    Ok((image, layer))
}

/// Floating-point operations of one run: 2 per multiply-add.
pub fn flops(image: &Tensor3, layer: &Layer) -> Result<f64> {
    let (out_height, out_width) = layer.spec.output_size(image.height, image.width)?;
    Ok(2.0
        * layer.spec.filters as f64
        * out_height as f64
        * out_width as f64
        * layer.spec.taps_per_output() as f64)
}

/// Runs `compute` once to warm up and then `repeats` times, and reports the
/// fastest compute time. `compute` returns the time of the compute stage.
pub fn measure(
    kernel: &str,
    adapter: &str,
    image: &Tensor3,
    layer: &Layer,
    repeats: u32,
    mut compute: impl FnMut() -> Result<Duration>,
) -> Result<BenchRow> {
    compute()?;
    let mut best = Duration::MAX;
    for _ in 0..repeats.max(1) {
        best = best.min(compute()?);
    }
    let spec = &layer.spec;
    Ok(BenchRow {
        kernel: kernel.to_string(),
        size: format!("{}×{}", image.width, image.height),
        layer: format!(
            "{}×{}×{}",
            spec.filters, spec.kernel_height, spec.kernel_width
        ),
        ms: best.as_secs_f64() * 1e3,
        gflops: flops(image, layer)? / best.as_secs_f64() / 1e9,
        adapter: adapter.to_string(),
    })
}

/// The rows as an aligned table.
pub fn table(rows: &[BenchRow]) -> String {
    let mut lines = vec![format!(
        "{:<8} {:>11} {:>9} {:>11} {:>9}  {}",
        "kernel", "size", "layer", "ms", "GFLOP/s", "adapter"
    )];
    for row in rows {
        lines.push(format!(
            "{:<8} {:>11} {:>9} {:>11.1} {:>9.2}  {}",
            row.kernel, row.size, row.layer, row.ms, row.gflops, row.adapter
        ));
    }
    lines.join("\n")
}
