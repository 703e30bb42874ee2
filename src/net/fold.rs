//! Constant and shape subgraphs folded at load, for the photo's size:
//! what exporters write to compute a Reshape's target or a ReduceMean's
//! axes (Shape, Gather, Unsqueeze, Concat, Cast, …) is evaluated here once,
//! so that only ops of the registry are left to run.

use super::ops::{ShapeText, broadcast};
use crate::model::onnx::Node;

/// A value known at load: integers (shapes, axes, indices; exact in f64
/// up to 2^53) or floats.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Const {
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its values, row-major.
    pub values: Vec<f64>,
    /// Whether it holds integers (or booleans).
    pub int: bool,
}

impl Const {
    /// Integers of `shape`.
    pub fn ints(shape: Vec<usize>, values: Vec<i64>) -> Self {
        Const {
            shape,
            values: values.into_iter().map(|v| v as f64).collect(),
            int: true,
        }
    }

    /// Floats of `shape`.
    pub fn floats(shape: Vec<usize>, values: &[f32]) -> Self {
        Const {
            shape,
            values: values.iter().map(|&v| v as f64).collect(),
            int: false,
        }
    }

    /// The values as integers.
    pub fn as_ints(&self) -> Vec<i64> {
        self.values.iter().map(|&v| v as i64).collect()
    }

    /// The values as f32.
    pub fn as_f32(&self) -> Vec<f32> {
        self.values.iter().map(|&v| v as f32).collect()
    }
}

/// The ops folded when what they read is known at load.
pub(super) const FOLDABLE: [&str; 17] = [
    "Constant",
    "Identity",
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Cast",
    "Reshape",
    "Flatten",
    "Slice",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Range",
    "Expand",
];

/// What `node` computes from `inputs` (each known, or `None`) and
/// `shapes` (each input's shape, where known): `Ok(None)` when it cannot
/// be folded (an input is not known), an error when its inputs do not fit.
pub(super) fn evaluate(
    node: &Node,
    inputs: &[Option<Const>],
    shapes: &[Option<Vec<usize>>],
) -> Result<Option<Const>, String> {
    if node.op_type == "Shape" {
        return Ok(shapes
            .first()
            .cloned()
            .flatten()
            .map(|s| shape_of(node, &s)));
    }
    if node.op_type == "Constant" {
        return constant_attribute(node).map(Some);
    }
    let known: Option<Vec<&Const>> = inputs.iter().map(Option::as_ref).collect();
    let Some(known) = known.filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let int_attr =
        |name: &str, default: i64| node.attribute(name).and_then(|a| a.i).unwrap_or(default);
    let x = known[0];
    Ok(Some(match node.op_type.as_str() {
        "Identity" => x.clone(),
        "Gather" => gather(x, known.get(1).copied(), int_attr("axis", 0))?,
        "Unsqueeze" | "Squeeze" => {
            let axes = match known.get(1) {
                Some(axes) => axes.as_ints(),
                None => node
                    .attribute("axes")
                    .map(|a| a.ints.clone())
                    .unwrap_or_default(),
            };
            let shape = squeezed(&x.shape, &axes, node.op_type == "Unsqueeze")?;
            Const { shape, ..x.clone() }
        }
        "Concat" => concat(&known, int_attr("axis", 0))?,
        "Cast" => cast(x, int_attr("to", 1)),
        "Reshape" => {
            let target = known.get(1).ok_or("Reshape has no shape input")?.as_ints();
            let shape = reshaped(&x.shape, &target, int_attr("allowzero", 0) != 0)?;
            Const { shape, ..x.clone() }
        }
        "Flatten" => {
            let shape = flattened(&x.shape, int_attr("axis", 1))?;
            Const { shape, ..x.clone() }
        }
        "Slice" => match slice(&known) {
            Some(value) => value,
            // Not a slice of a shape vector: it runs as a node.
            None => return Ok(None),
        },
        "Add" | "Sub" | "Mul" | "Div" => arithmetic(&node.op_type, x, known.get(1).copied())?,
        "Range" => range(&known)?,
        "Expand" => {
            let target = known.get(1).ok_or("Expand has no shape input")?.as_ints();
            let target: Vec<usize> = target.iter().map(|&d| d.max(0) as usize).collect();
            let shape = broadcast(&x.shape, &target)?;
            let count: usize = shape.iter().product();
            let values = (0..count)
                .map(|i| x.values[broadcast_source(i, &shape, &x.shape)])
                .collect();
            Const {
                shape,
                values,
                int: x.int,
            }
        }
        _ => return Ok(None),
    }))
}

