//! The oracle that keeps caching sound: generated notebooks run as a sequence of runs with
//! the world changing in between (widgets moved, buttons clicked, a CSV rewritten, rows
//! inserted into SQLite through another connection, a helper's code edited, a file
//! appearing and disappearing, cells moved, deleted and copied: a cell keeps its cache entry
//! when cells around it change, so a moved cell must never be served what it showed where
//! it was). Every run is done three times, by three runtimes that see
//! the same world: with the cell cache, with `--no-cell-cache`, and with every cache
//! annotation stripped. Outputs and variables (each written with its type by a last cell)
//! must be equal run by run.
//!
//! `CELLAR_ORACLE_CASES=5000 cargo test -p cellar-tests --test oracle` runs a longer search
//! than CI's default. A mismatch is shrunk by proptest; keep it as a regression test below.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cellar_engine::cache::{CacheRegistry, SystemClock};
use cellar_engine::{ElementKind, Notebook, RunOptions, Runtime, Session, WidgetValue};
use proptest::prelude::*;

const CSV: &str = "oracle_data.csv";
const OPTIONAL_CSV: &str = "oracle_optional.csv";
const DB: &str = "oracle_shop.db";

/// One cell of a generated notebook. `from` picks an earlier numeric variable (modulo how
/// many there are; a literal when there are none).
#[derive(Clone, Debug)]
enum CellSpec {
    Slider(u8),
    CsvRows,
    Arith {
        from: usize,
        k: i64,
    },
    CachedRows {
        from: usize,
    },
    Helper {
        from: usize,
    },
    DbCount,
    SqlOverFrame,
    SqlReadsFile,
    Const(i64),
    AssignEarlier {
        target: usize,
    },
    Char,
    TryOptional,
    Button(u8),
    CachedButton,
    PushShared,
    SharedLen,
    CatchFailingCached,
    /// Fails when the number it divides by is a multiple of 3 (its variable then missing).
    Divide {
        from: usize,
    },
    /// Reads an earlier variable inside `try`: it may be missing.
    TryRead {
        target: usize,
    },
    /// An array and a closure that captured it.
    Captured,
    /// Pushes to an array a closure captured.
    PushCaptured {
        from: usize,
    },
    /// Calls a closure that captured an array.
    CallClosure {
        from: usize,
    },
}

/// What changes in the world between two runs.
#[derive(Clone, Debug)]
enum Change {
    SetSlider(u8, i64),
    Click(u8),
    ClickCached,
    RewriteCsv(u8, u8),
    InsertRows(u8),
    EditHelper(i64),
    ToggleOptional,
    /// Moves the cell at one place in the notebook to another (modulo how many there are).
    MoveCell(usize, usize),
    /// Deletes a cell (never the last one).
    DeleteCell(usize),
    /// Inserts, at the first place, a copy of the cell at the second (the same title and
    /// code: it defines the same variable again).
    CopyCell(usize, usize),
    Nothing,
}

