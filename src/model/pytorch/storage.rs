//! Where a checkpoint's storages lie, and reading a byte range of one: a
//! zip record `<archive>/data/<key>`, or a legacy storage's place in the
//! file, found at opening from the 8-byte headers alone.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::pickle::{self, Counted, StorageRef, Value};
use crate::error::{Error, Result};

/// The legacy format's magic number, 0x1950a86a20f9469cfc6c, as a pickled
/// int's little-endian bytes.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// The legacy format's protocol version.
const LEGACY_PROTOCOL: i64 = 1001;

/// A checkpoint's storages.
pub enum Storages {
    /// The zip format.
    Zip {
        archive: zip::ZipArchive<File>,
        /// The records' common prefix, `<archive>/`.
        prefix: String,
        big_endian: bool,
    },
    /// The legacy format.
    Legacy {
        file: File,
        file_len: u64,
        /// Each storage's bytes: where they begin in the file and how many
        /// there are; absent when the file ends before its header.
        places: HashMap<String, (u64, u64)>,
    },
}

impl Storages {
    /// "pytorch (zip)" or "pytorch (legacy)".
    pub fn format(&self) -> &'static str {
        match self {
            Storages::Zip { .. } => "pytorch (zip)",
            Storages::Legacy { .. } => "pytorch (legacy)",
        }
    }

    /// Whether the values are stored big-endian.
    pub fn big_endian(&self) -> bool {
        matches!(
            self,
            Storages::Zip {
                big_endian: true,
                ..
            }
        )
    }

    /// Reads `length` bytes from byte `start` of `storage`, and nothing
    /// else of the file.
    pub fn read(
        &mut self,
        path: &Path,
        storage: &StorageRef,
        start: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let key = &storage.key;
        let cut = |have: u64| {
            Error::weights(
                path,
                format!(
                    "storage {key:?} is cut off: it holds {have} bytes, the tensor needs {}",
                    start + length
                ),
            )
        };
        let failed =
            |e: io::Error| Error::weights_caused(path, format!("cannot read storage {key:?}"), e);
        let bytes = match self {
            Storages::Zip {
                archive, prefix, ..
            } => {
                let name = format!("{prefix}data/{key}");
                let mut record = archive.by_name(&name).map_err(|e| {
                    Error::weights_caused(
                        path,
                        format!("has no record {name:?} for storage {key:?}"),
                        e,
                    )
                })?;
                if record.size() < start + length {
                    return Err(cut(record.size()));
                }
                io::copy(&mut (&mut record).take(start), &mut io::sink()).map_err(failed)?;
                read_exactly(&mut record, length).map_err(failed)?
            }
            Storages::Legacy {
                file,
                file_len,
                places,
            } => {
                let &(begin, size) = places.get(key).ok_or_else(|| {
                    Error::weights(
                        path,
                        format!("storage {key:?} is missing: the file ends before it"),
                    )
                })?;
                let have = size.min(file_len.saturating_sub(begin));
                if have < start + length {
                    return Err(cut(have));
                }
                file.seek(SeekFrom::Start(begin + start)).map_err(failed)?;
                read_exactly(file, length).map_err(failed)?
            }
        };
        Ok(bytes)
    }
}

/// Exactly `length` bytes of `reader`, allocated as they arrive (a length
/// a corrupt file claims costs no memory it does not hold).
fn read_exactly(reader: &mut impl Read, length: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(length).read_to_end(&mut bytes)?;
    if (bytes.len() as u64) < length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the storage ends after {} of {length} bytes", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// Opens a zip checkpoint: its `data.pkl` and `byteorder` records.
pub fn open_zip(path: &Path) -> Result<(Value, Storages)> {
    let file = File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| {
        Error::weights_caused(
            path,
            "not a valid PyTorch zip checkpoint (truncated or corrupt zip)",
            e,
        )
    })?;
    let pickle_name = archive
        .file_names_raw()
        .filter_map(|n| std::str::from_utf8(n).ok())
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .map(str::to_string)
        .ok_or_else(|| {
            Error::weights(
                path,
                "is a zip without a data.pkl record: not a PyTorch checkpoint",
            )
        })?;
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let record = |archive: &mut zip::ZipArchive<File>, name: &str| -> Result<Option<Vec<u8>>> {
        match archive.by_name(name) {
            Ok(entry) => super::read_all(entry).map(Some).map_err(|e| {
                Error::weights_caused(path, format!("cannot read record {name:?}"), e)
            }),
            Err(zip::result::ZipError::FileNotFound) => Ok(None),
            Err(e) => Err(Error::weights_caused(
                path,
                format!("cannot read record {name:?}"),
                e,
            )),
        }
    };
    let big_endian = match record(&mut archive, &format!("{prefix}byteorder"))?.as_deref() {
        None | Some(b"little") => false,
        Some(b"big") => true,
        Some(other) => {
            return Err(Error::weights(
                path,
                format!(
                    "has a byteorder record {:?}, expected \"little\" or \"big\"",
                    String::from_utf8_lossy(other)
                ),
            ));
        }
    };
    let data = record(&mut archive, &pickle_name)?.unwrap_or_default();
    let loaded = pickle::load(&mut Counted::new(data.as_slice()))
        .map_err(|m| Error::weights(path, format!("{pickle_name}: {m}")))?;
    Ok((
        loaded.value,
        Storages::Zip {
            archive,
            prefix,
            big_endian,
        },
    ))
}

