//! `sql(query, #{name: df})`: SQL over frames through polars-sql.

use polars::prelude::*;
use polars::sql::SQLContext;

use super::Frame;
use crate::error::CellarError;

/// Runs a SQL query where each `(name, frame)` is a table.
pub fn sql(query: &str, tables: &[(String, Frame)]) -> Result<Frame, CellarError> {
    let mut ctx = SQLContext::new();
    for (name, frame) in tables {
        ctx.register(name, frame.0.clone().lazy());
    }
    let names: Vec<&str> = tables.iter().map(|(n, _)| n.as_str()).collect();
    let df = ctx
        .execute(query)
        .and_then(|lf| lf.collect())
        .map_err(|e| {
            CellarError::Data(format!(
                "sql: {e} (tables available: {})",
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
        let out = sql("SELECT SUM(x) AS s FROM t", &[("t".into(), df)]).unwrap();
        assert_eq!(out.cell_text(0, 0), "6");
        let err = sql("SELECT * FROM missing", &[]).unwrap_err().to_string();
        assert!(err.contains("pass them as"), "{err}");
    }
}
