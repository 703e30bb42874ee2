//! The `convmaps` command line: parses options and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use convmaps::banks::Init;
use convmaps::engine::{self, BackendChoice, CpuEngine, Engine};
use convmaps::gpu::{Gpu, ShaderKind};
use convmaps::graph::StackOptions;
use convmaps::inputs;
use convmaps::job::{self, Job, StackJob, Stage, Step, View};
use convmaps::layer::{Activation, Geometry, PaddingMode};
use convmaps::model::load::FoldBatchNorm;
use convmaps::preprocess::Normalization;
use convmaps::render::colormap::{Colormap, Normalize};
use convmaps::resolve::{ExplicitGeometry, LayerOptions, WeightsSource};
use convmaps::settings::Settings;
use convmaps::weights::DEFAULT_SEED;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// Run one convolutional layer over a photo on the GPU and save what each
/// filter sees as feature-map PNGs.
///
/// Example: convmaps assets/photo.png --filters 32
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about = None,
    allow_negative_numbers = true,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Photos (PNG, JPEG, BMP, GIF, TIFF or WebP), or folders of photos.
    #[arg(required = true, value_name = "PHOTO")]
    inputs: Vec<PathBuf>,

    /// Number of filters K (output maps).
    #[arg(short = 'k', long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65535))]
    filters: u32,

    /// Kernel size: F for F×F, or FHxFW (height × width), e.g. 5x3.
    #[arg(short = 'f', long, default_value = "5", value_parser = parse_kernel_size)]
    kernel_size: (u32, u32),

    /// Step between windows, in pixels.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    stride: u32,

    /// Zero padding: valid (none), same (output as large as the input; stride 1 only), or N pixels on every side.
    #[arg(long, default_value = "valid", value_parser = parse_padding)]
    padding: PaddingMode,

    /// Step between kernel taps, in pixels.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    dilation: u32,

    /// Groups G: each filter sees C/G input channels. Must divide C and K.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    groups: u32,

    /// Applied after the bias, in the shader: none, or relu (max(0, x)).
    #[arg(long, value_enum, default_value_t = ActivationArg::None)]
    activation: ActivationArg,

    /// A layer without biases (PyTorch's bias=False).
    #[arg(long)]
    no_bias: bool,

    /// Initial weights: random (PyTorch's Conv2d default), or a built-in bank
    /// whose maps mean something: edges, gabor, opponent, blur, identity, mixed.
    #[arg(long, default_value = "random", value_parser = parse_init, conflicts_with = "weights")]
    init: Init,

    /// Seed of the default initialisation (PyTorch's Conv2d default, uniform ±1/√(C·F·F)).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,

    /// Load the weights instead of initialising them: a model file (.safetensors,
    /// PyTorch .pt/.pth/.bin, ONNX .onnx) holding conv layers, or a .npy weight
    /// [K, C/G, FH, FW] (with --bias or --no-bias). K and the kernel size come from
    /// the file; in ONNX so do the stride, padding, dilation and groups. Any float
    /// dtype (f16, bf16, f32, f64) is read as f32.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,

    /// The bias [K] as .npy, with --weights W.npy.
    #[arg(long, value_name = "FILE", requires = "weights")]
    bias: Option<PathBuf>,

    /// Which conv of a model file: its name (`conv1` for conv1.weight and conv1.bias in
    /// a state dict; the node's name in ONNX). Default: the conv that sees the model's
    /// input (the first Conv fed by the graph's input in ONNX; in a state dict the first
    /// 4-D *.weight that reads 1, 3 or 4 channels).
    #[arg(long, value_name = "NAME", requires = "weights")]
    layer_name: Option<String>,

    /// Fold the BatchNorm after the conv into its weights and one bias per filter:
    /// w·γ/√(σ²+ε) and (b − μ)·γ/√(σ²+ε) + β. In ONNX the BatchNormalization fed by
    /// the Conv; in a state dict name it: --fold-bn bn1 (bn1.weight, bn1.bias,
    /// bn1.running_mean, bn1.running_var).
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "", requires = "weights")]
    fold_bn: Option<String>,

    /// ε of a folded BatchNorm whose file does not state it (state dicts).
    #[arg(long, value_name = "EPS", default_value_t = 1e-5, requires = "fold_bn")]
    bn_eps: f32,

    /// A stack of layers instead of one: comma-separated items, top to bottom. A conv is
    /// KxF or KxFHxFW, optionally with /sS (stride), /pP or /psame (padding), /dD
    /// (dilation), /gG (groups): 32x5,relu,maxpool2,64x3/s2/p1. Other items: relu,
    /// maxpoolN (N×N, stride N), maxpoolN/sS. With --weights MODEL, a conv may be a layer
    /// name of the model (conv1,relu,conv2). Each conv writes its maps, taken after the
    /// items that follow it, to a folder of its own; CLI convs are seeded --seed, --seed+1, …
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["filters", "kernel_size", "stride", "padding", "dilation", "groups", "activation", "layer_name", "bias"])]
    layers: Option<String>,

    /// Run a whole network: an ONNX model (its weights inside it or in the
    /// external data file beside it, as torch.onnx.export writes them). The
    /// photo is resized to the size the model fixes; every Conv node's maps
    /// (see --maps), the top 5 classes and where the model looked (cam.png)
    /// are written.
    #[arg(long, value_name = "FILE.onnx", conflicts_with_all = ["weights", "filters", "kernel_size", "stride", "padding", "dilation", "groups", "activation", "layer_name", "bias", "fold_bn", "init"])]
    model: Option<PathBuf>,

    /// With --model: whose maps to write: convs (every Conv node's output),
    /// all (every node's output that is maps), none (only the top classes
    /// and CAM), or node names, comma-separated.
    #[arg(long, value_name = "WHICH", requires = "model", value_parser = convmaps::job::model::MapsChoice::parse)]
    maps: Option<convmaps::job::model::MapsChoice>,

    /// With --model: how the photo meets the model's input size: fit (shorter
    /// side to fit, then the centre cropped, as torchvision's evaluation
    /// transforms do), exact (stretched), or WxH (a model of dynamic size).
    #[arg(long, value_name = "HOW", requires = "model", default_value = "fit", value_parser = convmaps::net::input::Resize::parse)]
    resize: convmaps::net::input::Resize,

    /// With --model: also run every node's CPU twin and report how far each
    /// node's output is from it (nodes[].verify in summary.json).
    #[arg(long, requires = "model")]
    verify: bool,

    /// With --model: print each node's op, output shape, parameters, FLOPs
    /// and time.
    #[arg(long, requires = "model")]
    profile: bool,

    /// Output directory [default: out/<photo file stem>/]. With several photos,
    /// each goes into DIR/<photo file stem>/.
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,

    /// Also write features.npy: the raw f32 maps, shape (K, OH, OW).
    #[arg(long)]
    raw: bool,

    /// Colour map of the pictures: gray, viridis, magma, inferno, plasma, cividis, turbo
    /// (sequential), or rdbu, puor, brbg (diverging, centred on zero: red is positive in rdbu).
    #[arg(long, default_value = "gray", value_parser = parse_colormap)]
    colormap: Colormap,

    /// Range each map's colours span: per-map (each map stretched on its own), global (one
    /// scale for all maps, so they compare), or LO,HI (fixed across runs, e.g. -1,1).
    /// A diverging colour map's range is made symmetric around zero.
    #[arg(long, default_value = "per-map", value_parser = Normalize::parse, allow_hyphen_values = true)]
    normalize: Normalize,

    /// In filters.png, draw each input channel of a filter as its own grey tile.
    #[arg(long)]
    per_channel_filters: bool,

    /// Largest photo, and largest output map, accepted, in pixels (checked before decoding).
    #[arg(long, default_value_t = convmaps::photo::DEFAULT_MAX_PIXELS, value_name = "PIXELS")]
    max_pixels: u64,

    /// Most MiB of copies of convs' inputs and weights a stack's or a network's
    /// page embeds, in run order, to show one value's arithmetic and edit a filter.
    #[arg(long, value_name = "MIB", default_value_t = convmaps::render::arithmetic::DEFAULT_BUDGET_MIB,
          value_parser = clap::value_parser!(u32).range(0..=1024))]
    page_budget: u32,

    /// With --model: most MB of GPU memory a run may hold at once; a run that
    /// needs more is refused before it starts. Default: on a software GPU the
    /// host memory available; on a hardware GPU no limit but its buffer sizes
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    gpu_memory: Option<u64>,

    /// Per-channel normalisation of the input, after scaling, as the model was
    /// trained: none, imagenet (mean 0.485,0.456,0.406, std 0.229,0.224,0.225), or
    /// MEANS/STDS such as 0.5,0.5,0.5/0.25,0.25,0.25.
    #[arg(long, value_name = "NORM", default_value = "none", value_parser = parse_input_norm)]
    input_norm: InputNorm,

    /// The input's values: 1 for 0–1 (the default), 255 for 0–255.
    #[arg(long, value_name = "SCALE", default_value = "1", value_parser = parse_input_scale)]
    input_scale: u32,

    /// Read the photo's channels in blue, green, red order (models trained on BGR).
    #[arg(long)]
    bgr: bool,

    /// Keep the photo's stored pixels: do not turn it upright as its EXIF
    /// orientation says (photo viewers do; so does convmaps by default).
    #[arg(long)]
    ignore_orientation: bool,

    /// Print only errors.
    #[arg(short, long)]
    quiet: bool,

    /// The WGSL shader that runs the layer on the GPU: fast (the default), or direct
    /// (one invocation per output pixel per filter: the teaching shader, slow).
    #[arg(long, alias = "kernel", value_enum, default_value_t = ShaderArg::Fast)]
    shader: ShaderArg,

    /// Which geometry options were given on the command line (not parsed: set from
    /// the matches).
    #[arg(skip)]
    explicit: ExplicitGeometry,

    /// Where the layer runs: auto (GPU if wgpu finds one, else CPU), gpu, or cpu.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    backend: BackendArg,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List every conv layer of a model file (.safetensors, .pt/.pth/.bin, .onnx)
    /// with its weight shape, geometry, bias, the BatchNorm after it and its
    /// parameter count. Runs nothing; needs no GPU.
    Layers {
        /// The model file.
        #[arg(value_name = "MODEL")]
        model: PathBuf,
        /// Print the table as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Time each shader on this machine's GPU: compute time and GFLOP/s for
    /// a few photo sizes (random weights, PyTorch's default init).
    Bench(BenchArgs),
}

