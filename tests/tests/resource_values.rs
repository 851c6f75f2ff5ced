//! A `@cache_resource` value behaves like the value it holds (issue 10, defect 15).
//!
//! Streamlit hands out the cached object itself; Cellar hands out a handle to it. Every Rhai
//! operation on the handle must give what it gives on the plain value: the oracle is the same
//! notebook with the annotation removed (a plain fn, whose result is an ordinary value).
//! Writes through the handle are shared by every session, and a cell that writes is never
//! served from the cell cache.

use std::sync::mpsc;
use std::time::Duration;

use cellar_engine::CellStatus;
use cellar_tests::{Harness, errors, run_once, texts};

/// A notebook that calls `held()` (whose body is `value`) once, then evaluates each
/// expression in turn, writing its type and debug text, or its error. `annotated` makes
/// `held` a `@cache_resource` fn; otherwise it is a plain fn on a line of the same length,
/// so error positions agree.
fn notebook(value: &str, expressions: &[&str], annotated: bool) -> String {
    let mut nb = String::from(if annotated {
        "@cache_resource\n"
    } else {
        "// a plain fn..\n"
    });
    nb.push_str(&format!("fn held() {{ {value} }}\nlet r = held();\n"));
    for (i, expression) in expressions.iter().enumerate() {
        let expression = expression.trim_start_matches('!');
        nb.push_str(&format!(
            "try {{ let v = {expression}; write(`{i}: ${{type_of(v)}} ${{v.to_debug()}}`); }} \
             catch (err) {{ write(`{i}: error ${{err}}`); }}\n"
        ));
    }
    nb
}

