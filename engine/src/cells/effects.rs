//! The effects a cell's code can reach, read off Rhai's own AST: every function the cell
//! calls, and every script function those call in turn, must declare an effect its trace
//! covers (see `script::effects`). The walk stops at cached functions: what they read is
//! governed by their own policy (their wrapper only calls `__cellar_cached`).
//!
//! The analysis over-approximates on purpose: a call on a branch that did not run still
//! counts. When in doubt, the cell runs.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use rhai::{AST, ASTNode, Expr, FnCallExpr, Stmt};

use crate::script::effects::{Effect, EffectTable};

/// What a cell's code can reach.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reach {
    /// Why the cell can never be served from the cache (an effect its trace cannot cover),
    /// or `None` when every effect it can have is covered.
    pub uncovered: Option<String>,
    /// Whether it can catch an error (`try ... catch`): a caught error carries the line and
    /// column it happened at, so where code sits in the file is part of the output.
    pub catches_errors: bool,
    /// The script fns it reaches (cached fns by their wrapper), in the order found.
    pub fns: Vec<String>,
}

/// The notebook's script fns, each read once however many cells reach it: what it refers
/// to, and whether it can catch an error.
pub(crate) struct Library<'a> {
    ast: &'a AST,
    names: HashSet<String>,
    bodies: RefCell<HashMap<String, Rc<Body>>>,
}

/// What one script fn (all its overloads) refers to.
struct Body {
    references: Vec<Reference>,
    catches_errors: bool,
}

