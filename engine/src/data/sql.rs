//! `sql(query, #{name: df})`: SQL over frames through polars-sql.
//!
//! Before a query runs it is read with sqlparser (the parser polars-sql uses) to find what it
//! reads besides the frames it was given: table functions (`read_csv('x.csv')`) and
//! functions that are not known to compute from their arguments alone (`random()`,
//! `CURRENT_TIMESTAMP`). The cell cache is told (an allowlist: a function not on
//! [`PURE_FUNCTIONS`] counts as outside state), and relative paths in table functions
//! resolve against the notebook's folder, as everywhere else.

use std::ops::ControlFlow;
use std::path::Path;

use polars::prelude::*;
use polars::sql::SQLContext;
use sqlparser::ast::{
    Expr as SqlExpr, FunctionArg, FunctionArgExpr, Statement, TableFactor, Value, Visit, VisitMut,
    Visitor, VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use super::{Frame, resolve_path};
use crate::error::CellarError;

/// SQL functions that compute from their arguments only (polars-sql's scalar, aggregate and
/// window functions, and the syntax forms sqlparser reports as functions).
const PURE_FUNCTIONS: &[&str] = &[
    "abs",
    "acos",
    "acosd",
    "array_agg",
    "array_contains",
    "array_get",
    "array_length",
    "array_lower",
    "array_mean",
    "array_reverse",
    "array_sum",
    "array_to_string",
    "array_unique",
    "array_upper",
    "asin",
    "asind",
    "atan",
    "atan2",
    "atan2d",
    "atand",
    "avg",
    "bit_and",
    "bit_count",
    "bit_length",
    "bit_not",
    "bit_or",
    "bit_xor",
    "bitand",
    "bitcount",
    "bitnot",
    "bitor",
    "bitxor",
    "cbrt",
    "ceil",
    "ceiling",
    "char_length",
    "character_length",
    "coalesce",
    "columns",
    "concat",
    "concat_ws",
    "corr",
    "cos",
    "cosd",
    "cot",
    "cotd",
    "count",
    "covar",
    "covar_pop",
    "covar_samp",
    "date",
    "date_part",
    "datetime",
    "degrees",
    "dense_rank",
    "div",
    "ends_with",
    "exp",
    "first",
    "first_value",
    "floor",
    "greatest",
    "group_concat",
    "if",
    "ifnull",
    "initcap",
    "lag",
    "last",
    "last_value",
    "lead",
    "least",
    "left",
    "length",
    "listagg",
    "ln",
    "log",
    "log10",
    "log1p",
    "log2",
    "lower",
    "lpad",
    "ltrim",
    "max",
    "median",
    "min",
    "mod",
    "normalize",
    "nullif",
    "octet_length",
    "pi",
    "pow",
    "power",
    "quantile_cont",
    "quantile_disc",
    "radians",
    "rank",
    "regexp_like",
    "replace",
    "reverse",
    "right",
    "round",
    "row_number",
    "rpad",
    "rtrim",
    "sign",
    "sin",
    "sind",
    "split_part",
    "sqrt",
    "starts_with",
    "stddev",
    "stddev_samp",
    "stdev",
    "stdev_samp",
    "strftime",
    "string_agg",
    "string_to_array",
    "strpos",
    "strptime",
    "substr",
    "substring",
    "sum",
    "tan",
    "tand",
    "time",
    "timestamp",
    "total",
    "trim",
    "trunc",
    "truncate",
    "unnest",
    "upper",
    "var",
    "var_samp",
    "variance",
    "xor",
];

/// String literals that some SQL functions read as "the current time".
const CLOCK_WORDS: &[&str] = &["now", "today", "yesterday", "tomorrow"];

/// What a query reads besides the frames passed to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SqlReads {
    /// Why no trace can cover the query (`reads files through SQL `read_csv('x.csv')``),
    /// or `None` when it computes from the given frames only.
    pub outside: Option<String>,
}

