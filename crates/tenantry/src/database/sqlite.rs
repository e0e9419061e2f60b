//! SQLite: the main file holds the default schema; every other schema is its own file,
//! `<main stem>.<schema>.sqlite` beside it (or a named shared in-memory database), reached
//! through its own lazily opened pool.
//!
//! A pool per schema file was chosen over `ATTACH` because SQLite attaches at most 10
//! databases per connection (125 when recompiled), while a tenant count has no such bound;
//! pools that sit idle close their connections after the idle timeout, so a thousand tenants
//! cost a thousand small map entries, not a thousand open files.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    str::FromStr,
    sync::RwLock,
};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool};

use super::PoolSettings;
use crate::{
    error::{Error, Result},
    schema_name::SchemaName,
};

pub(crate) struct SqliteStore {
    main: SqlitePool,
    main_options: SqliteConnectOptions,
    location: Location,
    settings: PoolSettings,
    schemas: RwLock<HashMap<SchemaName, SqlitePool>>,
}

enum Location {
    File { dir: PathBuf, stem: String },
    Memory { name: String },
}

impl SqliteStore {
    pub(crate) fn new(url: &str, settings: PoolSettings) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
            reason: e.to_string(),
        })?;
        let options = options
            .pragma("case_sensitive_like", "ON")
            .statement_cache_capacity(settings.statement_cache_capacity(crate::Backend::Sqlite));
        let filename = options.get_filename().to_path_buf();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let location = if in_memory {
            Location::Memory {
                name: filename.to_string_lossy().into_owned(),
            }
        } else {
            Location::File {
                dir: filename.parent().map(Path::to_path_buf).unwrap_or_default(),
                stem: filename
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            }
        };
        let main_options = match location {
            Location::File { .. } => options.journal_mode(SqliteJournalMode::Wal),
            Location::Memory { .. } => options,
        };
        let main = pool_for(&settings, &location, main_options.clone());
        Ok(SqliteStore {
            main,
            main_options,
            location,
            settings,
            schemas: RwLock::new(HashMap::new()),
        })
    }

    pub(crate) fn main(&self) -> &SqlitePool {
        &self.main
    }

    /// The pool of `schema`, or of the main file for `None`.
    pub(crate) fn pool(&self, schema: Option<&SchemaName>) -> Result<SqlitePool> {
        let Some(schema) = schema else {
            return Ok(self.main.clone());
        };
        if let Some(pool) = self.read().get(schema) {
            return Ok(pool.clone());
        }
        match &self.location {
            Location::File { .. } if self.file_of(schema).exists() => Ok(self.open(schema, false)),
            _ => Err(Error::SchemaNotFound {
                schema: schema.to_string(),
            }),
        }
    }

    /// Creates the schema's file (or in-memory database); `false` if it already existed.
    pub(crate) async fn create(&self, schema: &SchemaName) -> Result<bool> {
        if self.exists(schema) {
            return Ok(false);
        }
        let pool = self.open(schema, true);
        // Opening a connection is what creates the file / in-memory database.
        pool.acquire().await?;
        Ok(true)
    }

    /// Drops the schema: closes its pool and deletes its file; `false` if it did not exist.
    pub(crate) async fn drop_schema(&self, schema: &SchemaName) -> Result<bool> {
        let existed = self.exists(schema);
        let pool = self.write().remove(schema);
        if let Some(pool) = pool {
            pool.close().await;
        }
        if let Location::File { .. } = self.location {
            let file = self.file_of(schema);
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut path = file.clone().into_os_string();
                path.push(suffix);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::Database(sqlx::Error::Io(e))),
                }
            }
        }
        Ok(existed)
    }

    pub(crate) fn exists(&self, schema: &SchemaName) -> bool {
        match &self.location {
            Location::File { .. } => self.file_of(schema).exists(),
            Location::Memory { .. } => self.read().contains_key(schema),
        }
    }

    /// Every schema of this store, sorted.
    pub(crate) fn list(&self) -> Result<Vec<SchemaName>> {
        let mut names: Vec<SchemaName> = match &self.location {
            Location::Memory { .. } => self.read().keys().cloned().collect(),
            Location::File { dir, stem } => list_files(dir, stem)?,
        };
        names.sort();
        Ok(names)
    }

    pub(crate) async fn close(&self) {
        let pools: Vec<SqlitePool> = self.write().drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.close().await;
        }
        self.main.close().await;
    }

    fn open(&self, schema: &SchemaName, create: bool) -> SqlitePool {
        let mut schemas = self.write();
        if let Some(pool) = schemas.get(schema) {
            return pool.clone();
        }
        let options = self
            .main_options
            .clone()
            .filename(self.file_of(schema))
            .create_if_missing(create);
        let pool = pool_for(&self.settings, &self.location, options);
        schemas.insert(schema.clone(), pool.clone());
        pool
    }

    fn file_of(&self, schema: &SchemaName) -> PathBuf {
        let mut name = match &self.location {
            Location::File { stem, .. } => stem.clone(),
            Location::Memory { name } => name.clone(),
        };
        name.push('.');
        name.push_str(schema.as_str());
        match &self.location {
            Location::File { dir, .. } => {
                name.push_str(".sqlite");
                dir.join(name)
            }
            Location::Memory { .. } => PathBuf::from(name),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<SchemaName, SqlitePool>> {
        self.schemas.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SchemaName, SqlitePool>> {
        self.schemas.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// In-memory databases vanish with their last connection, so their pools keep one open.
fn pool_for(
    settings: &PoolSettings,
    location: &Location,
    options: SqliteConnectOptions,
) -> SqlitePool {
    let pool = settings.pool_options();
    let pool = match location {
        Location::Memory { .. } => pool
            .min_connections(settings.min_connections.max(1))
            .idle_timeout(None)
            .max_lifetime(None),
        Location::File { .. } => pool,
    };
    pool.connect_lazy_with(options)
}

fn list_files(dir: &Path, stem: &str) -> Result<Vec<SchemaName>> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Database(sqlx::Error::Io(e)))?;
    let mut names = Vec::new();
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(file) = file.to_str() else { continue };
        let schema = file
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('.'))
            .and_then(|rest| rest.strip_suffix(".sqlite"));
        if let Some(Ok(name)) = schema.map(SchemaName::parse) {
            names.push(name);
        }
    }
    Ok(names)
}
