//! A SQLite database in a temporary directory of its own, removed when dropped: for tests
//! that need SQLite-only settings (budgets, bounds) beside the per-backend harness.

use std::path::PathBuf;

use tenantry::{Database, DatabaseOptions, Registry};

/// The directory of one test's SQLite files.
pub struct SqliteDir(PathBuf);

impl SqliteDir {
    /// A fresh, empty directory named after `name` and the process.
    pub fn new(name: &str) -> SqliteDir {
        let dir = std::env::temp_dir().join(format!("tenantry-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        SqliteDir(dir)
    }

    /// The URL of the main file.
    pub fn url(&self) -> String {
        format!("sqlite://{}/main.sqlite?mode=rwc", self.0.display())
    }
}

impl Drop for SqliteDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A registry of the test models over a SQLite database in its own directory, built with
/// `options`, tables created.
pub async fn sqlite_registry(
    name: &str,
    options: impl FnOnce(DatabaseOptions) -> DatabaseOptions,
) -> (SqliteDir, Registry) {
    let dir = SqliteDir::new(name);
    let db = options(Database::options(&dir.url()))
        .connect()
        .await
        .unwrap();
    let registry = super::models::register(Registry::new(db));
    registry.create_all().await.unwrap();
    (dir, registry)
}
