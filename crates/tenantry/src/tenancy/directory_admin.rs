//! Writing the tenant directory: adding tenants (their database and schema created first),
//! suspending, resuming and removing them, and the directory as a [`TenantStore`].

use std::sync::Arc;

use crate::{
    contrib::{DirectoryEntry, TenantState},
    database::Database,
    error::{Error, Result},
    namespace::NamespaceStatement,
    registry::Registry,
    schema_name::SchemaName,
    tenancy::{directory::database_key, schemas::Schemas},
    BoxFuture, Directory, TenantInfo, TenantStore,
};

impl Directory {
    /// Creates tenant `tenant` on server `server`, database `database`: the database if it
    /// does not exist yet, the tenant's schema with every tenant model's tables, then its
    /// entry (state `active`), and announces the change (the tenants epoch), so that every
    /// process routes the tenant from then on, without a restart.
    ///
    /// Refused before anything is created: an invalid name ([`Error::InvalidSchemaName`]),
    /// an unknown server ([`Error::UnknownDatabase`]), a tenant that already has an entry
    /// ([`Error::SchemaAlreadyExists`]), a database that is one of the registry's own
    /// ([`Error::InvalidArgument`]), and a schema that exists on that database already.
    /// If writing the entry fails, the schema is dropped again. The work runs in a task of
    /// its own: a caller that gives up (a timeout, a cancelled request) does not interrupt
    /// it half way, leaving a schema without an entry.
    pub async fn add_tenant(
        &self,
        registry: &Registry,
        tenant: &str,
        server: &str,
        database: &str,
    ) -> Result<DirectoryEntry> {
        let entry = self.new_entry(registry, tenant, server, database, TenantState::Active)?;
        let (directory, registry) = (self.clone(), registry.clone());
        let (server, database) = (server.to_owned(), database.to_owned());
        let work = async move {
            directory
                .add_tenant_now(&registry, entry, &server, &database)
                .await
        };
        tokio::spawn(work).await.map_err(|join| {
            Error::Database(sqlx::Error::Io(std::io::Error::other(format!(
                "the tenant provisioning task failed: {join}"
            ))))
        })?
    }

    async fn add_tenant_now(
        &self,
        registry: &Registry,
        entry: DirectoryEntry,
        server: &str,
        database: &str,
    ) -> Result<DirectoryEntry> {
        let schema = SchemaName::parse(&entry.schema_name)?;
        if self.read_row(registry, &schema).await?.is_some() {
            return Err(Error::SchemaAlreadyExists {
                schema: schema.to_string(),
            });
        }
        self.ensure_database(server, database).await?;
        let db = self.database(server, database).await?;
        let schemas = Schemas {
            registry,
            database: &db,
        };
        schemas.create(&schema, None, false, true).await?;
        match self.write(registry, entry).await {
            Ok(row) => Ok(row),
            Err(error) => {
                let undone = schemas.drop(&schema, true, true).await;
                Err(crate::error::compensated(error, "drop the schema", undone))
            }
        }
    }

    /// Writes an entry for a tenant whose schema already exists on `server`/`database` (one
    /// moved or restored by other means). Everything is checked before the write: the names,
    /// the server alias, and that the tenant has no entry yet.
    pub async fn add_entry(
        &self,
        registry: &Registry,
        tenant: &str,
        server: &str,
        database: &str,
        state: TenantState,
    ) -> Result<DirectoryEntry> {
        let entry = self.new_entry(registry, tenant, server, database, state)?;
        self.write(registry, entry).await
    }

    /// Suspends (or, with [`TenantState::Active`], resumes) `tenant`: its routes refuse it
    /// from the next epoch read on. [`Error::TenantNotFound`] without an entry.
    pub async fn set_state(
        &self,
        registry: &Registry,
        tenant: &str,
        state: TenantState,
    ) -> Result<DirectoryEntry> {
        let schema = SchemaName::parse(tenant)?;
        let mut row = self.existing_row(registry, &schema).await?;
        row.state = state.as_str().to_owned();
        row.epoch += 1;
        let update = row.clone();
        self.change(registry, move |tx| {
            let row = update;
            Box::pin(async move {
                DirectoryEntry::query(&tx)
                    .filter(DirectoryEntry::id().eq(row.id))
                    .update([
                        DirectoryEntry::state().set(row.state.clone()),
                        DirectoryEntry::epoch().set(row.epoch),
                    ])
                    .await
                    .map(drop)
            })
        })
        .await?;
        Ok(row)
    }

