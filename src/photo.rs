//! Decoding a photo file into RGB samples, read as a `[3, H, W]` f32 tensor.

use std::ops::Range;
use std::path::Path;

use image::{DynamicImage, ImageReader};

use crate::error::{Error, Result};
use crate::tensor::{Bands, Tensor3};

/// The default for `max_pixels`: 100 megapixels, which admits 50-megapixel
/// photos with room to spare.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Reads a photo (PNG, JPEG, BMP, GIF, TIFF or WebP) into a `[3, H, W]`
/// tensor: value = 8-bit sample / 255, or 16-bit sample / 65535; float
/// images keep their values. Alpha is dropped and a grayscale photo becomes
/// three equal channels.
///
/// A photo of more than `max_pixels` pixels is refused from its header,
/// before any pixel memory is allocated (a tiny file can claim to be
/// 100000×100000).
pub fn load_rgb(path: &Path, max_pixels: u64) -> Result<Tensor3> {
    Ok(load(path, max_pixels)?.to_tensor())
}

/// [`load_rgb`], keeping the photo as its decoded samples ([`Photo`]): a
/// quarter of the f32 tensor's memory for an 8-bit photo.
pub fn load(path: &Path, max_pixels: u64) -> Result<Photo> {
    let image_error = |message: String| Error::Image {
        path: path.to_path_buf(),
        message,
    };
    let metadata = std::fs::metadata(path).map_err(|e| image_error(e.to_string()))?;
    if metadata.is_dir() {
        return Err(image_error("is a directory, expected an image file".into()));
    }
    if metadata.len() == 0 {
        return Err(image_error("is empty (0 bytes)".into()));
    }
    let open = || -> Result<ImageReader<_>> {
        let reader = ImageReader::open(path)
            .map_err(|e| image_error(e.to_string()))?
            .with_guessed_format()
            .map_err(|e| image_error(e.to_string()))?;
        if reader.format().is_none() {
            return Err(image_error(
                "is not an image format convmaps reads (PNG, JPEG, BMP, GIF, TIFF, WebP)".into(),
            ));
        }
        Ok(reader)
    };
    let (width, height) = open()?
        .into_dimensions()
        .map_err(|e| image_error(format!("cannot read the image header: {e}")))?;
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(image_error(format!(
            "is {width}×{height} = {:.1} megapixels, more than the limit of {:.1} \
             (raise it with --max-pixels)",
            pixels as f64 / 1e6,
            max_pixels as f64 / 1e6
        )));
    }
    if pixels == 0 {
        return Err(image_error(format!(
            "is {width}×{height}: it has no pixels"
        )));
    }
    let mut reader = open()?;
    // Room for the decoded image at up to 16 bytes per pixel (RGBA f32).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(pixels.saturating_mul(16).saturating_add(1 << 20));
    reader.limits(limits);
    // A decoder that panics on a malformed file must not take the run down.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()))
        .map_err(|_| image_error("cannot decode: the decoder failed on this file".into()))?;
    let image = decoded.map_err(|e| image_error(format!("cannot decode: {e}")))?;
    Ok(Photo::from(image))
}

/// A decoded photo as interleaved RGB samples of its own depth, read as a
/// `[3, H, W]` f32 tensor band by band ([`Bands`]): a big photo's f32
/// values are never all in memory at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Photo {
    width: u32,
    height: u32,
    samples: Samples,
}

/// RGB samples, row by row, `[H, W, 3]`.
#[derive(Clone, Debug, PartialEq)]
enum Samples {
    /// 8-bit: value = sample / 255.
    U8(Vec<u8>),
    /// 16-bit: value = sample / 65535.
    U16(Vec<u16>),
    /// Float: value = sample.
    F32(Vec<f32>),
}

impl Photo {
    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The whole photo as a `[3, H, W]` tensor.
    pub fn to_tensor(&self) -> Tensor3 {
        self.band(0..3, 0..self.height)
    }
}

impl From<DynamicImage> for Photo {
    /// Alpha is dropped and grey becomes three equal channels; 16-bit and
    /// float images keep their depth, every other one becomes 8-bit.
    fn from(image: DynamicImage) -> Self {
        let (width, height) = (image.width(), image.height());
        let samples = match image {
            DynamicImage::ImageLuma16(_)
            | DynamicImage::ImageLumaA16(_)
            | DynamicImage::ImageRgb16(_)
            | DynamicImage::ImageRgba16(_) => Samples::U16(image.into_rgb16().into_raw()),
            DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
                Samples::F32(image.into_rgb32f().into_raw())
            }
            _ => Samples::U8(image.into_rgb8().into_raw()),
        };
        Photo {
            width,
            height,
            samples,
        }
    }
}

impl Bands for Photo {
    fn shape(&self) -> [u32; 3] {
        [3, self.height, self.width]
    }

    fn band(&self, channels: Range<u32>, rows: Range<u32>) -> Tensor3 {
        let width = self.width as usize;
        let first = rows.start as usize * width * 3;
        let end = rows.end as usize * width * 3;
        let mut band = Tensor3::zeros(channels.len() as u32, rows.len() as u32, self.width);
        let plane = band.plane_len();
        // Interleaved samples to planar channels.
        let mut scatter = |samples: &mut dyn Iterator<Item = f32>| {
            for (i, value) in samples.enumerate() {
                let (pixel, channel) = (i / 3, i % 3);
                if channels.contains(&(channel as u32)) {
                    band.data[(channel - channels.start as usize) * plane + pixel] = value;
                }
            }
        };
        match &self.samples {
            Samples::U8(samples) => {
                scatter(&mut samples[first..end].iter().map(|&s| s as f32 / 255.0))
            }
            Samples::U16(samples) => {
                scatter(&mut samples[first..end].iter().map(|&s| s as f32 / 65535.0))
            }
            Samples::F32(samples) => scatter(&mut samples[first..end].iter().copied()),
        }
        band
    }
}
