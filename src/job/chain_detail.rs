//! What a stack's page embeds to show one value as its arithmetic: for the
//! blocks whose conv's weights and input fit the page's budget,
//! in order, the conv, the steps after it (its ReLU, max pooling) and its
//! input: the input as the first conv reads it, or the maps of the block
//! before (`render::arithmetic`).

use crate::error::Result;
use crate::graph::{Graph, Op};
use crate::layer::Activation;
use crate::render::arithmetic::{self, Embedded, Geometry, Then};
use crate::tensor::RowSource;

/// The arithmetic of `graph`'s blocks that fit `budget` bytes of copies, in
/// order: block 0 reads
/// `input`, block b the maps of block b − 1, which `maps_of(b − 1)` gives
/// `[K, H, W]` (read only for the blocks that fit); `first_map(b)` gives
/// block b's first map `[H, W]` and the largest |value| of its maps, for
/// the page's self-test.
pub(super) fn stack_arithmetic(
    (graph, budget): (&Graph, usize),
    input: &dyn RowSource,
    maps_of: impl Fn(usize) -> Result<Vec<f32>>,
    first_map: impl Fn(usize) -> Result<(Vec<f32>, f32)>,
) -> Result<Embedded> {
    let mut page = Embedded::default();
    let mut used = 0;
    for block in 0..graph.blocks.len() {
        let layer = graph.layer(block);
        let shape = match block {
            0 => graph.input(),
            _ => graph.block_output(block - 1),
        };
        let values = shape.iter().map(|&s| s as usize).product();
        let cost = arithmetic::cost(layer.weight.len() + layer.bias.len(), values);
        if used + cost > budget {
            page.convs.push(Err(arithmetic::over_budget(budget)));
            continue;
        }
        used += cost;
        let (name, data) = match block {
            0 => {
                let [channels, height, _] = shape;
                ("input".to_string(), input.rows(0..channels, 0..height).data)
            }
            _ => (graph.blocks[block - 1].name.clone(), maps_of(block - 1)?),
        };
        let shape = shape.map(|s| s as usize);
        page.inputs
            .insert(name.clone(), arithmetic::input_json(shape, &data));
        let mut conv = conv_json(graph, block, &name);
        let [_, height, width] = graph.block_output(block).map(|s| s as usize);
        let (first, largest) = first_map(block)?;
        conv["run"] = arithmetic::run_values(&first, [height, width], largest);
        page.convs.push(Ok(conv));
    }
    Ok(page)
}

/// Block `block`'s conv and the steps after it, reading the input `name`.
fn conv_json(graph: &Graph, block: usize, name: &str) -> serde_json::Value {
    let layer = graph.layer(block);
    let spec = &layer.spec;
    let mut then = Vec::new();
    if spec.activation == Activation::Relu {
        then.push(Then::Relu);
    }
    for step in &graph.steps[graph.blocks[block].steps.start + 1..graph.blocks[block].steps.end] {
        match &step.op {
            Op::Relu => then.push(Then::Relu),
            Op::MaxPool(pool) => then.push(Then::MaxPool {
                size: pool.size,
                stride: pool.stride,
            }),
            Op::Conv(_) => {}
        }
    }
    let p = spec.padding;
    let geometry = Geometry {
        kernel: [spec.kernel_height, spec.kernel_width],
        strides: [spec.stride; 2],
        pads: [p.top, p.left, p.bottom, p.right],
        dilations: [spec.dilation; 2],
        groups: spec.groups,
    };
    let bias = (!layer.bias.is_empty()).then_some(layer.bias.as_slice());
    arithmetic::conv_json(
        geometry,
        (&layer.weight, spec.filters as usize),
        bias,
        (name, &then),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_stack;
    use crate::tensor::Tensor3;

    /// A stack over a 3×`side`×`side` input of zeros.
    fn stack(text: &str, side: u32) -> (Graph, Tensor3) {
        (test_stack(text, side, side), Tensor3::zeros(3, side, side))
    }

    #[test]
    fn a_layer_over_the_budget_says_so_and_later_layers_still_fit() {
        // The 3×1200×1200 input alone is 4.3 MB of copies; conv2 reads
        // conv1's 4 maps after a max pool of 100: 4·12·12 values.
        let (graph, input) = stack("4x1,maxpool100,2x3", 1200);
        let maps = |block: usize| {
            Ok(vec![
                0.5;
                graph.block_output(block).iter().product::<u32>()
                    as usize
            ])
        };
        let page =
            stack_arithmetic((&graph, 4 << 20), &input, maps, |b| Ok((maps(b)?, 1.0))).unwrap();
        assert!(
            page.convs[0]
                .as_ref()
                .unwrap_err()
                .contains("over the page's budget")
        );
        let conv = page.convs[1].as_ref().unwrap();
        assert_eq!(conv["input"], "conv1");
        assert_eq!(conv["then"], serde_json::json!([]));
        assert_eq!(
            page.inputs["conv1"]["shape"],
            serde_json::json!([4, 12, 12])
        );
        assert!(!page.inputs.contains_key("input"));
    }

    #[test]
    fn a_conv_carries_its_relu_and_pools_and_reads_the_input_first() {
        let (graph, input) = stack("2x3,relu,maxpool2,relu,3x1", 8);
        let maps = |block: usize| {
            Ok(vec![
                0.0;
                graph.block_output(block).iter().product::<u32>()
                    as usize
            ])
        };
        let page =
            stack_arithmetic((&graph, 4 << 20), &input, maps, |b| Ok((maps(b)?, 1.0))).unwrap();
        let conv = page.convs[0].as_ref().unwrap();
        assert_eq!(conv["input"], "input");
        assert_eq!(
            conv["then"],
            serde_json::json!([{"op": "relu"}, {"op": "maxpool", "size": 2, "stride": 2}, {"op": "relu"}])
        );
        assert_eq!(page.convs[1].as_ref().unwrap()["input"], "conv1");
    }
}
