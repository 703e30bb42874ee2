//! What a stack run reports: `summary.json` with a `layers` entry per conv
//! (one layer's summary plus the items it includes), the terminal table
//! and the page that shows the stack top to bottom.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{InputSummary, Summary, Timings, ms};
use crate::engine::{EngineInfo, PlannedTimings};
use crate::error::Result;
use crate::gpu::AdapterSummary;
use crate::graph::{Block, Graph};
use crate::layer::ParameterCount;
use crate::photo::Orientation;
use crate::preprocess::InputPrep;
use crate::render::html::escape;

/// One conv of the stack in `summary.json`: the same fields as one
/// layer's summary, plus where it sits in the stack.
#[derive(Clone, Debug, Serialize)]
pub struct LayerEntry {
    /// The layer's name: `conv1`, … or the model's.
    pub name: String,
    /// Its folder inside the output directory.
    pub folder: String,
    /// The items its maps include, as written: `["32x5", "relu", "maxpool2"]`.
    pub items: Vec<String>,
    /// Its input `[C, H, W]`.
    pub input_shape: [u32; 3],
    /// The maps its folder holds, `[K, OH, OW]`, after all its items.
    pub output_shape: [u32; 3],
    /// The layer's summary; its `output` is the conv's own output, before
    /// the items after it. Its times are its own steps' (upload, compute,
    /// readback, store) and the writing of its folder (encode); on a GPU
    /// that keeps the maps between layers, the first layer's hold the
    /// whole band's.
    #[serde(flatten)]
    pub summary: Summary,
}

impl LayerEntry {
    /// The entry of group `group` of `stack`, described by `summary`.
    pub fn new(info: &Block, stack: &Graph, group: usize, summary: Summary) -> Self {
        LayerEntry {
            name: info.name.clone(),
            folder: info.folder.clone(),
            items: info.items.clone(),
            input_shape: stack.block_input(group),
            output_shape: stack.block_output(group),
            summary,
        }
    }
}

/// Everything a stack run's `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct StackSummary {
    /// The input that was read.
    pub input: InputSummary,
    /// The stack as given to `--layers`.
    pub stack: String,
    /// Each conv and the items after it, top to bottom.
    pub layers: Vec<LayerEntry>,
    /// The parameters of every conv together.
    pub parameters: ParameterCount,
    /// `2432 + 18496 = 20928`.
    pub parameter_formula: String,
    /// Bands of the last layer's rows the work was split into.
    pub bands: u32,
    /// "gpu" or "cpu".
    pub backend: String,
    /// The shader that ran the convs ("fast", "direct"), or "cpu".
    pub shader: String,
    /// The GPU adapter, when the GPU ran the stack.
    pub adapter: Option<AdapterSummary>,
    /// Where a band's maps go between layers: "gpu" (they stay in GPU
    /// memory) or "host" (read back and uploaded again; the CPU).
    pub between_layers: String,
    /// Wall time of each stage of the whole stack, in milliseconds.
    pub timings_ms: Timings,
    /// The GPU's timestamps of the compute passes, in milliseconds, where
    /// the adapter has them.
    pub gpu_compute_ms: Option<f64>,
    /// Every conv's floating-point operations / compute time, in GFLOP/s.
    pub gflops: f64,
    /// Files written, relative to the output directory.
    pub files: Vec<String>,
}

/// The facts of a finished stack run, from which [`StackSummary::new`]
/// builds the summary.
pub struct StackRecord<'a> {
    /// The input's path as given.
    pub input: &'a Path,
    /// The input `[C, H, W]` as the first conv reads it.
    pub input_shape: [u32; 3],
    /// How a photo was read (none for a tensor).
    pub preprocessing: Option<InputPrep>,
    /// The orientation applied to a photo's stored pixels.
    pub orientation: Orientation,
    /// The spec as given.
    pub spec: String,
    /// The stack.
    pub stack: &'a Graph,
    /// Each conv's entry.
    pub layers: Vec<LayerEntry>,
    /// Bands of the run.
    pub bands: u32,
    /// What ran it.
    pub engine: EngineInfo,
    /// The engine's and the store's times, summed over the bands.
    pub timings: PlannedTimings,
    /// Reading and decoding the input.
    pub decode: Duration,
    /// Resolving every conv and filling its parameters.
    pub weights: Duration,
    /// Making the engine (the first run only).
    pub setup: Duration,
}

