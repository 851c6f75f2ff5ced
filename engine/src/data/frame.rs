//! `Frame`: the script-facing table type, a thin wrapper over a polars `DataFrame`.
//!
//! Cloning a frame is cheap (columns are reference-counted), which is what makes copies of
//! cached data cheap.

use polars::prelude::*;

use crate::error::CellarError;

/// A table of named, typed columns.
#[derive(Clone, Debug, Default)]
pub struct Frame(pub DataFrame);

impl Frame {
    /// Wraps a polars frame.
    pub fn new(df: DataFrame) -> Self {
        Self(df)
    }

    /// Whether both frames hold the very same column buffers (so the same content), without
    /// reading a value: how the cell cache tells that a cell left a big frame untouched.
    /// Columns are copy-on-write, so a change while both are alive makes new buffers.
    pub fn same_data(&self, other: &Frame) -> bool {
        let (a, b) = (&self.0, &other.0);
        a.height() == b.height()
            && a.width() == b.width()
            && a.columns().iter().zip(b.columns()).all(|(x, y)| {
                x.name() == y.name()
                    && matches!((x, y), (Column::Series(_), Column::Series(_)))
                    && std::sync::Arc::ptr_eq(
                        &x.as_materialized_series().0,
                        &y.as_materialized_series().0,
                    )
            })
    }

    /// The first `n` rows.
    pub fn head(&self, n: usize) -> Self {
        Self(self.0.head(Some(n)))
    }

    /// Rows where a SQL predicate holds, e.g. `"Lat > 40.7 AND Base = 'B02512'"`.
    pub fn filter(&self, predicate: &str) -> Result<Self, CellarError> {
        let expr = polars::sql::sql_expr(predicate).map_err(|e| {
            CellarError::Data(format!(
                "filter: could not parse {predicate:?} as a SQL condition ({e}); write it like \"Lat > 40.7 AND Base = 'B02512'\""
            ))
        })?;
        let df = self.0.clone().lazy().filter(expr).collect().map_err(|e| {
            CellarError::Data(format!(
                "filter {predicate:?}: {}",
                crate::error::polars_message(&e.to_string())
            ))
        })?;
        Ok(Self(df))
    }

    /// Only the named columns, in that order.
    pub fn select(&self, columns: &[String]) -> Result<Self, CellarError> {
        self.check_columns(columns.iter().map(String::as_str))?;
        Ok(Self(self.0.select(columns.iter().map(String::as_str))?))
    }

    /// Sorted by one column.
    pub fn sort(&self, column: &str, descending: bool) -> Result<Self, CellarError> {
        self.check_columns([column])?;
        let options = SortMultipleOptions::default().with_order_descending(descending);
        Ok(Self(self.0.sort([column], options)?))
    }

    /// A copy without the named column.
    pub fn drop(&self, column: &str) -> Result<Self, CellarError> {
        self.check_columns([column])?;
        Ok(Self(self.0.drop(column)?))
    }

    /// Removes the named column from this frame.
    pub fn drop_in_place(&mut self, column: &str) -> Result<(), CellarError> {
        self.check_columns([column])?;
        self.0.drop_in_place(column)?;
        Ok(())
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<String> {
        self.0
            .get_column_names()
            .into_iter()
            .map(|n| n.to_string())
            .collect()
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.0.height()
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.0.width()
    }

    /// A column's values as floats (numbers cast, others `None`), for charts.
    pub fn f64_column(&self, name: &str) -> Option<Vec<Option<f64>>> {
        let column = self.0.column(name).ok()?;
        let cast = column.cast(&DataType::Float64).ok()?;
        let values = cast.f64().ok()?;
        Some(values.to_vec())
    }

    /// A cell's value as display text (`""` for null or out of range).
    pub fn cell_text(&self, row: usize, column: usize) -> String {
        let Some(col) = self.0.columns().get(column) else {
            return String::new();
        };
        match col.get(row) {
            Ok(AnyValue::Null) | Err(_) => String::new(),
            Ok(AnyValue::String(s)) => s.to_string(),
            Ok(AnyValue::StringOwned(s)) => s.to_string(),
            Ok(value) => value.to_string(),
        }
    }

    /// A cell's value, or `None` when the row or column does not exist.
    pub fn value(&self, row: usize, column: &str) -> Option<AnyValue<'_>> {
        self.0.column(column).ok()?.get(row).ok()
    }

    /// Each column's name and type, as shown in table headers.
    pub fn schema_summary(&self) -> Vec<(String, String)> {
        self.0
            .columns()
            .iter()
            .map(|c| (c.name().to_string(), c.dtype().to_string()))
            .collect()
    }

    /// A one-line description: `5000 rows × 4 columns (Date/Time, Lat, Lon, Base)`.
    pub fn summary(&self) -> String {
        format!(
            "{} rows × {} columns ({})",
            self.height(),
            self.width(),
            self.column_names().join(", ")
        )
    }

    fn check_columns<'a>(
        &self,
        wanted: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), CellarError> {
        let names = self.column_names();
        for name in wanted {
            if !names.iter().any(|n| n == name) {
                return Err(CellarError::Data(format!(
                    "no column {name:?}; the frame has {}",
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.0.equals_missing(&other.0)
    }
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        Frame(df!("a" => [3i64, 1, 2], "b" => ["x", "y", "z"]).unwrap())
    }

    #[test]
    fn same_data_tells_a_clone_from_a_changed_frame() {
        let f = sample();
        let copy = f.clone();
        assert!(copy.same_data(&f));
        // Equal content in new buffers is not "the same data": the caller then hashes.
        assert!(!sample().same_data(&f));
        let mut dropped = f.clone();
        dropped.drop_in_place("b").unwrap();
        assert!(!dropped.same_data(&f));
        assert!(!f.sort("a", false).unwrap().same_data(&f));
    }

    #[test]
    fn methods_do_what_their_names_say() {
        let f = sample();
        assert_eq!(f.head(2).height(), 2);
        assert_eq!(f.filter("a >= 2").unwrap().height(), 2);
        assert_eq!(f.select(&["b".into()]).unwrap().column_names(), ["b"]);
        assert_eq!(f.sort("a", false).unwrap().cell_text(0, 0), "1");
        assert_eq!(f.sort("a", true).unwrap().cell_text(0, 0), "3");
        assert_eq!(f.drop("a").unwrap().column_names(), ["b"]);
        assert_eq!(
            f.f64_column("a").unwrap(),
            [Some(3.0), Some(1.0), Some(2.0)]
        );
    }

    #[test]
    fn drop_in_place_changes_only_this_copy() {
        let original = sample();
        let mut copy = original.clone();
        copy.drop_in_place("a").unwrap();
        assert_eq!(copy.width(), 1);
        assert_eq!(original.width(), 2);
    }

    #[test]
    fn errors_name_the_column_and_the_choices() {
        let err = sample().drop("Lat").unwrap_err().to_string();
        assert!(err.contains("\"Lat\"") && err.contains("a, b"), "{err}");
        let err = sample().filter("a >>> 2").unwrap_err().to_string();
        assert!(err.contains("SQL condition"), "{err}");
    }
}
