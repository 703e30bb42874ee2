//! Decoding a photo file into RGB samples, read as a `[3, H, W]` f32 tensor,
//! upright: the orientation the file records (its EXIF orientation tag, as
//! phones and cameras write it) is applied when decoding.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader};

use crate::error::{Error, Result};
use crate::tensor::{RowSource, Tensor3};

/// The default for `max_pixels`: 100 megapixels, which admits 50-megapixel
/// photos with room to spare.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// Reads a photo (PNG, JPEG, BMP, GIF, TIFF or WebP) into a `[3, H, W]`
/// tensor, upright (its EXIF orientation applied, see [`open`]): value =
/// 8-bit sample / 255, or 16-bit sample / 65535; float images keep their
/// values. Alpha is dropped and a grayscale photo becomes three equal
/// channels.
///
/// A photo of more than `max_pixels` pixels is refused from its header,
/// before any pixel memory is allocated (a tiny file can claim to be
/// 100000×100000).
pub fn load_rgb(path: &Path, max_pixels: u64) -> Result<Tensor3> {
    Ok(load(path, max_pixels)?.to_tensor())
}

/// [`load_rgb`], keeping the photo as its decoded samples ([`Photo`]): a
/// quarter of the f32 tensor's memory for an 8-bit photo. Upright: the same
/// as `open(path, max_pixels, true)?.decode()`.
pub fn load(path: &Path, max_pixels: u64) -> Result<Photo> {
    open(path, max_pixels, true)?.decode()
}

/// Reads a photo's header, not its pixels: its size and orientation, so a
/// caller can check the upright size before paying for the decode
/// ([`PhotoFile::decode`]).
///
/// With `apply_orientation`, the orientation the file records (EXIF tag
/// 0x0112, in JPEG, PNG, TIFF and WebP files) will be applied by
/// [`PhotoFile::decode`], and [`PhotoFile::width`] and
/// [`PhotoFile::height`] are already the upright ones (swapped for the four
/// orientations that transpose). Without it, or when the file records none
/// or an invalid one, the stored pixels are kept as they are and
/// [`PhotoFile::orientation`] is [`Orientation::NoTransforms`].
///
/// Refuses a directory, an empty file, a format convmaps does not read, a
/// header of more than `max_pixels` pixels (before any pixel memory is
/// allocated: a tiny file can claim to be 100000×100000) and one of no
/// pixels.
pub fn open(path: &Path, max_pixels: u64, apply_orientation: bool) -> Result<PhotoFile> {
    let image_error = |message: String| Error::image(path, message);
    let metadata =
        std::fs::metadata(path).map_err(|e| Error::image_caused(path, "cannot read", e))?;
    if metadata.is_dir() {
        return Err(image_error("is a directory, expected an image file".into()));
    }
    if metadata.len() == 0 {
        return Err(image_error("is empty (0 bytes)".into()));
    }
    let cannot_read = |e| Error::image_caused(path, "cannot read", e);
    let reader = ImageReader::open(path)
        .map_err(cannot_read)?
        .with_guessed_format()
        .map_err(cannot_read)?;
    if reader.format().is_none() {
        return Err(image_error(
            "is not an image format convmaps reads (PNG, JPEG, BMP, GIF, TIFF, WebP)".into(),
        ));
    }
    let (decoder, orientation) = read_header(path, reader, apply_orientation)?;
    let (stored_width, stored_height) = decoder.dimensions();
    let (width, height) = if orientation.transposes() {
        (stored_height, stored_width)
    } else {
        (stored_width, stored_height)
    };
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
    Ok(PhotoFile {
        path: path.to_path_buf(),
        decoder,
        width,
        height,
        orientation,
    })
}

