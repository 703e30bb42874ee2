//! A chain run band by band. A band of the last step's output rows needs
//! a band of every earlier step's output: the rows its windows read, a
//! halo that grows layer by layer. The plan walks back from each output
//! band to the input rows it reads; an engine runs the band's steps one
//! after the other on its own memory (`engine::run_chain`).
//!
//! Every block's maps are handed over too: each band's rows of a block
//! that no earlier band handed over, so that together the bands give each
//! block's whole output exactly once, and equal an untiled run.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::graph::{Graph, Op};
use crate::layer::{Layer, LayerSpec};
use crate::pool::PoolSpec;

/// What a step does to one band.
#[derive(Clone, Debug, PartialEq)]
pub enum BandOp {
    /// The conv, with the band's own top and bottom padding: the image's
    /// zero padding where the band reaches the image's edge, else none.
    Conv(Layer),
    /// `max(x, 0)`, in place.
    Relu,
    /// Max pooling.
    MaxPool(PoolSpec),
}

/// One step of one band.
#[derive(Clone, Debug, PartialEq)]
pub struct BandStep {
    /// Rows of the step's input band to keep, in the band's own row
    /// numbers, when it holds more than the step reads (a block's output
    /// kept whole for its folder); `None` keeps all.
    pub crop: Option<Range<u32>>,
    /// What the step does.
    pub op: BandOp,
    /// Whether the step's output is handed back (a block's last step).
    pub emit: bool,
}

/// Rows of one step in one band.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRows {
    /// The output rows computed.
    pub output: Range<u32>,
    /// The input rows they read, clipped to the input (the rest is padding).
    pub reads: Range<u32>,
}

/// One band of the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedBand {
    /// Per step, in order.
    pub steps: Vec<StepRows>,
    /// Per block: the rows of its output handed over, which no earlier
    /// band handed over.
    pub emits: Vec<Range<u32>>,
}

/// The bands of a chain's run.
#[derive(Clone, Debug, PartialEq)]
pub struct ChainPlan {
    /// The bands, top to bottom.
    pub bands: Vec<PlannedBand>,
}

impl ChainPlan {
    /// Splits the chain's last output into bands of rows, as many rows as
    /// keep every step's input and output of one band within `budget`
    /// bytes of f32. Fails when one output row is already too much.
    pub fn new(graph: &Graph, budget: u64) -> Result<ChainPlan> {
        if !graph.is_chain() {
            return Err(Error::InvalidLayer(
                "only a chain of steps, each reading the one before, runs band by band".into(),
            ));
        }
        let out_height = graph.steps.last().map_or(0, |s| graph.output_of(s)[1]);
        let mut rows = out_height.max(1);
        loop {
            let plan = ChainPlan::with_rows(graph, rows);
            let largest = plan.largest_band_bytes(graph);
            if largest <= budget {
                return Ok(plan);
            }
            if rows == 1 {
                return Err(Error::TooLarge(format!(
                    "one row of the chain's last output needs bands of {largest} bytes \
                     (its halo through every layer), more than the {budget} one band may take; \
                     the photo is too wide for this graph"
                )));
            }
            rows = rows.div_ceil(2);
        }
    }

    /// The plan with `rows` rows of the last output per band.
    fn with_rows(graph: &Graph, rows: u32) -> ChainPlan {
        let last_height = graph.steps.last().map_or(0, |s| graph.output_of(s)[1]);
        let mut written = vec![0u32; graph.blocks.len()];
        let bands = (0..last_height)
            .step_by(rows as usize)
            .map(|start| {
                let end = (start + rows).min(last_height);
                plan_band(graph, start..end, end == last_height, &mut written)
            })
            .collect();
        ChainPlan { bands }
    }

    /// How many bands.
    pub fn band_count(&self) -> usize {
        self.bands.len()
    }

    /// Bytes of the largest input or output of any step of any band.
    fn largest_band_bytes(&self, graph: &Graph) -> u64 {
        let bytes = |shape: [u32; 3], rows: &Range<u32>| {
            4 * shape[0] as u64 * rows.len() as u64 * shape[2] as u64
        };
        self.bands
            .iter()
            .flat_map(|band| {
                band.steps.iter().zip(&graph.steps).map(|(rows, step)| {
                    bytes(graph.input_of(step), &rows.reads)
                        .max(bytes(graph.output_of(step), &rows.output))
                })
            })
            .max()
            .unwrap_or(0)
    }
}

