//! The convmaps binary as the tests run it, with one backend policy, and
//! the photo they run it on.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A run of the convmaps binary being set up. Its backend, one policy for
/// every test:
/// - [`Run::cpu`]: `--backend cpu`, runs anywhere;
/// - [`Run::gpu`]: `--backend gpu`, and `None` after a visible skip (see
///   [`super::skip`]; a failure under `REQUIRE_GPU=1`) when this machine
///   has no adapter; [`Run::needs_gpu`] alone for a subcommand that uses
///   the GPU without the option (`bench`);
/// - [`Run::auto`]: the binary's own choice (the GPU, else the CPU), pinned
///   to the GPU under `REQUIRE_GPU=1` so that CI never passes on the CPU
///   fallback;
/// - [`Run::backend`]: `--backend NAME` as given, for a test that names
///   the backend as data and has checked for an adapter itself;
/// - none of them: the arguments as given (a subcommand, a run refused
///   before it picks a backend).
#[must_use]
pub struct Run {
    command: Command,
    args: Vec<OsString>,
}

/// The convmaps binary with `args`; add more, the environment and the
/// backend on the [`Run`], then run it.
pub fn convmaps<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    Run {
        command: Command::new(env!("CARGO_BIN_EXE_convmaps")),
        args: Vec::new(),
    }
    .args(args)
}

impl Run {
    /// One more argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// More arguments.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// `--out DIR`.
    pub fn out(self, dir: impl AsRef<OsStr>) -> Self {
        self.arg("--out").arg(dir)
    }

    /// Sets the environment variable `key` for the run.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Removes the environment variable `key` for the run.
    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    /// `--backend NAME`, as given (the GPU test that calls it checks for an
    /// adapter first).
    pub fn backend(self, name: &str) -> Self {
        self.args(["--backend", name])
    }

    /// `--backend cpu`.
    pub fn cpu(self) -> Self {
        self.backend("cpu")
    }

    /// `--backend gpu`; `None` after a visible skip without an adapter.
    pub fn gpu(self) -> Option<Self> {
        self.backend("gpu").needs_gpu()
    }

    /// The binary's own choice, `--backend gpu` under `REQUIRE_GPU=1`.
    pub fn auto(self) -> Self {
        if super::require_gpu() {
            self.backend("gpu")
        } else {
            self
        }
    }

    /// `None` after a visible skip when this machine has no GPU adapter.
    pub fn needs_gpu(self) -> Option<Self> {
        super::gpu().map(|_| self)
    }

    /// Runs the binary in an address space of at most `kib` KiB (`ulimit
    /// -v` in a shell that then becomes the binary), so that a run that
    /// would take more memory fails instead.
    pub fn within_memory(mut self, kib: u64) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"ulimit -v "$0" && exec "$@""#)
            .arg(kib.to_string())
            .arg(env!("CARGO_BIN_EXE_convmaps"));
        self.command = command;
        self
    }

    /// Runs the binary to the end.
    pub fn output(mut self) -> Ran {
        let output = self
            .command
            .args(&self.args)
            .output()
            .expect("run convmaps");
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Ran {
            command: format!("convmaps {}", args.join(" ")),
            output,
        }
    }

    /// Runs it and asserts that it exits with 0 (see [`Ran::success`]).
    pub fn success(self) -> Ran {
        self.output().success()
    }

    /// Runs it and asserts how it fails (see [`Ran::fails_with`]).
    pub fn fails_with(self, code: i32, needles: &[&str]) -> Ran {
        self.output().fails_with(code, needles)
    }
}

/// A finished run of the binary.
pub struct Ran {
    /// The command line, for messages.
    pub command: String,
    /// Its status, stdout and stderr.
    pub output: Output,
}

impl Ran {
    /// The exit code.
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// Standard output, as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error, as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The command line, status, stdout and stderr, for failure messages.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.command, super::text(&self.output))
    }

    /// Asserts that the run exited with 0, showing everything it said
    /// when not.
    pub fn success(self) -> Self {
        assert_eq!(self.code(), Some(0), "{}", self.text());
        self
    }

    /// Asserts that the run exited with `code`, that its stderr holds each
    /// of `needles`, and that nothing panicked.
    pub fn fails_with(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(self.code(), Some(code), "{}", self.text());
        let stderr = self.stderr();
        self.assert_holds("stderr", &stderr, needles);
        assert!(!stderr.contains("panicked"), "{}", self.text());
        self
    }

    /// Asserts that stdout holds each of `needles`.
    pub fn says(self, needles: &[&str]) -> Self {
        self.assert_holds("stdout", &self.stdout(), needles);
        self
    }

    /// Asserts that `stream`, this run's output called `name`, holds each
    /// of `needles`.
    fn assert_holds(&self, name: &str, stream: &str, needles: &[&str]) {
        for needle in needles {
            assert!(
                stream.contains(needle),
                "expected {needle:?} in {name} of\n{}",
                self.text()
            );
        }
    }
}

/// Writes a `width`×`height` RGB photo to `path` (PNG or JPEG, as its
/// extension says) and returns the path: green and blue ramps across and
/// down, and in red a bright square (230) over the middle half of each
/// side on a dark ground (20).
pub fn save_photo(path: &Path, width: u32, height: u32) -> PathBuf {
    let square = |v: u32, side: u32| (side / 4..side * 3 / 4).contains(&v);
    image::RgbImage::from_fn(width, height, |x, y| {
        let red = if square(x, width) && square(y, height) {
            230
        } else {
            20
        };
        image::Rgb([red, (x * 6) as u8, (y * 8) as u8])
    })
    .save(path)
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path.to_path_buf()
}

/// [`save_photo`] as `dir/photo.png`.
pub fn photo(dir: &Path, width: u32, height: u32) -> PathBuf {
    save_photo(&dir.join("photo.png"), width, height)
}

/// A fresh folder holding the `width`×`height` [`photo`] and
/// `model.safetensors` of `tensors` (see [`super::write_safetensors`]):
/// the folder, kept while it lives, the photo and the model.
pub fn photo_and_model(
    (width, height): (u32, u32),
    tensors: &[(&str, Vec<usize>)],
) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let photo = photo(dir.path(), width, height);
    let model = dir.path().join("model.safetensors");
    super::write_safetensors(&model, tensors);
    (dir, photo, model)
}

/// Asserts that a refused run left `path` unwritten.
pub fn assert_not_written(path: &Path) {
    assert!(
        !path.exists(),
        "{} was written by a refused run",
        path.display()
    );
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()) {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The files under `out` that a run's pictures must not leave behind: f32
/// maps (`features…`) and hidden files (temporaries).
pub fn leftovers(out: &Path) -> Vec<PathBuf> {
    files_under(out)
        .into_iter()
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy();
            name.contains("features") || name.starts_with('.')
        })
        .collect()
}
