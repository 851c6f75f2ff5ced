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
mod native;

pub(crate) use api_cache::entry_points;
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

/// How big a value one call may make, and how deep scripts may call, before the cell fails
/// with an error that names the limit. Each has a default and an environment variable that
/// raises it (`0`: no limit), read when the engine is built (when Cellar starts).
///
/// Sizes are checked by the functions that allocate a size they are given (`blob(n)`,
/// `pad`), before allocating: a typo'd `blob(1000000000000000)` is an error instead of an
/// abort of the whole process. Rhai's own data-size limits are left off: Rhai enforces them
/// by measuring the whole value after every change to it (each `push` would cost as much as
/// the array is long, a loop building 100 000 items 140 times slower).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a string (`CELLAR_MAX_STRING`).
    pub string_bytes: u64,
    /// Items of an array, counting the items inside its items (`CELLAR_MAX_ARRAY`).
    pub array_items: u64,
    /// Bytes of a blob (`CELLAR_MAX_BLOB`).
    pub blob_bytes: u64,
    /// Levels of function calls (`CELLAR_MAX_CALL_DEPTH`); never 0.
    pub call_depth: u64,
    /// Operations one cell may run (`CELLAR_MAX_OPERATIONS`; none by default: the timeout
    /// and the Stop button end a long cell).
    pub operations: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            string_bytes: 100_000_000,
            array_items: 10_000_000,
            blob_bytes: 100_000_000,
            call_depth: 256,
            operations: 0,
        }
    }
}

/// The environment variable of each limit, and what it counts.
const LIMIT_VARS: [(&str, &str); 5] = [
    ("CELLAR_MAX_STRING", "bytes of a string"),
    ("CELLAR_MAX_ARRAY", "items of an array"),
    ("CELLAR_MAX_BLOB", "bytes of a blob"),
    ("CELLAR_MAX_CALL_DEPTH", "levels of function calls"),
    ("CELLAR_MAX_OPERATIONS", "operations of one cell"),
];

/// Deeper than this, a script's calls overflow the native stack of a run's thread.
const MAX_CALL_DEPTH: u64 = 4096;

impl Limits {
    /// The limits, with those set in the environment; and a warning for each variable that
    /// could not be read (its default is kept).
    pub fn from_env() -> (Self, Vec<String>) {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The limits, with the values `lookup` gives for the environment variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut limits = Self::default();
        let mut warnings = Vec::new();
        for (name, counts) in LIMIT_VARS {
            let Some(text) = lookup(name).filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            let digits: String = text
                .trim()
                .chars()
                .filter(|c| !matches!(c, '_' | ','))
                .collect();
            let slot = match name {
                "CELLAR_MAX_STRING" => &mut limits.string_bytes,
                "CELLAR_MAX_ARRAY" => &mut limits.array_items,
                "CELLAR_MAX_BLOB" => &mut limits.blob_bytes,
                "CELLAR_MAX_CALL_DEPTH" => &mut limits.call_depth,
                _ => &mut limits.operations,
            };
            match digits.parse::<u64>() {
                Ok(value) if name == "CELLAR_MAX_CALL_DEPTH" && value == 0 => warnings.push(
                    format!("{name}=0: the call depth needs a limit (at most {MAX_CALL_DEPTH}); keeping {}", slot),
                ),
                Ok(value) if name == "CELLAR_MAX_CALL_DEPTH" && value > MAX_CALL_DEPTH => {
                    warnings.push(format!(
                        "{name}={value}: deeper than {MAX_CALL_DEPTH} levels overflows the stack; using {MAX_CALL_DEPTH}"
                    ));
                    *slot = MAX_CALL_DEPTH;
                }
                Ok(value) => *slot = value,
                Err(_) => warnings.push(format!(
                    "{name}={text}: not a whole number of {counts} (0 for no limit); keeping {}",
                    slot
                )),
            }
        }
        (limits, warnings)
    }
}

/// A size over its limit, as the cell's error: what, the limit, and how to raise it.
fn over_limit(what: String, limit: &str, max: u64, unit: &str, var: &str) -> Box<EvalAltResult> {
    script_error(format!(
        "{what} is over the size limit for {limit} ({max} {unit}); to raise it, set the environment variable {var} (0 for no limit) and start Cellar again"
    ))
}

