//! Local files a computation read, and what they looked like: a cached fn's entry and a
//! cell's trace both keep them, and a hit checks each again (an edited file, or another file
//! behind the same relative path, is a miss).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What a local file looked like when a cell read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileFingerprint {
    /// Size in bytes (`None`: the file was missing).
    pub size: Option<u64>,
    /// Modification time.
    pub modified: Option<SystemTime>,
    /// The inode and its change time (Unix): a file replaced by another with the same size
    /// and a copied modification time (`cp -p`, a rename over it) still shows.
    pub inode: Option<(u64, i64, i64)>,
}

impl FileFingerprint {
    /// Reads the file's size and modification time now.
    pub fn of(path: &Path) -> Self {
        match std::fs::metadata(path) {
            Ok(meta) => Self {
                size: Some(meta.len()),
                modified: meta.modified().ok(),
                inode: inode(&meta),
            },
            Err(_) => Self {
                size: None,
                modified: None,
                inode: None,
            },
        }
    }
}

#[cfg(unix)]
fn inode(meta: &std::fs::Metadata) -> Option<(u64, i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    Some((meta.ino(), meta.ctime(), meta.ctime_nsec()))
}

#[cfg(not(unix))]
fn inode(_meta: &std::fs::Metadata) -> Option<(u64, i64, i64)> {
    None
}

/// A local file a cached fn's computation read: the path as the script wrote it, where it
/// resolved, and what the file looked like. A hit checks it again, so an edited file, or a
/// different file behind the same relative path (another notebook's `data.csv`), is a miss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRead {
    /// The path as written in the script.
    pub written: String,
    /// Where it resolved (after the search order).
    pub resolved: PathBuf,
    /// Size and modification time when read.
    pub fingerprint: FileFingerprint,
}

impl FileRead {
    /// Reads the fingerprint of `resolved` now.
    pub fn now(written: &str, resolved: &Path) -> Self {
        Self {
            written: written.to_string(),
            resolved: absolute(resolved),
            fingerprint: FileFingerprint::of(resolved),
        }
    }

    /// A file looked for and found nowhere: where it would be read beside the notebook,
    /// absent.
    pub fn absent(written: &str, notebook_dir: Option<&Path>) -> Self {
        let place = match notebook_dir {
            Some(dir) => dir.join(written),
            None => PathBuf::from(written),
        };
        Self {
            written: written.to_string(),
            resolved: absolute(&place),
            fingerprint: FileFingerprint {
                size: None,
                modified: None,
                inode: None,
            },
        }
    }

    /// `Ok` when `written` still resolves (from `notebook_dir`) to the same, unchanged file
    /// (or is still missing, if it was); otherwise what changed.
    pub fn still_holds(&self, notebook_dir: Option<&Path>) -> Result<(), String> {
        let was_missing = self.fingerprint.size.is_none();
        match crate::data::resolve_path(&self.written, notebook_dir) {
            Err(_) if was_missing => return Ok(()),
            Ok(_) if was_missing => return Err(format!("file `{}` appeared", self.written)),
            Ok(now) if absolute(&now) == self.resolved => {}
            Ok(now) => {
                return Err(format!(
                    "`{}` is now {}, not {}",
                    self.written,
                    now.display(),
                    self.resolved.display()
                ));
            }
            Err(_) => return Err(format!("file {} deleted", self.resolved.display())),
        }
        if FileFingerprint::of(&self.resolved) == self.fingerprint {
            Ok(())
        } else {
            Err(format!("file {} modified", self.resolved.display()))
        }
    }
}

/// `path` made absolute against the working directory (as it is now).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
