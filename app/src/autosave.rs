//! The autosave copy: while a notebook has unsaved changes, the window writes them every few
//! seconds to a hidden file beside it (`.name.rhai.autosave`), so a crash loses at most those
//! seconds of typing. Saving or discarding the changes removes the copy; a copy left behind
//! (the app did not get to either) is offered for recovery the next time the notebook opens.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often unsaved changes are copied.
pub const EVERY: Duration = Duration::from_secs(5);

/// Where the autosave copy of `notebook` lives: beside it, hidden, named after it.
pub fn path_for(notebook: &Path) -> PathBuf {
    let name = notebook
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "notebook.rhai".into());
    notebook.with_file_name(format!(".{name}.autosave"))
}

/// The text of an autosave copy of `notebook` worth offering: it exists, it differs from the
/// notebook, and it is not older than the notebook (a notebook saved after the copy was
/// written, by Cellar or another editor, is the newer work).
pub fn recoverable(notebook: &Path) -> Option<String> {
    let copy = path_for(notebook);
    let text = std::fs::read_to_string(&copy).ok()?;
    let saved = std::fs::read_to_string(notebook).ok();
    if saved.as_deref() == Some(text.as_str()) {
        // Nothing to recover: the copy says what the file says.
        remove(notebook);
        return None;
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(&copy), modified(notebook)) {
        (Some(copy), Some(saved)) if copy < saved => None,
        _ => Some(text),
    }
}

/// Removes the autosave copy of `notebook`, if there is one.
pub fn remove(notebook: &Path) {
    // Already gone is what we want; any other failure leaves a copy that is offered later.
    let _ = std::fs::remove_file(path_for(notebook));
}

/// When the next copy is due, and what the last one held.
#[derive(Debug)]
pub struct Autosave {
    every: Duration,
    /// When the notebook was last copied, or first seen dirty since.
    since: Option<Instant>,
    /// The text last written, so an unchanged notebook is not written again.
    written: Option<String>,
}

impl Autosave {
    /// Copies unsaved changes every `every` (zero: on every frame that has new changes).
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            since: None,
            written: None,
        }
    }

    /// Called on each frame: writes `text` to the copy of `notebook` when it is dirty, changed
    /// since the last copy and the interval has passed. Returns how long until the next check
    /// is due while dirty (to ask for a repaint then), and the error of a failed write.
    pub fn tick(
        &mut self,
        notebook: &Path,
        dirty: bool,
        text: impl FnOnce() -> String,
    ) -> (Option<Duration>, Option<String>) {
        if !dirty {
            self.since = None;
            return (None, None);
        }
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        let elapsed = now.duration_since(since);
        if elapsed < self.every {
            return (Some(self.every - elapsed), None);
        }
        self.since = Some(now);
        let text = text();
        if self.written.as_deref() == Some(text.as_str()) {
            return (Some(self.every), None);
        }
        let error = cellar_engine::notebook::write_atomically(&path_for(notebook), text.as_bytes())
            .err()
            .map(|e| format!("Could not write the autosave copy: {e}"));
        if error.is_none() {
            self.written = Some(text);
        }
        (Some(self.every), error)
    }

    /// Another notebook was opened: its copy starts afresh (a copy it has is left alone).
    pub fn restart(&mut self) {
        self.since = None;
        self.written = None;
    }

    /// The changes were saved or discarded: the copy is gone and the next one starts afresh.
    pub fn reset(&mut self, notebook: &Path) {
        remove(notebook);
        self.since = None;
        self.written = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_sits_beside_the_notebook_hidden() {
        assert_eq!(
            path_for(Path::new("/a/b/tour.rhai")),
            Path::new("/a/b/.tour.rhai.autosave")
        );
        assert_eq!(
            path_for(Path::new("nb.rhai")),
            Path::new(".nb.rhai.autosave")
        );
    }

    #[test]
    fn writes_only_while_dirty_and_offers_only_a_copy_that_differs() {
        let dir = tempfile::tempdir().unwrap();
        let nb = dir.path().join("nb.rhai");
        std::fs::write(&nb, "write(1);\n").unwrap();
        let mut autosave = Autosave::new(Duration::ZERO);
        autosave.tick(&nb, false, || {
            unreachable!("clean notebooks are not copied")
        });
        assert!(!path_for(&nb).exists());
        assert!(recoverable(&nb).is_none());
        let (_, error) = autosave.tick(&nb, true, || "write(2);\n".into());
        assert_eq!(error, None);
        assert_eq!(recoverable(&nb).as_deref(), Some("write(2);\n"));
        // The notebook saved with the same text: nothing to recover, and the copy goes.
        std::fs::write(&nb, "write(2);\n").unwrap();
        assert!(recoverable(&nb).is_none());
        assert!(!path_for(&nb).exists());
        autosave.tick(&nb, true, || "write(3);\n".into());
        autosave.reset(&nb);
        assert!(!path_for(&nb).exists());
    }
}
