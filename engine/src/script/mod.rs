//! The Rhai side: one engine with Cellar's script API registered, and the per-thread context
//! that script functions write their elements into.

mod api_cache;
mod api_data;
mod api_output;
mod api_resource;
mod api_session;
mod api_widgets;
pub(crate) mod context;
pub(crate) mod convert;
pub mod effects;

pub(crate) use convert::display;

use rhai::{Dynamic, Engine, EvalAltResult};

/// The error type script functions return.
pub(crate) type ScriptResult<T> = Result<T, Box<EvalAltResult>>;

/// A runtime error for a script, with a message that says what to do. A failing API call
/// keeps the running cell out of the cell cache even when the script catches the error:
/// what failed (a missing file, a locked database) may not fail next time.
pub(crate) fn script_error(message: impl std::fmt::Display) -> Box<EvalAltResult> {
    let message = message.to_string();
    context::note_failure(&message);
    message.into()
}

/// Builds the engine every session shares: limits, print routing, cancellation, and the
/// whole script API.
pub fn build_engine() -> Engine {
    let mut engine = Engine::new();
    // Generous limits: notebooks are trusted code, but a stack overflow must be an error,
    // not a crash.
    engine.set_max_call_levels(256);
    engine.set_max_expr_depths(256, 256);
    engine.on_print(context::log);
    engine.on_debug(|text, _source, pos| context::log(&format!("[debug {pos}] {text}")));
    engine.on_progress(|ops| {
        // Checking the flag costs a thread-local read; every 256 operations is plenty to
        // stop a runaway loop within microseconds.
        if ops % 256 == 0 {
            context::stop_reason().map(Dynamic::from)
        } else {
            None
        }
    });
    // Every variable access is reported to the cell cache, which records the earlier
    // cells' variables the running cell reads; lookup itself is left to Rhai.
    // `on_var` is marked volatile (not deprecated) by Rhai; it is the hook for exactly this.
    #[allow(deprecated)]
    engine.on_var(|name, _index, ctx| {
        context::note_var(name, ctx.scope());
        Ok(None)
    });
    api_output::register(&mut engine);
    api_widgets::register(&mut engine);
    api_data::register(&mut engine);
    api_session::register(&mut engine);
    api_cache::register(&mut engine);
    api_resource::register(&mut engine);
    engine
}
