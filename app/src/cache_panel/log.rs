//! The panel's own bounded copy of the registry's event log, polled each frame with
//! `events_since(next_seq)`, and the "Eviction log" section that draws it.
//!
//! Removals and traffic (hits, misses, inserts) are kept apart: a busy notebook makes
//! thousands of hits, and they must not push the evictions (what the log is for) out.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use cellar_engine::cache::{CacheEvent, CacheRegistry, EventKind, MissReason};
use egui::text::LayoutJob;
use egui::{FontId, RichText, TextFormat};

use super::format;

/// Removals kept for the log.
const REMOVALS_KEPT: usize = 2_000;
/// Hits, misses and inserts kept for the log.
const TRAFFIC_KEPT: usize = 2_000;
/// Distinct (function, key) miss reasons remembered before pruning to live entries.
const MISS_REASONS_KEPT: usize = 4_096;
/// Lines drawn at most (the rest is still kept, just not laid out every frame).
const LINES_SHOWN: usize = 300;

/// What the panel has seen of the registry's events.
pub(super) struct EventLog {
    next_seq: u64,
    removals: VecDeque<CacheEvent>,
    traffic: VecDeque<CacheEvent>,
    /// The latest miss of each (function, short key): why that entry was computed.
    entry_miss: HashMap<(String, String), MissReason>,
    /// The latest miss of each function, whatever its key.
    function_miss: HashMap<String, (String, MissReason)>,
    /// Whether hits, misses and inserts are listed too.
    pub show_traffic: bool,
}

impl EventLog {
    pub fn new() -> Self {
        Self {
            next_seq: 0,
            removals: VecDeque::new(),
            traffic: VecDeque::new(),
            entry_miss: HashMap::new(),
            function_miss: HashMap::new(),
            show_traffic: false,
        }
    }

    /// Takes the events that arrived since the last poll; returns whether there were any.
    pub fn poll(&mut self, registry: &CacheRegistry) -> bool {
        let new = registry.events_since(self.next_seq);
        let Some(last) = new.last() else {
            return false;
        };
        self.next_seq = last.seq + 1;
        for event in new {
            match &event.event {
                EventKind::Removed(_) => push_bounded(&mut self.removals, event, REMOVALS_KEPT),
                EventKind::Miss(reason) => {
                    let (function, key) = (event.function.to_string(), event.key.to_string());
                    self.entry_miss
                        .insert((function.clone(), key.clone()), reason.clone());
                    self.function_miss.insert(function, (key, reason.clone()));
                    push_bounded(&mut self.traffic, event, TRAFFIC_KEPT);
                }
                EventKind::Hit
                | EventKind::StaleHit
                | EventKind::Inserted
                | EventKind::Released { .. } => {
                    push_bounded(&mut self.traffic, event, TRAFFIC_KEPT)
                }
            }
        }
        true
    }

    /// Forgets miss reasons of entries that are gone, once there are many: only live entries'
    /// reasons are ever shown.
    pub fn prune_miss_reasons(&mut self, live: impl Fn(&str, &str) -> bool) {
        if self.entry_miss.len() > MISS_REASONS_KEPT {
            self.entry_miss
                .retain(|(function, key), _| live(function, key));
        }
    }

    /// Why the entry (function, short key) was computed, if its miss is still in the log.
    pub fn entry_miss(&self, function: &str, key_short: &str) -> Option<&MissReason> {
        self.entry_miss
            .get(&(function.to_string(), key_short.to_string()))
    }

    /// The function's latest miss: the short key it missed on and why.
    pub fn function_miss(&self, function: &str) -> Option<&(String, MissReason)> {
        self.function_miss.get(function)
    }

    /// The newest events first: removals, plus traffic when it is shown.
    fn newest_first(&self) -> Vec<&CacheEvent> {
        let mut events: Vec<&CacheEvent> = self.removals.iter().collect();
        if self.show_traffic {
            events.extend(self.traffic.iter());
        }
        events.sort_unstable_by_key(|e| std::cmp::Reverse(e.seq));
        events.truncate(LINES_SHOWN);
        events
    }

    /// Draws the log section: the traffic toggle and the lines, newest first.
    pub fn ui(&mut self, ui: &mut egui::Ui, now: Duration) {
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.show_traffic, "Show hits, misses, inserts");
            ui.label(
                RichText::new(format!("{} removals", self.removals.len()))
                    .small()
                    .weak(),
            );
        });
        let events = self.newest_first();
        if events.is_empty() {
            ui.label(RichText::new("Nothing evicted yet.").weak());
            return;
        }
        egui::ScrollArea::vertical()
            .id_salt("cache_panel_log")
            .max_height(220.0)
            .auto_shrink([false, true])
            .show(ui, |ui| {
                for event in events {
                    ui.add(egui::Label::new(line(ui, event, now)).truncate())
                        .on_hover_text(event.to_string());
                }
            });
    }
}

fn push_bounded(queue: &mut VecDeque<CacheEvent>, event: CacheEvent, cap: usize) {
    queue.push_back(event);
    while queue.len() > cap {
        queue.pop_front();
    }
}

/// `max_entries  square [1a2b3c4d] · 3 s ago`, the tag in the cause's colour.
fn line(ui: &egui::Ui, event: &CacheEvent, now: Duration) -> LayoutJob {
    let tag = match &event.event {
        EventKind::Removed(cause) => cause.name().to_string(),
        EventKind::Hit => "hit".to_string(),
        EventKind::Miss(_) => "miss".to_string(),
        EventKind::Inserted => "stored".to_string(),
        EventKind::StaleHit => "stale hit".to_string(),
        EventKind::Released { error: None, .. } => "released".to_string(),
        EventKind::Released { error: Some(_), .. } => "release failed".to_string(),
    };
    let body = match &event.event {
        EventKind::Miss(reason) => format!("{} [{}]: {reason}", event.function, event.key),
        EventKind::Released { by, error } => match error {
            Some(error) => format!("{} [{}] by `{by}`: {error}", event.function, event.key),
            None => format!("{} [{}] by `{by}`", event.function, event.key),
        },
        _ => format!("{} [{}]", event.function, event.key),
    };
    let font = FontId::monospace(12.0);
    let strong = ui.visuals().strong_text_color();
    let weak = ui.visuals().weak_text_color();
    let mut job = LayoutJob::default();
    job.append(
        &format!("{tag:<13}"),
        0.0,
        TextFormat::simple(font.clone(), format::event_color(&event.event, ui)),
    );
    job.append(&body, 0.0, TextFormat::simple(font.clone(), strong));
    job.append(
        &format!(" · {}", format::ago(now, event.at)),
        0.0,
        TextFormat::simple(font, weak),
    );
    job
}
