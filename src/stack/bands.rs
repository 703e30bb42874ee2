//! A stack run band by band. A band of the last step's output rows needs
//! a band of every earlier step's output: the rows its windows read, a
//! halo that grows layer by layer. The plan walks back from each output
//! band to the input rows it reads, and the engine runs the band's steps
//! one after the other on its own memory (a GPU keeps them on the GPU).
//!
//! Every group's maps are handed over too: each band's rows of a group
//! that no earlier band handed over, so that together the bands give each
//! group's whole output exactly once, and equal an untiled run.

use std::ops::Range;
use std::time::Instant;

use super::{Op, Stack};
use crate::cpu;
use crate::engine::{Engine, PlannedTimings, Submitted};
use crate::error::{Error, Result};
use crate::gpu::RunTimings;
use crate::layer::{Layer, LayerSpec};
use crate::pool::PoolSpec;
use crate::tensor::{Bands, Tensor3, TensorView};

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
    /// numbers, when it holds more than the step reads (a group's output
    /// kept whole for its folder); `None` keeps all.
    pub crop: Option<Range<u32>>,
    /// What the step does.
    pub op: BandOp,
    /// Whether the step's output is handed back (a group's last step).
    pub emit: bool,
}

/// Rows of one step in one band.
#[derive(Clone, Debug, PartialEq)]
struct StepRows {
    /// The output rows computed.
    output: Range<u32>,
    /// The input rows they read, clipped to the input (the rest is padding).
    reads: Range<u32>,
}

/// One band of the plan.
#[derive(Clone, Debug, PartialEq)]
struct PlannedBand {
    /// Per step, in order.
    steps: Vec<StepRows>,
    /// Per group: the rows of its output handed over, which no earlier
    /// band handed over.
    emits: Vec<Range<u32>>,
}

/// The bands of a stack run.
#[derive(Clone, Debug, PartialEq)]
pub struct StackPlan {
    bands: Vec<PlannedBand>,
}

impl StackPlan {
    /// Splits the stack's last output into bands of rows, as many rows as
    /// keep every step's input and output of one band within `budget`
    /// bytes of f32. Fails when one output row is already too much.
    pub fn new(stack: &Stack, budget: u64) -> Result<StackPlan> {
        let out_height = stack.steps.last().map_or(0, |s| s.output[1]);
        let mut rows = out_height.max(1);
        loop {
            let plan = StackPlan::with_rows(stack, rows);
            let largest = plan.largest_band_bytes(stack);
            if largest <= budget {
                return Ok(plan);
            }
            if rows == 1 {
                return Err(Error::TooLarge(format!(
                    "one row of the stack's last output needs bands of {largest} bytes \
                     (its halo through every layer), more than the {budget} one band may take; \
                     the photo is too wide for this stack"
                )));
            }
            rows = rows.div_ceil(2);
        }
    }

    /// The plan with `rows` rows of the last output per band.
    fn with_rows(stack: &Stack, rows: u32) -> StackPlan {
        let last_height = stack.steps.last().map_or(0, |s| s.output[1]);
        let mut written = vec![0u32; stack.groups.len()];
        let bands = (0..last_height)
            .step_by(rows as usize)
            .map(|start| {
                let end = (start + rows).min(last_height);
                plan_band(stack, start..end, end == last_height, &mut written)
            })
            .collect();
        StackPlan { bands }
    }

    /// How many bands.
    pub fn band_count(&self) -> usize {
        self.bands.len()
    }

    /// Bytes of the largest input or output of any step of any band.
    fn largest_band_bytes(&self, stack: &Stack) -> u64 {
        let bytes = |shape: [u32; 3], rows: &Range<u32>| {
            4 * shape[0] as u64 * rows.len() as u64 * shape[2] as u64
        };
        self.bands
            .iter()
            .flat_map(|band| {
                band.steps.iter().zip(&stack.steps).map(|(rows, step)| {
                    bytes(step.input, &rows.reads).max(bytes(step.output, &rows.output))
                })
            })
            .max()
            .unwrap_or(0)
    }
}

/// The rows every step computes for rows `last` of the last output: walked
/// back from the last step, each step's output is what the next reads,
/// widened at a group's last step to the rows of its output not handed
/// over yet (to the end of the output in the last band).
fn plan_band(stack: &Stack, last: Range<u32>, is_last: bool, written: &mut [u32]) -> PlannedBand {
    let mut steps = vec![
        StepRows {
            output: 0..0,
            reads: 0..0
        };
        stack.steps.len()
    ];
    let mut emits = vec![0..0; stack.groups.len()];
    let mut needed = last;
    for (index, step) in stack.steps.iter().enumerate().rev() {
        let group = stack.groups.iter().position(|g| g.steps.end - 1 == index);
        let mut output = needed.clone();
        if let Some(group) = group {
            let from = written[group];
            if output.end >= from {
                output.start = output.start.min(from);
            }
            if is_last {
                output.end = step.output[1];
            }
            emits[group] = from.max(output.start)..output.end.max(from);
            written[group] = written[group].max(output.end);
        }
        if let Op::Conv(layer) = &step.op {
            output = reading_some_rows(&layer.spec, output, step.input[1]);
        }
        let reads = reads(&step.op, &output, step.input[1]);
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
fn band_steps(stack: &Stack, band: &PlannedBand, image_rows: &Range<u32>) -> Vec<BandStep> {
    let mut held = image_rows.clone();
    stack
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
                emit: stack.groups.iter().any(|g| g.steps.end - 1 == index),
            }
        })
        .collect()
}

