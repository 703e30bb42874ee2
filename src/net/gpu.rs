//! A network run on the GPU: the input uploaded once, every node recorded
//! into one command encoder on buffers that stay in GPU memory (a view
//! shares its input's buffer), each value's buffer let go after its last
//! reader, the values asked for copied out, and all of it submitted once.
//! Convs whose strides and dilations are equal along both axes run on the
//! engine's conv shader (the fast one by default); every other node runs
//! in `shaders/net_ops.wgsl`.

use std::collections::HashMap;
use std::time::Instant;

use super::buffers::BufferPlan;
use super::cpu::{BroadcastParams, check_input};
use super::memory::NetMemory;
use super::movement::{StridedCopy, copies};
use super::ops::{Binary, Conv, ConvTranspose, Gemm, Op, Pool, Resize, Unary, UnaryKind};
use super::{Array, NetRun, Network, Node, ValueId};
use crate::error::{Error, Result};
use crate::gpu::buffers::{
    buffer_init, check_workgroups, entry, record_dispatch, record_readback, submit_readbacks,
};
use crate::gpu::resident::value_buffer;
use crate::gpu::{
    AutoPipeline, ConvPass, ConvPipeline, DeviceTensor, Fused, FusedActivation, Gpu, QuadTarget,
    TensorOps, auto_pipelines,
};
use crate::layer::{Activation, Layer, LayerSpec, Padding};

/// The fewest filters per group a grouped conv needs to run on the conv
/// shader, which computes blocks of 16 filters of one group: at 8, half its
/// sums are on zero weights and it is still faster than one output per
/// invocation (RegNetY-400MF's convs of 8 filters per group, lavapipe).
const FAST_FILTERS_PER_GROUP: usize = 8;

/// The shader's source, compiled into the binary.
pub const SHADER_SOURCE: &str = include_str!("../../shaders/net_ops.wgsl");

/// Invocations per workgroup, as the shader declares.
const WORKGROUP: u32 = 256;

/// The shader's `NetParams` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NetParams {
    count: u32,
    row_groups: u32,
    kind: u32,
    flags: u32,
    alpha: f32,
    beta: f32,
    channels: u32,
    in_height: u32,
    in_width: u32,
    out_height: u32,
    out_width: u32,
    kernel_height: u32,
    kernel_width: u32,
    stride_y: u32,
    stride_x: u32,
    dilation_y: u32,
    dilation_x: u32,
    pad_top: u32,
    pad_left: u32,
    pad_bottom: u32,
    pad_right: u32,
    channels_per_group: u32,
    filters_per_group: u32,
    inner: u32,
    columns: u32,
    a_rows: u32,
    c_rows: u32,
    c_columns: u32,
    size: u32,
    coordinates: u32,
    rounding: u32,
    scale_y: f32,
    scale_x: f32,
    out0: u32,
    out1: u32,
    out2: u32,
    out3: u32,
    a0: u32,
    a1: u32,
    a2: u32,
    a3: u32,
    b0: u32,
    b1: u32,
    b2: u32,
    b3: u32,
}

/// The entry points of `net_ops.wgsl`, compiled once per GPU.
pub struct NetOps {
    conv: AutoPipeline,
    unary: AutoPipeline,
    binary: AutoPipeline,
    affine: AutoPipeline,
    pool: AutoPipeline,
    global_average: AutoPipeline,
    gemm: AutoPipeline,
    softmax: AutoPipeline,
    reduce: AutoPipeline,
    resize: AutoPipeline,
    conv_transpose: AutoPipeline,
    copy: AutoPipeline,
}

impl NetOps {
    /// Compiles the shader's entry points on `gpu`.
    pub fn new(gpu: &Gpu) -> Result<Self> {
        let [
            conv,
            unary,
            binary,
            affine,
            pool,
            global_average,
            gemm,
            softmax,
            reduce,
            resize,
            conv_transpose,
            copy,
        ] = auto_pipelines(
            gpu,
            "net_ops.wgsl",
            SHADER_SOURCE,
            [
                "conv",
                "unary",
                "binary",
                "affine",
                "pool",
                "global_average",
                "gemm",
                "softmax",
                "reduce",
                "resize",
                "conv_transpose",
                "copy",
            ],
        )?;
        Ok(NetOps {
            conv,
            unary,
            binary,
            affine,
            pool,
            global_average,
            gemm,
            softmax,
            reduce,
            resize,
            conv_transpose,
            copy,
        })
    }
}

/// What runs a network on a GPU: the ops, and the conv shader with the
/// steps that lay out its input, where convs may use it.
pub struct GpuNet<'g> {
    /// The device.
    pub gpu: &'g Gpu,
    /// `net_ops.wgsl`.
    pub ops: &'g NetOps,
    /// The engine's conv shader and `tensor_ops.wgsl`; `None` to run every
    /// conv in `net_ops.wgsl` (as the tests of the op against its twin do).
    pub convs: Option<(&'g dyn ConvPipeline, &'g TensorOps)>,
    /// The most bytes of GPU memory a run may hold at once; `None` for no
    /// limit but the device's own (see [`super::memory::default_budget`]).
    pub budget: Option<u64>,
}

/// A value in GPU memory: its buffer (shared by views) and shape.
#[derive(Clone)]
struct GpuValue {
    buffer: wgpu::Buffer,
    shape: Vec<usize>,
}

