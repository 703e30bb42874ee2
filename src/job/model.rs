//! A whole network run over a photo (`--model FILE.onnx`): the photo made
//! into the model's input, the model loaded for that size, the forward
//! pass on the engine, then each chosen node's maps in a folder of its own,
//! the top classes, the class activation map, the page and the summary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::model_detail::{self, MapDetail, PageDetail};
use super::pictures::{StreamedPictures, map_ranges};
use super::{Job, View, write_filters};
use crate::engine::Pictures;
use crate::error::{Error, Result};
use crate::graph::names::folder_names;
use crate::input::{Input, InputFile};
use crate::layer::{Layer, LayerSpec};
use crate::net::head::{self, CamSource};
use crate::net::input::{self as model_input, Resize};
use crate::net::memory::NetMemory;
use crate::net::ops::Op;
use crate::net::{self, Array, Layout, NetRun, Network, ValueId};
use crate::npy;
use crate::output::{check_output_dir, create_output_dir, write_bytes_atomic};
use crate::photo::Orientation;
use crate::preprocess::{InputPrep, Layout as Channels};
use crate::render::GRID_MAX_SIDE;
use crate::render::colormap::Colormap;
use crate::render::explore::Drawing;
use crate::render::filters::FiltersLayout;
use crate::render::quantise::Quantise;
use crate::render::strip::strip_json;
use crate::report::model::{
    CamReport, ModelFacts, ModelRunInput, ModelSummary, ModelTimings, NodeReport, OutputReport,
};
use crate::stats::MapStats;
use crate::tensor::Tensor3;

/// Which nodes' maps are written (`--maps`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum MapsChoice {
    /// Every Conv node's output.
    #[default]
    Convs,
    /// Every node's output that is maps (`[1, C, H, W]`).
    All,
    /// None: only the outputs, the top classes and CAM.
    None,
    /// The nodes of these names.
    Names(Vec<String>),
}

impl MapsChoice {
    /// `convs`, `all`, `none`, or comma-separated node names.
    pub fn parse(text: &str) -> std::result::Result<MapsChoice, String> {
        match text.trim() {
            "convs" => Ok(MapsChoice::Convs),
            "all" => Ok(MapsChoice::All),
            "none" => Ok(MapsChoice::None),
            "" => Err("--maps needs convs, all or node names".into()),
            names => Ok(MapsChoice::Names(
                names.split(',').map(|n| n.trim().to_string()).collect(),
            )),
        }
    }
}

/// A whole-network run's own options.
#[derive(Clone, Debug, Default)]
pub struct ModelJob {
    /// The ONNX model.
    pub model: PathBuf,
    /// Which nodes' maps to write.
    pub maps: MapsChoice,
    /// How the photo meets the model's input size.
    pub resize: Resize,
    /// Also run every node's CPU twin and report the differences.
    pub verify: bool,
}

/// The top classes listed per output.
const TOP: usize = 5;

