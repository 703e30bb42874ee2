//! `convmaps layers MODEL`: every conv layer of a model file with its
//! parameter count, as the seed question asks it. Reads names and shapes
//! only; no layer runs.

use std::path::Path;

use super::{ConvRef, FilePadding};
use crate::error::Result;

/// One conv layer of the table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerRow {
    /// The layer's name in the file.
    pub name: String,
    /// `[K, C/G, FH, FW]`.
    pub weight_shape: Vec<usize>,
    /// `[height, width]`, where the file states it (ONNX).
    pub stride: Option<[u32; 2]>,
    /// Padding as the file states it: `top/bottom/left/right`, `same_upper`
    /// or `same_lower` (ONNX).
    pub padding: Option<String>,
    /// `[height, width]`, where the file states it (ONNX).
    pub dilation: Option<[u32; 2]>,
    /// Groups, where the file states them (ONNX).
    pub groups: Option<u32>,
    /// Whether the conv has its own bias.
    pub bias: bool,
    /// The BatchNorm that follows: the ONNX graph's, or in a state dict the
    /// one its names suggest (`conv1` → `bn1`, `features.0` → `features.1`).
    pub batch_norm: Option<String>,
    /// Weights plus biases.
    pub parameters: u64,
    /// The count spelled out: `(3·7·7 + 1)·64 = 9472`, or `3·7·7·64 = 9408`
    /// without bias.
    pub formula: String,
    /// What the graph computes before the conv, where the file has a graph
    /// (ONNX): `` `conv1` → Relu → MaxPool 2×2 stride 2×2 ``, the items a
    /// stack writes between the two convs.
    pub reads: Option<String>,
}

/// Every conv layer of a model file, in the file's order.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LayerTable {
    /// The file's format.
    pub format: String,
    /// The layers.
    pub layers: Vec<LayerRow>,
    /// The convs' parameters together.
    pub total_parameters: u64,
}

/// The table of `path`'s conv layers.
pub fn layer_table(path: &Path) -> Result<LayerTable> {
    let model = super::open(path)?;
    let names = model.tensor_names();
    let layers: Vec<LayerRow> = model.convs().iter().map(|conv| row(conv, &names)).collect();
    Ok(LayerTable {
        format: model.format().to_string(),
        total_parameters: layers
            .iter()
            .fold(0u64, |n, l| n.saturating_add(l.parameters)),
        layers,
    })
}

/// The row of `conv`, whose file has tensors `names`.
fn row(conv: &ConvRef, names: &[String]) -> LayerRow {
    let shape = &conv.weight_shape;
    let bias = conv.bias.is_some();
    let (parameters, formula) = count_and_formula(shape, bias);
    let geometry = conv.geometry.as_ref();
    LayerRow {
        name: conv.name.clone(),
        weight_shape: shape.clone(),
        stride: geometry.map(|g| g.strides),
        padding: geometry.map(|g| match g.padding {
            FilePadding::Explicit(p) => p.to_string(),
            FilePadding::SameUpper => "same_upper".into(),
            FilePadding::SameLower => "same_lower".into(),
        }),
        dilation: geometry.map(|g| g.dilations),
        groups: geometry.map(|g| g.group),
        bias,
        batch_norm: conv
            .batch_norm
            .as_ref()
            .map(|bn| bn.name.clone())
            .or_else(|| batch_norm_by_name(&conv.name, names)),
        parameters,
        formula,
        reads: conv.feed.as_ref().map(|feed| feed.to_string()),
    }
}

/// The BatchNorm a state dict's names suggest follows conv `name`: the
/// last part `convN` becomes `bnN`, or a numbered module `N` becomes `N+1`,
/// when that prefix has a `running_mean`.
pub(crate) fn batch_norm_by_name(name: &str, names: &[String]) -> Option<String> {
    let (parent, last) = match name.rsplit_once('.') {
        Some((parent, last)) => (format!("{parent}."), last),
        None => (String::new(), name),
    };
    let mut candidates = Vec::new();
    if let Some(rest) = last.strip_prefix("conv") {
        candidates.push(format!("{parent}bn{rest}"));
    }
    if let Some(next) = last.parse::<u64>().ok().and_then(|i| i.checked_add(1)) {
        candidates.push(format!("{parent}{next}"));
    }
    candidates
        .into_iter()
        .find(|c| names.contains(&format!("{c}.running_mean")))
}

/// Weights plus biases of a conv whose weight has `shape` `[K, C/G, FH,
/// FW]`, saturating rather than wrapping, and the count spelled out as
/// [`crate::layer::Layer::parameter_formula`] spells it.
pub(crate) fn count_and_formula(shape: &[usize], bias: bool) -> (u64, String) {
    let [filters, channels, height, width] = shape[..] else {
        return (0, format!("{shape:?}: not a 2-D conv weight"));
    };
    let weights = shape.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
    let total = weights.saturating_add(if bias { filters as u64 } else { 0 });
    let per_filter = format!("{channels}·{height}·{width}");
    let formula = if bias {
        format!("({per_filter} + 1)·{filters} = {total}")
    } else {
        format!("{per_filter}·{filters} = {total}")
    };
    (total, formula)
}

/// The table as aligned text, with the total.
pub fn table_text(table: &LayerTable) -> String {
    let header = format!(
        "{:<28} {:<18} {:<8} {:<14} {:<8} {:<6} {:<5} {:<16} parameters",
        "layer", "weight", "stride", "padding", "dilation", "groups", "bias", "batchnorm"
    );
    let reads = table.layers.iter().any(|layer| layer.reads.is_some());
    // The formulas' column, as wide as the widest, then what each conv reads.
    let width = table
        .layers
        .iter()
        .map(|layer| layer.formula.chars().count())
        .fold("parameters".len(), usize::max);
    let mut lines = vec![if reads {
        format!(
            "{header:<w$} reads",
            w = header.len() - "parameters".len() + width
        )
    } else {
        header
    }];
    for layer in &table.layers {
        let pair = |p: Option<[u32; 2]>| p.map_or("-".to_string(), |[a, b]| format!("{a},{b}"));
        let formula = match &layer.reads {
            Some(reads) => format!("{:<width$} {reads}", layer.formula),
            None => layer.formula.clone(),
        };
        lines.push(format!(
            "{:<28} {:<18} {:<8} {:<14} {:<8} {:<6} {:<5} {:<16} {}",
            layer.name,
            format!("{:?}", layer.weight_shape),
            pair(layer.stride),
            layer.padding.as_deref().unwrap_or("-"),
            pair(layer.dilation),
            layer.groups.map_or("-".to_string(), |g| g.to_string()),
            if layer.bias { "yes" } else { "no" },
            layer.batch_norm.as_deref().unwrap_or("-"),
            formula
        ));
    }
    lines.push(format!(
        "{} conv layers ({}), {} parameters",
        table.layers.len(),
        table.format,
        table.total_parameters
    ));
    lines.join("\n")
}