impl GpuNet<'_> {
    /// Runs `net` over `input` and reads back the values `keep` lists.
    /// Fails with [`Error::Mismatch`] for an input of the wrong shape,
    /// [`Error::GpuLimit`] when a value is larger than the GPU's largest
    /// storage buffer, and [`Error::Gpu`] when the GPU reports an error.
    pub fn run(&self, net: &Network, input: Array, keep: &[ValueId]) -> Result<NetRun> {
        let started = Instant::now();
        check_input(net, &input)?;
        self.check_sizes(net)?;
        let layers = self.pipeline_layers(net);
        let quads = self.quad_values_of(net, keep, &layers);
        let plan = value_buffers(net, &quads);
        let memory = self.memory_of(net, keep, &layers, (&quads, &plan));
        memory.check(net, self.budget)?;
        self.prepare(net, &layers)?;
        let gpu = self.gpu;
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let timer = NodeTimer::new(gpu, net.nodes.len() + 1);
        let mut live = self.upload_all(net, &input, &layers);
        if let Some(timer) = &timer {
            timer.mark(&mut encoder, 0);
        }
        let last = net.last_readers();
        let mut slots: Vec<Option<wgpu::Buffer>> = vec![None; plan.slot_bytes.len()];
        let mut readbacks = Vec::new();
        let mut order = Vec::new();
        gpu.scoped("compute", || -> Result<()> {
            for (index, node) in net.nodes.iter().enumerate() {
                let output = match node.op {
                    Op::View => self.view(net, node, &live),
                    _ => {
                        let slot = plan.slot_of[node.output].expect("a node's output has a slot");
                        let buffer = slots[slot].get_or_insert_with(|| {
                            value_buffer(gpu, &net.values[node.output].name, plan.slot_bytes[slot])
                        });
                        let known = Known {
                            live: &live,
                            layers: &layers,
                            quads: &quads,
                        };
                        self.record(&mut encoder, net, node, (known, buffer.clone()))?
                    }
                };
                live.insert(node.output, output);
                if let Some(timer) = &timer {
                    timer.mark(&mut encoder, index + 1);
                }
                if keep.contains(&node.output) {
                    let value = &live[&node.output];
                    let len = value.shape.iter().product::<usize>() as u32;
                    readbacks.push(record_readback(
                        gpu,
                        &mut encoder,
                        &value.buffer,
                        [1, 1, len],
                    ));
                    order.push(node.output);
                }
                for &value in &node.inputs {
                    if last[value] == Some(index) && !net.constants.contains_key(&value) {
                        live.remove(&value);
                    }
                }
            }
            Ok(())
        })??;
        let (values, node_ms) = self.submit(net, encoder, (readbacks, order), timer, started)?;
        let gpu_ms = (!node_ms.is_empty()).then(|| node_ms.iter().sum());
        Ok(NetRun {
            values,
            node_ms,
            gpu_ms,
            total: started.elapsed(),
            memory,
        })
    }

    /// Submits the run recorded in `encoder` with its `readbacks` (of the
    /// values `order` lists) and the timestamps of `timer`, waits, and
    /// returns the values read back and each node's milliseconds (none
    /// without timestamps).
    fn submit(
        &self,
        net: &Network,
        mut encoder: wgpu::CommandEncoder,
        (mut readbacks, order): (Vec<(wgpu::Buffer, [u32; 3])>, Vec<ValueId>),
        timer: Option<NodeTimer>,
        started: Instant,
    ) -> Result<(HashMap<ValueId, Array>, Vec<f64>)> {
        let gpu = self.gpu;
        if let Some(timer) = &timer {
            readbacks.push(timer.resolve(gpu, &mut encoder));
        }
        let mut in_flight = submit_readbacks(gpu, encoder, readbacks, started, None)?;
        let ticks = match timer {
            Some(_) => Some(
                in_flight
                    .pop()
                    .expect("the timestamps' readback")
                    .into_tensor(gpu)?
                    .0,
            ),
            None => None,
        };
        let mut values = HashMap::new();
        for (id, flight) in order.into_iter().zip(in_flight) {
            let (tensor, _) = flight.into_tensor(gpu)?;
            values.insert(id, Array::new(net.values[id].shape.clone(), tensor.data));
        }
        let node_ms = ticks.map_or_else(Vec::new, |t| NodeTimer::intervals_ms(gpu, &t.data));
        Ok((values, node_ms))
    }

    /// Builds the conv pipeline's pipelines that a run of `net` needs, as
    /// [`GpuNet::run`] does before it records anything (see
    /// [`ConvPipeline::prepare`]).
    pub fn prepare_pipelines(&self, net: &Network) -> Result<()> {
        self.prepare(net, &self.pipeline_layers(net))
    }

    /// Builds the conv pipeline's pipelines that the convs of `net` in
    /// `layers` need, before anything is recorded (see
    /// [`ConvPipeline::prepare`]).
    fn prepare(&self, net: &Network, layers: &HashMap<ValueId, Layer>) -> Result<()> {
        let Some((pipeline, _)) = self.convs else {
            return Ok(());
        };
        let mut convs = Vec::new();
        for node in &net.nodes {
            if let (Op::Conv(conv), Some(layer)) = (&node.op, layers.get(&node.output))
                && let [1, c, h, w] = net.values[node.inputs[0]].shape[..]
                && let (Ok(c), Ok(h), Ok(w)) = (c.try_into(), h.try_into(), w.try_into())
            {
                convs.push((layer, [c, h, w], pipeline_activation(conv)));
            }
        }
        pipeline.prepare(self.gpu, &convs)
    }

    /// The convs of `net` that run on the engine's conv pipeline, as
    /// layers, by the value each writes: their weights are packed by the pipeline, not
    /// uploaded as they are.
    fn pipeline_layers(&self, net: &Network) -> HashMap<ValueId, Layer> {
        let Some((pipeline, _)) = self.convs else {
            return HashMap::new();
        };
        let depthwise = pipeline.runs_depthwise();
        net.nodes
            .iter()
            .filter_map(|node| match &node.op {
                Op::Conv(conv) => Some((node.output, conv_layer(conv, net, node, depthwise)?)),
                _ => None,
            })
            .collect()
    }

    /// The values that a run of `net` reading back `keep` hands from conv
    /// to conv as quads, with no packing step between (see
    /// [`super::quads`]).
    pub fn quad_values(&self, net: &Network, keep: &[ValueId]) -> HashMap<ValueId, QuadTarget> {
        self.quad_values_of(net, keep, &self.pipeline_layers(net))
    }

    /// [`GpuNet::quad_values`] for the convs in `layers` on the conv
    /// pipeline: those whose fused steps run in their own dispatch.
    fn quad_values_of(
        &self,
        net: &Network,
        keep: &[ValueId],
        layers: &HashMap<ValueId, Layer>,
    ) -> HashMap<ValueId, QuadTarget> {
        let Some((pipeline, _)) = self.convs else {
            return HashMap::new();
        };
        let gpu = self.gpu;
        // A conv's layer and input [C, H, W], where its steps all run in
        // its own dispatch on the conv pipeline.
        let on_pipeline = |node: &Node| {
            let Op::Conv(conv) = &node.op else {
                return None;
            };
            let layer = layers.get(&node.output)?;
            let [1, c, h, w] = net.values[node.inputs[0]].shape[..] else {
                return None;
            };
            let shape = [c, h, w].map(|side| u32::try_from(side).unwrap_or(u32::MAX));
            let fused = !needs_fusing(conv) || pipeline.fuses(gpu, layer, shape);
            fused.then_some((layer, shape))
        };
        let reads = |node: &Node| {
            let (layer, shape) = on_pipeline(node)?;
            pipeline.input_quads(gpu, layer, shape)
        };
        let writes = |node: &Node| {
            super::quads::scales_channels(net, node).is_some()
                || on_pipeline(node)
                    .is_some_and(|(layer, shape)| pipeline.writes_quads(gpu, layer, shape))
        };
        super::quads::quad_values(net, keep, reads, writes)
    }

    /// What a run of `net` reading back the values `keep` lists holds in
    /// GPU memory at once, from the shapes alone, `layers` running on the
    /// conv pipeline, `quads` laid out as quads and the values in the
    /// buffers of `plan`.
    fn memory_of(
        &self,
        net: &Network,
        keep: &[ValueId],
        layers: &HashMap<ValueId, Layer>,
        (quads, plan): (&HashMap<ValueId, QuadTarget>, &BufferPlan),
    ) -> NetMemory {
        let bytes = |value: ValueId| 4 * net.values[value].shape.iter().product::<usize>() as u64;
        let mut memory = NetMemory::of_values(net, plan);
        memory.weights -= packed_constants(net, layers)
            .iter()
            .map(|id| 4 * net.constants[id].data.len() as u64)
            .sum::<u64>();
        memory.readback = keep.iter().map(|&value| bytes(value)).sum();
        for node in &net.nodes {
            let Op::Conv(conv) = &node.op else {
                continue;
            };
            let x = &net.values[node.inputs[0]].shape;
            let shape = [x[1] as u32, x[2] as u32, x[3] as u32];
            // Whether the steps fused into it run in its own dispatch: on the
            // conv pipeline where it can, in net_ops.wgsl an activation alone.
            let fused_in_place = match (self.convs, layers.get(&node.output)) {
                (Some((pipeline, _)), Some(layer)) => {
                    memory.scratch += pipeline.scratch_bytes(self.gpu, layer, shape);
                    // Quads written by the conv before: none packed here.
                    if let Some(target) = quads.get(&node.inputs[0]) {
                        memory.scratch = memory.scratch.saturating_sub(4 * target.layout.len());
                    }
                    !needs_fusing(conv) || pipeline.fuses(self.gpu, layer, shape)
                }
                _ => !conv.residual,
            };
            // Else the sums it writes before those steps, and the sums with
            // the residual added before an activation.
            if !fused_in_place {
                let both = conv.residual && conv.activation.is_some();
                memory.scratch += bytes(node.output) * (1 + both as u64);
            }
        }
        memory
    }

    /// The input and every weight a node reads, uploaded, by value; the
    /// weights and biases that only the convs in `layers` read (the conv
    /// pipeline packs its own copy) stand in as an empty buffer of their
    /// shape, never bound.
    fn upload_all(
        &self,
        net: &Network,
        input: &Array,
        layers: &HashMap<ValueId, Layer>,
    ) -> HashMap<ValueId, GpuValue> {
        let mut live = HashMap::new();
        live.insert(net.input_value, self.upload("input", input));
        let read: std::collections::HashSet<ValueId> = net
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().copied())
            .collect();
        let packed = packed_constants(net, layers);
        let empty = Array::new(vec![0], Vec::new());
        let stand_in = self.upload("packed by the conv pipeline", &empty).buffer;
        for (&id, array) in net.constants.iter().filter(|(id, _)| read.contains(id)) {
            let value = match packed.contains(&id) {
                true => GpuValue {
                    buffer: stand_in.clone(),
                    shape: array.shape.clone(),
                },
                false => self.upload(&net.values[id].name, array),
            };
            live.insert(id, value);
        }
        live
    }

    /// Refuses a network with a value larger than this GPU's largest
    /// storage buffer, naming it, with the sizes and what to do.
    fn check_sizes(&self, net: &Network) -> Result<()> {
        let max = self.gpu.max_storage_binding();
        for value in &net.values {
            let bytes = 4 * value.shape.iter().product::<usize>() as u64;
            if bytes > max {
                return Err(Error::GpuLimit(format!(
                    "{}: value {:?} {:?} needs {:.1} MiB, more than this GPU's largest storage buffer \
                     ({:.1} MiB); use --resize with a smaller size, or --backend cpu",
                    net.path.display(),
                    value.name,
                    value.shape,
                    bytes as f64 / 1048576.0,
                    max as f64 / 1048576.0
                )));
            }
        }
        Ok(())
    }

    /// A storage buffer holding `array`.
    fn upload(&self, label: &str, array: &Array) -> GpuValue {
        let contents: &[u8] = match array.data.is_empty() {
            true => &[0; 4],
            false => bytemuck::cast_slice(&array.data),
        };
        let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        GpuValue {
            buffer: buffer_init(self.gpu, label, contents, usage),
            shape: array.shape.clone(),
        }
    }

    /// A view (Flatten, Reshape): its input's buffer under its own shape.
    fn view(&self, net: &Network, node: &Node, live: &HashMap<ValueId, GpuValue>) -> GpuValue {
        GpuValue {
            buffer: live[&node.inputs[0]].buffer.clone(),
            shape: net.values[node.output].shape.clone(),
        }
    }

    /// Records `node`, writing its output into `buffer` (its slot's, in the
    /// run's [`BufferPlan`]), and returns it.
    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        net: &Network,
        node: &Node,
        (known, buffer): (Known<'_>, wgpu::Buffer),
    ) -> Result<GpuValue> {
        let live = known.live;
        let inputs: Vec<&GpuValue> = node.inputs.iter().map(|v| &live[v]).collect();
        let shape = net.values[node.output].shape.clone();
        let output = GpuValue { buffer, shape };
        if let Op::Move(movement) = &node.op {
            let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape.as_slice()).collect();
            for copy in copies(movement, &shapes, &output.shape) {
                self.record_copy(encoder, &copy, (&inputs[copy.input].buffer, &output.buffer))?;
            }
            return Ok(output);
        }
        if let Some(target) = known.quads.get(&node.output)
            && let Some((maps, factors)) = super::quads::scales_channels(net, node)
        {
            // The Mul's product, packed for the conv that reads it.
            let Some((_, tensor_ops)) = self.convs else {
                let what = format!("{}: quads without a conv pipeline", node.name);
                return Err(Error::Mismatch(what));
            };
            let input = (&device_tensor(&live[&maps]), Some(&live[&factors].buffer));
            tensor_ops.pack_quads(self.gpu, encoder, input, target, &output.buffer)?;
            return Ok(output);
        }
        // net_ops.wgsl's conv applies any activation itself, not a residual.
        if let Op::Conv(conv) = &node.op
            && ((needs_fusing(conv) && (conv.residual || known.layers.contains_key(&node.output)))
                || known.has_quads(node))
        {
            let values = (inputs, output);
            return self.record_fused_conv(encoder, (net, node, conv), values, known);
        }
        if let Op::Conv(conv) = &node.op
            && let Some((pipeline, tensor_ops)) = self.convs
            && let Some(layer) = known.layer(node, conv)
        {
            self.record_fast_conv(
                encoder,
                (pipeline, tensor_ops),
                (&layer, inputs[0]),
                &output,
            )?;
            return Ok(output);
        }
        let (pipeline, params, reads) = self.dispatch_of(&node.op, &inputs, &output)?;
        let bound = (&reads[..], bindings_read(&node.op), &output.buffer);
        self.dispatch(encoder, pipeline, bound, params)?;
        Ok(output)
    }

    /// Records a conv with a fused residual (its fourth input) or an
    /// activation other than ReLU into `output`: in the conv's own dispatch
    /// where the engine's conv pipeline can, else the conv's sums, then an
    /// Add, then the activation, each its own dispatch.
    fn record_fused_conv(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (net, node, conv): (&Network, &Node, &Conv),
        (inputs, output): (Vec<&GpuValue>, GpuValue),
        known: Known<'_>,
    ) -> Result<GpuValue> {
        let residual = conv.residual.then(|| inputs[3]);
        if let Some((pipeline, tensor_ops)) = self.convs
            && let Some(layer) = known.layer(node, conv)
        {
            let pass = ConvPass {
                input: &device_tensor(inputs[0]),
                layer: &layer,
                encoder: &mut *encoder,
                output: &output.buffer,
                timestamps: None,
            };
            let fused = Fused {
                residual: residual.map(|r| &r.buffer),
                activation: pipeline_activation(conv),
                input_quads: known
                    .quads
                    .contains_key(&node.inputs[0])
                    .then_some(&inputs[0].buffer),
                output_quads: known.quads.get(&node.output).copied(),
            };
            if pipeline.record_fused(self.gpu, tensor_ops, pass, fused)? {
                return Ok(output);
            }
        }
        if known.has_quads(node) {
            let what = format!(
                "{}: quads for a conv the conv pipeline did not run",
                node.name
            );
            return Err(Error::Mismatch(what));
        }
        // The conv alone, into its own buffer.
        let sums_only = Node {
            op: Op::Conv(Conv {
                activation: None,
                residual: false,
                ..*conv
            }),
            inputs: node.inputs[..node.inputs.len() - conv.residual as usize].to_vec(),
            ..node.clone()
        };
        let sums = self.new_value("conv sums", output.shape.clone());
        let mut current = self.record(encoder, net, &sums_only, (known, sums.buffer))?;
        if let Some(residual) = residual {
            let added = match conv.activation {
                Some(_) => self.new_value("conv sums + residual", output.shape.clone()),
                None => output.clone(),
            };
            let add = Op::Binary(Binary::Add);
            let (pipeline, params, reads) =
                self.dispatch_of(&add, &[&current, residual], &added)?;
            let bound = (&reads[..], bindings_read(&add), &added.buffer);
            self.dispatch(encoder, pipeline, bound, params)?;
            current = added;
        }
        if let Some(unary) = conv.activation {
            let mut params = unary_params(&unary);
            params.count = count(output.shape.iter().product())?;
            let bound = (&[&current.buffer][..], 1, &output.buffer);
            self.dispatch(encoder, &self.ops.unary, bound, params)?;
        }
        Ok(output)
    }

    /// A new buffer for a value of `shape`.
    fn new_value(&self, label: &str, shape: Vec<usize>) -> GpuValue {
        let bytes = 4 * shape.iter().product::<usize>() as u64;
        let buffer = value_buffer(self.gpu, label, bytes);
        GpuValue { buffer, shape }
    }

    /// Records a conv on the engine's conv shader.
    fn record_fast_conv(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (pipeline, tensor_ops): (&dyn ConvPipeline, &TensorOps),
        (layer, input): (&Layer, &GpuValue),
        output: &GpuValue,
    ) -> Result<()> {
        pipeline.record(
            self.gpu,
            tensor_ops,
            ConvPass {
                input: &device_tensor(input),
                layer,
                encoder,
                output: &output.buffer,
                timestamps: None,
            },
        )
    }

    /// Records one strided copy (`net::movement`) from `input` into `output`.
    fn record_copy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        copy: &StridedCopy,
        (input, output): (&wgpu::Buffer, &wgpu::Buffer),
    ) -> Result<()> {
        let gpu = self.gpu;
        let values = count(copy.count())?;
        if values == 0 {
            return Ok(());
        }
        let [row_groups, rows] = self.grid(values)?;
        let params = CopyParams::new(copy, values, row_groups)?;
        let uniform = buffer_init(
            gpu,
            "copy params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let entries = [entry(0, input), entry(3, output), entry(5, &uniform)];
        let (pipeline, layout) = &self.ops.copy;
        record_dispatch(
            gpu,
            encoder,
            (pipeline, layout),
            ("net copy", &entries),
            [params.row_groups, rows, 1],
        );
        Ok(())
    }

    /// The entry point, params and input buffers of a node run in
    /// `net_ops.wgsl`.
    fn dispatch_of<'v>(
        &self,
        op: &Op,
        inputs: &[&'v GpuValue],
        output: &GpuValue,
    ) -> Result<(&AutoPipeline, NetParams, Vec<&'v wgpu::Buffer>)> {
        let buffers: Vec<&wgpu::Buffer> = inputs.iter().map(|v| &v.buffer).collect();
        let shapes: Vec<&[usize]> = inputs.iter().map(|v| v.shape.as_slice()).collect();
        let mut params = op_params(op, &shapes, &output.shape);
        if params.count == 0 {
            params.count = count(output.shape.iter().product::<usize>())?;
        }
        Ok((self.pipeline_of(op), params, buffers))
    }

    /// The entry point of `net_ops.wgsl` that runs `op`.
    fn pipeline_of(&self, op: &Op) -> &AutoPipeline {
        let ops = self.ops;
        match op {
            Op::Conv(_) => &ops.conv,
            Op::Unary(_) => &ops.unary,
            Op::Binary(_) => &ops.binary,
            Op::Affine => &ops.affine,
            Op::Pool(_) => &ops.pool,
            Op::GlobalAverage => &ops.global_average,
            Op::Gemm(_) => &ops.gemm,
            Op::Softmax { .. } => &ops.softmax,
            Op::Reduce { .. } => &ops.reduce,
            Op::Resize(_) => &ops.resize,
            Op::ConvTranspose(_) => &ops.conv_transpose,
            Op::Move(_) => &ops.copy,
            Op::View => unreachable!("a view records no dispatch"),
        }
    }

    /// The 2-D grid of workgroups for `values` values, one per invocation:
    /// `[workgroups per row, rows]`, rows as many as the device's limit on
    /// one dimension needs; refused past the limit on the other.
    fn grid(&self, values: u32) -> Result<[u32; 2]> {
        let max = self
            .gpu
            .limits()
            .max_compute_workgroups_per_dimension
            .max(1);
        let groups = values.div_ceil(WORKGROUP);
        let rows = groups.div_ceil(max);
        check_workgroups(self.gpu, &[("network op's rows of values", rows)])?;
        Ok([groups.min(max), rows])
    }

    /// Records one dispatch of `pipeline` over `params.count` values:
    /// inputs bound at 0, 1, 2 (as many as the entry point reads; a bias
    /// the conv has not gets a stand-in), output at 3, params at 4.
    fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        (pipeline, layout): &AutoPipeline,
        (inputs, reads, output): (&[&wgpu::Buffer], usize, &wgpu::Buffer),
        mut params: NetParams,
    ) -> Result<()> {
        let gpu = self.gpu;
        if params.count == 0 {
            return Ok(());
        }
        let [row_groups, rows] = self.grid(params.count)?;
        params.row_groups = row_groups;
        let uniform = buffer_init(
            gpu,
            "net params",
            bytemuck::bytes_of(&params),
            wgpu::BufferUsages::UNIFORM,
        );
        let stand_in = (inputs.len() < reads)
            .then(|| buffer_init(gpu, "no input", &[0; 4], wgpu::BufferUsages::STORAGE));
        let mut entries = Vec::new();
        for binding in 0..reads {
            let buffer = inputs.get(binding).copied().or(stand_in.as_ref());
            entries.push(entry(
                binding as u32,
                buffer.expect("a stand-in for a missing input"),
            ));
        }
        entries.push(entry(3, output));
        entries.push(entry(4, &uniform));
        record_dispatch(
            gpu,
            encoder,
            (pipeline, layout),
            ("net op", &entries),
            [params.row_groups, rows, 1],
        );
        Ok(())
    }
}

