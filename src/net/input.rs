//! A photo made into a model's input: resized to the size the model fixes
//! (shorter side to fit, then a centre crop, as torchvision's evaluation
//! transforms do; or stretched), then read as the model was trained
//! (channel order, scale, normalisation) in its layout.

use image::{ImageBuffer, Rgb, imageops};

use super::{Array, Layout, ModelInput};
use crate::error::{Error, Result};
use crate::preprocess::{InputPrep, Layout as Channels};
use crate::tensor::Tensor3;

/// How the photo is brought to the model's input size (`--resize`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resize {
    /// To the model's fixed size: the shorter side to fit, then the centre
    /// cropped; the photo as it is where the size is dynamic.
    #[default]
    Fit,
    /// To the model's fixed size, stretched.
    Exact,
    /// To `[width, height]`, stretched (a model of dynamic size).
    To([u32; 2]),
}

impl Resize {
    /// `fit`, `exact` or `WxH`.
    pub fn parse(text: &str) -> std::result::Result<Resize, String> {
        match text {
            "fit" => Ok(Resize::Fit),
            "exact" => Ok(Resize::Exact),
            size => {
                let parsed = size
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some([w.parse().ok()?, h.parse().ok()?]))
                    .filter(|[w, h]: &[u32; 2]| *w > 0 && *h > 0);
                parsed.map(Resize::To).ok_or_else(|| {
                    format!("{size:?} is not fit, exact or a size WIDTHxHEIGHT such as 224x224")
                })
            }
        }
    }
}

/// What was done to the photo's size, as summary.json records it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ResizeRecord {
    /// `none`, `fit` (resized and centre-cropped), `exact` or `size`.
    pub mode: &'static str,
    /// The photo's `[width, height]`.
    pub from: [u32; 2],
    /// The model input's `[width, height]`.
    pub to: [u32; 2],
    /// Fit: the resized photo's `[width, height]` before the crop.
    pub resized: Option<[u32; 2]>,
}

/// The photo `[3, H, W]` (values 0–1) at the size `model` takes: the size
/// `resize` says, or the model's fixed size.
pub fn resize(
    photo: &Tensor3,
    model: &ModelInput,
    resize: Resize,
) -> Result<(Tensor3, ResizeRecord)> {
    let from = [photo.width, photo.height];
    let record = |mode, to, resized| ResizeRecord {
        mode,
        from,
        to,
        resized,
    };
    match (resize, model.size) {
        (Resize::To([w, h]), Some([fh, fw])) if [w, h] != [fw, fh] => Err(Error::Mismatch(
            format!("--resize {w}x{h}: the model takes {fw}×{fh} only"),
        )),
        (Resize::To(to), _) => Ok((stretched(photo, to), record("size", to, None))),
        (_, None) => Ok((photo.clone(), record("none", from, None))),
        (_, Some([h, w])) if [h, w] == [photo.height, photo.width] => {
            Ok((photo.clone(), record("none", from, None)))
        }
        (Resize::Exact, Some([h, w])) => {
            Ok((stretched(photo, [w, h]), record("exact", [w, h], None)))
        }
        (Resize::Fit, Some([h, w])) => {
            let scale = (w as f64 / photo.width as f64).max(h as f64 / photo.height as f64);
            let side = |s: u32, least: u32| ((s as f64 * scale).round() as u32).max(least);
            let resized = [side(photo.width, w), side(photo.height, h)];
            let big = stretched(photo, resized);
            let (x, y) = ((resized[0] - w) / 2, (resized[1] - h) / 2);
            Ok((
                crop(&big, [x, y], [w, h]),
                record("fit", [w, h], Some(resized)),
            ))
        }
    }
}

/// `photo` resized to `[width, height]` with a triangle (bilinear) filter,
/// widened when shrinking so that every pixel counts.
fn stretched(photo: &Tensor3, [width, height]: [u32; 2]) -> Tensor3 {
    let plane = photo.plane_len();
    let interleaved: Vec<f32> = (0..plane)
        .flat_map(|p| (0..3).map(move |c| (c, p)))
        .map(|(c, p)| photo.data[c * plane + p])
        .collect();
    let image: ImageBuffer<Rgb<f32>, Vec<f32>> =
        ImageBuffer::from_raw(photo.width, photo.height, interleaved).expect("3 values per pixel");
    let resized = imageops::resize(&image, width, height, imageops::FilterType::Triangle);
    let mut out = Tensor3::zeros(3, height, width);
    let plane = (width * height) as usize;
    for (p, pixel) in resized.pixels().enumerate() {
        for c in 0..3 {
            out.data[c * plane + p] = pixel[c];
        }
    }
    out
}