/// Shape's output: the input's shape, from `start` to `end` (opset 15).
fn shape_of(node: &Node, shape: &[usize]) -> Const {
    let rank = shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let start = clamp(node.attribute("start").and_then(|a| a.i).unwrap_or(0));
    let end = clamp(node.attribute("end").and_then(|a| a.i).unwrap_or(rank));
    let dims: Vec<i64> = shape[start..end.max(start)]
        .iter()
        .map(|&d| d as i64)
        .collect();
    Const::ints(vec![dims.len()], dims)
}

/// A Constant's value given as `value_float(s)` or `value_int(s)` (a
/// `value` tensor is read from the file like an initializer).
fn constant_attribute(node: &Node) -> Result<Const, String> {
    for attribute in &node.attributes {
        match attribute.name.as_str() {
            "value_float" => return Ok(Const::floats(vec![], &[attribute.f.unwrap_or(0.0)])),
            "value_floats" => {
                return Ok(Const::floats(
                    vec![attribute.floats.len()],
                    &attribute.floats,
                ));
            }
            "value_int" => return Ok(Const::ints(vec![], vec![attribute.i.unwrap_or(0)])),
            "value_ints" => {
                return Ok(Const::ints(
                    vec![attribute.ints.len()],
                    attribute.ints.clone(),
                ));
            }
            _ => {}
        }
    }
    Err("a Constant without a value convmaps reads (value, value_float(s), value_int(s))".into())
}

/// `axis` (negative from the end) checked against `rank`.
pub(super) fn axis(axis: i64, rank: usize) -> Result<usize, String> {
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(resolved)
        .ok()
        .filter(|&a| a < rank)
        .ok_or_else(|| format!("axis {axis} is outside a tensor of rank {rank}"))
}

/// Gather along `axis` of `x` at `indices`.
fn gather(x: &Const, indices: Option<&Const>, along: i64) -> Result<Const, String> {
    let indices = indices.ok_or("Gather has no indices")?;
    let a = axis(along, x.shape.len())?;
    let size = x.shape[a];
    let outer: usize = x.shape[..a].iter().product();
    let inner: usize = x.shape[a + 1..].iter().product();
    let mut values = Vec::new();
    for o in 0..outer {
        for &i in &indices.as_ints() {
            let i = if i < 0 { i + size as i64 } else { i };
            let i = usize::try_from(i)
                .ok()
                .filter(|&i| i < size)
                .ok_or_else(|| format!("index {i} is outside an axis of {size}"))?;
            let start = (o * size + i) * inner;
            values.extend_from_slice(&x.values[start..start + inner]);
        }
    }
    let mut shape = x.shape[..a].to_vec();
    shape.extend(&indices.shape);
    shape.extend(&x.shape[a + 1..]);
    Ok(Const {
        shape,
        values,
        int: x.int,
    })
}

/// The shape after Unsqueeze (`insert`) or Squeeze of `axes`.
pub(super) fn squeezed(shape: &[usize], axes: &[i64], insert: bool) -> Result<Vec<usize>, String> {
    if insert {
        let rank = shape.len() + axes.len();
        let mut at: Vec<usize> = axes
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<Result<_, _>>()?;
        at.sort_unstable();
        let mut out = shape.to_vec();
        for a in at {
            out.insert(a, 1);
        }
        return Ok(out);
    }
    if axes.is_empty() {
        return Ok(shape.iter().copied().filter(|&d| d != 1).collect());
    }
    let at: Vec<usize> = axes
        .iter()
        .map(|&a| axis(a, shape.len()))
        .collect::<Result<_, _>>()?;
    if let Some(&a) = at.iter().find(|&&a| shape[a] != 1) {
        return Err(format!(
            "cannot squeeze axis {a} of {}: its size is not 1",
            ShapeText(shape)
        ));
    }
    Ok(shape
        .iter()
        .enumerate()
        .filter(|(i, _)| !at.contains(i))
        .map(|(_, &d)| d)
        .collect())
}

