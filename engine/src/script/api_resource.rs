//! Forwarding for `ResourceHandle`: a shared object behaves like the value it holds.
//!
//! Streamlit hands out the cached object itself. Rhai copies values on `let`, so Cellar hands
//! out a handle, and this module makes every Rhai operation on the handle do what it would do
//! on the value:
//!
//! - Functions, methods and operators are forwarded by name. At registration the engine's own
//!   function list (Rhai's packages and Cellar's API, all registered before this module) is
//!   read, and for every function a forwarder is registered with the handle in each position
//!   where some overload expects a concrete type (`r.contains(2)`, `[1, 2] == r`, `x + r`,
//!   `"abc".index_of(r)`, `r.query(sql)`, `to_string(r)` and so `print(r)` and `${r}`). The
//!   forwarder puts the value in the handle's place and calls the function again by name, so
//!   Rhai picks the overload (and the error text, `contains (map, i64)`) it would for the plain
//!   value. Positions where every overload takes any value keep the handle: `a.push(r)` stores
//!   the shared object, as `list.append(obj)` does in Python.
//! - Reads run on a snapshot, marked read-only; a function that mutates its first argument is
//!   refused by Rhai on a read-only value before it runs, and is then run on the shared value,
//!   counting a mutation (`push`, `insert`, `pop`, `sort`, `retain`, `+=`, `-=`, ...). A call
//!   that may run script code (a closure argument: `retain(|x| ...)`) runs on a copy without
//!   the lock, and the copy replaces the value unless another write came in meanwhile (then it
//!   runs again on a fresh copy).
//! - Indexing and properties (`r[0]`, `r["k"]`, `r.name`, `r.name = 1`, `r[1] += 1`) use Rhai's
//!   own indexing of the held value; property names on a held map are keys, as on a plain map.
//! - `for x in r` iterates a snapshot taken when the loop starts.
//!
//! What cannot be forwarded, because Rhai decides it before any function is looked up:
//! `type_of(r)` is "Resource" (`type_of` reads the Rust type; use `type_of(r.get())`),
//! `is_shared(r)` is false, `if r`, `while r`, `r && x`, `switch r` need a plain value, a plain
//! array or map indexed by a handle (`a[r]`) needs a plain index, and `a += r` on a plain array
//! pushes the handle (Rhai's built-in `array += any`; `a.append(r)` appends the items).
//! `r.get()` is a plain copy for all of these.
//!
//! Rhai takes a function registered with `register_fn` for pure, even one that changes its
//! first argument. Cellar's two such functions (`drop_in_place`, `execute`) are registered here
//! for handles explicitly, so that calling them through one counts as a mutation; a new API
//! function that changes its first argument needs the same, or a registration that says so
//! (`FuncRegistration::with_purity(false)`), which the forwarding then detects by itself.
//!
//! The forwarders are built from the functions registered before `register` runs: it must stay
//! the last registration in `build_engine`.

use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;

use parking_lot::RwLock;
use rhai::{
    AST, Array, Dynamic, Engine, EvalAltResult, INT, ImmutableString, Map, NativeCallContext,
    Position, Scope,
};

use super::{ScriptResult, script_error};
use crate::cache::ResourceHandle;
use crate::data::{Frame, SqliteConnection};

type RhaiResult = ScriptResult<Dynamic>;

const FN_GET: &str = "get$";
const FN_SET: &str = "set$";
const FN_IDX_GET: &str = "index$get$";
const FN_IDX_SET: &str = "index$set$";

/// Functions that are not forwarded: `print` and `debug` turn their result into log text
/// (they reach the value through `to_string` and `to_debug`, which are forwarded), Rhai's
/// keyword functions are decided before any lookup, and indexers are registered below.
const NOT_FORWARDED: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "is_shared",
    "is_def_var",
    "is_def_fn",
    "Fn",
    "call",
    "curry",
    "eval",
    FN_IDX_GET,
    FN_IDX_SET,
];