impl<'a> Library<'a> {
    /// The fns of `ast` (every script fn of the notebook).
    pub(crate) fn new(ast: &'a AST) -> Self {
        Self {
            ast,
            names: ast.iter_functions().map(|f| f.name.to_string()).collect(),
            bodies: RefCell::new(HashMap::new()),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    fn body(&self, name: &str) -> Rc<Body> {
        if let Some(body) = self.bodies.borrow().get(name) {
            return body.clone();
        }
        // (`clone_functions_only_filtered` keeps every fn when the AST it builds starts
        // empty, in Rhai 1.27: retain on a clone instead.)
        let mut only = self.ast.clone_functions_only();
        only.retain_functions(|_, _, n, _| n == name);
        let body = Rc::new(Body {
            references: references(&only, &self.names),
            catches_errors: has_try(&only),
        });
        self.bodies
            .borrow_mut()
            .insert(name.to_string(), body.clone());
        body
    }
}

/// What the cell whose code is `cell` can reach in `library`.
///
/// `resources` maps each `@cache_resource` fn to its implementation: the walk stops at
/// cached fns, but a resource can hand out code (a fn pointer in a map it returns), so the
/// fns a resource's implementation points to count as reached by the cells that use it.
pub(crate) fn reach(
    cell: &AST,
    library: &Library,
    table: &EffectTable,
    resources: &HashMap<String, String>,
) -> Reach {
    let statements = cell.clone_statements_only();
    let mut fns = Vec::new();
    let uncovered = uncovered_effect(&statements, library, table, resources, &mut fns);
    let catches_errors =
        has_try(&statements) || fns.iter().any(|name| library.body(name).catches_errors);
    Reach {
        uncovered,
        catches_errors,
        fns,
    }
}

fn has_try(ast: &AST) -> bool {
    let mut found = false;
    ast.walk(&mut |path: &[ASTNode]| {
        found |= matches!(path.last(), Some(ASTNode::Stmt(Stmt::TryCatch(..))));
        !found
    });
    found
}

/// Why the cell whose statements are `statements` can never be served from the cache, or
/// `None`. `walked` gets the name of every script fn reached, in the order found.
fn uncovered_effect(
    statements: &AST,
    library: &Library,
    table: &EffectTable,
    resources: &HashMap<String, String>,
    walked: &mut Vec<String>,
) -> Option<String> {
    let mut queue: VecDeque<Reference> =
        references(statements, &library.names).into_iter().collect();
    let mut seen: HashSet<String> = HashSet::new();
    while let Some(reference) = queue.pop_front() {
        let name = match reference {
            Reference::Call(name) | Reference::Pointer(name) => name,
            // `x in y` calls `contains`, which a notebook fn may define.
            Reference::Operator(name) if library.has(&name) => name,
            Reference::Operator(name) => {
                // Unknown: one of Rhai's built-in operators on its own types.
                if let Some(effect) = table.get(&name)
                    && let Some(reason) = uncovered(&name, effect)
                {
                    return Some(reason);
                }
                continue;
            }
            Reference::Property(getter) => {
                // A getter declared with an effect (Rhai's `elapsed`); any other property is
                // a map field or a pure getter.
                if let Some(effect) = table.get(&getter)
                    && let Some(reason) = uncovered(&getter, effect)
                {
                    return Some(reason);
                }
                continue;
            }
            Reference::Dynamic(what) => return Some(what),
        };
        if library.has(&name) {
            if seen.insert(name.clone()) {
                queue.extend(library.body(&name).references.iter().cloned());
                if let Some(implementation) = resources.get(&name) {
                    queue.extend(
                        pointers_from(implementation, library)
                            .into_iter()
                            .map(Reference::Call),
                    );
                }
                walked.push(name.clone());
            }
            // A script fn may shadow an API function of the same name for some arities only.
            if let Some(effect) = table.get(&name)
                && let Some(reason) = uncovered(&name, effect)
            {
                return Some(reason);
            }
            continue;
        }
        match table.get(&name) {
            Some(effect) => {
                if let Some(reason) = uncovered(&name, effect) {
                    return Some(reason);
                }
            }
            None => {
                return Some(format!(
                    "calls `{name}()`, which declares no effect (declare it with Runtime::declare_effect)"
                ));
            }
        }
    }
    None
}

/// The reason an effect keeps a cell from being cached, if it does.
fn uncovered(name: &str, effect: Effect) -> Option<String> {
    match effect {
        Effect::Pure | Effect::Traced | Effect::CheckedAtRunTime => None,
        Effect::ReadsOutside(what) | Effect::WritesOutside(what) => {
            Some(format!("calls `{name}()`, which {what}"))
        }
        Effect::Dynamic => Some(format!(
            "calls `{name}`, so which function runs is known only at run time"
        )),
    }
}

/// The fns that code reachable from `start` makes pointers to (closures, `Fn("f")`, a bare
/// fn name): what a value it returns may carry.
fn pointers_from(start: &str, library: &Library) -> Vec<String> {
    let mut pointers = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue = vec![start.to_string()];
    while let Some(name) = queue.pop() {
        if !library.has(&name) || !seen.insert(name.clone()) {
            continue;
        }
        for reference in &library.body(&name).references {
            match reference {
                Reference::Pointer(target) => {
                    pointers.push(target.clone());
                    queue.push(target.clone());
                }
                Reference::Call(target) => queue.push(target.clone()),
                _ => {}
            }
        }
    }
    pointers
}

/// Something a piece of code refers to that may run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Reference {
    /// A function or method called by name.
    Call(String),
    /// A pointer made to a fn (a literal `Fn("name")`, a closure, a bare fn name, a string
    /// naming it): it may be called wherever the pointer goes.
    Pointer(String),
    /// An operator (`+`, `==`, `in`).
    Operator(String),
    /// A property getter (`x.name`).
    Property(String),
    /// A call whose target is computed at run time.
    Dynamic(String),
}

/// Everything `ast` (statements and functions) refers to, in order.
fn references(ast: &AST, script_fns: &HashSet<String>) -> Vec<Reference> {
    let mut found = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, _) | Expr::MethodCall(call, _)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => note_call(call, &mut found),
            // A closure, or a constant the optimizer folded (a map or array holding
            // pointers or names of fns).
            Some(ASTNode::Expr(Expr::DynamicConstant(value, _))) => {
                pointers_in(value, script_fns, &mut found);
            }
            // A bare fn name where a value is expected becomes a pointer to it.
            Some(ASTNode::Expr(Expr::Variable(variable, ..)))
                if script_fns.contains(variable.1.as_str()) =>
            {
                found.push(Reference::Pointer(variable.1.to_string()));
            }
            // A string naming a notebook fn may be called by name (`[1].map("f")`, Rhai's
            // older callbacks): take it as a call.
            Some(ASTNode::Expr(Expr::StringConstant(text, _)))
                if script_fns.contains(text.as_str()) =>
            {
                found.push(Reference::Pointer(text.to_string()));
            }
            // `global::K` is read without the variable hook that traces reads.
            Some(ASTNode::Expr(Expr::Variable(variable, ..))) if !variable.2.is_empty() => {
                found.push(Reference::Dynamic(format!(
                    "reads `{}::{}`, which no trace records (pass it in a variable)",
                    variable.2, variable.1
                )));
            }
            // A module file is read by `import`: nothing traces it.
            Some(ASTNode::Stmt(Stmt::Import(..))) => {
                found.push(Reference::Dynamic("imports a module file".to_string()));
            }
            Some(ASTNode::Expr(Expr::Property(property, _))) => {
                found.push(Reference::Property(property.0.0.to_string()));
            }
            _ => {}
        }
        true
    });
    found
}