/// The decoder of `reader`'s image, positioned after the header, and the
/// orientation to apply (`NoTransforms` unless `apply_orientation`).
///
/// The header is read with the reader's default limits; the decode gets
/// its own, sized to the photo ([`PhotoFile::decode`]). A decoder that
/// panics on a malformed header must not take the run down.
fn read_header(
    path: &Path,
    reader: ImageReader<std::io::BufReader<std::fs::File>>,
    apply_orientation: bool,
) -> Result<(Box<dyn ImageDecoder>, Orientation)> {
    let header = std::panic::catch_unwind(std::panic::AssertUnwindSafe(
        || -> image::ImageResult<(Box<dyn ImageDecoder>, Orientation)> {
            let mut decoder = reader.into_decoder()?;
            let orientation = if apply_orientation {
                // An unreadable orientation tag is no orientation.
                decoder
                    .orientation()
                    .map_or(Orientation::NoTransforms, Orientation::from)
            } else {
                Orientation::NoTransforms
            };
            Ok((Box::new(decoder), orientation))
        },
    ))
    .map_err(|_| {
        Error::image(
            path,
            "cannot read the image header: the decoder failed on this file",
        )
    })?;
    header.map_err(|e| Error::image_caused(path, "cannot read the image header", e))
}

/// A photo file whose header has been read and checked ([`open`]) and whose
/// pixels have not: [`PhotoFile::decode`] decodes them.
pub struct PhotoFile {
    path: PathBuf,
    decoder: Box<dyn ImageDecoder>,
    /// Upright size in pixels: after `orientation` is applied.
    width: u32,
    height: u32,
    orientation: Orientation,
}

impl PhotoFile {
    /// Width in pixels of the decoded photo: upright, after
    /// [`PhotoFile::orientation`] is applied.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels of the decoded photo: upright, after
    /// [`PhotoFile::orientation`] is applied.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The orientation [`PhotoFile::decode`] will apply:
    /// [`Orientation::NoTransforms`] when it was not asked to
    /// ([`open`]'s `apply_orientation`) or the file records none.
    pub fn orientation(&self) -> Orientation {
        self.orientation
    }

    /// Decodes the pixels and applies [`PhotoFile::orientation`]: a
    /// [`Photo`] of [`PhotoFile::width`] × [`PhotoFile::height`] pixels.
    ///
    /// The decoder may allocate at most 16 bytes per pixel (RGBA f32) plus
    /// 1 MiB; applying a rotation briefly holds a second copy of the decoded
    /// image.
    pub fn decode(self) -> Result<Photo> {
        let PhotoFile {
            path,
            mut decoder,
            width,
            height,
            orientation,
        } = self;
        let cannot_decode = |e| Error::image_caused(&path, "cannot decode", e);
        let pixels = width as u64 * height as u64;
        // Room for the decoded image at up to 16 bytes per pixel (RGBA f32):
        // its buffer is reserved first, the decoder's own allocations get
        // the rest.
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(pixels.saturating_mul(16).saturating_add(1 << 20));
        limits
            .reserve(decoder.total_bytes())
            .and_then(|()| decoder.set_limits(limits))
            .map_err(cannot_decode)?;
        // A decoder that panics on a malformed file must not take the run down.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            DynamicImage::from_decoder(decoder)
        }))
        .map_err(|_| Error::image(&path, "cannot decode: the decoder failed on this file"))?;
        let mut image = decoded.map_err(cannot_decode)?;
        image.apply_orientation(orientation.into());
        Ok(Photo::from(image))
    }
}

impl fmt::Debug for PhotoFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhotoFile")
            .field("path", &self.path)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("orientation", &self.orientation)
            .finish_non_exhaustive()
    }
}

