//! Raw feature maps as numpy's `.npy` format.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{Error, Result};
use crate::output::{AtomicFile, write_atomic};
use crate::tensor::{DType, Tensor3, TensorView};

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

/// A `.npy` file of f32 `[K, OH, OW]` filled band by band in place, under
/// a temporary name until [`BandedNpy::commit`]. Also serves as the spill
/// file from which the pictures are made, read back band by band.
pub struct BandedNpy {
    file: AtomicFile,
    shape: [u64; 3],
    data_offset: u64,
}

impl BandedNpy {
    /// Creates `path` with the header for `shape` = `[K, OH, OW]`.
    pub fn create(path: &Path, shape: [u32; 3]) -> Result<Self> {
        let file = AtomicFile::create(path)?;
        let shape = shape.map(u64::from);
        let header = header_f32(&shape);
        let mut handle = file.file();
        handle.write_all(&header).map_err(|e| Error::io(path, e))?;
        let size = header.len() as u64 + shape.iter().product::<u64>() * 4;
        file.file().set_len(size).map_err(|e| Error::io(path, e))?;
        Ok(BandedNpy {
            data_offset: header.len() as u64,
            file,
            shape,
        })
    }

    /// The shape `[K, OH, OW]`.
    pub fn shape(&self) -> [u32; 3] {
        // Made from a [u32; 3] in `create`.
        self.shape.map(|n| n as u32)
    }

    fn offset(&self, map: u64, row: u64) -> u64 {
        self.data_offset + (map * self.shape[1] + row) * self.shape[2] * 4
    }

    /// Writes `maps` `[k, rows, OW]` as maps `first_map..` and rows `first_row..`.
    pub fn write_band(&self, first_map: u32, first_row: u32, maps: TensorView<'_>) -> Result<()> {
        let mut file = self.file.file();
        for k in 0..maps.channels {
            let bytes = le_bytes(maps.plane(k));
            file.seek(SeekFrom::Start(
                self.offset((first_map + k) as u64, first_row as u64),
            ))
            .and_then(|_| file.write_all(&bytes))
            .map_err(|e| Error::io(self.file.path(), e))?;
        }
        Ok(())
    }

    /// A reader of map `map`'s rows, from the first, on its own handle:
    /// one per map lets several maps be read at once.
    pub fn map_reader(&self, map: u32) -> Result<MapReader> {
        let mut file = self.file.reopen()?;
        file.seek(SeekFrom::Start(self.offset(map as u64, 0)))
            .map_err(|e| Error::io(self.file.path(), e))?;
        Ok(MapReader {
            file,
            path: self.file.path().to_path_buf(),
        })
    }

    /// Renames the finished file into place.
    pub fn commit(self) -> Result<()> {
        self.file.commit()
    }
}

