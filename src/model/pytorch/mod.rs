//! PyTorch checkpoints (`.pt`, `.pth`, `.bin`) as a [`ModelFile`], in both
//! of `torch.save`'s formats:
//!
//! - zip (PyTorch 1.6+): `<archive>/data.pkl` is the pickled object,
//!   `<archive>/data/<key>` each storage's raw bytes, and
//!   `<archive>/byteorder` says "little" or "big" (little when absent);
//! - legacy: pickles one after another — the magic number, the protocol
//!   version, the system info, the object, the list of storage keys — then
//!   each storage of that list as a little-endian u64 element count and its
//!   bytes.
//!
//! The pickle is read by [`pickle`], which never runs code and refuses any
//! global outside its allow-list. Opening reads the pickle and, in the
//! legacy format, each storage's 8-byte header; a tensor's values are read
//! only when asked for, from its own storage.

pub mod pickle;
mod storage;

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use self::pickle::{Dict, TensorRef, Value};
use self::storage::Storages;
use super::{ConvRef, FileTensor, ModelFile, state_dict_convs, values_within};
use crate::error::{Error, Result};

/// Keys under which a checkpoint dict commonly holds its state dict, tried
/// in this order before any other key.
pub const STATE_DICT_KEYS: [&str; 5] = ["state_dict", "model", "model_state_dict", "net", "module"];

/// Most elements a tensor may have beyond those of its storage span (a
/// view with zero strides repeats values; a huge one is a corrupt file or
/// one built to exhaust memory): 2^24, 64 MiB of f32, whatever bound the
/// caller gives.
const MAX_EXPANDED_ELEMENTS: u64 = 1 << 24;

/// One tensor of the state dict.
#[derive(Clone, Debug)]
struct Entry {
    name: String,
    tensor: TensorRef,
}

/// An open PyTorch checkpoint.
pub struct PytorchFile {
    path: PathBuf,
    storages: Storages,
    /// The key of the checkpoint dict that holds the state dict, if any.
    state_dict_key: Option<String>,
    /// Tensors in the pickle's dict order.
    entries: Vec<Entry>,
    convs: Vec<ConvRef>,
}

impl PytorchFile {
    /// Opens `path`, reads its pickle (never running it) and lists its
    /// state dict's tensors. Errors name the file: one that is neither
    /// format, a truncated zip, a corrupt pickle, a refused global, a
    /// pickle that holds no state dict.
    pub fn open(path: &Path) -> Result<Self> {
        let mut file =
            File::open(path).map_err(|e| Error::weights_caused(path, "cannot read", e))?;
        let mut magic = [0u8; 4];
        let is_zip = file.read_exact(&mut magic).is_ok() && magic == *b"PK\x03\x04";
        drop(file);
        let (root, storages) = if is_zip {
            storage::open_zip(path)?
        } else {
            storage::open_legacy(path)?
        };
        let (state_dict_key, entries) =
            find_state_dict(&root).map_err(|m| Error::weights(path, m))?;
        let shapes: Vec<(String, Vec<usize>)> = entries
            .iter()
            .map(|e| {
                let shape = e.tensor.shape.iter().map(|&d| d as usize).collect();
                (e.name.clone(), shape)
            })
            .collect();
        Ok(PytorchFile {
            path: path.to_path_buf(),
            storages,
            state_dict_key,
            convs: state_dict_convs(&shapes),
            entries,
        })
    }

    /// The key of the checkpoint dict that held the state dict
    /// (`"state_dict"`, `"model"`, ...), or `None` when the file's object is
    /// the state dict itself.
    pub fn state_dict_key(&self) -> Option<&str> {
        self.state_dict_key.as_deref()
    }

    /// The dtype of tensor `name` as PyTorch names it ("float32", "int64",
    /// ...), or `None` when the file has no such tensor. Integer tensors are
    /// listed but refused by [`ModelFile::tensor`].
    pub fn dtype_name(&self, name: &str) -> Option<&'static str> {
        self.entry(name).map(|e| e.tensor.element.name)
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }
}

/// The state dict in `root`: `root` itself when it holds tensors, else the
/// first value of [`STATE_DICT_KEYS`], then of any key, that is a dict of
/// tensors. Returns that key (if any) and the tensors in dict order.
fn find_state_dict(root: &Value) -> std::result::Result<(Option<String>, Vec<Entry>), String> {
    let Value::Dict(dict) = root else {
        return Err(format!(
            "holds {}, not a state dict (a dict of tensors) or a checkpoint dict holding one",
            kind(root)
        ));
    };
    // Each dict is looked into once, however many keys share it.
    let mut seen = HashSet::new();
    let top = tensors_of(root, &mut seen);
    if !top.is_empty() {
        return Ok((None, top));
    }
    let dict = dict.borrow();
    let named = STATE_DICT_KEYS
        .iter()
        .filter_map(|key| dict.get(key).map(|value| (*key, value)));
    let any = dict.iter().filter_map(|(k, v)| Some((k.text()?, v)));
    for (key, value) in named.chain(any) {
        let tensors = tensors_of(value, &mut seen);
        if !tensors.is_empty() {
            return Ok((Some(key.to_string()), tensors));
        }
    }
    let keys: Vec<&str> = dict.iter().filter_map(|(k, _)| k.text()).collect();
    Err(format!(
        "holds a dict with no tensors and no state dict under any of its keys ({})",
        keys.join(", ")
    ))
}

