//! A pickle reader that never runs code. It knows the opcodes `torch.save`
//! writes (protocol 2, and the later ones a newer pickler may use) and an
//! allow-list of globals: `collections.OrderedDict`, the tensor rebuilders
//! of `torch._utils`, the storage classes and dtypes of `torch`. Every other
//! global is refused by name when the pickle names it, before anything uses
//! it. Tensors become [`TensorRef`]s that say where their values lie.
//!
//! A pickle of N bytes costs O(N) memory and time: copying a value (DUP,
//! GET, PUT) shares it rather than copying its bytes, so the stack and the
//! memo grow by at most one entry per opcode, and the work that copies
//! values into new containers or hashes a dict key is charged against a
//! budget that grows with the bytes read ([`WORK_PER_BYTE`]).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;

use crate::tensor::DType;

/// Largest string, byte string or memo index a pickle may claim, in bytes
/// or entries; a longer claim is a corrupt file, not a state dict.
const MAX_LENGTH: u64 = 1 << 30;

/// Longest line of a `GLOBAL` opcode, in bytes.
const MAX_LINE: usize = 1024;

/// Work a pickle may do per byte read, in values copied into new
/// containers and bytes of dict and storage keys hashed.
pub const WORK_PER_BYTE: u64 = 8;

/// Work any pickle may do, however short.
const WORK_BASE: u64 = 1 << 20;

/// Most dimensions a tensor may have.
const MAX_DIMS: usize = 64;

/// A storage class (`torch.FloatStorage`, ...) or a dtype (`torch.float32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementType {
    /// PyTorch's name of the dtype: "float32", "int64", ...
    pub name: &'static str,
    /// Bytes per element.
    pub size: usize,
    /// The float dtype convmaps reads it as; `None` for the others.
    pub float: Option<DType>,
}

/// Storage class, dtype names, element size and float dtype of every
/// element type a checkpoint may name.
const ELEMENT_TYPES: &[(&str, &[&str], usize, Option<DType>)] = &[
    ("FloatStorage", &["float32", "float"], 4, Some(DType::F32)),
    ("HalfStorage", &["float16", "half"], 2, Some(DType::F16)),
    ("BFloat16Storage", &["bfloat16"], 2, Some(DType::BF16)),
    ("DoubleStorage", &["float64", "double"], 8, Some(DType::F64)),
    ("LongStorage", &["int64", "long"], 8, None),
    ("IntStorage", &["int32", "int"], 4, None),
    ("ShortStorage", &["int16", "short"], 2, None),
    ("CharStorage", &["int8"], 1, None),
    ("ByteStorage", &["uint8"], 1, None),
    ("BoolStorage", &["bool"], 1, None),
    ("ComplexFloatStorage", &["complex64", "cfloat"], 8, None),
    ("ComplexDoubleStorage", &["complex128", "cdouble"], 16, None),
    ("UntypedStorage", &["uint8"], 1, None),
];

impl ElementType {
    /// The element type of the storage class `torch.<class>`.
    fn of_storage(class: &str) -> Option<Self> {
        ELEMENT_TYPES
            .iter()
            .find(|(name, ..)| *name == class)
            .map(|&(_, names, size, float)| ElementType {
                name: names[0],
                size,
                float,
            })
    }

    /// The element type of the dtype `torch.<name>`.
    fn of_dtype(name: &str) -> Option<Self> {
        ELEMENT_TYPES
            .iter()
            .find(|(_, names, ..)| names.contains(&name))
            .map(|&(_, names, size, float)| ElementType {
                name: names[0],
                size,
                float,
            })
    }
}

/// A storage named by a persistent id `('storage', class, key, location,
/// numel[, view])`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// The storage's key: its record `data/<key>` (zip) or its place in
    /// the storage list (legacy).
    pub key: Arc<str>,
    /// Its element type.
    pub element: ElementType,
    /// Its length in elements.
    pub numel: u64,
    /// Where a legacy storage view begins in the storage, in elements.
    pub view_offset: u64,
}

