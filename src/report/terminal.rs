//! The terminal text of a run: a one-layer run's details, or a table with
//! a row per layer of a stack and the total, from the one [`Summary`].

use std::path::Path;

use super::{InputSummary, LayerReport, Summary};
use crate::layer::Activation;
use crate::photo::Orientation;
use crate::preprocess::InputPrep;

impl Summary {
    /// What the terminal shows after a run: for one layer its details
    /// (input, layer, weights, parameters, output, backend, pictures,
    /// times); for a stack the input, a row per layer (name, items, output
    /// shape, parameters, compute time), the total, the backend and times.
    pub fn terminal_text(&self, out_dir: &Path) -> String {
        match (&self.stack, self.layers.as_slice()) {
            (None, [one]) => one.report.detail_text(self, out_dir),
            _ => self.table_text(out_dir),
        }
    }

    /// A stack's terminal text: the input, a table with a row per layer
    /// (name, items, output shape, parameters) and the total, then the
    /// backend and times.
    fn table_text(&self, out_dir: &Path) -> String {
        let header = ["layer", "items", "output shape", "parameters", "compute ms"];
        let rows: Vec<[String; 5]> = self
            .layers
            .iter()
            .map(|l| {
                [
                    l.name.clone(),
                    l.items.join(","),
                    shape(l.output_shape),
                    grouped(l.report.parameters.total),
                    format!("{:.0}", l.report.ran.timings_ms.compute),
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
        let mut text = vec![format!("input       {}", input_line(&self.input))];
        text.extend(self.notes.iter().map(|note| format!("note        {note}")));
        text.extend([String::new(), line(header), rule.clone()]);
        text.extend(
            rows.iter()
                .map(|r| line([&r[0], &r[1], &r[2], &r[3], &r[4]])),
        );
        text.push(rule);
        let total_compute = format!("{:.0}", self.ran.timings_ms.compute);
        text.push(line([
            "total",
            "",
            "",
            &grouped(self.parameters.total),
            &total_compute,
        ]));
        text.push(format!("  parameters: {}", self.parameter_formula));
        text.push(String::new());
        let adapter = match &self.ran.adapter {
            Some(a) => format!("{} ({}, {})", a.name, a.backend, a.device_type),
            None => "none: the CPU reference ran the stack".to_string(),
        };
        text.push(format!(
            "backend     {} ({} shader, maps kept on the {} between layers): {adapter}",
            self.ran.backend.name(),
            self.ran.shader,
            self.ran.between_layers.name()
        ));
        text.push(format!("output      {}", out_dir.display()));
        let t = &self.ran.timings_ms;
        text.push(format!(
            "time (ms)   decode {:.0}, setup {:.0}, compute {:.0}, store {:.0}, encode {:.0}, total {:.0} ({} bands, {:.2} GFLOP/s)",
            t.decode, t.setup, t.compute, t.store, t.encode, t.total, self.bands, self.ran.gflops
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

impl LayerReport {
    /// The terminal summary of a one-layer run: a small aligned table of
    /// the layer's details.
    fn detail_text(&self, run: &Summary, out_dir: &Path) -> String {
        let p = &self.parameters;
        let adapter = match &self.ran.adapter {
            Some(a) => format!("{} ({}, {})", a.name, a.backend, a.device_type),
            None => "none: the CPU reference ran the layer".to_string(),
        };
        let biases = if p.biases == 0 {
            "no biases".to_string()
        } else {
            format!("{} biases", p.biases)
        };
        let (stage_names, stage_values) = stage_lines(run);
        let pictures = self.maps_mode.as_ref().map(|mode| {
            format!(
                "{}: {} (statistics on the {}, pixels on the {})",
                mode.mode, mode.why, mode.statistics, mode.pixels
            )
        });
        let mut rows = vec![
            ("input", self.input_line()),
            ("layer", self.layer_line()),
            ("weights", self.weights_line()),
            (
                "parameters",
                format!(
                    "{} ({} weights + {biases})",
                    self.parameter_formula, p.weights
                ),
            ),
            (
                "output",
                format!(
                    "{} maps of {}×{} in {}",
                    self.output.maps,
                    self.output.width,
                    self.output.height,
                    out_dir.display()
                ),
            ),
            (
                "backend",
                format!(
                    "{} ({} shader): {adapter}",
                    self.ran.backend.name(),
                    self.ran.shader
                ),
            ),
        ];
        rows.extend(pictures.map(|line| ("pictures", line)));
        rows.extend([
            ("time (ms)", stage_names),
            ("", stage_values),
            (
                "throughput",
                format!("{:.2} GFLOP/s in compute", run.ran.gflops),
            ),
        ]);
        rows.iter()
            .map(|(key, value)| format!("{key:<11} {value}").trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Where the weights came from; for a model file, which conv, from what
    /// dtype, and the counts before a BatchNorm was folded in.
    fn weights_line(&self) -> String {
        let source = &self.layer.weights_source;
        let Some(origin) = &self.weights_file else {
            return source.clone();
        };
        let layer = origin
            .layer
            .as_deref()
            .map_or(String::new(), |name| format!("conv {name:?}, "));
        let mut line = format!(
            "{source} ({layer}{}, {} read as f32)",
            origin.format,
            origin.dtype.name()
        );
        if let Some(before) = &self.before_folding {
            line.push_str(&format!(
                "\n{:<11} BatchNorm folded in: the conv alone {}; {}",
                "", before.conv, before.batch_norm
            ));
        }
        line
    }

    /// `photo.jpg (4032×3024, 3 channels, turned upright: rotate 90° clockwise)`.
    fn input_line(&self) -> String {
        let input = &self.input;
        let upright = match input.orientation {
            Orientation::NoTransforms => String::new(),
            turned => format!(", turned upright: {}", turned.describe()),
        };
        let read = input
            .preprocessing
            .as_ref()
            .and_then(InputPrep::describe)
            .map_or(String::new(), |read| format!(", read as {read}"));
        format!(
            "{} ({}×{}, {} channels{upright}{read})",
            input.path.display(),
            input.width,
            input.height,
            input.channels
        )
    }

    /// `32 filters of 5×5, stride 1, padding 0, dilation 1, groups 1`.
    fn layer_line(&self) -> String {
        let l = &self.layer.spec;
        format!(
            "{} filters of {}×{}, stride {}, padding {}, dilation {}, groups {}{}",
            l.filters,
            l.kernel_height,
            l.kernel_width,
            l.stride,
            l.padding,
            l.dilation,
            l.groups,
            if l.activation == Activation::Relu {
                ", then ReLU"
            } else {
                ""
            }
        )
    }
}

/// The stage names and their milliseconds, aligned in columns.
fn stage_lines(run: &Summary) -> (String, String) {
    let t = &run.ran.timings_ms;
    let times = [
        t.decode, t.setup, t.upload, t.compute, t.readback, t.store, t.encode, t.total,
    ];
    (
        STAGES.iter().map(|name| format!("{name:>9}")).collect(),
        times.iter().map(|ms| format!("{ms:>9.0}")).collect(),
    )
}

/// The stages of [`super::Timings`], in the order the terminal shows them.
const STAGES: [&str; 8] = [
    "decode", "setup", "upload", "compute", "readback", "store", "encode", "total",
];