fn cell_spec() -> impl Strategy<Value = CellSpec> {
    prop_oneof![
        (0u8..2).prop_map(CellSpec::Slider),
        Just(CellSpec::CsvRows),
        (0usize..8, -3i64..4).prop_map(|(from, k)| CellSpec::Arith { from, k }),
        (0usize..8).prop_map(|from| CellSpec::CachedRows { from }),
        (0usize..8).prop_map(|from| CellSpec::Helper { from }),
        Just(CellSpec::DbCount),
        Just(CellSpec::SqlOverFrame),
        Just(CellSpec::SqlReadsFile),
        (0i64..5).prop_map(CellSpec::Const),
        (0usize..8).prop_map(|target| CellSpec::AssignEarlier { target }),
        Just(CellSpec::Char),
        Just(CellSpec::TryOptional),
        (0u8..2).prop_map(CellSpec::Button),
        Just(CellSpec::CachedButton),
        Just(CellSpec::PushShared),
        Just(CellSpec::SharedLen),
        Just(CellSpec::CatchFailingCached),
        (0usize..8).prop_map(|from| CellSpec::Divide { from }),
        (0usize..8).prop_map(|target| CellSpec::TryRead { target }),
        Just(CellSpec::Captured),
        (0usize..8).prop_map(|from| CellSpec::PushCaptured { from }),
        (0usize..8).prop_map(|from| CellSpec::CallClosure { from }),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0u8..2, 0i64..10).prop_map(|(w, v)| Change::SetSlider(w, v)),
        (0u8..2).prop_map(Change::Click),
        Just(Change::ClickCached),
        (1u8..6, 0u8..10).prop_map(|(rows, seed)| Change::RewriteCsv(rows, seed)),
        (1u8..3).prop_map(Change::InsertRows),
        (0i64..5).prop_map(Change::EditHelper),
        Just(Change::ToggleOptional),
        (0usize..8, 0usize..8).prop_map(|(from, to)| Change::MoveCell(from, to)),
        (0usize..8).prop_map(Change::DeleteCell),
        (0usize..8, 0usize..8).prop_map(|(at, of)| Change::CopyCell(at, of)),
        Just(Change::Nothing),
    ]
}

/// Applies a change of the notebook's layout: `layout` lists the generated cells (by their
/// index) in the order the notebook has them.
fn change_layout(layout: &mut Vec<usize>, change: &Change) {
    match *change {
        Change::MoveCell(from, to) if !layout.is_empty() => {
            let cell = layout.remove(from % layout.len());
            layout.insert(to % (layout.len() + 1), cell);
        }
        Change::DeleteCell(at) if layout.len() > 1 => {
            layout.remove(at % layout.len());
        }
        Change::CopyCell(at, of) if !layout.is_empty() => {
            let cell = layout[of % layout.len()];
            layout.insert(at % (layout.len() + 1), cell);
        }
        _ => {}
    }
}