/// The tensors of a dict with str keys, in its order (empty for others,
/// and for a dict in `seen`, to which it is added).
fn tensors_of(value: &Value, seen: &mut HashSet<*const RefCell<Dict>>) -> Vec<Entry> {
    let Value::Dict(dict) = value else {
        return Vec::new();
    };
    if !seen.insert(Rc::as_ptr(dict)) {
        return Vec::new();
    }
    dict.borrow()
        .iter()
        .filter_map(|(key, value)| match value {
            Value::Tensor(tensor) => Some(Entry {
                name: key.text()?.to_string(),
                tensor: tensor.as_ref().clone(),
            }),
            _ => None,
        })
        .collect()
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Tensor(_) => "a single tensor",
        Value::List(_) | Value::Tuple(_) => "a list",
        _ => "no dict",
    }
}

impl ModelFile for PytorchFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn format(&self) -> &'static str {
        self.storages.format()
    }

    fn convs(&self) -> &[ConvRef] {
        &self.convs
    }

    fn tensor_names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.name.clone()).collect()
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        let entry = self
            .entry(name)
            .ok_or_else(|| Error::weights(&self.path, format!("has no tensor {name:?}")))?;
        sizes(&entry.tensor.shape)
            .ok_or_else(|| Error::weights(&self.path, format!("tensor {name:?} {TOO_LARGE}")))
    }

    fn tensor_within(&mut self, name: &str, max_values: usize) -> Result<FileTensor> {
        let path = self.path.clone();
        let entry = self
            .entry(name)
            .cloned()
            .ok_or_else(|| Error::weights(&path, format!("has no tensor {name:?}")))?;
        let tensor = &entry.tensor;
        let Some(dtype) = tensor.element.float else {
            return Err(Error::weights(
                &path,
                format!(
                    "tensor {name:?} has dtype {}, expected a float (float16, bfloat16, float32 or float64)",
                    tensor.element.name
                ),
            ));
        };
        // The bound comes first: a view may repeat a few stored values over
        // a huge shape, and nothing of it is read or expanded beyond it.
        let shape = self.tensor_shape(name)?;
        values_within(name, &shape, max_values).map_err(|m| Error::weights(&path, m))?;
        let view =
            View::of(tensor).map_err(|m| Error::weights(&path, format!("tensor {name:?} {m}")))?;
        let bytes = match view.span {
            Some((start, length)) => self.storages.read(&path, &tensor.storage, start, length)?,
            None => Vec::new(),
        };
        let values = dtype.to_f32(&bytes, self.storages.big_endian());
        let values = gather(&values, &view.shape, &view.strides).ok_or_else(|| {
            Error::weights(&path, format!("tensor {name:?} has too many elements"))
        })?;
        Ok(FileTensor {
            shape: view.shape,
            dtype,
            values,
        })
    }
}

/// What a tensor whose sizes do not fit in memory is told.
const TOO_LARGE: &str = "has a size, stride or offset too large to read";

/// `dims` as `usize`, or `None` when one does not fit.
fn sizes(dims: &[u64]) -> Option<Vec<usize>> {
    dims.iter().map(|&d| usize::try_from(d).ok()).collect()
}

/// A tensor's view checked against its storage, in `usize`.
struct View {
    shape: Vec<usize>,
    /// Its strides, 0 for each dimension of size 1 (never stepped along,
    /// whatever the file says).
    strides: Vec<usize>,
    /// The bytes it spans in its storage: start and length; `None` when it
    /// has no elements.
    span: Option<(u64, u64)>,
}

/// The product of `dims`, or `None` when it overflows.
fn numel<T: Copy + TryInto<u64>>(dims: &[T]) -> Option<u64> {
    dims.iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d.try_into().ok()?))
}

impl View {
    /// Checks that `tensor`'s elements lie inside its storage and that its
    /// sizes fit in memory.
    fn of(tensor: &TensorRef) -> std::result::Result<View, String> {
        let overflow = || TOO_LARGE.to_string();
        let numel = numel(&tensor.shape).ok_or_else(overflow)?;
        let strides = tensor
            .shape
            .iter()
            .zip(&tensor.strides)
            .map(|(&d, &s)| if d == 1 { 0 } else { s });
        let strides: Option<Vec<usize>> = strides.map(|s| usize::try_from(s).ok()).collect();
        let shape: Option<Vec<usize>> = tensor.shape.iter().map(|&d| d.try_into().ok()).collect();
        let (Some(shape), Some(strides)) = (shape, strides) else {
            return Err(overflow());
        };
        let span = match numel {
            0 => None,
            _ => Some(span(tensor, numel)?),
        };
        Ok(View {
            shape,
            strides,
            span,
        })
    }
}