/// Opens a legacy checkpoint: its pickles, then each storage's header.
pub fn open_legacy(path: &Path) -> Result<(Value, Storages)> {
    let not_pytorch = |m: String| {
        Error::weights(
            path,
            format!("not a PyTorch checkpoint (neither the zip nor the legacy format): {m}"),
        )
    };
    let corrupt =
        |m: String| Error::weights(path, format!("corrupt legacy PyTorch checkpoint: {m}"));
    let file = File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
    let file_len = file
        .metadata()
        .map_err(|e| Error::weights_caused(path, "cannot read", e))?
        .len();
    let mut reader = Counted::new(BufReader::new(file));
    let magic = pickle::load(&mut reader).map_err(not_pytorch)?;
    if !matches!(&magic.value, Value::BigInt(b) if *b == LEGACY_MAGIC) {
        return Err(not_pytorch(
            "it does not begin with the magic number".into(),
        ));
    }
    match pickle::load(&mut reader).map_err(corrupt)?.value {
        Value::Int(LEGACY_PROTOCOL) => {}
        other => {
            return Err(corrupt(format!(
                "protocol version {}, expected {LEGACY_PROTOCOL}",
                other.kind()
            )));
        }
    }
    pickle::load(&mut reader).map_err(|m| corrupt(format!("its system info: {m}")))?;
    let object = pickle::load(&mut reader).map_err(corrupt)?;
    let keys = pickle::load(&mut reader).map_err(|m| corrupt(format!("its storage keys: {m}")))?;
    let keys = storage_keys(&keys.value)
        .ok_or_else(|| corrupt("its storage keys are not a list of strs".into()))?;
    let data_start = reader.position;
    let mut file = reader.into_inner().into_inner();
    let places = scan_storages(&mut file, file_len, data_start, &keys, &object.storages)
        .map_err(|m| Error::weights(path, m))?;
    Ok((
        object.value,
        Storages::Legacy {
            file,
            file_len,
            places,
        },
    ))
}

fn storage_keys(value: &Value) -> Option<Vec<String>> {
    let Value::List(list) = value else {
        return None;
    };
    list.borrow()
        .iter()
        .map(|k| k.text().map(str::to_string))
        .collect()
}

/// Each storage's place from `start` on, in the order of `keys`: an 8-byte
/// element count then the bytes. Only the headers are read; the scan stops
/// quietly where the file ends (those storages are missing when read).
fn scan_storages(
    file: &mut File,
    file_len: u64,
    start: u64,
    keys: &[String],
    storages: &[StorageRef],
) -> std::result::Result<HashMap<String, (u64, u64)>, String> {
    let mut places = HashMap::new();
    let mut at = start;
    for key in keys {
        let storage = storages.iter().find(|s| s.key == *key).ok_or_else(|| {
            format!(
                "corrupt legacy PyTorch checkpoint: storage {key:?} is listed but no tensor uses it"
            )
        })?;
        let mut header = [0u8; 8];
        if at.saturating_add(8) > file_len
            || file.seek(SeekFrom::Start(at)).is_err()
            || file.read_exact(&mut header).is_err()
        {
            break;
        }
        let count = u64::from_le_bytes(header);
        let bytes = count
            .checked_mul(storage.element.size as u64)
            .ok_or_else(|| {
                format!(
                    "corrupt legacy PyTorch checkpoint: storage {key:?} claims {count} elements"
                )
            })?;
        places.insert(key.clone(), (at + 8, bytes));
        at = (at + 8).saturating_add(bytes);
    }
    Ok(places)
}