/// GPU timestamps between a network's nodes: one before the first and one
/// after each, written by empty compute passes, on GPUs with timestamp
/// queries.
struct NodeTimer {
    query_set: wgpu::QuerySet,
    resolved: wgpu::Buffer,
    count: u32,
}

impl NodeTimer {
    /// Room for `count` timestamps; `None` without timestamp queries or
    /// past a query set's 4096.
    fn new(gpu: &Gpu, count: usize) -> Option<Self> {
        let count = u32::try_from(count).ok().filter(|&c| c <= 4096)?;
        if !gpu.has_timestamps() {
            return None;
        }
        Some(NodeTimer {
            query_set: gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("node timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count,
            }),
            resolved: gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("node timestamps"),
                size: 8 * count as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            count,
        })
    }

    /// Records timestamp `index` once the work recorded so far is done.
    fn mark(&self, encoder: &mut wgpu::CommandEncoder, index: usize) {
        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("node timestamp"),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &self.query_set,
                beginning_of_pass_write_index: None,
                end_of_pass_write_index: Some(index as u32),
            }),
        });
    }

    /// Records the copy of the timestamps to a mappable buffer, read back
    /// as f32 bit patterns (two per timestamp).
    fn resolve(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder) -> (wgpu::Buffer, [u32; 3]) {
        encoder.resolve_query_set(&self.query_set, 0..self.count, &self.resolved, 0);
        record_readback(gpu, encoder, &self.resolved, [1, 1, 2 * self.count])
    }

    /// The time between consecutive timestamps read back as `words`, in
    /// milliseconds: each node's.
    fn intervals_ms(gpu: &Gpu, words: &[f32]) -> Vec<f64> {
        let ticks: Vec<u64> = bytemuck::cast_slice::<f32, u64>(words).to_vec();
        let period = gpu.queue.get_timestamp_period() as f64;
        ticks
            .windows(2)
            .map(|pair| pair[1].saturating_sub(pair[0]) as f64 * period / 1e6)
            .collect()
    }
}

