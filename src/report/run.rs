//! `summary.json`: one run, whatever its graph: the input, an entry per
//! block (`layers`), and the run as a whole. A one-layer run also has its
//! one entry's layer fields at the top level, as it always had.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{
    BeforeFolding, InputSummary, LayerEntry, LayerSummary, MapSummary, MapsModeSummary,
    OutputSummary, RanOn,
};
use crate::engine::{EngineInfo, PlannedTimings};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::layer::ParameterCount;
use crate::model::load::WeightsOrigin;
use crate::output::write_bytes_atomic;
use crate::photo::Orientation;
use crate::preprocess::InputPrep;

/// Everything `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The input that was read.
    pub input: InputSummary,
    /// The stack as given to `--layers` (none for a one-layer run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// A one-layer run's layer, at the top level as before stacks: the
    /// same values as its one entry of `layers`.
    #[serde(flatten)]
    pub one_layer: Option<OneLayer>,
    /// Each block of the graph (a conv and the items after it), top to
    /// bottom: one entry for a one-layer run.
    pub layers: Vec<LayerEntry>,
    /// What a person should know about the run that is no error (left
    /// out when there is nothing).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The parameters of every conv together.
    pub parameters: ParameterCount,
    /// `(3·5·5 + 1)·32 = 2432` for one layer, `2432 + 18496 = 20928` for
    /// several.
    pub parameter_formula: String,
    /// Bands of output rows the work was split into.
    pub bands: u32,
    /// What ran the graph, and how fast.
    #[serde(flatten)]
    pub ran: RanOn,
    /// Files written, relative to the output directory.
    pub files: Vec<String>,
}

/// The fields a one-layer run's summary has at its top level besides
/// the run's own.
#[derive(Clone, Debug, Serialize)]
pub struct OneLayer {
    /// The layer's options.
    pub layer: LayerSummary,
    /// Size of each output map.
    pub output: OutputSummary,
    /// Each map's raw range, in filter order.
    pub maps: Vec<MapSummary>,
    /// Where a weights file's numbers came from.
    pub weights_file: Option<WeightsOrigin>,
    /// The counts before a BatchNorm was folded in.
    pub before_folding: Option<BeforeFolding>,
    /// How the maps became pictures, and why.
    pub maps_mode: Option<MapsModeSummary>,
}

/// The facts of a finished run, from which [`Summary::new`] builds the
/// summary.
pub struct RunRecord<'a> {
    /// The input's path as given.
    pub input: &'a Path,
    /// The input `[C, H, W]` as the first conv reads it.
    pub input_shape: [u32; 3],
    /// How a photo was read (none for a tensor).
    pub preprocessing: Option<InputPrep>,
    /// The orientation applied to a photo's stored pixels.
    pub orientation: Orientation,
    /// The `--layers` spec as given (none for a one-layer run).
    pub stack: Option<String>,
    /// The graph that ran.
    pub graph: &'a Graph,
    /// Each block's entry.
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

impl Summary {
    /// The summary of a run; `encode` and `total` are set by
    /// [`Summary::finish`], the page's files added by the caller.
    pub fn new(record: RunRecord<'_>) -> Self {
        let parameters = record.graph.parameters();
        let one_layer = match (&record.stack, record.layers.as_slice()) {
            (None, [entry]) => Some(OneLayer::of(entry)),
            _ => None,
        };
        Summary {
            input: InputSummary::new(
                record.input,
                record.input_shape,
                record.orientation,
                record.preprocessing,
            ),
            stack: record.stack,
            one_layer,
            notes: record.graph.notes.clone(),
            parameter_formula: parameter_formula(&record.layers, parameters.total),
            parameters,
            bands: record.bands,
            ran: RanOn::new(
                record.engine,
                [record.decode, record.weights, record.setup],
                &record.timings,
                record.graph.flops(),
            ),
            files: record
                .layers
                .iter()
                .flat_map(|l| {
                    let folder = PathBuf::from(&l.folder);
                    l.report
                        .files
                        .iter()
                        .map(move |f| folder.join(f).to_string_lossy().into_owned())
                })
                .collect(),
            layers: record.layers,
        }
    }

    /// Sets the encode stage's time and the run's total.
    pub fn finish(&mut self, encode: Duration, total: Duration) {
        self.ran.finish(encode, total);
    }

    /// Writes the summary as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        write_bytes_atomic(path, &json)
    }
}

impl OneLayer {
    /// The top-level fields of a one-layer run, from its one entry.
    fn of(entry: &LayerEntry) -> Self {
        let report = &entry.report;
        OneLayer {
            layer: report.layer.clone(),
            output: report.output.clone(),
            maps: report.maps.clone(),
            weights_file: report.weights_file.clone(),
            before_folding: report.before_folding.clone(),
            maps_mode: report.maps_mode.clone(),
        }
    }
}

/// One layer's own formula, `(3·5·5 + 1)·32 = 2432`; several layers'
/// counts added up, `2432 + 18496 = 20928`.
fn parameter_formula(layers: &[LayerEntry], total: u64) -> String {
    match layers {
        [one] => one.report.parameter_formula.clone(),
        _ => {
            let counts: Vec<String> = layers
                .iter()
                .map(|l| l.report.parameters.total.to_string())
                .collect();
            format!("{} = {total}", counts.join(" + "))
        }
    }
}
