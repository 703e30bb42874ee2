//! The plan of a run: how a graph's output is cut into bands that fit the
//! engine. A graph of one conv written whole is cut into bands of output
//! rows × chunks of filters ([`LayerPlan`]); a chain into bands of its last
//! output whose halos grow through every layer ([`ChainPlan`]). The plan
//! is chosen from the graph alone, before anything is written.

mod chain;
mod layer;

pub use chain::{BandOp, BandStep, ChainPlan, PlannedBand, StepRows, band_steps};
pub use layer::LayerPlan;

use super::Graph;
use crate::error::Result;

/// Default bytes for one band's output (and for its input): 64 MiB.
pub const DEFAULT_BAND_BYTES: u64 = 64 << 20;

/// How a graph runs band by band.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// One conv written to the output directory itself (a one-layer run),
    /// computed whole: any maps mode, filters split into chunks when one
    /// row of all of them is too much.
    Layer(LayerPlan),
    /// A chain, every block's maps handed over band by band.
    Chain(ChainPlan),
}

impl Plan {
    /// The plan of `graph` in bands of at most `budget` bytes of f32.
    pub fn new(graph: &Graph, budget: u64) -> Result<Plan> {
        if graph.is_one_layer() {
            let [_, height, width] = graph.input();
            let spec = &graph.layer(0).spec;
            return LayerPlan::new(spec, height, width, budget).map(Plan::Layer);
        }
        ChainPlan::new(graph, budget).map(Plan::Chain)
    }
}
