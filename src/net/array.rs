//! N-dimensional f32 tensors: the values a network's nodes read and write.

use crate::tensor::Tensor3;

/// A row-major f32 tensor of any rank (a network's batch of one included:
/// a photo is `[1, 3, H, W]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Sizes, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl Array {
    /// `data` of `shape`; panics when their sizes differ (a bug).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "an array of shape {shape:?} holds {} values",
            data.len()
        );
        Array { shape, data }
    }

    /// Values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The same values as `[C, H, W]`, where the shape is `[1, C, H, W]`
    /// (a conv's maps), `[1, C]` or `[1, C, 1, 1]` (pooled: C maps of
    /// 1×1); `None` for any other shape.
    pub fn as_maps(&self) -> Option<Tensor3> {
        let [c, h, w] = maps_shape(&self.shape)?;
        Some(Tensor3::from_vec(c, h, w, self.data.clone()))
    }
}

/// `[C, H, W]` of a value of `shape` seen as maps: `[1, C, H, W]`, or a
/// vector `[1, C]` as C maps of 1×1.
pub fn maps_shape(shape: &[usize]) -> Option<[u32; 3]> {
    let size = |d: usize| u32::try_from(d).ok();
    match *shape {
        [1, c, h, w] => Some([size(c)?, size(h)?, size(w)?]),
        [1, c] => Some([size(c)?, 1, 1]),
        _ => None,
    }
}

/// Row-major strides of `shape`, in values.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}