/// The options of `convmaps bench`.
#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// Photo sizes, WIDTHxHEIGHT, comma-separated (default 512x384,1024x768).
    /// With --model: the input sizes of a model of dynamic size (default
    /// 224x224; a model that fixes its size runs at it).
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<(u32, u32)>,
    /// Time a whole network's forward pass instead: an ONNX model, warm (one
    /// untimed pass first), with BatchNorms, activations and residual Adds
    /// fused as a `--maps none` run fuses them. Prints the median and
    /// fastest pass on the GPU's clock, the median wall time and the memory.
    #[arg(long, value_name = "FILE.onnx", conflicts_with_all = ["filters", "kernel_size", "bandwidth"])]
    model: Option<std::path::PathBuf>,
    /// Filters K.
    #[arg(short = 'k', long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=65535))]
    filters: u32,
    /// Kernel size F (F×F).
    #[arg(short = 'f', long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=63))]
    kernel_size: u32,
    /// Timed runs per case (after one warm-up run); the fastest counts (with
    /// --model: the median and the fastest are printed).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeats: u32,
    /// The WGSL shaders to time, comma-separated.
    #[arg(
        long,
        alias = "kernels",
        value_enum,
        value_delimiter = ',',
        default_value = "direct,fast"
    )]
    shaders: Vec<ShaderArg>,
    /// Also time the CPU reference (slow).
    #[arg(long)]
    cpu: bool,
    /// The GPU's memory bandwidth in GB/s (10⁹ bytes/s), e.g. 4800 for an
    /// H200: adds the roofline, the time writing the output alone takes.
    #[arg(long, value_name = "GB_PER_S", value_parser = parse_bandwidth)]
    bandwidth: Option<f64>,
    /// Also print the rows as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parse = |part: &str| part.trim().parse::<u32>().ok().filter(|&v| v > 0);
    match text
        .split_once(['x', 'X', '×'])
        .map(|(w, h)| (parse(w), parse(h)))
    {
        Some((Some(width), Some(height))) => Ok((width, height)),
        _ => Err(format!(
            "expected WIDTHxHEIGHT, e.g. 1024x768, got {text:?}"
        )),
    }
}