/// An output line without the column of an error: an indexing error on a plain value points
/// at the index, on a resource at the bracket (a native indexer is only told where the
/// indexing is, not where its index stands). The line and everything else must agree.
fn without_column(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"position\": ") {
        out.push_str(&rest[..at]);
        rest = rest[at..].trim_start_matches("\"position\": ");
        rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

/// Runs each expression on a resource holding `value` and on the plain value, and checks
/// that they give the same output. An expression marked `!` must fail on the plain value
/// (and so on the resource), the others must succeed: the list tests what it says.
fn assert_behaves_like_plain(value: &str, expressions: &[&str]) {
    let plain = run_once(&notebook(value, expressions, false));
    let shared = run_once(&notebook(value, expressions, true));
    assert_eq!(errors(&plain), Vec::<String>::new());
    assert_eq!(errors(&shared), Vec::<String>::new());
    let plain = texts(&plain);
    let shared = texts(&shared);
    assert_eq!(plain.len(), expressions.len(), "{plain:#?}");
    assert_eq!(shared.len(), expressions.len(), "{shared:#?}");
    let mut wrong = Vec::new();
    for (i, expression) in expressions.iter().enumerate() {
        let failed = plain[i].starts_with(&format!("{i}: error"));
        if failed != expression.starts_with('!') {
            wrong.push(format!(
                "`{expression}` on the plain value {}: {}",
                if failed { "fails" } else { "works" },
                plain[i]
            ));
        }
        if without_column(&plain[i]) != without_column(&shared[i]) {
            wrong.push(format!(
                "`{expression}`\n    plain:    {}\n    resource: {}",
                plain[i], shared[i]
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "a resource holding {value} differs from the value:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn a_shared_array_behaves_like_the_array() {
    assert_behaves_like_plain(
        "[3, 1, 2]",
        &[
            // Comparisons, with the resource on either side.
            "r == [3, 1, 2]",
            "r != [3, 1, 2]",
            "[3, 1, 2] == r",
            "r == [1, 2]",
            "r == r",
            "r != ()",
            // Reading.
            "r.len()",
            "len(r)",
            "r.is_empty()",
            "r.len",
            "r.is_empty",
            "r[0]",
            "r[-1]",
            "!r[5]",
            "!r[\"x\"]",
            "r.get(1)",
            "r.get(7)",
            "2 in r",
            "9 in r",
            "9 !in r",
            "r.contains(1)",
            "r.index_of(2)",
            "[r[0], 5].contains(r[0])",
            "r.map(|x| x * 10)",
            "r.filter(|x| x > 1)",
            "r.reduce(|sum, x| sum + x, 0)",
            "r.some(|x| x > 2)",
            "r.all(|x| x > 0)",
            "r.find(|x| x < 3)",
            "r.extract(1)",
            "r.sort_by(|a, b| a - b)",
            "r + [4]",
            "[0] + r",
            "r.to_string()",
            "r.to_debug()",
            "`${r}`",
            "\"r is \" + r",
            "!r.keys()",
            "!r + 1",
            "{ let s = 0; for x in r { s += x; } s }",
            "{ let out = []; for (x, i) in r { out.push(x * i); } out }",
            "{ let a = [0]; a.append(r); a }",
            "{ let a = [0]; a.push(r); a.len() }",
            "{ let a = [0]; a += [r[0]]; a }",
            "!{ const c = held(); c.push(1); c }",
            // Writing.
            "{ r.sort(); r.to_debug() }",
            "{ r.push(4); r.len() }",
            "{ r.insert(0, 9); r.to_debug() }",
            "r.pop()",
            "r.shift()",
            "r.remove(0)",
            "{ r += [7, 7]; r.to_debug() }",
            "{ r.append([8]); r.to_debug() }",
            "{ r.dedup(); r.to_debug() }",
            "{ r.retain(|x| x != 8); r.to_debug() }",
            "{ r.reverse(); r.to_debug() }",
            "{ r[0] = 5; r[0] += 1; r.to_debug() }",
            "{ r.splice(0, 1, [1, 1]); r.to_debug() }",
            "r.drain(0..1)",
            "{ r.push(r); r.len() }",
            "{ r[0] = r; r.to_debug() }",
            "{ r.truncate(2); r.to_debug() }",
            "{ r.clear(); r.len() }",
        ],
    );
}

#[test]
fn a_shared_map_behaves_like_the_map() {
    assert_behaves_like_plain(
        r#"#{name: "ada", n: 1, tags: ["x"]}"#,
        &[
            "r == #{name: \"ada\", n: 1, tags: [\"x\"]}",
            "#{name: \"ada\", n: 1, tags: [\"x\"]} == r",
            "r != #{}",
            "r.name",
            "r[\"n\"]",
            "r.missing",
            "r[\"missing\"]",
            "r.len()",
            // A property of a map is a key, even one named like a method.
            "r.len",
            "r.keys()",
            "r.values()",
            "\"name\" in r",
            "\"zz\" in r",
            "r.contains(\"n\")",
            "r.get(\"name\")",
            "r.tags[0]",
            "r.tags.len()",
            "r + #{z: 1}",
            "r.filter(|k, v| k.len() > 1)",
            "r.to_json()",
            "`${r}`",
            "!{ let n = 0; for x in r { n += 1; } n }",
            "!r[0]",
            // Writing.
            "{ r.n += 1; r.n }",
            "{ r[\"n\"] *= 10; r.n }",
            "{ r.tags.push(\"y\"); r.tags }",
            "{ r.extra = 5; r.keys().len() }",
            "r.remove(\"extra\")",
            "{ r += #{w: 2}; r.w }",
            "{ r.mixin(#{q: 3}); r.q }",
            "{ r.retain(|k, v| k != \"w\"); r.keys() }",
            "r.drain(|k, v| k == \"q\")",
            "{ r.fill_with(#{n: 0, o: 1}); r.to_debug() }",
            "{ r.clear(); r.len() }",
        ],
    );
}

#[test]
fn a_shared_string_behaves_like_the_string() {
    assert_behaves_like_plain(
        r#""hello""#,
        &[
            "r == \"hello\"",
            "\"hello\" == r",
            "r != \"help\"",
            "r < \"world\"",
            "r.len()",
            "r.is_empty()",
            "r + \"!\"",
            "\"<\" + r",
            "r + 1",
            "`${r}!`",
            "r[0]",
            "r[-1]",
            "!r[9]",
            "'e' in r",
            "\"ll\" in r",
            "r.contains('h')",
            "r.index_of(\"l\")",
            "r.to_upper()",
            "r.sub_string(1, 3)",
            "r.split(\"l\")",
            "r.chars()",
            "r.starts_with(\"he\")",
            "r.to_string()",
            "r.to_debug()",
            "r.to_blob()",
            "\"say \" + r.to_upper()",
            "\"hello world\".contains(r)",
            "{ let out = \"\"; for c in r { out = c + out; } out }",
            "!r.push(1)",
            // Writing.
            "{ r += \" world\"; r.to_debug() }",
            "{ r.make_upper(); r.to_debug() }",
            "{ r.replace(\"H\", \"J\"); r.to_debug() }",
            "{ r[0] = 'X'; r.to_debug() }",
            "{ r.pad(14, '.'); r.to_debug() }",
            "{ r.truncate(3); r.to_debug() }",
            "{ r.clear(); r.is_empty() }",
        ],
    );
}

#[test]
fn a_shared_number_behaves_like_the_number() {
    assert_behaves_like_plain(
        "41",
        &[
            "r == 41",
            "41 == r",
            "r != 40",
            "r > 40",
            "r < 40",
            "r >= 41",
            "r + 1",
            "1 + r",
            "r - 1",
            "r * 2",
            "r / 2",
            "r % 5",
            "r ** 2",
            "-r",
            "r + 0.5",
            "r & 1",
            "r << 2",
            "r.to_float()",
            "r.is_odd()",
            "r.abs()",
            "max(r, 50)",
            "min(3, r)",
            "r.to_string()",
            "r.to_hex()",
            "`${r}`",
            "\"n = \" + r",
            "r[0]",
            "r[1]",
            "{ let c = 0; for b in r.bits() { if b { c += 1; } } c }",
            "{ let s = 0; for i in 0..r { s += 1; } s }",
            "[1, 41, 3].contains(r)",
            "[1, 41, 3].index_of(r)",
            "{ let a = [1, 2]; a.push(r); a.len() }",
            "!{ let s = 0; for i in r { s += 1; } s }",
            "!r.push(1)",
            // Writing.
            "{ r += 1; r * 1 }",
            "{ r -= 2; r * 1 }",
            "{ r *= 3; r * 1 }",
            "{ r[0] = false; r * 1 }",
            "{ let x = 2; x += r; x }",
            "{ let x = 200; x -= r; x }",
        ],
    );
}

#[test]
fn a_shared_float_behaves_like_the_float() {
    assert_behaves_like_plain(
        "2.5",
        &[
            "r == 2.5",
            "r * 2",
            "2 * r",
            "r > 2",
            "r.floor()",
            "r.round()",
            "r.to_int()",
            "-r",
            "`${r}`",
            "{ r /= 2.0; r * 1.0 }",
        ],
    );
}

#[test]
fn shared_booleans_characters_blobs_and_ranges_behave_like_the_values() {
    assert_behaves_like_plain(
        "true",
        &[
            "(!r)",
            "r == true",
            "r != false",
            "r ^ true",
            "`${r}`",
            "r.to_string()",
        ],
    );
    assert_behaves_like_plain(
        "'a'",
        &[
            "r == 'a'",
            "r < 'b'",
            "r.to_upper()",
            "\"x\" + r",
            "r + \"x\"",
            "r.to_int()",
        ],
    );
    assert_behaves_like_plain(
        "blob(3, 7)",
        &[
            "r.len()",
            "r[0]",
            "r == blob(3, 7)",
            "r.to_array()",
            "{ let out = []; for b in r { out.push(b); } out }",
            "{ let t = \"\"; for b in r { t = type_of(b); } t }",
            "{ r.push(5); r.to_debug() }",
            "{ r[1] = 1; r.to_debug() }",
            "{ r += blob(1, 2); r.len() }",
        ],
    );
    assert_behaves_like_plain(
        "1..4",
        &[
            "r.start",
            "r.end",
            "2 in r",
            "r.contains(9)",
            "r == 1..4",
            "{ let s = 0; for i in r { s += i; } s }",
            "r.is_empty",
        ],
    );
}

#[test]
fn a_shared_frame_behaves_like_the_frame() {
    assert_behaves_like_plain(
        r#"read_csv("samples/uber.csv")"#,
        &[
            "r.height()",
            "r.width()",
            "r.len()",
            "r.columns()",
            "r.head(2).height()",
            "r.head().height()",
            "r.select([\"Lat\", \"Base\"]).columns()",
            "r.sort(\"Lat\").row(0)",
            "r.sort(\"Lat\", true).row(0).Lat",
            "r.row(1)",
            "r.column(\"Base\").len()",
            "r.drop(\"Lat\").columns()",
            "!r.row(100000)",
            "!r.column(\"nope\")",
            "r.to_string().len() > 0",
            // Writing.
            "{ r.drop_in_place(\"Lat\"); r.columns() }",
            "!r.drop_in_place(\"Lat\")",
        ],
    );
}

#[test]
fn a_shared_connection_behaves_like_the_connection() {
    assert_behaves_like_plain(
        r#"sqlite_connect("samples/shop.db")"#,
        &[
            "r.is_open()",
            "r.query(\"SELECT COUNT(*) AS n FROM orders\").row(0).n",
            "r.to_string()",
            "`${r}`",
            "!r.query(\"SELECT nope FROM nowhere\")",
        ],
    );
}

#[test]
fn type_of_names_the_held_value_and_get_is_a_plain_copy() {
    // Rhai answers `type_of` from the Rust type before looking up any function; Cellar reads
    // the keyword as its own function, which looks through the handle.
    let nb = r#"
@cache_resource
fn held() { [1, 2] }
@cache_resource
fn dict() { #{a: 1} }
@cache_resource
fn frame() { sql("SELECT 1 AS x") }
let r = held();
write(type_of(r));
write(r.type_of());
write(type_of(dict()));
write(type_of(frame()));
write(type_of(r.get()));
write(type_of(1) + " " + type_of("type_of"));
let copy = r.get();
copy.push(3);
write(`${r.len()} ${copy.len()}`);
"#;
    let report = run_once(nb);
    assert_eq!(errors(&report), Vec::<String>::new());
    assert_eq!(
        texts(&report),
        [
            "array",
            "array",
            "map",
            "DataFrame",
            "array",
            "i64 string",
            "2 3"
        ]
    );
}

/// One resource per kind of value, changed through every kind of write.
const SHARED_WRITES: &str = r#"// %% Resources
@cache_resource
fn list() { [] }
@cache_resource
fn dict() { #{} }
@cache_resource
fn text() { "" }
@cache_resource
fn number() { 0 }
let l = list();
let d = dict();
let t = text();
let n = number();
// %% Writes
l.push(l.len());
l.retain(|x| x >= 0);
d.visits = (d.visits ?? 0) + 1;
d["seen"] = d.visits > 1;
t += "x";
n += 1;
write(`${l} ${d.visits} ${d.seen} ${t} ${n}`);
"#;

#[test]
fn writes_through_a_resource_are_shared_and_never_served_from_the_cell_cache() {
    let expected = [
        "[0] 1 false x 1",
        "[0, 1] 2 true xx 2",
        "[0, 1, 2] 3 true xxx 3",
        "[0, 1, 2, 3] 4 true xxxx 4",
    ];
    // With the cell cache, as without it: sessions A, B, A, B each see the others' writes.
    for mut harness in [Harness::default(), Harness::functions_only(None)] {
        let mut seen = Vec::new();
        for session in ["A", "B", "A", "B"] {
            let report = harness.run(session, SHARED_WRITES);
            assert_eq!(errors(&report), Vec::<String>::new());
            assert!(
                !report.cells[1].status.is_hit(),
                "a cell that writes a resource ran again"
            );
            seen.extend(texts(&report));
        }
        assert_eq!(seen, expected);
    }
}

#[test]
fn a_cell_that_only_reads_a_resource_is_served_from_the_cell_cache() {
    // Rhai writes the item back after a method call in a chain (`r.tags.len()`): storing
    // the value the slot already holds is a read, not a mutation.
    let nb = r#"// %% Load
@cache_resource
fn model() { #{positive: ["love", "great"], tags: ["a", "b"], n: 2} }
let m = model();
// %% Read
let q = "I love it";
write(m.positive.some(|w| q.contains(w)));
write(m.tags.len());
write(m.n + 1);
write(m == #{positive: ["love", "great"], tags: ["a", "b"], n: 2});
for tag in m.tags { write(tag); }
"#;
    let mut h = Harness::default();
    let first = h.run("A", nb);
    let second = h.run("A", nb);
    assert_eq!(errors(&first), Vec::<String>::new());
    assert_eq!(texts(&first), ["true", "2", "3", "true", "a", "b"]);
    assert_eq!(texts(&second), texts(&first));
    assert_eq!(second.cells[1].status, CellStatus::Hit);
}

#[test]
fn a_closure_may_use_the_resource_its_call_is_changing() {
    // The closure of `retain` and `sort` is script code: it runs without the lock, so it may
    // read the very resource being changed (through another variable) without a deadlock.
    let nb = r#"
@cache_resource
fn held() { [5, 3, 9, 1] }
let r = held();
let same = held();
r.retain(|x| x < same.len() + 2);
r.sort(|a, b| b - a + same.len() * 0);
write(r);
write(same);
"#;
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let report = run_once(nb);
        let _ = sender.send((texts(&report), errors(&report)));
    });
    let (texts, errors) = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the run finished (no deadlock)");
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(texts, ["[5, 3, 1]", "[5, 3, 1]"]);
}
