//! The library's error type.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in convmaps.
///
/// [`Error::is_bad_input`] tells a caller whether the user can fix it by
/// changing the input or options (the CLI exits with 2) or whether it failed
/// at run time (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The layer's options make no sense (a zero size, groups not dividing C, ...).
    #[error("invalid layer: {0}")]
    InvalidLayer(String),

    /// A setting (a `CONVMAPS_*` variable) has a value it does not take.
    #[error("{0}")]
    Setting(String),

    /// The input photo could not be read or decoded.
    #[error("{}: {message}", path.display())]
    Image {
        /// The photo's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The error underneath, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// A weights file is unreadable or does not fit the layer.
    #[error("{}: {message}", path.display())]
    Weights {
        /// The weights file's path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The error underneath, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// The photo and the layer do not fit together (too small for the kernel,
    /// wrong channel count).
    #[error("{0}")]
    Mismatch(String),

    /// No GPU adapter was found, and the GPU backend was required.
    #[error(
        "no GPU adapter found{0}. A software GPU works too: on Debian/Ubuntu, \
         `apt-get install mesa-vulkan-drivers` gives one (lavapipe); or run with --backend cpu"
    )]
    NoAdapter(String),

    /// The job does not fit in the GPU's limits.
    #[error("{0}")]
    GpuLimit(String),

    /// The job exceeds a size limit that is not the GPU's (the band budget).
    #[error("{0}")]
    TooLarge(String),

    /// A report could not be turned into JSON.
    #[error("{}: cannot write JSON", path.display())]
    Json {
        /// The file being written.
        path: PathBuf,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// The GPU reported an error (validation, out of memory, device lost).
    #[error("GPU error during {stage}: {message}")]
    Gpu {
        /// What convmaps was doing when it failed.
        stage: &'static str,
        /// The GPU's own message.
        message: String,
    },

    /// Reading or writing a file failed.
    #[error("{}", path.display())]
    Io {
        /// The file or directory that could not be written.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// The output location cannot be used.
    #[error("{}: {message}", path.display())]
    Output {
        /// The output path.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// The error underneath, when there is one.
        #[source]
        source: Option<BoxError>,
    },
}

/// An error underneath one of ours, kept for the chain a caller prints.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// [`Error::Image`] for the photo at `path`.
    pub(crate) fn image(path: &Path, message: impl Into<String>) -> Self {
        Error::Image {
            path: path.to_path_buf(),
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Image`] caused by `source`.
    pub(crate) fn image_caused(
        path: &Path,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::image(path, message).caused_by(source.into())
    }

    /// [`Error::Weights`] for the file at `path`.
    pub(crate) fn weights(path: &Path, message: impl Into<String>) -> Self {
        Error::Weights {
            path: path.to_path_buf(),
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Weights`] caused by `source`.
    pub(crate) fn weights_caused(
        path: &Path,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::weights(path, message).caused_by(source.into())
    }

    /// This error of a file, with the error underneath it.
    fn caused_by(mut self, cause: BoxError) -> Self {
        if let Error::Image { source, .. } | Error::Weights { source, .. } = &mut self {
            *source = Some(cause);
        }
        self
    }

    /// [`Error::Output`] for `path`, caused by `source` when there is one.
    pub(crate) fn output(
        path: &Path,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Output {
            path: path.to_path_buf(),
            message: message.into(),
            source,
        }
    }

    /// True when the user can fix this by changing the input files or options
    /// (the CLI exits with status 2); false for failures at run time (status 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidLayer(_)
                | Error::Setting(_)
                | Error::TooLarge(_)
                | Error::Image { .. }
                | Error::Weights { .. }
                | Error::Mismatch(_)
                | Error::Output { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
