//! The cache panel: what the cache holds, what it evicted and why, and buttons to clear it.
//!
//! The app shows it in a resizable side panel:
//!
//! ```no_run
//! # fn panel(ui: &mut egui::Ui, runtime: &cellar_engine::Runtime) {
//! let mut panel = cellar::cache_panel::CachePanel::new();
//! if panel.ui(ui, runtime) {
//!     // Something was cleared: refresh the cells' status chips.
//! }
//! # }
//! ```
//!
//! Everything is read from the runtime's [`CacheRegistry`]: the event log is polled each
//! frame with `events_since` (only new events are copied), and the entries, counters and
//! size history are re-read when an event arrived or a second passed (ages and ttl count
//! down). The sections:
//!
//! - `entries`: the sortable, filterable table; `details`: the selected entry and its clears;
//! - totals per function and overall (here);
//! - `log`: the eviction log, colour-coded by cause;
//! - `plot`: bytes and entries over time with eviction markers.

mod details;
mod entries;
/// How the panel (and the status bar) write sizes, durations and rates.
pub mod format;
mod log;
mod plot;

use std::time::Duration;

use cellar_engine::Runtime;
use cellar_engine::cache::front::ClearScope;
use cellar_engine::cache::registry::HistoryPoint;
use cellar_engine::cache::{CacheKind, CacheRegistry, EntryInfo, FunctionStats, MemoryUse};
use egui::{CollapsingHeader, RichText};

use entries::EntriesView;
use log::EventLog;
use plot::PlotWindow;

/// How often (seconds of UI time) entries are re-read when no event arrived, so ages and
/// ttl countdowns move.
const REFRESH_EVERY_S: f64 = 1.0;

/// The cache panel's view state (sorting, filter, selection, plot window).
pub struct CachePanel {
    store: StoreView,
    entries: EntriesView,
    log: EventLog,
    plot_window: PlotWindow,
    snapshot: Snapshot,
    /// UI time of the last re-read; `None` before the first frame.
    refreshed_at: Option<f64>,
}

/// What the registry held at the last re-read.
#[derive(Default)]
struct Snapshot {
    entries: Vec<EntryInfo>,
    stats: Vec<FunctionStats>,
    history: Vec<HistoryPoint>,
    /// Every byte once, and how much of it entries share.
    memory: MemoryUse,
    /// The registry's clock at the re-read (a test's manual clock, in tests).
    now: Duration,
}

/// A clear the user asked for; applied after drawing, outside any borrow of the snapshot.
enum Clear {
    /// One entry, in every tier.
    Entry { function: String, key: u128 },
    /// Every entry of a function, and its files on disk.
    Function(String),
    /// Every entry of a kind (data: and the files of every data function).
    Kind(CacheKind),
}

impl Default for CachePanel {
    fn default() -> Self {
        Self::new()
    }
}

/// The shared store's section: its URL (typed here, remembered by the window) and whether it
/// answers.
#[derive(Default)]
struct StoreView {
    /// What the URL field holds.
    url: String,
    /// Filled from the store in use the first time the panel is drawn.
    seeded: bool,
    /// Why the last URL typed could not be used.
    problem: Option<String>,
    /// A URL the user connected to (or `""` to disconnect), for the window to remember.
    changed: Option<String>,
}