/// How many inputs (bindings 0, 1, 2) the entry point of `op` reads.
fn bindings_read(op: &Op) -> usize {
    match op {
        Op::Conv(_) | Op::ConvTranspose(_) | Op::Affine | Op::Gemm(_) => 3,
        Op::Binary(_) => 2,
        _ => 1,
    }
}

/// A value count as the shader's u32, or an error.
fn count(values: usize) -> Result<u32> {
    u32::try_from(values).map_err(|_| {
        Error::GpuLimit(format!(
            "a value of {values} values is more than a shader's 32-bit index reaches"
        ))
    })
}

/// The conv as a [`Layer`] for the engine's conv shader, when its strides
/// and dilations are the same along both axes and its groups are not
/// narrow.
fn conv_layer(conv: &Conv, net: &Network, node: &Node, depthwise: bool) -> Option<Layer> {
    if conv.strides[0] != conv.strides[1] || conv.dilations[0] != conv.dilations[1] {
        return None;
    }
    let weight = net.constants.get(&node.inputs[1])?;
    // The conv shader computes 8 or 16 filters of one group per invocation;
    // a group of far fewer (a depthwise conv has one) would leave most of
    // its work on zero weights, so such a conv runs in `net_ops.wgsl`, one
    // output value per invocation, unless it is depthwise and the pipeline
    // has a kernel for that (`depthwise`).
    let filters_per_group = weight.shape[0] / conv.group.max(1) as usize;
    let is_depthwise = conv.group > 1 && filters_per_group == 1 && weight.shape[1] == 1;
    if conv.group > 1 && filters_per_group < FAST_FILTERS_PER_GROUP && !(depthwise && is_depthwise)
    {
        return None;
    }
    let bias = match node.inputs.get(2) {
        Some(b) => net.constants.get(b)?.data.clone(),
        None => Vec::new(),
    };
    let [k, cg, _, _] = weight.shape[..] else {
        return None;
    };
    let [top, left, bottom, right] = conv.pads;
    let spec = LayerSpec {
        in_channels: (cg as u32) * conv.group,
        filters: k as u32,
        kernel_height: conv.kernel[0],
        kernel_width: conv.kernel[1],
        stride: conv.strides[0],
        padding: Padding {
            top,
            bottom,
            left,
            right,
        },
        dilation: conv.dilations[0],
        groups: conv.group,
        bias: conv.bias,
        activation: layer_activation(conv),
    };
    Layer::new(spec, weight.data.clone(), bias).ok()
}

