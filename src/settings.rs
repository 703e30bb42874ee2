//! Every switch the library obeys besides its arguments, in one value. The
//! program reads them once from its environment (`CONVMAPS_*`, in
//! `main.rs`) and hands a [`Settings`] down; the library itself reads no
//! `CONVMAPS_*` variable (only wgpu's own `WGPU_BACKEND` and
//! `WGPU_ADAPTER_NAME`, where the adapter is chosen), so a test passes the
//! settings it wants instead of setting variables.

use std::ffi::OsString;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};

/// On the GPU or on the host: where a stack's maps go between its layers,
/// and where each band's statistics and pixels are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// In GPU memory, by shaders.
    Gpu,
    /// In host memory, by the CPU.
    Host,
}

impl Placement {
    /// `gpu` or `host`, as `summary.json` and the variables spell it.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Gpu => "gpu",
            Placement::Host => "host",
        }
    }
}

/// How a run's maps become pictures (see `job::modes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapsMode {
    /// Pictures written band by band in the one compute pass.
    OnePass,
    /// The f32 maps kept in the engine's memory until the statistics are
    /// known, then drawn there.
    Keep,
    /// Statistics first, then each band computed again for its pictures.
    Recompute,
    /// The f32 maps through the disk.
    Spill,
}

impl MapsMode {
    /// The mode's name in `summary.json` and in [`MAPS_MODE`].
    pub fn name(self) -> &'static str {
        match self {
            MapsMode::OnePass => "one-pass",
            MapsMode::Keep => "keep",
            MapsMode::Recompute => "recompute",
            MapsMode::Spill => "spill",
        }
    }
}

/// Where the pipeline cache file goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CacheDir {
    /// The user's cache directory's `convmaps/`.
    #[default]
    User,
    /// This directory.
    At(PathBuf),
    /// No cache file at all (`off`).
    Off,
}

/// Forces how the maps become pictures: `one-pass` (with a fixed
/// `--normalize` only), `keep`, `recompute` or `spill`.
pub const MAPS_MODE: &str = "CONVMAPS_MAPS_MODE";
/// The most bytes of f32 maps kept on the engine between passes.
pub const KEEP_BYTES: &str = "CONVMAPS_KEEP_BYTES";
/// The most bytes one band's input or output may take.
pub const BAND_BYTES: &str = "CONVMAPS_BAND_BYTES";
/// Where a stack's maps go between layers on a GPU: `gpu` or `host`.
pub const BETWEEN_LAYERS: &str = "CONVMAPS_BETWEEN_LAYERS";
/// Where a GPU makes each band's statistics and pixels: `gpu` or `host`.
pub const PICTURES: &str = "CONVMAPS_PICTURES";
/// The pipeline cache's directory, or `off`.
pub const CACHE_DIR: &str = "CONVMAPS_CACHE_DIR";
/// The fast shader's kernel for every layer: `windows` or `subgroup`.
pub const FAST_KERNEL: &str = "CONVMAPS_FAST_KERNEL";

/// Every variable [`Settings::from_lookup`] reads.
pub const VARIABLES: [&str; 7] = [
    MAPS_MODE,
    KEEP_BYTES,
    BAND_BYTES,
    BETWEEN_LAYERS,
    PICTURES,
    CACHE_DIR,
    FAST_KERNEL,
];

/// Which kernel the fast shader runs (`gpu::FastConv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastKernel {
    /// `conv2d_subgroup.wgsl` where the GPU has subgroups of 8 or more
    /// invocations, for depthwise layers and layers of at least
    /// `gpu::SUBGROUP_CHANNELS` channels per group (whose buffers fit it);
    /// the windows for the rest.
    Auto,
    /// `conv2d_fast.wgsl`: uniform windows, on any GPU.
    Windows,
    /// `conv2d_subgroup.wgsl` for every layer whose buffers fit it, where
    /// the GPU has subgroups (as tests exercise it on small layers).
    Subgroup,
}

/// The switches; each `None` leaves the choice to the engine or the job,
/// as its default documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// [`MAPS_MODE`]: the maps mode, forced (else chosen per run).
    pub maps_mode: Option<MapsMode>,
    /// [`KEEP_BYTES`]: bytes of f32 maps kept between passes (else the
    /// engine's keep budget).
    pub keep_bytes: Option<u64>,
    /// [`BAND_BYTES`]: bytes of one band (else the engine's band budget;
    /// tests force tiny bands with it).
    pub band_bytes: Option<u64>,
    /// [`BETWEEN_LAYERS`]: where a stack's maps go between layers on a GPU
    /// (else as the GPU suits: the host on a software GPU).
    pub between_layers: Option<Placement>,
    /// [`PICTURES`]: where a GPU makes statistics and pixels (else as the
    /// GPU suits: the host on a software GPU).
    pub pictures: Option<Placement>,
    /// [`CACHE_DIR`]: where the pipeline cache goes.
    pub cache_dir: CacheDir,
    /// [`FAST_KERNEL`]: the fast shader's kernel, forced (else as it
    /// chooses per layer).
    pub fast_kernel: Option<FastKernel>,
    /// The most bytes of GPU memory a network's run may hold at once (the
    /// command line's `--gpu-memory`; no variable sets it), else the
    /// engine's default.
    pub gpu_memory: Option<u64>,
}