impl StoreView {
    fn ui(&mut self, ui: &mut egui::Ui, runtime: &Runtime) {
        let store = runtime.front().store();
        if !self.seeded {
            self.url = store.as_ref().map(|s| s.describe()).unwrap_or_default();
            self.seeded = true;
        }
        CollapsingHeader::new("Shared store")
            .id_salt("cache_panel_store_section")
            .default_open(store.is_some())
            .show(ui, |ui| {
                match &store {
                    Some(store) if store.healthy() => {
                        ui.label(format!("{} · answering", store.describe()));
                    }
                    Some(store) => {
                        ui.colored_label(
                            ui.visuals().warn_fg_color,
                            format!(
                                "{} · not answering: persist = \"shared\" entries stay on this machine",
                                store.describe()
                            ),
                        );
                    }
                    None => {
                        ui.label(
                            RichText::new(
                                "None: persist = \"shared\" entries stay on this machine. Give a redis:// URL to share them with your team.",
                            )
                            .weak(),
                        );
                    }
                }
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.url)
                            .hint_text("redis://HOST:6379/0")
                            .desired_width((ui.available_width() - 190.0).max(80.0)),
                    )
                    .accessible_name("Shared store address");
                    if ui
                        .button("Connect")
                        .on_hover_text("Use this store from now on (remembered)")
                        .clicked()
                    {
                        self.connect(runtime);
                    }
                    if store.is_some()
                        && ui
                            .button("Disconnect")
                            .on_hover_text("Keep every entry on this machine")
                            .clicked()
                    {
                        runtime.front().set_store(None);
                        self.url.clear();
                        self.problem = None;
                        self.changed = Some(String::new());
                    }
                });
                if let Some(problem) = &self.problem {
                    ui.colored_label(ui.visuals().error_fg_color, problem);
                }
            });
    }

    fn connect(&mut self, runtime: &Runtime) {
        let url = self.url.trim().to_string();
        match cellar_engine::open_store(&url).and_then(|store| {
            store
                .ping()
                .map(|()| store)
                .map_err(|e| format!("{e}; check the address and that Redis runs there"))
        }) {
            Ok(store) => {
                runtime.front().set_store(Some(store));
                self.problem = None;
                self.changed = Some(url);
            }
            Err(problem) => self.problem = Some(problem),
        }
    }
}

impl CachePanel {
    /// A store URL the user connected to since the last call (`""`: disconnected), for the
    /// window to remember.
    pub fn take_store_change(&mut self) -> Option<String> {
        self.store.changed.take()
    }

    /// A panel with nothing selected, sorted by function, showing every kind.
    pub fn new() -> Self {
        Self {
            store: StoreView::default(),
            entries: EntriesView::new(),
            log: EventLog::new(),
            plot_window: PlotWindow::TenMinutes,
            snapshot: Snapshot::default(),
            refreshed_at: None,
        }
    }

    /// Draws the panel for the runtime's cache; returns true when the user cleared something
    /// (so the app can refresh its cell status chips).
    pub fn ui(&mut self, ui: &mut egui::Ui, runtime: &Runtime) -> bool {
        let registry = runtime.cache();
        let time = ui.input(|i| i.time);
        let new_events = self.log.poll(registry);
        let stale = self
            .refreshed_at
            .is_none_or(|at| time - at >= REFRESH_EVERY_S || time < at);
        if new_events || stale {
            self.refresh(registry, time);
        }
        // Expired entries leave when someone looks: sweep them now, so the table and the log
        // show them leaving on time rather than at the next call of their function.
        if self
            .snapshot
            .entries
            .iter()
            .any(|e| e.ttl_left == Some(Duration::ZERO))
            && registry.sweep_expired() > 0
        {
            self.log.poll(registry);
            self.refresh(registry, time);
        }
        // Ages and ttl countdowns move even when nothing else happens.
        ui.ctx()
            .request_repaint_after(Duration::from_secs_f64(REFRESH_EVERY_S));

        let mut action = self.header_ui(ui);
        self.store.ui(ui, runtime);
        // The sections' bodies are indented a little, not the default 18 px: the tables need
        // the width.
        ui.spacing_mut().indent = 8.0;
        egui::ScrollArea::vertical()
            .id_salt("cache_panel_scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                CollapsingHeader::new("Entries")
                    .id_salt("cache_panel_entries_section")
                    .default_open(true)
                    .show(ui, |ui| {
                        let now = self.snapshot.now;
                        if let Some(a) = self.entries.ui(ui, &self.snapshot.entries, &self.log, now)
                        {
                            action = Some(a);
                        }
                    });
                CollapsingHeader::new("Totals per function")
                    .id_salt("cache_panel_totals_section")
                    .default_open(true)
                    .show(ui, |ui| totals_ui(ui, &self.snapshot.stats));
                CollapsingHeader::new("Eviction log")
                    .id_salt("cache_panel_log_section")
                    .default_open(true)
                    .show(ui, |ui| self.log.ui(ui, self.snapshot.now));
                CollapsingHeader::new("Size over time")
                    .id_salt("cache_panel_plot_section")
                    .default_open(true)
                    .show(ui, |ui| {
                        plot::ui(
                            ui,
                            &mut self.plot_window,
                            &self.snapshot.history,
                            self.snapshot.now,
                        )
                    });
            });