/// A tensor: a strided view into a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage holding its values.
    pub storage: StorageRef,
    /// Its element type (the storage's, or the dtype a v3 rebuild states).
    pub element: ElementType,
    /// Index of its first element in the storage, in elements of `element`.
    pub offset: u64,
    /// Its shape, outermost first.
    pub shape: Vec<u64>,
    /// Its strides in elements, one per dimension.
    pub strides: Vec<u64>,
}

/// The globals a pickle may name.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Global {
    /// `collections.OrderedDict` or `builtins.dict`.
    Dict,
    /// `builtins.set` / `builtins.frozenset`: read as an opaque value.
    Set,
    /// `torch._utils._rebuild_tensor`.
    RebuildTensor,
    /// `torch._utils._rebuild_tensor_v2`.
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor_v3`.
    RebuildTensorV3,
    /// `torch._utils._rebuild_parameter` (and `_with_state`).
    RebuildParameter,
    /// A storage class `torch.<Name>Storage`.
    Storage(ElementType),
    /// A dtype `torch.<name>`.
    DType(ElementType),
}

/// A value on the pickle's stack.
///
/// Containers are dropped without recursion ([`Drop`]), so that a pickle
/// nesting a million tuples cannot overflow the stack; for the same reason
/// `Value` has no recursive `Debug`.
#[derive(Clone)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An int that fits in 64 bits.
    Int(i64),
    /// A longer int, its two's complement bytes little-endian.
    BigInt(Rc<[u8]>),
    /// A float.
    Float(f64),
    /// A str (or a Python 2 str, decoded as Latin-1).
    Str(Rc<str>),
    /// A bytes object.
    Bytes(Rc<[u8]>),
    /// A tuple.
    Tuple(Rc<Vec<Value>>),
    /// A list, shared like Python's.
    List(Rc<RefCell<Vec<Value>>>),
    /// A dict (or OrderedDict) in insertion order, shared like Python's.
    Dict(Rc<RefCell<Dict>>),
    /// An allowed global.
    Global(Global),
    /// A storage from a persistent id.
    Storage(Rc<StorageRef>),
    /// A tensor.
    Tensor(Rc<TensorRef>),
    /// Something convmaps has no use for (a set).
    Opaque,
}

impl Drop for Value {
    /// Drops nested containers from a heap stack rather than recursively.
    fn drop(&mut self) {
        let mut pending = Vec::new();
        take_children(self, &mut pending);
        while let Some(mut value) = pending.pop() {
            take_children(&mut value, &mut pending);
        }
    }
}

/// Moves the items of a container that nothing else shares into `pending`.
fn take_children(value: &mut Value, pending: &mut Vec<Value>) {
    match value {
        Value::Tuple(items) => {
            if let Some(items) = Rc::get_mut(items) {
                pending.append(items);
            }
        }
        Value::List(items) => {
            if let Some(items) = Rc::get_mut(items) {
                pending.append(items.get_mut());
            }
        }
        Value::Dict(dict) => {
            if let Some(dict) = Rc::get_mut(dict) {
                let dict = dict.get_mut();
                dict.index.clear();
                for (key, value) in dict.pairs.drain(..) {
                    pending.push(key);
                    pending.push(value);
                }
            }
        }
        _ => {}
    }
}

impl Value {
    /// What the value is, in words ("a dict", "an int", ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "a bool",
            Value::Int(_) | Value::BigInt(_) => "an int",
            Value::Float(_) => "a float",
            Value::Str(_) => "a str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "a tuple",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dict",
            Value::Global(_) => "a class",
            Value::Storage(_) => "a storage",
            Value::Tensor(_) => "a tensor",
            Value::Opaque => "a set",
        }
    }

    /// `f` of the items of a tuple or list, which are not copied.
    fn with_items<T>(&self, f: impl FnOnce(&[Value]) -> T) -> Option<T> {
        match self {
            Value::Tuple(t) => Some(f(t)),
            Value::List(l) => Some(f(&l.borrow())),
            _ => None,
        }
    }

    /// A non-negative int.
    fn count(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    /// A str, or bytes read as ASCII (Python 2's keys).
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// A dict (or OrderedDict): its pairs in insertion order, and where each
/// text key (a str, or bytes read as ASCII) lies among them.
#[derive(Clone, Default)]
pub struct Dict {
    pairs: Vec<(Value, Value)>,
    index: HashMap<TextKey, usize>,
}

impl Dict {
    /// The pairs in insertion order.
    pub fn iter(&self) -> std::slice::Iter<'_, (Value, Value)> {
        self.pairs.iter()
    }

    /// How many pairs it holds.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether it holds no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The value of the text key `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let key = TextKey(Value::Str(Rc::from(key)));
        self.index.get(&key).map(|&at| &self.pairs[at].1)
    }

    /// Sets `key` to `value`: a text key already there keeps its place;
    /// another key is appended.
    fn insert(&mut self, key: Value, value: Value) {
        if key.text().is_none() {
            self.pairs.push((key, value));
            return;
        }
        let key = TextKey(key);
        match self.index.get(&key) {
            Some(&at) => self.pairs[at].1 = value,
            None => {
                self.index.insert(key.clone(), self.pairs.len());
                self.pairs.push((key.0, value));
            }
        }
    }
}