/// The notebook's text: a library cell with the cached fns and the helper, the generated
/// cells (their code written as if in generation order, then placed as `layout` says),
/// then one cell per variable that writes its type and value.
fn render(cells: &[CellSpec], layout: &[usize], helper_k: i64, annotated: bool) -> String {
    // Stripped annotations leave their line empty, so errors point at the same lines.
    let at = |annotation: &str| {
        if annotated {
            format!("{annotation}\n")
        } else {
            "\n".to_string()
        }
    };
    let mut text = String::new();
    text.push_str("// %% Library\n");
    text.push_str(&format!(
        "fn helper(x) {{ x * 10 + {helper_k} }}\n\
         {}fn cached_rows(x) {{ read_csv(\"{CSV}\").height() + helper(x) }}\n\
         {}fn optional_rows() {{ read_csv(\"{OPTIONAL_CSV}\").height() }}\n\
         {}fn db() {{ sqlite_connect(\"{DB}\") }}\n\
         {}fn clicked() {{ if button(\"cached click\") {{ 1 }} else {{ 0 }} }}\n\
         {}fn shared_list() {{ [] }}\n\
         {}fn always_fails(x) {{ throw `no luck with ${{x}}`; }}\n",
        at("@cache_data"),
        at("@cache_data"),
        at("@cache_resource"),
        at("@cache_data(experimental_allow_widgets = true)"),
        at("@cache_resource"),
        at("@cache_data"),
    ));
    let mut numbers: Vec<String> = Vec::new();
    let mut all: Vec<String> = Vec::new();
    // Arrays captured by closures, and the closures.
    let mut captured: Vec<(String, String)> = Vec::new();
    let mut generated: Vec<String> = Vec::new();
    for (i, cell) in cells.iter().enumerate() {
        let var = format!("v{i}");
        let pick = |from: &usize| {
            if numbers.is_empty() {
                "2".to_string()
            } else {
                numbers[from % numbers.len()].clone()
            }
        };
        let (code, numeric) = match cell {
            CellSpec::Slider(w) => (format!("let {var} = slider(\"s{w}\", 0, 9, 3);"), true),
            CellSpec::CsvRows => (format!("let {var} = read_csv(\"{CSV}\").height();"), true),
            CellSpec::Arith { from, k } => (format!("let {var} = {} * {k} + 1;", pick(from)), true),
            CellSpec::CachedRows { from } => {
                (format!("let {var} = cached_rows({});", pick(from)), true)
            }
            CellSpec::Helper { from } => (format!("let {var} = helper({});", pick(from)), true),
            CellSpec::DbCount => (
                format!(
                    "let {var} = db().query(\"SELECT COUNT(*) AS n FROM t\").column(\"n\")[0];"
                ),
                true,
            ),
            CellSpec::SqlOverFrame => (
                format!(
                    "let {var} = sql(\"SELECT SUM(a) AS s FROM t\", #{{t: read_csv(\"{CSV}\")}}).column(\"s\")[0];"
                ),
                true,
            ),
            CellSpec::SqlReadsFile => (
                format!(
                    "let {var} = sql(\"SELECT COUNT(*) AS n FROM read_csv('{CSV}')\").column(\"n\")[0];"
                ),
                true,
            ),
            CellSpec::Const(k) => (format!("const {var} = {k};"), true),
            CellSpec::AssignEarlier { target } => {
                if numbers.is_empty() {
                    (format!("let {var} = 0;"), true)
                } else {
                    let target = &numbers[target % numbers.len()];
                    (format!("{target} = 5;\nlet {var} = {target};"), true)
                }
            }
            CellSpec::Char => (format!("let {var} = 'c';"), false),
            CellSpec::TryOptional => (
                format!(
                    "let {var} = -1;\ntry {{ {var} = optional_rows(); }} catch (e) {{ write(\"no optional file\"); }}"
                ),
                true,
            ),
            CellSpec::Button(b) => (
                format!("let {var} = if button(\"b{b}\") {{ 1 }} else {{ 0 }};"),
                true,
            ),
            CellSpec::CachedButton => (format!("let {var} = clicked();"), true),
            CellSpec::PushShared => (format!("shared_list().push({i});\nlet {var} = {i};"), true),
            CellSpec::SharedLen => (format!("let {var} = shared_list().len();"), true),
            CellSpec::Divide { .. }
            | CellSpec::TryRead { .. }
            | CellSpec::Captured
            | CellSpec::PushCaptured { .. }
            | CellSpec::CallClosure { .. } => (String::new(), true),
            CellSpec::CatchFailingCached => (
                format!(
                    "let {var} = 0;\ntry {{ {var} = always_fails({i}); }} catch (e) {{ {var} = 7; write(\"caught\"); }}"
                ),
                true,
            ),
        };
        let (code, numeric) = match cell {
            CellSpec::Divide { from } => (format!("let {var} = 10 / ({} % 3);", pick(from)), true),
            CellSpec::TryRead { target } => match numbers.get(target % numbers.len().max(1)) {
                Some(target) => (
                    format!("let {var} = -1;\ntry {{ {var} = {target}; }} catch {{ }}"),
                    true,
                ),
                None => (format!("let {var} = -2;"), true),
            },
            CellSpec::Captured => {
                captured.push((format!("a{i}"), format!("f{i}")));
                (
                    format!("let a{i} = [{i}];\nlet f{i} = || a{i};\nlet {var} = {i};"),
                    true,
                )
            }
            CellSpec::PushCaptured { from } => match captured.get(from % captured.len().max(1)) {
                Some((array, _)) => (
                    format!("{array}.push(1);\nlet {var} = {array}.len();"),
                    true,
                ),
                None => (format!("let {var} = -3;"), true),
            },
            CellSpec::CallClosure { from } => match captured.get(from % captured.len().max(1)) {
                Some((_, closure)) => (format!("let {var} = {closure}.call().len();"), true),
                None => (format!("let {var} = -4;"), true),
            },
            _ => (code, numeric),
        };
        generated.push(format!("// %% Cell {i}\n{code}\n"));
        if numeric {
            numbers.push(var.clone());
        }
        all.push(var);
    }
    for &cell in layout {
        text.push_str(&generated[cell]);
    }
    for var in &all {
        text.push_str(&format!(
            "// %% Show {var}\nwrite(`{var}: ${{type_of({var})}} ${{{var}}}`);\n"
        ));
    }
    text
}

