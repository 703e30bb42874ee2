//! ONNX external data: a tensor whose bytes lie in another file beside the
//! model, as today's exporters keep the weights (`model.onnx.data`). The
//! tensor's `external_data` entries say where: `location`, a path relative
//! to the model's folder; `offset` and `length`, in bytes (`length` absent:
//! the tensor's own size). The location must stay inside the model's
//! folder (no absolute path, no `..`); a symbolic link there is followed,
//! as model caches use them. Only the tensor's own bytes are read, and only
//! when the tensor is.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Where a tensor's bytes lie outside the model file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct ExternalData {
    /// The file, relative to the model's folder.
    location: String,
    /// The first byte.
    offset: u64,
    /// The number of bytes, when stated.
    length: Option<u64>,
}

impl ExternalData {
    /// The entries of `TensorProto.external_data` (key, value) of tensor
    /// `name`; `checksum` and unknown keys are passed over.
    pub(super) fn parse(name: &str, entries: &[(String, String)]) -> Result<Self, String> {
        let mut data = ExternalData::default();
        let number = |key: &str, value: &str| {
            value.trim().parse::<u64>().map_err(|_| {
                format!("tensor {name:?}: external data {key} {value:?} is not a number of bytes")
            })
        };
        for (key, value) in entries {
            match key.as_str() {
                "location" => data.location = value.clone(),
                "offset" => data.offset = number(key, value)?,
                "length" => data.length = Some(number(key, value)?),
                _ => {}
            }
        }
        if data.location.is_empty() {
            return Err(format!(
                "tensor {name:?} keeps its data in an external file but names none (no location)"
            ));
        }
        Ok(data)
    }

    /// The file the bytes lie in, for a model at `model`: the location
    /// inside the model's folder, refused when absolute or when it climbs
    /// out with `..`.
    pub(super) fn path(&self, name: &str, model: &Path) -> Result<PathBuf, String> {
        let location = Path::new(&self.location);
        let inside = location
            .components()
            .all(|part| matches!(part, Component::Normal(_) | Component::CurDir));
        if !inside {
            return Err(format!(
                "tensor {name:?}: external data location {:?} must be a relative path inside \
                 the model's folder, without `..`",
                self.location
            ));
        }
        let folder = model.parent().unwrap_or(Path::new(""));
        Ok(folder.join(location))
    }

    /// Reads the `size` bytes of tensor `name` of the model at `model`,
    /// after checking the stated length against `size` and the range
    /// against the file's length.
    pub(super) fn read(&self, name: &str, model: &Path, size: u64) -> Result<Vec<u8>, String> {
        let path = self.path(name, model)?;
        let shown = path.display();
        if let Some(length) = self.length.filter(|&length| length != size) {
            return Err(format!(
                "tensor {name:?}: external data in {shown} is {length} bytes long, \
                 its shape and type need {size}"
            ));
        }
        let mut file = File::open(&path)
            .map_err(|e| format!("tensor {name:?}: cannot open its external data {shown}: {e}"))?;
        let file_len = file
            .metadata()
            .map_err(|e| format!("tensor {name:?}: cannot read its external data {shown}: {e}"))?
            .len();
        let end = self.offset.checked_add(size).filter(|&end| end <= file_len);
        if end.is_none() {
            return Err(format!(
                "tensor {name:?}: external data {shown} holds {file_len} bytes, shorter than \
                 the {size} bytes its shape needs from offset {}",
                self.offset
            ));
        }
        let mut bytes = vec![0; size as usize];
        file.seek(SeekFrom::Start(self.offset))
            .and_then(|_| file.read_exact(&mut bytes))
            .map_err(|e| format!("tensor {name:?}: cannot read its external data {shown}: {e}"))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn locations_outside_the_models_folder_are_refused() {
        let model = Path::new("/models/m.onnx");
        for location in ["/etc/passwd", "../m.onnx.data", "a/../../b", "a/../b"] {
            let data = ExternalData::parse("w", &entries(&[("location", location)])).unwrap();
            let error = data.path("w", model).unwrap_err();
            assert!(
                error.contains("\"w\"") && error.contains(location),
                "{error}"
            );
        }
        let data = ExternalData::parse("w", &entries(&[("location", "./sub/m.onnx.data")]));
        assert_eq!(
            data.unwrap().path("w", model).unwrap(),
            Path::new("/models/./sub/m.onnx.data")
        );
    }

    #[test]
    fn offsets_and_lengths_are_numbers_and_a_location_is_needed() {
        let data = ExternalData::parse(
            "w",
            &entries(&[
                ("location", "m.data"),
                ("offset", "128"),
                ("length", "36"),
                ("checksum", "x"),
            ]),
        )
        .unwrap();
        assert_eq!((data.offset, data.length), (128, Some(36)));
        let error = ExternalData::parse("w", &entries(&[("location", "m"), ("offset", "-1")]));
        assert!(error.unwrap_err().contains("offset"));
        let error = ExternalData::parse("w", &entries(&[("offset", "0")])).unwrap_err();
        assert!(error.contains("no location"), "{error}");
    }
}
