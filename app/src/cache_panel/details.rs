//! The selected entry in full: its key and key parts, value, times, why it was computed,
//! and the buttons that clear it or its whole function.

use std::time::Duration;

use cellar_engine::cache::EntryInfo;
use cellar_engine::cache::registry::Tier;
use egui::RichText;

use super::Clear;
use super::format;
use super::log::EventLog;

/// The selected entry in full: key, key parts, value, times, why it was computed.
pub(super) fn ui(
    ui: &mut egui::Ui,
    entry: &EntryInfo,
    log: &EventLog,
    now: Duration,
) -> Option<Clear> {
    let mut action = None;
    ui.label(RichText::new(format!("{} [{}]", entry.function, entry.key_short)).strong());
    egui::Grid::new("cache_panel_details")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .striped(true)
        .show(ui, |ui| {
            let row = |ui: &mut egui::Ui, name: &str, value: RichText| {
                ui.label(RichText::new(name).weak());
                ui.add(egui::Label::new(value).wrap());
                ui.end_row();
            };
            row(ui, "Kind", RichText::new(entry.kind.name()));
            row(
                ui,
                "Key",
                RichText::new(format!("{:032x}", entry.key)).monospace(),
            );
            if entry.parts.is_empty() {
                row(ui, "Key parts", RichText::new("no arguments").weak());
            }
            for (i, part) in entry.parts.iter().enumerate() {
                let what = if part.widget { "widget" } else { "argument" };
                let name = if i == 0 { "Key parts" } else { "" };
                ui.label(RichText::new(name).weak());
                ui.horizontal_wrapped(|ui| {
                    ui.label(format!("{} = {}", part.name, part.summary));
                    ui.label(RichText::new(what).small().weak())
                        .on_hover_text(format!("digest {:032x}", part.digest));
                });
                ui.end_row();
            }
            row(ui, "Value", RichText::new(&entry.value));
            row(ui, "Size", RichText::new(format::bytes(entry.size_bytes)));
            row(
                ui,
                "Created",
                RichText::new(format::ago(now, entry.created)),
            );
            row(
                ui,
                "Last hit",
                match entry.last_hit {
                    Some(at) => RichText::new(format::ago(now, at)),
                    None => RichText::new("never").weak(),
                },
            );
            row(ui, "Hits", RichText::new(entry.hits.to_string()));
            row(
                ui,
                "TTL left",
                match entry.ttl_left {
                    Some(left) => RichText::new(format::duration(left)),
                    None => RichText::new("no ttl").weak(),
                },
            );
            row(ui, "Held in", RichText::new(tiers(entry)));
            row(
                ui,
                "Came from",
                RichText::new(match entry.source {
                    Tier::Computed => "computed here",
                    Tier::Disk => "the cache folder",
                    Tier::Shared => "the shared store",
                }),
            );
            row(
                ui,
                "Computed because",
                match log.entry_miss(&entry.function, &entry.key_short) {
                    Some(reason) => RichText::new(reason.to_string()),
                    None => RichText::new("not in the log (computed before it started)").weak(),
                },
            );
            if let Some((key, reason)) = log.function_miss(&entry.function) {
                row(ui, "Last miss", RichText::new(format!("[{key}] {reason}")));
            }
        });
    ui.horizontal_wrapped(|ui| {
        if ui
            .button("Clear entry")
            .on_hover_text("Remove this entry (and its file on disk)")
            .clicked()
        {
            action = Some(Clear::Entry {
                function: entry.function.clone(),
                key: entry.key,
            });
        }
        if ui
            .button("Clear function")
            .on_hover_text(format!(
                "Remove every entry of `{}` (and its files on disk)",
                entry.function
            ))
            .clicked()
        {
            action = Some(Clear::Function(entry.function.clone()));
        }
    });
    action
}

/// `memory, disk, shared store`: the tiers that hold an entry.
fn tiers(entry: &EntryInfo) -> String {
    let mut tiers = vec!["memory"];
    if entry.persisted {
        tiers.push("disk");
    }
    if entry.shared {
        tiers.push("shared store");
    }
    tiers.join(", ")
}
