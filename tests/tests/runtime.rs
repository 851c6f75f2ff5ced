//! The notebook runtime: cells in order, one scope, errors in file coordinates.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cellar_engine::{ElementKind, Notebook, Runtime, Session, WidgetValue};
use cellar_tests::{capturing_log, run_in, run_once, texts};

#[test]
fn a_failing_cell_reports_file_line_and_column_and_later_cells_still_run() {
    let report = run_once(
        "// %% One\nwrite(\"before\");\n// %% Two\nlet x = 1;\nlet y = x + nope;\n// %% Three\nwrite(\"after\");\n",
    );
    let error = report.cells[1].error.as_ref().expect("cell 1 fails");
    assert_eq!(error.cell, 1);
    assert_eq!(error.line, Some(5), "line in the file, not in the cell");
    assert_eq!(error.column, Some(13));
    assert!(error.message.contains("nope"), "{}", error.message);
    assert_eq!(
        error.to_string(),
        format!("cell 1 (Two), line 5, column 13: {}", error.message)
    );
    assert_eq!(texts(&report)[0], "before");
    assert_eq!(texts(&report).last().unwrap(), "after");
    assert!(report.failed());
    let last = report.cells[1].elements.last().unwrap();
    assert_eq!(last.kind, ElementKind::Error);
}

#[test]
fn a_syntax_error_is_an_error_element_and_the_run_goes_on() {
    let report = run_once("// %% Bad\nlet = ;\n// %% Good\nwrite(1 + 1);\n");
    let error = report.cells[0].error.as_ref().unwrap();
    assert_eq!(error.line, Some(2));
    assert!(
        error.message.starts_with("syntax error"),
        "{}",
        error.message
    );
    assert_eq!(texts(&report).last().unwrap(), "2");
}

#[test]
fn variables_and_functions_flow_across_cells() {
    let report = run_once(
        "// %% Data\nlet base = 40;\n// %% Use\nwrite(add_two(base));\n// %% Helpers\nfn add_two(x) { x + 2 }\n",
    );
    assert!(!report.failed(), "{:?}", texts(&report));
    assert_eq!(texts(&report), ["42"]);
}

#[test]
fn variables_of_a_failed_cell_are_missing_later() {
    let report = run_once("// %% Fails\nlet df = 1;\nthrow \"boom\";\n// %% Reads\nwrite(df);\n");
    assert!(report.cells[0].error.is_some());
    let later = report.cells[1].error.as_ref().expect("df is missing");
    assert_eq!(
        later.message,
        "Variable not found: df (it is defined in cell 0 (Fails), which failed)"
    );
    assert_eq!(report.cells[0].error.as_ref().unwrap().message, "boom");
}

#[test]
fn an_error_inside_a_function_points_at_the_function_body() {
    let report = run_once("// %% Lib\nfn f(x) {\n  x.nope()\n}\n// %% Call\nf(1);\n");
    let error = report.cells[1].error.as_ref().unwrap();
    assert_eq!(error.line, Some(3));
    assert!(error.message.contains("(in fn f)"), "{}", error.message);
}

#[test]
fn print_goes_to_the_log_not_the_outputs() {
    let runtime = Runtime::new();
    let (options, log) = capturing_log();
    let notebook = Notebook::parse("print(\"to the log\");\nwrite(\"shown\");\n");
    let report = runtime.run(&notebook, &mut Session::new("A"), &options, &mut |_| {});
    assert_eq!(texts(&report), ["shown"]);
    assert_eq!(*log.lock().unwrap(), ["to the log"]);
}

#[test]
fn two_sessions_keep_separate_state() {
    let runtime = Runtime::new();
    let script =
        "if !(\"count\" in state) { state.count = 0; }\nstate.count += 1;\nwrite(state.count);\n";
    let mut a = Session::new("A");
    let mut b = Session::new("B");
    let a1 = texts(&run_in(&runtime, script, &mut a));
    let a2 = texts(&run_in(&runtime, script, &mut a));
    let b1 = texts(&run_in(&runtime, script, &mut b));
    assert_eq!(
        (a1, a2, b1),
        (vec!["1".into()], vec!["2".into()], vec!["1".into()])
    );
    assert_eq!(a.runs, 2);
}

