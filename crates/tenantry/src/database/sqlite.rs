//! SQLite: the main file holds the default schema; every other schema is its own file,
//! `<main stem>.<schema>.sqlite` beside it (or a named shared in-memory database), reached
//! through its own lazily opened pool.
//!
//! A pool per schema file was chosen over `ATTACH` because SQLite attaches at most 10
//! databases per connection (125 when recompiled), while a tenant count has no such bound.
//! The one file a tenant's connection does attach is the main one, read-only, as
//! `tenantry_shared`, when a statement joins a tenant's table to a shared one
//! ([`crate::database::attach_shared`]).
//!
//! **Budget.** At most [`PoolSettings::sqlite_open_schemas`] schema pools stay open; opening
//! one more closes the least recently used pool whose connections are all idle (it reopens
//! on its next query). A pool closed while a connection of it was being handed out is kept
//! as *retired* until that connection is back, so a drop still waits for it.
//!
//! **Drops.** [`SqliteStore::drop_schema`] first marks the schema as dropping (new
//! checkouts get [`Error::SchemaNotFound`]), closes its pools and waits for every
//! connection in use (a statement, an open transaction) to come back, up to the bound; only
//! then are the files deleted. If a connection is still in use at the bound, nothing is
//! deleted and the drop fails with [`Error::SchemaBusy`]. Tenant pools never create a
//! missing file, so a query racing a drop cannot bring the old file back, and a schema
//! created again under the same name starts empty.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Mutex, MutexGuard},
    time::Duration,
};

use hashlink::LruCache;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
    ConnectOptions, Connection, Sqlite, SqliteConnection,
};

use super::{Checkout, ConnPool, PoolSettings};
use crate::{
    error::{Error, Result},
    schema_name::SchemaName,
};

/// The set of files `<dir>/<stem>.sqlite`-like main file and `<dir>/<stem>.<schema>.sqlite`
/// tenant files use, as one string: the directory resolved (`..`, symbolic links) and the
/// stem. Two databases with the same file set share their tenants' files.
pub(crate) fn file_set(dir: &Path, stem: &str) -> String {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let resolved = std::fs::canonicalize(dir).unwrap_or_else(|_| lexically_absolute(dir));
    resolved.join(stem).to_string_lossy().into_owned()
}

