//! The eframe app: the notebook's cells with their code and outputs, rerun on a worker
//! thread after every widget change, like Streamlit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cellar_engine::{CellReport, Notebook, RunOptions, Runtime, Session, WidgetValue};
use egui::RichText;

use crate::outputs::{WidgetChange, show_element};
use crate::worker::{RunMessage, RunningJob};

/// Opens the window on `path`.
pub fn open_window(path: PathBuf) -> anyhow::Result<()> {
    let app = NotebookApp::open(&path)?;
    let title = format!("{} — Cellar", app.file_name());
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title(&title)
            .with_app_id("cellar")
            .with_inner_size([1200.0, 800.0]),
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

/// The state of the notebook window.
pub struct NotebookApp {
    runtime: Arc<Runtime>,
    path: PathBuf,
    notebook: Notebook,
    /// The session, or `None` while a run on the worker holds it.
    session: Option<Session>,
    /// Latest report per cell.
    outputs: Vec<Option<CellReport>>,
    job: Option<RunningJob>,
    /// A rerun asked for while a run was going: start it when that one ends.
    rerun_pending: bool,
    /// Widget changes to apply before the next run (the session is on the worker now).
    pending_widgets: Vec<WidgetChange>,
    last_run: Option<Duration>,
    repaint: Option<egui::Context>,
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

    /// An app on an already parsed notebook.
    pub fn new(path: PathBuf, notebook: Notebook) -> Self {
        let cells = notebook.cells.len();
        Self {
            runtime: Arc::new(Runtime::new()),
            path,
            notebook,
            session: Some(Session::new("A")),
            outputs: vec![None; cells],
            job: None,
            rerun_pending: false,
            pending_widgets: Vec::new(),
            last_run: None,
            repaint: None,
        }
    }

    /// The notebook's file name, for the title bar.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "notebook".into())
    }

    /// Whether a run is in flight.
    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Latest outputs, per cell.
    pub fn outputs(&self) -> &[Option<CellReport>] {
        &self.outputs
    }

    /// Starts a rerun (or queues one if a run is going).
    pub fn start_run(&mut self, repaint: Option<egui::Context>) {
        if repaint.is_some() {
            self.repaint = repaint;
        }
        let Some(mut session) = self.session.take() else {
            self.rerun_pending = true;
            return;
        };
        for (label, value) in self.pending_widgets.drain(..) {
            session.set_widget(label, value);
        }
        let options = RunOptions {
            notebook_dir: self.path.parent().map(Path::to_path_buf),
            ..RunOptions::default()
        };
        let ctx = self.repaint.clone();
        self.job = Some(RunningJob::start(
            self.runtime.clone(),
            self.notebook.clone(),
            session,
            options,
            move || {
                if let Some(ctx) = &ctx {
                    ctx.request_repaint();
                }
            },
        ));
    }

    /// Stops the run in flight.
    pub fn stop(&mut self) {
        if let Some(job) = &self.job {
            job.stop();
        }
    }

    /// Takes the worker's messages into the view.
    pub fn poll(&mut self) {
        let Some(job) = &self.job else { return };
        for message in job.poll() {
            match message {
                RunMessage::Cell(report) => {
                    let index = report.index;
                    if index < self.outputs.len() {
                        self.outputs[index] = Some(report);
                    }
                }
                RunMessage::Done(report, session) => {
                    self.last_run = Some(report.duration);
                    self.session = Some(*session);
                    self.job = None;
                }
            }
        }
        if self.job.is_none() && (self.rerun_pending || !self.pending_widgets.is_empty()) {
            self.rerun_pending = false;
            self.start_run(None);
        }
    }

    /// Blocks until the current run (and any queued rerun) is done. For tests and scripts.
    pub fn wait_idle(&mut self) {
        while self.job.is_some() {
            self.poll();
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Applies a widget value as if the user had changed it, and reruns.
    pub fn set_widget(&mut self, label: &str, value: WidgetValue) {
        self.pending_widgets.push((label.to_string(), value));
        self.start_run(None);
    }

    /// Draws the whole window.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        self.poll();
        if ui.input(|i| i.key_pressed(egui::Key::R)) && !ui.ctx().egui_wants_keyboard_input() {
            self.start_run(None);
        }
        egui::Panel::top("toolbar").show(ui, |ui| self.toolbar(ui));
        let mut changes = Vec::new();
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    ui.set_max_width(1000.0);
                    for index in 0..self.notebook.cells.len() {
                        self.cell_ui(ui, index, &mut changes);
                        ui.add_space(10.0);
                    }
                });
        });
        if !changes.is_empty() {
            self.pending_widgets.extend(changes);
            self.start_run(None);
        }
        if self.job.is_some() {
            ui.ctx().request_repaint_after(Duration::from_millis(50));
        }
    }

    fn toolbar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(self.file_name()).strong().size(16.0));
            ui.separator();
            if ui
                .button("Rerun")
                .on_hover_text("Run every cell again (R)")
                .clicked()
            {
                self.start_run(None);
            }
            let running = self.is_running();
            if ui.add_enabled(running, egui::Button::new("Stop")).clicked() {
                self.stop();
            }
            ui.separator();
            if running {
                ui.spinner();
                ui.label("running…");
            } else if let Some(took) = self.last_run {
                ui.label(
                    RichText::new(format!("last run {:.1} ms", took.as_secs_f64() * 1e3)).weak(),
                );
            }
        });
    }

    fn cell_ui(&mut self, ui: &mut egui::Ui, index: usize, changes: &mut Vec<WidgetChange>) {
        let cell = &self.notebook.cells[index];
        let report = self.outputs.get(index).and_then(Option::as_ref);
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("[{index}]")).monospace().weak());
                let title = if cell.title.is_empty() {
                    "untitled".to_string()
                } else {
                    cell.title.clone()
                };
                ui.label(RichText::new(title).strong());
                match report {
                    Some(r) if r.error.is_some() => {
                        ui.label(RichText::new("error").color(ui.visuals().error_fg_color));
                    }
                    Some(r) => {
                        ui.label(
                            RichText::new(format!(
                                "ran in {:.1} ms",
                                r.duration.as_secs_f64() * 1e3
                            ))
                            .weak(),
                        );
                    }
                    None if self.job.is_some() => {
                        ui.spinner();
                    }
                    None => {}
                }
            });
            egui::CollapsingHeader::new(RichText::new("code").small())
                .id_salt(("code", index))
                .default_open(false)
                .show(ui, |ui| {
                    ui.label(RichText::new(cell.source.trim_end()).monospace());
                });
            if let Some(report) = report {
                for (i, element) in report.elements.iter().enumerate() {
                    show_element(ui, (index, i), element, changes);
                }
            }
        });
    }
}

impl eframe::App for NotebookApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        NotebookApp::ui(self, ui);
    }
}