#[test]
fn widgets_return_their_default_or_the_value_set_from_outside() {
    let runtime = Runtime::new();
    let script = "let n = slider(\"Rows\", 1, 10, 3);\nwrite(n * 2);\nlet on = checkbox(\"Show\", false);\nwrite(on);\nwrite(selectbox(\"Base\", [\"a\", \"b\"]));\nwrite(text_input(\"Name\", \"x\"));\n";
    let mut session = Session::new("A");
    assert_eq!(texts(&run_in(&runtime, script, &mut session))[1], "6");
    session.set_widget("Rows", WidgetValue::Int(7));
    session.set_widget("Show", WidgetValue::Bool(true));
    session.set_widget("Base", WidgetValue::Text("b".into()));
    session.set_widget("Name", WidgetValue::Text("Ada".into()));
    let out = texts(&run_in(&runtime, script, &mut session));
    assert_eq!(
        out,
        [
            "Rows = 7",
            "14",
            "Show = true",
            "true",
            "Base = b",
            "b",
            "Name = Ada",
            "Ada"
        ]
    );
}

#[test]
fn an_out_of_range_widget_value_warns_and_uses_the_default() {
    let runtime = Runtime::new();
    let mut session = Session::new("A");
    session.set_widget("Rows", WidgetValue::Int(99));
    let report = run_in(
        &runtime,
        "write(slider(\"Rows\", 1, 10, 3));\n",
        &mut session,
    );
    let warning = report
        .elements()
        .find(|(_, e)| e.kind == ElementKind::Warning)
        .unwrap()
        .1;
    assert!(
        warning.text.contains("an integer from 1 to 10"),
        "{}",
        warning.text
    );
    assert_eq!(texts(&report).last().unwrap(), "3");
}

#[test]
fn a_button_is_true_only_on_the_run_after_a_click() {
    let runtime = Runtime::new();
    let script = "write(button(\"Go\"));\n";
    let mut session = Session::new("A");
    session.set_widget("Go", WidgetValue::Bool(true));
    assert_eq!(texts(&run_in(&runtime, script, &mut session))[1], "true");
    assert_eq!(texts(&run_in(&runtime, script, &mut session))[1], "false");
}

#[test]
fn a_runaway_cell_is_stopped_by_the_timeout_and_the_run_goes_on() {
    let runtime = Runtime::new();
    let (mut options, _) = capturing_log();
    options.timeout = Some(Duration::from_millis(200));
    let notebook = Notebook::parse(
        "// %% Loop\nloop { }\n// %% Sleep\nsleep(60);\n// %% After\nwrite(\"after\");\n",
    );
    let report = runtime.run(&notebook, &mut Session::new("A"), &options, &mut |_| {});
    for cell in &report.cells[..2] {
        let error = cell.error.as_ref().expect("stopped");
        assert_eq!(error.message, "stopped after 0.2 s");
    }
    assert_eq!(texts(&report).last().unwrap(), "after");
}

#[test]
fn a_run_can_be_cancelled_from_another_thread() {
    let runtime = Runtime::new();
    let (options, _) = capturing_log();
    let cancel = options.cancel.clone();
    let notebook = Notebook::parse("let i = 0;\nloop { i += 1; }\n// %% After\nwrite(1);\n");
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        cancel.store(true, Ordering::Relaxed);
    });
    let report = runtime.run(&notebook, &mut Session::new("A"), &options, &mut |_| {});
    stopper.join().unwrap();
    assert_eq!(
        report.cells[0].error.as_ref().unwrap().message,
        "stopped by the user"
    );
    // The rest of the run is skipped, not failed one cell at a time.
    assert_eq!(report.cells[1].status, cellar_engine::CellStatus::Skipped);
    assert!(report.cells[1].elements.is_empty());
}

#[test]
fn output_functions_emit_their_kinds_in_order() {
    let report = run_once(
        "header(\"H\");\nsubheader(\"S\");\nmarkdown(\"**m**\");\ntext(\"t\");\ncode(\"c\");\nsuccess(\"ok\");\ninfo(\"i\");\nwarning(\"w\");\nerror(\"e\");\nmetric(\"Rows\", 5);\njson(#{a: [1, 2]});\nwrite(\"l[0] is:\", 2);\n",
    );
    let kinds: Vec<&str> = report.elements().map(|(_, e)| e.kind.name()).collect();
    assert_eq!(
        kinds,
        [
            "header",
            "subheader",
            "markdown",
            "text",
            "code",
            "success",
            "info",
            "warning",
            "error",
            "metric",
            "json",
            "write"
        ]
    );
    assert_eq!(texts(&report).last().unwrap(), "l[0] is: 2");
    assert!(!report.failed(), "error() is an element, not a failure");
}

#[test]
fn a_syntax_error_in_an_annotated_fn_header_points_at_the_fn_not_the_annotation() {
    let report = cellar_tests::run_once("// %% A\nlet a = 1;\n@cache_data\nfn shared() { 1 }\n");
    let err = report.cells[0]
        .error
        .as_ref()
        .expect("`shared` is reserved in Rhai");
    assert_eq!((err.line, err.column), (Some(4), Some(4)), "{err}");
    assert!(
        err.message.contains("'shared' is a reserved keyword"),
        "{err}"
    );
}