/// A value with text, hashed and compared by its text.
#[derive(Clone)]
struct TextKey(Value);

impl Hash for TextKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.text().hash(state);
    }
}

impl PartialEq for TextKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.text() == other.0.text()
    }
}

impl Eq for TextKey {}

/// A reader that counts the bytes it has handed out.
pub struct Counted<R> {
    inner: R,
    /// Bytes read so far.
    pub position: u64,
}

impl<R: Read> Counted<R> {
    /// Counts from zero.
    pub fn new(inner: R) -> Self {
        Counted { inner, position: 0 }
    }

    /// The reader underneath.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut bytes = [0u8; N];
        self.inner
            .read_exact(&mut bytes)
            .map_err(|e| format!("the pickle ends early at byte {} ({e})", self.position))?;
        self.position += N as u64;
        Ok(bytes)
    }

    fn bytes(&mut self, length: u64) -> Result<Vec<u8>, String> {
        if length > MAX_LENGTH {
            return Err(format!(
                "the pickle claims a {length}-byte string at byte {}",
                self.position
            ));
        }
        let mut bytes = Vec::new();
        (&mut self.inner)
            .take(length)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read the pickle at byte {} ({e})", self.position))?;
        if bytes.len() as u64 != length {
            return Err(format!(
                "the pickle ends early: a {length}-byte string at byte {} is cut off",
                self.position
            ));
        }
        self.position += length;
        Ok(bytes)
    }

    /// Bytes preceded by their count, a little-endian int of `width` bytes
    /// (1, 4 or 8; a 4-byte count is signed in some opcodes, and a negative
    /// one is refused as too long).
    fn counted(&mut self, width: usize) -> Result<Vec<u8>, String> {
        let length = match width {
            1 => self.array::<1>()?[0] as u64,
            4 => u32::from_le_bytes(self.array()?) as u64,
            _ => u64::from_le_bytes(self.array()?),
        };
        self.bytes(length)
    }

    fn line(&mut self) -> Result<String, String> {
        let mut line = Vec::new();
        loop {
            let [byte] = self.array::<1>()?;
            if byte == b'\n' {
                break;
            }
            if line.len() >= MAX_LINE {
                return Err(format!("a line longer than {MAX_LINE} bytes in the pickle"));
            }
            line.push(byte);
        }
        String::from_utf8(line).map_err(|_| "a GLOBAL name that is not UTF-8".to_string())
    }
}

/// What one pickle holds: its value and every storage it names, by key.
pub struct Loaded {
    /// The pickled object.
    pub value: Value,
    /// The storages its persistent ids name, in the order first named.
    pub storages: Vec<StorageRef>,
}

/// Reads one pickle from `reader` up to its STOP opcode.
pub fn load<R: Read>(reader: &mut Counted<R>) -> Result<Loaded, String> {
    let mut machine = Machine {
        reader,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        storages: Vec::new(),
        storage_keys: HashSet::new(),
        work: 0,
    };
    loop {
        let [op] = machine.reader.array::<1>()?;
        let at = machine.reader.position - 1;
        if op == b'.' {
            let value = machine.pop()?;
            return Ok(Loaded {
                value,
                storages: machine.storages,
            });
        }
        machine
            .step(op)
            .map_err(|e| format!("{e} (opcode 0x{op:02x} at byte {at} of the pickle)"))?;
    }
}

