//! The report of a whole-network run (`--model`): `summary.json`'s fields
//! and the terminal's text.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::gpu::AdapterSummary;
use crate::net::Layout;
use crate::net::field::Field;
use crate::net::head::TopClass;
use crate::net::input::ResizeRecord;
use crate::photo::Orientation;
use crate::preprocess::InputPrep;

/// `summary.json` of a whole-network run.
#[derive(Clone, Debug, Serialize)]
pub struct ModelSummary {
    /// The photo and what was done to it.
    pub input: ModelRunInput,
    /// The model.
    pub model: ModelFacts,
    /// Every node that ran, in the order it ran.
    pub nodes: Vec<NodeReport>,
    /// The graph's outputs.
    pub outputs: Vec<OutputReport>,
    /// The class activation map of the top class, where it applies.
    pub cam: Option<CamReport>,
    /// The class activation maps of each of the top classes, most likely
    /// first.
    pub cams: Vec<CamReport>,
    /// "gpu" or "cpu".
    pub backend: &'static str,
    /// The conv shader ("fast", "direct") or "cpu".
    pub shader: &'static str,
    /// The GPU adapter, when the GPU ran.
    pub adapter: Option<AdapterSummary>,
    /// The whole forward pass on the GPU's clock (its timestamps), in
    /// milliseconds, where the GPU has them.
    pub gpu_compute_ms: Option<f64>,
    /// Wall time of each stage, in milliseconds.
    pub timings_ms: ModelTimings,
    /// With `--verify`: the worst difference of any node from its CPU twin,
    /// relative to that tensor's largest |value|.
    pub verify: Option<f64>,
    /// The files written, relative to the output directory.
    pub files: Vec<String>,
}

/// The photo of a whole-network run.
#[derive(Clone, Debug, Serialize)]
pub struct ModelRunInput {
    /// The photo (or `.npy` tensor).
    pub path: PathBuf,
    /// As the file stores it: `[width, height]`.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// The EXIF orientation applied.
    pub orientation: Orientation,
    /// What was done to its size.
    pub resize: ResizeRecord,
    /// How its values were read (channel order, scale, normalisation);
    /// none for a tensor read as it is.
    pub preprocessing: Option<InputPrep>,
}

/// What the model is.
#[derive(Clone, Debug, Serialize)]
pub struct ModelFacts {
    /// Its file.
    pub path: PathBuf,
    /// Its input's name.
    pub input_name: String,
    /// `NCHW` or `NHWC`.
    pub layout: Layout,
    /// Its input's shape in this run.
    pub input_shape: Vec<usize>,
    /// The size it fixes, `[height, width]`, if any.
    pub fixed_size: Option<[u32; 2]>,
    /// Nodes that ran.
    pub nodes: usize,
    /// Nodes folded away at load (constant and shape subgraphs).
    pub folded: usize,
    /// Nodes fused into the conv before them (a BatchNormalization, an
    /// activation) because no one looks at the conv's own output.
    pub fused: usize,
    /// Learned values of every node.
    pub parameters: u64,
    /// Floating-point operations of the whole forward pass.
    pub flops: u64,
    /// Bytes the forward pass holds in memory at once, as estimated before
    /// it ran: `memory`'s total.
    pub memory_bytes: u64,
    /// Those bytes by kind: weights, values, the conv pipelines' packed
    /// copies (scratch) and the copies read back.
    pub memory: crate::net::memory::NetMemory,
}

/// One node that ran.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Its name in the model.
    pub name: String,
    /// Its ONNX op.
    pub op: String,
    /// The values it reads (weights included).
    pub inputs: Vec<String>,
    /// The value it writes.
    pub outputs: Vec<String>,
    /// Its output's shape.
    pub shape: Vec<usize>,
    /// Learned values it holds.
    pub parameters: u64,
    /// Floating-point operations.
    pub flops: u64,
    /// Its time in milliseconds, where measured per node (the CPU twins).
    pub ms: Option<f64>,
    /// The folder its maps were written to, if any.
    pub folder: Option<String>,
    /// The model's nodes fused into this one, by name.
    pub fused: Vec<String>,
    /// Its output's receptive field on the model's input, where it has one.
    pub field: Option<Field>,
    /// With `--verify`: its difference from its CPU twin, relative to the
    /// largest |value| of its output.
    pub verify: Option<f64>,
}

/// One output of the graph.
#[derive(Clone, Debug, Serialize)]
pub struct OutputReport {
    /// Its name.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// With `--raw`: the `.npy` file of its values.
    pub npy: Option<String>,
    /// For a vector of class scores: the top 5.
    pub top: Vec<TopClass>,
}

/// The class activation map written.
#[derive(Clone, Debug, Serialize)]
pub struct CamReport {
    /// The picture over the photo.
    pub file: String,
    /// With `--raw`: the map `[h, w]` at the maps' own resolution.
    pub npy: Option<String>,
    /// The class it is of (the top class).
    pub class: usize,
    /// The class's label.
    pub label: String,
    /// The pooled maps it is made from.
    pub maps: String,
    /// Their `[h, w]`.
    pub size: [usize; 2],
}