/// Whether `size` is over `max` (0: no limit).
fn over(size: u64, max: u64) -> bool {
    max > 0 && size > max
}

/// The items a value holds, counting those inside its items (an array's elements, a map's
/// entries, a blob's bytes): what copying it makes.
fn nested_items(value: &Dynamic) -> u64 {
    if let Some(array) = value.read_lock::<rhai::Array>() {
        return array.iter().map(|item| 1 + nested_items(item)).sum();
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return map.values().map(|item| 1 + nested_items(item)).sum();
    }
    if let Some(blob) = value.read_lock::<rhai::Blob>() {
        return blob.len() as u64;
    }
    0
}

/// `blob(n)` and `pad`, which allocate the size they are given, with the limits checked
/// first (the same functions of Rhai's packages, which check only Rhai's own limits).
fn register_sized(engine: &mut Engine, limits: Limits) {
    use rhai::{Array, Blob, FuncRegistration, INT, ImmutableString};
    let blob_limit = move |len: u64| {
        if over(len, limits.blob_bytes) {
            Err(over_limit(
                format!("a blob of {len} bytes"),
                "blobs",
                limits.blob_bytes,
                "bytes",
                "CELLAR_MAX_BLOB",
            ))
        } else {
            Ok(())
        }
    };
    let new_blob = move |len: INT, value: INT| -> ScriptResult<Blob> {
        let Ok(len) = u64::try_from(len) else {
            return Ok(Blob::new());
        };
        blob_limit(len)?;
        // Only the lower 8 bits are used, as Rhai does.
        Ok(vec![(value & 0xff) as u8; len as usize])
    };
    engine.register_fn("blob", move |len: INT| new_blob(len, 0));
    engine.register_fn("blob", new_blob);
    // Each `pad` is registered as not pure: it changes its receiver (on a constant, or a
    // shared resource's read-only snapshot, it is refused, as Rhai's own `pad` is).
    FuncRegistration::new("pad")
        .with_purity(false)
        .register_into_engine(
            engine,
            move |blob: &mut Blob, len: INT, value: INT| -> ScriptResult<()> {
                let Ok(len) = u64::try_from(len) else {
                    return Ok(());
                };
                if len <= blob.len() as u64 {
                    return Ok(());
                }
                blob_limit(len)?;
                blob.resize(len as usize, (value & 0xff) as u8);
                Ok(())
            },
        );
    FuncRegistration::new("pad")
        .with_purity(false)
        .register_into_engine(
            engine,
            move |array: &mut Array, len: INT, item: Dynamic| -> ScriptResult<()> {
                let Ok(len) = u64::try_from(len) else {
                    return Ok(());
                };
                if len <= array.len() as u64 {
                    return Ok(());
                }
                let added = len - array.len() as u64;
                let total = if over(len, limits.array_items) {
                    len
                } else {
                    array
                        .iter()
                        .map(|held| 1 + nested_items(held))
                        .sum::<u64>()
                        .saturating_add(added.saturating_mul(1 + nested_items(&item)))
                };
                if over(total, limits.array_items) {
                    return Err(over_limit(
                        format!("an array of {total} items"),
                        "arrays",
                        limits.array_items,
                        "items",
                        "CELLAR_MAX_ARRAY",
                    ));
                }
                array.resize(len as usize, item);
                Ok(())
            },
        );
    let string_limit = move |chars: u64, bytes_per_char: u64| {
        if over(
            chars.saturating_mul(bytes_per_char.max(1)),
            limits.string_bytes,
        ) {
            Err(over_limit(
                format!("a string of {chars} characters"),
                "strings",
                limits.string_bytes,
                "bytes",
                "CELLAR_MAX_STRING",
            ))
        } else {
            Ok(())
        }
    };
    FuncRegistration::new("pad")
        .with_purity(false)
        .register_into_engine(
            engine,
            move |string: &mut ImmutableString, len: INT, character: char| -> ScriptResult<()> {
                let Ok(len) = u64::try_from(len) else {
                    return Ok(());
                };
                let have = string.chars().count() as u64;
                if len <= have {
                    return Ok(());
                }
                string_limit(len, character.len_utf8() as u64)?;
                let text = string.make_mut();
                text.extend(std::iter::repeat_n(character, (len - have) as usize));
                Ok(())
            },
        );
    FuncRegistration::new("pad")
        .with_purity(false)
        .register_into_engine(
            engine,
            move |string: &mut ImmutableString, len: INT, padding: &str| -> ScriptResult<()> {
                let Ok(len) = u64::try_from(len) else {
                    return Ok(());
                };
                let have = string.chars().count() as u64;
                // Nothing to pad with: Rhai's own `pad` would loop forever.
                if len <= have || padding.is_empty() {
                    return Ok(());
                }
                let widest = padding.chars().map(|c| c.len_utf8()).max().unwrap_or(1);
                string_limit(len, widest as u64)?;
                let text = string.make_mut();
                text.extend(padding.chars().cycle().take((len - have) as usize));
                Ok(())
            },
        );
}