/// The activation a conv's [`Layer`] applies: ReLU, the one the conv
/// pipelines apply themselves; any other runs with the fused steps.
fn layer_activation(conv: &Conv) -> Activation {
    match conv.activation {
        Some(Unary {
            kind: UnaryKind::Relu,
            ..
        }) => Activation::Relu,
        _ => Activation::None,
    }
}

/// What recording a node needs besides the node: the values in GPU memory,
/// and the convs that run on the conv pipeline as layers.
#[derive(Clone, Copy)]
struct Known<'a> {
    live: &'a HashMap<ValueId, GpuValue>,
    layers: &'a HashMap<ValueId, Layer>,
    /// The values laid out as the quads of the convs that read them.
    quads: &'a HashMap<ValueId, QuadTarget>,
}

impl Known<'_> {
    /// Whether `node` reads or writes a value laid out as quads.
    fn has_quads(&self, node: &Node) -> bool {
        self.quads.contains_key(&node.output)
            || node
                .inputs
                .first()
                .is_some_and(|v| self.quads.contains_key(v))
    }

    /// The layer of the conv `node` (whose op is `conv`: the node's own, or
    /// it without its activation) where it runs on the conv pipeline.
    fn layer(&self, node: &Node, conv: &Conv) -> Option<std::borrow::Cow<'_, Layer>> {
        let layer = self.layers.get(&node.output)?;
        let activation = layer_activation(conv);
        Some(match layer.spec.activation == activation {
            true => std::borrow::Cow::Borrowed(layer),
            false => {
                let spec = LayerSpec {
                    activation,
                    ..layer.spec
                };
                std::borrow::Cow::Owned(Layer {
                    spec,
                    ..layer.clone()
                })
            }
        })
    }
}

