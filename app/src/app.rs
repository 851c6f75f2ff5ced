//! The eframe app: toolbar, session tabs, the notebook, the cache panel and the status bar.
//! Every interaction becomes an [`Action`]; runs happen on worker threads and the UI polls
//! them, so the window never waits for a script.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cellar_engine::cache::front::ClearScope;
use cellar_engine::{Cell, CellReport, Notebook, Runtime, Session, WidgetValue};
use egui::{Key, KeyboardShortcut, Modifiers, RichText};

use crate::actions::Action;
use crate::autosave::{self, Autosave};
use crate::cache_panel::CachePanel;
use crate::dialogs::{DialogAnswer, DialogPurpose, FileDialogs, NativeDialogs, PendingDialog};
use crate::notebook_view::NotebookView;
use crate::recent::RecentFiles;
use crate::sessions::{RunRequest, SessionTab};
use crate::settings::{self, Settings};
use crate::theme::{self, ThemeChoice};
use crate::toolbar::{self, StatusModel, ToolbarModel};

/// The app icon, drawn by `cargo run -p cellar --example make_icon`.
const ICON_PNG: &[u8] = include_bytes!("../../assets/icon.png");

/// Opens the window on `path`.
pub fn open_window(path: PathBuf) -> anyhow::Result<()> {
    let mut app = NotebookApp::open(&path)?
        .with_autosave(autosave::EVERY)
        .with_settings(Settings::from_config_dir());
    app.recent = RecentFiles::from_config_dir();
    app.recent.touch(&path);
    // For screenshots and demos: start with the cache panel open.
    app.show_cache_panel = std::env::var_os("CELLAR_SHOW_CACHE_PANEL").is_some_and(|v| v != "0");
    // For screenshots and demos: `CELLAR_WINDOW_SIZE=1024x700`.
    let size = std::env::var("CELLAR_WINDOW_SIZE")
        .ok()
        .and_then(|v| {
            let (w, h) = v.split_once('x')?;
            Some([w.trim().parse().ok()?, h.trim().parse().ok()?])
        })
        .unwrap_or([1280.0, 860.0]);
    let mut viewport = egui::ViewportBuilder::default()
        .with_title(app.window_title())
        .with_app_id("cellar")
        .with_inner_size(size)
        .with_min_inner_size([640.0, 400.0]);
    match eframe::icon_data::from_png_bytes(ICON_PNG) {
        Ok(icon) => viewport = viewport.with_icon(icon),
        Err(err) => eprintln!("cellar: the app icon could not be read: {err}"),
    }
    let options = eframe::NativeOptions {
        viewport,
        ..Default::default()
    };
    eframe::run_native(
        "Cellar",
        options,
        Box::new(move |cc| {
            let mut app = app;
            app.start_run(Some(cc.egui_ctx.clone()));
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("could not open a window: {e}"))
}

/// The narrowest the cache panel gets.
const CACHE_PANEL_MIN: f32 = 300.0;
/// The largest share of the window the cache panel takes.
const CACHE_PANEL_MAX_SHARE: f32 = 0.45;

/// A question the user must answer before something irreversible happens.
#[derive(Clone, Debug, PartialEq)]
enum Confirm {
    ClearCaches,
    DeleteCell(usize),
    /// Open another notebook although this one has unsaved changes: save, discard or cancel.
    UnsavedBeforeOpen(PathBuf),
    /// Close the window although the notebook has unsaved changes: save, discard or cancel.
    UnsavedBeforeClose,
    /// An autosave copy newer than the notebook was found: recover it (its text) or discard it.
    Recover(String),
}

/// The path field shown instead of a file dialog that could not open.
#[derive(Clone, Debug)]
struct PathPrompt {
    purpose: DialogPurpose,
    /// The path typed so far.
    text: String,
    /// Why the file dialog could not open.
    why: String,
    /// What went wrong with the last path tried.
    error: Option<String>,
}

/// What the user answered to a [`Confirm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// Go ahead (clear, delete, recover).
    Yes,
    /// Save the changes first.
    Save,
    /// Let the changes (or the autosave copy) go.
    Discard,
    /// Do nothing.
    Cancel,
}

/// A path's file name, for questions.
fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A deleted cell, kept so Undo can bring it back where it was.
struct DeletedCell {
    index: usize,
    cell: Cell,
    /// Its id in the window (its editor's undo history, its focus).
    id: u64,
    /// What it showed in each session tab, by the tab's name.
    views: Vec<(String, Option<crate::sessions::CellView>)>,
    /// `cell 2 (Plot)`, as it was called where it was.
    label: String,
}

/// How many deleted cells Undo can bring back.
const UNDO_DEPTH: usize = 20;

/// The state of the notebook window.
pub struct NotebookApp {
    runtime: Arc<Runtime>,
    path: PathBuf,
    notebook: Notebook,
    dirty: bool,
    /// Bumped by every add, delete and move, so reports of runs that started before are not
    /// filed under the wrong cell.
    layout: u64,
    /// Each cell's id for as long as the window is open, in cell order (the view keys each
    /// cell's widgets by it).
    cell_ids: Vec<u64>,
    next_cell_id: u64,
    /// Deleted cells, the last one last: Undo (Ctrl+Z) brings them back.
    deleted: Vec<DeletedCell>,
    /// The keyboard shortcuts are shown (F1, `?`).
    show_help: bool,
    tabs: Vec<SessionTab>,
    active: usize,
    view: NotebookView,
    dialogs: Arc<dyn FileDialogs>,
    pending_dialog: Option<PendingDialog>,
    /// A path field in place of a file dialog that could not open.
    path_prompt: Option<PathPrompt>,
    recent: RecentFiles,
    confirm: Option<Confirm>,
    show_cache_panel: bool,
    cache_panel: CachePanel,
    /// The width the user dragged the cache panel to (remembered in `settings`).
    cache_panel_wanted: Option<f32>,
    cache_panel_rect: Option<egui::Rect>,
    settings: Settings,
    theme: ThemeChoice,
    theme_applied: bool,
    shown_title: String,
    message: Option<(String, bool)>,
    cache_totals: (u64, usize),
    repaint: Option<egui::Context>,
    /// The autosave copy's timing; `None` when autosave is off (tests, unless they ask).
    autosave: Option<Autosave>,
    /// The app has told the window to close (the unsaved changes were answered for).
    closing: bool,
    /// Closed tabs whose sessions wait for their runs to stop before they are closed.
    closing_tabs: Vec<SessionTab>,
    /// The runtime was ended (the window closed).
    shut_down: bool,
}

impl NotebookApp {
    /// Loads the notebook at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let notebook = Notebook::load(path).map_err(|e| {
            anyhow::anyhow!(
                "{e}; pass the path of a .rhai notebook, e.g. `cellar samples/tour.rhai`"
            )
        })?;
        Ok(Self::new(path.to_path_buf(), notebook))
    }

    /// An app on an already parsed notebook, with native file dialogs and an in-memory
    /// recent-files list.
    pub fn new(path: PathBuf, notebook: Notebook) -> Self {
        let cells = notebook.cells.len();
        Self {
            runtime: Arc::new(Runtime::new()),
            path,
            notebook,
            dirty: false,
            layout: 0,
            cell_ids: (0..cells as u64).collect(),
            next_cell_id: cells as u64,
            deleted: Vec::new(),
            show_help: false,
            tabs: vec![SessionTab::new(Session::name_for(0), cells)],
            active: 0,
            view: NotebookView::default(),
            dialogs: Arc::new(NativeDialogs),
            pending_dialog: None,
            path_prompt: None,
            recent: RecentFiles::in_memory(),
            confirm: None,
            show_cache_panel: false,
            cache_panel: CachePanel::new(),
            cache_panel_wanted: None,
            cache_panel_rect: None,
            settings: Settings::in_memory(),
            theme: ThemeChoice::System,
            theme_applied: false,
            shown_title: String::new(),
            message: None,
            cache_totals: (0, 0),
            repaint: None,
            autosave: None,
            closing: false,
            closing_tabs: Vec::new(),
            shut_down: false,
        }
    }

    /// Copies unsaved changes beside the notebook every `every` (zero: on every frame with
    /// new changes), and offers to recover a copy an earlier session left behind.
    pub fn with_autosave(mut self, every: Duration) -> Self {
        self.autosave = Some(Autosave::new(every));
        self.offer_recovery();
        self
    }

    /// Asks whether to recover the notebook's autosave copy, when one newer than the notebook
    /// is there.
    fn offer_recovery(&mut self) {
        if self.autosave.is_some()
            && let Some(text) = autosave::recoverable(&self.path)
        {
            self.confirm = Some(Confirm::Recover(text));
        }
    }

    /// Keeps the recent-files list in `recent` (the window uses the one in the config folder).
    pub fn with_recent(mut self, recent: RecentFiles) -> Self {
        self.recent = recent;
        self
    }

    /// Uses `dialogs` for Open and Save as (tests pass a fake).
    pub fn with_dialogs(mut self, dialogs: Arc<dyn FileDialogs>) -> Self {
        self.dialogs = dialogs;
        self
    }

    /// The notebook's file name, for the title bar.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "notebook".into())
    }

    /// The window title: the notebook's name, with `•` when it has unsaved changes.
    pub fn window_title(&self) -> String {
        let dirty = if self.dirty { "• " } else { "" };
        format!("{dirty}{} — Cellar", self.file_name())
    }

    /// The notebook's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The notebook as edited.
    pub fn notebook(&self) -> &Notebook {
        &self.notebook
    }

    /// Whether there are unsaved changes.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The shared runtime.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The active session's name.
    pub fn active_session(&self) -> &str {
        &self.tabs[self.active].name
    }

    /// Whether the active session's run is in flight.
    pub fn is_running(&self) -> bool {
        self.tabs[self.active].is_running()
    }

    /// How many runs the active session has started.
    pub fn runs_started(&self) -> u64 {
        self.tabs[self.active].runs_started()
    }

    /// How many of the active session's runs were cancelled by a widget change.
    pub fn runs_superseded(&self) -> u64 {
        self.tabs[self.active].runs_superseded()
    }

    /// The active session's latest report of cell `index`.
    pub fn report(&self, index: usize) -> Option<&CellReport> {
        self.tabs[self.active]
            .outputs
            .get(index)
            .and_then(Option::as_ref)
            .map(|v| &v.report)
    }

    /// Starts a rerun of the active session (or queues one if it is running).
    pub fn start_run(&mut self, repaint: Option<egui::Context>) {
        if repaint.is_some() {
            self.repaint = repaint;
        }
        self.run_tab(self.active);
    }

    fn run_tab(&mut self, tab: usize) {
        // Cells deleted, or whose identity went with their code, leave the cache panel.
        self.runtime.retain_cells_of(&self.notebook);
        let request = RunRequest {
            runtime: &self.runtime,
            notebook: &self.notebook,
            notebook_dir: self.path.parent().map(Path::to_path_buf),
            layout: self.layout,
            repaint: self.repaint.clone(),
        };
        self.tabs[tab].start_run(request);
    }

    /// Stops the active session's run.
    pub fn stop(&mut self) {
        self.tabs[self.active].stop();
    }

    /// Applies a widget value as if the user had changed it, and reruns.
    pub fn set_widget(&mut self, label: &str, value: WidgetValue) {
        self.apply(Action::Widget((label.to_string(), value)));
    }

    /// Closes, in the runtime, the sessions of closed tabs whose runs have ended: their
    /// `scope = "session"` entries go and their resources are released.
    fn close_idle_sessions(&mut self) {
        let layout = self.layout;
        self.closing_tabs.retain_mut(|tab| {
            tab.poll(layout);
            match tab.take_idle_session() {
                Some(session) => {
                    self.runtime.close_session(&session);
                    false
                }
                None => tab.is_running(),
            }
        });
    }

    /// Ends the runtime as the window closes: runs are stopped (given a few seconds to come
    /// back), every session is closed, background refreshes end and each resource's
    /// `on_release` fn runs. Called once, from `on_exit` or when the app is dropped.
    fn shut_down(&mut self) {
        if self.shut_down {
            return;
        }
        self.shut_down = true;
        for tab in &mut self.tabs {
            tab.stop();
        }
        self.closing_tabs.append(&mut self.tabs);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !self.closing_tabs.is_empty() && std::time::Instant::now() < deadline {
            self.close_idle_sessions();
            std::thread::sleep(Duration::from_millis(2));
        }
        self.runtime.end_process();
    }

    /// Takes the workers' and dialogs' news into the view.
    pub fn poll(&mut self) {
        if !self.closing_tabs.is_empty() {
            self.close_idle_sessions();
        }
        for index in 0..self.tabs.len() {
            if self.tabs[index].poll(self.layout) {
                self.refresh_cache_totals();
            }
            if !self.tabs[index].is_running() && self.tabs[index].wants_rerun() {
                self.run_tab(index);
            }
        }
        if let Some(answer) = self.pending_dialog.as_ref().and_then(PendingDialog::poll) {
            let purpose = self
                .pending_dialog
                .take()
                .expect("an answer came from a pending dialog")
                .purpose;
            match (purpose, answer) {
                (DialogPurpose::Open, DialogAnswer::Picked(path)) => {
                    self.apply(Action::OpenPath(path))
                }
                (DialogPurpose::SaveAs, DialogAnswer::Picked(path)) => {
                    self.save_to(path);
                }
                (_, DialogAnswer::Cancelled) => {}
                (purpose, DialogAnswer::Unavailable(why)) => {
                    // Say so, and ask for the path in the window instead.
                    let text = match purpose {
                        DialogPurpose::Open => self
                            .path
                            .parent()
                            .filter(|d| !d.as_os_str().is_empty())
                            .map(|d| format!("{}/", d.display()))
                            .unwrap_or_default(),
                        DialogPurpose::SaveAs => self.path.display().to_string(),
                    };
                    self.message = Some((format!("No file dialog: {why}"), true));
                    self.path_prompt = Some(PathPrompt {
                        purpose,
                        text,
                        why,
                        error: None,
                    });
                }
            }
        }
    }

    /// Blocks until every run (and queued rerun) and any dialog is done. For tests and scripts;
    /// panics after two minutes rather than hanging a test run forever.
    pub fn wait_idle(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            self.poll();
            let busy = self.pending_dialog.is_some()
                || self.tabs.iter().any(|t| t.is_running() || t.wants_rerun());
            if !busy {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the notebook was still running after two minutes"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Draws the whole window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        if self.repaint.is_none() {
            self.repaint = Some(ctx.clone());
        }
        if !self.theme_applied {
            theme::apply(&ctx, self.theme);
            self.theme_applied = true;
        }
        self.poll();
        self.on_close_request(&ctx);
        self.autosave_tick(&ctx);
        let mut actions = self.shortcuts(&ctx);

        egui::Panel::top("toolbar")
            .frame(
                egui::Frame::side_top_panel(ui.style())
                    .inner_margin(egui::Margin::symmetric(10, 6)),
            )
            .show(ui, |ui| {
                let model = ToolbarModel {
                    file_name: &self.file_name(),
                    dirty: self.dirty,
                    running: self.is_running(),
                    sessions: self.tabs.iter().map(|t| t.name.as_str()).collect(),
                    active: self.active,
                    cache_panel: self.show_cache_panel,
                    theme: self.theme,
                    recent: &self.recent,
                };
                toolbar::toolbar(ui, &model, &mut actions);
            });
        egui::Panel::bottom("status")
            .frame(
                egui::Frame::side_top_panel(ui.style())
                    .inner_margin(egui::Margin::symmetric(10, 4)),
            )
            .show(ui, |ui| {
                let tab = &self.tabs[self.active];
                let model = StatusModel {
                    session: &tab.name,
                    last_run: tab.last_run,
                    running: tab.computing_cell().zip(tab.running_for()),
                    cache_bytes: self.cache_totals.0,
                    cache_entries: self.cache_totals.1,
                    message: self.message.as_ref().map(|(m, e)| (m.as_str(), *e)),
                    undo: self.deleted.last().map(|d| d.label.as_str()),
                };
                toolbar::status_bar(ui, &model, &mut actions);
            });
        let panel_rect = self.show_cache_panel.then(|| {
            // An exact width the app keeps (what the user dragged it to, bounded by the
            // window), so nothing drawn inside, a long filter or a wide table, can widen it.
            let width = self.cache_panel_width(ui.available_width());
            egui::Panel::right("cache_panel")
                .resizable(false)
                .exact_size(width)
                .show(ui, |ui| {
                    if self.cache_panel.ui(ui, &self.runtime) {
                        self.refresh_cache_totals();
                    }
                    if let Some(url) = self.cache_panel.take_store_change() {
                        self.settings.set_text(settings::CACHE_STORE, &url);
                    }
                })
                .response
                .rect
        });
        egui::CentralPanel::default().show(ui, |ui| {
            self.view
                .set_refreshing(self.runtime.cache().refreshing_functions());
            self.view.ui(
                ui,
                &mut self.notebook,
                &self.cell_ids,
                &self.tabs[self.active],
                &mut actions,
            );
        });
        if let Some(rect) = panel_rect {
            self.cache_panel_resize_handle(ui, rect);
        }
        self.cache_panel_rect = panel_rect;
        self.confirm_dialog(&ctx, &mut actions);
        self.path_prompt_dialog(&ctx);
        if self.show_help && !crate::help::help_window(&ctx) {
            self.show_help = false;
        }

        for action in actions {
            self.apply(action);
        }
        let title = self.window_title();
        if title != self.shown_title {
            ctx.send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.shown_title = title;
        }
        if self.tabs.iter().any(SessionTab::is_running) || self.pending_dialog.is_some() {
            // The spinner and the running time move even when the worker has nothing to say.
            ctx.request_repaint_after(Duration::from_millis(50));
        }
    }

    /// The cache panel's width in a window `window_width` wide: the width the user chose (or
    /// 40 % of the window, up to 600 points), never under [`CACHE_PANEL_MIN`] nor over
    /// [`CACHE_PANEL_MAX_SHARE`] of the window, so the notebook always keeps most of it.
    fn cache_panel_width(&self, window_width: f32) -> f32 {
        let max = (window_width * CACHE_PANEL_MAX_SHARE).max(CACHE_PANEL_MIN);
        let wanted = self
            .cache_panel_wanted
            .unwrap_or((window_width * 0.4).clamp(CACHE_PANEL_MIN, 600.0));
        wanted.clamp(CACHE_PANEL_MIN, max)
    }

    /// The panel's left edge: dragging it resizes the panel (remembered when let go).
    fn cache_panel_resize_handle(&mut self, ui: &egui::Ui, panel: egui::Rect) {
        let handle =
            egui::Rect::from_x_y_ranges(panel.left() - 4.0..=panel.left() + 4.0, panel.y_range());
        let response = ui.interact(
            handle,
            egui::Id::unique("cache_panel_resize"),
            egui::Sense::drag(),
        );
        if response.hovered() || response.dragged() {
            ui.ctx().set_cursor_icon(egui::CursorIcon::ResizeHorizontal);
            let stroke = ui.visuals().widgets.hovered.fg_stroke;
            ui.painter().vline(panel.left(), panel.y_range(), stroke);
        }
        if response.dragged()
            && let Some(pointer) = response.interact_pointer_pos()
        {
            let window = ui.ctx().content_rect().width();
            let wanted = panel.right() - pointer.x;
            let max = (window * CACHE_PANEL_MAX_SHARE).max(CACHE_PANEL_MIN);
            self.cache_panel_wanted = Some(wanted.clamp(CACHE_PANEL_MIN, max));
        }
        if response.drag_stopped()
            && let Some(width) = self.cache_panel_wanted
        {
            self.settings.set_number(settings::CACHE_PANEL_WIDTH, width);
        }
    }

    /// Where the cache panel was drawn on the last frame (`None` when it is hidden).
    pub fn cache_panel_rect(&self) -> Option<egui::Rect> {
        self.cache_panel_rect
    }

    /// Remembers the cache panel's width (and other window settings) in `settings`.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.cache_panel_wanted = settings.number(settings::CACHE_PANEL_WIDTH);
        // The store typed in the cache panel last time, unless the environment names one.
        if self.runtime.front().store().is_none()
            && std::env::var_os("CELLAR_CACHE_STORE").is_none()
            && let Some(url) = settings.text(settings::CACHE_STORE)
        {
            match cellar_engine::open_store(url) {
                Ok(store) => self.runtime.front().set_store(Some(store)),
                Err(problem) => self.message = Some((problem, true)),
            }
        }
        self.settings = settings;
        self
    }

    /// Shows or hides the cache panel.
    pub fn set_cache_panel(&mut self, shown: bool) {
        self.show_cache_panel = shown;
    }

    /// Keyboard shortcuts (the Help view lists them). Letters and Ctrl+Z only act when no
    /// text field has focus: a focused button or slider still lets R rerun.
    fn shortcuts(&mut self, ctx: &egui::Context) -> Vec<Action> {
        let typing = ctx.text_edit_focused();
        ctx.input_mut(|i| {
            let mut actions = Vec::new();
            if i.consume_key(Modifiers::NONE, Key::F1) {
                actions.push(Action::ToggleHelp);
            }
            // Taken before the editors are drawn, so Shift+Enter runs instead of adding a line.
            if i.consume_key(Modifiers::SHIFT, Key::Enter) {
                actions.push(Action::Run);
            }
            let save_as = KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
            if i.consume_shortcut(&save_as) {
                actions.push(Action::SaveAs);
            }
            if i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::S)) {
                actions.push(Action::Save);
            }
            if i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::O)) {
                actions.push(Action::Open);
            }
            if !typing && self.confirm.is_none() && self.path_prompt.is_none() {
                if i.consume_shortcut(&KeyboardShortcut::new(Modifiers::COMMAND, Key::Z)) {
                    actions.push(Action::UndoDelete);
                }
                if i.consume_key(Modifiers::NONE, Key::R) {
                    actions.push(Action::Run);
                }
                if i.consume_key(Modifiers::NONE, Key::C) {
                    actions.push(Action::AskClearCaches);
                }
            }
            actions
        })
    }

    /// The modal question, if one is open.
    fn confirm_dialog(&mut self, ctx: &egui::Context, actions: &mut Vec<Action>) {
        let Some(confirm) = self.confirm.clone() else {
            return;
        };
        let unsaved = || format!("{} has unsaved changes. Save them first?", self.file_name());
        // The answers, the first one also taken by Enter; `None` is Cancel.
        let (question, detail, answers): (String, String, Vec<(&str, Answer)>) = match &confirm {
            Confirm::ClearCaches => (
                "Clear all caches?".to_string(),
                "Every @cache_data and @cache_resource entry and every cached cell is dropped; \
                 the next run computes them again."
                    .to_string(),
                vec![("Clear caches", Answer::Yes)],
            ),
            Confirm::DeleteCell(index) => (
                format!("Delete cell {index}?"),
                self.notebook
                    .cells
                    .get(*index)
                    .map(|c| c.label(*index))
                    .unwrap_or_default()
                    + " and its code are removed from the notebook.",
                vec![("Delete", Answer::Yes)],
            ),
            Confirm::UnsavedBeforeOpen(path) => (
                format!("Save changes before opening {}?", display_name(path)),
                unsaved(),
                vec![("Save", Answer::Save), ("Discard", Answer::Discard)],
            ),
            Confirm::UnsavedBeforeClose => (
                format!("Save changes to {} before closing?", self.file_name()),
                unsaved(),
                vec![("Save", Answer::Save), ("Discard", Answer::Discard)],
            ),
            Confirm::Recover(_) => (
                "Recover unsaved changes?".to_string(),
                format!(
                    "{} has changes that were never saved (Cellar closed without saving them). \
                     Recover them, or keep the notebook as it was saved?",
                    self.file_name()
                ),
                vec![("Recover", Answer::Yes), ("Discard", Answer::Discard)],
            ),
        };
        let mut answer = None;
        let modal = egui::Modal::new(egui::Id::unique("cellar_confirm")).show(ctx, |ui| {
            ui.set_max_width(400.0);
            ui.label(RichText::new(question).strong().size(16.0));
            ui.add_space(4.0);
            ui.label(detail);
            ui.add_space(10.0);
            ui.horizontal(|ui| {
                for (i, (label, meaning)) in answers.iter().enumerate() {
                    let enter = i == 0 && ui.input(|i| i.key_pressed(Key::Enter));
                    if ui.button(*label).clicked() || enter {
                        answer = Some(*meaning);
                    }
                }
                if ui.button("Cancel").clicked() {
                    answer = Some(Answer::Cancel);
                }
            });
        });
        if modal.should_close() && answer.is_none() {
            answer = Some(Answer::Cancel);
        }
        let Some(answer) = answer else {
            return;
        };
        self.confirm = None;
        match (confirm, answer) {
            (_, Answer::Cancel) => {}
            (Confirm::ClearCaches, _) => actions.push(Action::ClearCaches),
            (Confirm::DeleteCell(index), _) => actions.push(Action::DeleteCell(index)),
            (Confirm::UnsavedBeforeOpen(path), Answer::Save) => {
                if self.save_to(self.path.clone()) {
                    actions.push(Action::OpenPath(path));
                }
            }
            (Confirm::UnsavedBeforeOpen(path), _) => {
                self.discard_changes();
                actions.push(Action::OpenPath(path));
            }
            (Confirm::UnsavedBeforeClose, Answer::Save) => {
                if self.save_to(self.path.clone()) {
                    self.close_window(ctx);
                }
            }
            (Confirm::UnsavedBeforeClose, _) => {
                self.discard_changes();
                self.close_window(ctx);
            }
            (Confirm::Recover(text), Answer::Yes) => self.recover(&text),
            (Confirm::Recover(_), _) => autosave::remove(&self.path),
        }
    }

    /// The path field that stands in for a file dialog that could not open.
    fn path_prompt_dialog(&mut self, ctx: &egui::Context) {
        let Some(prompt) = &mut self.path_prompt else {
            return;
        };
        let (title, go) = match prompt.purpose {
            DialogPurpose::Open => ("Open a notebook", "Open"),
            DialogPurpose::SaveAs => ("Save the notebook as", "Save"),
        };
        let mut submit = false;
        let mut cancel = false;
        let modal = egui::Modal::new(egui::Id::unique("cellar_path_prompt")).show(ctx, |ui| {
            ui.set_max_width(460.0);
            ui.label(RichText::new(title).strong().size(16.0));
            ui.add_space(4.0);
            ui.label(format!(
                "No file dialog can open here: {}. Type the notebook's path instead.",
                prompt.why
            ));
            ui.add_space(6.0);
            let field = ui
                .add(
                    egui::TextEdit::singleline(&mut prompt.text)
                        .desired_width(f32::INFINITY)
                        .hint_text("path/to/notebook.rhai"),
                )
                .accessible_name("Notebook path");
            if !field.has_focus() && !field.lost_focus() {
                field.request_focus();
            }
            if field.lost_focus() && ui.input(|i| i.key_pressed(Key::Enter)) {
                submit = true;
            }
            if let Some(error) = &prompt.error {
                ui.label(RichText::new(error).color(ui.visuals().error_fg_color));
            }
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                if ui.button(go).clicked() {
                    submit = true;
                }
                if ui.button("Cancel").clicked() {
                    cancel = true;
                }
            });
        });
        if cancel || (modal.should_close() && !submit) {
            self.path_prompt = None;
            return;
        }
        if !submit {
            return;
        }
        let path = PathBuf::from(prompt.text.trim());
        match prompt.purpose {
            DialogPurpose::Open if path.is_file() => {
                self.path_prompt = None;
                self.apply(Action::OpenPath(path));
            }
            DialogPurpose::Open => {
                prompt.error = Some(format!("There is no file at {}.", path.display()));
            }
            DialogPurpose::SaveAs if path.as_os_str().is_empty() || path.is_dir() => {
                prompt.error = Some("Type a file name, e.g. notebook.rhai.".into());
            }
            DialogPurpose::SaveAs => {
                if self.save_to(path) {
                    self.path_prompt = None;
                } else if let (Some(prompt), Some((message, _))) =
                    (&mut self.path_prompt, &self.message)
                {
                    prompt.error = Some(message.clone());
                }
            }
        }
    }

    /// Lets go of the unsaved changes (the user said so): the autosave copy goes too.
    fn discard_changes(&mut self) {
        self.dirty = false;
        if let Some(autosave) = &mut self.autosave {
            autosave.reset(&self.path);
        }
    }

    /// Replaces the notebook with the text of its autosave copy, unsaved until the user saves.
    fn recover(&mut self, text: &str) {
        let notebook = Notebook::parse(text);
        for tab in &mut self.tabs {
            tab.stop();
            tab.reset_outputs(notebook.cells.len());
        }
        self.notebook = notebook;
        self.notebook.renumber();
        self.reset_cells();
        self.dirty = true;
        self.layout += 1;
        self.message = Some(("Recovered the unsaved changes".into(), false));
        self.start_run(None);
    }

    /// Closes the window for good (the user has answered for the unsaved changes).
    fn close_window(&mut self, ctx: &egui::Context) {
        self.closing = true;
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }

    /// Whether the app has told the window to close.
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The window's close button: with unsaved changes, ask first.
    fn on_close_request(&mut self, ctx: &egui::Context) {
        if !ctx.input(|i| i.viewport().close_requested()) || self.closing {
            return;
        }
        if self.dirty {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm = Some(Confirm::UnsavedBeforeClose);
        } else {
            self.closing = true;
        }
    }

    /// Writes the autosave copy when it is due; asks for a frame when the next one will be.
    fn autosave_tick(&mut self, ctx: &egui::Context) {
        let Some(autosave) = &mut self.autosave else {
            return;
        };
        let notebook = &self.notebook;
        let (next, error) = autosave.tick(&self.path, self.dirty, || notebook.to_text());
        if let Some(error) = error {
            self.message = Some((error, true));
        }
        if let Some(next) = next {
            ctx.request_repaint_after(next);
        }
    }

    /// Carries out one action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Run => self.start_run(None),
            Action::Stop => self.stop(),
            Action::Open => self.show_dialog(DialogPurpose::Open),
            Action::SaveAs => self.show_dialog(DialogPurpose::SaveAs),
            Action::OpenPath(path) if self.dirty => {
                self.confirm = Some(Confirm::UnsavedBeforeOpen(path))
            }
            Action::OpenPath(path) => self.load(&path),
            Action::Save => {
                self.save_to(self.path.clone());
            }
            Action::AskClearCaches => self.confirm = Some(Confirm::ClearCaches),
            Action::ClearCaches => {
                // Every tier, as the dialog says, and the released resources' on_release fns.
                let cleared = self.runtime.clear(ClearScope::All);
                self.refresh_cache_totals();
                self.message = Some((format!("Cleared {cleared} cached entries"), false));
            }
            Action::NewSession => {
                let name = Session::name_for(self.tabs.len());
                self.tabs
                    .push(SessionTab::new(name, self.notebook.cells.len()));
                self.active = self.tabs.len() - 1;
                // A new session starts with a run, like a new browser tab on a Streamlit app.
                self.start_run(None);
            }
            Action::SelectSession(index) if index < self.tabs.len() => self.active = index,
            Action::CloseSession(index) if index < self.tabs.len() && self.tabs.len() > 1 => {
                let mut tab = self.tabs.remove(index);
                tab.stop();
                // Its session comes back from the worker (if a run holds it) before it is
                // closed in the runtime; `poll` finishes the job.
                self.closing_tabs.push(tab);
                if self.active > index || self.active == self.tabs.len() {
                    self.active -= 1;
                }
                self.close_idle_sessions();
            }
            Action::CloseSession(_) => {}
            Action::SelectSession(_) => {}
            Action::ToggleCachePanel => self.show_cache_panel = !self.show_cache_panel,
            Action::CycleTheme => {
                self.theme = self.theme.next();
                self.theme_applied = false;
            }
            Action::AddCell(index) => {
                let index = index.min(self.notebook.cells.len());
                self.notebook.cells.insert(index, Cell::new("", "\n"));
                let id = self.new_cell_id();
                self.cell_ids.insert(index, id);
                self.tabs.iter_mut().for_each(|t| t.insert_cell(index));
                self.edited_layout();
                // Ready to type in, and in view however far down it is.
                self.view.focus_cell(id);
            }
            Action::AskDeleteCell(index) => {
                let empty = self
                    .notebook
                    .cells
                    .get(index)
                    .is_some_and(|c| c.source.trim().is_empty());
                // An empty cell holds nothing to lose: delete it without asking.
                if empty {
                    self.apply(Action::DeleteCell(index));
                } else {
                    self.confirm = Some(Confirm::DeleteCell(index));
                }
            }
            Action::DeleteCell(index) if index < self.notebook.cells.len() => {
                let cell = self.notebook.cells.remove(index);
                let label = cell.label(index);
                let id = self.cell_ids.remove(index);
                let views = self
                    .tabs
                    .iter_mut()
                    .map(|t| (t.name.clone(), t.remove_cell(index)))
                    .collect();
                self.message = Some((format!("Deleted {label}."), false));
                self.deleted.push(DeletedCell {
                    index,
                    cell,
                    id,
                    views,
                    label,
                });
                if self.deleted.len() > UNDO_DEPTH {
                    self.deleted.remove(0);
                }
                self.edited_layout();
            }
            Action::DeleteCell(_) => {}
            Action::UndoDelete => {
                if let Some(deleted) = self.deleted.pop() {
                    let index = deleted.index.min(self.notebook.cells.len());
                    self.notebook.cells.insert(index, deleted.cell);
                    self.cell_ids.insert(index, deleted.id);
                    let mut views = deleted.views;
                    for tab in &mut self.tabs {
                        let view = views
                            .iter_mut()
                            .find(|(name, _)| *name == tab.name)
                            .and_then(|(_, view)| view.take());
                        tab.restore_cell(index, view);
                    }
                    self.message = Some((format!("Brought back {}.", deleted.label), false));
                    self.edited_layout();
                    self.view.focus_cell(deleted.id);
                }
            }
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::MoveUp(index) if index > 0 && index < self.notebook.cells.len() => {
                self.swap_cells(index - 1, index);
            }
            Action::MoveDown(index) if index + 1 < self.notebook.cells.len() => {
                self.swap_cells(index, index + 1);
            }
            Action::MoveUp(_) | Action::MoveDown(_) => {}
            Action::RenameCell(index, title) => {
                if let Some(cell) = self.notebook.cells.get_mut(index) {
                    cell.set_title(title);
                    self.dirty = true;
                }
            }
            Action::Widget(change) => {
                // Cancels a run in flight; the rerun starts when the cancel has taken hold.
                self.tabs[self.active].widget_changed(change);
                self.start_run(None);
            }
            Action::CodeEdited => {
                self.dirty = true;
                self.notebook.renumber();
            }
        }
    }

    fn swap_cells(&mut self, a: usize, b: usize) {
        self.notebook.cells.swap(a, b);
        self.cell_ids.swap(a, b);
        self.tabs.iter_mut().for_each(|t| t.swap_cells(a, b));
        self.edited_layout();
    }

    /// An id no cell of this window has had.
    fn new_cell_id(&mut self) -> u64 {
        self.next_cell_id += 1;
        self.next_cell_id - 1
    }

    /// A new notebook replaces the cells: new ids, nothing to undo.
    fn reset_cells(&mut self) {
        let ids: Vec<u64> = (0..self.notebook.cells.len())
            .map(|_| self.new_cell_id())
            .collect();
        self.cell_ids = ids;
        self.deleted.clear();
    }

    fn edited_layout(&mut self) {
        self.layout += 1;
        self.dirty = true;
        self.notebook.renumber();
    }

    fn show_dialog(&mut self, purpose: DialogPurpose) {
        if self.pending_dialog.is_some() {
            return;
        }
        let repaint = self.repaint.clone();
        self.pending_dialog = Some(PendingDialog::start(
            self.dialogs.clone(),
            purpose,
            self.path.clone(),
            move || {
                if let Some(ctx) = &repaint {
                    ctx.request_repaint();
                }
            },
        ));
    }

    /// Replaces the notebook with the one at `path` and runs it.
    fn load(&mut self, path: &Path) {
        match Notebook::load(path) {
            Ok(notebook) => {
                for tab in &mut self.tabs {
                    tab.stop();
                    tab.reset_outputs(notebook.cells.len());
                }
                self.notebook = notebook;
                self.reset_cells();
                self.path = path.to_path_buf();
                self.dirty = false;
                self.layout += 1;
                self.recent.touch(path);
                self.message = Some((format!("Opened {}", path.display()), false));
                if let Some(autosave) = &mut self.autosave {
                    autosave.restart();
                }
                self.offer_recovery();
                self.start_run(None);
            }
            Err(err) => {
                self.recent.forget(path);
                self.message = Some((format!("Could not open: {err}"), true));
            }
        }
    }

    /// Saves the notebook (atomically) to `path`, which becomes its path; true when saved.
    fn save_to(&mut self, path: PathBuf) -> bool {
        match self.notebook.save(&path) {
            Ok(()) => {
                self.message = Some((format!("Saved {}", path.display()), false));
                self.recent.touch(&path);
                // The copy of the old path's changes is saved now, wherever it went.
                if let Some(autosave) = &mut self.autosave {
                    autosave.reset(&self.path);
                }
                self.path = path;
                self.dirty = false;
                true
            }
            Err(err) => {
                self.message = Some((format!("Could not save: {err}"), true));
                false
            }
        }
    }

    fn refresh_cache_totals(&mut self) {
        let stats = self.runtime.cache().stats();
        self.cache_totals = (
            // Every byte once (a frame a fn returned and its cell share their columns).
            self.runtime.cache().memory().unique,
            stats.iter().map(|s| s.entries).sum(),
        );
    }
}

impl eframe::App for NotebookApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        NotebookApp::ui(self, ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.shut_down();
    }
}

impl Drop for NotebookApp {
    fn drop(&mut self) {
        self.shut_down();
    }
}