impl StackSummary {
    /// The summary of a stack run; `encode` and `total` are set by
    /// [`StackSummary::finish`].
    pub fn new(record: StackRecord<'_>) -> Self {
        let [channels, height, width] = record.input_shape;
        let run = &record.timings.run;
        let compute = record.timings.compute();
        let counts: Vec<String> = record
            .layers
            .iter()
            .map(|l| l.summary.parameters.total.to_string())
            .collect();
        let parameters = record.stack.parameters();
        StackSummary {
            input: InputSummary {
                path: record.input.to_path_buf(),
                width,
                height,
                channels,
                orientation: record.orientation,
                preprocessing: record.preprocessing,
            },
            stack: record.spec,
            parameter_formula: format!("{} = {}", counts.join(" + "), parameters.total),
            parameters,
            bands: record.bands,
            backend: record.engine.backend.name().to_string(),
            shader: record.engine.shader_name().to_string(),
            adapter: record.engine.adapter,
            between_layers: record.engine.between_layers.name().to_string(),
            timings_ms: Timings::new(
                [record.decode, record.weights, record.setup],
                &record.timings,
            ),
            gpu_compute_ms: run.gpu_compute.map(ms),
            gflops: if compute.is_zero() {
                0.0
            } else {
                record.stack.flops() / compute.as_secs_f64() / 1e9
            },
            files: record
                .layers
                .iter()
                .flat_map(|l| l.summary.files.iter().map(|f| format!("{}/{f}", l.folder)))
                .collect(),
            layers: record.layers,
        }
    }

    /// Sets the encode stage's time and the run's total.
    pub fn finish(&mut self, encode: Duration, total: Duration) {
        self.timings_ms.encode = ms(encode);
        self.timings_ms.total = ms(total);
    }

