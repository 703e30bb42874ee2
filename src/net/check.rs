//! Whether `--model` runs a model, for `convmaps layers`: the model loaded
//! for its own input size (224×224 where the size is dynamic), and what
//! runs, or why it would be refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// What `--model` makes of a model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkCheck {
    /// `[height, width]` it was loaded for.
    pub size: [u32; 2],
    /// Nodes that would run, by op, or `None` where it is refused.
    pub ops: Option<BTreeMap<String, usize>>,
    /// Nodes folded away at load.
    pub folded: usize,
    /// Why `--model` would refuse it.
    pub refused: Option<String>,
}

/// The size a dynamic model is checked at.
const DYNAMIC_SIZE: [u32; 2] = [224, 224];

/// Loads the model at `path` as `--model` would, and says what runs.
pub fn check(path: &Path) -> NetworkCheck {
    let refused = |size, error: crate::Error| NetworkCheck {
        size,
        ops: None,
        folded: 0,
        refused: Some(error.to_string()),
    };
    let mut model = match super::open(path) {
        Ok(model) => model,
        Err(error) => return refused(DYNAMIC_SIZE, error),
    };
    let size = model.input.size.unwrap_or(DYNAMIC_SIZE);
    match model.network(size) {
        Ok(network) => {
            let mut ops = BTreeMap::new();
            for node in &network.nodes {
                *ops.entry(node.op_type.clone()).or_insert(0) += 1;
            }
            NetworkCheck {
                size,
                ops: Some(ops),
                folded: network.folded,
                refused: None,
            }
        }
        Err(error) => refused(size, error),
    }
}

impl NetworkCheck {
    /// One line for the terminal.
    pub fn text(&self) -> String {
        let [h, w] = self.size;
        match (&self.ops, &self.refused) {
            (Some(ops), _) => {
                let nodes: usize = ops.values().sum();
                let list: Vec<String> = ops.iter().map(|(op, n)| format!("{op} ×{n}")).collect();
                format!(
                    "--model runs it at {h}×{w}: {nodes} nodes ({} folded at load): {}",
                    self.folded,
                    list.join(", ")
                )
            }
            (None, Some(why)) => format!("--model would refuse it: {why}"),
            (None, None) => "--model was not tried".to_string(),
        }
    }
}