/// Rhai's operators, some of which are built in for `INT`, `FLOAT` and ranges only (no package
/// function carries their name): binary ones take a handle on either side.
const BINARY_OPERATORS: &[&str] = &[
    "+", "-", "*", "/", "%", "**", "<<", ">>", "&", "|", "^", "==", "!=", "<", "<=", ">", ">=",
    "..", "..=",
];
const UNARY_OPERATORS: &[&str] = &["-", "+", "!"];
/// Op-assignments change their left side: on a handle, the shared value. With the handle on
/// the right (`x -= r`) Rhai falls back to `x = x - r`, which the binary forwarders handle.
const OP_ASSIGNMENTS: &[&str] = &[
    "+=", "-=", "*=", "/=", "%=", "**=", "<<=", ">>=", "&=", "|=", "^=",
];

fn busy(handle: &ResourceHandle) -> Box<EvalAltResult> {
    script_error(format!(
        "the shared value of `{}` is being changed by the operation that reaches it here \
         (does it hold itself?)",
        handle.function()
    ))
}

/// Errors unless this thread may lock the handle's value (it is not writing it already).
fn check_free(handle: &ResourceHandle) -> ScriptResult<()> {
    if handle.in_use_here() {
        Err(busy(handle))
    } else {
        Ok(())
    }
}

fn handle_of(value: &Dynamic) -> Option<ResourceHandle> {
    value.read_lock::<ResourceHandle>().map(|h| h.clone())
}

/// A copy of the shared value (a handle's value, or the value itself when it is no handle).
fn plain(value: Dynamic) -> ScriptResult<Dynamic> {
    match handle_of(&value) {
        Some(handle) => {
            check_free(&handle)?;
            Ok(handle.snapshot())
        }
        None => Ok(value),
    }
}

/// Whether two values are equal by content (for the types an index write usually stores;
/// anything else counts as different, so the write counts as a mutation).
fn same_value(a: &Dynamic, b: &Dynamic) -> bool {
    if a.type_id() != b.type_id() {
        return false;
    }
    if a.is_unit() {
        return true;
    }
    if let (Ok(x), Ok(y)) = (a.as_bool(), b.as_bool()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_int(), b.as_int()) {
        return x == y;
    }
    if let (Ok(x), Ok(y)) = (a.as_float(), b.as_float()) {
        return x.to_bits() == y.to_bits();
    }
    if let (Ok(x), Ok(y)) = (a.as_char(), b.as_char()) {
        return x == y;
    }
    if let (Some(x), Some(y)) = (
        a.read_lock::<ImmutableString>(),
        b.read_lock::<ImmutableString>(),
    ) {
        return *x == *y;
    }
    if let (Some(x), Some(y)) = (a.read_lock::<Array>(), b.read_lock::<Array>()) {
        return x.len() == y.len() && x.iter().zip(y.iter()).all(|(x, y)| same_value(x, y));
    }
    if let (Some(x), Some(y)) = (a.read_lock::<Map>(), b.read_lock::<Map>()) {
        return x.len() == y.len()
            && x.iter()
                .all(|(k, v)| y.get(k.as_str()).is_some_and(|w| same_value(v, w)));
    }
    if let (Some(x), Some(y)) = (a.read_lock::<rhai::Blob>(), b.read_lock::<rhai::Blob>()) {
        return *x == *y;
    }
    if let (Some(x), Some(y)) = (
        a.read_lock::<ResourceHandle>(),
        b.read_lock::<ResourceHandle>(),
    ) {
        return x.same_as(&y);
    }
    false
}

/// Rhai's own indexing, run on a plain value: `value[index]` and `value[index] = new`.
static INDEX_GET: LazyLock<AST> = LazyLock::new(|| {
    Engine::new_raw()
        .compile_expression("__cellar_value[__cellar_index]")
        .expect("a valid expression")
});
static INDEX_SET: LazyLock<AST> = LazyLock::new(|| {
    Engine::new_raw()
        .compile("__cellar_value[__cellar_index] = __cellar_new;")
        .expect("a valid statement")
});