/// Reads one map of a [`BandedNpy`] in order, row band by row band.
pub struct MapReader {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl MapReader {
    /// Fills `values` with the map's next `values.len()` values.
    pub fn read(&mut self, values: &mut [f32]) -> Result<()> {
        self.file
            .read_exact(bytemuck::cast_slice_mut(values))
            .map_err(|e| Error::io(&self.path, e))?;
        from_le(values);
        Ok(())
    }
}

/// The values as little-endian bytes (no copy on little-endian machines).
fn le_bytes(values: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(values))
    } else {
        std::borrow::Cow::Owned(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
}

/// Turns values read as little-endian bytes into native ones (nothing to
/// do on little-endian machines).
fn from_le(values: &mut [f32]) {
    if cfg!(target_endian = "big") {
        for value in values {
            *value = f32::from_bits(u32::from_le(value.to_bits()));
        }
    }
}

/// The `.npy` (version 1.0) header for little-endian f32 of `shape`, C
/// order, padded so the data starts on a 64-byte boundary.
fn header_f32(shape: &[u64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
    let dims = if dims.len() == 1 {
        format!("{},", dims[0])
    } else {
        dims.join(", ")
    };
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut header = b"\x93NUMPY\x01\x00".to_vec();
    header.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Whether `path` names a `.npy` file (by its extension, in any case).
pub fn is_npy(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
}

/// Reads a float `.npy` file of any shape as f32: returns the shape and
/// the values in C order. Other dtypes are errors naming the file.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    read_floats(path).map(|(shape, values, _)| (shape, values))
}

/// Reads a `.npy` file of f16, f32 or f64 (either byte order; C or Fortran
/// order) as f32 in C order: returns the shape, the values and the dtype
/// they were stored in.
pub fn read_floats(path: &Path) -> Result<(Vec<usize>, Vec<f32>, DType)> {
    let header = read_floats_header(path)?;
    let values = read_floats_values(path, &header)?;
    Ok((header.shape, values, header.dtype))
}

/// What a float `.npy` file holds, from its header alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloatsHeader {
    /// The shape, outermost first.
    pub shape: Vec<usize>,
    /// The dtype the values are stored in.
    pub dtype: DType,
    /// Whether they are stored big-endian.
    pub big_endian: bool,
    /// Whether they are stored in Fortran (column-major) order.
    pub fortran: bool,
    /// Where the values begin in the file, in bytes.
    pub data_offset: u64,
}

impl FloatsHeader {
    /// The number of values, the product of the shape (it fits: the file
    /// holds that many).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the array has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads the header of the float `.npy` file at `path`, and checks that
/// the file holds exactly the values its shape and dtype say; no value is
/// read. Errors name the file: not a `.npy`, a header longer than the file,
/// another dtype, values missing or left over.
pub fn read_floats_header(path: &Path) -> Result<FloatsHeader> {
    let invalid = |e| Error::weights_caused(path, "not a valid .npy file", e);
    let mut file =
        std::fs::File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::weights_caused(path, "cannot read", e))?
        .len();
    check_header_length(&mut file, file_len).map_err(|m| Error::weights(path, m))?;
    let mut reader = std::io::BufReader::new(file);
    let npy = npyz::NpyFile::new(&mut reader).map_err(invalid)?;
    let descr = npy.dtype().descr();
    let (dtype, big_endian) = float_dtype(&descr).ok_or_else(|| {
        Error::weights(
            path,
            format!(
                "has dtype {descr}, expected a float ('<f2', '<f4' or '<f8', either byte order)"
            ),
        )
    })?;
    let shape: Option<Vec<usize>> = npy.shape().iter().map(|&d| d.try_into().ok()).collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    drop(npy);
    let data_offset = reader.stream_position().map_err(invalid)?;
    // The values are what follows the header, exactly as many as the shape says.
    let data_len = file_len.saturating_sub(data_offset);
    let needed = shape.as_ref().and_then(|shape| {
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        u64::try_from(count.checked_mul(dtype.size())?).ok()
    });
    let shape = match (shape, needed) {
        (Some(shape), Some(needed)) if needed == data_len => shape,
        (shape, needed) => {
            return Err(Error::weights(
                path,
                format!(
                    "holds {data_len} bytes of values, but its shape {:?} of {descr} needs {}",
                    shape.unwrap_or_default(),
                    needed.map_or("more than can be counted".to_string(), |n| n.to_string())
                ),
            ));
        }
    };
    Ok(FloatsHeader {
        shape,
        dtype,
        big_endian,
        fortran,
        data_offset,
    })
}

/// Refuses a `.npy` file whose header claims more bytes than the
/// `file_len`-byte file holds, before anything is allocated for it.
fn check_header_length(file: &mut std::fs::File, file_len: u64) -> std::result::Result<(), String> {
    let mut prefix = [0u8; 12];
    let read = file.read(&mut prefix).map_err(|e| e.to_string())?;
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let claimed = match (prefix[6], read) {
        (1, 10..) => 10 + u16::from_le_bytes([prefix[8], prefix[9]]) as u64,
        (2.., 12..) => {
            12 + u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as u64
        }
        // Too short, or not a version npyz reads: it says which.
        _ => return Ok(()),
    };
    if claimed > file_len {
        return Err(format!(
            "not a valid .npy file: its header claims {claimed} bytes of a {file_len}-byte file"
        ));
    }
    Ok(())
}

/// Reads the values `header` describes from the `.npy` file at `path`, as
/// f32 in C order: exactly [`FloatsHeader::len`] of them.
pub fn read_floats_values(path: &Path, header: &FloatsHeader) -> Result<Vec<f32>> {
    let failed = |e| Error::weights_caused(path, "cannot read its values", e);
    let mut file =
        std::fs::File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    file.seek(SeekFrom::Start(header.data_offset))
        .map_err(failed)?;
    let length = header.len() * header.dtype.size();
    let mut data = Vec::new();
    file.take(length as u64)
        .read_to_end(&mut data)
        .map_err(failed)?;
    if data.len() != length {
        return Err(Error::weights(
            path,
            format!(
                "changed while it was being read: {} of {length} bytes of values",
                data.len()
            ),
        ));
    }
    let values = header.dtype.to_f32(&data, header.big_endian);
    Ok(if header.fortran {
        fortran_to_c(&values, &header.shape)
    } else {
        values
    })
}

/// The dtype and byte order of a `.npy` float descriptor such as `'<f4'`.
fn float_dtype(descr: &str) -> Option<(DType, bool)> {
    let code = descr.trim_matches('\'');
    let (order, kind) = code.split_at_checked(1)?;
    let big_endian = match order {
        "<" | "|" | "=" => false,
        ">" => true,
        _ => return None,
    };
    let dtype = match kind {
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => return None,
    };
    Some((dtype, big_endian))
}

/// `values` stored in Fortran (column-major) order for `shape`, in C
/// (row-major) order.
fn fortran_to_c(values: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut out = vec![0.0; values.len()];
    let mut index = vec![0usize; shape.len()];
    for value in out.iter_mut() {
        // `index` walks C order; the same element in Fortran order sits at
        // Σ index[d]·(product of the sizes before d).
        let mut fortran = 0;
        let mut step = 1;
        for (d, &size) in shape.iter().enumerate() {
            fortran += index[d] * step;
            step *= size;
        }
        *value = values[fortran];
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Reads an f32 `.npy` file of three dimensions into a tensor.
pub fn read_f32_3d(path: &Path) -> Result<Tensor3> {
    let (shape, data) = read_f32(path)?;
    let [channels, height, width] = shape[..] else {
        return Err(Error::weights(
            path,
            format!("has shape {shape:?}, expected 3 dimensions"),
        ));
    };
    Ok(Tensor3::from_vec(
        channels as u32,
        height as u32,
        width as u32,
        data,
    ))
}