/// The pickle machine's state.
struct Machine<'r, R> {
    reader: &'r mut Counted<R>,
    stack: Vec<Value>,
    /// Stack heights at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    storages: Vec<StorageRef>,
    /// The keys of `storages`.
    storage_keys: HashSet<Arc<str>>,
    /// Work done so far (see [`WORK_PER_BYTE`]).
    work: u64,
}

impl<R: Read> Machine<'_, R> {
    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "the pickle pops an empty stack".to_string())
    }

    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "the pickle reads an empty stack".to_string())
    }

    /// The values pushed since the last MARK, which is dropped.
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| "the pickle has no MARK to pop to".to_string())?;
        if mark > self.stack.len() {
            return Err("the pickle pops below its MARK".to_string());
        }
        Ok(self.stack.split_off(mark))
    }

    /// Charges `units` of work; an error once the work exceeds what the
    /// bytes read so far allow.
    fn charge(&mut self, units: usize) -> Result<(), String> {
        self.work = self.work.saturating_add(units as u64);
        let position = self.reader.position;
        let allowed = WORK_PER_BYTE
            .saturating_mul(position)
            .saturating_add(WORK_BASE);
        if self.work > allowed {
            return Err(format!(
                "the pickle copies or hashes more than its {position} bytes can account \
                 for (a pickle built to exhaust memory)"
            ));
        }
        Ok(())
    }

    fn step(&mut self, op: u8) -> Result<(), String> {
        if let Some(value) = self.literal(op)? {
            self.stack.push(value);
            return Ok(());
        }
        if self.container(op)? || self.memo_op(op)? {
            return Ok(());
        }
        match op {
            // PROTO and FRAME change nothing on the stack.
            0x80 => drop(self.reader.array::<1>()?),
            0x95 => drop(self.reader.array::<8>()?),
            b'c' => {
                let module = self.reader.line()?;
                let name = self.reader.line()?;
                self.stack
                    .push(Value::Global(allowed_global(&module, &name)?));
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Value::Str(module), Value::Str(name)) = (&module, &name) else {
                    return Err("STACK_GLOBAL of something that is not two strs".into());
                };
                self.stack
                    .push(Value::Global(allowed_global(module, name)?));
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let value = self.call(&callable, &args)?;
                self.stack.push(value);
            }
            b'b' => {
                // BUILD sets an object's state (an OrderedDict's `_metadata`,
                // a parameter's attributes): convmaps needs none of it.
                self.pop()?;
                self.top()?;
            }
            b'Q' => {
                let id = self.pop()?;
                let storage = Rc::new(persistent_storage(&id)?);
                self.charge(storage.key.len())?;
                if self.storage_keys.insert(storage.key.clone()) {
                    self.storages.push(storage.as_ref().clone());
                }
                self.stack.push(Value::Storage(storage));
            }
            _ => return Err(format!("an opcode convmaps does not read: 0x{op:02x}")),
        }
        Ok(())
    }

    /// Opcodes that push a value read from the pickle itself.
    fn literal(&mut self, op: u8) -> Result<Option<Value>, String> {
        let r = &mut *self.reader;
        Ok(Some(match op {
            b'N' => Value::None,
            0x88 => Value::Bool(true),
            0x89 => Value::Bool(false),
            b'J' => Value::Int(i32::from_le_bytes(r.array()?) as i64),
            b'K' => Value::Int(r.array::<1>()?[0] as i64),
            b'M' => Value::Int(u16::from_le_bytes(r.array()?) as i64),
            0x8a => long(r.counted(1)?),
            0x8b => long(r.counted(4)?),
            b'G' => Value::Float(f64::from_be_bytes(r.array()?)),
            b'X' => text(r.counted(4)?)?,
            0x8c => text(r.counted(1)?)?,
            0x8d => text(r.counted(8)?)?,
            b'B' => Value::Bytes(r.counted(4)?.into()),
            b'C' => Value::Bytes(r.counted(1)?.into()),
            0x8e => Value::Bytes(r.counted(8)?.into()),
            b'T' => latin1(r.counted(4)?),
            b'U' => latin1(r.counted(1)?),
            b'}' => Value::Dict(Rc::default()),
            b']' => Value::List(Rc::default()),
            b')' => Value::Tuple(Rc::default()),
            0x8f => Value::Opaque,
            _ => return Ok(None),
        }))
    }

    /// Opcodes that build tuples, lists and dicts, or move the stack.
    fn container(&mut self, op: u8) -> Result<bool, String> {
        match op {
            b'(' => self.marks.push(self.stack.len()),
            b't' => {
                let items = self.pop_mark()?;
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err("a TUPLE of more values than the stack holds".into());
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Value::Tuple(Rc::new(items)));
            }
            b'a' => {
                let item = self.pop()?;
                self.extend(vec![item])?;
            }
            b'e' => {
                let items = self.pop_mark()?;
                self.extend(items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            0x90 => {
                self.pop_mark()?;
                self.top()?;
            }
            0x91 => {
                self.pop_mark()?;
                self.stack.push(Value::Opaque);
            }
            b'0' => drop(self.pop()?),
            b'1' => drop(self.pop_mark()?),
            b'2' => {
                let top = self.top()?.clone();
                self.stack.push(top);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn extend(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::List(list) => list.borrow_mut().extend(items),
            other => return Err(format!("APPEND to {}, not a list", other.kind())),
        }
        Ok(())
    }

    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("SETITEMS with a key and no value".into());
        }
        let hashed: usize = items.iter().step_by(2).map(key_cost).sum();
        self.charge(hashed)?;
        let Value::Dict(dict) = self.top()? else {
            return Err("SETITEM on something that is not a dict".into());
        };
        let mut dict = dict.borrow_mut();
        let mut items = items.into_iter();
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.insert(key, value);
        }
        Ok(())
    }

    /// REDUCE (or NEWOBJ) of an allowed global with `args`.
    fn call(&mut self, callable: &Value, args: &Value) -> Result<Value, String> {
        let Value::Global(global) = callable else {
            return Err(format!(
                "a call of {}, not of an allowed class",
                callable.kind()
            ));
        };
        let bad_args = || format!("a call with {} for its arguments", args.kind());
        match global {
            Global::Dict => {
                let first = args
                    .with_items(|a| a.first().cloned())
                    .ok_or_else(bad_args)?;
                let dict = match &first {
                    None => Dict::default(),
                    Some(Value::Dict(d)) => {
                        self.charge(d.borrow().len())?;
                        d.borrow().clone()
                    }
                    Some(items) => self.dict_of_pairs(items)?,
                };
                Ok(Value::Dict(Rc::new(RefCell::new(dict))))
            }
            Global::Set => Ok(Value::Opaque),
            Global::RebuildTensor | Global::RebuildTensorV2 => args
                .with_items(|a| rebuild_tensor(a, None))
                .ok_or_else(bad_args)?,
            Global::RebuildTensorV3 => args
                .with_items(|a| {
                    let Some(Value::Global(Global::DType(dtype))) = a.get(6) else {
                        return Err("_rebuild_tensor_v3 without a dtype".into());
                    };
                    rebuild_tensor(a, Some(*dtype))
                })
                .ok_or_else(bad_args)?,
            Global::RebuildParameter => match args.with_items(|a| a.first().cloned()) {
                Some(Some(tensor @ Value::Tensor(_))) => Ok(tensor),
                _ => Err("_rebuild_parameter of something that is not a tensor".into()),
            },
            Global::Storage(_) | Global::DType(_) => {
                Err("a call of a storage class or dtype, which convmaps does not read".into())
            }
        }
    }

    /// A dict of the (key, value) pairs of a list or tuple of 2-tuples.
    fn dict_of_pairs(&mut self, items: &Value) -> Result<Dict, String> {
        let bad = || "OrderedDict of something that is not a list of pairs".to_string();
        let pairs = items
            .with_items(|items| {
                let pairs = items.iter().map(|pair| {
                    pair.with_items(|kv| match kv {
                        [key, value] => Some((key.clone(), value.clone())),
                        _ => None,
                    })
                    .flatten()
                });
                pairs.collect::<Option<Vec<_>>>()
            })
            .flatten()
            .ok_or_else(bad)?;
        let hashed: usize = pairs.iter().map(|(key, _)| key_cost(key)).sum();
        self.charge(pairs.len() + hashed)?;
        let mut dict = Dict::default();
        for (key, value) in pairs {
            dict.insert(key, value);
        }
        Ok(dict)
    }

    /// The memo opcodes: PUT, GET and MEMOIZE.
    fn memo_op(&mut self, op: u8) -> Result<bool, String> {
        let r = &mut *self.reader;
        let (index, put) = match op {
            b'q' => (r.array::<1>()?[0] as u64, true),
            b'r' => (u32::from_le_bytes(r.array()?) as u64, true),
            0x94 => (self.memo.len() as u64, true),
            b'h' => (r.array::<1>()?[0] as u64, false),
            b'j' => (u32::from_le_bytes(r.array()?) as u64, false),
            _ => return Ok(false),
        };
        if put {
            let top = self.top()?.clone();
            if self.memo.len() as u64 > self.reader.position.min(MAX_LENGTH) {
                return Err("the pickle's memo is too large".into());
            }
            self.memo.insert(index, top);
        } else {
            let value = self
                .memo
                .get(&index)
                .cloned()
                .ok_or_else(|| format!("GET of memo entry {index}, which was never PUT"))?;
            self.stack.push(value);
        }
        Ok(true)
    }
}