/// Wall time of each stage, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ModelTimings {
    /// Decoding and resizing the photo.
    pub decode: f64,
    /// Loading the model for this size.
    pub load: f64,
    /// The forward pass: upload, compute and readback.
    pub run: f64,
    /// Writing the maps, pictures and page.
    pub write: f64,
    /// All of it.
    pub total: f64,
}

impl ModelSummary {
    /// The terminal's text, files named under `out_dir`.
    pub fn terminal_text(&self, out_dir: &Path) -> String {
        let mut text = String::new();
        let input = &self.input;
        let resize = match input.resize.mode {
            "none" => String::new(),
            mode => format!(", {mode} to {}×{}", input.resize.to[0], input.resize.to[1]),
        };
        let _ = writeln!(
            text,
            "input       {} ({}×{}{resize})",
            input.path.display(),
            input.width,
            input.height
        );
        let model = &self.model;
        let _ = writeln!(
            text,
            "model       {} ({} nodes ran, {} folded at load, {} fused; {} parameters, {}, {:.1} MB in memory)",
            model.path.display(),
            model.nodes,
            model.folded,
            model.fused,
            model.parameters,
            flops_text(model.flops),
            model.memory_bytes as f64 / 1e6
        );
        self.write_outputs(&mut text);
        let folders = self.nodes.iter().filter(|n| n.folder.is_some()).count();
        let _ = writeln!(
            text,
            "maps        {folders} nodes' maps in {}",
            out_dir.display()
        );
        if let Some(cam) = &self.cam {
            let _ = writeln!(
                text,
                "cam         {} ({}, from {} at {}×{})",
                cam.file, cam.label, cam.maps, cam.size[1], cam.size[0]
            );
        }
        let adapter = self.adapter.as_ref().map_or("CPU twins".to_string(), |a| {
            format!("{} ({})", a.name, a.backend)
        });
        let _ = writeln!(
            text,
            "backend     {} ({} shader): {adapter}",
            self.backend, self.shader
        );
        if let Some(worst) = self.verify {
            let _ = writeln!(
                text,
                "verify      every node within {worst:.1e} of its CPU twin"
            );
        }
        let t = &self.timings_ms;
        let gpu = self.gpu_compute_ms.map_or(String::new(), |ms| {
            format!(" (forward pass {ms:.1} ms on the GPU's clock)")
        });
        let _ = write!(
            text,
            "time (ms)   decode {:.0}, load {:.0}, run {:.0}, write {:.0}, total {:.0}{gpu}",
            t.decode, t.load, t.run, t.write, t.total
        );
        text
    }

    /// The lines of the outputs: each one's shape, a classifier's top 5.
    fn write_outputs(&self, text: &mut String) {
        for output in self.outputs.iter().filter(|o| o.top.is_empty()) {
            let saved = output
                .npy
                .as_ref()
                .map_or(String::new(), |f| format!(" in {f}"));
            let _ = writeln!(
                text,
                "output      {} {:?}{saved}",
                output.name, output.shape
            );
        }
        for output in &self.outputs {
            for (rank, class) in output.top.iter().enumerate() {
                let head = if rank == 0 { "top 5" } else { "" };
                let _ = writeln!(
                    text,
                    "{head:<11} {:>5.1}%  {} ({})",
                    class.probability * 100.0,
                    class.label,
                    class.index
                );
            }
        }
    }

    /// The per-node table `--profile` prints.
    pub fn profile_text(&self) -> String {
        let mut text = format!(
            "{:<40} {:<18} {:>18} {:>10} {:>12} {:>9}\n",
            "node", "op", "shape", "params", "MFLOP", "ms"
        );
        for node in &self.nodes {
            let shape: Vec<String> = node.shape.iter().map(usize::to_string).collect();
            let ms = node.ms.map_or("-".to_string(), |ms| format!("{ms:.2}"));
            let _ = writeln!(
                text,
                "{:<40} {:<18} {:>18} {:>10} {:>12.2} {:>9}",
                truncate(&node.name, 40),
                node.op,
                shape.join("×"),
                node.parameters,
                node.flops as f64 / 1e6,
                ms
            );
        }
        text
    }
}

/// Floating-point operations as `3.64 GFLOP` or `12.9 MFLOP`.
pub fn flops_text(flops: u64) -> String {
    match flops as f64 {
        f if f >= 1e8 => format!("{:.2} GFLOP", f / 1e9),
        f => format!("{:.1} MFLOP", f / 1e6),
    }
}

/// `text` cut to `width` characters, with `…` where it was cut.
fn truncate(text: &str, width: usize) -> String {
    match text.chars().count() > width {
        true => text.chars().take(width - 1).chain(['…']).collect(),
        false => text.to_string(),
    }
}
