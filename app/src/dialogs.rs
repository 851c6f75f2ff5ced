//! File dialogs behind a trait. A native dialog can block for as long as the user looks at it,
//! so it is always called on its own thread and the UI polls for the answer; tests swap in a
//! fake that answers at once. Where no dialog can be shown (no desktop portal and no zenity,
//! as on a bare X server), the answer says so, and the window asks for a path instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

/// What a file dialog answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DialogAnswer {
    /// The user picked this path.
    Picked(PathBuf),
    /// The user closed the dialog without picking.
    Cancelled,
    /// No dialog could be shown; the text says why.
    Unavailable(String),
}

/// Picks files to open and places to save.
pub trait FileDialogs: Send + Sync {
    /// Asks for a notebook to open.
    fn pick_open(&self) -> DialogAnswer;
    /// Asks where to save, starting from `suggested`.
    fn pick_save(&self, suggested: &Path) -> DialogAnswer;
}

/// The native dialogs, through rfd (the desktop portal, or zenity).
pub struct NativeDialogs;

/// A dialog that "answers" faster than this never reached the screen: rfd reports a portal
/// and a zenity that both failed the way it reports a cancel, and nobody cancels a dialog
/// within a quarter of a second of it opening.
const TOO_FAST_FOR_A_PERSON: Duration = Duration::from_millis(250);

impl NativeDialogs {
    fn ask(pick: impl FnOnce() -> Option<PathBuf>) -> DialogAnswer {
        if let Some(why) = no_dialog_service() {
            return DialogAnswer::Unavailable(why);
        }
        let started = Instant::now();
        match pick() {
            Some(path) => DialogAnswer::Picked(path),
            None if started.elapsed() < TOO_FAST_FOR_A_PERSON => DialogAnswer::Unavailable(
                "the file dialog did not open (no desktop portal or zenity answered)".into(),
            ),
            None => DialogAnswer::Cancelled,
        }
    }
}

impl FileDialogs for NativeDialogs {
    fn pick_open(&self) -> DialogAnswer {
        Self::ask(|| {
            rfd::FileDialog::new()
                .set_title("Open a notebook")
                .add_filter("Rhai notebook", &["rhai"])
                .add_filter("All files", &["*"])
                .pick_file()
        })
    }

    fn pick_save(&self, suggested: &Path) -> DialogAnswer {
        let mut dialog = rfd::FileDialog::new()
            .set_title("Save the notebook as")
            .add_filter("Rhai notebook", &["rhai"]);
        if let Some(dir) = suggested.parent().filter(|d| !d.as_os_str().is_empty()) {
            dialog = dialog.set_directory(dir);
        }
        if let Some(name) = suggested.file_name() {
            dialog = dialog.set_file_name(name.to_string_lossy());
        }
        Self::ask(|| dialog.save_file())
    }
}

/// Why no file dialog can be shown here, if that is known before trying: on Linux rfd needs
/// the desktop portal (over the D-Bus session bus) or the `zenity` program.
fn no_dialog_service() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let zenity = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("zenity").is_file()));
    let session_bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        || std::env::var_os("XDG_RUNTIME_DIR")
            .is_some_and(|dir| Path::new(&dir).join("bus").exists());
    (!zenity && !session_bus).then(|| {
        "no file dialog service is running (no D-Bus session for the desktop portal, and no \
         zenity)"
            .to_string()
    })
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
    answer: Receiver<DialogAnswer>,
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

    /// The answer, once there is one.
    pub fn poll(&self) -> Option<DialogAnswer> {
        match self.answer.try_recv() {
            Ok(answer) => Some(answer),
            // A dialog thread that died (a panic in the dialog library) never showed a
            // dialog the user could answer.
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Some(DialogAnswer::Unavailable("the file dialog failed".into()))
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
        }
    }
}