/// How a photo's stored pixels are turned upright: the eight values of the
/// EXIF orientation tag (0x0112). Each variant names the transform applied
/// to the stored pixels, in that order (rotations are clockwise).
///
/// Serializes as `{"exif": 6, "applied": "rotate 90° clockwise"}`: the tag
/// value ([`Orientation::exif`]) and what was done ([`Orientation::describe`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Orientation {
    /// EXIF 1: stored upright, nothing to do.
    #[default]
    NoTransforms,
    /// EXIF 2: mirrored left–right.
    FlipHorizontal,
    /// EXIF 3: rotate by 180°.
    Rotate180,
    /// EXIF 4: mirrored top–bottom.
    FlipVertical,
    /// EXIF 5: rotate by 90° clockwise, then flip left–right (a transpose).
    Rotate90FlipHorizontal,
    /// EXIF 6: rotate by 90° clockwise (a phone held upright, its camera
    /// sensor landscape).
    Rotate90,
    /// EXIF 7: rotate by 90° counter-clockwise, then flip left–right.
    Rotate270FlipHorizontal,
    /// EXIF 8: rotate by 90° counter-clockwise.
    Rotate270,
}

impl Orientation {
    /// All eight, in EXIF order (1..=8).
    pub const ALL: [Orientation; 8] = [
        Orientation::NoTransforms,
        Orientation::FlipHorizontal,
        Orientation::Rotate180,
        Orientation::FlipVertical,
        Orientation::Rotate90FlipHorizontal,
        Orientation::Rotate90,
        Orientation::Rotate270FlipHorizontal,
        Orientation::Rotate270,
    ];

    /// The orientation of EXIF value `exif` (1..=8); `None` for any other.
    pub fn from_exif(exif: u8) -> Option<Orientation> {
        Orientation::ALL
            .get(usize::from(exif).checked_sub(1)?)
            .copied()
    }

    /// The EXIF orientation tag's value, 1..=8.
    pub fn exif(self) -> u8 {
        match self {
            Orientation::NoTransforms => 1,
            Orientation::FlipHorizontal => 2,
            Orientation::Rotate180 => 3,
            Orientation::FlipVertical => 4,
            Orientation::Rotate90FlipHorizontal => 5,
            Orientation::Rotate90 => 6,
            Orientation::Rotate270FlipHorizontal => 7,
            Orientation::Rotate270 => 8,
        }
    }

    /// What is done to the stored pixels, in words: "none", "flip
    /// horizontal", "rotate 90° clockwise", ...
    pub fn describe(self) -> &'static str {
        match self {
            Orientation::NoTransforms => "none",
            Orientation::FlipHorizontal => "flip horizontal",
            Orientation::Rotate180 => "rotate 180°",
            Orientation::FlipVertical => "flip vertical",
            Orientation::Rotate90FlipHorizontal => "rotate 90° clockwise, then flip horizontal",
            Orientation::Rotate90 => "rotate 90° clockwise",
            Orientation::Rotate270FlipHorizontal => {
                "rotate 90° counter-clockwise, then flip horizontal"
            }
            Orientation::Rotate270 => "rotate 90° counter-clockwise",
        }
    }

    /// True for the four (EXIF 5 to 8) that swap width and height.
    pub fn transposes(self) -> bool {
        self.exif() >= 5
    }
}

impl From<image::metadata::Orientation> for Orientation {
    fn from(orientation: image::metadata::Orientation) -> Self {
        Orientation::from_exif(orientation.to_exif()).unwrap_or_default()
    }
}

impl From<Orientation> for image::metadata::Orientation {
    fn from(orientation: Orientation) -> Self {
        image::metadata::Orientation::from_exif(orientation.exif())
            .unwrap_or(image::metadata::Orientation::NoTransforms)
    }
}

impl serde::Serialize for Orientation {
    /// `{"exif": 1..=8, "applied": "..."}`.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut summary = serializer.serialize_struct("Orientation", 2)?;
        summary.serialize_field("exif", &self.exif())?;
        summary.serialize_field("applied", self.describe())?;
        summary.end()
    }
}

/// A decoded photo as interleaved RGB samples of its own depth, read as a
/// `[3, H, W]` f32 tensor band by band ([`RowSource`]): a big photo's f32
/// values are never all in memory at once.
#[derive(Clone, Debug, PartialEq)]
pub struct Photo {
    width: u32,
    height: u32,
    /// Samples per pixel: 3 (RGB) or 4 (RGBA).
    stride: usize,
    samples: Samples,
}