fn without_position(mut err: Box<EvalAltResult>) -> Box<EvalAltResult> {
    // The position is inside the two-token script above; the caller's is filled in instead.
    err.clear_position();
    err
}

fn index_get(ctx: &NativeCallContext, handle: &ResourceHandle, index: Dynamic) -> RhaiResult {
    check_free(handle)?;
    let index = plain(index)?;
    // Items that are there are read without copying the whole value.
    let found = handle.read(|value| {
        if let (Some(array), Ok(i)) = (value.read_lock::<Array>(), index.as_int()) {
            let len = array.len() as INT;
            let at = if i < 0 { len + i } else { i };
            return (0..len).contains(&at).then(|| array[at as usize].clone());
        }
        if let (Some(map), Some(key)) = (
            value.read_lock::<Map>(),
            index.read_lock::<ImmutableString>(),
        ) {
            return map.get(key.as_str()).cloned();
        }
        None
    });
    if let Some(item) = found {
        return Ok(item);
    }
    // Everything else (characters, bits, bytes, missing keys, errors) as Rhai does it.
    let mut scope = Scope::new();
    scope.push_dynamic("__cellar_value", handle.snapshot());
    scope.push_dynamic("__cellar_index", index);
    ctx.engine()
        .eval_ast_with_scope::<Dynamic>(&mut scope, &INDEX_GET)
        .map_err(without_position)
}

fn index_set(
    ctx: &NativeCallContext,
    handle: &ResourceHandle,
    index: Dynamic,
    new: Dynamic,
) -> ScriptResult<()> {
    check_free(handle)?;
    let index = plain(index)?;
    // A resource stored into itself would hold itself: store its value instead.
    let new = match handle_of(&new) {
        Some(other) if other.same_as(handle) => handle.snapshot(),
        _ => new,
    };
    handle.update(|value| {
        // Storing what a slot already holds changes nothing: Rhai writes back the item after
        // every method call in a chain (`r.names.len()`), and that is a read.
        if let Ok(i) = index.as_int()
            && let Some(mut array) = value.write_lock::<Array>()
        {
            let len = array.len() as INT;
            let at = if i < 0 { len + i } else { i };
            if (0..len).contains(&at) {
                let slot = &mut array[at as usize];
                if same_value(slot, &new) {
                    return (Ok(()), false);
                }
                *slot = new;
                return (Ok(()), true);
            }
        }
        if let Some(key) = index.read_lock::<ImmutableString>()
            && let Some(mut map) = value.write_lock::<Map>()
        {
            if map
                .get(key.as_str())
                .is_some_and(|old| same_value(old, &new))
            {
                return (Ok(()), false);
            }
            map.insert(key.as_str().into(), new);
            return (Ok(()), true);
        }
        // Everything else as Rhai does it, on the value moved out for the moment (the lock
        // is held; no script code runs in an index assignment).
        let mut scope = Scope::new();
        scope.push_dynamic("__cellar_value", std::mem::take(value));
        scope.push_dynamic("__cellar_index", index.clone());
        scope.push_dynamic("__cellar_new", new);
        let result = ctx
            .engine()
            .eval_ast_with_scope::<Dynamic>(&mut scope, &INDEX_SET);
        *value = scope
            .remove::<Dynamic>("__cellar_value")
            .unwrap_or_default();
        let changed = result.is_ok();
        (result.map(|_| ()).map_err(without_position), changed)
    })
}

/// Calls of a function on a value type that Rhai refused on a read-only snapshot because the
/// function changes its first argument: (name, value type, argument types).
type Signature = (String, Vec<TypeId>);
static MUTATING: LazyLock<RwLock<HashSet<Signature>>> =
    LazyLock::new(|| RwLock::new(HashSet::new()));