/// The fn pointers (and strings naming notebook fns) inside a constant value.
fn pointers_in(value: &rhai::Dynamic, script_fns: &HashSet<String>, found: &mut Vec<Reference>) {
    if let Some(pointer) = value.read_lock::<rhai::FnPtr>() {
        found.push(Reference::Pointer(pointer.fn_name().to_string()));
    } else if let Some(text) = value.read_lock::<rhai::ImmutableString>() {
        if script_fns.contains(text.as_str()) {
            found.push(Reference::Pointer(text.to_string()));
        }
    } else if let Some(array) = value.read_lock::<rhai::Array>() {
        for item in array.iter() {
            pointers_in(item, script_fns, found);
        }
    } else if let Some(map) = value.read_lock::<rhai::Map>() {
        for item in map.values() {
            pointers_in(item, script_fns, found);
        }
    }
}

fn note_call(call: &FnCallExpr, found: &mut Vec<Reference>) {
    let name = call.name.as_str();
    if call.op_token.is_some() {
        found.push(Reference::Operator(name.to_string()));
        return;
    }
    match name {
        "Fn" => match call.args.first() {
            Some(Expr::StringConstant(target, _)) => {
                found.push(Reference::Pointer(target.to_string()));
            }
            _ => found.push(Reference::Dynamic(
                "makes a function pointer from a computed name (`Fn(...)`), so which function runs is known only at run time".to_string(),
            )),
        },
        // Calling or currying a pointer runs its target, which was referred to where the
        // pointer was made (a literal `Fn`, a closure, a fn name): covered there.
        "call" | "curry" => {}
        "eval" => found.push(Reference::Dynamic("calls `eval`, so which function runs is known only at run time".to_string())),
        _ => found.push(Reference::Call(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(cell: &str, library: &str) -> Option<String> {
        let engine = crate::script::build_engine();
        let table = EffectTable::standard();
        let cell_ast = engine.compile(cell).unwrap();
        let library_ast = engine
            .compile(library)
            .unwrap()
            .merge(&cell_ast.clone_functions_only());
        super::reach(
            &cell_ast,
            &Library::new(&library_ast),
            &table,
            &HashMap::new(),
        )
        .uncovered
    }

    #[test]
    fn pure_code_and_widgets_are_covered() {
        assert_eq!(
            reason("let x = slider(\"n\", 1, 9, 3); write(x + 1);", ""),
            None
        );
        assert_eq!(reason("let s = \"a\" + 1; write(s.len());", ""), None);
        assert_eq!(reason("let f = |x| x * 2; write(f.call(2));", ""), None);
    }

    #[test]
    fn outside_reads_are_found_through_helpers_pointers_and_closures() {
        let clock = Some("calls `now()`, which reads the clock".to_string());
        assert_eq!(reason("write(now());", ""), clock);
        assert_eq!(
            reason(
                "write(helper());",
                "fn helper() { inner() } fn inner() { now() }"
            ),
            clock
        );
        assert_eq!(
            reason("write(Fn(\"helper\").call());", "fn helper() { now() }"),
            clock
        );
        assert_eq!(reason("let f = || now(); write(f.call());", ""), clock);
        assert_eq!(reason("write(1.helper());", "fn helper() { now() }"), clock);
        assert!(
            reason(
                "let n = \"helper\"; write(Fn(n).call());",
                "fn helper() { 1 }"
            )
            .unwrap()
            .contains("computed name")
        );
        assert!(reason("eval(\"1\");", "").unwrap().contains("eval"));
        assert!(
            reason("let t = timestamp(); write(t.elapsed);", "")
                .unwrap()
                .contains("clock")
        );
    }

    #[test]
    fn a_database_read_or_an_undeclared_function_is_uncovered() {
        assert_eq!(
            reason(
                "let c = sqlite_connect(\":memory:\"); write(c.query(\"SELECT 1\"));",
                ""
            ),
            Some("calls `sqlite_connect()`, which opens a SQLite database".to_string())
        );
        let mut engine = crate::script::build_engine();
        engine.register_fn("fetch_prices", || 1_i64);
        let table = EffectTable::standard();
        let ast = engine.compile("write(fetch_prices());").unwrap();
        assert!(
            reach(&ast, &Library::new(&ast), &table, &HashMap::new())
                .uncovered
                .unwrap()
                .contains("declares no effect")
        );
    }

    #[test]
    fn a_cached_fn_body_is_its_own_business() {
        // What the annotation preprocessing makes of a cached fn: a wrapper that only calls
        // `__cellar_cached`, and the implementation under another name.
        let library = "fn load() { __cellar_cached(\"load\", []) } fn load__cellar() { now() }";
        assert_eq!(reason("write(load());", library), None);
    }

    #[test]
    fn imports_and_caught_errors_are_seen() {
        assert!(
            reason("import \"m\" as m; write(m::x);", "")
                .unwrap()
                .contains("import")
        );
        let engine = crate::script::build_engine();
        let table = EffectTable::standard();
        let library = engine
            .compile("fn careful() { try { risky() } catch { 0 } } fn risky() { throw 1; }")
            .unwrap();
        let cell = engine.compile("write(careful());").unwrap();
        assert!(reach(&cell, &Library::new(&library), &table, &HashMap::new()).catches_errors);
        let plain = engine.compile("write(1);").unwrap();
        assert!(!reach(&plain, &Library::new(&library), &table, &HashMap::new()).catches_errors);
    }

    #[test]
    fn code_a_resource_hands_out_counts_as_reached() {
        let engine = crate::script::build_engine();
        let table = EffectTable::standard();
        let library = engine
            .compile(
                "fn clock() { now() } fn ops() { __cellar_cached(\"ops\", []) } \
                 fn ops__cellar() { #{ tick: Fn(\"clock\") } }",
            )
            .unwrap();
        let cell = engine.compile("write(ops().tick.call());").unwrap();
        let resources = HashMap::from([("ops".to_string(), "ops__cellar".to_string())]);
        assert!(
            reach(&cell, &Library::new(&library), &table, &resources)
                .uncovered
                .is_some_and(|r| r.contains("now"))
        );
        // A data fn's value cannot hold a pointer: its implementation stays its own business.
        assert_eq!(
            reach(&cell, &Library::new(&library), &table, &HashMap::new()).uncovered,
            None
        );
    }
}
