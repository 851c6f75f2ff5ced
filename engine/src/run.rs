//! A rerun from top to bottom: compile every cell, gather the notebook's functions, run the
//! cells in order in one scope, and collect each cell's elements or error.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rhai::{AST, Dynamic, Engine, EvalAltResult, Position, Scope};

use crate::elements::{Element, ElementKind, Payload};
use crate::notebook::Notebook;
use crate::script::{self, context};
use crate::session::Session;

/// Where a cell failed, in file coordinates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellError {
    /// Index of the cell that failed.
    pub cell: usize,
    /// The cell's label (`cell 2 (Load data)`).
    pub cell_label: String,
    /// 1-based line in the notebook file.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for CellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.cell_label)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, ", line {line}, column {column}")?,
            (Some(line), None) => write!(f, ", line {line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

/// What one cell produced on one run.
#[derive(Clone, Debug)]
pub struct CellReport {
    /// The cell's index.
    pub index: usize,
    /// The cell's title.
    pub title: String,
    /// The elements it emitted, in order (a failure ends with an `error` element).
    pub elements: Vec<Element>,
    /// The failure, if it failed.
    pub error: Option<CellError>,
    /// How long it ran.
    pub duration: Duration,
}

/// What one run of a notebook produced.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    /// One report per cell, in order.
    pub cells: Vec<CellReport>,
    /// Engine time for the whole run.
    pub duration: Duration,
}

impl RunReport {
    /// Whether any cell failed.
    pub fn failed(&self) -> bool {
        self.cells.iter().any(|c| c.error.is_some())
    }

    /// All elements of the run, with their cell index.
    pub fn elements(&self) -> impl Iterator<Item = (usize, &Element)> {
        self.cells
            .iter()
            .flat_map(|c| c.elements.iter().map(move |e| (c.index, e)))
    }
}

/// How a run is done.
#[derive(Clone)]
pub struct RunOptions {
    /// Set to stop the run (the Stop button).
    pub cancel: Arc<AtomicBool>,
    /// Stop a cell that runs longer than this.
    pub timeout: Option<Duration>,
    /// The notebook's folder, for relative paths in scripts.
    pub notebook_dir: Option<PathBuf>,
    /// Where `print` output goes.
    pub log: context::LogSink,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            cancel: Arc::new(AtomicBool::new(false)),
            timeout: None,
            notebook_dir: None,
            log: Arc::new(|text| eprintln!("{text}")),
        }
    }
}

/// The process-wide runtime: one Rhai engine shared by every session.
pub struct Runtime {
    engine: Engine,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// A runtime with the whole script API registered.
    pub fn new() -> Self {
        Self {
            engine: script::build_engine(),
        }
    }

    /// The shared Rhai engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs the notebook top to bottom for `session`. `on_cell` sees each cell's report as
    /// soon as the cell is done (the GUI shows outputs while later cells run).
    pub fn run(
        &self,
        notebook: &Notebook,
        session: &mut Session,
        options: &RunOptions,
        on_cell: &mut dyn FnMut(&CellReport),
    ) -> RunReport {
        let started = Instant::now();
        let compiled: Vec<Result<AST, CellError>> = notebook
            .cells
            .iter()
            .enumerate()
            .map(|(i, cell)| self.compile_cell(notebook, i, &cell.source, cell.first_line))
            .collect();
        // Every `fn` in every cell is callable from every cell.
        let mut library = AST::empty();
        for ast in compiled.iter().flatten() {
            library = library.merge(&ast.clone_functions_only());
        }

        context::install(context::RunContext {
            elements: Vec::new(),
            widgets: std::mem::take(&mut session.widgets),
            notebook_dir: options.notebook_dir.clone(),
            log: options.log.clone(),
        });
        let mut scope = Scope::new();
        scope.push("state", std::mem::take(&mut session.state));

        let mut report = RunReport::default();
        // Variables that failed cells would have defined, to explain later "not found" errors.
        let mut failed_definitions: HashMap<String, usize> = HashMap::new();
        for (index, cell) in notebook.cells.iter().enumerate() {
            let cell_started = Instant::now();
            let error = match &compiled[index] {
                Err(err) => Some(err.clone()),
                Ok(ast) => {
                    context::set_stop(Some(context::StopSignal {
                        cancel: options.cancel.clone(),
                        deadline: options.timeout.map(|t| (Instant::now() + t, t)),
                    }));
                    let before = scope.len();
                    let result = self.engine.run_ast_with_scope(
                        &mut scope,
                        &library.merge(&ast.clone_statements_only()),
                    );
                    context::set_stop(None);
                    result.err().map(|err| {
                        // A failed cell defines nothing: later cells see its variables as missing.
                        scope.rewind(before.max(1));
                        self.runtime_error(notebook, index, &err, &failed_definitions)
                    })
                }
            };
            if error.is_some() {
                for name in top_level_definitions(&cell.source) {
                    failed_definitions.insert(name, index);
                }
            }
            let mut elements =
                context::with(|ctx| std::mem::take(&mut ctx.elements)).unwrap_or_default();
            if let Some(err) = &error {
                elements.push(Element {
                    kind: ElementKind::Error,
                    text: err.to_string(),
                    payload: Payload::ErrorAt {
                        line: err.line,
                        column: err.column,
                    },
                });
            }
            let cell_report = CellReport {
                index,
                title: cell.title.clone(),
                elements,
                error,
                duration: cell_started.elapsed(),
            };
            on_cell(&cell_report);
            report.cells.push(cell_report);
        }

        if let Some(ctx) = context::uninstall() {
            session.widgets = ctx.widgets;
        }
        session.state = scope.get_value::<rhai::Map>("state").unwrap_or_default();
        session.runs += 1;
        report.duration = started.elapsed();
        report
    }