        let Some(action) = action else {
            return false;
        };
        apply(action, runtime);
        self.log.poll(registry);
        self.refresh(registry, time);
        true
    }

    fn refresh(&mut self, registry: &CacheRegistry, time: f64) {
        self.snapshot = Snapshot {
            entries: registry.entries(),
            stats: registry.stats(),
            history: registry.history(),
            memory: registry.memory(),
            now: registry.now(),
        };
        self.refreshed_at = Some(time);
        let live: std::collections::HashSet<(&str, &str)> = self
            .snapshot
            .entries
            .iter()
            .map(|e| (e.function.as_str(), e.key_short.as_str()))
            .collect();
        self.log
            .prune_miss_reasons(|function, key| live.contains(&(function, key)));
    }

    /// The overall totals and the clear-all buttons, always visible above the sections.
    fn header_ui(&self, ui: &mut egui::Ui) -> Option<Clear> {
        let stats = &self.snapshot.stats;
        let (entries, hits, misses) = stats.iter().fold((0, 0, 0), |t, s| {
            (t.0 + s.entries, t.1 + s.hits, t.2 + s.misses)
        });
        let memory = self.snapshot.memory;
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Cache").strong());
            let shared = if memory.shared > 0 {
                format!(" ({} shared)", format::bytes(memory.shared))
            } else {
                String::new()
            };
            ui.label(format!(
                "{entries} entries · {}{shared} · {hits} hits · {misses} misses · {} hit rate",
                format::bytes(memory.unique),
                format::hit_rate(hits, misses)
            ))
            .on_hover_text(
                "Every byte counted once: a frame a cached fn returned and the cell that holds it share their columns. The memory budget counts the same way; the Bytes of a function or an entry are what it references.",
            );
        });
        let mut action = None;
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Clear all data")
                .on_hover_text("Every @cache_data entry, in memory and on disk (cache_data_clear)")
                .clicked()
            {
                action = Some(Clear::Kind(CacheKind::Data));
            }
            if ui
                .button("Clear all resources")
                .on_hover_text("Every @cache_resource entry (cache_resource_clear)")
                .clicked()
            {
                action = Some(Clear::Kind(CacheKind::Resource));
            }
        });
        ui.separator();
        action
    }
}

/// The number columns of the totals and their widths (enough for the title and values like
/// `100%` or `455 KB`).
const TOTALS_COLUMNS: [(&str, f32); 6] = [
    ("Entries", 50.0),
    ("Hits", 36.0),
    ("Misses", 46.0),
    ("Hit rate", 54.0),
    ("Evicted", 50.0),
    ("Bytes", 56.0),
];
/// The column a narrow panel leaves out (hits and misses say it too).
const HIT_RATE: usize = 3;
/// The narrowest the totals' function column gets.
const TOTALS_FUNCTION_MIN: f32 = 80.0;
/// The gap between the totals' columns.
const TOTALS_SPACING: f32 = 6.0;

