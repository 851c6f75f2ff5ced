//! # cellar
//!
//! The Cellar desktop app (eframe/egui) and its headless CLI. The engine lives in
//! `cellar-engine`; this crate draws it and drives it.
//!
//! - [`app`]: the notebook window, which applies every [`actions::Action`].
//! - [`toolbar`]: the toolbar and the status bar; [`help`]: the keyboard shortcuts.
//! - [`sessions`]: session tabs, each with its own `Session` and outputs.
//! - [`notebook_view`]: the cells; [`cell_editor`] and [`syntax`]: their code.
//! - [`outputs`]: how each element is drawn.
//! - [`dialogs`]: file dialogs off the UI thread; [`recent`]: the recent-files list;
//!   [`autosave`]: the copy of unsaved changes beside the notebook; [`settings`]: what the
//!   window remembers between starts.
//! - [`theme`]: colours and spacing, light and dark.
//! - [`worker`]: runs notebooks off the UI thread.
//! - [`cli`]: `cellar run`; [`bench`]: `cellar bench`.

pub mod actions;
pub mod app;
pub mod autosave;
pub mod bench;
pub mod cache_cmd;
pub mod cache_panel;
pub mod cell_editor;
pub mod cli;
pub mod dialogs;
pub mod help;
pub mod notebook_view;
pub mod outputs;
pub mod recent;
pub mod sessions;
pub mod settings;
pub mod syntax;
pub mod theme;
pub mod toolbar;
pub mod worker;
