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
pub trait Bands {
    /// `[C, H, W]`.
    fn shape(&self) -> [u32; 3];

    /// Channels `channels` and rows `rows` (all columns) as f32,
    /// `[channels, rows, W]`.
    fn band(&self, channels: std::ops::Range<u32>, rows: std::ops::Range<u32>) -> Tensor3;
}

impl Bands for Tensor3 {
    fn shape(&self) -> [u32; 3] {
        [self.channels, self.height, self.width]
    }

    fn band(&self, channels: std::ops::Range<u32>, rows: std::ops::Range<u32>) -> Tensor3 {
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