/// Reads `query` for what it reads besides `tables`.
pub fn inspect(query: &str, tables: &[&str]) -> SqlReads {
    let statements = match Parser::parse_sql(&GenericDialect, query) {
        Ok(statements) => statements,
        // polars-sql will say what is wrong; nothing can be vouched for meanwhile.
        Err(_) => {
            return SqlReads {
                outside: Some("runs SQL that Cellar could not read".to_string()),
            };
        }
    };
    let mut finder = OutsideFinder {
        tables: tables.iter().map(|t| t.to_ascii_lowercase()).collect(),
        ctes: Vec::new(),
    };
    for statement in &statements {
        if !matches!(statement, Statement::Query(_)) {
            return SqlReads {
                outside: Some(format!(
                    "runs a SQL `{}` statement",
                    first_word(&statement.to_string())
                )),
            };
        }
        // CTE names are tables too, wherever they are used.
        let _ = statement.visit(&mut CteCollector(&mut finder.ctes));
    }
    let outside = statements
        .iter()
        .find_map(|statement| match statement.visit(&mut finder) {
            ControlFlow::Break(reason) => Some(reason),
            ControlFlow::Continue(()) => None,
        });
    SqlReads { outside }
}

fn first_word(text: &str) -> String {
    text.split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

struct CteCollector<'a>(&'a mut Vec<String>);

impl Visitor for CteCollector<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &sqlparser::ast::Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.0.push(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        ControlFlow::Continue(())
    }
}

struct OutsideFinder {
    tables: Vec<String>,
    ctes: Vec<String>,
}

impl Visitor for OutsideFinder {
    type Break = String;

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<String> {
        match factor {
            TableFactor::Table {
                name, args: None, ..
            } => {
                let table = name.to_string().trim_matches('"').to_ascii_lowercase();
                if self.tables.contains(&table) || self.ctes.contains(&table) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(format!(
                        "reads `{name}` through SQL, which is not a frame passed to sql()"
                    ))
                }
            }
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => ControlFlow::Break(format!(
                "reads files through SQL `{}`",
                shorten(&factor_text(factor, name))
            )),
            TableFactor::TableFunction { .. } => ControlFlow::Break(format!(
                "reads through a SQL table function `{}`",
                shorten(&factor.to_string())
            )),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &SqlExpr) -> ControlFlow<String> {
        match expr {
            SqlExpr::Function(function) => {
                let name = function
                    .name
                    .0
                    .last()
                    .map(|part| part.to_string().trim_matches('"').to_ascii_lowercase())
                    .unwrap_or_default();
                if PURE_FUNCTIONS.contains(&name.as_str()) {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break(format!(
                        "calls `{}` in SQL, which may give a different answer each run",
                        function.name
                    ))
                }
            }
            SqlExpr::Value(value) => match &value.value {
                Value::SingleQuotedString(text) | Value::DoubleQuotedString(text)
                    if CLOCK_WORDS.contains(&text.trim().to_ascii_lowercase().as_str()) =>
                {
                    ControlFlow::Break(format!("reads the clock in SQL (`'{text}'`)"))
                }
                _ => ControlFlow::Continue(()),
            },
            _ => ControlFlow::Continue(()),
        }
    }
}

/// `read_csv('x.csv')` as the user wrote it (without alias).
fn factor_text(factor: &TableFactor, name: &sqlparser::ast::ObjectName) -> String {
    match factor {
        TableFactor::Table {
            args: Some(args), ..
        } => {
            let args: Vec<String> = args.args.iter().map(|a| a.to_string()).collect();
            format!("{name}({})", args.join(", "))
        }
        other => other.to_string(),
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(59).collect::<String>())
    }
}

