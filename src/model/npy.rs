//! `.npy` weights as a [`ModelFile`]: a weight `[K, C/G, FH, FW]` and,
//! when given, a bias `[K]`, each in a file of its own as numpy's
//! `np.save` writes them (f16, f32 or f64, either byte order, C or Fortran
//! order). The pair is one conv, named "", whose tensors are `weight` and
//! `bias`. Opening reads both headers; the values are read when asked for.

use std::path::{Path, PathBuf};

use super::load::{ConvInFile, LoadedWeights};
use super::{ConvRef, FileTensor, ModelFile, values_within};
use crate::error::{Error, Result};
use crate::npy::{self, FloatsHeader};

/// The weight tensor's name.
const WEIGHT: &str = "weight";
/// The bias tensor's name.
const BIAS: &str = "bias";

/// Reads the weight `[K, C/G, FH, FW]` at `weight` and, when given, the
/// bias `[K]` at `bias`, each read bounded by the shape the weight states;
/// nothing is checked against an input (the resolve step checks the
/// weight's shape against the input before reading it).
pub fn load_npy(weight: &Path, bias: Option<&Path>) -> Result<LoadedWeights> {
    let files = NpyWeights::open(weight, bias)?;
    ConvInFile::choose(Box::new(files), None)?.read(None)
}

/// One `.npy` file and its header.
struct NpyTensor {
    path: PathBuf,
    header: FloatsHeader,
}

/// A weight `.npy` and, when given, a bias `.npy`, opened for reading.
pub struct NpyWeights {
    weight: NpyTensor,
    bias: Option<NpyTensor>,
    convs: Vec<ConvRef>,
}

impl NpyWeights {
    /// Opens the weight at `weight` and the bias at `bias`, reading their
    /// headers only. Errors name the file: not a float `.npy`, values
    /// missing or left over, a bias that is not one value per filter
    /// (1-D). The weight's shape is checked where it is read
    /// ([`crate::model::load`]): any shape opens.
    pub fn open(weight: &Path, bias: Option<&Path>) -> Result<Self> {
        let weight = NpyTensor {
            path: weight.to_path_buf(),
            header: npy::read_floats_header(weight)?,
        };
        let bias = match bias {
            Some(path) => {
                let header = npy::read_floats_header(path)?;
                if header.shape.len() != 1 {
                    return Err(Error::weights(
                        path,
                        format!(
                            "bias has shape {:?}, expected [K] (one value per filter)",
                            header.shape
                        ),
                    ));
                }
                Some(NpyTensor {
                    path: path.to_path_buf(),
                    header,
                })
            }
            None => None,
        };
        let convs = vec![ConvRef {
            name: String::new(),
            weight: WEIGHT.to_string(),
            bias: bias.as_ref().map(|_| BIAS.to_string()),
            weight_shape: weight.header.shape.clone(),
            geometry: None,
            batch_norm: None,
            reads_input: None,
            feed: None,
        }];
        Ok(NpyWeights {
            weight,
            bias,
            convs,
        })
    }

    /// The file of tensor `name`, or an error naming the weight's file.
    fn file(&self, name: &str) -> Result<&NpyTensor> {
        match (name, &self.bias) {
            (WEIGHT, _) => Ok(&self.weight),
            (BIAS, Some(bias)) => Ok(bias),
            _ => Err(Error::weights(
                &self.weight.path,
                format!("has no tensor {name:?}"),
            )),
        }
    }
}

impl ModelFile for NpyWeights {
    fn path(&self) -> &Path {
        &self.weight.path
    }

    fn format(&self) -> &'static str {
        "npy"
    }

    fn convs(&self) -> &[ConvRef] {
        &self.convs
    }

    fn tensor_names(&self) -> Vec<String> {
        let bias = self.bias.as_ref().map(|_| BIAS.to_string());
        std::iter::once(WEIGHT.to_string()).chain(bias).collect()
    }

    fn tensor_shape(&self, name: &str) -> Result<Vec<usize>> {
        Ok(self.file(name)?.header.shape.clone())
    }

    fn tensor_within(&mut self, name: &str, max_values: usize) -> Result<FileTensor> {
        let file = self.file(name)?;
        let header = &file.header;
        values_within(name, &header.shape, max_values)
            .map_err(|m| Error::weights(&file.path, m))?;
        Ok(FileTensor {
            shape: header.shape.clone(),
            dtype: header.dtype,
            values: npy::read_floats_values(&file.path, header)?,
        })
    }

    fn tensor_path(&self, name: &str) -> &Path {
        self.file(name).map_or(&self.weight.path, |file| &file.path)
    }
}