fn parse_bandwidth(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!(
            "expected a bandwidth in GB/s above zero, e.g. 4800, got {text:?}"
        )),
    }
}

/// `convmaps bench --model`: the network's forward pass on each engine, at
/// each size (the model's own where it fixes one).
fn bench_model(
    model: &std::path::Path,
    sizes: &[(u32, u32)],
    repeats: u32,
    (engines, json): (&[Box<dyn Engine>], bool),
) -> anyhow::Result<()> {
    let sizes = match sizes.is_empty() {
        true => vec![(224, 224)],
        false => sizes.to_vec(),
    };
    let mut rows = Vec::new();
    let mut timed = Vec::new();
    for (width, height) in sizes {
        let (network, input) = convmaps::net_bench::network(model, [height, width])?;
        // A model that fixes its size runs at it, whatever size was asked.
        if timed.contains(&input.shape) {
            continue;
        }
        timed.push(input.shape.clone());
        for engine in engines {
            rows.push(convmaps::net_bench::measure(
                engine.as_ref(),
                &network,
                &input,
                repeats,
            )?);
        }
    }
    println!("{}", convmaps::net_bench::table(&rows));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

/// `convmaps layers`: the model's conv layers and their parameter counts.
fn layers(model: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let table = convmaps::model::table::layer_table(model)?;
    let onnx = model
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
    let network = onnx.then(|| convmaps::net::check::check(model));
    if json {
        let mut value = serde_json::to_value(&table)?;
        if let (Some(network), Some(object)) = (&network, value.as_object_mut()) {
            object.insert("network".into(), serde_json::to_value(network)?);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{}", convmaps::model::table::table_text(&table));
        if let Some(network) = network {
            println!("{}", network.text());
        }
    }
    Ok(())
}

/// `convmaps bench`: the shaders on this GPU (and optionally the CPU), each
/// run in the bands a photo of that size takes.
fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        sizes,
        model,
        filters,
        kernel_size,
        repeats,
        shaders,
        cpu,
        bandwidth,
        json,
    } = args;
    let mut engines: Vec<Box<dyn Engine>> = Vec::new();
    if !shaders.is_empty() {
        let settings = read_settings()?;
        let gpu = std::sync::Arc::new(Gpu::with_cache(&settings.cache_dir)?);
        for shader in shaders {
            let engine = engine::gpu_engine(gpu.clone(), shader.into(), &settings)?;
            engines.push(Box::new(engine));
        }
    }
    if cpu {
        engines.push(Box::new(CpuEngine));
    }
    if let Some(model) = model {
        return bench_model(&model, &sizes, repeats, (&engines, json));
    }
    let sizes = match sizes.is_empty() {
        true => vec![(512, 384), (1024, 768)],
        false => sizes,
    };
    let mut rows = Vec::new();
    for (width, height) in sizes {
        let (image, layer) = convmaps::bench::case(width, height, filters, kernel_size)?;
        for engine in &engines {
            let info = engine.info();
            rows.push(convmaps::bench::measure(
                info.shader_name(),
                &info.adapter_line(),
                &image,
                &layer,
                repeats,
                bandwidth.filter(|_| info.adapter.is_some()),
                || convmaps::bench::time_planned(engine.as_ref(), &image, &layer),
            )?);
        }
    }
    println!("{}", convmaps::bench::table(&rows));
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ShaderArg {
    Direct,
    Fast,
}

impl From<ShaderArg> for ShaderKind {
    fn from(shader: ShaderArg) -> Self {
        match shader {
            ShaderArg::Direct => ShaderKind::Direct,
            ShaderArg::Fast => ShaderKind::Fast,
        }
    }
}

/// Options that do not go together on the command line (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ActivationArg {
    None,
    Relu,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BackendArg {
    Auto,
    Gpu,
    Cpu,
}

fn parse_kernel_size(text: &str) -> Result<(u32, u32), String> {
    let parse = |part: &str| -> Result<u32, String> {
        match part.trim().parse::<u32>() {
            Ok(0) => Err("the kernel size must be at least 1".into()),
            Ok(v) => Ok(v),
            Err(_) => Err(format!("expected F or FHxFW (e.g. 5 or 5x3), got {text:?}")),
        }
    };
    match text.split_once(['x', 'X', '×']) {
        Some((height, width)) => Ok((parse(height)?, parse(width)?)),
        None => parse(text).map(|f| (f, f)),
    }
}

fn parse_input_scale(text: &str) -> Result<u32, String> {
    match text.trim() {
        "1" => Ok(1),
        "255" => Ok(255),
        _ => Err(format!(
            "expected 1 (values 0–1) or 255 (values 0–255), got {text:?}"
        )),
    }
}

/// `--input-norm`: a normalisation, or none.
#[derive(Clone, Debug)]
struct InputNorm(Option<Normalization>);

fn parse_input_norm(text: &str) -> Result<InputNorm, String> {
    Normalization::parse(text).map(InputNorm)
}

fn parse_colormap(text: &str) -> Result<Colormap, String> {
    Colormap::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Colormap::ALL.iter().map(|c| c.name()).collect();
        format!("expected one of {}, got {text:?}", names.join(", "))
    })
}