/// The work of hashing `key` into a dict: one, plus its text's length.
fn key_cost(key: &Value) -> usize {
    1 + key.text().map_or(0, str::len)
}

/// An int from LONG1/LONG4 bytes (two's complement, little-endian).
fn long(bytes: Vec<u8>) -> Value {
    if bytes.is_empty() {
        return Value::Int(0);
    }
    if bytes.len() > 8 {
        return Value::BigInt(bytes.into());
    }
    let fill = if bytes[bytes.len() - 1] & 0x80 != 0 {
        0xff
    } else {
        0
    };
    let mut raw = [fill; 8];
    raw[..bytes.len()].copy_from_slice(&bytes);
    Value::Int(i64::from_le_bytes(raw))
}

fn text(bytes: Vec<u8>) -> Result<Value, String> {
    String::from_utf8(bytes)
        .map(|s| Value::Str(s.into()))
        .map_err(|_| "a str that is not UTF-8".to_string())
}

fn latin1(bytes: Vec<u8>) -> Value {
    Value::Str(bytes.into_iter().map(char::from).collect::<String>().into())
}

/// The global `module.name` if it is on the allow-list; an error naming it
/// otherwise.
fn allowed_global(module: &str, name: &str) -> Result<Global, String> {
    let global = match (module, name) {
        ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => Some(Global::Dict),
        ("builtins" | "__builtin__", "set" | "frozenset") => Some(Global::Set),
        ("torch._utils", "_rebuild_tensor") => Some(Global::RebuildTensor),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_tensor_v3") => Some(Global::RebuildTensorV3),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Some(Global::RebuildParameter)
        }
        ("torch", class) if class.ends_with("Storage") => {
            ElementType::of_storage(class).map(Global::Storage)
        }
        ("torch", dtype) => ElementType::of_dtype(dtype).map(Global::DType),
        _ => None,
    };
    global.ok_or_else(|| {
        format!(
            "the pickle names the global {module}.{name}, which convmaps refuses: it reads \
             only tensors, dicts and plain values and never runs a pickle's code \
             (save the model's state_dict() rather than the model)"
        )
    })
}