/// Runs `stack` over `image` band by band on `engine`, handing `sink` each
/// band's new rows of each group's output `[K, rows, OW]` with the group's
/// index and the rows' first row number, in order of bands and groups.
/// Returns each group's times: the engine's steps from the group's conv to
/// its last item (where an engine runs a band in one submission, as a GPU
/// that keeps the maps does, the first group's times hold the whole band)
/// and the sink's.
pub fn run_planned(
    engine: &dyn Engine,
    image: &(impl Bands + ?Sized),
    stack: &Stack,
    plan: &StackPlan,
    mut sink: impl FnMut(usize, u32, TensorView<'_>) -> Result<()>,
) -> Result<Vec<PlannedTimings>> {
    let run = run_bands(engine, image, stack, plan, &mut sink);
    // The engine's memory is freed whether the run ended well or not.
    engine.release();
    run
}

/// [`run_planned`]'s loop over the bands.
fn run_bands(
    engine: &dyn Engine,
    image: &(impl Bands + ?Sized),
    stack: &Stack,
    plan: &StackPlan,
    sink: &mut impl FnMut(usize, u32, TensorView<'_>) -> Result<()>,
) -> Result<Vec<PlannedTimings>> {
    let channels = stack.steps.first().map_or(0, |s| s.input[0]);
    let mut timings = vec![PlannedTimings::default(); stack.groups.len()];
    for band in &plan.bands {
        let Some(first) = band.steps.first() else {
            continue;
        };
        let image_rows = first.reads.clone();
        let input = image.band(0..channels, image_rows.clone());
        let steps = band_steps(stack, band, &image_rows);
        let outputs = engine.submit_stack(input, &steps)?;
        let emitting = stack.groups.iter().map(|g| &band.steps[g.steps.end - 1]);
        for (group, (output, rows)) in outputs.into_iter().zip(emitting).enumerate() {
            let new_rows = &band.emits[group];
            let ((), run) = output.read(|maps| {
                if new_rows.is_empty() {
                    return Ok(());
                }
                let skip = (new_rows.start - rows.output.start) as usize;
                let started = Instant::now();
                let part = rows_of(&maps, skip, new_rows.len());
                let stored = sink(group, new_rows.start, part.view());
                timings[group].store += started.elapsed();
                stored
            })?;
            timings[group].run.add(run);
        }
    }
    Ok(timings)
}

/// Rows `skip..skip + count` of every map of `maps`.
fn rows_of(maps: &TensorView<'_>, skip: usize, count: usize) -> Tensor3 {
    if skip == 0 && count == maps.height as usize {
        return maps.to_tensor();
    }
    let row = maps.width as usize;
    let mut data = Vec::with_capacity(maps.channels as usize * count * row);
    for plane in maps.planes() {
        data.extend_from_slice(&plane[skip * row..(skip + count) * row]);
    }
    Tensor3::from_vec(maps.channels, count as u32, maps.width, data)
}

/// Runs a band's steps one after the other through host memory: each conv
/// with `conv` (an engine's [`Engine::run`]), ReLU and pooling with the CPU twins.
/// Returns each emitting step's output, in order. The CPU engine runs
/// stacks so; a GPU engine does when asked to go through the host.
pub fn run_on_host(
    conv: impl Fn(&Tensor3, &Layer) -> Result<(Tensor3, RunTimings)>,
    input: Tensor3,
    steps: &[BandStep],
) -> Result<Vec<Submitted>> {
    let mut current = input;
    let mut outputs = Vec::new();
    // The times of the steps since the last output handed back.
    let mut timings = RunTimings::default();
    for step in steps {
        if let Some(rows) = &step.crop {
            current = current.slice(0..current.channels, rows.clone());
        }
        let started = Instant::now();
        current = match &step.op {
            BandOp::Conv(layer) => {
                let (maps, run) = conv(&current, layer)?;
                timings.add(run);
                maps
            }
            BandOp::Relu => {
                cpu::relu(&mut current);
                timings.compute += started.elapsed();
                current
            }
            BandOp::MaxPool(pool) => {
                let pooled = cpu::max_pool(&current, pool)?;
                timings.compute += started.elapsed();
                pooled
            }
        };
        if step.emit {
            outputs.push(Submitted::ready(
                current.clone(),
                std::mem::take(&mut timings),
            ));
        }
    }
    Ok(outputs)
}
