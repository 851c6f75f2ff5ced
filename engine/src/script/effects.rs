//! What each script function does besides returning its result: its effect.
//!
//! The cell cache works from an allowlist. Every function of the script API declares its
//! effect here; a cell is cached only when every effect its code can reach is covered by its
//! trace (see `cells::effects`). A function that declares nothing, a new API function or one
//! an embedder registered, makes the cells that call it run every time: forgetting a
//! declaration costs speed, never correctness.

use std::collections::{HashMap, HashSet};

use rhai::Engine;

/// What calling a function does besides computing its result from its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing: the result depends on the arguments only, and the elements it emits are
    /// replayed on a hit. Resource handles count here too: every read and write through one
    /// is recorded at run time (identity and mutation counter).
    Pure,
    /// Reads inputs the trace records at run time: a widget's value, a cached call's entry,
    /// a local file (its path after the search order and its fingerprint, or its absence).
    Traced,
    /// Decides at run time what it read and tells the trace (`sql` looks at its query,
    /// `read_csv` at whether it was given a path or a URL).
    CheckedAtRunTime,
    /// Reads state outside the notebook that no trace can cover: a database, a URL, a
    /// clock, a random source, a click. The text says what, for `--explain` and the chip.
    ReadsOutside(&'static str),
    /// Changes state outside the notebook (a database, the cache itself).
    WritesOutside(&'static str),
    /// Calls a function chosen at run time (`eval`, `Fn(name)` with a computed name):
    /// nothing can be vouched for.
    Dynamic,
}

/// Every function of Cellar's script API, with its effect. Checked against the engine by a
/// test: a function registered without an entry here fails it.
const DECLARED: &[(&str, Effect)] = &[
    // Output: elements are recorded and replayed.
    ("write", Effect::Pure),
    ("markdown", Effect::Pure),
    ("header", Effect::Pure),
    ("subheader", Effect::Pure),
    ("text", Effect::Pure),
    ("code", Effect::Pure),
    ("success", Effect::Pure),
    ("info", Effect::Pure),
    ("warning", Effect::Pure),
    ("error", Effect::Pure),
    ("dataframe", Effect::Pure),
    ("table", Effect::Pure),
    ("json", Effect::Pure),
    ("metric", Effect::Pure),
    ("line_chart", Effect::Pure),
    ("bar_chart", Effect::Pure),
    ("scatter_chart", Effect::Pure),
    // Widgets: their values join the trace.
    ("slider", Effect::Traced),
    ("number_input", Effect::Traced),
    ("text_input", Effect::Traced),
    ("checkbox", Effect::Traced),
    ("selectbox", Effect::Traced),
    (
        "button",
        Effect::ReadsOutside("uses a button (a click is an event, not a value)"),
    ),
    // Frames.
    ("head", Effect::Pure),
    ("filter", Effect::Pure),
    ("select", Effect::Pure),
    ("sort", Effect::Pure),
    ("drop", Effect::Pure),
    ("drop_in_place", Effect::Pure),
    ("columns", Effect::Pure),
    ("height", Effect::Pure),
    ("width", Effect::Pure),
    ("len", Effect::Pure),
    ("column", Effect::Pure),
    ("row", Effect::Pure),
    ("to_string", Effect::Pure),
    ("to_debug", Effect::Pure),
    ("get", Effect::Pure),
    ("push", Effect::Pure),
    // Data sources.
    ("read_csv", Effect::CheckedAtRunTime),
    ("sql", Effect::CheckedAtRunTime),
    (
        "sqlite_connect",
        Effect::ReadsOutside("opens a SQLite database"),
    ),
    ("query", Effect::ReadsOutside("queries a database")),
    (
        "is_open",
        Effect::ReadsOutside("checks a database connection"),
    ),
    ("execute", Effect::WritesOutside("writes to a database")),
    (
        "close",
        Effect::WritesOutside("closes a database connection"),
    ),
    ("http_get", Effect::ReadsOutside("fetches a URL")),
    // Time and chance. Waiting changes nothing a replay would show.
    ("sleep", Effect::Pure),
    ("now", Effect::ReadsOutside("reads the clock")),
    ("perf_counter", Effect::ReadsOutside("reads the clock")),
    ("random", Effect::ReadsOutside("draws random numbers")),
    ("random_int", Effect::ReadsOutside("draws random numbers")),
    // Operators and indexers Cellar adds for its own types (a shared resource on either
    // side): what they do to a resource is recorded through its handle.
    ("==", Effect::Pure),
    ("!=", Effect::Pure),
    ("<", Effect::Pure),
    ("<=", Effect::Pure),
    (">", Effect::Pure),
    (">=", Effect::Pure),
    ("+=", Effect::Pure),
    ("-=", Effect::Pure),
    ("*=", Effect::Pure),
    ("/=", Effect::Pure),
    ("%=", Effect::Pure),
    ("**=", Effect::Pure),
    ("<<=", Effect::Pure),
    (">>=", Effect::Pure),
    ("&=", Effect::Pure),
    ("|=", Effect::Pure),
    ("^=", Effect::Pure),
    ("..", Effect::Pure),
    ("..=", Effect::Pure),
    ("index$get$", Effect::Pure),
    ("index$set$", Effect::Pure),
    // The cache.
    ("__cellar_cached", Effect::Traced),
    ("__cellar_type_of", Effect::Pure),
    ("cache_clear", Effect::WritesOutside("clears the cache")),
    (
        "cache_info",
        Effect::ReadsOutside("reads the cache's counters"),
    ),
    (
        "cache_data_clear",
        Effect::WritesOutside("clears the cache"),
    ),
    (
        "cache_resource_clear",
        Effect::WritesOutside("clears the cache"),
    ),
];

/// Rhai's keyword functions, which no package lists.
const KEYWORDS: &[(&str, Effect)] = &[
    // `print` and `debug` go to the log, which is never replayed.
    ("print", Effect::Pure),
    ("debug", Effect::Pure),
    ("type_of", Effect::Pure),
    // Which variables exist depends on which earlier cells succeeded, and no read of a
    // variable is traced by it.
    (
        "is_def_var",
        Effect::ReadsOutside("checks which variables exist (`is_def_var`)"),
    ),
    ("is_def_fn", Effect::Pure),
    // A hit skips the statement that made a captured variable shared.
    (
        "is_shared",
        Effect::ReadsOutside("asks whether a value is shared (`is_shared`)"),
    ),
    // `Fn`, `call` and `curry` are resolved by the analysis when their target is a literal.
    ("Fn", Effect::Dynamic),
    ("call", Effect::Dynamic),
    ("curry", Effect::Dynamic),
    ("eval", Effect::Dynamic),
];

/// Functions of Rhai's standard packages that are not pure. Everything else in those
/// packages computes from its arguments (strings, arrays, maps, maths); the test
/// `rhai_packages_are_reviewed` fails when a Rhai upgrade changes the package function set.
const IMPURE_BUILTINS: &[(&str, Effect)] = &[
    ("timestamp", Effect::ReadsOutside("reads the clock")),
    ("elapsed", Effect::ReadsOutside("reads the clock")),
    ("get$elapsed", Effect::ReadsOutside("reads the clock")),
    ("sleep", Effect::Pure),
    ("exit", Effect::ReadsOutside("ends the script with `exit`")),
    // Reads the whole notebook's fns, which the cell's code hash does not cover.
    ("get_fn_metadata_list", Effect::Dynamic),
];

/// The effect of every function a cell can call, by name.
#[derive(Clone, Debug, Default)]
pub struct EffectTable {
    by_name: HashMap<String, Effect>,
}

impl EffectTable {
    /// Cellar's declarations, Rhai's keywords and packages. Functions an engine has that
    /// nobody declared are left out, so calling one is an uncovered effect.
    pub fn standard() -> Self {
        let mut by_name: HashMap<String, Effect> = HashMap::new();
        for name in standard_package_functions() {
            by_name.insert(name, Effect::Pure);
        }
        for (name, effect) in IMPURE_BUILTINS.iter().chain(KEYWORDS) {
            by_name.insert((*name).to_string(), *effect);
        }
        for (name, effect) in DECLARED {
            by_name.insert((*name).to_string(), *effect);
        }
        Self { by_name }
    }

    /// Declares (or redeclares) a function's effect: embedders that register their own
    /// functions say what they do here, or the cells calling them are never cached.
    pub fn declare(&mut self, name: &str, effect: Effect) {
        self.by_name.insert(name.to_string(), effect);
    }

    /// The declared effect of `name`, if any.
    pub fn get(&self, name: &str) -> Option<Effect> {
        self.by_name.get(name).copied()
    }

    /// Names the engine has registered (outside Rhai's packages) that declare no effect.
    #[cfg(test)]
    pub fn undeclared(&self, engine: &Engine) -> Vec<String> {
        let mut names: Vec<String> = engine
            .gen_fn_signatures(false)
            .iter()
            .map(|s| signature_name(s).to_string())
            .filter(|name| !self.by_name.contains_key(name))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        names.sort();
        names
    }
}

/// The names of the functions in Rhai's standard packages, as a plain engine has them.
fn standard_package_functions() -> HashSet<String> {
    Engine::new()
        .gen_fn_signatures(true)
        .iter()
        .map(|s| signature_name(s).to_string())
        .collect()
}

/// `name(a: T, b: U) -> R` → `name`.
fn signature_name(signature: &str) -> &str {
    let name = signature.split('(').next().unwrap_or(signature);
    // Sub-module functions come as `module::name`; only the global namespace matters here.
    name.rsplit("::").next().unwrap_or(name).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_function_declares_its_effect() {
        let engine = crate::script::build_engine();
        let table = EffectTable::standard();
        assert_eq!(
            table.undeclared(&engine),
            Vec::<String>::new(),
            "declare these in script/effects.rs DECLARED"
        );
    }

    #[test]
    fn an_undeclared_function_has_no_effect_entry() {
        let mut engine = crate::script::build_engine();
        engine.register_fn("fetch_prices", || 1_i64);
        let table = EffectTable::standard();
        assert_eq!(table.get("fetch_prices"), None);
        assert_eq!(table.undeclared(&engine), ["fetch_prices"]);
        assert_eq!(
            table.get("query"),
            Some(Effect::ReadsOutside("queries a database"))
        );
    }

    #[test]
    fn signatures_give_their_name() {
        assert_eq!(
            signature_name("head(df: &mut DataFrame, n: i64) -> DataFrame"),
            "head"
        );
        assert_eq!(signature_name("now() -> f64"), "now");
        assert_eq!(signature_name("index$get$(_, _)"), "index$get$");
    }

    /// Rhai's package functions are taken as pure, but for the few listed in
    /// `IMPURE_BUILTINS`. That review holds for the set below; a Rhai upgrade that adds
    /// functions must be looked at again (then update the count).
    #[test]
    fn rhai_packages_are_reviewed() {
        let names = standard_package_functions();
        for (name, _) in IMPURE_BUILTINS {
            assert!(
                names.contains(*name) || name.starts_with("get$"),
                "{name} is gone from Rhai's packages"
            );
        }
        assert_eq!(
            names.len(),
            REVIEWED_PACKAGE_FUNCTIONS,
            "Rhai's package functions changed: review them for effects, then update the count"
        );
    }

    const REVIEWED_PACKAGE_FUNCTIONS: usize = 183;
}