/// The outside world every runtime sees: a folder with a CSV, an optional CSV and a SQLite
/// database.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> Self {
        let world = Self {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        world.rewrite_csv(3, 0);
        let conn = rusqlite::Connection::open(world.path(DB)).expect("db");
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (a INTEGER);")
            .expect("schema");
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rewrite_csv(&self, rows: u8, seed: u8) {
        // Same length for the same row count: only the content (and the file's times) tell.
        let mut text = String::from("a\n");
        for i in 0..rows {
            text.push_str(&format!("{}\n", (seed as usize * 7 + i as usize) % 10));
        }
        std::fs::write(self.path(CSV), text).expect("write csv");
    }

    fn insert_rows(&self, rows: u8) {
        let conn = rusqlite::Connection::open(self.path(DB)).expect("db");
        for i in 0..rows {
            conn.execute("INSERT INTO t VALUES (?1)", [i as i64])
                .expect("insert");
        }
    }

    fn toggle_optional(&self) {
        let path = self.path(OPTIONAL_CSV);
        if path.exists() {
            std::fs::remove_file(path).expect("remove");
        } else {
            std::fs::write(path, "x\n1\n2\n").expect("write");
        }
    }
}

/// One way of running the notebook: its own runtime, cache and session.
struct Runner {
    runtime: Runtime,
    session: Session,
    cell_cache: bool,
    annotated: bool,
}

impl Runner {
    fn new(cell_cache: bool, annotated: bool) -> Self {
        Self {
            runtime: Runtime::with_cache(Arc::new(CacheRegistry::new(Arc::new(SystemClock))), None),
            session: Session::new("A"),
            cell_cache,
            annotated,
        }
    }

    /// The run's outputs, kind and text of every element but spinners (shown only while a
    /// cached fn computes).
    fn run(
        &mut self,
        dir: &Path,
        cells: &[CellSpec],
        layout: &[usize],
        helper_k: i64,
    ) -> Vec<String> {
        let notebook = Notebook::parse(&render(cells, layout, helper_k, self.annotated));
        // As the window does: the cells no longer in the notebook leave the cache.
        self.runtime.retain_cells_of(&notebook);
        let options = RunOptions {
            notebook_dir: Some(dir.to_path_buf()),
            cell_cache: self.cell_cache,
            log: Arc::new(|_| {}),
            ..RunOptions::default()
        };
        let report = self
            .runtime
            .run(&notebook, &mut self.session, &options, &mut |_| {});
        report
            .elements()
            .filter(|(_, e)| e.kind != ElementKind::Spinner)
            .map(|(cell, e)| format!("[{cell}] {:?} {}", e.kind, e.text))
            .collect()
    }
}

