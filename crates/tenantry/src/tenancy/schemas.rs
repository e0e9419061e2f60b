//! Creating, dropping and listing schemas (Edgy's `create_schema` and `registry.schema`).

use tracing::Instrument;

use crate::{
    backend::Backend,
    database::{Database, Pools},
    ddl,
    error::{Error, Result},
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
    registry: &'r Registry,
    database: &'r Database,
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
    /// Whether `schema` exists.
    pub async fn exists(&self, schema: &SchemaName) -> Result<bool> {
        namespace::exists(self.database, schema).await
    }

    /// Every schema, sorted. Names that are not valid [`SchemaName`]s (`public`, system
    /// schemas) are left out; on MySQL, so is the URL's own database.
    pub async fn list(&self) -> Result<Vec<SchemaName>> {
        namespace::list(self.database).await
    }

    /// See [`create_schema`].
    pub async fn create(
        &self,
        schema: &SchemaName,
        models: Option<&[&'static ModelMeta]>,
        if_not_exists: bool,
        should_create_tables: bool,
    ) -> Result<()> {
        let tenant_models: Vec<&'static ModelMeta>;
        let models = match models {
            Some(models) => models,
            None => {
                tenant_models = self.registry.tenant_models().collect();
                &tenant_models
            }
        };
        let tables = if should_create_tables {
            ddl::create_statements(self.database, Some(schema), models)
        } else {
            Vec::new()
        };
        let span =
            tracing::info_span!("tenantry.create_schema", schema = %schema, tables = tables.len());
        // `instrument`, not `span.enter()`: an entered guard must not live across an await
        // (it is not `Send`, and it would mark unrelated work on this thread as inside the span).
        async {
            match self.database.pools() {
                Pools::Postgres(_) => {
                    self.create_in_transaction(schema, if_not_exists, &tables)
                        .await
                }
                Pools::MySql(_) | Pools::Sqlite(_) => {
                    self.create_compensating(schema, if_not_exists, &tables)
                        .await
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn create_in_transaction(
        &self,
        schema: &SchemaName,
        if_not_exists: bool,
        tables: &[String],
    ) -> Result<()> {
        let tx = self.registry.begin_on(self.database).await?;
        create_in(&tx, schema, if_not_exists, tables).await?;
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
        let models: Vec<&'static ModelMeta> = self.registry.tenant_models().collect();
        let tables = ddl::create_statements(self.database, Some(schema), &models);
        let span =
            tracing::info_span!("tenantry.create_schema", schema = %schema, tables = tables.len());
        create_in(tx, schema, if_not_exists, &tables)
            .instrument(span)
            .await
    }

    async fn create_compensating(
        &self,
        schema: &SchemaName,
        if_not_exists: bool,
        tables: &[String],
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
        for sql in tables {
            if let Err(error) = target.execute_ddl(sql).await {
                if created {
                    self.drop_namespace(schema).await?;
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Creates the namespace; `false` if it was already there.
    async fn create_namespace(&self, schema: &SchemaName) -> Result<bool> {
        match self.database.pools() {
            Pools::Sqlite(store) => store.create(schema).await,
            _ => {
                let create = NamespaceStatement::create(self.database.backend(), schema, false);
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
                let drop = NamespaceStatement::drop(self.database.backend(), schema, true, true);
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
        let span = tracing::info_span!("tenantry.drop_schema", schema = %schema, cascade);
        self.drop_in_span(schema, cascade, if_exists)
            .instrument(span)
            .await
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
            _ => {
                let drop = NamespaceStatement::drop(self.database.backend(), schema, cascade, true);
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
    if_not_exists: bool,
    tables: &[String],
) -> Result<()> {
    let target = Target {
        conn: Conn::Transaction(tx.clone()),
        schema: Some(schema.clone()),
    };
    let create = NamespaceStatement::create(Backend::Postgres, schema, if_not_exists);
    target
        .execute_ddl(create.sql())
        .await
        .map_err(|e| already_exists(e, schema))?;
    for sql in tables {
        target.execute_ddl(sql).await?;
    }
    Ok(())
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
