//! Decoding a photo file into an RGB tensor.

use std::path::Path;

use image::{DynamicImage, ImageReader};

use crate::error::{Error, Result};
use crate::tensor::Tensor3;

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
    Ok(to_rgb_tensor(image))
}

/// Converts a decoded image to a `[3, H, W]` tensor in `[0, 1]`.
pub fn to_rgb_tensor(image: DynamicImage) -> Tensor3 {
    let (width, height) = (image.width(), image.height());
    let plane = width as usize * height as usize;
    let mut tensor = Tensor3::zeros(3, height, width);
    // Interleaved RGB samples to planar channels.
    let mut scatter = |samples: &mut dyn Iterator<Item = f32>| {
        for (i, value) in samples.enumerate() {
            let (pixel, channel) = (i / 3, i % 3);
            tensor.data[channel * plane + pixel] = value;
        }
    };
    match image {
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => {
            let rgb = image.into_rgb16();
            scatter(&mut rgb.as_raw().iter().map(|&s| s as f32 / 65535.0));
        }
        DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_) => {
            let rgb = image.into_rgb32f();
            scatter(&mut rgb.as_raw().iter().copied());
        }
        _ => {
            let rgb = image.into_rgb8();
            scatter(&mut rgb.as_raw().iter().map(|&s| s as f32 / 255.0));
        }
    }
    tensor
}