fn refused_as_mutation(err: &EvalAltResult, name: &str) -> bool {
    matches!(err, EvalAltResult::ErrorNonPureMethodCallOnConstant(f, _) if f == name)
}

/// `name(handle, args...)` with the handle standing first: the call on the shared value.
fn call_on_value(
    ctx: &NativeCallContext,
    name: &str,
    handle: &ResourceHandle,
    args: &mut [&mut Dynamic],
) -> RhaiResult {
    check_free(handle)?;
    let (first, rest) = args
        .split_first_mut()
        .expect("a forwarder has the handle as an argument");
    // The same resource as an argument stands for a copy of its value (`r += r`,
    // `r.contains(r)`): a write may hold the lock while the call runs.
    for arg in rest.iter_mut() {
        if handle_of(arg).is_some_and(|other| other.same_as(handle)) {
            **arg = handle.snapshot();
        }
    }
    let signature: Signature = (
        name.to_string(),
        std::iter::once(handle.read(|value| value.type_id()))
            .chain(rest.iter().map(|a| a.type_id()))
            .collect(),
    );
    if !MUTATING.read().contains(&signature) {
        let mut value = handle.snapshot().into_read_only();
        let mut call: Vec<&mut Dynamic> = Vec::with_capacity(rest.len() + 1);
        call.push(&mut value);
        call.extend(rest.iter_mut().map(|a| &mut **a));
        match ctx.call_native_fn_raw(name, true, &mut call) {
            Err(err) if refused_as_mutation(&err, name) => {
                MUTATING.write().insert(signature);
            }
            result => return result,
        }
    }
    // It changes the value. Through a constant, as on a plain constant, that is refused.
    if first.is_read_only() {
        return Err(EvalAltResult::ErrorNonPureMethodCallOnConstant(
            name.to_string(),
            Position::NONE,
        )
        .into());
    }
    let runs_script = rest
        .iter()
        .any(|a| a.is_fnptr() || a.is::<ResourceHandle>());
    if !runs_script {
        // Native code only: in place, under the lock, so concurrent writers queue.
        return handle.write(|value| {
            if value.is_read_only() {
                *value = value.clone();
            }
            let mut call: Vec<&mut Dynamic> = Vec::with_capacity(rest.len() + 1);
            call.push(value);
            call.extend(rest.iter_mut().map(|a| &mut **a));
            ctx.call_native_fn_raw(name, true, &mut call)
        });
    }
    // A closure (script code) or another resource is involved: never under the lock. Work on
    // a copy and store it, unless another write came in meanwhile; then start again.
    loop {
        let (mut value, seen) = handle.snapshot_at();
        let mut rest_copy: Vec<Dynamic> = rest.iter().map(|a| (**a).clone()).collect();
        let mut call: Vec<&mut Dynamic> = Vec::with_capacity(rest_copy.len() + 1);
        call.push(&mut value);
        call.extend(rest_copy.iter_mut());
        let result = ctx.call_native_fn_raw(name, true, &mut call)?;
        if handle.replace_if_unchanged(value, seen) {
            return Ok(result);
        }
    }
}

/// The forwarder registered for `name` with a handle at position `at`.
fn forward(
    ctx: &NativeCallContext,
    name: &str,
    at: usize,
    args: &mut [&mut Dynamic],
) -> RhaiResult {
    let handle = handle_of(args[at]).expect("registered with a handle in this position");
    check_free(&handle)?;
    if at > 0 {
        // Not the receiver: the function gets the value, by value.
        *args[at] = handle.snapshot();
        return ctx.call_native_fn_raw(name, true, args);
    }
    // Properties of a held map are its keys, as on a plain map (`r.len` is the key "len").
    if let Some(property) = name.strip_prefix(FN_GET)
        && handle.read(|value| value.is_map())
    {
        return index_get(ctx, &handle, Dynamic::from(property.to_string()));
    }
    if let Some(property) = name.strip_prefix(FN_SET)
        && handle.read(|value| value.is_map())
    {
        let new = std::mem::take(&mut *args[1]);
        index_set(ctx, &handle, Dynamic::from(property.to_string()), new)?;
        return Ok(Dynamic::UNIT);
    }
    call_on_value(ctx, name, &handle, args)
}

