//! What a network's run holds in GPU memory at once, estimated from the
//! shapes before anything is allocated, and the budget it is held to.
//!
//! One submission holds every buffer it uses until it ends. The values'
//! buffers are reused ([`BufferPlan`]); the weights, the conv pipelines'
//! own buffers (inputs and weights packed for the conv shader) and the
//! copies of the values read back are not.

use serde::Serialize;

use super::buffers::BufferPlan;
use super::{Network, ValueId};

/// Bytes a run holds in GPU memory at once, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NetMemory {
    /// The weights and other constants the nodes read, as uploaded.
    pub weights: u64,
    /// The input's and the values' buffers, as [`BufferPlan`] reuses them.
    pub values: u64,
    /// The conv pipelines' packed inputs and weights, and the buffers of
    /// sums a conv writes before a step it cannot fuse.
    pub scratch: u64,
    /// The copies of the values read back (maps, outputs).
    pub readback: u64,
}

impl NetMemory {
    /// Everything together.
    pub fn total(&self) -> u64 {
        self.weights + self.values + self.scratch + self.readback
    }

    /// The weights and values of `net` (no conv pipeline, nothing read
    /// back), its values in the buffers of `plan`: what its CPU twins hold
    /// too, with [`BufferPlan::new`].
    pub fn of_values(net: &Network, plan: &BufferPlan) -> NetMemory {
        let read: std::collections::HashSet<ValueId> = net
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().copied())
            .collect();
        let weights: u64 = net
            .constants
            .iter()
            .filter(|(id, _)| read.contains(id))
            .map(|(_, array)| 4 * array.data.len() as u64)
            .sum();
        NetMemory {
            weights,
            values: plan.bytes(),
            ..NetMemory::default()
        }
    }

    /// Refuses a run of `net` that needs more than `budget` bytes, with
    /// the numbers and what to do.
    pub fn check(&self, net: &Network, budget: Option<u64>) -> crate::error::Result<()> {
        let Some(budget) = budget else {
            return Ok(());
        };
        if self.total() <= budget {
            return Ok(());
        }
        let mb = |bytes: u64| bytes as f64 / 1e6;
        let size = match net.values[net.input_value].shape[..] {
            [_, _, h, w] => format!("{w}×{h}"),
            _ => "this".to_string(),
        };
        Err(crate::error::Error::GpuLimit(format!(
            "{}: a run at {size} needs {:.1} MB of GPU memory at once (weights {:.1}, values \
             {:.1}, conv buffers {:.1}, read back {:.1}), more than the {:.1} MB it may use \
             (--gpu-memory MB); a smaller input needs less (--resize WxH), or write fewer maps \
             (--maps)",
            net.path.display(),
            mb(self.total()),
            mb(self.weights),
            mb(self.values),
            mb(self.scratch),
            mb(self.readback),
            mb(budget)
        )))
    }
}

/// The memory a run may use where nobody says: on a software GPU, whose
/// memory is the host's, the host memory available now (Linux's
/// `MemAvailable`); on a hardware GPU none is known (the graphics API does
/// not report it), so `None`.
pub fn default_budget(device_type: wgpu::DeviceType) -> Option<u64> {
    if device_type != wgpu::DeviceType::Cpu {
        return None;
    }
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
