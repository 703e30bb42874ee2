//! Writing output files safely: each file is written under a temporary name
//! in its final directory and renamed into place only when complete, so a
//! failed or killed run never leaves a truncated file under a final name.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Checks that `dir` can be an output directory: it is a directory or does
/// not exist yet. Creates nothing, so a run that fails before writing
/// leaves no trace.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(Error::output(
            dir,
            "exists and is not a directory; --out needs a directory",
            None,
        )),
        _ => Ok(()),
    }
}

/// Creates `dir` (and its parents) if needed.
pub fn create_output_dir(dir: &Path) -> Result<()> {
    check_output_dir(dir)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::output(dir, "cannot create the output directory", Some(e.into())))
}

/// A file being written under a temporary name (`.<name>.<random>.part`)
/// in its final directory. [`AtomicFile::commit`] renames it into place;
/// dropping it uncommitted deletes it.
pub struct AtomicFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("output");
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".part");
        // A temporary file is private (0600) by default; outputs are ordinary
        // files, readable as the user's umask allows.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let temp = builder.tempfile_in(dir).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            temp,
        })
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open temporary file, for writing (and reading back).
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// A second handle on the temporary file, with its own position, for
    /// reading it back (several readers can each have one).
    pub fn reopen(&self) -> Result<File> {
        self.temp.reopen().map_err(|e| Error::io(&self.path, e))
    }

    /// Syncs the data and renames the file to its final path.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        self.temp
            .as_file()
            .sync_data()
            .map_err(|e| Error::io(&path, e))?;
        self.temp
            .persist(&path)
            .map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }
}

/// Writes `path` atomically: `write` fills a buffered temporary file in the
/// same directory, which is flushed, synced and renamed to `path`.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let file = AtomicFile::create(path)?;
    {
        let mut writer = BufWriter::with_capacity(1 << 20, file.file());
        write(&mut writer).map_err(|e| Error::io(path, e))?;
        writer.flush().map_err(|e| Error::io(path, e))?;
    }
    file.commit()
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes))
}