/// One row per function, then the overall totals. The function column takes the width the
/// numbers leave; a narrow panel leaves out the hit rate, and a narrower one scrolls sideways.
fn totals_ui(ui: &mut egui::Ui, stats: &[FunctionStats]) {
    use egui_extras::{Column, TableBuilder};
    if stats.is_empty() {
        ui.label(RichText::new("No cached function called yet.").weak());
        return;
    }
    let width = ui.available_width();
    let needed = |columns: &[usize]| {
        let numbers: f32 = columns.iter().map(|&i| TOTALS_COLUMNS[i].1).sum();
        numbers
            + TOTALS_FUNCTION_MIN
            + TOTALS_SPACING * (columns.len() + 1) as f32
            + entries::SCROLL_BAR_ROOM
    };
    let mut shown: Vec<usize> = (0..TOTALS_COLUMNS.len()).collect();
    if width < needed(&shown) {
        shown.retain(|&i| i != HIT_RATE);
    }
    let function_width = (TOTALS_FUNCTION_MIN + (width - needed(&shown)).max(0.0)).floor();
    let totals = stats.iter().fold((0, 0, 0, 0, 0), |t, s| {
        (
            t.0 + s.entries,
            t.1 + s.hits,
            t.2 + s.misses,
            t.3 + s.evictions,
            t.4 + s.bytes,
        )
    });
    ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
    egui::ScrollArea::horizontal()
        .id_salt("cache_panel_totals_h")
        .show(ui, |ui| {
            ui.spacing_mut().item_spacing.x = TOTALS_SPACING;
            let dark_mode = ui.visuals().dark_mode;
            let table = shown.iter().fold(
                TableBuilder::new(ui)
                    .id_salt("cache_panel_totals")
                    .striped(true)
                    .vscroll(false)
                    .column(Column::exact(function_width).clip(true)),
                |table, &i| table.column(Column::exact(TOTALS_COLUMNS[i].1).clip(true)),
            );
            table
                .header(20.0, |mut header| {
                    header.col(|ui| {
                        ui.label(RichText::new("Function").strong());
                    });
                    for &i in &shown {
                        header.col(|ui| {
                            ui.label(RichText::new(TOTALS_COLUMNS[i].0).strong());
                        });
                    }
                })
                .body(|mut body| {
                    // A cell with no entry left was deleted or edited away: no row of its
                    // own (its counts stay in "All").
                    let rows = stats
                        .iter()
                        .filter(|s| s.kind != CacheKind::Cell || s.entries > 0);
                    for s in rows {
                        body.row(20.0, |mut row| {
                            row.col(|ui| {
                                let name = RichText::new(&s.name)
                                    .color(format::kind_color(s.kind, dark_mode));
                                ui.add(egui::Label::new(name).truncate())
                                    .on_hover_text(format!("{} ({})", s.name, s.kind.name()));
                            });
                            let numbers =
                                numbers(s.entries, s.hits, s.misses, s.evictions, s.bytes);
                            for &i in &shown {
                                row.col(|ui| {
                                    ui.label(&numbers[i]);
                                });
                            }
                        });
                    }
                    body.row(20.0, |mut row| {
                        row.col(|ui| {
                            ui.label(RichText::new("All").strong());
                        });
                        let numbers = numbers(totals.0, totals.1, totals.2, totals.3, totals.4);
                        for &i in &shown {
                            row.col(|ui| {
                                ui.label(&numbers[i]);
                            });
                        }
                    });
                });
        });
}

/// The values of the number columns, in [`TOTALS_COLUMNS`] order.
fn numbers(entries: usize, hits: u64, misses: u64, evicted: u64, bytes: u64) -> [String; 6] {
    [
        entries.to_string(),
        hits.to_string(),
        misses.to_string(),
        format::hit_rate(hits, misses),
        evicted.to_string(),
        format::bytes(bytes),
    ]
}

/// Does what the user asked in every tier (memory, the cache folder, the shared store), as
/// `cache_clear` and friends do, and releases the resources that left.
fn apply(action: Clear, runtime: &Runtime) {
    match action {
        Clear::Entry { function, key, .. } => {
            runtime.clear(ClearScope::Entry {
                function: &function,
                key,
            });
        }
        Clear::Function(function) => {
            runtime.clear(ClearScope::Function(&function));
        }
        Clear::Kind(kind) => {
            runtime.clear(ClearScope::Kind(kind));
        }
    }
}