/// RGB or RGBA samples, row by row, `[H, W, 3 or 4]`.
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
        self.rows(0..3, 0..self.height)
    }

    /// Whether the file had an alpha channel.
    pub fn has_alpha(&self) -> bool {
        self.stride == 4
    }

    /// The alpha of rows `rows`, `[rows, W]` in 0–1: 1 everywhere for a
    /// photo without alpha.
    pub fn alpha(&self, rows: Range<u32>) -> Vec<f32> {
        let mut alpha = vec![1.0; rows.len() * self.width as usize];
        if self.has_alpha() {
            self.visit_rows(rows, |pixel, channel, value| {
                if channel == 3 {
                    alpha[pixel] = value;
                }
            });
        }
        alpha
    }

    /// Calls `visit(pixel, channel, value)` for every sample of rows
    /// `rows`, pixels counted from the first row's first, values in 0–1.
    fn visit_rows(&self, rows: Range<u32>, mut visit: impl FnMut(usize, usize, f32)) {
        let row_len = self.width as usize * self.stride;
        let (first, end) = (rows.start as usize * row_len, rows.end as usize * row_len);
        let stride = self.stride;
        let mut each = |samples: &mut dyn Iterator<Item = f32>| {
            for (i, value) in samples.enumerate() {
                visit(i / stride, i % stride, value);
            }
        };
        match &self.samples {
            Samples::U8(samples) => {
                each(&mut samples[first..end].iter().map(|&s| s as f32 / 255.0))
            }
            Samples::U16(samples) => {
                each(&mut samples[first..end].iter().map(|&s| s as f32 / 65535.0))
            }
            Samples::F32(samples) => each(&mut samples[first..end].iter().copied()),
        }
    }
}

impl From<DynamicImage> for Photo {
    /// Grey becomes three equal channels and alpha is kept beside them (a
    /// model that reads RGBA gets it; RGB views leave it out); 16-bit and
    /// float images keep their depth, every other one becomes 8-bit.
    fn from(image: DynamicImage) -> Self {
        let (width, height) = (image.width(), image.height());
        let alpha = image.color().has_alpha();
        let samples = match (image, alpha) {
            (
                image @ (DynamicImage::ImageLuma16(_)
                | DynamicImage::ImageLumaA16(_)
                | DynamicImage::ImageRgb16(_)
                | DynamicImage::ImageRgba16(_)),
                with_alpha,
            ) => Samples::U16(if with_alpha {
                image.into_rgba16().into_raw()
            } else {
                image.into_rgb16().into_raw()
            }),
            (
                image @ (DynamicImage::ImageRgb32F(_) | DynamicImage::ImageRgba32F(_)),
                with_alpha,
            ) => Samples::F32(if with_alpha {
                image.into_rgba32f().into_raw()
            } else {
                image.into_rgb32f().into_raw()
            }),
            (image, true) => Samples::U8(image.into_rgba8().into_raw()),
            (image, false) => Samples::U8(image.into_rgb8().into_raw()),
        };
        Photo {
            width,
            height,
            stride: if alpha { 4 } else { 3 },
            samples,
        }
    }
}

impl RowSource for Photo {
    fn shape(&self) -> [u32; 3] {
        [3, self.height, self.width]
    }

    fn rows(&self, channels: Range<u32>, rows: Range<u32>) -> Tensor3 {
        let mut band = Tensor3::zeros(channels.len() as u32, rows.len() as u32, self.width);
        let plane = band.plane_len();
        // Interleaved samples to planar channels; alpha is not one of them.
        self.visit_rows(rows, |pixel, channel, value| {
            if channels.contains(&(channel as u32)) && channel < 3 {
                band.data[(channel - channels.start as usize) * plane + pixel] = value;
            }
        });
        band
    }
}