fn parse_init(text: &str) -> Result<Init, String> {
    Init::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Init::ALL.iter().map(|i| i.name()).collect();
        format!("expected one of {}, got {text:?}", names.join(", "))
    })
}

fn parse_padding(text: &str) -> Result<PaddingMode, String> {
    match text {
        "valid" => Ok(PaddingMode::Valid),
        "same" => Ok(PaddingMode::Same),
        _ => text
            .parse::<u32>()
            .map(PaddingMode::Pixels)
            .map_err(|_| format!("expected valid, same or a number of pixels, got {text:?}")),
    }
}

/// A progress bar on stderr when it is a terminal and the user did not ask
/// for quiet; `None` otherwise (plain lines are printed instead).
fn progress_bar(quiet: bool) -> Option<ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(1);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

/// Where the parameters come from, refusing options that do not go together.
fn weights_source(cli: &Cli) -> Result<WeightsSource, UsageError> {
    let usage = |message: &str| Err(UsageError(message.to_string()));
    let Some(path) = cli.weights.clone() else {
        return Ok(WeightsSource::Init {
            init: cli.init,
            seed: cli.seed,
        });
    };
    let is_npy = convmaps::npy::is_npy(&path);
    if is_npy {
        if cli.layer_name.is_some() {
            return usage("--layer-name picks a conv inside a model file, not a .npy");
        }
        if cli.fold_bn.is_some() {
            return usage("--fold-bn folds a BatchNorm of a model file, not of a .npy");
        }
        if cli.bias.is_none() && !cli.no_bias {
            return usage(
                "--weights W.npy needs --bias B.npy, or --no-bias for a layer without biases",
            );
        }
        if cli.bias.is_some() && cli.no_bias {
            return usage("--bias and --no-bias contradict each other");
        }
        Ok(WeightsSource::Npy {
            weight: path,
            bias: cli.bias.clone(),
        })
    } else {
        if cli.bias.is_some() {
            return usage(
                "--bias B.npy goes with --weights W.npy; a model file holds its own bias",
            );
        }
        if cli.fold_bn.is_some() && cli.no_bias {
            return usage(
                "--fold-bn gives each filter the bias its BatchNorm needs; --no-bias would drop it",
            );
        }
        Ok(WeightsSource::Model {
            path,
            layer_name: cli.layer_name.clone(),
            fold_bn: cli.fold_bn.as_ref().map(|name| FoldBatchNorm {
                name: Some(name.clone()).filter(|n| !n.is_empty()),
                epsilon: cli.bn_eps,
                if_present: false,
            }),
        })
    }
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let given = |id: &str| matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine);
    cli.explicit = ExplicitGeometry {
        stride: given("stride"),
        padding: given("padding"),
        dilation: given("dilation"),
        groups: given("groups"),
    };
    quiet_driver_runtime_dir();
    let result = match cli.command.take() {
        Some(Command::Layers { model, json }) => layers(&model, json),
        Some(Command::Bench(args)) => bench(args),
        None => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let bad_input = error.is::<UsageError>()
                || error
                    .downcast_ref::<convmaps::Error>()
                    .is_some_and(convmaps::Error::is_bad_input);
            ExitCode::from(if bad_input { 2 } else { 1 })
        }
    }
}

