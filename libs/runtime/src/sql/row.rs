//! A row of a result, read by column name or position.

use std::sync::Arc;

use super::value::{Decode, Value};

/// One row: its values, and the column names it shares with its result's
/// other rows.
#[derive(Debug, Clone)]
pub struct Row {
    pub(crate) columns: Arc<[String]>,
    pub(crate) values: Vec<Value>,
}

/// A column, by name or by position.
pub trait ColumnIndex {
    fn position(&self, columns: &[String]) -> Option<usize>;
    fn describe(&self) -> String;
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
    fn describe(&self) -> String {
        (*self).to_string()
    }
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[String]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        format!("#{self}")
    }
}

impl Row {
    /// The column's value as `T`; a missing column or a value of another
    /// type is an error (sqlx's `ColumnNotFound` and `ColumnDecode`).
    pub fn try_get<T: Decode, I: ColumnIndex>(&self, index: I) -> Result<T, sqlx::Error> {
        let position = index
            .position(&self.columns)
            .ok_or_else(|| sqlx::Error::ColumnNotFound(index.describe()))?;
        T::decode(&self.values[position]).map_err(|e| sqlx::Error::ColumnDecode {
            index: index.describe(),
            source: e.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_or_position() {
        let row = Row {
            columns: vec!["a".to_string(), "b".to_string()].into(),
            values: vec![Value::Int(7), Value::Text("x".into())],
        };
        assert_eq!(row.try_get::<i64, _>("a").unwrap(), 7);
        assert_eq!(row.try_get::<String, _>(1).unwrap(), "x");
        assert!(matches!(
            row.try_get::<i64, _>("c"),
            Err(sqlx::Error::ColumnNotFound(c)) if c == "c"
        ));
        assert!(matches!(
            row.try_get::<i64, _>("b"),
            Err(sqlx::Error::ColumnDecode { .. })
        ));
        assert!(row.try_get::<i64, _>(2).is_err());
    }
}