/// `path` made absolute with its `.` and `..` parts resolved without the file system (for
/// a directory that does not exist yet).
fn lexically_absolute(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

pub(crate) struct SqliteStore {
    main: ConnPool<Sqlite>,
    main_options: SqliteConnectOptions,
    location: Location,
    settings: PoolSettings,
    budget: usize,
    state: Mutex<State>,
}

struct State {
    /// Open schema pools, least recently used first.
    open: LruCache<SchemaName, ConnPool<Sqlite>>,
    /// Pools closed by the budget while a connection of theirs was still out.
    retired: Vec<(SchemaName, ConnPool<Sqlite>)>,
    /// Schemas being dropped: no new checkouts.
    dropping: HashSet<SchemaName>,
    /// Schemas whose file is being created: not there yet for anyone else (a connection
    /// opening the new file while its creator switches it to WAL made one of them fail with
    /// "database is locked").
    creating: HashSet<SchemaName>,
    /// In memory, a database lives while a connection to it is open: one per schema (and one
    /// for the main database) is held here for as long as the schema exists.
    keepers: HashMap<Option<SchemaName>, SqliteConnection>,
    /// Schemas in use outside every pool (a migration runner's own connection to the
    /// file): a drop waits for them as for a pool's connections.
    pinned: HashMap<SchemaName, usize>,
    closed: bool,
}

enum Location {
    File { dir: PathBuf, stem: String },
    Memory { name: String },
}

impl SqliteStore {
    pub(crate) async fn new(url: &str, settings: &PoolSettings) -> Result<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url).map_err(|e| Error::InvalidUrl {
            reason: e.to_string(),
        })?;
        let options = options
            .pragma("case_sensitive_like", "ON")
            // Decimal columns compare by value (`crate::decimal`); every pool, tenant file
            // and borrowed connection is opened from these options.
            .collation(crate::decimal::SQLITE_COLLATION, crate::decimal::collate)
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
        warn_if_double_quoted_strings().await;
        let mut keepers = HashMap::new();
        if let Location::Memory { .. } = location {
            keepers.insert(None, main_options.connect().await?);
        }
        Ok(SqliteStore {
            main: ConnPool::new(main_options.clone(), settings)?,
            main_options,
            location,
            settings: settings.clone(),
            budget: settings.sqlite_open_schemas(),
            state: Mutex::new(State {
                open: LruCache::new_unbounded(),
                retired: Vec::new(),
                dropping: HashSet::new(),
                creating: HashSet::new(),
                keepers,
                pinned: HashMap::new(),
                closed: false,
            }),
        })
    }

    /// What names this database's files: its directory, resolved, and the main file's stem,
    /// which every tenant file's name starts with (see [`file_set`]; `None` in memory).
    pub(crate) fn main_path(&self) -> Option<String> {
        match &self.location {
            Location::File { dir, stem } => Some(file_set(dir, stem)),
            Location::Memory { .. } => None,
        }
    }

    pub(crate) fn main(&self) -> &ConnPool<Sqlite> {
        &self.main
    }

    /// Whether a tenant's connection can attach the main file, read-only (shared rows are
    /// written through the main file's own pool): not in memory, where a shared-cache
    /// database cannot be attached read-only, and a tenant's connection must never be able
    /// to write shared rows.
    pub(crate) fn shared_attachable(&self) -> bool {
        matches!(self.location, Location::File { .. })
    }

    /// The URI a tenant's connection attaches the main file by; `None` when it cannot (see
    /// [`shared_attachable`](Self::shared_attachable)).
    pub(crate) fn main_file_uri(&self) -> Option<String> {
        match self.location {
            Location::File { .. } => Some(self.attach_uri(self.main_options.get_filename())),
            Location::Memory { .. } => None,
        }
    }

    /// The URI another connection attaches `schema`'s file by, read-only (see
    /// [`main_file_uri`](Self::main_file_uri)).
    pub(crate) fn schema_file_uri(&self, schema: &SchemaName) -> String {
        self.attach_uri(&self.file_of(schema))
    }

    fn attach_uri(&self, file: &Path) -> String {
        match &self.location {
            Location::File { .. } => {
                let path = file.to_string_lossy();
                let mut uri = String::with_capacity(path.len() + 16);
                uri.push_str("file:");
                for ch in path.chars() {
                    match ch {
                        '%' => uri.push_str("%25"),
                        '?' => uri.push_str("%3f"),
                        '#' => uri.push_str("%23"),
                        other => uri.push(other),
                    }
                }
                uri.push_str("?mode=ro");
                uri
            }
            Location::Memory { .. } => {
                let name = file.to_string_lossy();
                let name = name.strip_prefix("file:").unwrap_or(&name);
                let mut uri = String::with_capacity(name.len() + 32);
                uri.push_str("file:");
                uri.push_str(name);
                uri.push_str("?mode=memory&cache=shared");
                uri
            }
        }
    }

    /// A connection to the file of `schema` (`None`: the main file).
    pub(crate) async fn checkout(&self, schema: Option<&SchemaName>) -> Result<Checkout<Sqlite>> {
        let Some(schema) = schema else {
            return self.main.get().await;
        };
        // A pool closed by the budget between lookup and checkout is reopened; a bounded
        // number of times, so a budget of one under contention cannot spin.
        for _ in 0..8 {
            let pool = self.pool(schema)?;
            match pool.get().await {
                Err(Error::Closed) => continue,
                Err(error) if !self.exists(schema) => {
                    tracing::debug!(%schema, %error, "sqlite schema vanished during checkout");
                    return Err(not_found(schema));
                }
                other => return other,
            }
        }
        Err(Error::SchemaBusy {
            schema: schema.to_string(),
        })
    }

    /// The options of a connection to the file of `schema` (`None`: the main file), outside
    /// every pool. The file is never created here.
    pub(crate) fn connect_options(&self, schema: Option<&SchemaName>) -> SqliteConnectOptions {
        match schema {
            None => self.main_options.clone(),
            Some(schema) => self
                .main_options
                .clone()
                .filename(self.file_of(schema))
                .create_if_missing(false),
        }
    }

    /// The open pool of `schema`, opened (without connecting) if the schema exists.
    fn pool(&self, schema: &SchemaName) -> Result<ConnPool<Sqlite>> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        if state.dropping.contains(schema) || state.creating.contains(schema) {
            return Err(not_found(schema));
        }
        if let Some(pool) = state.open.get(schema) {
            return Ok(pool.clone());
        }
        if !self.exists_locked(&state, schema) {
            return Err(not_found(schema));
        }
        let options = self
            .main_options
            .clone()
            .filename(self.file_of(schema))
            .create_if_missing(false);
        let pool = ConnPool::new(options, &self.settings)?;
        state.open.insert(schema.clone(), pool.clone());
        self.enforce_budget(&mut state, schema);
        Ok(pool)
    }

    /// Closes the least recently used idle pools, never `keep`'s, until at most the budget
    /// stays open (more while every other open pool is busy: a busy pool is never closed).
    fn enforce_budget(&self, state: &mut State, keep: &SchemaName) {
        state.retired.retain(|(_, pool)| !pool.is_gone());
        let excess = state.open.len().saturating_sub(self.budget);
        if excess == 0 {
            return;
        }
        let idle: Vec<SchemaName> = state
            .open
            .iter()
            .filter(|(name, pool)| *name != keep && pool.is_idle())
            .map(|(name, _)| name.clone())
            .take(excess)
            .collect();
        for name in idle {
            if let Some(pool) = state.open.remove(&name) {
                pool.close_now();
                if !pool.is_gone() {
                    state.retired.push((name, pool));
                }
            }
        }
    }

    /// Creates the schema's file (or in-memory database); `false` if it already existed.
    pub(crate) async fn create(&self, schema: &SchemaName) -> Result<bool> {
        // A concurrent creation of the same schema is waited for (up to the bound), then
        // this one finds the file there.
        let deadline = tokio::time::Instant::now() + self.settings.acquire_timeout;
        loop {
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(Error::Closed);
                }
                if state.dropping.contains(schema) {
                    return Err(Error::SchemaBusy {
                        schema: schema.to_string(),
                    });
                }
                if !state.creating.contains(schema) {
                    if self.exists_locked(&state, schema) {
                        return Ok(false);
                    }
                    state.creating.insert(schema.clone());
                    break;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::SchemaBusy {
                    schema: schema.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _created = Creating {
            store: self,
            schema,
        };
        let file = self.file_of(schema);
        // A file is made under a temporary name and renamed into place once complete: a
        // creation cancelled half way (whose connection sqlx still finishes opening) leaves
        // no schema that appears later.
        let building = match self.location {
            Location::File { .. } => building_name(&file),
            Location::Memory { .. } => file.clone(),
        };
        let options = self
            .main_options
            .clone()
            .filename(&building)
            .create_if_missing(true);
        // Opening a connection is what creates the file / in-memory database.
        let conn = options.connect().await?;
        match self.location {
            Location::File { .. } => {
                conn.close().await?;
                // No await between the close and the rename: a cancellation cannot split them.
                std::fs::rename(&building, &file)
                    .map_err(|e| Error::Database(sqlx::Error::Io(e)))?;
            }
            Location::Memory { .. } => {
                let mut state = self.lock();
                if state.keepers.contains_key(&Some(schema.clone())) {
                    return Ok(false);
                }
                state.keepers.insert(Some(schema.clone()), conn);
            }
        }
        Ok(true)
    }

    /// Drops the schema once nothing uses it (see the module docs); `false` if it did not
    /// exist.
    pub(crate) async fn drop_schema(&self, schema: &SchemaName) -> Result<bool> {
        let pools = {
            let mut state = self.lock();
            if state.closed {
                return Err(Error::Closed);
            }
            if !state.dropping.insert(schema.clone()) {
                return Err(Error::SchemaBusy {
                    schema: schema.to_string(),
                });
            }
            let mut pools: Vec<ConnPool<Sqlite>> = state.open.remove(schema).into_iter().collect();
            state.retired.retain(|(name, pool)| {
                let mine = name == schema;
                if mine {
                    pools.push(pool.clone());
                }
                !mine
            });
            pools
        };
        let mut mark = DropMark {
            store: self,
            schema,
            taken: pools.clone(),
        };
        let result = self.drop_closed(schema, pools).await;
        // Finished: drop_closed kept what was still busy as retired.
        mark.taken.clear();
        result
    }

    async fn drop_closed(&self, schema: &SchemaName, pools: Vec<ConnPool<Sqlite>>) -> Result<bool> {
        let deadline = tokio::time::Instant::now() + self.settings.acquire_timeout;
        let mut busy = Vec::new();
        for pool in pools {
            if !pool.close(deadline).await {
                busy.push(pool);
            }
        }
        if !busy.is_empty() {
            // Closed but still in use: kept as retired, so that a later drop waits for them
            // too (forgetting them would let it delete the file under an open transaction).
            let mut state = self.lock();
            state
                .retired
                .extend(busy.into_iter().map(|pool| (schema.clone(), pool)));
            return Err(Error::SchemaBusy {
                schema: schema.to_string(),
            });
        }
        // Users outside the pools (a migration runner's connection, a creation in flight)
        // are waited for too.
        while {
            let state = self.lock();
            state.pinned.contains_key(schema) || state.creating.contains(schema)
        } {
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::SchemaBusy {
                    schema: schema.to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let existed = self.exists(schema);
        match &self.location {
            Location::Memory { .. } => {
                let keeper = self.lock().keepers.remove(&Some(schema.clone()));
                if let Some(keeper) = keeper {
                    keeper.close().await?;
                }
            }
            Location::File { .. } => remove_files(&self.file_of(schema))?,
        }
        Ok(existed)
    }

    pub(crate) fn exists(&self, schema: &SchemaName) -> bool {
        let state = self.lock();
        !state.dropping.contains(schema)
            && !state.creating.contains(schema)
            && self.exists_locked(&state, schema)
    }

    fn exists_locked(&self, state: &State, schema: &SchemaName) -> bool {
        match &self.location {
            Location::File { .. } => self.file_of(schema).exists(),
            Location::Memory { .. } => state.keepers.contains_key(&Some(schema.clone())),
        }
    }

    /// Every schema of this store, sorted.
    pub(crate) fn list(&self) -> Result<Vec<SchemaName>> {
        let mut names: Vec<SchemaName> = match &self.location {
            Location::Memory { .. } => self.lock().keepers.keys().flatten().cloned().collect(),
            Location::File { dir, stem } => list_files(dir, stem)?,
        };
        let state = self.lock();
        names.retain(|name| !state.dropping.contains(name) && !state.creating.contains(name));
        names.sort();
        Ok(names)
    }

    /// Closes every pool (waiting up to `bound` for connections in use); in memory, the
    /// databases vanish with their keepers.
    pub(crate) async fn close(&self, bound: Duration) -> bool {
        let (pools, keepers) = {
            let mut state = self.lock();
            state.closed = true;
            let mut pools: Vec<ConnPool<Sqlite>> = state.open.drain().map(|(_, p)| p).collect();
            pools.extend(state.retired.drain(..).map(|(_, p)| p));
            let keepers: Vec<SqliteConnection> = state.keepers.drain().map(|(_, c)| c).collect();
            (pools, keepers)
        };
        let deadline = tokio::time::Instant::now() + bound;
        let mut all_closed = self.main.close(deadline).await;
        for pool in pools {
            all_closed &= pool.close(deadline).await;
        }
        for keeper in keepers {
            let _ = keeper.close().await;
        }
        all_closed
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

    /// Marks `schema` in use by a connection of no pool until [`unpin`](Self::unpin): a drop
    /// waits for it. [`Error::SchemaNotFound`] when the schema is being dropped or is gone.
    pub(crate) fn pin(&self, schema: &SchemaName) -> Result<()> {
        let mut state = self.lock();
        if state.closed {
            return Err(Error::Closed);
        }
        if state.dropping.contains(schema)
            || state.creating.contains(schema)
            || !self.exists_locked(&state, schema)
        {
            return Err(not_found(schema));
        }
        *state.pinned.entry(schema.clone()).or_default() += 1;
        Ok(())
    }

    /// Ends one [`pin`](Self::pin) of `schema`.
    pub(crate) fn unpin(&self, schema: &SchemaName) {
        let mut state = self.lock();
        if let Some(count) = state.pinned.get_mut(schema) {
            *count -= 1;
            if *count == 0 {
                state.pinned.remove(schema);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A drop in progress: when it ends, finished or cancelled (its future dropped by a
/// timeout or a `select!`), the schema is no longer marked as dropping, so that it is
/// usable (or droppable) again, never stuck as neither there nor gone. A cancelled drop's
/// pools, closed or closing, are kept as retired: a later drop waits for their connections
/// still in use, as it does after a drop refused with [`Error::SchemaBusy`].
struct DropMark<'s> {
    store: &'s SqliteStore,
    schema: &'s SchemaName,
    taken: Vec<ConnPool<Sqlite>>,
}

impl Drop for DropMark<'_> {
    fn drop(&mut self) {
        let mut state = self.store.lock();
        state.dropping.remove(self.schema);
        let schema = self.schema;
        state
            .retired
            .extend(self.taken.drain(..).map(|pool| (schema.clone(), pool)));
    }
}

/// Ends a schema's creation, also when the creating future is cancelled.
struct Creating<'a> {
    store: &'a SqliteStore,
    schema: &'a SchemaName,
}

impl Drop for Creating<'_> {
    fn drop(&mut self) {
        self.store.lock().creating.remove(self.schema);
    }
}

fn not_found(schema: &SchemaName) -> Error {
    Error::SchemaNotFound {
        schema: schema.to_string(),
    }
}

/// A name to build a schema file under before it is renamed into place: not a `.sqlite`
/// name, so never listed as a schema, and new for every attempt, so that a connection of a
/// cancelled attempt (which sqlx finishes opening, and closes, later) never shares its files
/// with a later attempt. A cancelled attempt may leave its small file behind.
fn building_name(file: &Path) -> PathBuf {
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".building-{}-{attempt}", std::process::id()));
    PathBuf::from(name)
}

fn remove_files(file: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = file.to_path_buf().into_os_string();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Database(sqlx::Error::Io(e))),
        }
    }
    Ok(())
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

/// Warns once per process when the SQLite linked in reads a double-quoted name that is no
/// column as a string literal (built without `SQLITE_DQS=0`): there, a query selecting a
/// column that a tenant's file lacks (a tenant behind on its migrations) returns the
/// column's name as its value instead of failing. tenantry's own builds set
/// `LIBSQLITE3_FLAGS=-DSQLITE_DQS=0` (`.cargo/config.toml`); so should applications.
async fn warn_if_double_quoted_strings() {
    static CHECKED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    CHECKED
        .get_or_init(|| async {
            use sqlx::Connection;
            let Ok(mut conn) = sqlx::SqliteConnection::connect("sqlite::memory:").await else {
                return;
            };
            let probe = sea_query::Query::select()
                .expr(sea_query::Expr::col("tenantry_dqs_probe"))
                .to_string(sea_query::SqliteQueryBuilder);
            if sqlx::query(&probe).fetch_one(&mut conn).await.is_ok() {
                tracing::warn!(
                    "this SQLite accepts double-quoted string literals: a query naming a column \
                     a schema lacks reads the column's name instead of failing; build SQLite \
                     with LIBSQLITE3_FLAGS=-DSQLITE_DQS=0"
                );
            }
            let _ = conn.close().await;
        })
        .await;
}