/// Runs `cells` through `changes` and returns the first mismatch, if any.
fn first_mismatch(cells: &[CellSpec], changes: &[Change]) -> Option<String> {
    let world = World::new();
    let stripped_comparable = !cells
        .iter()
        .any(|c| matches!(c, CellSpec::PushShared | CellSpec::SharedLen));
    let mut runners = vec![
        Runner::new(true, true),
        Runner::new(false, true),
        Runner::new(false, false),
    ];
    if !stripped_comparable {
        runners.pop();
    }
    let mut helper_k = 0;
    let mut layout: Vec<usize> = (0..cells.len()).collect();
    let steps = std::iter::once(&Change::Nothing).chain(changes);
    for (run, change) in steps.enumerate() {
        match change {
            Change::SetSlider(w, v) => {
                for r in &mut runners {
                    r.session.set_widget(format!("s{w}"), WidgetValue::Int(*v));
                }
            }
            Change::Click(b) => {
                for r in &mut runners {
                    r.session
                        .set_widget(format!("b{b}"), WidgetValue::Bool(true));
                }
            }
            Change::ClickCached => {
                for r in &mut runners {
                    r.session
                        .set_widget("cached click", WidgetValue::Bool(true));
                }
            }
            Change::RewriteCsv(rows, seed) => world.rewrite_csv(*rows, *seed),
            Change::InsertRows(rows) => world.insert_rows(*rows),
            Change::EditHelper(k) => helper_k = *k,
            Change::ToggleOptional => world.toggle_optional(),
            Change::MoveCell(..) | Change::DeleteCell(_) | Change::CopyCell(..) => {
                change_layout(&mut layout, change)
            }
            Change::Nothing => {}
        }
        let outputs: Vec<Vec<String>> = runners
            .iter_mut()
            .map(|r| r.run(world.dir.path(), cells, &layout, helper_k))
            .collect();
        let names = ["cell cache on", "--no-cell-cache", "annotations stripped"];
        for (i, other) in outputs.iter().enumerate().skip(1) {
            if *other != outputs[0] {
                return Some(format!(
                    "run {run} (after {change:?}): `{}` and `{}` differ\n{}:\n  {}\n{}:\n  {}\nnotebook:\n{}",
                    names[0],
                    names[i],
                    names[0],
                    outputs[0].join("\n  "),
                    names[i],
                    other.join("\n  "),
                    render(cells, &layout, helper_k, true)
                ));
            }
        }
    }
    None
}

fn cases() -> u32 {
    std::env::var("CELLAR_ORACLE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn cached_runs_show_what_uncached_runs_show(
        cells in proptest::collection::vec(cell_spec(), 1..7),
        changes in proptest::collection::vec(change(), 1..5),
    ) {
        if let Some(mismatch) = first_mismatch(&cells, &changes) {
            prop_assert!(false, "{}", mismatch);
        }
    }
}

/// Every cell kind of the grammar, with every change, in one long sequence: the oracle's
/// own smoke test (it must exercise each construct at least once).
#[test]
fn every_construct_in_one_notebook() {
    use CellSpec::*;
    let cells = vec![
        Slider(0),
        CsvRows,
        Arith { from: 0, k: 2 },
        CachedRows { from: 1 },
        Helper { from: 2 },
        DbCount,
        SqlOverFrame,
        SqlReadsFile,
        Const(3),
        AssignEarlier { target: 0 },
        Char,
        TryOptional,
        Button(0),
        CachedButton,
        CatchFailingCached,
    ];
    let changes = vec![
        Change::Nothing,
        Change::SetSlider(0, 7),
        Change::Click(0),
        Change::Nothing,
        Change::ClickCached,
        Change::Nothing,
        Change::RewriteCsv(4, 1),
        Change::RewriteCsv(4, 2),
        Change::InsertRows(2),
        Change::InsertRows(1),
        Change::EditHelper(3),
        Change::ToggleOptional,
        Change::Nothing,
        Change::ToggleOptional,
        Change::Nothing,
        Change::MoveCell(9, 1),
        Change::CopyCell(3, 0),
        Change::SetSlider(0, 2),
        Change::DeleteCell(0),
        Change::MoveCell(0, 14),
        Change::Nothing,
    ];
    if let Some(mismatch) = first_mismatch(&cells, &changes) {
        panic!("{mismatch}");
    }
}

