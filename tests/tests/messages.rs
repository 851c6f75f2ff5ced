//! Messages a user reads (issue 11, item 9): values written as a notebook writes them,
//! never Rust's Debug form; one article; a missing file names only the folders searched;
//! CSV errors say what to change in the file, not which Python argument to set; a folder
//! read as a CSV is called a folder; a `validate` fn that does not exist is an error at the
//! first call. Each test checks the exact text and that the next cell still runs.

use std::path::Path;

use cellar_engine::{Notebook, RunOptions, RunReport, Runtime, Session, WidgetValue};
use cellar_tests::{Harness, errors, run_once, texts};

/// The cell after the one under test: it must still run.
const AFTER: &str = "\n// %% After\nwrite(\"still runs\");\n";

fn assert_later_cell_ran(report: &RunReport) {
    assert_eq!(
        texts(report).last().map(String::as_str),
        Some("still runs"),
        "{:?}",
        texts(report)
    );
}

/// The one error of a run (the cell under test is the first).
fn only_error(report: &RunReport) -> String {
    let errors = errors(report);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

/// Runs `text` as a notebook saved in `dir`.
fn run_in_dir(text: &str, dir: &Path) -> RunReport {
    let mut h = Harness::default().in_dir(dir);
    h.run("A", text)
}

#[test]
fn widget_values_in_a_key_are_written_as_a_notebook_would() {
    let mut h = Harness::default();
    h.set_widget("A", "Rows", WidgetValue::Int(5));
    h.set_widget("A", "Scale", WidgetValue::Float(2.5));
    let report = h.run(
        "A",
        &format!(
            "@cache_data(experimental_allow_widgets = true)\nfn pick() {{ slider(\"Rows\", 1, 20, 11) + text_input(\"Name\", \"abc\").len() + slider(\"Scale\", 0.0, 5.0, 1.0).to_int() }}\nwrite(pick());{AFTER}"
        ),
    );
    assert!(errors(&report).is_empty(), "{:?}", errors(&report));
    assert_later_cell_ran(&report);
    let args: Vec<String> = h
        .runtime
        .cache()
        .entries()
        .into_iter()
        .filter(|e| e.function == "pick")
        .map(|e| e.args)
        .collect();
    assert_eq!(args, vec!["Rows=5, Name=\"abc\", Scale=2.5".to_string()]);
}

#[test]
fn a_resource_returned_from_cache_data_reads_with_one_article() {
    let report = run_once(&format!(
        "@cache_resource\nfn pair() {{ [1, 2] }}\n@cache_data\nfn copy() {{ pair() }}\ncopy();{AFTER}"
    ));
    assert_eq!(
        only_error(&report),
        "`copy` returned a shared resource from @cache_resource, which @cache_data cannot store: it keeps only data (numbers, strings, arrays, maps, DataFrames) and hands out copies. Use @cache_resource for connections, models and other shared objects"
    );
    assert_later_cell_ran(&report);
}

#[test]
fn a_missing_file_names_each_folder_searched_once() {
    let cwd = std::env::current_dir().unwrap();
    let text = format!("read_csv(\"nope.csv\");{AFTER}");
    // Saved in the working directory: one folder, once.
    let report = run_in_dir(&text, &cwd);
    assert_eq!(
        only_error(&report),
        format!(
            "file not found: nope.csv (looked in {}); check the path or use an absolute one",
            cwd.display()
        )
    );
    assert_later_cell_ran(&report);
    // Saved elsewhere: the working directory, then the notebook's folder.
    let report = run_once(&text);
    assert_eq!(
        only_error(&report),
        format!(
            "file not found: nope.csv (looked in {} and {}); check the path or use an absolute one",
            cwd.display(),
            cellar_tests::repo_root().display()
        )
    );
    assert_later_cell_ran(&report);
    // Never saved: no notebook folder to search.
    let options = RunOptions {
        notebook_dir: None,
        ..RunOptions::default()
    };
    let report = Runtime::new().run(
        &Notebook::parse(&text),
        &mut Session::new("A"),
        &options,
        &mut |_| {},
    );
    assert_eq!(
        only_error(&report),
        format!(
            "file not found: nope.csv (looked in {}); check the path or use an absolute one",
            cwd.display()
        )
    );
    assert_later_cell_ran(&report);
}

#[test]
fn a_missing_absolute_path_searches_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.csv");
    let report = run_once(&format!(
        "read_csv({:?});{AFTER}",
        path.display().to_string()
    ));
    assert_eq!(
        only_error(&report),
        format!("file not found: {}; check the path", path.display())
    );
    assert_later_cell_ran(&report);
}

