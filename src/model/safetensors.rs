//! safetensors files as a [`ModelFile`]: the header is read on opening, and
//! each tensor's bytes only when it is asked for.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{ConvRef, DType, FileTensor, ModelFile, state_dict_convs};
use crate::error::{Error, Result};

/// Largest header accepted, in bytes (the format's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    /// The float dtype, or the file's name for another (read as an error).
    dtype: std::result::Result<DType, String>,
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
    /// Opens `path` and reads its header, refusing a malformed one.
    pub fn open(path: &Path) -> Result<Self> {
        let invalid = |message: String| Error::weights(path, message);
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
        if header_len > MAX_HEADER_BYTES || 8 + header_len > file_len {
            return Err(invalid(format!(
                "not a valid safetensors file: its header claims {header_len} bytes of a {file_len}-byte file"
            )));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header)
            .map_err(|e| Error::weights_caused(path, "not a valid safetensors file", e))?;
        let data_start = 8 + header_len;
        let entries = parse_header(&header, file_len - data_start).map_err(invalid)?;
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
}

/// The header's tensors, in the order of their data, each checked to lie
/// inside the `data_len` bytes of the data section with its shape's size.
fn parse_header(header: &[u8], data_len: u64) -> std::result::Result<Vec<Entry>, String> {
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header)
        .map_err(|e| format!("not a valid safetensors file: its header is not JSON ({e})"))?;
    let mut entries = Vec::new();
    for (name, info) in json.iter().filter(|(name, _)| *name != "__metadata__") {
        let bad = |what: &str| format!("not a valid safetensors file: tensor {name:?} {what}");
        let dtype = match info["dtype"].as_str() {
            Some("F16") => Ok(DType::F16),
            Some("BF16") => Ok(DType::BF16),
            Some("F32") => Ok(DType::F32),
            Some("F64") => Ok(DType::F64),
            Some(other) => Err(other.to_string()),
            None => return Err(bad("has no dtype")),
        };
        let size = dtype_size(&dtype).ok_or_else(|| bad("has an unknown dtype"))?;
        let numbers = |key: &str| -> Option<Vec<u64>> {
            info[key].as_array()?.iter().map(|v| v.as_u64()).collect()
        };
        let shape = numbers("shape").ok_or_else(|| bad("has no shape"))?;
        let [start, end] = numbers("data_offsets")
            .and_then(|o| <[u64; 2]>::try_from(o).ok())
            .ok_or_else(|| bad("has no data_offsets"))?;
        let count = shape
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_mul(size));
        if start > end || end > data_len || count != Some(end - start) {
            return Err(bad(
                "has data_offsets that do not fit its shape or the file",
            ));
        }
        entries.push(Entry {
            name: name.clone(),
            dtype,
            shape: shape.iter().map(|&d| d as usize).collect(),
            start,
            end,
        });
    }
    entries.sort_by_key(|e| (e.start, e.end));
    Ok(entries)
}

/// Bytes per value of a safetensors dtype.
fn dtype_size(dtype: &std::result::Result<DType, String>) -> Option<u64> {
    Some(match dtype {
        Ok(dtype) => dtype.size() as u64,
        Err(name) => match name.as_str() {
            "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" => 1,
            "I16" | "U16" => 2,
            "I32" | "U32" => 4,
            "I64" | "U64" => 8,
            _ => return None,
        },
    })
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

    fn tensor(&mut self, name: &str) -> Result<FileTensor> {
        let entry = self
            .entries
            .iter()
            .find(|e| e.name == name)
            .cloned()
            .ok_or_else(|| Error::weights(&self.path, format!("has no tensor {name:?}")))?;
        let dtype = entry.dtype.clone().map_err(|other| {
            Error::weights(
                &self.path,
                format!(
                    "tensor {name:?} has dtype {other}, expected a float (F16, BF16, F32 or F64)"
                ),
            )
        })?;
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