/// Runs `job`'s model over its photo on `engine` and writes everything
/// into `job.out_dir`; `setup` is the engine's making, counted in the
/// total. Errors name the file: the model refused at load (exit 2), the
/// photo, a node name `--maps` gives that the model has not.
pub fn run(
    engine: &dyn Pictures,
    job: &Job,
    model_job: &ModelJob,
    setup: Duration,
) -> Result<ModelSummary> {
    let started = Instant::now();
    check_output_dir(&job.out_dir)?;
    let mut model = net::open(&model_job.model)?;
    let photo = read_photo(job, &model.input, model_job.resize)?;
    let decode = started.elapsed();
    let loading = Instant::now();
    let network = model.network([photo.rgb.height, photo.rgb.width])?;
    if photo.prep.is_none() {
        check_tensor(&photo.rgb, &network)?;
    }
    let input = model_input::model_input(&photo.rgb, photo.prep.as_ref(), &network.input);
    let loaded = choose_and_fuse(network, &model_job.maps, job.page_budget)?;
    let load = loading.elapsed();
    let running = Instant::now();
    let verify = match model_job.verify {
        true => Some(verify_nodes(engine, &loaded.network, &input)?),
        false => None,
    };
    let input_file = job.raw.then(|| (input.shape.clone(), input.data.clone()));
    let input_copy = input.clone();
    let run = engine.run_network(&loaded.network, input, &loaded.keep)?;
    let run_time = running.elapsed();
    let writing = Instant::now();
    let written = write_files(job, &loaded, (&run, &photo.rgb), input_file)?;
    let info = engine.info();
    let network = &loaded.network;
    let mut summary = ModelSummary {
        input: ModelRunInput {
            path: job.input.clone(),
            width: photo.stored.0,
            height: photo.stored.1,
            orientation: photo.stored.2,
            resize: photo.record,
            preprocessing: photo.prep,
        },
        model: model_facts(network, loaded.fused, run.memory),
        nodes: node_reports(network, &run, &written.folders, verify.as_ref()),
        outputs: written.outputs,
        cam: written.cams.first().cloned(),
        cams: written.cams,
        backend: info.backend.name(),
        shader: info.shader_name(),
        adapter: info.adapter.clone(),
        gpu_compute_ms: run.gpu_ms,
        timings_ms: ModelTimings::default(),
        verify: verify.map(|v| v.values().copied().fold(0.0, f64::max)),
        files: written.files,
    };
    let detail = page_detail(job, &loaded, written.maps, (&run, &input_copy));
    let page = super::page::write_model_page(&job.out_dir, &summary, &detail)?;
    summary.files.extend([page, "summary.json".to_string()]);
    summary.timings_ms = ModelTimings {
        decode: ms(decode),
        load: ms(load),
        run: ms(run_time),
        write: ms(writing.elapsed()),
        total: ms(started.elapsed() + setup),
    };
    let json = serde_json::to_vec_pretty(&summary).map_err(|source| Error::Json {
        path: job.out_dir.join("summary.json"),
        source,
    })?;
    write_bytes_atomic(&job.out_dir.join("summary.json"), &json)?;
    Ok(summary)
}

/// What the page embeds beyond the summary: each written node's maps and
/// strip, how they were drawn, and the arithmetic of the convs that fit.
fn page_detail(
    job: &Job,
    loaded: &Loaded,
    written: HashMap<String, (Vec<MapDetail>, serde_json::Value)>,
    (run, input): (&NetRun, &Array),
) -> PageDetail {
    let (maps, strips) = written
        .into_iter()
        .map(|(name, (maps, strip))| ((name.clone(), maps), (name, strip)))
        .unzip();
    let mut detail = PageDetail {
        maps,
        strips,
        drawing: Drawing {
            colormap: job.view.colormap,
            normalize: job.view.normalize,
        },
        ..PageDetail::default()
    };
    let chosen = (&loaded.chosen[..], &loaded.arithmetic[..]);
    let network = (&loaded.network, job.page_budget);
    model_detail::conv_details(network, chosen, run, input, &mut detail);
    detail
}

/// A network with what a run keeps of it.
struct Loaded {
    network: Network,
    /// The nodes whose maps are written, by index, in run order.
    chosen: Vec<usize>,
    /// Where the class activation maps come from, where they apply.
    cam: Option<CamSource>,
    /// The chosen convs whose arithmetic the page embeds.
    arithmetic: Vec<usize>,
    /// The values read back: the chosen nodes', the outputs, CAM's maps,
    /// and the inputs of the convs whose arithmetic the page embeds.
    keep: Vec<ValueId>,
    /// Nodes fused into others.
    fused: usize,
}

/// Chooses the nodes whose maps `maps` asks for (and the outputs that are
/// maps), finds CAM's source, and fuses what no one looks at.
fn choose_and_fuse(mut network: Network, maps: &MapsChoice, budget: usize) -> Result<Loaded> {
    let mut chosen: Vec<ValueId> = chosen_nodes(&network, maps)?
        .into_iter()
        .map(|n| network.nodes[n].output)
        .collect();
    // Outputs that are maps ([1, C, H, W]) are drawn as maps too.
    let drawn: Vec<ValueId> = network
        .outputs
        .iter()
        .copied()
        .filter(|&o| network.values[o].shape.len() == 4 && network.values[o].shape[0] == 1)
        .filter(|o| network.input.layout == Layout::Nchw && !chosen.contains(o))
        .collect();
    chosen.extend(drawn);
    let cam = network
        .outputs
        .iter()
        .find_map(|&o| head::cam_source(&network, o));
    let mut keep = chosen.clone();
    keep.extend(&network.outputs);
    keep.extend(cam.as_ref().map(|c| c.maps));
    let fused = net::fuse::fuse(&mut network, &keep);
    let chosen: Vec<usize> = (0..network.nodes.len())
        .filter(|&n| chosen.contains(&network.nodes[n].output))
        .collect();
    let (arithmetic, inputs) = model_detail::arithmetic_plan((&network, budget), &chosen);
    keep.extend(inputs);
    Ok(Loaded {
        network,
        chosen,
        arithmetic,
        cam,
        keep,
        fused,
    })
}