/// The bytes a tensor of `numel` elements (1 or more) spans in its
/// storage, start and length, checked to lie inside it, to repeat its
/// values at most [`MAX_EXPANDED_ELEMENTS`] times over and to fit in memory.
fn span(tensor: &TensorRef, numel: u64) -> std::result::Result<(u64, u64), String> {
    let overflow = || TOO_LARGE.to_string();
    let last = tensor
        .shape
        .iter()
        .zip(&tensor.strides)
        .try_fold(tensor.offset, |at, (&d, &s)| {
            at.checked_add((d - 1).checked_mul(s)?)
        })
        .ok_or_else(overflow)?;
    let storage = &tensor.storage;
    let size = tensor.element.size as u64;
    let base = storage.view_offset.checked_mul(storage.element.size as u64);
    let start = base.and_then(|b| b.checked_add(tensor.offset.checked_mul(size)?));
    let end = base.and_then(|b| b.checked_add(last.checked_add(1)?.checked_mul(size)?));
    let (Some(start), Some(end)) = (start, end) else {
        return Err(overflow());
    };
    let storage_bytes = storage.numel.saturating_mul(storage.element.size as u64);
    if end > storage_bytes {
        return Err(format!(
            "reaches byte {end} of storage {:?}, which holds {storage_bytes} bytes",
            storage.key
        ));
    }
    let stored = (end - start) / size;
    if numel > stored.saturating_add(MAX_EXPANDED_ELEMENTS) {
        return Err(format!(
            "repeats its {stored} stored values over {numel} elements, more than a checkpoint's view would"
        ));
    }
    if usize::try_from(numel).is_err() || usize::try_from(end - start).is_err() {
        return Err(overflow());
    }
    Ok((start, end - start))
}

/// The elements of a strided view, row-major: `values` starts at the
/// view's first element, `shape` and `strides` (in elements) are checked
/// to stay inside it. A dimension of size 1 is never stepped along, so its
/// stride is not used. `None` when the element count overflows.
fn gather(values: &[f32], shape: &[usize], strides: &[usize]) -> Option<Vec<f32>> {
    let numel = usize::try_from(numel(shape)?).ok()?;
    if numel == 0 {
        return Some(Vec::new());
    }
    let strides: Vec<usize> = shape
        .iter()
        .zip(strides)
        .map(|(&d, &s)| if d == 1 { 0 } else { s })
        .collect();
    let mut contiguous = true;
    let mut expected = 1;
    for (&d, &s) in shape.iter().zip(&strides).rev() {
        contiguous &= d == 1 || s == expected;
        expected *= d;
    }
    if contiguous {
        return Some(values[..numel].to_vec());
    }
    let mut out = Vec::with_capacity(numel);
    let mut index = vec![0usize; shape.len()];
    let mut at = 0usize;
    for _ in 0..numel {
        out.push(values[at]);
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            at += strides[d];
            if index[d] < shape[d] {
                break;
            }
            at -= strides[d] * shape[d];
            index[d] = 0;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::gather;

    #[test]
    fn gather_transposes_a_view() {
        // A 2×3 row-major matrix seen as its 3×2 transpose.
        let values = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        let gathered = |shape: &[usize], strides: &[usize]| gather(&values, shape, strides);
        assert_eq!(
            gathered(&[3, 2], &[1, 3]).unwrap(),
            [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        assert_eq!(gathered(&[2, 3], &[3, 1]).unwrap(), values);
        // Every other column, and a broadcast row.
        assert_eq!(gathered(&[2, 2], &[3, 2]).unwrap(), [0.0, 2.0, 3.0, 5.0]);
        assert_eq!(
            gathered(&[2, 3], &[0, 1]).unwrap(),
            [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]
        );
    }

    #[test]
    fn a_size_one_dimension_ignores_its_stride() {
        // [2, 1, 2] with the middle stride as large as a usize holds: stepping
        // it from anywhere but element 0 would overflow.
        let values = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(
            gather(&values, &[2, 1, 2], &[1, usize::MAX, 2]).unwrap(),
            [0.0, 2.0, 1.0, 3.0]
        );
    }

    #[test]
    fn element_counts_that_overflow_are_none() {
        let huge = usize::MAX / 2;
        assert_eq!(gather(&[], &[huge, huge, 4], &[0, 0, 0]), None);
        assert_eq!(gather(&[], &[0, huge, huge], &[1, 1, 1]), Some(vec![]));
    }
}