/// The `[width, height]` window of `photo` at `[x, y]`.
fn crop(photo: &Tensor3, [x, y]: [u32; 2], [width, height]: [u32; 2]) -> Tensor3 {
    let mut out = Tensor3::zeros(3, height, width);
    for c in 0..3 {
        for row in 0..height {
            let from = ((c * photo.height + y + row) * photo.width + x) as usize;
            let to = ((c * height + row) * width) as usize;
            out.data[to..to + width as usize]
                .copy_from_slice(&photo.data[from..from + width as usize]);
        }
    }
    out
}

/// The RGB photo `[3, H, W]` (values 0–1) read as `prep` says (channel
/// order, scale, normalisation; a tensor is read as it is, `None`), in
/// `model`'s layout with a batch of one.
pub fn model_input(rgb: &Tensor3, prep: Option<&InputPrep>, model: &ModelInput) -> Array {
    let plane = rgb.plane_len();
    let order: [usize; 3] = match prep.map(|p| p.layout) {
        Some(Channels::Bgr | Channels::Bgra) => [2, 1, 0],
        _ => [0, 1, 2],
    };
    let value = |c: usize, p: usize| {
        let v = rgb.data[order[c] * plane + p];
        let Some(prep) = prep else {
            return v;
        };
        let v = v * prep.scale;
        match &prep.normalization {
            Some(n) => (v - n.mean[c]) / n.std[c],
            None => v,
        }
    };
    let (h, w) = (rgb.height as usize, rgb.width as usize);
    match model.layout {
        Layout::Nchw => {
            let data = (0..3)
                .flat_map(|c| (0..plane).map(move |p| (c, p)))
                .map(|(c, p)| value(c, p));
            Array::new(vec![1, 3, h, w], data.collect())
        }
        Layout::Nhwc => {
            let data = (0..plane)
                .flat_map(|p| (0..3).map(move |c| (c, p)))
                .map(|(c, p)| value(c, p));
            Array::new(vec![1, h, w, 3], data.collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(size: Option<[u32; 2]>) -> ModelInput {
        ModelInput {
            name: "x".into(),
            layout: Layout::Nchw,
            channels: 3,
            size,
        }
    }

    #[test]
    fn fit_scales_the_shorter_side_and_crops_the_centre() {
        let photo = Tensor3::from_vec(
            3,
            40,
            80,
            (0..9600).map(|i| (i % 80) as f32 / 80.0).collect(),
        );
        let (out, record) = resize(&photo, &model(Some([20, 20])), Resize::Fit).unwrap();
        assert_eq!((out.height, out.width), (20, 20));
        assert_eq!(record.resized, Some([40, 20]));
        // The centre columns of a left-to-right ramp: about a quarter to three quarters.
        let first = out.data[0];
        assert!((0.2..0.3).contains(&first), "{first}");
    }

    #[test]
    fn a_photo_of_the_models_size_is_used_as_it_is() {
        let photo = Tensor3::zeros(3, 20, 30);
        let (_, record) = resize(&photo, &model(Some([20, 30])), Resize::Fit).unwrap();
        assert_eq!(record.mode, "none");
        let (_, record) = resize(&photo, &model(None), Resize::Fit).unwrap();
        assert_eq!((record.mode, record.to), ("none", [30, 20]));
        assert!(resize(&photo, &model(Some([20, 20])), Resize::To([30, 30])).is_err());
    }

    #[test]
    fn resize_options_parse() {
        assert_eq!(Resize::parse("fit"), Ok(Resize::Fit));
        assert_eq!(Resize::parse("320x240"), Ok(Resize::To([320, 240])));
        assert!(Resize::parse("0x240").is_err());
        assert!(Resize::parse("big").is_err());
    }
}
