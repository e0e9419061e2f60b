//! A fetched row of any backend.

use sqlx::Row as _;

/// One row as the driver returned it. Models decode themselves from it by column position.
pub enum Row {
    /// A PostgreSQL row.
    Postgres(sqlx::postgres::PgRow),
    /// A MySQL / MariaDB row.
    MySql(sqlx::mysql::MySqlRow),
    /// A SQLite row.
    Sqlite(sqlx::sqlite::SqliteRow),
}

impl Row {
    /// Decodes column `index` as `T`.
    pub fn get<T: crate::FieldType>(&self, index: usize) -> Result<T, sqlx::Error> {
        T::decode(self, index)
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        match self {
            Row::Postgres(r) => r.len(),
            Row::MySql(r) => r.len(),
            Row::Sqlite(r) => r.len(),
        }
    }

    /// Whether column `index` is NULL.
    pub(crate) fn is_null(&self, index: usize) -> Result<bool, sqlx::Error> {
        use sqlx::ValueRef as _;
        Ok(match self {
            Row::Postgres(r) => r.try_get_raw(index)?.is_null(),
            Row::MySql(r) => r.try_get_raw(index)?.is_null(),
            Row::Sqlite(r) => r.try_get_raw(index)?.is_null(),
        })
    }

    /// The names of the columns, in order.
    pub fn column_names(&self) -> Vec<&str> {
        use sqlx::Column as _;
        match self {
            Row::Postgres(r) => r.columns().iter().map(|c| c.name()).collect(),
            Row::MySql(r) => r.columns().iter().map(|c| c.name()).collect(),
            Row::Sqlite(r) => r.columns().iter().map(|c| c.name()).collect(),
        }
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Row")
            .field("columns", &self.len())
            .finish_non_exhaustive()
    }
}