/// Whether a conv has steps fused into it that a conv pipeline's plain run
/// does not apply: a residual, or an activation other than ReLU.
fn needs_fusing(conv: &Conv) -> bool {
    conv.residual || conv.activation.is_some_and(|u| u.kind != UnaryKind::Relu)
}

/// The activation the conv pipeline applies in `conv`'s dispatch, as
/// [`Fused`] gives it: the conv's own where it needs fusing (a ReLU alone
/// comes with the layer).
fn pipeline_activation(conv: &Conv) -> Option<FusedActivation> {
    let unary = conv.activation.filter(|_| needs_fusing(conv))?;
    let params = unary_params(&unary);
    Some(FusedActivation {
        kind: params.kind,
        alpha: params.alpha,
        beta: params.beta,
    })
}

/// The constants that only convs running on the conv pipeline read, as
/// their weights or biases.
fn packed_constants(net: &Network, layers: &HashMap<ValueId, Layer>) -> Vec<ValueId> {
    let mut readers: HashMap<ValueId, bool> = HashMap::new();
    for node in &net.nodes {
        let on_pipeline = layers.contains_key(&node.output) && matches!(node.op, Op::Conv(_));
        for (position, &input) in node.inputs.iter().enumerate() {
            if net.constants.contains_key(&input) {
                let packed = on_pipeline && (position == 1 || position == 2);
                *readers.entry(input).or_insert(true) &= packed;
            }
        }
    }
    readers
        .into_iter()
        .filter(|&(_, packed)| packed)
        .map(|(id, _)| id)
        .collect()
}

