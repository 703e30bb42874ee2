//! The page of a run, one layer or a stack: the input's preview,
//! `index.html`, and for one layer one picture per filter.

use std::path::Path;

use rayon::prelude::*;

use super::{INPUT_PREVIEW_SIDE, Job, View};
use crate::banks::Init;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::input::Input;
use crate::layer::Layer;
use crate::output::write_bytes_atomic;
use crate::preprocess::InputPrep;
use crate::render::arithmetic::Embedded;
use crate::render::explore::{Drawing, WrittenMaps, explore_data};
use crate::render::filters::{filter_tile, filter_zoom};
use crate::render::html::{Live, Page, PageMap, StackLayer, StackPage, index_html};
use crate::render::live::{LiveStart, live_data};
use crate::render::{self};
use crate::report::{OneLayer, Summary};
use crate::resolve::WeightsSource;
use crate::weights::DEFAULT_SEED;

/// Writes the page of a run: `input.png`, a preview of the input, and
/// `index.html`; for a one-layer run also one small picture per filter
/// under `filters/` (its page shows each beside its map, and computes the
/// maps live where it can). Returns the file names.
pub(super) fn write_page(
    job: &Job,
    (input, graph): (&Input, &Graph),
    summary: &Summary,
    arithmetic: Option<&Embedded>,
) -> Result<Vec<String>> {
    let out_dir = &job.out_dir;
    let preview = input.preview(INPUT_PREVIEW_SIDE);
    render::write_png_rgb(&out_dir.join("input.png"), &preview)?;
    let mut files = vec!["input.png".to_string()];
    let page = match &summary.one_layer {
        Some(one) => {
            let layer = graph.layer(0);
            let filter_names = write_filter_pictures(out_dir, layer, &job.view)?;
            let page = Page {
                live: live_part(&preview, layer, summary, live_start(job)),
                layer_name: graph.blocks[0].name.clone(),
                ..layer_page(layer, summary, one, &filter_names)
            };
            files.extend(filter_names);
            page
        }
        None => stack_page(summary),
    };
    let photo = matches!(input, Input::Photo(_));
    let drawing = Drawing {
        colormap: job.view.colormap,
        normalize: job.view.normalize,
    };
    let page = Page {
        explore: Some(explore_data(
            graph,
            &written_maps(summary),
            (drawing, photo),
            arithmetic,
        )),
        frame_input: photo,
        ..page
    };
    write_bytes_atomic(&out_dir.join("index.html"), index_html(&page).as_bytes())?;
    files.push("index.html".to_string());
    Ok(files)
}

/// The page of a stack: the input, then each layer top to bottom with its
/// parameter line, shapes, grid and filters, then the total.
fn stack_page(summary: &Summary) -> Page {
    let layers = summary
        .layers
        .iter()
        .enumerate()
        .map(|(index, layer)| {
            let folder = Path::new(&layer.folder);
            let file = |name: &str| folder.join(name).to_string_lossy().into_owned();
            StackLayer {
                name: layer.name.clone(),
                arrow: if index == 0 {
                    format!("↓ the input's {} channels", layer.input_shape[0])
                } else {
                    format!(
                        "↓ each of the {} maps is a channel of the next layer",
                        layer.input_shape[0]
                    )
                },
                items: layer.items.join(" → "),
                pytorch_line: layer.report.layer.spec.pytorch_line(),
                parameter_line: layer.report.parameter_formula.clone(),
                shapes: format!(
                    "input {} → output {}",
                    shape(layer.input_shape),
                    shape(layer.output_shape)
                ),
                maps: layer.output_shape[0],
                grid_image: file("grid.png"),
                filters_image: file("filters.png"),
            }
        })
        .collect();
    let engine = summary
        .ran
        .adapter
        .as_ref()
        .map_or("the CPU".to_string(), |a| a.name.clone());
    Page {
        title: format!("convmaps: {}", summary.input.path.display()),
        input_image: "input.png".into(),
        parameter_line: summary.parameter_formula.clone(),
        layer_line: format!(
            "{} [{}, {}, {}]",
            summary.input.path.display(),
            summary.input.channels,
            summary.input.height,
            summary.input.width
        ),
        stack: Some(StackPage {
            spec: summary.stack.clone().unwrap_or_default(),
            layers,
            total: format!(
                "{} on {engine} ({} shader), {} bands, {:.0} ms",
                summary.ran.backend.name(),
                summary.ran.shader,
                summary.bands,
                summary.ran.timings_ms.total
            ),
        }),
        ..Page::default()
    }
}

/// Each block's folder and each of its maps' smallest, largest and mean
/// value, as `summary` says.
fn written_maps(summary: &Summary) -> Vec<WrittenMaps> {
    summary
        .layers
        .iter()
        .map(|entry| {
            let maps = entry.report.maps.iter().map(|m| [m.min, m.max, m.mean]);
            (entry.folder.clone(), maps.collect())
        })
        .collect()
}