/// The storage a persistent id `('storage', class, key, location, numel)`
/// (legacy files add a view `(key, offset, numel)` or None) names.
fn persistent_storage(id: &Value) -> Result<StorageRef, String> {
    let bad = || "a persistent id that is not ('storage', class, key, location, numel)";
    let storage = id.with_items(|items| {
        if items.len() < 5 || items[0].text() != Some("storage") {
            return None;
        }
        let Value::Global(Global::Storage(element)) = items[1] else {
            return None;
        };
        let view_offset = match items.get(5) {
            Some(view) => match view.with_items(|v| v.get(1).and_then(Value::count)) {
                Some(offset) => offset?,
                None => 0,
            },
            None => 0,
        };
        Some(StorageRef {
            key: Arc::from(items[2].text()?),
            element,
            numel: items[4].count()?,
            view_offset,
        })
    });
    storage.flatten().ok_or_else(|| bad().into())
}

/// A tensor from `(storage, storage_offset, size, stride, ...)`, its
/// element type `dtype` when stated (v3), else the storage's.
fn rebuild_tensor(args: &[Value], dtype: Option<ElementType>) -> Result<Value, String> {
    let bad = |what: &str| format!("a tensor rebuilt with {what}");
    let [Value::Storage(storage), offset, size, stride, ..] = args else {
        return Err(bad(
            "arguments that are not (storage, offset, size, stride)",
        ));
    };
    let offset = offset
        .count()
        .ok_or_else(|| bad("a storage offset that is not an int"))?;
    let dims = |v: &Value| -> Result<Vec<u64>, String> {
        v.with_items(|items| {
            if items.len() > MAX_DIMS {
                return Err(bad(&format!("more than {MAX_DIMS} dimensions")));
            }
            items
                .iter()
                .map(Value::count)
                .collect::<Option<Vec<u64>>>()
                .ok_or_else(|| bad("a size or stride that is not a tuple of ints"))
        })
        .unwrap_or_else(|| Err(bad("a size or stride that is not a tuple of ints")))
    };
    let shape = dims(size)?;
    let strides = dims(stride)?;
    if shape.len() != strides.len() {
        return Err(bad("a size and stride of different lengths"));
    }
    let element = dtype.unwrap_or(storage.element);
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.as_ref().clone(),
        element,
        offset,
        shape,
        strides,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<Value, String> {
        load(&mut Counted::new(bytes)).map(|l| l.value)
    }

    #[test]
    fn ints_of_every_width() {
        let int = |bytes: &[u8]| match run(bytes) {
            Ok(Value::Int(i)) => i,
            _ => panic!("not an int"),
        };
        assert_eq!(int(b"K\xff."), 255);
        assert_eq!(int(b"M\xe9\x03."), 1001);
        assert_eq!(int(b"J\xfe\xff\xff\xff."), -2);
        assert_eq!(int(b"\x8a\x03\x00\x80\x00."), 32768);
        assert_eq!(int(b"\x8a\x02\x00\x80."), -32768);
        assert_eq!(int(b"\x8a\x01\xff."), -1);
        assert_eq!(int(b"\x8a\x00."), 0);
    }

    #[test]
    fn a_memoized_list_is_shared_with_later_appends() {
        // l = []; memo[0] = l; l.append(1); (l, memo[0])
        let Ok(Value::Tuple(pair)) = &run(b"]q\x00K\x01ah\x00\x86.") else {
            panic!("not a tuple");
        };
        for list in pair.iter() {
            let Value::List(items) = list else {
                panic!("not a list")
            };
            assert_eq!(items.borrow().len(), 1);
        }
    }

    #[test]
    fn setitem_replaces_an_existing_key() {
        let Ok(Value::Dict(dict)) = &run(b"}(X\x01\x00\x00\x00aK\x01X\x01\x00\x00\x00aK\x02u.")
        else {
            panic!("not a dict");
        };
        let dict = dict.borrow();
        assert_eq!(dict.len(), 1);
        assert!(matches!(dict.get("a"), Some(Value::Int(2))));
    }

    #[test]
    fn globals_outside_the_allow_list_are_refused_by_name() {
        for (module, name) in [("os", "system"), ("builtins", "getattr"), ("torch", "load")] {
            let pickle = format!("c{module}\n{name}\n.");
            let message = run(pickle.as_bytes()).err().unwrap_or_default();
            assert!(message.contains(&format!("{module}.{name}")), "{message}");
        }
        assert!(run(b"ccollections\nOrderedDict\n)R.").is_ok());
        assert!(run(b"ctorch\nFloatStorage\n.").is_ok());
    }

    #[test]
    fn stack_underflow_and_bad_memo_are_errors() {
        for bad in [
            &b"."[..],
            b"t.",
            b"h\x05.",
            b"K\x01a.",
            b"X\xff\xff\xff\xff",
            b"\x8d",
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }
}