/// The buffers of a run of `net` whose values `quads` are laid out as
/// quads (each as large as its layout), the others as their f32s.
fn value_buffers(net: &Network, quads: &HashMap<ValueId, QuadTarget>) -> BufferPlan {
    BufferPlan::with_bytes(net, |value| match quads.get(&value) {
        Some(target) => 4 * target.layout.len(),
        None => 4 * net.values[value].shape.iter().product::<usize>() as u64,
    })
}

/// A value `[1, C, H, W]` as the conv pipelines take it.
fn device_tensor(value: &GpuValue) -> DeviceTensor {
    DeviceTensor {
        buffer: value.buffer.clone(),
        channels: value.shape[1] as u32,
        height: value.shape[2] as u32,
        width: value.shape[3] as u32,
    }
}

/// The shader's `CopyParams` uniform, field for field.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CopyParams {
    count: u32,
    row_groups: u32,
    in_base: i32,
    out_base: i32,
    size0: u32,
    size1: u32,
    size2: u32,
    size3: u32,
    size4: u32,
    size5: u32,
    in0: i32,
    in1: i32,
    in2: i32,
    in3: i32,
    in4: i32,
    in5: i32,
    out0: i32,
    out1: i32,
    out2: i32,
    out3: i32,
    out4: i32,
    out5: i32,
}

impl CopyParams {
    /// `copy` of `count` values over `row_groups` workgroups per row;
    /// refused where an index passes the shader's 32 bits.
    fn new(copy: &StridedCopy, count: u32, row_groups: u32) -> Result<Self> {
        let narrow = |v: i64| {
            i32::try_from(v)
                .map_err(|_| Error::GpuLimit(format!("a copy's index {v} passes 32 bits")))
        };
        let [size0, size1, size2, size3, size4, size5] = copy.sizes.map(|s| s as u32);
        let [in0, in1, in2, in3, in4, in5] = copy.in_strides;
        let [out0, out1, out2, out3, out4, out5] = copy.out_strides;
        Ok(CopyParams {
            count,
            row_groups,
            in_base: narrow(copy.in_base)?,
            out_base: narrow(copy.out_base)?,
            size0,
            size1,
            size2,
            size3,
            size4,
            size5,
            in0: narrow(in0)?,
            in1: narrow(in1)?,
            in2: narrow(in2)?,
            in3: narrow(in3)?,
            in4: narrow(in4)?,
            in5: narrow(in5)?,
            out0: narrow(out0)?,
            out1: narrow(out1)?,
            out2: narrow(out2)?,
            out3: narrow(out3)?,
            out4: narrow(out4)?,
            out5: narrow(out5)?,
        })
    }
}

/// The params of `op`'s entry point for inputs of `shapes` and an output
/// of `out`; `count` is left 0 where it is the output's values.
fn op_params(op: &Op, shapes: &[&[usize]], out: &[usize]) -> NetParams {
    let values = out.iter().product::<usize>() as u32;
    match op {
        Op::Conv(conv) => conv_params(conv, shapes, out),
        Op::Unary(unary) => unary_params(unary),
        Op::Binary(kind) => binary_params(*kind, shapes, out),
        Op::Affine => NetParams {
            channels: shapes[0][1] as u32,
            inner: values / (shapes[0][1] as u32).max(1),
            ..NetParams::default()
        },
        Op::Pool(pool) => pool_params(pool, shapes[0], out),
        Op::GlobalAverage => NetParams {
            in_height: shapes[0][2] as u32,
            in_width: shapes[0][3] as u32,
            ..NetParams::default()
        },
        Op::Gemm(gemm) => gemm_params(gemm, shapes, out),
        Op::Softmax { size, inner } => NetParams {
            size: *size as u32,
            inner: *inner as u32,
            count: values / (*size as u32).max(1),
            ..NetParams::default()
        },
        Op::Reduce { kind, size, inner } => NetParams {
            kind: *kind as u32,
            size: *size as u32,
            inner: *inner as u32,
            ..NetParams::default()
        },
        Op::Resize(resize) => resize_params(resize, shapes[0], out),
        Op::ConvTranspose(conv) => conv_transpose_params(conv, shapes, out),
        Op::View | Op::Move(_) => unreachable!("a view or a move has no params here"),
    }
}

/// Params of the `resize` entry point.
pub fn resize_params(resize: &Resize, x: &[usize], out: &[usize]) -> NetParams {
    NetParams {
        kind: resize.linear as u32,
        coordinates: resize.coordinates as u32,
        rounding: resize.rounding as u32,
        scale_y: resize.scales[0],
        scale_x: resize.scales[1],
        in_height: x[2] as u32,
        in_width: x[3] as u32,
        out_height: out[2] as u32,
        out_width: out[3] as u32,
        ..NetParams::default()
    }
}

