//! The model's input: a photo read as the channels a layer takes (luma,
//! RGB, BGR or RGBA), scaled and normalised as the model was trained, band
//! by band.

use std::ops::Range;

use crate::error::{Error, Result};
use crate::photo::Photo;
use crate::tensor::{RowSource, Tensor3};

/// Which channels a photo is read as.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One channel: Y = 0.299 R + 0.587 G + 0.114 B on the 0–1 values.
    Luma,
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red (models trained on BGR).
    Bgr,
    /// Red, green, blue and alpha (1 for an opaque photo).
    Rgba,
    /// Blue, green, red and alpha.
    Bgra,
}

impl Layout {
    /// The layout for a layer taking `channels` channels (1, 3 or 4), in
    /// BGR order when `bgr`.
    pub fn for_channels(channels: u32, bgr: bool) -> Option<Layout> {
        match (channels, bgr) {
            (1, _) => Some(Layout::Luma),
            (3, false) => Some(Layout::Rgb),
            (3, true) => Some(Layout::Bgr),
            (4, false) => Some(Layout::Rgba),
            (4, true) => Some(Layout::Bgra),
            _ => None,
        }
    }

    /// Channels C.
    pub fn channels(self) -> u32 {
        match self {
            Layout::Luma => 1,
            Layout::Rgb | Layout::Bgr => 3,
            Layout::Rgba | Layout::Bgra => 4,
        }
    }
}

/// Per-channel normalisation: (value − mean) / std, after scaling. The
/// statistics are in R, G, B (and A) order, or the single luma channel's,
/// whatever order the channels are read in (`--bgr` reorders the values and
/// their statistics together).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Normalization {
    /// Mean per channel.
    pub mean: Vec<f32>,
    /// Standard deviation per channel.
    pub std: Vec<f32>,
}

impl Normalization {
    /// ImageNet's statistics, which most torchvision models expect: mean
    /// 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225 (RGB, on 0–1 values).
    pub fn imagenet() -> Self {
        Normalization {
            mean: vec![0.485, 0.456, 0.406],
            std: vec![0.229, 0.224, 0.225],
        }
    }

    /// Parses `--input-norm`: `none`, `imagenet`, or `M1,M2,M3/S1,S2,S3`
    /// (as many values as channels; every std above zero).
    pub fn parse(text: &str) -> std::result::Result<Option<Self>, String> {
        let numbers = |part: &str| -> Option<Vec<f32>> {
            part.split(',')
                .map(|v| v.trim().parse::<f32>().ok().filter(|v| v.is_finite()))
                .collect()
        };
        match text.trim() {
            "none" => Ok(None),
            "imagenet" => Ok(Some(Normalization::imagenet())),
            other => {
                let parsed = other
                    .split_once('/')
                    .and_then(|(mean, std)| Some((numbers(mean)?, numbers(std)?)));
                match parsed {
                    Some((mean, std))
                        if mean.len() == std.len() && std.iter().all(|&s| s > 0.0) =>
                    {
                        Ok(Some(Normalization { mean, std }))
                    }
                    _ => Err(format!(
                        "expected none, imagenet or MEANS/STDS such as 0.5,0.5,0.5/0.25,0.25,0.25 \
                         (as many of each, every std above zero), got {text:?}"
                    )),
                }
            }
        }
    }
}

/// How a photo becomes a model's input.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct InputPrep {
    /// The channels read.
    pub layout: Layout,
    /// Values are multiplied by this first: 1 (0–1, the default) or 255.
    pub scale: f32,
    /// Then normalised per channel, if set.
    pub normalization: Option<Normalization>,
}

impl Default for InputPrep {
    /// RGB on 0–1 values, not normalised.
    fn default() -> Self {
        InputPrep {
            layout: Layout::Rgb,
            scale: 1.0,
            normalization: None,
        }
    }
}

impl InputPrep {
    /// Checks that the normalisation has one mean and std per channel.
    pub fn validate(&self) -> Result<()> {
        match &self.normalization {
            Some(norm) if norm.mean.len() != self.layout.channels() as usize => {
                Err(Error::InvalidLayer(format!(
                    "--input-norm gives {} means and stds, but the layer reads {} channels ({:?})",
                    norm.mean.len(),
                    self.layout.channels(),
                    self.layout
                )))
            }
            _ => Ok(()),
        }
    }

    /// How the photo is read, in words (`Luma, values × 255, normalised by
    /// mean [..] and std [..]`); `None` for plain RGB on 0–1 values.
    pub fn describe(&self) -> Option<String> {
        if self.is_plain_rgb() {
            return None;
        }
        let norm = self.normalization.as_ref().map_or(String::new(), |n| {
            format!(", normalised by mean {:?} and std {:?}", n.mean, n.std)
        });
        Some(format!("{:?}, values × {}{norm}", self.layout, self.scale))
    }

    /// True when the photo is read as plain RGB on 0–1 values.
    pub fn is_plain_rgb(&self) -> bool {
        self.layout == Layout::Rgb && self.scale == 1.0 && self.normalization.is_none()
    }
}

/// A photo read through an [`InputPrep`], band by band: `[C, H, W]`.
pub struct Prepared<'a> {
    /// The photo.
    pub photo: &'a Photo,
    /// How it is read.
    pub prep: &'a InputPrep,
}

impl RowSource for Prepared<'_> {
    fn shape(&self) -> [u32; 3] {
        [
            self.prep.layout.channels(),
            self.photo.height(),
            self.photo.width(),
        ]
    }

    fn rows(&self, channels: Range<u32>, rows: Range<u32>) -> Tensor3 {
        let rgb = self.photo.rows(0..3, rows.clone());
        let plane = rgb.plane_len();
        let source = |c: usize| &rgb.data[c * plane..(c + 1) * plane];
        let mut all: Vec<Vec<f32>> = match self.prep.layout {
            Layout::Luma => vec![
                source(0)
                    .iter()
                    .zip(source(1))
                    .zip(source(2))
                    .map(|((r, g), b)| 0.299 * r + 0.587 * g + 0.114 * b)
                    .collect(),
            ],
            Layout::Rgb => (0..3).map(|c| source(c).to_vec()).collect(),
            Layout::Bgr => (0..3).rev().map(|c| source(c).to_vec()).collect(),
            Layout::Rgba => (0..3).map(|c| source(c).to_vec()).collect(),
            Layout::Bgra => (0..3).rev().map(|c| source(c).to_vec()).collect(),
        };
        if matches!(self.prep.layout, Layout::Rgba | Layout::Bgra) {
            all.push(self.photo.alpha(rows.clone()));
        }
        let mut band = Tensor3::zeros(channels.len() as u32, rows.len() as u32, self.photo.width());
        for (out, c) in band.data.chunks_mut(plane.max(1)).zip(channels) {
            let c = c as usize;
            // Statistics are in RGB(A) order: blue's are third.
            let stat = match self.prep.layout {
                Layout::Bgr | Layout::Bgra if c < 3 => 2 - c,
                _ => c,
            };
            let (mean, std) = match &self.prep.normalization {
                Some(norm) => (norm.mean[stat], norm.std[stat]),
                None => (0.0, 1.0),
            };
            for (o, &v) in out.iter_mut().zip(&all[c]) {
                *o = (v * self.prep.scale - mean) / std;
            }
        }
        band
    }
}
