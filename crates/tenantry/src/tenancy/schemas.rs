//! Creating, dropping and listing schemas (Edgy's `create_schema` and `registry.schema`).

use tracing::Instrument;

use crate::{
    backend::Backend,
    database::{Database, Pools},
    ddl,
    error::{Error, Result},
    migrate::Migrations,
    model::ModelMeta,
    namespace::{self, NamespaceStatement},
    registry::Registry,
    schema_name::SchemaName,
    target::{Conn, Target},
    transaction::Transaction,
};

/// Creates schema `schema_name` on the registry's default database, as Edgy's
/// `create_schema` does, with the same parameters and defaults:
///
/// - `models`: the models whose tables to create; `None` is every tenant-capable (not shared)
///   registered model;
/// - `if_not_exists`: when `false`, an existing schema is [`Error::SchemaAlreadyExists`];
/// - `should_create_tables`: when `false`, only the schema is created.
///
/// On PostgreSQL the schema and its tables are created in one transaction. On MySQL and
/// SQLite, whose DDL is not transactional, a schema this call created is dropped again if a
/// table fails. Either way a failure leaves nothing behind and is returned.
///
/// On MySQL / MariaDB the schema is the server database `<namespace>$<schema_name>` of this
/// application's tenant namespace (see [`Database::tenant_namespace`]), so two applications
/// on one server each have their own `edgy`; a name too long for the namespace is
/// [`Error::InvalidSchemaName`] before any SQL.
///
/// ```no_run
/// # use tenantry::{create_schema, Registry};
/// # async fn demo(registry: Registry) -> tenantry::Result<()> {
/// create_schema(&registry, "edgy", None, true, true).await?;
/// # Ok(()) }
/// ```
pub async fn create_schema(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
    models: Option<&[&'static ModelMeta]>,
    if_not_exists: bool,
    should_create_tables: bool,
) -> Result<()> {
    let schema = schema_name.try_into()?;
    registry
        .schema()
        .create(&schema, models, if_not_exists, should_create_tables)
        .await
}

/// Drops schema `schema_name` from the registry's default database. With `cascade` its
/// tables go with it; without, a schema that still holds tables is refused. A missing schema
/// is [`Error::SchemaNotFound`] unless `if_exists`.
///
/// The drop waits for the statements in flight in the schema; those that start after it
/// are [`Error::SchemaNotFound`]. On PostgreSQL a drop that would deadlock with a statement
/// in flight (the two lock the schema's objects in different orders) gives way and is
/// tried again, so the statement finishes instead of failing as the deadlock's victim;
/// after tries of 0.1 to 0.8 s it waits in the server's lock queue as a plain `DROP SCHEMA`
/// does, so busy traffic cannot put it off for ever.
///
/// A transaction open in the schema while it is dropped can fail in two more ways, both
/// the server's errors ([`Error::Database`], see [`Error::database_code`]). On PostgreSQL
/// a statement queued behind the drop finds its table gone, and the failure aborts the
/// transaction, which then cannot check whether the schema went: the check runs on another
/// connection of the pool, and gives [`Error::SchemaNotFound`], when one is free at once
/// (never waiting for one); else the server's `42P01` or `3F000` is returned. On MySQL /
/// MariaDB a transaction holding some of the tenant's tables can lose a deadlock (`40001`)
/// to `DROP DATABASE`'s metadata locks. Retried (see
/// [`TransactionOptions`](crate::TransactionOptions)), either finds the schema gone.
///
/// A drop cancelled half way (its future dropped, say by a timeout) leaves the schema whole
/// or gone, never half dropped; on MySQL a `DROP DATABASE` already sent still runs on the
/// server, so the schema may go a moment after the cancellation.
pub async fn drop_schema(
    registry: &Registry,
    schema_name: impl TryInto<SchemaName, Error = Error>,
    cascade: bool,
    if_exists: bool,
) -> Result<()> {
    let schema = schema_name.try_into()?;
    registry.schema().drop(&schema, cascade, if_exists).await
}

/// Schema management on one database of a registry: `registry.schema()` for the default
/// database, `registry.schema_on("alternative")?` for an extra one.
pub struct Schemas<'r> {
    pub(super) registry: &'r Registry,
    pub(super) database: &'r Database,
}

