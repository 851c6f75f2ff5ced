//! The "Entries" section: a filterable table sorted by clicking its headers, and the details
//! of the selected entry with its clear buttons.

use std::cmp::Ordering;
use std::time::Duration;

use cellar_engine::cache::{CacheKind, EntryInfo};
use egui::{RichText, Sense};
use egui_extras::{Column, TableBuilder};

use super::Clear;
use super::format;
use super::log::EventLog;

/// The gap between the table's columns.
const TABLE_SPACING: f32 = 4.0;
/// The narrowest the function and argument columns get.
const TEXT_COLUMN_MIN: f32 = 64.0;
/// Width kept free at the right of a table for the panel's vertical scroll bar.
pub(super) const SCROLL_BAR_ROOM: f32 = 14.0;

/// A column the table can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SortColumn {
    Kind,
    Function,
    Args,
    Size,
    Hits,
    Age,
    TtlLeft,
    Persisted,
}

impl SortColumn {
    const ALL: [Self; 8] = [
        Self::Kind,
        Self::Function,
        Self::Args,
        Self::Size,
        Self::Hits,
        Self::Age,
        Self::TtlLeft,
        Self::Persisted,
    ];

    fn title(self) -> &'static str {
        match self {
            Self::Kind => "Kind",
            Self::Function => "Function",
            Self::Args => "Arguments",
            Self::Size => "Size",
            Self::Hits => "Hits",
            Self::Age => "Age",
            Self::TtlLeft => "TTL",
            Self::Persisted => "Disk",
        }
    }

    /// The direction a first click sorts in: the biggest and busiest first, names A to Z.
    fn starts_descending(self) -> bool {
        matches!(self, Self::Size | Self::Hits | Self::Persisted)
    }

    /// The width of a column that shows a short value (a size, a count, a duration), enough
    /// for its title and the sort arrow; `None` for the two text columns, which share the
    /// rest of the width.
    fn fixed_width(self) -> Option<f32> {
        match self {
            Self::Kind => Some(50.0),
            Self::Size => Some(52.0),
            Self::Hits => Some(36.0),
            Self::Age => Some(48.0),
            Self::TtlLeft => Some(48.0),
            Self::Persisted => Some(36.0),
            Self::Function | Self::Args => None,
        }
    }

    /// The columns shown in a table `width` wide: all of them, or without Kind when the
    /// panel is narrow (the function's name is then coloured by its kind).
    fn shown(width: f32) -> &'static [Self] {
        let all = Self::widths_needed(&Self::ALL);
        if width >= all {
            &Self::ALL
        } else {
            &Self::ALL[1..]
        }
    }

    /// The width `columns` need with the text columns at their narrowest.
    fn widths_needed(columns: &[Self]) -> f32 {
        let fixed: f32 = columns.iter().filter_map(|c| c.fixed_width()).sum();
        fixed + 2.0 * TEXT_COLUMN_MIN + TABLE_SPACING * columns.len() as f32 + SCROLL_BAR_ROOM
    }

    /// The column, among `columns` in a table `width` wide: the text columns take what the
    /// others leave (at least enough to read a few characters; below that the table scrolls
    /// sideways).
    fn column(self, columns: &[Self], width: f32) -> Column {
        let spare = (width - Self::widths_needed(columns)).max(0.0);
        let text = (TEXT_COLUMN_MIN + spare / 2.0).floor();
        // Exact widths, worked out again each frame: the table follows the panel's width.
        Column::exact(self.fixed_width().unwrap_or(text)).clip(true)
    }

    fn compare(self, a: &EntryInfo, b: &EntryInfo) -> Ordering {
        match self {
            Self::Kind => a.kind.name().cmp(b.kind.name()),
            Self::Function => a.function.cmp(&b.function),
            Self::Args => a.args.cmp(&b.args),
            Self::Size => a.size_bytes.cmp(&b.size_bytes),
            Self::Hits => a.hits.cmp(&b.hits),
            // Older entries were created earlier: a larger age is a smaller `created`.
            Self::Age => b.created.cmp(&a.created),
            // No ttl never expires: it sorts after every countdown.
            Self::TtlLeft => match (a.ttl_left, b.ttl_left) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            },
            Self::Persisted => a.persisted.cmp(&b.persisted),
        }
    }
}

/// Sorting, filtering and selection of the entries table.
pub(super) struct EntriesView {
    sort: SortColumn,
    descending: bool,
    filter: String,
    show_data: bool,
    show_resource: bool,
    show_cell: bool,
    /// The selected entry: its function and full key (stable across refreshes).
    pub selected: Option<(String, u128)>,
}

impl EntriesView {
    pub fn new() -> Self {
        Self {
            sort: SortColumn::Function,
            descending: false,
            filter: String::new(),
            show_data: true,
            show_resource: true,
            show_cell: true,
            selected: None,
        }
    }

