//! What a classifier's output says: its top classes with their labels and
//! probabilities, and where it looked (the class activation map, CAM).

use super::ops::Op;
use super::{Array, Network, ValueId};

/// ImageNet-1k's class names, one per line in class order.
const IMAGENET_CLASSES: &str = include_str!("../../assets/imagenet_classes.txt");

/// One of the top classes.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TopClass {
    /// The class index.
    pub index: usize,
    /// Its name: ImageNet's for a 1000-class output, else `class N`.
    pub label: String,
    /// Its probability: the softmax of the output (the output itself where
    /// the model ends in a Softmax).
    pub probability: f32,
}

/// Whether `value` is a vector of class scores: `[1, N]` or `[N]`, N ≥ 2.
pub fn is_scores(shape: &[usize]) -> bool {
    matches!(shape, [1, n] | [n] if *n >= 2)
}

/// The `count` most likely classes of `scores` (a classifier's output),
/// most likely first; ties keep the lower index first. `softmaxed` says the
/// model already turned its scores into probabilities.
pub fn top_classes(scores: &[f32], count: usize, softmaxed: bool) -> Vec<TopClass> {
    let probabilities = if softmaxed {
        scores.to_vec()
    } else {
        super::cpu::softmax_row(scores)
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(count)
        .map(|index| TopClass {
            index,
            label: label(index, scores.len()),
            probability: probabilities[index],
        })
        .collect()
}

/// The name of class `index` of `classes`.
fn label(index: usize, classes: usize) -> String {
    match classes {
        1000 => IMAGENET_CLASSES
            .lines()
            .nth(index)
            .unwrap_or("?")
            .to_string(),
        _ => format!("class {index}"),
    }
}

/// Where a classifier's logits come from, when CAM applies: maps A
/// `[1, C, h, w]` averaged over h and w, then one linear layer of weight
/// W (`[N, C]`, or `[C, N]`) gives the logits.
#[derive(Clone, Debug, PartialEq)]
pub struct CamSource {
    /// The pooled maps A.
    pub maps: ValueId,
    /// The linear layer's weight.
    pub weight: ValueId,
    /// Whether the weight is stored `[N, C]` (Gemm's transB, a Linear's).
    pub transposed: bool,
    /// The logits.
    pub logits: ValueId,
}

/// The CAM source of `output`, when the graph computes it as a global
/// average pool, then views (Flatten, Reshape), then a Gemm (or MatMul and
/// Add) with a weight of the file.
pub fn cam_source(net: &Network, output: ValueId) -> Option<CamSource> {
    let mut logits = through_views(net, output);
    let mut writer = net.writer(logits)?;
    if matches!(writer.op, Op::Binary(super::ops::Binary::Add)) {
        let first = writer.inputs[0];
        logits = first;
        writer = net.writer(first)?;
    }
    let Op::Gemm(gemm) = writer.op else {
        return None;
    };
    let weight = *writer.inputs.get(1)?;
    if gemm.trans_a || !net.constants.contains_key(&weight) {
        return None;
    }
    let pooled = through_views(net, writer.inputs[0]);
    let pool = net.writer(pooled)?;
    if pool.op != Op::GlobalAverage {
        return None;
    }
    let maps = pool.inputs[0];
    let channels = *net.values[maps].shape.get(1)?;
    let weight_shape = &net.values[weight].shape;
    let fits = match gemm.trans_b {
        true => weight_shape.get(1) == Some(&channels),
        false => weight_shape.first() == Some(&channels),
    };
    fits.then_some(CamSource {
        maps,
        weight,
        transposed: gemm.trans_b,
        logits,
    })
}

/// The value `value` is a view of, through any chain of views.
fn through_views(net: &Network, mut value: ValueId) -> ValueId {
    while let Some(node) = net.writer(value).filter(|n| n.op == Op::View) {
        value = node.inputs[0];
    }
    value
}

/// The class activation map of class `class`: Σₖ W[class, k] · Aₖ over the
/// maps A `[1, C, h, w]`, as `[h, w]` values.
pub fn cam(source: &CamSource, maps: &Array, weight: &Array, class: usize) -> Array {
    let (channels, height, width) = (maps.shape[1], maps.shape[2], maps.shape[3]);
    let plane = height * width;
    let classes = weight.len() / channels.max(1);
    let mut out = vec![0.0f32; plane];
    for k in 0..channels {
        let w = match source.transposed {
            true => weight.data[class * channels + k],
            false => weight.data[k * classes + class],
        };
        for (o, a) in out.iter_mut().zip(&maps.data[k * plane..(k + 1) * plane]) {
            *o += w * a;
        }
    }
    Array::new(vec![height, width], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_classes_are_ordered_and_labelled() {
        let mut scores = vec![0.0; 1000];
        scores[281] = 5.0;
        scores[285] = 4.0;
        let top = top_classes(&scores, 3, false);
        assert_eq!(top[0].index, 281);
        assert_eq!(top[0].label, "tabby");
        assert_eq!(top[1].label, "Egyptian cat");
        assert_eq!(top[2].index, 0);
        assert!(top[0].probability > top[1].probability);
        let few = top_classes(&[0.1, 0.7, 0.2], 2, true);
        assert_eq!(
            (few[0].label.as_str(), few[0].probability),
            ("class 1", 0.7)
        );
    }

    #[test]
    fn imagenet_has_a_thousand_names() {
        assert_eq!(IMAGENET_CLASSES.lines().count(), 1000);
    }
}
