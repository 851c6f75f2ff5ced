//! File dialogs behind a trait. A native dialog can block for as long as the user looks at it,
//! so it is always called on its own thread and the UI polls for the answer; tests swap in a
//! fake that answers at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

/// Picks files to open and places to save.
pub trait FileDialogs: Send + Sync {
    /// Asks for a notebook to open; `None` when the user cancelled.
    fn pick_open(&self) -> Option<PathBuf>;
    /// Asks where to save, starting from `suggested`; `None` when the user cancelled.
    fn pick_save(&self, suggested: &Path) -> Option<PathBuf>;
}

/// The native dialogs, through rfd.
pub struct NativeDialogs;

impl FileDialogs for NativeDialogs {
    fn pick_open(&self) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title("Open a notebook")
            .add_filter("Rhai notebook", &["rhai"])
            .add_filter("All files", &["*"])
            .pick_file()
    }

    fn pick_save(&self, suggested: &Path) -> Option<PathBuf> {
        let mut dialog = rfd::FileDialog::new()
            .set_title("Save the notebook as")
            .add_filter("Rhai notebook", &["rhai"]);
        if let Some(dir) = suggested.parent().filter(|d| !d.as_os_str().is_empty()) {
            dialog = dialog.set_directory(dir);
        }
        if let Some(name) = suggested.file_name() {
            dialog = dialog.set_file_name(name.to_string_lossy());
        }
        dialog.save_file()
    }
}

/// What a dialog was opened for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogPurpose {
    /// Open a notebook.
    Open,
    /// Save the notebook under a new name.
    SaveAs,
}

/// A dialog showing on its own thread.
pub struct PendingDialog {
    /// What the answer is for.
    pub purpose: DialogPurpose,
    answer: Receiver<Option<PathBuf>>,
}

impl PendingDialog {
    /// Shows a dialog on a new thread; `wake` asks the UI to repaint when it is answered.
    pub fn start(
        dialogs: Arc<dyn FileDialogs>,
        purpose: DialogPurpose,
        suggested: PathBuf,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("cellar-dialog".into())
            .spawn(move || {
                let answer = match purpose {
                    DialogPurpose::Open => dialogs.pick_open(),
                    DialogPurpose::SaveAs => dialogs.pick_save(&suggested),
                };
                let _ = tx.send(answer);
                wake();
            })
            .expect("spawning a thread only fails when the OS is out of resources");
        Self {
            purpose,
            answer: rx,
        }
    }

    /// The answer if the user has answered: `Some(None)` means cancelled.
    pub fn poll(&self) -> Option<Option<PathBuf>> {
        match self.answer.try_recv() {
            Ok(answer) => Some(answer),
            // A dialog thread that died counts as a cancel rather than a dialog open forever.
            Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(None),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
        }
    }
}
