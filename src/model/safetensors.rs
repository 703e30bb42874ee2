//! safetensors files as a [`ModelFile`]: the header is read on opening and
//! parsed and validated by the `safetensors` crate (tensors in order, their
//! data contiguous and not overlapping, each as long as its shape and dtype
//! say), and each tensor's bytes are read only when it is asked for.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use safetensors::Dtype;
use safetensors::tensor::Metadata;

use super::{ConvRef, DType, FileTensor, ModelFile, state_dict_convs, values_within};
use crate::error::{Error, Result};

/// Largest header accepted, in bytes (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    /// The float dtype, or the file's name for another (read as an error).
    dtype: std::result::Result<DType, String>,
    /// Its shape, outermost first.
    shape: Vec<usize>,
    /// Byte range in the data section.
    start: u64,
    end: u64,
}

/// An open safetensors file.
pub struct SafetensorsFile {
    path: PathBuf,
    file: File,
    /// Where the data section begins.
    data_start: u64,
    /// Tensors in the order of their data.
    entries: Vec<Entry>,
    convs: Vec<ConvRef>,
}

impl SafetensorsFile {
    /// Opens `path` and reads its header, refusing a malformed one: an
    /// error naming the file and what the `safetensors` crate found wrong.
    pub fn open(path: &Path) -> Result<Self> {
        let invalid = |message: String| {
            Error::weights(path, format!("not a valid safetensors file: {message}"))
        };
        let mut file =
            File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::weights_caused(path, "cannot read", e))?
            .len();
        let mut length = [0u8; 8];
        file.read_exact(&mut length)
            .map_err(|e| Error::weights_caused(path, "not a valid safetensors file", e))?;
        let header_len = u64::from_le_bytes(length);
        if header_len > MAX_HEADER_BYTES || header_len > file_len.saturating_sub(8) {
            return Err(invalid(format!(
                "its header claims {header_len} bytes of a {file_len}-byte file"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| Error::weights_caused(path, "not a valid safetensors file", e))?;
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| invalid(format!("its header is refused: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = file_len - data_start;
        if metadata.data_len() as u64 != data_len {
            return Err(invalid(format!(
                "its tensors' data cover {} bytes, the file holds {data_len} after its header",
                metadata.data_len()
            )));
        }
        let entries = entries(&metadata);
        let shapes: Vec<(String, Vec<usize>)> = entries
            .iter()
            .map(|e| (e.name.clone(), e.shape.clone()))
            .collect();
        Ok(SafetensorsFile {
            path: path.to_path_buf(),
            file,
            data_start,
            convs: state_dict_convs(&shapes),
            entries,
        })
    }

    fn entry(&self, name: &str) -> Result<&Entry> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .ok_or_else(|| Error::weights(&self.path, format!("has no tensor {name:?}")))
    }
}

/// The header's tensors in the order of their data, as the crate
/// validated them.
fn entries(metadata: &Metadata) -> Vec<Entry> {
    metadata
        .offset_keys()
        .into_iter()
        .filter_map(|name| {
            let info = metadata.info(&name)?;
            let (start, end) = info.data_offsets;
            Some(Entry {
                dtype: float_dtype(info.dtype),
                shape: info.shape.clone(),
                start: start as u64,
                end: end as u64,
                name,
            })
        })
        .collect()
}

/// The float dtype convmaps reads `dtype` as, or its name for another.
fn float_dtype(dtype: Dtype) -> std::result::Result<DType, String> {
    match dtype {
        Dtype::F16 => Ok(DType::F16),
        Dtype::BF16 => Ok(DType::BF16),
        Dtype::F32 => Ok(DType::F32),
        Dtype::F64 => Ok(DType::F64),
        other => Err(other.to_string()),
    }
}

impl ModelFile for SafetensorsFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> &'static str {
        "safetensors"
    }

    fn convs(&self) -> &[ConvRef] {
        &self.convs
    }

    fn tensor_names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.entry(name)?.shape.clone())
    }

    fn tensor_within(&mut self, name: &str, max_values: usize) -> Result<FileTensor> {
        let entry = self.entry(name)?.clone();
        let dtype = entry.dtype.clone().map_err(|other| {
            Error::weights(
                &self.path,
                format!(
                    "tensor {name:?} has dtype {other}, expected a float (F16, BF16, F32 or F64)"
                ),
            )
        })?;
        values_within(name, &entry.shape, max_values).map_err(|m| Error::weights(&self.path, m))?;
        // The header was checked against the file: these bytes are there.
        let mut bytes = vec![0u8; (entry.end - entry.start) as usize];
        self.file
            .seek(SeekFrom::Start(self.data_start + entry.start))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| Error::weights_caused(&self.path, format!("cannot read {name}"), e))?;
        Ok(FileTensor {
            shape: entry.shape,
            dtype,
            values: dtype.to_f32_le(&bytes),
        })
    }
}