    /// Writes the summary as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| crate::Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        crate::output::write_bytes_atomic(path, &json)
    }

    /// The terminal summary: the input, a table with a row per layer
    /// (name, items, output shape, parameters) and the total, then the
    /// backend and times.
    pub fn terminal_text(&self, out_dir: &Path) -> String {
        let header = ["layer", "items", "output shape", "parameters", "compute ms"];
        let rows: Vec<[String; 5]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    l.items.join(","),
                    shape(l.output_shape),
                    grouped(l.summary.parameters.total),
                    format!("{:.0}", l.summary.timings_ms.compute),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|column| {
                rows.iter()
                    .map(|r| r[column].chars().count())
                    .chain([header[column].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: [&str; 5]| {
            let text: Vec<String> = cells
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(column, (cell, &width))| match column {
                    0..=2 => format!("{cell:<width$}"),
                    _ => format!("{cell:>width$}"),
                })
                .collect();
            format!("  {}", text.join("  ")).trim_end().to_string()
        };
        let rule = format!("  {}", "─".repeat(widths.iter().sum::<usize>() + 8));
        let mut text = vec![
            format!("input       {}", input_line(&self.input)),
            String::new(),
            line(header),
            rule.clone(),
        ];
        text.extend(
            rows.iter()
                .map(|r| line([&r[0], &r[1], &r[2], &r[3], &r[4]])),
        );
        text.push(rule);
        let total_compute = format!("{:.0}", self.timings_ms.compute);
        text.push(line([
            "total",
            "",
            "",
            &grouped(self.parameters.total),
            &total_compute,
        ]));
        text.push(format!("  parameters: {}", self.parameter_formula));
        text.push(String::new());
        let adapter = match &self.adapter {
            Some(a) => format!("{} ({}, {})", a.name, a.backend, a.device_type),
            None => "none: the CPU reference ran the stack".to_string(),
        };
        text.push(format!(
            "backend     {} ({} shader, maps kept on the {} between layers): {adapter}",
            self.backend, self.shader, self.between_layers
        ));
        text.push(format!("output      {}", out_dir.display()));
        let t = &self.timings_ms;
        text.push(format!(
            "time (ms)   decode {:.0}, setup {:.0}, compute {:.0}, store {:.0}, encode {:.0}, total {:.0} ({} bands, {:.2} GFLOP/s)",
            t.decode, t.setup, t.compute, t.store, t.encode, t.total, self.bands, self.gflops
        ));
        text.join("\n")
    }
}

/// `photo.png (640×480, 3 channels)`.
fn input_line(input: &InputSummary) -> String {
    format!(
        "{} ({}×{}, {} channels)",
        input.path.display(),
        input.width,
        input.height,
        input.channels
    )
}

/// `[32, 238, 318]`.
fn shape(shape: [u32; 3]) -> String {
    format!("[{}, {}, {}]", shape[0], shape[1], shape[2])
}

/// `18,496`.
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The stack's page: the input, then each layer top to bottom with its
/// parameter line, shapes, grid and filters, then the total.
pub fn stack_html(summary: &StackSummary) -> String {
    let mut html = String::new();
    let title = format!("convmaps: {}", summary.input.path.display());
    html.push_str(&format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    ));
    html.push_str(&format!(
        "<h1>{}</h1>\n<p class=\"stack\">--layers {}</p>\n\
         <section class=\"layer\"><h2>input</h2><p>{} [{}, {}, {}]</p>\
         <img src=\"input.png\" alt=\"the input\"></section>\n",
        escape(&title),
        escape(&summary.stack),
        escape(&summary.input.path.display().to_string()),
        summary.input.channels,
        summary.input.height,
        summary.input.width
    ));
    for (index, layer) in summary.layers.iter().enumerate() {
        let folder = PathBuf::from(&layer.folder);
        let url = |file: &str| {
            escape(&crate::render::html::url_path(
                &folder.join(file).to_string_lossy(),
            ))
        };
        let arrow = if index == 0 {
            format!("↓ the input's {} channels", layer.input_shape[0])
        } else {
            format!(
                "↓ each of the {} maps is a channel of the next layer",
                layer.input_shape[0]
            )
        };
        html.push_str(&format!("<div class=\"arrow\">{arrow}</div>\n"));
        html.push_str(&format!(
            "<section class=\"layer\"><h2>{}</h2>\
             <p class=\"items\">{}</p>\
             <p class=\"params\">{} parameters</p>\
             <p>input {} → output {}</p>\
             <div class=\"pictures\"><figure><img src=\"{}\" alt=\"feature maps of {}\">\
             <figcaption>the {} maps</figcaption></figure>\
             <figure><img src=\"{}\" alt=\"filters of {}\"><figcaption>its filters</figcaption></figure></div>\
             </section>\n",
            escape(&layer.name),
            escape(&layer.items.join(" → ")),
            escape(&layer.summary.parameter_formula),
            shape(layer.input_shape),
            shape(layer.output_shape),
            url("grid.png"),
            escape(&layer.name),
            layer.output_shape[0],
            url("filters.png"),
            escape(&layer.name),
        ));
    }
    html.push_str(&format!(
        "<section class=\"total\"><h2>the whole stack</h2><p class=\"params\">{} parameters</p>\
         <p>{} on {} ({} shader), {} bands, {:.0} ms</p></section>\n</body></html>\n",
        escape(&summary.parameter_formula),
        escape(&summary.backend),
        escape(
            &summary
                .adapter
                .as_ref()
                .map_or("the CPU".to_string(), |a| a.name.clone())
        ),
        escape(&summary.shader),
        summary.bands,
        summary.timings_ms.total
    ));
    html
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}\
.layer,.total{border:1px solid #ccc;border-radius:.5rem;padding:1rem;margin:.5rem 0}\
.arrow{text-align:center;color:#666;margin:.25rem}\
.params{font-size:1.2rem;font-weight:600}.items,.stack{font-family:monospace}\
.pictures{display:flex;gap:1rem;flex-wrap:wrap;align-items:flex-start}\
figure{margin:0}img{max-width:100%;image-rendering:pixelated}";
