//! A plain 3-D f32 tensor, used for the input photo `[C, H, W]` and for the
//! feature maps `[K, OH, OW]`, and the float dtypes files store tensors in.

/// A row-major `[channels, height, width]` array of f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor3 {
    /// Planes: C for a photo, K for feature maps.
    pub channels: u32,
    /// Rows per plane.
    pub height: u32,
    /// Columns per row.
    pub width: u32,
    /// `channels·height·width` values; element `[c, y, x]` is at `(c·height + y)·width + x`.
    pub data: Vec<f32>,
}

impl Tensor3 {
    /// A tensor of zeros.
    pub fn zeros(channels: u32, height: u32, width: u32) -> Self {
        let len = channels as usize * height as usize * width as usize;
        Tensor3 {
            channels,
            height,
            width,
            data: vec![0.0; len],
        }
    }

    /// Wraps `data`, which must hold `channels·height·width` values.
    ///
    /// # Panics
    /// When the length does not match the shape (a programming error).
    pub fn from_vec(channels: u32, height: u32, width: u32, data: Vec<f32>) -> Self {
        assert_eq!(
            data.len(),
            channels as usize * height as usize * width as usize,
            "Tensor3::from_vec: data length does not match [{channels}, {height}, {width}]"
        );
        Tensor3 {
            channels,
            height,
            width,
            data,
        }
    }

    /// Values per plane: `height·width`.
    pub fn plane_len(&self) -> usize {
        self.view().plane_len()
    }

    /// Plane `index` (one channel, or one feature map), `[height, width]`.
    pub fn plane(&self, index: u32) -> &[f32] {
        self.view().plane(index)
    }

    /// Every plane in order.
    pub fn planes(&self) -> impl Iterator<Item = &[f32]> {
        self.view().planes()
    }

    /// A copy of channels `channels` and rows `rows` (all columns).
    pub fn slice(&self, channels: std::ops::Range<u32>, rows: std::ops::Range<u32>) -> Tensor3 {
        let row_len = self.width as usize;
        let mut data = Vec::with_capacity((channels.len()) * rows.len() * row_len);
        for c in channels.clone() {
            let plane = self.plane(c);
            data.extend_from_slice(
                &plane[rows.start as usize * row_len..rows.end as usize * row_len],
            );
        }
        Tensor3::from_vec(
            channels.end - channels.start,
            rows.end - rows.start,
            self.width,
            data,
        )
    }

    /// The tensor as a borrowed view.
    pub fn view(&self) -> TensorView<'_> {
        TensorView::new(self.channels, self.height, self.width, &self.data)
    }

    /// Element `[c, y, x]`.
    pub fn get(&self, c: u32, y: u32, x: u32) -> f32 {
        self.view().get(c, y, x)
    }
}

/// A `[C, H, W]` image that the bands of a run are cut from: a
/// [`Tensor3`], or a photo kept in its own sample format and turned into
/// f32 a band at a time.
pub trait RowSource {
    /// `[C, H, W]`.
    fn shape(&self) -> [u32; 3];

    /// Channels `channels` and rows `rows` (all columns) as f32,
    /// `[channels, rows, W]`.
    fn rows(&self, channels: std::ops::Range<u32>, rows: std::ops::Range<u32>) -> Tensor3;

    /// [`RowSource::rows`] for rows that may lie outside the image, above it
    /// (negative) or below it (at or past H): those rows are zeros, the
    /// image's zero padding.
    fn padded_rows(&self, channels: std::ops::Range<u32>, rows: std::ops::Range<i64>) -> Tensor3 {
        let [_, height, width] = self.shape();
        let inside = rows.start.clamp(0, height as i64)..rows.end.clamp(0, height as i64);
        let inside_rows = inside.start as u32..inside.end.max(inside.start) as u32;
        if inside == rows {
            return self.rows(channels, inside_rows);
        }
        let count = channels.len() as u32;
        let mut padded = Tensor3::zeros(count, rows.end.saturating_sub(rows.start) as u32, width);
        if !inside_rows.is_empty() {
            let part = self.rows(channels, inside_rows);
            let offset = (inside.start - rows.start) as usize * width as usize;
            let plane = padded.plane_len();
            for (c, values) in part.planes().enumerate() {
                padded.data[c * plane + offset..][..values.len()].copy_from_slice(values);
            }
        }
        padded
    }
}

impl RowSource for Tensor3 {
    fn shape(&self) -> [u32; 3] {
        [self.channels, self.height, self.width]
    }

    fn rows(&self, channels: std::ops::Range<u32>, rows: std::ops::Range<u32>) -> Tensor3 {
        self.slice(channels, rows)
    }
}