/// Where a handle needs a forwarder, per function name and number of parameters.
fn forwarding_table(engine: &Engine) -> BTreeMap<(String, usize), BTreeSet<usize>> {
    fn signatures(engine: &Engine, standard: bool) -> Vec<(String, usize, Vec<TypeId>)> {
        engine.collect_fn_metadata(
            None,
            |info| {
                let f = info.metadata;
                Some((
                    f.name.to_string(),
                    f.num_params,
                    f.param_types.iter().copied().collect(),
                ))
            },
            standard,
        )
    }
    // Rhai's own functions get the value in first position even where they take any value
    // (`tag`, `to_string`, `+` with a string): on a plain value they would see the value.
    let standard: HashSet<(String, usize)> = signatures(&Engine::new(), true)
        .into_iter()
        .map(|(name, arity, _)| (name, arity))
        .collect();
    let any = [TypeId::of::<Dynamic>(), TypeId::of::<ResourceHandle>()];
    let mut table: BTreeMap<(String, usize), BTreeSet<usize>> = BTreeMap::new();
    for (name, arity, types) in signatures(engine, true) {
        if NOT_FORWARDED.contains(&name.as_str()) || name.starts_with("__") {
            continue;
        }
        let accessor = name.starts_with(FN_GET) || name.starts_with(FN_SET);
        for at in 0..arity {
            let concrete = types.get(at).is_none_or(|ty| !any.contains(ty));
            let receiver = at == 0 && (accessor || standard.contains(&(name.clone(), arity)));
            if concrete || receiver {
                table.entry((name.clone(), arity)).or_default().insert(at);
            }
        }
    }
    for op in BINARY_OPERATORS {
        table.entry((op.to_string(), 2)).or_default().extend([0, 1]);
    }
    for op in UNARY_OPERATORS {
        table.entry((op.to_string(), 1)).or_default().insert(0);
    }
    for op in OP_ASSIGNMENTS {
        table.entry((op.to_string(), 2)).or_default().insert(0);
    }
    table
}

fn with_frame<R>(
    handle: &ResourceHandle,
    f: impl FnOnce(&mut Frame) -> ScriptResult<R>,
) -> ScriptResult<R> {
    check_free(handle)?;
    handle.write(|value| {
        if let Some(mut frame) = value.write_lock::<Frame>() {
            return f(&mut frame);
        }
        Err(script_error(format!(
            "drop_in_place() needs a DataFrame; the shared value is a {}",
            crate::cache::value::type_label(value)
        )))
    })
}

fn fail(err: crate::error::CellarError) -> Box<EvalAltResult> {
    script_error(err)
}