impl Settings {
    /// The settings that `lookup` (a variable's value by name, or `None`
    /// when unset) gives; a value that is not one the variable takes is
    /// refused, naming the variable and the value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Settings> {
        let text = |name: &str| -> Result<Option<String>> {
            match lookup(name) {
                None => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(Some)
                    .map_err(|value| refused(name, &value.to_string_lossy(), "a value in UTF-8")),
            }
        };
        Ok(Settings {
            maps_mode: text(MAPS_MODE)?
                .map(|value| maps_mode(&value))
                .transpose()?,
            keep_bytes: text(KEEP_BYTES)?
                .map(|value| bytes(KEEP_BYTES, &value, 0))
                .transpose()?,
            band_bytes: text(BAND_BYTES)?
                .map(|value| bytes(BAND_BYTES, &value, 1))
                .transpose()?,
            between_layers: text(BETWEEN_LAYERS)?
                .map(|value| placement(BETWEEN_LAYERS, &value))
                .transpose()?,
            pictures: text(PICTURES)?
                .map(|value| placement(PICTURES, &value))
                .transpose()?,
            cache_dir: match lookup(CACHE_DIR) {
                Some(dir) if dir == "off" => CacheDir::Off,
                Some(dir) if !dir.is_empty() => CacheDir::At(PathBuf::from(dir)),
                _ => CacheDir::User,
            },
            gpu_memory: None,
            fast_kernel: text(FAST_KERNEL)?
                .map(|value| match value.as_str() {
                    "windows" => Ok(FastKernel::Windows),
                    "subgroup" => Ok(FastKernel::Subgroup),
                    _ => Err(refused(FAST_KERNEL, &value, "windows or subgroup")),
                })
                .transpose()?,
        })
    }
}

/// `NAME=value: expected …`.
fn refused(name: &str, value: &str, expected: &str) -> Error {
    Error::Setting(format!("{name}={value}: expected {expected}"))
}

fn maps_mode(value: &str) -> Result<MapsMode> {
    [
        MapsMode::OnePass,
        MapsMode::Keep,
        MapsMode::Recompute,
        MapsMode::Spill,
    ]
    .into_iter()
    .find(|mode| mode.name() == value)
    .ok_or_else(|| {
        refused(
            MAPS_MODE,
            value,
            "one of the modes one-pass (with --normalize LO,HI), keep, recompute and spill",
        )
    })
}

fn bytes(name: &str, value: &str, least: u64) -> Result<u64> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|&bytes: &u64| bytes >= least)
        .ok_or_else(|| {
            let expected = if least == 0 {
                "a number of bytes".to_string()
            } else {
                format!("a number of bytes of at least {least}")
            };
            refused(name, value, &expected)
        })
}

fn placement(name: &str, value: &str) -> Result<Placement> {
    match value {
        "gpu" => Ok(Placement::Gpu),
        "host" => Ok(Placement::Host),
        _ => Err(refused(name, value, "gpu or host")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings> {
        Settings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| OsString::from(value))
        })
    }

    #[test]
    fn unset_variables_leave_every_choice_to_the_run() {
        assert_eq!(settings(&[]).unwrap(), Settings::default());
    }

    #[test]
    fn each_variable_is_read_into_its_field() {
        let read = settings(&[
            (MAPS_MODE, "recompute"),
            (KEEP_BYTES, " 4096 "),
            (BAND_BYTES, "6000"),
            (BETWEEN_LAYERS, "host"),
            (PICTURES, "gpu"),
            (CACHE_DIR, "off"),
            (FAST_KERNEL, "windows"),
        ])
        .unwrap();
        assert_eq!(read.maps_mode, Some(MapsMode::Recompute));
        assert_eq!((read.keep_bytes, read.band_bytes), (Some(4096), Some(6000)));
        assert_eq!(read.between_layers, Some(Placement::Host));
        assert_eq!(read.pictures, Some(Placement::Gpu));
        assert_eq!(read.cache_dir, CacheDir::Off);
        assert_eq!(read.fast_kernel, Some(FastKernel::Windows));
    }

    #[test]
    fn a_value_a_variable_does_not_take_is_refused_naming_both() {
        for (name, value) in [
            (MAPS_MODE, "bogus"),
            (KEEP_BYTES, "lots"),
            (BAND_BYTES, "0"),
            (BETWEEN_LAYERS, "cpu"),
            (PICTURES, "GPU"),
            (FAST_KERNEL, "fast"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert!(error.is_bad_input(), "{error}");
            let message = error.to_string();
            assert!(message.contains(&format!("{name}={value}")), "{message}");
        }
    }
}
