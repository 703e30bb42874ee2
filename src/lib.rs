//! # convmaps
//!
//! Runs one convolutional layer on the GPU (wgpu + WGSL compute shaders) or
//! on the CPU, and shows what it computes: feature-map PNGs, a grid, the
//! exact weights, and a summary that answers "how many weights and biases
//! does this layer need?". For an RGB photo (C = 3) and K filters of F×F,
//! each filter has C·F·F weights and one bias: (C·F·F + 1)·K parameters.
//!
//! ```
//! use convmaps::{cpu, layer::LayerSpec, tensor::Tensor3, weights};
//!
//! // A 3-channel 8×8 image and 4 filters of 3×3, PyTorch's default init.
//! let image = Tensor3::from_vec(3, 8, 8, (0..192).map(|i| i as f32 / 192.0).collect());
//! let layer = weights::kaiming_uniform(LayerSpec::new(3, 4, 3), 42)?;
//! assert_eq!(layer.parameter_formula(), "(3·3·3 + 1)·4 = 112");
//!
//! let maps = cpu::conv2d_direct(&image, &layer)?; // [K, OH, OW] = [4, 6, 6]
//! assert_eq!((maps.channels, maps.height, maps.width), (4, 6, 6));
//! # Ok::<(), convmaps::Error>(())
//! ```
//!
//! Every backend is an [`engine::Engine`] (and [`engine::Pictures`]), made
//! once: [`engine::open`] finds a GPU (or falls back to the CPU twin), and
//! [`engine::Engine::run`] takes the same inputs. [`resolve::resolve`]
//! builds a checked layer from command-line style options; a run is a
//! [`graph::Graph`] of steps (one conv, or a stack), and [`job::run`] does a
//! whole run, input to files, with the [`settings::Settings`] the program
//! read from its environment. A whole trained network (`--model`) is a
//! [`net::Network`], loaded from ONNX by [`net::open`] and run by
//! [`engine::Engine::run_network`]; [`job::model::run`] does such a run.

pub mod banks;
pub mod bench;
pub mod cpu;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod graph;
pub mod input;
pub mod inputs;
pub mod job;
pub mod layer;
pub mod model;
pub mod net;
pub mod net_bench;
pub mod npy;
pub mod output;
pub mod photo;
pub mod pool;
pub mod preprocess;
pub mod render;
pub mod report;
pub mod resolve;
pub mod settings;
pub mod stats;
pub mod tensor;
pub mod weights;

pub use error::{Error, Result};