/// What `type_of` is read as: Rhai answers `type_of` itself from the Rust type, which for
/// a shared resource is the handle's; this answers with the type of the value it holds.
pub(crate) const TYPE_OF: &str = "__cellar_type_of";

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ResourceHandle>("Resource");
    // `type_of` is a keyword Rhai evaluates before looking up any function: the tokenizer
    // hands it over as a call of our own function instead. (`on_parse_token` is marked
    // volatile, not deprecated, by Rhai; it is the hook for exactly this.)
    #[allow(deprecated)]
    engine.on_parse_token(|token, _, _| match token {
        rhai::Token::Reserved(name) | rhai::Token::Identifier(name)
            if name.as_str() == "type_of" =>
        {
            rhai::Token::Identifier(Box::new(TYPE_OF.into()))
        }
        other => other,
    });
    engine.register_fn(TYPE_OF, |ctx: rhai::NativeCallContext, value: Dynamic| {
        let held = match value.read_lock::<ResourceHandle>() {
            Some(handle) => handle.snapshot(),
            None => value.clone(),
        };
        ctx.engine().map_type_name(held.type_name()).to_string()
    });

    // Every function the engine has, forwarded where a handle stands for its value. Read
    // before anything below is registered, so only the engine's own functions are listed.
    for ((name, arity), positions) in forwarding_table(engine) {
        for at in positions {
            let mut types = vec![TypeId::of::<Dynamic>(); arity];
            types[at] = TypeId::of::<ResourceHandle>();
            let forwarded = name.clone();
            engine.register_raw_fn(name.clone(), types, move |ctx, args| {
                forward(&ctx, &forwarded, at, args)
            });
        }
    }

    // Indexing and, through Rhai's fallback from properties to indexers, properties.
    let handle_and_any = [TypeId::of::<ResourceHandle>(), TypeId::of::<Dynamic>()];
    engine.register_raw_fn(FN_IDX_GET, handle_and_any, |ctx, args| {
        let handle = handle_of(args[0]).expect("registered for a handle");
        index_get(&ctx, &handle, std::mem::take(&mut *args[1]))
    });
    let handle_and_two = [
        TypeId::of::<ResourceHandle>(),
        TypeId::of::<Dynamic>(),
        TypeId::of::<Dynamic>(),
    ];
    engine.register_raw_fn(FN_IDX_SET, handle_and_two, |ctx, args| {
        let handle = handle_of(args[0]).expect("registered for a handle");
        let index = std::mem::take(&mut *args[1]);
        let new = std::mem::take(&mut *args[2]);
        index_set(&ctx, &handle, index, new)
    });

    // `for x in r`.
    engine.register_iterator_result::<ResourceHandle, Dynamic>();

    // `len` without copying the value.
    engine.register_raw_fn("len", [TypeId::of::<ResourceHandle>()], |ctx, args| {
        let handle = handle_of(args[0]).expect("registered for a handle");
        check_free(&handle)?;
        let counted = handle.read(|value| {
            if let Some(array) = value.read_lock::<Array>() {
                Some(array.len())
            } else if let Some(map) = value.read_lock::<Map>() {
                Some(map.len())
            } else if let Some(blob) = value.read_lock::<rhai::Blob>() {
                Some(blob.len())
            } else {
                value
                    .read_lock::<ImmutableString>()
                    .map(|s| s.chars().count())
            }
        });
        match counted {
            Some(n) => Ok(Dynamic::from_int(n as INT)),
            None => call_on_value(&ctx, "len", &handle, args),
        }
    });

    // A plain copy of the shared value, for code that wants to stop sharing (and for what
    // Rhai decides before looking up a function: `type_of(r.get())`, `switch r.get()`).
    engine.register_fn("get", |h: &mut ResourceHandle| -> ScriptResult<Dynamic> {
        check_free(h)?;
        Ok(h.snapshot())
    });

    // Cellar functions that change their first argument, which Rhai takes for pure.
    engine.register_fn(
        "drop_in_place",
        |h: &mut ResourceHandle, c: &str| -> ScriptResult<()> {
            with_frame(h, |frame| frame.drop_in_place(c).map_err(fail))
        },
    );
    engine.register_fn(
        "execute",
        |h: &mut ResourceHandle, sql: &str| -> ScriptResult<INT> {
            check_free(h)?;
            // Cloned out (it shares the one database handle) so no lock is held while the
            // statement runs.
            let conn = h.read(|value| value.read_lock::<SqliteConnection>().map(|c| c.clone()));
            let Some(conn) = conn else {
                return Err(h.read(|value| {
                    script_error(format!(
                        "execute() needs a connection; the shared value is a {}",
                        crate::cache::value::type_label(value)
                    ))
                }));
            };
            let changed = conn.execute(sql).map_err(fail)?;
            h.write(|_| ());
            Ok(changed as INT)
        },
    );
}