/// The rows every step computes for rows `last` of the last output: walked
/// back from the last step, each step's output is what the next reads,
/// widened at a block's last step to the rows of its output not handed
/// over yet (to the end of the output in the last band).
fn plan_band(graph: &Graph, last: Range<u32>, is_last: bool, written: &mut [u32]) -> PlannedBand {
    let mut steps = vec![
        StepRows {
            output: 0..0,
            reads: 0..0
        };
        graph.steps.len()
    ];
    let mut emits = vec![0..0; graph.blocks.len()];
    let mut needed = last;
    for (index, step) in graph.steps.iter().enumerate().rev() {
        let block = graph.block_written_by(index);
        let mut output = needed.clone();
        if let Some(block) = block {
            let from = written[block];
            if output.end >= from {
                output.start = output.start.min(from);
            }
            if is_last {
                output.end = graph.output_of(step)[1];
            }
            emits[block] = from.max(output.start)..output.end.max(from);
            written[block] = written[block].max(output.end);
        }
        if let Op::Conv(layer) = &step.op {
            output = reading_some_rows(&layer.spec, output, graph.input_of(step)[1]);
        }
        let reads = reads(&step.op, &output, graph.input_of(step)[1]);
        steps[index] = StepRows {
            output,
            reads: reads.clone(),
        };
        needed = reads;
    }
    PlannedBand { steps, emits }
}

/// `output` widened, when all its rows lie in the zero padding (a padding
/// larger than the kernel), to the nearest row whose window reads the
/// input, so that no band of a conv reads an empty input.
fn reading_some_rows(spec: &LayerSpec, output: Range<u32>, in_height: u32) -> Range<u32> {
    let (stride, top) = (spec.stride.max(1) as i64, spec.padding.top as i64);
    let kernel = spec.dilated_kernel().0 as i64;
    let (rows, _) = spec.band(output.clone());
    if output.is_empty() || (rows.end > 0 && rows.start < in_height as i64) {
        return output;
    }
    // The first and last rows whose windows reach the input.
    let first = if top >= kernel {
        (top - kernel) / stride + 1
    } else {
        0
    } as u32;
    let last = ((in_height as i64 + top - 1) / stride) as u32;
    output.start.min(last)..output.end.max(first + 1)
}

/// The input rows (clipped to `in_height`) that `op` reads for `output`.
fn reads(op: &Op, output: &Range<u32>, in_height: u32) -> Range<u32> {
    if output.is_empty() {
        return 0..0;
    }
    match op {
        Op::Conv(layer) => {
            let (rows, _) = layer.spec.band(output.clone());
            let clip = |row: i64| row.clamp(0, in_height as i64) as u32;
            clip(rows.start)..clip(rows.end)
        }
        Op::Relu => output.clone(),
        Op::MaxPool(pool) => pool.input_rows(output.clone()),
    }
}

/// The steps of one band: each conv with the band's padding, each input
/// cropped to what its step reads.
pub fn band_steps(graph: &Graph, band: &PlannedBand, image_rows: &Range<u32>) -> Vec<BandStep> {
    let mut held = image_rows.clone();
    graph
        .steps
        .iter()
        .zip(&band.steps)
        .enumerate()
        .map(|(index, (step, rows))| {
            let crop = (rows.reads != held)
                .then(|| rows.reads.start - held.start..rows.reads.end - held.start);
            held = rows.output.clone();
            let op = match &step.op {
                Op::Conv(layer) => {
                    let (wanted, mut spec) = layer.spec.band(rows.output.clone());
                    spec.padding.top = (rows.reads.start as i64 - wanted.start) as u32;
                    spec.padding.bottom = (wanted.end - rows.reads.end as i64) as u32;
                    BandOp::Conv(Layer {
                        spec,
                        ..layer.clone()
                    })
                }
                Op::Relu => BandOp::Relu,
                Op::MaxPool(pool) => BandOp::MaxPool(*pool),
            };
            BandStep {
                crop,
                op,
                emit: graph.block_written_by(index).is_some(),
            }
        })
        .collect()
}