impl Registry {
    /// Schema management on the default database.
    pub fn schema(&self) -> Schemas<'_> {
        Schemas {
            registry: self,
            database: self.database(),
        }
    }

    /// Schema management on the extra database `name`, or [`Error::UnknownDatabase`].
    pub fn schema_on(&self, name: &str) -> Result<Schemas<'_>> {
        Ok(Schemas {
            registry: self,
            database: self.extra_database(name)?,
        })
    }
}

impl Schemas<'_> {
    /// Whether `schema` exists. On MySQL, [`Error::InvalidSchemaName`] for a name too long
    /// for the tenant namespace (see [`Database::tenant_namespace`]).
    pub async fn exists(&self, schema: &SchemaName) -> Result<bool> {
        namespace::exists(self.database, schema).await
    }

    /// Every schema, sorted. Names that are not valid [`SchemaName`]s (`public`, system
    /// schemas) are left out. On MySQL only this database's tenant namespace is listed (the
    /// server databases `<namespace>$<schema>`, see [`Database::tenant_namespace`]): never the
    /// URL's own database, another application's tenants or an unrelated database.
    pub async fn list(&self) -> Result<Vec<SchemaName>> {
        namespace::list(self.database).await
    }

    /// See [`create_schema`]. Names starting with
    /// [`DRIFT_SCHEMA_PREFIX`](crate::migrate::DRIFT_SCHEMA_PREFIX) are reserved for
    /// drift's scratch schemas: [`Error::InvalidSchemaName`].
    pub async fn create(
        &self,
        schema: &SchemaName,
        models: Option<&[&'static ModelMeta]>,
        if_not_exists: bool,
        should_create_tables: bool,
    ) -> Result<()> {
        refuse_reserved(schema)?;
        self.create_any(schema, models, if_not_exists, should_create_tables)
            .await
    }

    /// [`create`](Self::create) for any name, reserved ones included (drift's scratch).
    pub(crate) async fn create_any(
        &self,
        schema: &SchemaName,
        models: Option<&[&'static ModelMeta]>,
        if_not_exists: bool,
        should_create_tables: bool,
    ) -> Result<()> {
        // Before any SQL: on MySQL the name must fit the tenant namespace.
        self.database.check_schema(schema)?;
        let tenant_models: Vec<&'static ModelMeta>;
        let all_models = models.is_none();
        let models = match models {
            Some(models) => models,
            None => {
                tenant_models = self.registry.tenant_models().collect();
                &tenant_models
            }
        };
        if self.database.deployment().await?.is_citus() {
            crate::citus::check_models(models)?;
        }
        let tables = if should_create_tables {
            ddl::create_statements(self.database, Some(schema), models)?
        } else {
            Vec::new()
        };
        let stamp = self
            .stamp_for(schema, should_create_tables && all_models, if_not_exists)
            .await?;
        let span =
            tracing::info_span!("tenantry.create_schema", schema = %schema, tables = tables.len());
        // `instrument`, not `span.enter()`: an entered guard must not live across an await
        // (it is not `Send`, and it would mark unrelated work on this thread as inside the span).
        async {
            match self.database.pools() {
                Pools::Postgres(_) => {
                    self.create_in_transaction(schema, models, if_not_exists, &tables, stamp)
                        .await
                }
                Pools::MySql(_) | Pools::Sqlite(_) => {
                    self.create_compensating(schema, if_not_exists, &tables, stamp, None)
                        .await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The migrations to record as applied in a schema about to be built from every tenant
    /// model: the registry's, when it declares some and the schema is new or unbuilt (no
    /// history, none of the models' tables); `None` otherwise. The ledger is made first,
    /// outside the creation's transaction.
    async fn stamp_for(
        &self,
        schema: &SchemaName,
        builds_every_model: bool,
        if_not_exists: bool,
    ) -> Result<Option<&Migrations>> {
        let Some(migrations) = self.registry.migration_set() else {
            return Ok(None);
        };
        // The default database's tenants, and a directory database's (whose ledger is its
        // own); an extra database's tenants are not the runner's.
        let migrated = self.database.same_as(self.registry.database())
            || self.database.is_directory_database();
        if !builds_every_model || !migrated {
            return Ok(None);
        }
        let models: Vec<&'static ModelMeta> = self.registry.tenant_models().collect();
        let fresh = !if_not_exists
            || !self.exists(schema).await?
            || crate::migrate::is_unbuilt(self.database, Some(schema), &models).await?;
        if !fresh {
            return Ok(None);
        }
        crate::migrate::ensure_ledger(self.database).await?;
        Ok(Some(migrations))
    }

    async fn create_in_transaction(
        &self,
        schema: &SchemaName,
        models: &[&'static ModelMeta],
        if_not_exists: bool,
        tables: &[String],
        stamp: Option<&Migrations>,
    ) -> Result<()> {
        let tx = self.registry.begin_on(self.database).await?;
        create_in(&tx, schema, models, if_not_exists, tables, stamp).await?;
        tx.commit().await
    }

    /// Creates `schema` and the tables of every tenant-capable model inside `tx`, which the
    /// caller commits or rolls back (PostgreSQL only: the other backends' DDL is not
    /// transactional). `contrib::create_tenant` uses it to insert the tenant row in the same
    /// transaction.
    pub(crate) async fn create_within(
        &self,
        tx: &Transaction,
        schema: &SchemaName,
        if_not_exists: bool,
    ) -> Result<()> {
        refuse_reserved(schema)?;
        let models: Vec<&'static ModelMeta> = self.registry.tenant_models().collect();
        let in_tx = Target {
            conn: Conn::Transaction(tx.clone()),
            schema: None,
        };
        if self.database.deployment_via(&in_tx).await?.is_citus() {
            crate::citus::check_models(&models)?;
        }
        let tables = ddl::create_statements(self.database, Some(schema), &models)?;
        let stamp = self.stamp_for(schema, true, if_not_exists).await?;
        let span =
            tracing::info_span!("tenantry.create_schema", schema = %schema, tables = tables.len());
        create_in(tx, schema, &models, if_not_exists, &tables, stamp)
            .instrument(span)
            .await
    }

    /// [`create`](Self::create) with every tenant model, for `contrib::create_tenant` off
    /// PostgreSQL: the tenant's ledger row goes through `tx`, the transaction that holds the
    /// tenant's row (on SQLite it holds the main file's write lock).
    pub(crate) async fn create_for_tenant(
        &self,
        schema: &SchemaName,
        tx: &Transaction,
    ) -> Result<()> {
        refuse_reserved(schema)?;
        self.database.check_schema(schema)?;
        let models: Vec<&'static ModelMeta> = self.registry.tenant_models().collect();
        let tables = ddl::create_statements(self.database, Some(schema), &models)?;
        let stamp = self.stamp_for(schema, true, false).await?;
        let span =
            tracing::info_span!("tenantry.create_schema", schema = %schema, tables = tables.len());
        self.create_compensating(schema, false, &tables, stamp, Some(tx))
            .instrument(span)
            .await
    }

    async fn create_compensating(
        &self,
        schema: &SchemaName,
        if_not_exists: bool,
        tables: &[String],
        stamp: Option<&Migrations>,
        ledger_in: Option<&Transaction>,
    ) -> Result<()> {
        // A migration runner must not find this schema half built: on MySQL the creation
        // holds the tenant's migration lock (through the tenant row's transaction, whose
        // connection is this process's already).
        let lock = match (self.database.backend(), stamp, ledger_in) {
            (Backend::MySql, Some(_), Some(tx)) => {
                Some(MigrationLock::take(tx, self.database, schema).await?)
            }
            _ => None,
        };
        let result = self
            .create_compensating_locked(schema, if_not_exists, tables, stamp, ledger_in)
            .await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    async fn create_compensating_locked(
        &self,
        schema: &SchemaName,
        if_not_exists: bool,
        tables: &[String],
        stamp: Option<&Migrations>,
        ledger_in: Option<&Transaction>,
    ) -> Result<()> {
        let created = self.create_namespace(schema).await?;
        if !created && !if_not_exists {
            return Err(Error::SchemaAlreadyExists {
                schema: schema.to_string(),
            });
        }
        let target = Target {
            conn: Conn::Database(self.database.clone()),
            schema: Some(schema.clone()),
        };
        let mut built = Ok(());
        for sql in tables {
            built = target.execute_ddl(sql).await;
            if built.is_err() {
                break;
            }
        }
        if let (Ok(()), Some(migrations)) = (&built, stamp) {
            built = crate::migrate::stamp(&target, migrations).await;
            if built.is_ok() {
                let shared = Target {
                    conn: match ledger_in {
                        Some(tx) => Conn::Transaction(tx.clone()),
                        None => Conn::Database(self.database.clone()),
                    },
                    schema: None,
                };
                built = crate::migrate::record_ledger(&shared, schema, migrations).await;
            }
        }
        match built {
            Err(error) if created => {
                let undone = self.drop_namespace(schema).await;
                Err(crate::error::compensated(
                    error,
                    "drop the new schema",
                    undone,
                ))
            }
            other => other,
        }
    }

    /// Creates the namespace; `false` if it was already there.
    async fn create_namespace(&self, schema: &SchemaName) -> Result<bool> {
        match self.database.pools() {
            Pools::Sqlite(store) => store.create(schema).await,
            _ => {
                let create = NamespaceStatement::create(self.database, schema, false)?;
                match self.shared_target().execute_ddl(create.sql()).await {
                    Ok(()) => Ok(true),
                    Err(error) => match already_exists(error, schema) {
                        Error::SchemaAlreadyExists { .. } => Ok(false),
                        other => Err(other),
                    },
                }
            }
        }
    }

    async fn drop_namespace(&self, schema: &SchemaName) -> Result<()> {
        match self.database.pools() {
            Pools::Sqlite(store) => store.drop_schema(schema).await.map(drop),
            _ => {
                let drop = NamespaceStatement::drop(self.database, schema, true, true)?;
                self.shared_target().execute_ddl(drop.sql()).await
            }
        }
    }

    fn shared_target(&self) -> Target {
        Target {
            conn: Conn::Database(self.database.clone()),
            schema: None,
        }
    }

    /// See [`drop_schema`].
    pub async fn drop(&self, schema: &SchemaName, cascade: bool, if_exists: bool) -> Result<()> {
        self.database.check_schema(schema)?;
        let span = tracing::info_span!("tenantry.drop_schema", schema = %schema, cascade);
        self.drop_in_span(schema, cascade, if_exists)
            .instrument(span.clone())
            .await?;
        // A schema created again under this name must not inherit the dropped one's
        // migration state.
        if self.database.same_as(self.registry.database()) {
            crate::migrate::forget_ledger(self.database, schema)
                .instrument(span)
                .await?;
        }
        Ok(())
    }

    async fn drop_in_span(
        &self,
        schema: &SchemaName,
        cascade: bool,
        if_exists: bool,
    ) -> Result<()> {
        if !self.exists(schema).await? {
            return if if_exists {
                Ok(())
            } else {
                Err(Error::SchemaNotFound {
                    schema: schema.to_string(),
                })
            };
        }
        if !cascade
            && self.database.backend() != Backend::Postgres
            && self.has_tables(schema).await?
        {
            return Err(Error::SchemaNotEmpty {
                schema: schema.to_string(),
            });
        }
        let result = self.drop_namespace_checked(schema, cascade).await;
        match result {
            Err(error) if error.database_code().as_deref() == Some("2BP01") => {
                Err(Error::SchemaNotEmpty {
                    schema: schema.to_string(),
                })
            }
            Err(error) if error.database_code().as_deref() == Some("3F000") && if_exists => {
                let _ = error;
                Ok(())
            }
            other => other,
        }
    }

    async fn drop_namespace_checked(&self, schema: &SchemaName, cascade: bool) -> Result<()> {
        match self.database.pools() {
            Pools::Sqlite(store) => store.drop_schema(schema).await.map(drop),
            Pools::Postgres(_) => {
                let drop = NamespaceStatement::drop(self.database, schema, cascade, true)?;
                self.drop_giving_way(schema, &drop, cascade).await
            }
            Pools::MySql(_) => {
                let drop = NamespaceStatement::drop(self.database, schema, cascade, true)?;
                self.shared_target().execute_ddl(drop.sql()).await
            }
        }
    }

    async fn has_tables(&self, schema: &SchemaName) -> Result<bool> {
        namespace::has_tables(self.database, schema).await
    }
}

/// Runs `CREATE SCHEMA` and `tables` inside `tx` (PostgreSQL).
async fn create_in(
    tx: &Transaction,
    schema: &SchemaName,
    models: &[&'static ModelMeta],
    if_not_exists: bool,
    tables: &[String],
    stamp: Option<&Migrations>,
) -> Result<()> {
    let target = Target {
        conn: Conn::Transaction(tx.clone()),
        schema: Some(schema.clone()),
    };
    // Two creations of one schema at once would both find its objects missing and collide
    // in the catalog (a unique violation): the second waits here for the first to end,
    // then finds them made.
    target.fetch_all(&creation_lock(schema)).await?;
    if tx.database().deployment_via(&target).await?.is_citus() {
        // Only for this transaction: a pooled session never keeps the setting.
        crate::citus::distribute_in_transaction(&target).await?;
    }
    let create = NamespaceStatement::create(tx.database(), schema, if_not_exists)?;
    target
        .execute_ddl(create.sql())
        .await
        .map_err(|e| already_exists(e, schema))?;
    crate::enum_types::ensure(&target, Some(schema), models).await?;
    for sql in tables {
        target.execute_ddl(sql).await?;
    }
    if let Some(migrations) = stamp {
        crate::migrate::stamp(&target, migrations).await?;
        let shared = Target {
            conn: Conn::Transaction(tx.clone()),
            schema: None,
        };
        crate::migrate::record_ledger(&shared, schema, migrations).await?;
    }
    Ok(())
}

/// The advisory-lock space of schema creation on PostgreSQL: the first key of the
/// two-key form (a key space apart from the migrations' one-key locks).
const PG_CREATION_LOCK_SPACE: i32 = 0x7465_6e63;

/// PostgreSQL: `SELECT pg_advisory_xact_lock(<space>, hashtext('<schema>'))`, held until
/// the creating transaction ends.
fn creation_lock(schema: &SchemaName) -> sea_query::SelectStatement {
    use sea_query::{Expr, Func, Query};
    let key = Func::cust("hashtext").arg(Expr::val(schema.as_str()));
    Query::select()
        .expr(
            Func::cust("pg_advisory_xact_lock")
                .arg(Expr::val(PG_CREATION_LOCK_SPACE))
                .arg(key),
        )
        .to_owned()
}

/// PostgreSQL 42P06 / MySQL 1007 become [`Error::SchemaAlreadyExists`].
fn already_exists(error: Error, schema: &SchemaName) -> Error {
    match error.database_code().as_deref() {
        Some("42P06" | "HY000" | "1007") if is_duplicate(&error) => Error::SchemaAlreadyExists {
            schema: schema.to_string(),
        },
        _ => error,
    }
}

fn is_duplicate(error: &Error) -> bool {
    match error {
        Error::Database(sqlx::Error::Database(db)) => {
            db.code().as_deref() == Some("42P06")
                || db
                    .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                    .is_some_and(|e| e.number() == 1007)
        }
        _ => false,
    }
}

/// A tenant's migration lock on MySQL (`GET_LOCK`), held by a transaction's connection.
struct MigrationLock {
    tx: Transaction,
    name: String,
}

impl MigrationLock {
    /// Waits for the lock as long as a runner waits for one (30 s), else
    /// [`Error::SchemaBusy`].
    async fn take(tx: &Transaction, database: &Database, schema: &SchemaName) -> Result<Self> {
        use sea_query::{Func, Query};
        let name = crate::migrate::mysql_tenant_lock(&database.server_schema_name(schema)?);
        let get = Query::select()
            .expr(Func::cust("GET_LOCK").arg(name.as_str()).arg(30))
            .to_owned();
        let target = Target {
            conn: Conn::Transaction(tx.clone()),
            schema: None,
        };
        let rows = target.fetch_unchecked(&get).await?;
        let got: Option<i64> = match rows.first() {
            Some(row) => row.get::<Option<i64>>(0).map_err(Error::Database)?,
            None => None,
        };
        if got != Some(1) {
            return Err(Error::SchemaBusy {
                schema: schema.to_string(),
            });
        }
        Ok(MigrationLock {
            tx: tx.clone(),
            name,
        })
    }

    /// Releases the lock (it goes with the connection anyway, if this fails).
    async fn release(self) {
        use sea_query::{Func, Query};
        let release = Query::select()
            .expr(Func::cust("RELEASE_LOCK").arg(self.name.as_str()))
            .to_owned();
        let target = Target {
            conn: Conn::Transaction(self.tx),
            schema: None,
        };
        if let Err(error) = target.fetch_unchecked(&release).await {
            tracing::debug!(%error, "releasing a tenant's migration lock failed");
        }
    }
}

/// A schema name reserved by tenantry (drift's scratch schemas) is no tenant's.
pub(crate) fn refuse_reserved(schema: &SchemaName) -> Result<()> {
    if crate::migrate::is_drift_scratch(schema) {
        return Err(Error::InvalidSchemaName {
            name: schema.to_string(),
            reason:
                "names starting with tenantry_drift_ref_ are reserved for drift's scratch schemas",
        });
    }
    Ok(())
}
