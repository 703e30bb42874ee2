//! What a run reads: a photo, or a tensor `[C, H, W]` from a `.npy` file
//! (such as a previous run's `features.npy`, so that its maps become the
//! channels of the next layer). Its header is read first, so that the layer
//! is resolved against its shape before anything is decoded.

use std::io::BufReader;
use std::path::Path;

use crate::error::{Error, Result};
use crate::npy;
use crate::photo::{self, Orientation, Photo, PhotoFile};
use crate::resolve::InputShape;
use crate::tensor::Tensor3;

/// An input whose header has been read and checked.
pub enum InputFile {
    /// A photo.
    Photo(PhotoFile),
    /// A `.npy` tensor of this shape `[C, H, W]`.
    Tensor {
        /// The file.
        path: std::path::PathBuf,
        /// `[C, H, W]`.
        shape: [u32; 3],
    },
}

/// A decoded input.
pub enum Input {
    /// A photo, read through the layer's [`crate::preprocess::InputPrep`].
    Photo(Photo),
    /// A tensor `[C, H, W]`, read as it is.
    Tensor(Tensor3),
}

impl InputFile {
    /// Opens `path`: a `.npy` file is a tensor `[C, H, W]` or `[1, C, H, W]`
    /// of f16, f32 or f64 whose H·W is at most `max_pixels`; anything else
    /// is a photo ([`photo::open`]).
    pub fn open(path: &Path, max_pixels: u64, apply_orientation: bool) -> Result<InputFile> {
        let is_npy = npy::is_npy(path);
        if !is_npy {
            return Ok(InputFile::Photo(photo::open(
                path,
                max_pixels,
                apply_orientation,
            )?));
        }
        let shape = tensor_shape(path)?;
        let pixels = shape[1] as u64 * shape[2] as u64;
        if pixels > max_pixels {
            return Err(Error::image(
                path,
                format!(
                    "is {}×{} = {:.1} megapixels, more than the limit of {:.1} (raise it with --max-pixels)",
                    shape[2],
                    shape[1],
                    pixels as f64 / 1e6,
                    max_pixels as f64 / 1e6
                ),
            ));
        }
        Ok(InputFile::Tensor {
            path: path.to_path_buf(),
            shape,
        })
    }

    /// The shape the layer is resolved against: a photo's upright size
    /// (read as 1, 3 or 4 channels, as the layer's weights say), or the
    /// tensor's `[C, H, W]`.
    pub fn shape(&self) -> InputShape {
        match self {
            InputFile::Photo(file) => InputShape {
                channels: 3,
                photo: true,
                height: file.height(),
                width: file.width(),
            },
            InputFile::Tensor { shape, .. } => InputShape {
                channels: shape[0],
                photo: false,
                height: shape[1],
                width: shape[2],
            },
        }
    }

    /// The orientation a photo is turned by (none for a tensor).
    pub fn orientation(&self) -> Orientation {
        match self {
            InputFile::Photo(file) => file.orientation(),
            InputFile::Tensor { .. } => Orientation::NoTransforms,
        }
    }

    /// Decodes the photo, or reads the tensor's values (as f32).
    pub fn decode(self) -> Result<Input> {
        match self {
            InputFile::Photo(file) => Ok(Input::Photo(file.decode()?)),
            InputFile::Tensor { path, shape } => {
                let (_, values, _) = npy::read_floats(&path)?;
                let [channels, height, width] = shape;
                if values.len() as u64 != channels as u64 * height as u64 * width as u64 {
                    return Err(Error::image(&path, "changed while it was being read"));
                }
                Ok(Input::Tensor(Tensor3::from_vec(
                    channels, height, width, values,
                )))
            }
        }
    }
}

impl Input {
    /// The input as the page shows it, at most `max_side` pixels a side: the
    /// photo, or the tensor's channels as a labelled grid, each stretched
    /// over its own range.
    pub fn preview(&self, max_side: u32) -> image::RgbImage {
        match self {
            Input::Photo(photo) => crate::render::preview_rgb(photo, max_side),
            Input::Tensor(tensor) => crate::render::channel_grid(tensor, max_side),
        }
    }
}

/// The shape `[C, H, W]` of the `.npy` tensor at `path`, from its header:
/// `[C, H, W]` or `[1, C, H, W]` with every size at least 1.
fn tensor_shape(path: &Path) -> Result<[u32; 3]> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::image_caused(path, "cannot read", e))?;
    let header = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| Error::image_caused(path, "not a valid .npy file", e))?;
    let dims: Vec<u64> = header.shape().to_vec();
    let [channels, height, width] = match dims[..] {
        [c, h, w] | [1, c, h, w] => [c, h, w],
        _ => {
            return Err(Error::image(
                path,
                format!("has shape {dims:?}, expected an input tensor [C, H, W] or [1, C, H, W]"),
            ));
        }
    };
    let size = |v: u64| u32::try_from(v).ok().filter(|&v| v > 0);
    match (size(channels), size(height), size(width)) {
        (Some(c), Some(h), Some(w)) => Ok([c, h, w]),
        _ => Err(Error::image(
            path,
            format!("has shape {dims:?}: every size must be 1 to {}", u32::MAX),
        )),
    }
}