/// The message of an error that means a limit was hit, naming the limit and how to raise
/// it; `None` for other errors.
pub(crate) fn limit_message(err: &EvalAltResult, engine: &Engine) -> Option<String> {
    match err {
        EvalAltResult::ErrorStackOverflow(_) => Some(format!(
            "functions called each other more than {} levels deep (the call depth limit); if the recursion is meant to go that deep, set the environment variable CELLAR_MAX_CALL_DEPTH to a larger number (at most {MAX_CALL_DEPTH}) and start Cellar again",
            engine.max_call_levels()
        )),
        EvalAltResult::ErrorTooManyOperations(_) => Some(format!(
            "the cell ran more than {} operations (the operations limit); to raise it, set the environment variable CELLAR_MAX_OPERATIONS (0 for no limit) and start Cellar again",
            engine.max_operations()
        )),
        EvalAltResult::ErrorDataTooLarge(what, _) => Some(format!(
            "{what} is over its size limit; to raise it, set the environment variable CELLAR_MAX_STRING, CELLAR_MAX_ARRAY or CELLAR_MAX_BLOB (0 for no limit) and start Cellar again"
        )),
        _ => None,
    }
}

/// How much of the native stack a cell's script may use, from where the cell started. Run
/// threads have 2 MiB stacks (Rust's default for spawned threads); what is left is for the
/// native code between two checks.
const STACK_BUDGET: usize = 1536 * 1024;