    /// Removes `tenant`'s entry (it is no longer routed); with `drop_data`, suspends it
    /// first, drops its schema and tables on its database, and removes the entry last, so
    /// that a failed drop can be run again. [`Error::TenantNotFound`] without an entry.
    /// Without `drop_data` a malformed entry (one of a server no longer configured) is
    /// removed too; with it, the entry must be routable (the errors of checking the entry's database and schema).
    pub async fn remove_tenant(
        &self,
        registry: &Registry,
        tenant: &str,
        drop_data: bool,
    ) -> Result<()> {
        let schema = SchemaName::parse(tenant)?;
        let row = self.existing_row(registry, &schema).await?;
        let entry = match drop_data {
            true => Some(self.check(&row)?),
            false => None,
        };
        let id = row.id;
        if let Some(entry) = entry {
            // Suspended first (no longer served), the data dropped, the entry last: a drop
            // that fails leaves the entry, so that running the removal again finishes it
            // (and never reaches another tenant of the same name elsewhere).
            if row.state != TenantState::Suspended.as_str() {
                self.set_state(registry, tenant, TenantState::Suspended)
                    .await?;
            }
            let db = self
                .database(entry.server.as_str(), entry.database.as_str())
                .await?;
            let schemas = Schemas {
                registry,
                database: &db,
            };
            schemas.drop(&entry.schema, true, true).await?;
        }
        self.change(registry, move |tx| {
            Box::pin(async move {
                DirectoryEntry::query(&tx)
                    .filter(DirectoryEntry::id().eq(id))
                    .delete()
                    .await
                    .map(drop)
            })
        })
        .await
    }

    /// Every entry as stored, sorted by name, malformed ones included (they are checked
    /// when routed, and can be removed with [`remove_tenant`](Self::remove_tenant)).
    pub async fn entries(&self, registry: &Registry) -> Result<Vec<DirectoryEntry>> {
        let rows = DirectoryEntry::query(registry)
            .order_by([DirectoryEntry::schema_name().asc()])
            .all()
            .await?;
        Ok(rows.into_iter().map(|row| row.into_inner()).collect())
    }

    /// Runs `migrator`'s tenant migrations in every directory database that holds a
    /// tenant (one [`Migrator::on_directory_database`](crate::migrate::Migrator::on_directory_database)
    /// each, in turn), and returns each database's report under its `server/database` name.
    /// A database that cannot be migrated (its server down) has its error in its place; the
    /// others are migrated all the same. With `options.tenant`, only that tenant's database
    /// runs, for that tenant. The default database (shared schema first) is `migrator`'s own
    /// [`run`](crate::migrate::Migrator::run).
    pub async fn migrate(
        &self,
        registry: &Registry,
        migrator: &crate::migrate::Migrator,
        options: crate::migrate::RunOptions,
    ) -> Result<Vec<(String, Result<crate::migrate::RunReport>)>> {
        let mut databases: Vec<(SchemaName, SchemaName)> = Vec::new();
        let mut reports = Vec::new();
        for row in self.entries(registry).await? {
            let wanted = options.tenant.as_ref();
            if wanted.is_some_and(|t| t.as_str() != row.schema_name) {
                continue;
            }
            // An unroutable entry is reported under its database; the others still run.
            let entry = match self.check(&row).and_then(|e| {
                self.refuse_registry_database(registry, e.server.as_str(), e.database.as_str())
                    .map(|()| e)
            }) {
                Ok(entry) => entry,
                Err(error) => {
                    reports.push((database_key(&row.server, &row.database), Err(error)));
                    continue;
                }
            };
            let place = (entry.server, entry.database);
            if !databases.contains(&place) {
                databases.push(place);
            }
        }
        for (server, database) in databases {
            let report = match self.database(server.as_str(), database.as_str()).await {
                Ok(db) => {
                    migrator
                        .on_directory_database(&db)
                        .run(options.clone())
                        .await
                }
                Err(error) => Err(error),
            };
            reports.push((database_key(server.as_str(), database.as_str()), report));
        }
        Ok(reports)
    }

