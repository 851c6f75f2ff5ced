//! # cellar
//!
//! The Cellar desktop app (eframe/egui) and its headless CLI. The engine lives in
//! `cellar-engine`; this crate draws it and drives it.
//!
//! - [`app`]: the notebook window.
//! - [`outputs`]: how each element is drawn.
//! - [`worker`]: runs notebooks off the UI thread.
//! - [`cli`]: `cellar run`; [`bench`]: `cellar bench`.

pub mod app;
pub mod bench;
pub mod cache_panel;
pub mod cli;
pub mod outputs;
pub mod worker;