/// What a run wrote.
struct Written {
    files: Vec<String>,
    folders: HashMap<usize, String>,
    /// Each written node's maps and strip, by node name.
    maps: HashMap<String, (Vec<MapDetail>, serde_json::Value)>,
    outputs: Vec<OutputReport>,
    cams: Vec<CamReport>,
}

/// Writes `input.png` (and `input.npy` with `--raw`), each chosen node's
/// folder, the outputs and the class activation maps.
fn write_files(
    job: &Job,
    loaded: &Loaded,
    (run, rgb): (&NetRun, &Tensor3),
    input_file: Option<(Vec<usize>, Vec<f32>)>,
) -> Result<Written> {
    let network = &loaded.network;
    create_output_dir(&job.out_dir)?;
    let mut files = vec![write_input_png(&job.out_dir, rgb)?];
    if let Some((shape, data)) = input_file {
        npy::write_f32_nd(&job.out_dir.join("input.npy"), &shape, &data)?;
        files.push("input.npy".into());
    }
    let (folders, maps) = write_node_maps(job, network, (&loaded.chosen, rgb), run)?;
    files.extend(folders.values().cloned());
    let outputs = write_outputs(job, network, run, &mut files)?;
    let top = outputs
        .iter()
        .find(|o| !o.top.is_empty())
        .map(|o| o.top.as_slice());
    let cams = match (&loaded.cam, top) {
        (Some(source), Some(top)) => top
            .iter()
            .enumerate()
            .map(|(rank, class)| write_cam(job, network, source, run, (rgb, class.index, rank)))
            .collect::<Result<Vec<_>>>()?,
        _ => Vec::new(),
    };
    files.extend(
        cams.iter()
            .flat_map(|c| [Some(c.file.clone()), c.npy.clone()])
            .flatten(),
    );
    Ok(Written {
        files,
        folders,
        maps,
        outputs,
        cams,
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// The photo (or tensor) as the model takes it.
struct PhotoIn {
    /// At the model's input size, `[3, H, W]`, values 0–1 for a photo.
    rgb: Tensor3,
    /// What was done to its size.
    record: model_input::ResizeRecord,
    /// How its values are read; `None` for a tensor read as it is.
    prep: Option<InputPrep>,
    /// As stored: width, height, and the EXIF orientation applied.
    stored: (u32, u32, Orientation),
}

/// The photo (or `.npy` tensor) of `job`, at the model's input size.
fn read_photo(job: &Job, model: &net::ModelInput, resize: Resize) -> Result<PhotoIn> {
    let file = InputFile::open(&job.input, job.max_pixels, job.apply_orientation)?;
    let orientation = file.orientation();
    let (tensor, prep) = match file.decode()? {
        Input::Photo(photo) => {
            let prep = InputPrep {
                layout: if job.bgr {
                    Channels::Bgr
                } else {
                    Channels::Rgb
                },
                scale: job.input_scale,
                normalization: job.input_norm.clone(),
            };
            prep.validate()?;
            (photo.to_tensor(), Some(prep))
        }
        Input::Tensor(_) if job.bgr || job.input_norm.is_some() || job.input_scale != 1.0 => {
            return Err(Error::InvalidLayer(format!(
                "--bgr, --input-norm and --input-scale read a photo; {} is a tensor, read as it is",
                job.input.display()
            )));
        }
        Input::Tensor(tensor) => (tensor, None),
    };
    let stored = (tensor.width, tensor.height, orientation);
    let (rgb, record) = match prep {
        Some(_) => model_input::resize(&tensor, model, resize)?,
        None => {
            let size = [tensor.width, tensor.height];
            let record = model_input::ResizeRecord {
                mode: "none",
                from: size,
                to: size,
                resized: None,
            };
            (tensor, record)
        }
    };
    Ok(PhotoIn {
        rgb,
        record,
        prep,
        stored,
    })
}

/// Refuses a `.npy` tensor that is not `[3, H, W]`, the model's channels.
fn check_tensor(tensor: &Tensor3, network: &Network) -> Result<()> {
    if tensor.channels != network.input.channels {
        return Err(Error::Mismatch(format!(
            "the tensor is [{}, {}, {}]; the model takes {} channels ({:?})",
            tensor.channels,
            tensor.height,
            tensor.width,
            network.input.channels,
            network.input.layout
        )));
    }
    Ok(())
}

/// The indices of the nodes whose maps are written, in run order.
fn chosen_nodes(network: &Network, maps: &MapsChoice) -> Result<Vec<usize>> {
    let is_maps = |n: &net::Node| net::array::maps_shape(&network.values[n.output].shape).is_some();
    let chosen: Vec<usize> = match maps {
        MapsChoice::None => Vec::new(),
        MapsChoice::Convs => (0..network.nodes.len())
            .filter(|&i| matches!(network.nodes[i].op, Op::Conv(_)))
            .collect(),
        MapsChoice::All => (0..network.nodes.len())
            .filter(|&i| is_maps(&network.nodes[i]) && network.nodes[i].op != Op::View)
            .collect(),
        MapsChoice::Names(names) => {
            let mut chosen = Vec::new();
            for name in names {
                let found = network
                    .nodes
                    .iter()
                    .position(|n| &n.name == name || network.values[n.output].name == *name);
                let index = found.ok_or_else(|| {
                    let some: Vec<&str> = network.nodes.iter().take(8).map(|n| n.name.as_str()).collect();
                    Error::weights(
                        &network.path,
                        format!(
                            "has no node {name:?} that runs (its first: {}; `convmaps layers` and summary.json's nodes list them all)",
                            some.join(", ")
                        ),
                    )
                })?;
                if !is_maps(&network.nodes[index]) {
                    return Err(Error::weights(
                        &network.path,
                        format!(
                            "node {name:?} writes {:?}, not maps [1, C, H, W]",
                            network.values[network.nodes[index].output].shape
                        ),
                    ));
                }
                chosen.push(index);
            }
            chosen
        }
    };
    Ok(chosen)
}

/// Each node index's folder, and each node name's maps and strip.
type NodeMaps = (
    HashMap<usize, String>,
    HashMap<String, (Vec<MapDetail>, serde_json::Value)>,
);

/// Writes each chosen node's maps into its folder; returns the folder of
/// each node index and the maps of each node name.
fn write_node_maps(
    job: &Job,
    network: &Network,
    (chosen, rgb): (&[usize], &Tensor3),
    run: &NetRun,
) -> Result<NodeMaps> {
    let names = folder_names(chosen.iter().map(|&i| network.nodes[i].name.as_str()));
    let mut folders = HashMap::new();
    let mut details = HashMap::new();
    for (&index, folder) in chosen.iter().zip(names) {
        let node = &network.nodes[index];
        let maps = run.values[&node.output]
            .as_maps()
            .expect("chosen nodes write maps");
        let dir = job.out_dir.join(&folder);
        create_output_dir(&dir)?;
        let shape = [
            maps.channels as usize,
            maps.height as usize,
            maps.width as usize,
        ];
        let strip = strip_json(&maps.data, shape);
        details.insert(
            node.name.clone(),
            (write_maps(&dir, &maps, &job.view)?, strip),
        );
        if maps.channels == 1 && network.outputs.contains(&node.output) && rgb.channels == 3 {
            let picture = overlay(&maps.data, [maps.height as usize, maps.width as usize], rgb);
            crate::render::write_png_rgb(&dir.join("overlay.png"), &picture)?;
        }
        // A deep conv's filters (512 of 512 channels each) would make a
        // picture tens of thousands of pixels wide: only those that fit
        // are drawn.
        let layer = conv_layer(network, index).filter(|layer| {
            let layout = FiltersLayout::new(layer, job.view.per_channel_filters);
            layout.width.max(layout.height) <= GRID_MAX_SIDE
        });
        if let Some(layer) = layer {
            write_filters(&dir, &layer, &job.view)?;
        }
        if job.raw {
            npy::write_f32_nd(&dir.join("features.npy"), &shape, &maps.data)?;
        }
        folders.insert(index, folder);
    }
    Ok((folders, details))
}

/// The feature PNGs and the grid of `maps` `[C, H, W]` in `dir`; returns
/// each map's smallest, largest and mean value.
fn write_maps(dir: &Path, maps: &Tensor3, view: &View) -> Result<Vec<MapDetail>> {
    let plane = maps.plane_len();
    let stats: Vec<MapStats> = (0..maps.channels as usize)
        .map(|k| MapStats::of(&maps.data[k * plane..(k + 1) * plane]))
        .collect();
    let ranges = map_ranges(&stats, view);
    let shape = [maps.channels, maps.height, maps.width];
    let mut pictures = StreamedPictures::create(dir, shape, &ranges, view)?;
    let details = stats
        .iter()
        .map(|s| {
            let summary = s.summary();
            [summary.min, summary.max, summary.mean]
        })
        .collect();
    let quantise = Quantise {
        colormap: view.colormap,
        ranges,
    };
    pictures.write_pixels(0, 0, &quantise.pixels_cpu(maps.view()))?;
    pictures.finish(dir)?;
    Ok(details)
}

/// A Conv node's weights as a [`Layer`], for its `filters.png`.
fn conv_layer(network: &Network, index: usize) -> Option<Layer> {
    let node = &network.nodes[index];
    let Op::Conv(conv) = node.op else {
        return None;
    };
    let weight = network.constants.get(&node.inputs[1])?;
    let bias = node
        .inputs
        .get(2)
        .and_then(|b| network.constants.get(b))
        .map_or_else(Vec::new, |b| b.data.clone());
    let [k, cg, fh, fw] = weight.shape[..] else {
        return None;
    };
    let spec = LayerSpec {
        in_channels: cg as u32 * conv.group,
        filters: k as u32,
        kernel_height: fh as u32,
        kernel_width: fw as u32,
        groups: conv.group,
        bias: conv.bias,
        ..LayerSpec::new(3, 1, 1)
    };
    Layer::new(spec, weight.data.clone(), bias).ok()
}

/// The graph's outputs: each one's top classes, and with `--raw` its
/// values as `.npy`.
fn write_outputs(
    job: &Job,
    network: &Network,
    run: &NetRun,
    files: &mut Vec<String>,
) -> Result<Vec<OutputReport>> {
    let names = folder_names(
        network
            .outputs
            .iter()
            .map(|&o| network.values[o].name.as_str()),
    );
    let mut outputs = Vec::new();
    for (&value, name) in network.outputs.iter().zip(names) {
        let array = &run.values[&value];
        let softmaxed = network
            .writer(value)
            .is_some_and(|n| matches!(n.op, Op::Softmax { .. }));
        let top = match head::is_scores(&array.shape) {
            true => head::top_classes(&array.data, TOP, softmaxed),
            false => Vec::new(),
        };
        let npy = match job.raw {
            true => {
                let file = format!("output_{name}.npy");
                npy::write_f32_nd(&job.out_dir.join(&file), &array.shape, &array.data)?;
                files.push(file.clone());
                Some(file)
            }
            false => None,
        };
        outputs.push(OutputReport {
            name: network.values[value].name.clone(),
            shape: array.shape.clone(),
            npy,
            top,
        });
    }
    Ok(outputs)
}

/// Writes the class activation map of `class`, the `rank`-th most likely
/// (from 0), scaled to the photo, coloured and laid over it at half
/// opacity: `cam.png` for the top class, `cam_2.png` … for the next (and
/// the `.npy` of its values with `--raw`).
fn write_cam(
    job: &Job,
    network: &Network,
    source: &CamSource,
    run: &NetRun,
    (rgb, class, rank): (&Tensor3, usize, usize),
) -> Result<CamReport> {
    let name = match rank {
        0 => "cam".to_string(),
        rank => format!("cam_{}", rank + 1),
    };
    let maps = &run.values[&source.maps];
    let weight = &network.constants[&source.weight];
    let cam = head::cam(source, maps, weight, class);
    let (h, w) = (cam.shape[0], cam.shape[1]);
    let file = format!("{name}.png");
    let picture = overlay(&cam.data, [h, w], rgb);
    crate::render::write_png_rgb(&job.out_dir.join(&file), &picture)?;
    let npy = match job.raw {
        true => {
            let npy = format!("{name}.npy");
            npy::write_f32_nd(&job.out_dir.join(&npy), &[h, w], &cam.data)?;
            Some(npy)
        }
        false => None,
    };
    let classes = network.values[source.logits]
        .shape
        .iter()
        .product::<usize>();
    Ok(CamReport {
        file,
        npy,
        class,
        label: label_of(class, classes),
        maps: network.values[source.maps].name.clone(),
        size: [h, w],
    })
}

/// `values` `[h, w]` stretched over their own range, scaled to the photo,
/// coloured (turbo) and laid over it at half opacity.
fn overlay(values: &[f32], [h, w]: [usize; 2], rgb: &Tensor3) -> image::RgbImage {
    let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let unit: Vec<f32> = values
        .iter()
        .map(|v| (v - lo) / (hi - lo).max(1e-12))
        .collect();
    let small =
        image::ImageBuffer::<image::Luma<f32>, Vec<f32>>::from_raw(w as u32, h as u32, unit)
            .expect("h·w values");
    let big = image::imageops::resize(
        &small,
        rgb.width,
        rgb.height,
        image::imageops::FilterType::Triangle,
    );
    let plane = rgb.plane_len();
    let mut picture = image::RgbImage::new(rgb.width, rgb.height);
    for (p, (pixel, heat)) in picture.pixels_mut().zip(big.pixels()).enumerate() {
        let colour = Colormap::Turbo.colour(heat[0]);
        for c in 0..3 {
            let photo = rgb.data[c * plane + p].clamp(0.0, 1.0) * 255.0;
            pixel[c] = (0.5 * photo + 0.5 * colour[c] as f32).round() as u8;
        }
    }
    picture
}

/// Class `class`'s label among `classes`.
fn label_of(class: usize, classes: usize) -> String {
    let mut scores = vec![0.0; classes];
    scores[class] = 1.0;
    head::top_classes(&scores, 1, true)
        .first()
        .map_or_else(|| format!("class {class}"), |t| t.label.clone())
}

/// `input.png`: the photo as the model sees it (resized, before its
/// values are normalised).
fn write_input_png(dir: &Path, rgb: &Tensor3) -> Result<String> {
    let plane = rgb.plane_len();
    let mut picture = image::RgbImage::new(rgb.width, rgb.height);
    for (p, pixel) in picture.pixels_mut().enumerate() {
        for c in 0..3 {
            pixel[c] = (rgb.data[c * plane + p].clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    crate::render::write_png_rgb(&dir.join("input.png"), &picture)?;
    Ok("input.png".into())
}

/// Runs every node on the engine and on its CPU twin; each node's worst
/// difference relative to the largest |value| of the twin's output.
fn verify_nodes(
    engine: &dyn Pictures,
    network: &Network,
    input: &Array,
) -> Result<HashMap<usize, f64>> {
    let all: Vec<ValueId> = network.nodes.iter().map(|n| n.output).collect();
    let twin = net::cpu::run(network, input.clone(), &all)?;
    let ran = engine.run_network(network, input.clone(), &all)?;
    let mut worst = HashMap::new();
    for (index, node) in network.nodes.iter().enumerate() {
        let (want, got) = (&twin.values[&node.output], &ran.values[&node.output]);
        let scale = want
            .data
            .iter()
            .fold(0.0f32, |m, v| m.max(v.abs()))
            .max(1e-30);
        let error = got
            .data
            .iter()
            .zip(&want.data)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        worst.insert(index, (error / scale) as f64);
    }
    Ok(worst)
}

/// Each node's entry of the summary.
fn node_reports(
    network: &Network,
    run: &NetRun,
    folders: &HashMap<usize, String>,
    verify: Option<&HashMap<usize, f64>>,
) -> Vec<NodeReport> {
    let fields = net::field::fields(network);
    network
        .nodes
        .iter()
        .enumerate()
        .map(|(index, node)| NodeReport {
            name: node.name.clone(),
            op: node.op_type.clone(),
            inputs: node
                .inputs
                .iter()
                .map(|&v| network.values[v].name.clone())
                .collect(),
            outputs: vec![network.values[node.output].name.clone()],
            shape: network.values[node.output].shape.clone(),
            parameters: network.parameters(node),
            flops: network.flops(node),
            ms: run.node_ms.get(index).copied(),
            folder: folders.get(&index).cloned(),
            fused: node.fused.clone(),
            field: fields[node.output],
            verify: verify.and_then(|v| v.get(&index).copied()),
        })
        .collect()
}

/// The model's facts for the summary: `fused` nodes fused away, and the
/// run's `memory`.
fn model_facts(network: &Network, fused: usize, memory: NetMemory) -> ModelFacts {
    ModelFacts {
        path: network.path.clone(),
        input_name: network.input.name.clone(),
        layout: network.input.layout,
        input_shape: network.values[network.input_value].shape.clone(),
        fixed_size: network.input.size,
        nodes: network.nodes.len(),
        folded: network.folded,
        parameters: network.nodes.iter().map(|n| network.parameters(n)).sum(),
        flops: network.nodes.iter().map(|n| network.flops(n)).sum(),
        memory_bytes: memory.total(),
        memory,
        fused,
    }
}