    /// The directory as the [`TenantStore`] of `registry`, for `tenantry-axum`'s layer
    /// (which then routes each request to its tenant's database) and for
    /// [`ForEachTenant::store`](crate::ForEachTenant::store).
    pub fn store(&self, registry: &Registry) -> DirectoryStore {
        DirectoryStore {
            directory: self.clone(),
            registry: registry.clone(),
            fallback: None,
        }
    }

    fn new_entry(
        &self,
        registry: &Registry,
        tenant: &str,
        server: &str,
        database: &str,
        state: TenantState,
    ) -> Result<DirectoryEntry> {
        let entry = DirectoryEntry {
            id: 0,
            schema_name: tenant.to_owned(),
            server: server.to_owned(),
            database: database.to_owned(),
            state: state.as_str().to_owned(),
            epoch: 1,
        };
        self.check(&entry)?;
        self.refuse_registry_database(registry, server, database)?;
        Ok(entry)
    }

    async fn read_row(
        &self,
        registry: &Registry,
        schema: &SchemaName,
    ) -> Result<Option<DirectoryEntry>> {
        Ok(DirectoryEntry::query(registry)
            .filter(DirectoryEntry::schema_name().eq(schema.as_str()))
            .first()
            .await?
            .map(|row| row.into_inner()))
    }

    async fn existing_row(
        &self,
        registry: &Registry,
        schema: &SchemaName,
    ) -> Result<DirectoryEntry> {
        self.read_row(registry, schema)
            .await?
            .ok_or_else(|| Error::TenantNotFound {
                tenant: schema.to_string(),
            })
    }

    /// Inserts a checked entry and announces it. A tenant that has an entry already is
    /// [`Error::SchemaAlreadyExists`].
    async fn write(&self, registry: &Registry, entry: DirectoryEntry) -> Result<DirectoryEntry> {
        let name = entry.schema_name.clone();
        let written = self
            .change(registry, move |tx| {
                let entry = entry.clone();
                Box::pin(async move {
                    DirectoryEntry::query(&tx)
                        .create(entry)
                        .await
                        .map(|row| row.into_inner())
                })
            })
            .await;
        match written {
            Err(Error::UniqueViolation { .. }) => Err(Error::SchemaAlreadyExists { schema: name }),
            other => other,
        }
    }

