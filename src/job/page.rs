//! The page: the filters picture, one picture per filter, the photo's
//! preview and `index.html`.

use std::path::Path;

use rayon::prelude::*;

use super::View;
use crate::error::{Error, Result};
use crate::layer::Layer;
use crate::output::write_bytes_atomic;
use crate::preprocess::InputPrep;
use crate::render::filters::{filter_tile, filter_zoom, filters_picture};
use crate::render::html::{Live, Page, PageMap, index_html};
use crate::render::live::live_data;
use crate::render::{self};
use crate::report::Summary;

/// Writes `filters.png`, one small picture per filter under `filters/`,
/// a preview of the photo as `input.png`, and `index.html`, which shows
/// them all with each map's range; returns the file names.
pub(super) fn write_page(
    out_dir: &Path,
    preview: &image::RgbImage,
    layer: &Layer,
    summary: &Summary,
    view: &View,
) -> Result<Vec<String>> {
    let mut files = Vec::new();
    render::write_png_rgb(
        &out_dir.join("filters.png"),
        &filters_picture(layer, view.per_channel_filters),
    )?;
    files.push("filters.png".to_string());

    render::write_png_rgb(&out_dir.join("input.png"), preview)?;
    files.push("input.png".to_string());

    let filter_names = write_filter_pictures(out_dir, layer, view)?;
    let page = Page {
        live: live_part(preview, layer, summary),
        ..page_text(layer, summary, &filter_names)
    };
    write_bytes_atomic(&out_dir.join("index.html"), index_html(&page).as_bytes())?;
    files.extend(filter_names);
    files.push("index.html".to_string());
    Ok(files)
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

/// The page's text and pictures for a run.
fn page_text(layer: &Layer, summary: &Summary, filter_names: &[String]) -> Page {
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
            summary
                .before_folding
                .as_ref()
                .map_or(String::new(), |before| format!(
                    ". Folded from the conv alone, {}, and its BatchNorm, {}",
                    before.conv, before.batch_norm
                ))
        ),
        layer_line: format!(
            "{}×{} input → {} maps of {}×{}; kernel {}×{}, stride {}, dilation {}, groups {}; weights: {}",
            summary.input.width,
            summary.input.height,
            summary.output.maps,
            summary.output.width,
            summary.output.height,
            spec.kernel_height,
            spec.kernel_width,
            spec.stride,
            spec.dilation,
            spec.groups,
            summary.layer.weights_source
        ) + &input_reading(&summary.input.preprocessing),
        grid_image: "grid.png".into(),
        filters_image: "filters.png".into(),
        maps: summary
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
        live: Live::default(),
    }
}

/// The page's live part: on for a photo read as plain RGB (the preview is
/// then exactly the layer's input, at most 1024 px), else off with the reason.
fn live_part(preview: &image::RgbImage, layer: &Layer, summary: &Summary) -> Live {
    let reason = match &summary.input.preprocessing {
        None => "the input is a tensor, not a photo",
        Some(prep) if !prep.is_plain_rgb() => {
            "the layer reads the photo other than as plain RGB on 0–1 values"
        }
        Some(_) => match live_data(&summary.input.path.display().to_string(), preview, layer) {
            Ok(data) => return Live::On(data),
            Err(_) => "the layer does not fit the photo's preview",
        },
    };
    Live::Off(reason.to_string())
}

/// How the photo was read, when not as plain RGB on 0–1 values.
fn input_reading(prep: &Option<InputPrep>) -> String {
    prep.as_ref()
        .and_then(InputPrep::describe)
        .map_or(String::new(), |read| format!("; the photo read as {read}"))
}