    /// Whether the entry passes the kind toggles and the text filter.
    fn shows(&self, entry: &EntryInfo, needle: &str) -> bool {
        let kind_on = match entry.kind {
            CacheKind::Data | CacheKind::Legacy => self.show_data,
            CacheKind::Resource => self.show_resource,
            CacheKind::Cell => self.show_cell,
        };
        kind_on
            && (needle.is_empty()
                || [&entry.function, &entry.args, &entry.value, &entry.key_short]
                    .iter()
                    .any(|text| text.to_lowercase().contains(needle)))
    }

    /// Indices of the entries to show, in display order.
    fn rows(&self, entries: &[EntryInfo]) -> Vec<usize> {
        let needle = self.filter.trim().to_lowercase();
        let mut rows: Vec<usize> = (0..entries.len())
            .filter(|&i| self.shows(&entries[i], &needle))
            .collect();
        rows.sort_by(|&a, &b| {
            let (a, b) = (&entries[a], &entries[b]);
            let order = self.sort.compare(a, b);
            let order = if self.descending {
                order.reverse()
            } else {
                order
            };
            // Ties keep a meaningful order: by function, then oldest first.
            // The key last, so equal rows never swap places between frames.
            order
                .then_with(|| a.function.cmp(&b.function))
                .then_with(|| a.created.cmp(&b.created))
                .then_with(|| a.key.cmp(&b.key))
        });
        rows
    }

