//! Raw feature maps as numpy's `.npy` format.

use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{Error, Result};
use crate::output::write_atomic;
use crate::tensor::Tensor3;

/// Writes `tensor` as a little-endian f32 `.npy` file of shape
/// `(channels, height, width)`, C order, atomically.
pub fn write_f32(path: &Path, tensor: &Tensor3) -> Result<()> {
    let shape = [
        tensor.channels as usize,
        tensor.height as usize,
        tensor.width as usize,
    ];
    write_f32_nd(path, &shape, &tensor.data)
}

/// Writes `data` as a little-endian f32 `.npy` file of `shape`, C order,
/// atomically. `data` must hold the product of `shape` values.
pub fn write_f32_nd(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    write_atomic(path, |w| {
        let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut writer = npyz::WriteOptions::<f32>::new()
            .dtype(npyz::DType::new_scalar(
                "<f4".parse().map_err(std::io::Error::other)?,
            ))
            .shape(&shape)
            .writer(w)
            .begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    })
}

/// Reads an f32 `.npy` file (C order) of any shape: returns the shape and
/// the values. Other dtypes and Fortran order are errors naming the file.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let npy_error = |message: String| Error::Weights {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| npy_error(e.to_string()))?;
    let file = npyz::NpyFile::new(&bytes[..])
        .map_err(|e| npy_error(format!("not a valid .npy file: {e}")))?;
    if file.order() != npyz::Order::C {
        return Err(npy_error("is in Fortran order, expected C order".into()));
    }
    let dtype = file.dtype().descr();
    if dtype != "'<f4'" {
        return Err(npy_error(format!(
            "has dtype {dtype}, expected '<f4' (little-endian float32)"
        )));
    }
    let shape = file.shape().iter().map(|&d| d as usize).collect();
    let data = file.into_vec().map_err(|e| npy_error(e.to_string()))?;
    Ok((shape, data))
}

/// Reads an f32 `.npy` file of three dimensions into a tensor.
pub fn read_f32_3d(path: &Path) -> Result<Tensor3> {
    let (shape, data) = read_f32(path)?;
    let [channels, height, width] = shape[..] else {
        return Err(Error::Weights {
            path: path.to_path_buf(),
            message: format!("has shape {shape:?}, expected 3 dimensions"),
        });
    };
    Ok(Tensor3::from_vec(
        channels as u32,
        height as u32,
        width as u32,
        data,
    ))
}