/// `[32, 238, 318]`.
fn shape(shape: [u32; 3]) -> String {
    format!("[{}, {}, {}]", shape[0], shape[1], shape[2])
}

/// Writes each filter's own picture under `filters/`; returns their names.
fn write_filter_pictures(out_dir: &Path, layer: &Layer, view: &View) -> Result<Vec<String>> {
    let filter_dir = out_dir.join("filters");
    std::fs::create_dir_all(&filter_dir).map_err(|e| Error::io(&filter_dir, e))?;
    let zoom = filter_zoom(layer, view.per_channel_filters);
    let count = layer.spec.filters;
    (0..count)
        .into_par_iter()
        .map(|k| {
            let name = format!(
                "filters/{}",
                render::feature_file_name(k, count).replace("feature", "filter")
            );
            let tile = filter_tile(layer, k, view.per_channel_filters, zoom);
            render::write_png_rgb(&out_dir.join(&name), &tile).map(|()| name)
        })
        .collect()
}

/// The page's text and pictures for a one-layer run.
fn layer_page(layer: &Layer, summary: &Summary, one: &OneLayer, filter_names: &[String]) -> Page {
    let spec = &layer.spec;
    let count = spec.filters;
    Page {
        title: format!("convmaps: {}", summary.input.path.display()),
        input_image: "input.png".into(),
        parameter_line: summary.parameter_formula.clone(),
        parameter_detail: format!(
            "{} weights ({} filters × {} channels × {}×{}) + {} biases (one per filter){}",
            summary.parameters.weights,
            spec.filters,
            spec.channels_per_group(),
            spec.kernel_height,
            spec.kernel_width,
            summary.parameters.biases,
            one.before_folding
                .as_ref()
                .map_or(String::new(), |before| format!(
                    ". Folded from the conv alone, {}, and its BatchNorm, {}",
                    before.conv, before.batch_norm
                ))
        ),
        pytorch_line: spec.pytorch_line(),
        layer_line: format!(
            "{}×{} input → {} maps of {}×{}; kernel {}×{}, stride {}, dilation {}, groups {}; weights: {}",
            summary.input.width,
            summary.input.height,
            one.output.maps,
            one.output.width,
            one.output.height,
            spec.kernel_height,
            spec.kernel_width,
            spec.stride,
            spec.dilation,
            spec.groups,
            one.layer.weights_source
        ) + &input_reading(&summary.input.preprocessing),
        grid_image: "grid.png".into(),
        filters_image: "filters.png".into(),
        maps: one
            .maps
            .iter()
            .zip(filter_names)
            .enumerate()
            .map(|(k, (map, filter_image))| PageMap {
                index: k as u32,
                image: render::feature_file_name(k as u32, count),
                filter_image: Some(filter_image.clone()),
                min: map.min,
                max: map.max,
                mean: map.mean,
                bias: layer.bias.get(k).copied(),
            })
            .collect(),
        ..Page::default()
    }
}

/// The page's live part: on for a photo read as plain RGB (the preview is
/// then exactly the layer's input, at most 1024 px), else off with the reason.
fn live_part(
    preview: &image::RgbImage,
    layer: &Layer,
    summary: &Summary,
    start: LiveStart,
) -> Live {
    let reason = match &summary.input.preprocessing {
        None => "the input is a tensor, not a photo",
        Some(prep) if !prep.is_plain_rgb() => {
            "the layer reads the photo other than as plain RGB on 0–1 values"
        }
        Some(_) => match live_data(
            &summary.input.path.display().to_string(),
            preview,
            layer,
            start,
        ) {
            Ok(data) => return Live::On(data),
            Err(_) => "the layer does not fit the photo's preview",
        },
    };
    Live::Off(reason.to_string())
}

/// How the live page starts: the run's seed for its re-planned layers (the
/// default seed when the weights were not random), and the run's drawing.
fn live_start(job: &Job) -> LiveStart {
    let (init, seed) = match job.weights {
        WeightsSource::Init { init, seed } => (init, seed),
        _ => (Init::Random, DEFAULT_SEED),
    };
    LiveStart {
        init,
        seed,
        colormap: job.view.colormap,
        normalize: job.view.normalize,
    }
}

/// How the photo was read, when not as plain RGB on 0–1 values.
fn input_reading(prep: &Option<InputPrep>) -> String {
    prep.as_ref()
        .and_then(InputPrep::describe)
        .map_or(String::new(), |read| format!("; the photo read as {read}"))
}

/// Writes the page of a whole-network run, `index.html`; returns its name.
pub(super) fn write_model_page(
    out_dir: &std::path::Path,
    summary: &crate::report::model::ModelSummary,
    detail: &super::model_detail::PageDetail,
) -> Result<String> {
    let has_file = |folder: &str, name: &str| out_dir.join(folder).join(name).exists();
    let html = super::model_page::model_html(summary, has_file, detail);
    write_bytes_atomic(&out_dir.join("index.html"), html.as_bytes())?;
    Ok("index.html".to_string())
}
