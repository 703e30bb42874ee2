//! A chain's bands run on an engine: each band's steps one after the
//! other ([`Engine::submit_chain`]), each block's new rows handed to a
//! sink; and the steps of one band through host memory, which the CPU
//! engine (and a GPU asked to go through the host) runs.

use std::time::Instant;

use super::{Engine, PlannedTimings, Submitted};
use crate::cpu;
use crate::error::Result;
use crate::gpu::RunTimings;
use crate::graph::plan::band_steps;
use crate::graph::{BandOp, BandStep, ChainPlan, Graph};
use crate::layer::Layer;
use crate::tensor::{RowSource, Tensor3, TensorView};

/// Runs `graph` over `image` band by band on `engine`, handing `sink` each
/// band's new rows of each block's output `[K, rows, OW]` with the block's
/// index and the rows' first row number, in order of bands and blocks.
/// Returns each block's times: the engine's steps from the block's conv to
/// its last item (where an engine runs a band in one submission, as a GPU
/// that keeps the maps does, the first block's times hold the whole band)
/// and the sink's.
pub fn run_chain(
    engine: &dyn Engine,
    image: &(impl RowSource + ?Sized),
    (graph, plan): (&Graph, &ChainPlan),
    mut sink: impl FnMut(usize, u32, TensorView<'_>) -> Result<()>,
) -> Result<Vec<PlannedTimings>> {
    let run = each_band(engine, image, graph, plan, &mut sink);
    // The engine's memory is freed whether the run ended well or not.
    engine.release();
    run
}

/// [`run_chain`]'s loop over the bands.
fn each_band(
    engine: &dyn Engine,
    image: &(impl RowSource + ?Sized),
    graph: &Graph,
    plan: &ChainPlan,
    sink: &mut impl FnMut(usize, u32, TensorView<'_>) -> Result<()>,
) -> Result<Vec<PlannedTimings>> {
    let channels = graph.input()[0];
    let mut timings = vec![PlannedTimings::default(); graph.blocks.len()];
    for band in &plan.bands {
        let Some(first) = band.steps.first() else {
            continue;
        };
        let image_rows = first.reads.clone();
        let input = image.rows(0..channels, image_rows.clone());
        let steps = band_steps(graph, band, &image_rows);
        let outputs = engine.submit_band(input, &steps)?;
        let emitting = graph.blocks.iter().map(|b| &band.steps[b.steps.end - 1]);
        for (block, (output, rows)) in outputs.into_iter().zip(emitting).enumerate() {
            let new_rows = &band.emits[block];
            let ((), run) = output.read(|maps| {
                if new_rows.is_empty() {
                    return Ok(());
                }
                let skip = (new_rows.start - rows.output.start) as usize;
                let started = Instant::now();
                let part = rows_of(&maps, skip, new_rows.len());
                let stored = sink(block, new_rows.start, part.view());
                timings[block].store += started.elapsed();
                stored
            })?;
            timings[block].run.add(run);
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