    /// Compiles one cell so that positions are file lines: the source is preceded by as many
    /// empty lines as come before it in the file.
    fn compile_cell(
        &self,
        notebook: &Notebook,
        index: usize,
        source: &str,
        first_line: usize,
    ) -> Result<AST, CellError> {
        let padded = format!("{}{source}", "\n".repeat(first_line.saturating_sub(1)));
        self.engine.compile(padded).map_err(|err| CellError {
            cell: index,
            cell_label: notebook.cells[index].label(index),
            line: err.1.line(),
            column: err.1.position(),
            message: format!("syntax error: {}", err.0),
        })
    }

    /// Turns a Rhai error into file coordinates and a message that names the function it
    /// happened in, if any.
    fn runtime_error(
        &self,
        notebook: &Notebook,
        index: usize,
        err: &EvalAltResult,
        failed_definitions: &HashMap<String, usize>,
    ) -> CellError {
        let mut innermost = err;
        let mut functions = Vec::new();
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, _) = innermost {
            functions.push(name.clone());
            innermost = inner;
        }
        let position = innermost.position();
        let mut message = match innermost {
            EvalAltResult::ErrorTerminated(reason, _) => reason_text(reason),
            EvalAltResult::ErrorRuntime(value, _) => crate::script::display(value),
            EvalAltResult::ErrorVariableNotFound(name, _) => match failed_definitions.get(name) {
                Some(&cell) => format!(
                    "Variable not found: {name} (it is defined in {}, which failed)",
                    notebook.cells[cell].label(cell)
                ),
                None => format!("Variable not found: {name}"),
            },
            other => without_position(&other.to_string(), position),
        };
        if let Some(name) = functions.last() {
            message.push_str(&format!(" (in fn {name})"));
        }
        let (line, column) = file_position(position);
        // An error inside a function defined in another cell still belongs to this cell's run;
        // the line points at the function's own code.
        CellError {
            cell: index,
            cell_label: notebook.cells[index].label(index),
            line,
            column,
            message,
        }
    }
}

/// Names a cell declares with `let` or `const` at the start of a line (a cheap, textual
/// read: good enough to explain a missing variable).
fn top_level_definitions(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix("let ")
                .or_else(|| line.strip_prefix("const "))?;
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn reason_text(reason: &Dynamic) -> String {
    reason
        .clone()
        .into_string()
        .unwrap_or_else(|_| "stopped".to_string())
}

/// Rhai's messages end with ` (line N, position M)`; the element carries those separately.
fn without_position(message: &str, position: Position) -> String {
    let suffix = format!(" ({position})");
    message.strip_suffix(&suffix).unwrap_or(message).to_string()
}

fn file_position(position: Position) -> (Option<usize>, Option<usize>) {
    (position.line(), position.position())
}