/// Params of the `conv_transpose` entry point.
pub fn conv_transpose_params(
    conv: &ConvTranspose,
    shapes: &[&[usize]],
    out: &[usize],
) -> NetParams {
    let (x, weight) = (shapes[0], shapes[1]);
    NetParams {
        flags: conv.bias as u32,
        in_height: x[2] as u32,
        in_width: x[3] as u32,
        out_height: out[2] as u32,
        out_width: out[3] as u32,
        kernel_height: conv.kernel[0],
        kernel_width: conv.kernel[1],
        stride_y: conv.strides[0],
        stride_x: conv.strides[1],
        dilation_y: conv.dilations[0],
        dilation_x: conv.dilations[1],
        pad_top: conv.pads[0],
        pad_left: conv.pads[1],
        channels_per_group: (x[1] as u32) / conv.group,
        filters_per_group: weight[1] as u32,
        ..NetParams::default()
    }
}

/// Params of the `conv` entry point.
pub fn conv_params(conv: &Conv, shapes: &[&[usize]], out: &[usize]) -> NetParams {
    let (x, weight) = (shapes[0], shapes[1]);
    let unary = conv
        .activation
        .map(|u| unary_params(&u))
        .unwrap_or_default();
    NetParams {
        flags: conv.bias as u32 | (conv.activation.is_some() as u32) << 1,
        kind: unary.kind,
        alpha: unary.alpha,
        beta: unary.beta,
        channels: x[1] as u32,
        in_height: x[2] as u32,
        in_width: x[3] as u32,
        out_height: out[2] as u32,
        out_width: out[3] as u32,
        kernel_height: conv.kernel[0],
        kernel_width: conv.kernel[1],
        stride_y: conv.strides[0],
        stride_x: conv.strides[1],
        dilation_y: conv.dilations[0],
        dilation_x: conv.dilations[1],
        pad_top: conv.pads[0],
        pad_left: conv.pads[1],
        pad_bottom: conv.pads[2],
        pad_right: conv.pads[3],
        channels_per_group: weight[1] as u32,
        filters_per_group: (weight[0] as u32) / conv.group,
        ..NetParams::default()
    }
}

/// Params of the `unary` entry point.
pub fn unary_params(unary: &Unary) -> NetParams {
    NetParams {
        kind: unary.kind as u32,
        alpha: unary.alpha,
        beta: unary.beta,
        ..NetParams::default()
    }
}

/// Params of the `binary` entry point.
pub fn binary_params(kind: Binary, shapes: &[&[usize]], out: &[usize]) -> NetParams {
    let broadcast = BroadcastParams::new(shapes[0], shapes[1], out);
    let [out0, out1, out2, out3] = broadcast.out;
    let [a0, a1, a2, a3] = broadcast.a;
    let [b0, b1, b2, b3] = broadcast.b;
    let same = shapes[0] == out && shapes[1] == out;
    NetParams {
        kind: kind as u32,
        flags: (!same) as u32,
        out0,
        out1,
        out2,
        out3,
        a0,
        a1,
        a2,
        a3,
        b0,
        b1,
        b2,
        b3,
        ..NetParams::default()
    }
}

/// Params of the `pool` entry point.
pub fn pool_params(pool: &Pool, x: &[usize], out: &[usize]) -> NetParams {
    NetParams {
        kind: pool.max as u32,
        flags: pool.count_include_pad as u32,
        in_height: x[2] as u32,
        in_width: x[3] as u32,
        out_height: out[2] as u32,
        out_width: out[3] as u32,
        kernel_height: pool.kernel[0],
        kernel_width: pool.kernel[1],
        stride_y: pool.strides[0],
        stride_x: pool.strides[1],
        dilation_y: pool.dilations[0],
        dilation_x: pool.dilations[1],
        pad_top: pool.pads[0],
        pad_left: pool.pads[1],
        pad_bottom: pool.pads[2],
        pad_right: pool.pads[3],
        ..NetParams::default()
    }
}

/// Params of the `gemm` entry point.
pub fn gemm_params(gemm: &Gemm, shapes: &[&[usize]], out: &[usize]) -> NetParams {
    let a = shapes[0];
    let (c_rows, c_columns) = match shapes.get(2).copied() {
        None | Some([]) => (1, 1),
        Some([n]) => (1, *n),
        Some([m, n]) => (*m, *n),
        Some(_) => (1, 1),
    };
    NetParams {
        flags: (gemm.trans_a as u32)
            | ((gemm.trans_b as u32) << 1)
            | ((shapes.len() > 2) as u32 * 4),
        alpha: gemm.alpha,
        beta: gemm.beta,
        inner: if gemm.trans_a { a[0] } else { a[1] } as u32,
        columns: out[1] as u32,
        a_rows: out[0] as u32,
        c_rows: c_rows as u32,
        c_columns: c_columns as u32,
        ..NetParams::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::reflect::{rust_struct, wgsl_struct};

    #[test]
    fn copy_params_matches_the_shaders_struct() {
        let host = rust_struct!(CopyParams {
            count,
            row_groups,
            in_base,
            out_base,
            size0,
            size1,
            size2,
            size3,
            size4,
            size5,
            in0,
            in1,
            in2,
            in3,
            in4,
            in5,
            out0,
            out1,
            out2,
            out3,
            out4,
            out5,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "CopyParams"));
    }

    #[test]
    fn net_params_matches_the_shaders_struct() {
        let host = rust_struct!(NetParams {
            count,
            row_groups,
            kind,
            flags,
            alpha,
            beta,
            channels,
            in_height,
            in_width,
            out_height,
            out_width,
            kernel_height,
            kernel_width,
            stride_y,
            stride_x,
            dilation_y,
            dilation_x,
            pad_top,
            pad_left,
            pad_bottom,
            pad_right,
            channels_per_group,
            filters_per_group,
            inner,
            columns,
            a_rows,
            c_rows,
            c_columns,
            size,
            coordinates,
            rounding,
            scale_y,
            scale_x,
            out0,
            out1,
            out2,
            out3,
            a0,
            a1,
            a2,
            a3,
            b0,
            b1,
            b2,
            b3,
        });
        assert_eq!(host, wgsl_struct(SHADER_SOURCE, "NetParams"));
    }
}