#[test]
fn a_row_longer_than_the_header_names_its_line_not_a_python_argument() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ragged.csv"), "a,b\n1,2\n3,4,5\n6,7\n").unwrap();
    let report = run_in_dir(&format!("read_csv(\"ragged.csv\");{AFTER}"), dir.path());
    assert_eq!(
        only_error(&report),
        "could not parse CSV ragged.csv: line 3 has 3 fields but the header has 2; give every row as many fields as the header (put a field that holds a comma in double quotes)"
    );
    assert_later_cell_ran(&report);
}

#[test]
fn a_value_of_another_type_says_what_to_fix_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("n,m\n");
    for i in 0..10_005 {
        csv.push_str(&format!("{i},2\n"));
    }
    csv.push_str("ten,3\n");
    std::fs::write(dir.path().join("typed.csv"), csv).unwrap();
    let report = run_in_dir(&format!("read_csv(\"typed.csv\");{AFTER}"), dir.path());
    let error = only_error(&report);
    assert_eq!(
        error,
        "could not parse CSV typed.csv: column `n` (column 1) holds `ten`, but its first 10000 rows are integers; fix that value in the file, or leave the field empty for a missing value"
    );
    for python in [
        "True",
        "ignore_errors",
        "infer_schema_length",
        "schema_overrides",
        "null_values",
    ] {
        assert!(!error.contains(python), "{error}");
    }
    assert_later_cell_ran(&report);
}

#[test]
fn an_unclosed_quote_says_how_to_quote() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("quote.csv"), "a,b\n\"1,2\n").unwrap();
    let report = run_in_dir(&format!("read_csv(\"quote.csv\");{AFTER}"), dir.path());
    assert_eq!(
        only_error(&report),
        "could not parse CSV quote.csv: a field in column `a` (column 1) opens a double quote it never closes: `\"1,2`; close the quote, and write a quote inside a quoted field as two (\"\")"
    );
    assert_later_cell_ran(&report);
}

#[test]
fn a_cast_in_sql_suggests_try_cast_not_strict_false() {
    let report = run_once(&format!(
        "let df = sql(\"SELECT 'soon' AS s\");\nsql(\"SELECT CAST(s AS DATE) AS d FROM t\", #{{t: df}});{AFTER}"
    ));
    let error = only_error(&report);
    assert!(
        error.ends_with("\n\nIn sql(), TRY_CAST(x AS type) gives null for a value that cannot be converted, and STRPTIME(x, '%d/%m/%Y') reads dates written another way (tables available: t)"),
        "{error}"
    );
    assert!(!error.contains("strict=False"), "{error}");
    assert_later_cell_ran(&report);
}

#[test]
fn a_folder_read_as_a_csv_is_called_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("trips")).unwrap();
    let report = run_in_dir(&format!("read_csv(\"trips\");{AFTER}"), dir.path());
    assert_eq!(
        only_error(&report),
        "could not read CSV trips: it is a folder, not a file; name a CSV file"
    );
    assert_later_cell_ran(&report);
    std::fs::write(dir.path().join("trips/2024.csv"), "a\n1\n").unwrap();
    std::fs::create_dir(dir.path().join("trips/old.csv")).unwrap();
    let report = run_in_dir(&format!("read_csv(\"trips/\");{AFTER}"), dir.path());
    assert_eq!(
        only_error(&report),
        "could not read CSV trips/: it is a folder, not a file; name a CSV file in it, e.g. trips/2024.csv"
    );
    assert_later_cell_ran(&report);
}

#[test]
fn a_validate_fn_that_does_not_exist_fails_the_first_call() {
    let report = run_once(&format!(
        "fn is_fresh(r) {{ true }}\n// %% Resource\n@cache_resource(validate = \"nope\")\nfn conn() {{ [1] }}\nconn();{AFTER}"
    ));
    assert_eq!(
        only_error(&report),
        "validate = \"nope\" on `conn`: no fn `nope` in this notebook (fns: conn, is_fresh); name a fn that takes the value and returns true or false"
    );
    assert_later_cell_ran(&report);
    // A fn of that name that takes something else.
    let report = run_once(&format!(
        "@cache_resource(validate = \"check\")\nfn conn() {{ [1] }}\nfn check(a, b) {{ true }}\nconn();{AFTER}"
    ));
    assert_eq!(
        only_error(&report),
        "validate = \"check\" on `conn`: fn `check` takes 2 parameters; a validate fn takes the value and returns true or false"
    );
    assert_later_cell_ran(&report);
    // Cellar's own `is_open` and a notebook fn are fine, first call and later.
    let mut h = Harness::default();
    let good = format!(
        "@cache_resource(validate = \"is_open\")\nfn db() {{ sqlite_connect(\":memory:\") }}\n@cache_resource(validate = \"fine\")\nfn list() {{ [1] }}\nfn fine(r) {{ true }}\ndb();\nlist();{AFTER}"
    );
    for _ in 0..2 {
        let report = h.run("A", &good);
        assert!(errors(&report).is_empty(), "{:?}", errors(&report));
        assert_later_cell_ran(&report);
    }
}