/// Rewrites relative paths given to table functions (`read_csv('x.csv')`) so they resolve
/// as every path in a notebook does: the working directory first, then the notebook's
/// folder. Returns `None` when nothing needed rewriting.
fn resolve_table_function_paths(query: &str, notebook_dir: Option<&Path>) -> Option<String> {
    let mut statements = Parser::parse_sql(&GenericDialect, query).ok()?;
    let mut resolver = PathResolver {
        notebook_dir,
        changed: false,
    };
    for statement in &mut statements {
        let _ = statement.visit(&mut resolver);
    }
    resolver.changed.then(|| {
        statements
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

struct PathResolver<'a> {
    notebook_dir: Option<&'a Path>,
    changed: bool,
}

impl VisitorMut for PathResolver<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            args: Some(args), ..
        } = factor
        {
            for arg in &mut args.args {
                let FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(value))) = arg else {
                    continue;
                };
                if let Value::SingleQuotedString(path) = &mut value.value
                    && !Path::new(path.as_str()).is_absolute()
                    && !path.contains('*')
                    && let Ok(resolved) = resolve_path(path, self.notebook_dir)
                    && resolved.is_absolute()
                {
                    *path = resolved.display().to_string();
                    self.changed = true;
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Runs a SQL query where each `(name, frame)` is a table; relative paths in table
/// functions resolve against `notebook_dir` too.
pub fn sql(
    query: &str,
    tables: &[(String, Frame)],
    notebook_dir: Option<&Path>,
) -> Result<Frame, CellarError> {
    let mut ctx = SQLContext::new();
    for (name, frame) in tables {
        ctx.register(name, frame.0.clone().lazy());
    }
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    let resolved = resolve_table_function_paths(query, notebook_dir);
    let df = ctx
        .execute(resolved.as_deref().unwrap_or(query))
        .and_then(|lf| lf.collect())
        .map_err(|e| {
            CellarError::Data(format!(
                "sql: {} (tables available: {})",
                crate::error::polars_message(&e.to_string()),
                if names.is_empty() {
                    "none; pass them as #{name: df}".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })?;
    Ok(Frame::new(df))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_registered_frames() {
        let df = Frame(df!("x" => [1i64, 2, 3]).unwrap());
        let out = sql("SELECT SUM(x) AS s FROM t", &[("t".into(), df)], None).unwrap();
        assert_eq!(out.cell_text(0, 0), "6");
        let err = sql("SELECT * FROM missing", &[], None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pass them as"), "{err}");
    }

    #[test]
    fn a_query_over_given_frames_reads_nothing_else() {
        let pure = [
            "SELECT x, SUM(y) AS s FROM t GROUP BY x ORDER BY x",
            "WITH a AS (SELECT * FROM t) SELECT UPPER(name), ROUND(y, 2) FROM a",
            "SELECT CAST(x AS DOUBLE), COALESCE(y, 0) FROM t JOIN u ON t.x = u.x",
        ];
        for query in pure {
            assert_eq!(inspect(query, &["t", "u"]).outside, None, "{query}");
        }
    }

    #[test]
    fn files_clocks_and_unknown_functions_are_outside() {
        let cases = [
            (
                "SELECT * FROM read_csv('x.csv')",
                "reads files through SQL `read_csv('x.csv')`",
            ),
            ("SELECT * FROM read_parquet('d/*.parquet')", "read_parquet"),
            ("SELECT random() FROM t", "random"),
            ("SELECT CURRENT_TIMESTAMP FROM t", "CURRENT_TIMESTAMP"),
            ("SELECT datetime('now') FROM t", "clock"),
            ("SELECT * FROM other", "`other`"),
            ("SELECT * FROM t; DROP TABLE t", "DROP"),
        ];
        for (query, expected) in cases {
            let outside = inspect(query, &["t"]).outside.unwrap_or_default();
            assert!(outside.contains(expected), "{query}: {outside}");
        }
    }

    #[test]
    fn table_function_paths_resolve_against_the_notebook_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("only_here.csv"), "a\n1\n2\n").unwrap();
        let out = sql(
            "SELECT SUM(a) AS s FROM read_csv('only_here.csv')",
            &[],
            Some(dir.path()),
        )
        .unwrap();
        assert_eq!(out.cell_text(0, 0), "3");
    }
}
