//! A plain 3-D f32 tensor, used for the input photo `[C, H, W]` and for the
//! feature maps `[K, OH, OW]`.

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
        self.height as usize * self.width as usize
    }

    /// Plane `index` (one channel, or one feature map), `[height, width]`.
    pub fn plane(&self, index: u32) -> &[f32] {
        let len = self.plane_len();
        let start = index as usize * len;
        &self.data[start..start + len]
    }

    /// Every plane in order.
    pub fn planes(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.plane_len().max(1))
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

    /// Element `[c, y, x]`.
    pub fn get(&self, c: u32, y: u32, x: u32) -> f32 {
        self.data
            [(c as usize * self.height as usize + y as usize) * self.width as usize + x as usize]
    }
}