/// Mutations of a shared resource: compared with and without the cell cache (stripping the
/// annotation changes what a shared object is, so that comparison does not apply).
#[test]
fn a_shared_resource_mutated_between_reads() {
    use CellSpec::*;
    let cells = vec![SharedLen, PushShared, SharedLen, Arith { from: 2, k: 1 }];
    let changes = vec![Change::Nothing, Change::Nothing, Change::SetSlider(0, 2)];
    if let Some(mismatch) = first_mismatch(&cells, &changes) {
        panic!("{mismatch}");
    }
}

/// Every notebook under `samples/`, run three times in two sessions (taking turns, a widget
/// moved before the last round), gives the same outputs with and without the cell cache.
#[test]
fn every_sample_shows_the_same_with_and_without_the_cell_cache() {
    let samples = cellar_tests::repo_root().join("samples");
    let mut notebooks: Vec<PathBuf> = std::fs::read_dir(&samples)
        .expect("samples folder")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "rhai"))
        .collect();
    notebooks.sort();
    assert!(notebooks.len() >= 2, "{notebooks:?}");
    for path in notebooks {
        let notebook = Notebook::load(&path).expect("sample parses");
        let mut outputs: Vec<Vec<String>> = Vec::new();
        for cell_cache in [true, false] {
            let runtime =
                Runtime::with_cache(Arc::new(CacheRegistry::new(Arc::new(SystemClock))), None);
            let mut sessions = [Session::new("A"), Session::new("B")];
            let mut seen = Vec::new();
            for round in 0..3 {
                for session in &mut sessions {
                    if round == 2 {
                        session.set_widget("Rows to show", WidgetValue::Int(7));
                    }
                    let options = RunOptions {
                        notebook_dir: Some(samples.clone()),
                        cell_cache,
                        log: Arc::new(|_| {}),
                        ..RunOptions::default()
                    };
                    let report = runtime.run(&notebook, session, &options, &mut |_| {});
                    seen.extend(
                        report
                            .elements()
                            .filter(|(_, e)| e.kind != ElementKind::Spinner)
                            .map(|(cell, e)| format!("{round} [{cell}] {:?} {}", e.kind, e.text)),
                    );
                }
            }
            outputs.push(seen);
        }
        assert_eq!(
            outputs[0],
            outputs[1],
            "{}: the cell cache changed what the notebook shows",
            path.display()
        );
    }
}

/// Cells moved around the one that reassigns an earlier variable: a reader of that
/// variable now gets it from another cell (the same value or not) and must run.
#[test]
fn cells_moved_around_a_reassignment() {
    use CellSpec::*;
    let cells = vec![
        Arith { from: 0, k: 0 },
        AssignEarlier { target: 0 },
        Arith { from: 0, k: 1 },
        Helper { from: 0 },
    ];
    let changes = vec![
        Change::MoveCell(2, 1),
        Change::MoveCell(1, 3),
        Change::CopyCell(0, 1),
        Change::DeleteCell(1),
        Change::MoveCell(3, 0),
    ];
    if let Some(mismatch) = first_mismatch(&cells, &changes) {
        panic!("{mismatch}");
    }
}

/// Found by the oracle (after 1008 cases): a cached fn holding a button, called twice in
/// one run, served the click to both calls on a hit; an uncached run gives it to the first.
#[test]
fn regression_a_cached_click_goes_to_the_first_call_only() {
    use CellSpec::*;
    let cells = vec![CachedButton, CachedButton];
    let changes = vec![Change::ClickCached, Change::ClickCached];
    if let Some(mismatch) = first_mismatch(&cells, &changes) {
        panic!("{mismatch}");
    }
}

/// Found by the oracle: a cell whose cached fn was served a click recorded the button as
/// unset (the replay had taken the click), so the next run without a click replayed it.
#[test]
fn regression_a_served_click_is_part_of_the_cells_trace() {
    use CellSpec::*;
    let cells = vec![CachedButton];
    let changes = vec![
        Change::ClickCached,
        Change::ClickCached,
        Change::RewriteCsv(1, 0),
    ];
    if let Some(mismatch) = first_mismatch(&cells, &changes) {
        panic!("{mismatch}");
    }
}