/// A borrowed row-major `[channels, height, width]` array of f32: feature
/// maps where they lie, in mapped GPU memory or in a [`Tensor3`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorView<'a> {
    /// Planes.
    pub channels: u32,
    /// Rows per plane.
    pub height: u32,
    /// Columns per row.
    pub width: u32,
    /// `channels·height·width` values, laid out as in [`Tensor3`].
    pub data: &'a [f32],
}

impl<'a> TensorView<'a> {
    /// Views `data`, which must hold `channels·height·width` values.
    ///
    /// # Panics
    /// When the length does not match the shape (a programming error).
    pub fn new(channels: u32, height: u32, width: u32, data: &'a [f32]) -> Self {
        assert_eq!(
            data.len(),
            channels as usize * height as usize * width as usize,
            "TensorView::new: data length does not match [{channels}, {height}, {width}]"
        );
        TensorView {
            channels,
            height,
            width,
            data,
        }
    }

    /// Values per plane: `height·width`.
    pub fn plane_len(&self) -> usize {
        self.height as usize * self.width as usize
    }

    /// Plane `index`, `[height, width]`.
    pub fn plane(&self, index: u32) -> &'a [f32] {
        let len = self.plane_len();
        &self.data[index as usize * len..][..len]
    }

    /// Every plane in order.
    pub fn planes(&self) -> impl Iterator<Item = &'a [f32]> + use<'a> {
        self.data.chunks_exact(self.plane_len().max(1))
    }

    /// Element `[c, y, x]`.
    pub fn get(&self, c: u32, y: u32, x: u32) -> f32 {
        self.data
            [(c as usize * self.height as usize + y as usize) * self.width as usize + x as usize]
    }

    /// A copy that owns its values.
    pub fn to_tensor(&self) -> Tensor3 {
        Tensor3::from_vec(self.channels, self.height, self.width, self.data.to_vec())
    }
}

/// A floating-point dtype a model file can hold; every one is read as f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    /// IEEE half precision.
    F16,
    /// bfloat16: f32's exponent, 7 bits of mantissa.
    BF16,
    /// IEEE single precision.
    F32,
    /// IEEE double precision, rounded to the nearest f32.
    F64,
}

impl DType {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::F64 => 8,
        }
    }

    /// The dtype's usual name: "f16", "bf16", "f32", "f64".
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
            DType::F64 => "f64",
        }
    }

    /// Little-endian values of this dtype as f32 (f64 rounded to nearest).
    /// `bytes` must hold a whole number of values.
    pub fn to_f32_le(self, bytes: &[u8]) -> Vec<f32> {
        self.to_f32(bytes, false)
    }

    /// Values of this dtype as f32, big-endian when `big_endian`.
    pub fn to_f32(self, bytes: &[u8], big_endian: bool) -> Vec<f32> {
        let chunks = bytes.chunks_exact(self.size());
        macro_rules! read {
            ($ty:ty, $n:literal) => {
                chunks.map(|c| {
                    let raw: [u8; $n] = c.try_into().expect("chunks of the dtype's size");
                    if big_endian {
                        <$ty>::from_be_bytes(raw)
                    } else {
                        <$ty>::from_le_bytes(raw)
                    }
                })
            };
        }
        match self {
            DType::F16 => read!(u16, 2)
                .map(|v| half::f16::from_bits(v).to_f32())
                .collect(),
            DType::BF16 => read!(u16, 2)
                .map(|v| half::bf16::from_bits(v).to_f32())
                .collect(),
            DType::F32 => read!(f32, 4).collect(),
            DType::F64 => read!(f64, 8).map(|v| v as f32).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_rows_are_zero_outside_the_image_and_slices_inside() {
        // 2 channels of 3 rows × 2 columns, values 1..=12.
        let image = Tensor3::from_vec(2, 3, 2, (1..=12).map(|v| v as f32).collect());
        assert_eq!(image.padded_rows(0..2, 0..3), image);
        assert_eq!(image.padded_rows(1..2, 1..3), image.slice(1..2, 1..3));
        // Two rows above, all three rows, one row below; channel 1 only.
        let padded = image.padded_rows(1..2, -2..4);
        assert_eq!((padded.channels, padded.height, padded.width), (1, 6, 2));
        let expected = [0., 0., 0., 0., 7., 8., 9., 10., 11., 12., 0., 0.];
        assert_eq!(padded.data, expected);
        // Wholly in the padding, above and below.
        assert_eq!(image.padded_rows(0..2, -3..-1), Tensor3::zeros(2, 2, 2));
        assert_eq!(image.padded_rows(0..1, 5..7), Tensor3::zeros(1, 2, 2));
    }
}