    /// Draws the filter row, the table and the selected entry's details.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        entries: &[EntryInfo],
        log: &EventLog,
        now: Duration,
    ) -> Option<Clear> {
        self.filter_ui(ui);
        let rows = self.rows(entries);
        ui.label(
            RichText::new(format!("{} of {} entries", rows.len(), entries.len()))
                .small()
                .weak(),
        );
        if !rows.is_empty() {
            // The columns fit the panel down to about 420 px; a narrower panel scrolls sideways.
            let width = ui.available_width();
            ui.scope(|ui| {
                // A solid bar takes its own space; a floating one would cover the last row.
                ui.spacing_mut().scroll = egui::style::ScrollStyle::solid();
                egui::ScrollArea::horizontal()
                    .id_salt("cache_panel_entries_h")
                    .show(ui, |ui| self.table_ui(ui, entries, &rows, now, width));
            });
        }
        let selected = self.selected.as_ref().and_then(|(function, key)| {
            entries
                .iter()
                .find(|e| &e.function == function && e.key == *key)
        });
        match selected {
            Some(entry) => {
                ui.separator();
                super::details::ui(ui, entry, log, now)
            }
            None => {
                // The entry left (cleared, evicted): drop the stale selection.
                self.selected = None;
                None
            }
        }
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui) {
        // Right to left: the toggles and the clear button take what they need and the field
        // the rest, so the row is exactly as wide as the panel whatever is typed.
        ui.horizontal(|ui| {
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.toggle_value(&mut self.show_cell, "cell")
                    .on_hover_text("Show cached cells");
                ui.toggle_value(&mut self.show_resource, "resource")
                    .on_hover_text("Show @cache_resource entries");
                ui.toggle_value(&mut self.show_data, "data")
                    .on_hover_text("Show @cache_data entries");
                if !self.filter.is_empty()
                    && ui.small_button("×").on_hover_text("Clear filter").clicked()
                {
                    self.filter.clear();
                }
                ui.add(
                    egui::TextEdit::singleline(&mut self.filter)
                        .hint_text("Filter: function, argument, value")
                        .desired_width(ui.available_width().max(60.0)),
                )
                .accessible_name("Filter entries");
            });
        });
    }

    fn table_ui(
        &mut self,
        ui: &mut egui::Ui,
        entries: &[EntryInfo],
        rows: &[usize],
        now: Duration,
        width: f32,
    ) {
        let dark_mode = ui.visuals().dark_mode;
        // Labels must not take the click (to select text): the row takes it, to select the entry.
        ui.style_mut().interaction.selectable_labels = false;
        let mut clicked_header = None;
        let mut clicked_row = None;
        ui.spacing_mut().item_spacing.x = TABLE_SPACING;
        // The header buttons are as wide as their titles.
        ui.spacing_mut().button_padding = egui::vec2(2.0, 1.0);
        let columns = SortColumn::shown(width);
        let with_kind = columns.contains(&SortColumn::Kind);
        let table = columns
            .iter()
            .fold(TableBuilder::new(ui), |table, column| {
                table.column(column.column(columns, width))
            })
            .id_salt("cache_panel_entries")
            .striped(true)
            .sense(Sense::click())
            .max_scroll_height(240.0)
            .cell_layout(egui::Layout::left_to_right(egui::Align::Center));
        table
            .header(20.0, |mut header| {
                for &column in columns {
                    header.col(|ui| {
                        let active = self.sort == column;
                        let arrow = match (active, self.descending) {
                            (false, _) => "",
                            (true, false) => " ▲",
                            (true, true) => " ▼",
                        };
                        let text = header_text(ui, column.title(), arrow);
                        if ui
                            .add(egui::Button::selectable(active, text).frame_when_inactive(false))
                            .clicked()
                        {
                            clicked_header = Some(column);
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(20.0, rows.len(), |mut row| {
                    let entry = &entries[rows[row.index()]];
                    let selected = self
                        .selected
                        .as_ref()
                        .is_some_and(|(f, k)| f == &entry.function && *k == entry.key);
                    row.set_selected(selected);
                    let kind_color = format::kind_color(entry.kind, dark_mode);
                    if with_kind {
                        row.col(|ui| {
                            ui.label(RichText::new(entry.kind.name()).small().color(kind_color));
                        });
                    }
                    row.col(|ui| {
                        let name = RichText::new(&entry.function);
                        let name = if with_kind {
                            name
                        } else {
                            name.color(kind_color)
                        };
                        ui.add(egui::Label::new(name).truncate())
                            .on_hover_text(format!("{} ({})", entry.function, entry.kind.name()));
                    });
                    row.col(|ui| {
                        let args = if entry.args.is_empty() {
                            RichText::new("no arguments").weak()
                        } else {
                            RichText::new(&entry.args)
                        };
                        ui.add(egui::Label::new(args).truncate());
                    });
                    row.col(|ui| {
                        ui.label(format::bytes(entry.size_bytes));
                    });
                    row.col(|ui| {
                        ui.label(entry.hits.to_string());
                    });
                    row.col(|ui| {
                        ui.label(format::duration(now.saturating_sub(entry.created)));
                    });
                    row.col(|ui| {
                        match entry.ttl_left {
                            Some(left) => ui.label(format::duration(left)),
                            None => ui.label(RichText::new("–").weak()),
                        };
                    });
                    row.col(|ui| {
                        if entry.persisted {
                            disk_icon(ui).on_hover_text("Also persisted on disk");
                        }
                        if entry.shared {
                            ui.label(RichText::new("S").small().strong())
                                .on_hover_text("Also in the shared store");
                        }
                    });
                    if row.response().clicked() {
                        clicked_row = Some((entry.function.clone(), entry.key));
                    }
                });
            });
        if let Some(column) = clicked_header {
            if self.sort == column {
                self.descending = !self.descending;
            } else {
                self.sort = column;
                self.descending = column.starts_descending();
            }
        }
        if let Some(clicked) = clicked_row {
            // A second click on the selected row unselects it.
            self.selected = if self.selected.as_ref() == Some(&clicked) {
                None
            } else {
                Some(clicked)
            };
        }
    }
}

/// `Size ▼`: the title in the UI font, the arrow in the monospace font (the default UI font
/// has no arrows).
fn header_text(ui: &egui::Ui, title: &str, arrow: &str) -> egui::text::LayoutJob {
    let color = ui.visuals().strong_text_color();
    let size = egui::TextStyle::Body.resolve(ui.style()).size;
    let mut job = egui::text::LayoutJob::default();
    job.append(
        title,
        0.0,
        egui::TextFormat::simple(egui::FontId::proportional(size), color),
    );
    job.append(
        arrow,
        0.0,
        egui::TextFormat::simple(egui::FontId::monospace(size), color),
    );
    job
}

/// A small floppy disk, painted (no default font has one), labelled for screen readers.
fn disk_icon(ui: &mut egui::Ui) -> egui::Response {
    let size = egui::vec2(12.0, 12.0);
    let (rect, response) = ui.allocate_exact_size(size, Sense::hover());
    response
        .widget_info(|| egui::WidgetInfo::labeled(egui::accesskit::Role::Image, true, "on disk"));
    if ui.is_rect_visible(rect) {
        let color = ui.visuals().text_color();
        let painter = ui.painter();
        painter.rect_stroke(
            rect,
            1.5,
            egui::Stroke::new(1.2, color),
            egui::StrokeKind::Inside,
        );
        // The shutter at the top and the label below it.
        let shutter = egui::Rect::from_min_max(
            rect.left_top() + egui::vec2(3.0, 1.0),
            rect.right_top() + egui::vec2(-3.0, 4.5),
        );
        painter.rect_filled(shutter, 0.5, color);
        let label = egui::Rect::from_min_max(
            rect.left_bottom() + egui::vec2(2.5, -5.0),
            rect.right_bottom() + egui::vec2(-2.5, -2.0),
        );
        painter.rect_stroke(
            label,
            0.5,
            egui::Stroke::new(1.0, color),
            egui::StrokeKind::Inside,
        );
    }
    response
}
