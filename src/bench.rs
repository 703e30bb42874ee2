//! `convmaps bench`: each shader's compute time and throughput on this
//! machine's GPU (and the CPU reference), for a table users can compare.

use std::time::Duration;

use crate::engine::{Engine, convolve_planned};
use crate::error::Result;
use crate::graph::plan::LayerPlan;
use crate::layer::{Layer, LayerSpec};
use crate::tensor::Tensor3;
use crate::weights;

/// One measured case.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// Shader name ("direct", "fast"), or "cpu" for the CPU reference.
    pub shader: String,
    /// Input width × height.
    pub size: String,
    /// Filters and kernel, e.g. "32×5×5".
    pub layer: String,
    /// Fastest compute time of the repeats, in milliseconds.
    pub ms: f64,
    /// 2·K·OH·OW·(C/G)·FH·FW / that time, in GFLOP/s.
    pub gflops: f64,
    /// Bytes of f32 output the run writes: 4·K·OH·OW.
    pub bytes_written: u64,
    /// Those bytes / the time, in GB/s (10⁹ bytes per second).
    pub written_gb_per_s: f64,
    /// The memory roofline: bytes written / the memory bandwidth given to
    /// [`measure`], in milliseconds; none without a bandwidth.
    pub roofline_ms: Option<f64>,
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
    Ok(layer.spec.flops(out_height, out_width))
}

/// Runs `layer` over `image` on `engine` in the bands and filter chunks a
/// photo of that size would take, discarding the maps, and returns the
/// compute time: the GPU's timestamps where the device has them, else the
/// time spent waiting on the GPU (the compute time on the CPU).
pub fn time_planned(engine: &dyn Engine, image: &Tensor3, layer: &Layer) -> Result<Duration> {
    let plan = LayerPlan::new(&layer.spec, image.height, image.width, engine.band_budget())?;
    let timings = convolve_planned(engine, image, layer, &plan, |_, _, _| Ok(()))?;
    Ok(timings.compute())
}

/// Bytes of f32 output one run writes: 4·K·OH·OW.
pub fn bytes_written(image: &Tensor3, layer: &Layer) -> Result<u64> {
    let (out_height, out_width) = layer.spec.output_size(image.height, image.width)?;
    Ok(layer.spec.output_bytes(out_height, out_width))
}

/// Runs `compute` once to warm up and then `repeats` times, and reports the
/// fastest compute time. `compute` returns the time of the compute stage.
/// With the device's memory bandwidth (`bandwidth_gb_per_s`, 10⁹ bytes per
/// second), the row also gives the roofline: the time writing the output
/// alone would take.
pub fn measure(
    shader: &str,
    adapter: &str,
    image: &Tensor3,
    layer: &Layer,
    repeats: u32,
    bandwidth_gb_per_s: Option<f64>,
    mut compute: impl FnMut() -> Result<Duration>,
) -> Result<BenchRow> {
    compute()?;
    let mut best = Duration::MAX;
    for _ in 0..repeats.max(1) {
        best = best.min(compute()?);
    }
    let spec = &layer.spec;
    let bytes = bytes_written(image, layer)?;
    Ok(BenchRow {
        shader: shader.to_string(),
        size: format!("{}×{}", image.width, image.height),
        layer: format!(
            "{}×{}×{}",
            spec.filters, spec.kernel_height, spec.kernel_width
        ),
        ms: best.as_secs_f64() * 1e3,
        gflops: flops(image, layer)? / best.as_secs_f64() / 1e9,
        bytes_written: bytes,
        written_gb_per_s: bytes as f64 / best.as_secs_f64() / 1e9,
        roofline_ms: bandwidth_gb_per_s.map(|bandwidth| bytes as f64 / bandwidth / 1e6),
        adapter: adapter.to_string(),
    })
}

/// The rows as an aligned table; with roofline figures when the rows have
/// them.
pub fn table(rows: &[BenchRow]) -> String {
    let roofline = rows.iter().any(|row| row.roofline_ms.is_some());
    let mut header = format!(
        "{:<8} {:>11} {:>9} {:>11} {:>9} {:>9}",
        "shader", "size", "layer", "ms", "GFLOP/s", "GB/s out"
    );
    if roofline {
        header.push_str(&format!(" {:>11} {:>10}", "roofline ms", "× roofline"));
    }
    header.push_str("  adapter");
    let mut lines = vec![header];
    for row in rows {
        let mut line = format!(
            "{:<8} {:>11} {:>9} {:>11.1} {:>9.2} {:>9.1}",
            row.shader, row.size, row.layer, row.ms, row.gflops, row.written_gb_per_s
        );
        if roofline {
            match row.roofline_ms {
                Some(floor) => line.push_str(&format!(" {floor:>11.2} {:>10.1}", row.ms / floor)),
                None => line.push_str(&format!(" {:>11} {:>10}", "", "")),
            }
        }
        line.push_str("  ");
        line.push_str(&row.adapter);
        lines.push(line);
    }
    lines.join("\n")
}