/// Reshape's output shape: 0 copies the input's size (unless
/// `allowzero`), −1 takes what is left.
pub(super) fn reshaped(
    shape: &[usize],
    target: &[i64],
    allowzero: bool,
) -> Result<Vec<usize>, String> {
    let count: usize = shape.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*shape.get(i).ok_or("a 0 past the input's rank")?),
            t if t >= 0 => out.push(t as usize),
            t => return Err(format!("Reshape's target has {t}")),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !count.is_multiple_of(known) {
            return Err(format!("cannot reshape {} to {target:?}", ShapeText(shape)));
        }
        out[i] = count / known;
    }
    if out.iter().product::<usize>() != count {
        return Err(format!("cannot reshape {} to {target:?}", ShapeText(shape)));
    }
    Ok(out)
}

/// Flatten's output shape: `[prod(before axis), prod(from axis)]`.
pub(super) fn flattened(shape: &[usize], along: i64) -> Result<Vec<usize>, String> {
    let rank = shape.len();
    let a = if along == rank as i64 {
        rank
    } else {
        axis(along, rank)?
    };
    Ok(vec![
        shape[..a].iter().product(),
        shape[a..].iter().product(),
    ])
}

/// Concat of `parts` along `axis`.
fn concat(parts: &[&Const], along: i64) -> Result<Const, String> {
    let first = parts[0];
    let a = axis(along, first.shape.len().max(1))?;
    let outer: usize = first.shape[..a.min(first.shape.len())].iter().product();
    let mut shape = first.shape.clone();
    if shape.is_empty() {
        shape.push(1);
    }
    shape[a] = parts
        .iter()
        .map(|p| p.shape.get(a).copied().unwrap_or(1))
        .sum();
    let mut values = Vec::new();
    for o in 0..outer {
        for part in parts {
            let inner = part.values.len() / outer.max(1);
            values.extend_from_slice(&part.values[o * inner..(o + 1) * inner]);
        }
    }
    Ok(Const {
        shape,
        values,
        int: first.int,
    })
}

/// Cast to ONNX type `to`: integer types truncate, others stay floats.
fn cast(x: &Const, to: i64) -> Const {
    let int = matches!(to, 2..=7 | 9 | 12 | 13);
    let values = match int {
        true => x.values.iter().map(|v| v.trunc()).collect(),
        false => x.values.clone(),
    };
    Const {
        shape: x.shape.clone(),
        values,
        int,
    }
}

/// Slice of a 1-D constant by a step of 1 (the shape vectors exporters
/// slice); `None` for any other slice, which runs as a node.
fn slice(known: &[&Const]) -> Option<Const> {
    let [x, starts, ends, rest @ ..] = known else {
        return None;
    };
    let one = |c: &Const| -> Option<i64> { c.as_ints().first().copied() };
    let along_first = rest.first().is_none_or(|axes| axes.as_ints() == [0]);
    let step = match rest.get(1) {
        Some(steps) => one(steps)?,
        None => 1,
    };
    if x.shape.len() != 1 || !along_first || step != 1 {
        return None;
    }
    let size = x.shape[0] as i64;
    let clamp = |v: i64| (if v < 0 { v + size } else { v }).clamp(0, size) as usize;
    let (start, end) = (clamp(one(starts)?), clamp(one(ends)?));
    let values = x.values[start..end.max(start)].to_vec();
    Some(Const {
        shape: vec![values.len()],
        values,
        int: x.int,
    })
}

/// ConstantOfShape: `fill` (its `value`, 0 by default) repeated over the
/// shape `shape` holds, at most `max_values` values.
pub(super) fn constant_of_shape(
    shape: &Const,
    fill: Option<&Const>,
    max_values: usize,
) -> Result<Const, String> {
    let dims: Vec<usize> = shape.as_ints().iter().map(|&d| d.max(0) as usize).collect();
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= max_values)
        .ok_or_else(|| format!("ConstantOfShape of {dims:?} is more than {max_values} values"))?;
    let (value, int) = fill.map_or((0.0, false), |f| {
        (f.values.first().copied().unwrap_or(0.0), f.int)
    });
    Ok(Const {
        shape: dims,
        values: vec![value; count],
        int,
    })
}

/// Range(start, limit, delta): start, start + delta, … short of limit.
fn range(known: &[&Const]) -> Result<Const, String> {
    let first = |c: &Const| c.values.first().copied().ok_or("Range of an empty tensor");
    let [start, limit, delta] = known else {
        return Err("Range needs start, limit and delta".into());
    };
    let (start, limit, delta) = (first(start)?, first(limit)?, first(delta)?);
    if delta == 0.0 {
        return Err("Range with a delta of 0".into());
    }
    let count = ((limit - start) / delta).ceil().max(0.0) as usize;
    if count > 1 << 24 {
        return Err(format!("Range of {count} values"));
    }
    let values: Vec<f64> = (0..count).map(|i| start + i as f64 * delta).collect();
    Ok(Const {
        shape: vec![values.len()],
        values,
        int: known[0].int,
    })
}