    /// Runs `work` and bumps the tenants epoch in one transaction of the default database,
    /// then forgets this process's routes.
    async fn change<T: Send + 'static>(
        &self,
        registry: &Registry,
        work: impl FnOnce(crate::Transaction) -> BoxFuture<'static, Result<T>> + Send + 'static,
    ) -> Result<T> {
        crate::contrib::ensure_epoch(registry).await?;
        let registry = registry.clone();
        // Outside any tenant scope: the directory is in the default database's shared schema.
        let result = crate::with_tenant(None, async move {
            registry
                .transaction(|tx| async move {
                    crate::contrib::bump_epoch_in(&tx).await?;
                    work(tx).await
                })
                .await
        })
        .await;
        self.forget();
        result
    }

    /// Creates database `database` on `server` unless it exists (PostgreSQL, MySQL); on
    /// SQLite makes sure the server's directory exists.
    async fn ensure_database(&self, server: &str, database: &str) -> Result<()> {
        let (backend, admin_url, dir) = self.server_for(server)?;
        if let Some(dir) = dir {
            return std::fs::create_dir_all(dir).map_err(|e| Error::Database(sqlx::Error::Io(e)));
        }
        let name = SchemaName::parse(database)?;
        let statement = NamespaceStatement::create_database(backend, &name);
        match crate::testing::run_on_server(admin_url, &statement).await {
            Ok(()) => Ok(()),
            Err(error) if crate::namespace::is_database_exists(backend, &error) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The [`Directory`] as a [`TenantStore`]: each tenant's [`TenantInfo::database`] is its
/// `server/database`, which `tenantry-axum`'s layer routes to. Made by [`Directory::store`].
#[derive(Clone)]
pub struct DirectoryStore {
    directory: Directory,
    registry: Registry,
    /// Where tenants the directory does not have are looked up (the default database's).
    fallback: Option<Arc<dyn TenantStore>>,
}

impl std::fmt::Debug for DirectoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryStore")
            .field("directory", &self.directory)
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

impl DirectoryStore {
    /// This store, which looks a tenant the directory has no entry for up in `fallback`
    /// (the default database's tenants, for example
    /// [`contrib::TenantTable`](crate::contrib::TenantTable)), and lists both: for an
    /// application whose tenants live in the default database and in the directory. A name
    /// in both is the directory's (keep names unique across the two).
    pub fn or(mut self, fallback: Arc<dyn TenantStore>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    fn info(&self, row: &DirectoryEntry) -> Result<TenantInfo> {
        let entry = self.directory.check(row)?;
        self.directory.refuse_registry_database(
            &self.registry,
            entry.server.as_str(),
            entry.database.as_str(),
        )?;
        Ok(TenantInfo {
            database: Some(database_key(entry.server.as_str(), entry.database.as_str())),
            suspended: entry.state == TenantState::Suspended,
            domains: Vec::new(),
            schema: entry.schema,
        })
    }
}

impl TenantStore for DirectoryStore {
    fn find<'a>(&'a self, schema: &'a SchemaName) -> BoxFuture<'a, Result<Option<TenantInfo>>> {
        Box::pin(async move {
            match self.directory.read_row(&self.registry, schema).await? {
                Some(row) => Ok(Some(self.info(&row)?)),
                None => match &self.fallback {
                    Some(fallback) => fallback.find(schema).await,
                    None => Ok(None),
                },
            }
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<TenantInfo>>> {
        Box::pin(async move {
            let rows = self.directory.entries(&self.registry).await?;
            let mut tenants = Vec::with_capacity(rows.len());
            for row in &rows {
                // One unroutable entry (a server no longer configured) must not hide the
                // others; it is never routed.
                match self.info(row) {
                    Ok(info) => tenants.push(info),
                    Err(error) => {
                        tracing::warn!(tenant = %row.schema_name, %error, "directory entry left out");
                    }
                }
            }
            if let Some(fallback) = &self.fallback {
                let mut others = fallback.list().await?;
                others.retain(|other| !tenants.iter().any(|t| t.schema == other.schema));
                tenants.extend(others);
            }
            Ok(tenants)
        })
    }

    fn epoch(&self) -> BoxFuture<'_, Result<Option<u128>>> {
        Box::pin(async move {
            let own = crate::contrib::epoch(&self.registry).await?.as_u128();
            let other = match &self.fallback {
                Some(fallback) => fallback.epoch().await?.unwrap_or(0),
                None => 0,
            };
            Ok(Some(own ^ other.rotate_left(1)))
        })
    }

    fn database<'a>(&'a self, info: &'a TenantInfo) -> BoxFuture<'a, Result<Option<Database>>> {
        Box::pin(self.directory.database_of(&self.registry, info))
    }
}

impl Directory {
    /// The directory database `info` names (its [`TenantInfo::database`] is a
    /// `server/database` of this directory, as [`DirectoryStore`] reports it); `None` when it
    /// names none (a tenant of the registry's default or an extra database). For a store of
    /// your own that wraps the directory's: `tenantry-axum` routes through it too.
    pub async fn database_of(
        &self,
        registry: &Registry,
        info: &TenantInfo,
    ) -> Result<Option<Database>> {
        let Some(key) = info.database.as_deref() else {
            return Ok(None);
        };
        if registry.extra_database(key).is_ok() {
            return Ok(None);
        }
        let Some((server, database)) = key.split_once('/') else {
            return Ok(None);
        };
        self.routed_database(registry, server, database)
            .await
            .map(Some)
    }
}
