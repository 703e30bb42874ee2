//! Parsing the ops whose output shape depends on more than their inputs'
//! shapes: reductions and softmax along axes, the movements (Concat, Slice,
//! Split, Transpose, Expand), Resize and ConvTranspose.

use super::{Input, Loader, Parsed, positive, window_attributes};
use crate::model::onnx;
use crate::net::fold;
use crate::net::movement::concat_shape;
use crate::net::ops::{
    ConvTranspose, Coordinates, Movement, Op, Reduce, Resize, Rounding, ShapeText, broadcast,
};

type Parse = std::result::Result<Parsed, String>;

/// `node`'s first input, by name.
fn first(node: &onnx::Node) -> Input {
    Input::Named(node.inputs.first().cloned().unwrap_or_default())
}

impl Loader<'_> {
    /// ReduceMean, ReduceSum or ReduceMax over contiguous axes (a mean over
    /// H and W of `[1, C, H, W]` is a global average).
    pub(super) fn reduce(&mut self, node: &onnx::Node) -> Parse {
        let shape = self.first_shape(node)?;
        let kind = match node.op_type.as_str() {
            "ReduceMean" => Reduce::Mean,
            "ReduceSum" => Reduce::Sum,
            _ => Reduce::Max,
        };
        let int =
            |name: &str, default: i64| node.attribute(name).and_then(|a| a.i).unwrap_or(default);
        let keep = int("keepdims", 1) != 0;
        let listed = self.ints_of(node, (1, "axes"))?.unwrap_or_default();
        if listed.is_empty() && int("noop_with_empty_axes", 0) != 0 {
            return Ok(Parsed {
                op: Op::View,
                inputs: vec![first(node)],
                shape: Some(shape),
            });
        }
        let mut axes = match listed.is_empty() {
            true => (0..shape.len()).collect(),
            false => listed
                .iter()
                .map(|&a| fold::axis(a, shape.len()))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        };
        axes.sort_unstable();
        axes.dedup();
        let out: Vec<usize> = (0..shape.len())
            .filter_map(|d| match axes.contains(&d) {
                true => keep.then_some(1),
                false => Some(shape[d]),
            })
            .collect();
        if kind == Reduce::Mean && shape.len() == 4 && shape[0] == 1 && axes == [2, 3] {
            return Ok(Parsed {
                op: Op::GlobalAverage,
                inputs: vec![first(node)],
                shape: Some(out),
            });
        }
        let (lo, hi) = (axes[0], axes[axes.len() - 1]);
        if hi - lo + 1 != axes.len() {
            let moved = self.move_axes_last(node, &shape, &axes)?;
            return Ok(Parsed {
                op: Op::Reduce {
                    kind,
                    size: axes.iter().map(|&a| shape[a]).product(),
                    inner: 1,
                },
                inputs: vec![Input::Named(moved)],
                shape: Some(out),
            });
        }
        Ok(Parsed {
            op: Op::Reduce {
                kind,
                size: shape[lo..=hi].iter().product(),
                inner: shape[hi + 1..].iter().product(),
            },
            inputs: vec![first(node)],
            shape: Some(out),
        })
    }

    /// For a reduction over axes that are not next to each other: a
    /// Transpose node (named `<node>[moved]`) that moves `axes` of `shape`
    /// after the others, each group in its order, so that one reduction
    /// over the last values covers them; returns the value it writes. The
    /// kept axes keep their order, so the reduction's output needs no move.
    fn move_axes_last(
        &mut self,
        node: &onnx::Node,
        shape: &[usize],
        axes: &[usize],
    ) -> std::result::Result<String, String> {
        let perm: Vec<usize> = (0..shape.len())
            .filter(|d| !axes.contains(d))
            .chain(axes.iter().copied())
            .collect();
        let moved_shape = perm.iter().map(|&p| shape[p]).collect();
        let moved = format!("{}::moved", node.outputs[0]);
        let transpose = onnx::Node {
            op_type: "Transpose".into(),
            ..node.clone()
        };
        let parsed = Parsed {
            op: Op::Move(Movement::Transpose { perm }),
            inputs: vec![first(node)],
            shape: Some(moved_shape),
        };
        let name = format!("{}[moved]", node.label());
        self.push_named(&transpose, parsed, (name, moved.clone()))?;
        Ok(moved)
    }

    /// Softmax along an axis (before opset 13: the axes from `axis` on, as
    /// one).
    pub(super) fn softmax(&mut self, node: &onnx::Node) -> Parse {
        let shape = self.first_shape(node)?;
        let default = if self.opset < 13 { 1 } else { -1 };
        let along = node.attribute("axis").and_then(|a| a.i).unwrap_or(default);
        let a = fold::axis(along, shape.len())?;
        let (size, inner) = match self.opset < 13 {
            true => (shape[a..].iter().product(), 1),
            false => (shape[a], shape[a + 1..].iter().product()),
        };
        Ok(Parsed {
            op: Op::Softmax { size, inner },
            inputs: vec![first(node)],
            shape: None,
        })
    }

    /// Concat along an axis.
    pub(super) fn concat(&mut self, node: &onnx::Node) -> Parse {
        let names: Vec<&str> = node
            .inputs
            .iter()
            .filter(|i| !i.is_empty())
            .map(String::as_str)
            .collect();
        let shapes = names
            .iter()
            .map(|name| {
                self.shape_of(name)
                    .ok_or_else(|| format!("the shape of {name:?} is not known"))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let rank = shapes.first().map_or(0, Vec::len);
        let along = node
            .attribute("axis")
            .and_then(|a| a.i)
            .ok_or("it has no axis")?;
        let axis = fold::axis(along, rank)?;
        let views: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
        let out = concat_shape(&views, axis)?;
        Ok(Parsed {
            op: Op::Move(Movement::Concat { axis }),
            inputs: names.iter().map(|n| Input::Named(n.to_string())).collect(),
            shape: Some(out),
        })
    }

    /// Slice with starts, ends, axes and steps as inputs (or, before opset
    /// 10, attributes), negative values counting from the end.
    pub(super) fn slice(&mut self, node: &onnx::Node) -> Parse {
        let shape = self.first_shape(node)?;
        let starts = self
            .ints_of(node, (1, "starts"))?
            .ok_or("it has no starts")?;
        let ends = self.ints_of(node, (2, "ends"))?.ok_or("it has no ends")?;
        let axes = self.ints_of(node, (3, "axes"))?;
        let steps = self.ints_of(node, (4, ""))?;
        let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if [ends.len(), axes.len(), steps.len()]
            .iter()
            .any(|&n| n != starts.len())
        {
            return Err("its starts, ends, axes and steps differ in length".into());
        }
        let mut firsts = vec![0i64; shape.len()];
        let mut strides = vec![1i64; shape.len()];
        let mut out = shape.clone();
        for i in 0..starts.len() {
            let axis = fold::axis(axes[i], shape.len())?;
            let (first, count) = slice_axis(shape[axis] as i64, (starts[i], ends[i], steps[i]))?;
            firsts[axis] = first;
            strides[axis] = steps[i];
            out[axis] = count;
        }
        Ok(Parsed {
            op: Op::Move(Movement::Slice {
                starts: firsts,
                steps: strides,
            }),
            inputs: vec![first(node)],
            shape: Some(out),
        })
    }

    /// Split into its outputs along an axis (sizes as attribute or input,
    /// or equal parts): one Slice per output, each named after the node.
    pub(super) fn split(&mut self, node: &onnx::Node) -> std::result::Result<(), String> {
        let shape = self.first_shape(node)?;
        let along = node.attribute("axis").and_then(|a| a.i).unwrap_or(0);
        let axis = fold::axis(along, shape.len())?;
        let outputs: Vec<&String> = node.outputs.iter().collect();
        let sizes = match self.ints_of(node, (1, "split"))? {
            Some(sizes) if !sizes.is_empty() => sizes,
            _ => {
                let parts = node
                    .attribute("num_outputs")
                    .and_then(|a| a.i)
                    .unwrap_or(outputs.len() as i64)
                    .max(1);
                let each = (shape[axis] as i64 + parts - 1) / parts;
                (0..parts)
                    .map(|p| each.min(shape[axis] as i64 - p * each))
                    .collect()
            }
        };
        if sizes.len() != outputs.len() || sizes.iter().sum::<i64>() != shape[axis] as i64 {
            return Err(format!(
                "its sizes {sizes:?} do not split axis {axis} of {} into {} outputs",
                ShapeText(&shape),
                outputs.len()
            ));
        }
        let mut offset = 0;
        for (index, (output, &size)) in outputs.into_iter().zip(&sizes).enumerate() {
            let mut starts = vec![0; shape.len()];
            starts[axis] = offset;
            let mut out = shape.clone();
            out[axis] = size as usize;
            offset += size;
            if output.is_empty() {
                continue;
            }
            let parsed = Parsed {
                op: Op::Move(Movement::Slice {
                    starts,
                    steps: vec![1; shape.len()],
                }),
                inputs: vec![first(node)],
                shape: Some(out),
            };
            let name = format!("{}[{index}]", node.label());
            self.push_named(node, parsed, (name, output.clone()))?;
        }
        Ok(())
    }

    /// Transpose by `perm` (the axes reversed by default).
    pub(super) fn transpose(&mut self, node: &onnx::Node) -> Parse {
        let shape = self.first_shape(node)?;
        let perm: Vec<usize> = match node.attribute("perm") {
            Some(a) => a
                .ints
                .iter()
                .map(|&p| fold::axis(p, shape.len()))
                .collect::<std::result::Result<_, _>>()?,
            None => (0..shape.len()).rev().collect(),
        };
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        if sorted != (0..shape.len()).collect::<Vec<_>>() {
            return Err(format!(
                "its perm {perm:?} is not a permutation of {} axes",
                shape.len()
            ));
        }
        let out = perm.iter().map(|&p| shape[p]).collect();
        Ok(Parsed {
            op: Op::Move(Movement::Transpose { perm }),
            inputs: vec![first(node)],
            shape: Some(out),
        })
    }

    /// Expand to a shape, broadcast both ways as ONNX says.
    pub(super) fn expand(&mut self, node: &onnx::Node) -> Parse {
        let shape = self.first_shape(node)?;
        let target = self
            .ints_of(node, (1, ""))?
            .ok_or("it has no shape input")?;
        let target: Vec<usize> = target.iter().map(|&d| d.max(0) as usize).collect();
        let out = broadcast(&shape, &target)?;
        Ok(Parsed {
            op: Op::Move(Movement::Expand),
            inputs: vec![first(node)],
            shape: Some(out),
        })
    }

    /// Resize (or the older Upsample) of H and W, nearest or linear, by
    /// scales or to sizes.
    pub(super) fn resize(&mut self, node: &onnx::Node) -> Parse {
        let shape = self.first_shape(node)?;
        let text = |name: &str, default: &str| {
            node.attribute(name)
                .and_then(|a| a.s.clone())
                .unwrap_or_else(|| default.to_string())
        };
        let upsample = node.op_type == "Upsample";
        let linear = match text("mode", "nearest").as_str() {
            "nearest" => false,
            "linear" | "bilinear" => true,
            other => return Err(format!("its mode {other:?} is not nearest or linear")),
        };
        if node.attribute("antialias").and_then(|a| a.i).unwrap_or(0) != 0 {
            return Err("it antialiases; convmaps resizes without".into());
        }
        let coordinates = match upsample {
            true => Coordinates::Asymmetric,
            false => coordinates(&text("coordinate_transformation_mode", "half_pixel"))?,
        };
        let rounding = match upsample {
            true => Rounding::Floor,
            false => rounding(&text("nearest_mode", "round_prefer_floor"))?,
        };
        let &[1, _, _, _] = shape.as_slice() else {
            return Err(format!(
                "it resizes {}; convmaps resizes [1, C, H, W]",
                ShapeText(&shape)
            ));
        };
        let (scales, out) = self.resize_target(node, &shape, upsample)?;
        if scales[..2] != [1.0, 1.0] {
            return Err(format!(
                "its scales {scales:?} resize the batch or the channels"
            ));
        }
        Ok(Parsed {
            op: Op::Resize(Resize {
                linear,
                coordinates,
                rounding,
                scales: [scales[2], scales[3]],
            }),
            inputs: vec![first(node)],
            shape: Some(out),
        })
    }

    /// A resize's four scales and its output shape: from its sizes input,
    /// else its scales (input, or Upsample's attribute).
    fn resize_target(
        &mut self,
        node: &onnx::Node,
        shape: &[usize],
        upsample: bool,
    ) -> std::result::Result<(Vec<f32>, Vec<usize>), String> {
        let sizes_at = if self.opset >= 11 && !upsample {
            Some(3)
        } else {
            None
        };
        if let Some(sizes) = sizes_at
            .map(|at| self.ints_of(node, (at, "")))
            .transpose()?
            .flatten()
        {
            if sizes.len() != 4 {
                return Err(format!("its sizes {sizes:?} are not 4"));
            }
            let out: Vec<usize> = sizes.iter().map(|&s| s.max(1) as usize).collect();
            let scales = out
                .iter()
                .zip(shape)
                .map(|(&o, &i)| o as f32 / i as f32)
                .collect();
            return Ok((scales, out));
        }
        let scales_at = match (upsample, self.opset) {
            (_, opset) if opset < 9 => None,
            (true, _) | (false, 10) => Some(1),
            (false, _) => Some(2),
        };
        let scales = match scales_at.and_then(|at| node.input(at).map(str::to_string)) {
            Some(name) => self
                .known(&name)?
                .ok_or_else(|| format!("its scales {name:?} are not known at load"))?
                .as_f32(),
            None => node
                .attribute("scales")
                .map(|a| a.floats.clone())
                .unwrap_or_default(),
        };
        if scales.len() != 4 || scales.iter().any(|&s| s <= 0.0) {
            return Err(format!("its scales {scales:?} are not 4 positive numbers"));
        }
        let out = shape
            .iter()
            .zip(&scales)
            .map(|(&i, &s)| (i as f64 * s as f64).floor() as usize)
            .collect();
        Ok((scales, out))
    }

    /// ConvTranspose with explicit pads (no `output_shape`).
    pub(super) fn conv_transpose(&mut self, node: &onnx::Node) -> Parse {
        if node.attribute("output_shape").is_some() {
            return Err("it states an output_shape; convmaps takes pads and output_padding".into());
        }
        let weight = node.input(1).ok_or("it has no weight")?.to_string();
        let shape = self.shape_of(&weight).unwrap_or_default();
        let &[_, _, fh, fw] = shape.as_slice() else {
            return Err(format!(
                "its weight {weight:?} has shape {}; convmaps runs 2-D",
                ShapeText(&shape)
            ));
        };
        let kernel = [fh as u32, fw as u32];
        let auto_pad = node.attribute("auto_pad").and_then(|a| a.s.clone());
        if !matches!(
            auto_pad.as_deref(),
            None | Some("NOTSET") | Some("") | Some("VALID")
        ) {
            return Err("its auto_pad SAME_* is not run; convmaps takes explicit pads".into());
        }
        let window = window_attributes(node, kernel, &self.first_shape(node)?)?;
        let output_padding = match node.attribute("output_padding").map(|a| a.ints.as_slice()) {
            None | Some([]) => [0, 0],
            Some(&[h, w]) => [h.max(0) as u32, w.max(0) as u32],
            Some(other) => return Err(format!("output_padding {other:?} is not 2-D")),
        };
        let group = positive(
            node.attribute("group").and_then(|a| a.i).unwrap_or(1),
            "group",
        )?;
        let mut inputs = vec![first(node), Input::Named(weight)];
        if let Some(bias) = node.input(2) {
            inputs.push(Input::Named(bias.to_string()));
        }
        Ok(Parsed {
            op: Op::ConvTranspose(ConvTranspose {
                kernel,
                strides: window.strides,
                pads: window.pads,
                dilations: window.dilations,
                group,
                output_padding,
                bias: inputs.len() == 3,
            }),
            inputs,
            shape: None,
        })
    }
}

/// ONNX's slice of an axis of `size` values from `start` to `end` by
/// `step`: the first index and how many values.
fn slice_axis(
    size: i64,
    (start, end, step): (i64, i64, i64),
) -> std::result::Result<(i64, usize), String> {
    if step == 0 {
        return Err("a step of 0".into());
    }
    let resolve = |v: i64| if v < 0 { v.saturating_add(size) } else { v };
    let (first, count) = if step > 0 {
        let first = resolve(start).clamp(0, size);
        let last = resolve(end).clamp(0, size);
        (first, (last - first + step - 1).div_euclid(step))
    } else {
        let first = resolve(start).clamp(0, size - 1);
        let last = resolve(end).clamp(-1, size - 1);
        (first, (first - last + (-step) - 1).div_euclid(-step))
    };
    Ok((first, count.max(0) as usize))
}

fn coordinates(mode: &str) -> std::result::Result<Coordinates, String> {
    Ok(match mode {
        "half_pixel" => Coordinates::HalfPixel,
        "pytorch_half_pixel" => Coordinates::PytorchHalfPixel,
        "align_corners" => Coordinates::AlignCorners,
        "asymmetric" => Coordinates::Asymmetric,
        "tf_half_pixel_for_nn" => Coordinates::TfHalfPixelForNn,
        other => {
            return Err(format!(
                "its coordinate_transformation_mode {other:?} is not run"
            ));
        }
    })
}

fn rounding(mode: &str) -> std::result::Result<Rounding, String> {
    Ok(match mode {
        "round_prefer_floor" => Rounding::RoundPreferFloor,
        "round_prefer_ceil" => Rounding::RoundPreferCeil,
        "floor" => Rounding::Floor,
        "ceil" => Rounding::Ceil,
        other => return Err(format!("its nearest_mode {other:?} is not run")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_resolve_as_onnx_says() {
        assert_eq!(slice_axis(10, (2, 8, 1)), Ok((2, 6)));
        assert_eq!(slice_axis(10, (0, i64::MAX, 2)), Ok((0, 5)));
        assert_eq!(slice_axis(10, (-3, i64::MAX, 1)), Ok((7, 3)));
        assert_eq!(slice_axis(10, (-1, i64::MIN, -1)), Ok((9, 10)));
        assert_eq!(slice_axis(10, (8, 2, 1)), Ok((8, 0)));
        assert!(slice_axis(10, (0, 1, 0)).is_err());
    }
}