/// Add, Sub, Mul or Div of two constants, broadcast; integer division
/// truncates as ONNX's does.
fn arithmetic(op: &str, a: &Const, b: Option<&Const>) -> Result<Const, String> {
    let b = b.ok_or_else(|| format!("{op} has one input"))?;
    let shape = broadcast(&a.shape, &b.shape)?;
    let count: usize = shape.iter().product();
    let pick = |c: &Const, i: usize| c.values[broadcast_source(i, &shape, &c.shape)];
    let int = a.int && b.int;
    let values = (0..count)
        .map(|i| {
            let (x, y) = (pick(a, i), pick(b, i));
            match op {
                "Add" => x + y,
                "Sub" => x - y,
                "Mul" => x * y,
                _ if int => (x / y).trunc(),
                _ => x / y,
            }
        })
        .collect();
    Ok(Const { shape, values, int })
}

/// The index into a tensor of `from` that element `index` of a tensor of
/// `to` reads, `from` broadcast to `to`.
pub(crate) fn broadcast_source(index: usize, to: &[usize], from: &[usize]) -> usize {
    let offset = to.len() - from.len();
    let (mut rest, mut source, mut stride) = (index, 0, 1);
    for axis in (0..to.len()).rev() {
        let coordinate = rest % to[axis];
        rest /= to[axis];
        if axis >= offset {
            let size = from[axis - offset];
            if size != 1 {
                source += coordinate * stride;
            }
            stride *= size;
        }
    }
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_count_as_onnx_says() {
        let int = |v: i64| Const::ints(vec![], vec![v]);
        let r = range(&[&int(0), &int(5), &int(2)]).unwrap();
        assert_eq!(r.as_ints(), [0, 2, 4]);
        let r = range(&[&int(5), &int(0), &int(-2)]).unwrap();
        assert_eq!(r.as_ints(), [5, 3, 1]);
        assert!(range(&[&int(0), &int(5), &int(0)]).is_err());
    }

    #[test]
    fn reshape_targets_with_zero_and_minus_one_resolve() {
        assert_eq!(reshaped(&[1, 32, 1, 1], &[1, -1], false), Ok(vec![1, 32]));
        assert_eq!(reshaped(&[1, 32, 1, 1], &[0, -1], false), Ok(vec![1, 32]));
        assert!(reshaped(&[1, 32], &[3, -1], false).is_err());
        assert!(reshaped(&[1, 32], &[-1, -1], false).is_err());
    }

    #[test]
    fn squeeze_and_unsqueeze_move_ones() {
        assert_eq!(squeezed(&[1, 8, 1, 1], &[2, 3], false), Ok(vec![1, 8]));
        assert_eq!(squeezed(&[1, 8], &[-1, -2], true), Ok(vec![1, 8, 1, 1]));
        assert!(squeezed(&[1, 8], &[1], false).is_err());
    }

    #[test]
    fn broadcast_source_repeats_the_smaller_tensor() {
        // [2, 3] from [3]: row 1, column 2 reads element 2.
        assert_eq!(broadcast_source(5, &[2, 3], &[3]), 2);
        // [2, 3] from [2, 1]: row 1 reads element 1.
        assert_eq!(broadcast_source(4, &[2, 3], &[2, 1]), 1);
        assert_eq!(broadcast_source(4, &[2, 3], &[]), 0);
    }

    #[test]
    fn a_shape_gathered_and_concatenated_builds_a_reshape_target() {
        let shape = Const::ints(vec![4], vec![1, 32, 1, 1]);
        let index = Const::ints(vec![], vec![0]);
        let batch = gather(&shape, Some(&index), 0).unwrap();
        assert_eq!(batch.shape, Vec::<usize>::new());
        let batch = Const {
            shape: vec![1],
            ..batch
        };
        let minus_one = Const::ints(vec![1], vec![-1]);
        let target = concat(&[&batch, &minus_one], 0).unwrap();
        assert_eq!(target.as_ints(), [1, -1]);
    }
}