/// The layer options as the command line gives them.
fn layer_options(cli: &Cli) -> LayerOptions {
    LayerOptions {
        geometry: Geometry {
            filters: cli.filters,
            kernel_size: cli.kernel_size,
            stride: cli.stride,
            padding: cli.padding,
            dilation: cli.dilation,
            groups: cli.groups,
        },
        bias: !cli.no_bias,
        explicit: cli.explicit,
        activation: match cli.activation {
            ActivationArg::None => Activation::None,
            ActivationArg::Relu => Activation::Relu,
        },
    }
}

/// Gives the GPU drivers a private runtime directory when the environment
/// has no valid one (a headless machine, a container), so that a successful
/// run does not print the driver's `error: XDG_RUNTIME_DIR is invalid`
/// line; the directory is the user's own, `convmaps-runtime-<uid>` in the
/// temporary directory, reused by later runs. Called first thing, before
/// any thread starts.
#[cfg(unix)]
fn quiet_driver_runtime_dir() {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let valid = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .is_some_and(|dir| dir.is_absolute() && dir.is_dir());
    let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return;
    };
    if valid {
        return;
    }
    let dir = std::env::temp_dir().join(format!("convmaps-runtime-{me}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    // Only a directory of our own that nobody else can enter will do.
    let ours = std::fs::symlink_metadata(&dir)
        .is_ok_and(|m| m.is_dir() && m.uid() == me && m.mode() & 0o077 == 0);
    if ours {
        // SAFETY: no other thread exists yet to read the environment.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
    }
}

#[cfg(not(unix))]
fn quiet_driver_runtime_dir() {}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = read_settings()?;
    settings.gpu_memory = cli.gpu_memory.map(|mb| mb.saturating_mul(1_000_000));
    let weights = weights_source(&cli)?;
    let model_job = model_job(&cli)?;
    let stack = if model_job.is_some() {
        None
    } else {
        stack_job(&cli)?
    };
    if stack.is_none() && matches!(weights, WeightsSource::Init { .. }) {
        // Photos have three channels; a file's layer is checked against each photo.
        layer_options(&cli).validate(3)?;
    }
    let photos = inputs::expand(&cli.inputs)?;
    let out_dirs = inputs::output_dirs(&photos, cli.out.as_deref());
    for dir in &out_dirs {
        convmaps::output::check_output_dir(dir)?;
    }

    let started = Instant::now();
    let choice = match cli.backend {
        BackendArg::Auto => BackendChoice::Auto,
        BackendArg::Gpu => BackendChoice::Gpu,
        BackendArg::Cpu => BackendChoice::Cpu,
    };
    let (engine, notice) = engine::open(choice, cli.shader.into(), &settings)?;
    if let Some(notice) = notice {
        eprintln!("note: {notice}");
    }
    // The device and pipeline are made once; only the first run pays for them.
    let mut setup = started.elapsed();

    let bar = progress_bar(cli.quiet);
    let mut failures = Vec::new();
    let mut all_bad_input = true;
    for (index, (photo, out_dir)) in photos.iter().zip(out_dirs).enumerate() {
        let mut job = job_for(&cli, photo, out_dir, &weights);
        job.stack = stack.clone();
        job.settings = settings.clone();
        let label = format!("[{}/{}] {}", index + 1, photos.len(), photo.display());
        if bar.is_none() && !cli.quiet && photos.len() > 1 {
            println!("{label}");
        }
        let setup = std::mem::take(&mut setup);
        let progress = |step| show_progress(bar.as_ref(), &label, step);
        let result = match &model_job {
            Some(model_job) => {
                job::model::run(engine.as_ref(), &job, model_job, setup).map(|summary| {
                    let profile = if cli.profile {
                        summary.profile_text()
                    } else {
                        String::new()
                    };
                    format!("{profile}{}", summary.terminal_text(&job.out_dir))
                })
            }
            None => job::run(engine.as_ref(), &job, setup, &progress)
                .map(|summary| summary.terminal_text(&job.out_dir)),
        };
        match result {
            Ok(text) if !cli.quiet => print_above(bar.as_ref(), &format!("{text}\n")),
            Ok(_) => {}
            Err(error) if photos.len() == 1 => return Err(error.into()),
            Err(error) => {
                all_bad_input &= error.is_bad_input();
                let line = format!("error: {:#}", anyhow::Error::from(error));
                match &bar {
                    Some(bar) => bar.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
                failures.push(photo.display().to_string());
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    failed(&failures, photos.len(), all_bad_input)
}

/// The whole-network run `--model` asks for; `--layers` then names the
/// model's own nodes, as `--maps` does.
fn model_job(cli: &Cli) -> anyhow::Result<Option<job::model::ModelJob>> {
    let Some(model) = cli.model.clone() else {
        return Ok(None);
    };
    let maps = match (&cli.layers, &cli.maps) {
        (Some(_), Some(_)) => {
            return Err(UsageError(
                "--layers with --model names nodes as --maps does; give one of them".into(),
            )
            .into());
        }
        (Some(names), None) => job::model::MapsChoice::parse(names).map_err(UsageError)?,
        (None, maps) => maps.clone().unwrap_or_default(),
    };
    Ok(Some(job::model::ModelJob {
        model,
        maps,
        resize: cli.resize,
        verify: cli.verify,
    }))
}

/// Every `CONVMAPS_*` switch, read once from the environment; a value a
/// variable does not take is refused (exit 2), naming it.
fn read_settings() -> anyhow::Result<Settings> {
    Ok(Settings::from_lookup(|name| std::env::var_os(name))?)
}

/// The stack `--layers` asks for, parsed, with what its convs are made of.
fn stack_job(cli: &Cli) -> anyhow::Result<Option<StackJob>> {
    let Some(spec) = &cli.layers else {
        return Ok(None);
    };
    let model = cli
        .weights
        .clone()
        .filter(|path| !convmaps::npy::is_npy(path));
    if cli.weights.is_some() && model.is_none() {
        return Err(UsageError(
            "--layers with --weights needs a model file; a .npy holds one conv".into(),
        )
        .into());
    }
    if cli.fold_bn.as_ref().is_some_and(|name| !name.is_empty()) {
        return Err(UsageError(
            "--fold-bn NAME names one BatchNorm; with --layers, --fold-bn (no name) folds the one \
             after each conv that has one"
                .into(),
        )
        .into());
    }
    let items = convmaps::graph::spec::parse(spec, model.is_some())?;
    Ok(Some(StackJob {
        spec: spec.clone(),
        items,
        options: StackOptions {
            bias: !cli.no_bias,
            init: cli.init,
            seed: cli.seed,
            fold_bn: cli.fold_bn.as_ref().map(|_| FoldBatchNorm {
                name: None,
                epsilon: cli.bn_eps,
                if_present: true,
            }),
            model,
            max_pixels: cli.max_pixels,
        },
    }))
}

/// The outcome of a run over `photos` photos, `failures` of which failed:
/// an error naming them (exit 2 when every photo was refused for its input
/// or the options, as one photo would be; else 1).
fn failed(failures: &[String], photos: usize, all_bad_input: bool) -> anyhow::Result<()> {
    if failures.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} of {photos} photos failed: {}",
        failures.len(),
        failures.join(", ")
    );
    if failures.len() == photos && all_bad_input {
        return Err(UsageError(message).into());
    }
    anyhow::bail!(message)
}

/// The job for one photo, from the command line's options.
fn job_for(cli: &Cli, photo: &std::path::Path, out_dir: PathBuf, weights: &WeightsSource) -> Job {
    Job {
        input: photo.to_path_buf(),
        out_dir,
        layer: layer_options(cli),
        weights: weights.clone(),
        raw: cli.raw,
        view: View {
            colormap: cli.colormap,
            normalize: cli.normalize,
            per_channel_filters: cli.per_channel_filters,
        },
        max_pixels: cli.max_pixels,
        page_budget: (cli.page_budget as usize) << 20,
        apply_orientation: !cli.ignore_orientation,
        input_scale: cli.input_scale as f32,
        input_norm: cli.input_norm.0.clone(),
        bgr: cli.bgr,
        stack: None,
        settings: Settings::default(),
    }
}

/// Moves the progress bar, when there is one, to `step` of the photo `label`.
fn show_progress(bar: Option<&ProgressBar>, label: &str, step: Step) {
    if let Some(bar) = bar {
        let stage = match step.stage {
            Stage::Compute => "computing",
            Stage::Encode => "writing",
        };
        bar.set_message(format!("{label}: {stage}"));
        bar.set_length(step.total.max(1));
        bar.set_position(step.done);
    }
}

/// Prints `text` on stdout, above the progress bar when there is one.
fn print_above(bar: Option<&ProgressBar>, text: &str) {
    match bar {
        Some(bar) => {
            bar.set_position(0);
            bar.suspend(|| println!("{text}"));
        }
        None => println!("{text}"),
    }
}