thread_local! {
    /// Where the stack was when the running cell started (0: no cell running).
    static STACK_BASE: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The address of a local: how deep the stack is here (it grows down).
#[inline(never)]
fn stack_address() -> usize {
    let marker = 0_u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Marks where a cell's script starts using the stack (`false`: the cell is over).
pub(crate) fn mark_stack_base(running: bool) {
    let base = if running { stack_address() } else { 0 };
    STACK_BASE.with(|b| b.set(base));
}

/// Whether the running cell used more of the stack than [`STACK_BUDGET`].
fn stack_exhausted() -> bool {
    let base = STACK_BASE.with(std::cell::Cell::get);
    base != 0 && base.saturating_sub(stack_address()) > STACK_BUDGET
}

/// Builds the engine every session shares, with the limits of [`Limits::from_env`] (a
/// variable that cannot be read is reported on stderr and its default kept).
pub fn build_engine() -> Engine {
    let (limits, warnings) = Limits::from_env();
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    build_engine_with(limits)
}

/// Builds the engine every session shares: limits, print routing, cancellation, and the
/// whole script API.
pub fn build_engine_with(limits: Limits) -> Engine {
    let mut engine = Engine::new();
    // Every read and write through a shared resource is part of the running cell's trace.
    crate::cache::resource::set_use_hook(context::note_resource);
    // Notebooks are trusted code, but a runaway recursion or a typo'd size must be an
    // error, not a crash.
    engine.set_max_call_levels(limits.call_depth.clamp(1, MAX_CALL_DEPTH) as usize);
    engine.set_max_operations(limits.operations);
    engine.set_max_expr_depths(256, 256);
    register_sized(&mut engine, limits);
    engine.on_print(context::log);
    engine.on_debug(|text, _source, pos| context::log(&format!("[debug {pos}] {text}")));
    let depth = engine.max_call_levels();
    engine.on_progress(move |ops| {
        // A recursion that uses up the stack before the call depth limit (a deep body,
        // closures called from native code, a debug build) ends the cell before the thread
        // overflows its stack, which would abort the process. Every 8 operations: a few
        // levels of calls at most, well within what the budget leaves.
        if ops % 8 == 0 && stack_exhausted() {
            return Some(Dynamic::from(format!(
                "functions called each other too deeply: the calls used up the stack before the call depth limit ({depth} levels); make the recursion shallower (a loop instead of a recursive call)"
            )));
        }
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
    engine.on_var(|name, index, ctx| {
        // A non-zero index: Rhai resolved the variable to a slot of the scope when it
        // compiled, so it exists (a local of the running code).
        // A cached fn's bare name is a pointer to it (`xs.map(load)`), as a script fn's is:
        // Rhai makes those only for script fns, and a cached fn runs as a native one. Not a
        // variable read: calls through the pointer are traced as the fn's calls.
        if index == 0 && context::is_cached_fn(name) && !ctx.scope().contains(name) {
            return Ok(Some(Dynamic::from(rhai::FnPtr::new(name)?)));
        }
        context::note_var(name, index > 0, ctx.scope());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(vars: &[(&str, &str)]) -> (Limits, Vec<String>) {
        Limits::from_lookup(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn limits_default_without_variables() {
        assert_eq!(limits(&[]), (Limits::default(), Vec::new()));
    }

    #[test]
    fn limits_are_raised_by_environment_variables() {
        let (set, warnings) = limits(&[
            ("CELLAR_MAX_STRING", "1_000_000_000"),
            ("CELLAR_MAX_ARRAY", "0"),
            ("CELLAR_MAX_BLOB", " 2,000 "),
            ("CELLAR_MAX_CALL_DEPTH", "1000"),
            ("CELLAR_MAX_OPERATIONS", "5000000"),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            set,
            Limits {
                string_bytes: 1_000_000_000,
                array_items: 0,
                blob_bytes: 2000,
                call_depth: 1000,
                operations: 5_000_000,
            }
        );
    }

    #[test]
    fn unreadable_limits_warn_and_keep_their_default() {
        let (set, warnings) =
            limits(&[("CELLAR_MAX_ARRAY", "lots"), ("CELLAR_MAX_CALL_DEPTH", "0")]);
        assert_eq!(set, Limits::default());
        assert_eq!(
            warnings,
            [
                "CELLAR_MAX_ARRAY=lots: not a whole number of items of an array (0 for no limit); keeping 10000000",
                "CELLAR_MAX_CALL_DEPTH=0: the call depth needs a limit (at most 4096); keeping 256",
            ]
        );
        let (set, warnings) = limits(&[("CELLAR_MAX_CALL_DEPTH", "100000")]);
        assert_eq!(set.call_depth, MAX_CALL_DEPTH);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn a_limit_set_to_zero_is_no_limit() {
        let engine = build_engine_with(Limits {
            blob_bytes: 0,
            ..Limits::default()
        });
        let len: rhai::INT = engine.eval("blob(100000001).len()").unwrap();
        assert_eq!(len, 100_000_001);
        let err = build_engine_with(Limits::default())
            .eval::<rhai::INT>("blob(100000001).len()")
            .unwrap_err();
        assert!(err.to_string().contains("CELLAR_MAX_BLOB"), "{err}");
    }

    #[test]
    fn padding_with_nothing_ends() {
        let engine = build_engine();
        let text: String = engine.eval(r#"let s = "ab"; s.pad(10, ""); s"#).unwrap();
        assert_eq!(text, "ab");
        let text: String = engine.eval(r#"let s = "ab"; s.pad(7, "xyz"); s"#).unwrap();
        assert_eq!(text, "abxyzxy");
        let text: String = engine.eval(r#"let s = "é"; s.pad(3, 'ü'); s"#).unwrap();
        assert_eq!(text, "éüü");
    }
}
