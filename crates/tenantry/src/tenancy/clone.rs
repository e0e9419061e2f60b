//! Cloning a tenant: a new schema built like any tenant's, then every tenant model's rows
//! copied in from another schema, keys included.

use sea_query::{
    Alias, DynIden, Expr, ExprTrait, Func, InsertStatement, Order, PostgresQueryBuilder, Query,
    QuotedBuilder, SelectStatement,
};
use sqlx::{ConnectOptions, Connection};
use tracing::Instrument;

use super::{schemas::refuse_reserved, Schemas};
use crate::{
    database::{Database, Pools, SqliteStore},
    ddl,
    error::{Error, Result},
    model::ModelMeta,
    naming::table_name,
    schema_name::SchemaName,
    target::{Conn, Target},
    Backend,
};

/// How the copy statements of a SQLite clone name the source file.
const SQLITE_SOURCE_ALIAS: &str = "tenantry_source";

impl Schemas<'_> {
    /// Creates schema `to` with the tables of every tenant model (as
    /// [`create`](Self::create) does, migrations recorded) and copies every row of those
    /// tables from schema `from`, primary keys included, parents before children. Then new
    /// rows in either schema never collide: PostgreSQL's sequences are set past the copied
    /// maximum, MariaDB's `AUTO_INCREMENT` and SQLite's row ids follow the largest key by
    /// themselves. For templates and staging copies of a tenant.
    ///
    /// The clone runs in a task of its own: dropping the returned future (a request that
    /// timed out) does not interrupt it half way; it completes, or fails and cleans up.
    ///
    /// - **PostgreSQL:** the schema, its tables and the rows are made in one transaction at
    ///   `REPEATABLE READ`: one snapshot of `from`, and `to` appears complete or not at all.
    /// - **MariaDB and SQLite** (whose DDL is not transactional): `to` is created first, then
    ///   filled in one transaction (on SQLite a snapshot of `from`'s file, attached
    ///   read-only; on MariaDB each table is read at its own moment). It is visible while it
    ///   is filled: don't write to it before the clone returns. A copy that fails drops `to`
    ///   again, except when it failed on a duplicate key, which means someone wrote to `to`
    ///   meanwhile: then `to` is left as it is (nothing acknowledged is dropped) and the
    ///   error is returned.
    ///
    /// Only the registered tenant models' tables are copied; tables made by raw migration
    /// steps are not. On MariaDB a row whose foreign key points at a later row of its own
    /// table (by key) cannot be inserted first: the clone fails with
    /// [`Error::ForeignKeyViolation`] and `to` is dropped.
    ///
    /// Errors: [`Error::SchemaNotFound`] for a missing `from`, [`Error::SchemaAlreadyExists`]
    /// for an existing `to`, [`Error::InvalidArgument`] when they are the same.
    pub async fn clone_schema(&self, from: &SchemaName, to: &SchemaName) -> Result<()> {
        refuse_reserved(to)?;
        self.database.check_schema(from)?;
        self.database.check_schema(to)?;
        if from == to {
            return Err(Error::InvalidArgument {
                argument: "to",
                reason: "a schema cannot be cloned into itself",
            });
        }
        let (registry, database) = (self.registry.clone(), self.database.clone());
        let (from, to) = (from.clone(), to.clone());
        let span = tracing::info_span!("tenantry.clone_schema", from = %from, to = %to);
        let work = async move {
            let schemas = Schemas {
                registry: &registry,
                database: &database,
            };
            schemas.clone_now(&from, &to).await
        };
        tokio::spawn(work.instrument(span))
            .await
            .map_err(|join| Error::WorkPanicked {
                message: join.to_string(),
            })?
    }

    async fn clone_now(&self, from: &SchemaName, to: &SchemaName) -> Result<()> {
        if !self.exists(from).await? {
            return Err(Error::SchemaNotFound {
                schema: from.to_string(),
            });
        }
        let models = ddl::creation_order(&self.registry.tenant_models().collect::<Vec<_>>());
        if self.database.backend() == Backend::Postgres {
            return self.clone_in_one_transaction(from, to, &models).await;
        }
        self.create(to, None, false, true).await?;
        let copied = match self.database.pools() {
            Pools::Sqlite(store) => copy_sqlite(store, from, to, &models).await,
            _ => self.copy_in_transaction(from, to, &models).await,
        };
        match copied {
            Ok(()) => Ok(()),
            Err(error @ Error::UniqueViolation { .. }) => {
                tracing::warn!(%error, schema = %to, "a clone met rows written to its destination while it was filled; the destination is left as it is");
                Err(error)
            }
            Err(error) => {
                let undone = self.drop(to, true, true).await;
                Err(crate::error::compensated(error, "drop the clone", undone))
            }
        }
    }

    /// PostgreSQL: `to`, its tables and its rows in one `REPEATABLE READ` transaction.
    async fn clone_in_one_transaction(
        &self,
        from: &SchemaName,
        to: &SchemaName,
        models: &[&'static ModelMeta],
    ) -> Result<()> {
        let tx = self.registry.begin_on(self.database).await?;
        let built = async {
            let target = Target {
                conn: Conn::Transaction(tx.clone()),
                schema: Some(to.clone()),
            };
            target.execute_ddl(PG_REPEATABLE_READ).await?;
            self.create_within(&tx, to, false).await?;
            copy_rows(self.database, &target, from, to, models).await
        }
        .await;
        finish(tx, built).await
    }

    async fn copy_in_transaction(
        &self,
        from: &SchemaName,
        to: &SchemaName,
        models: &[&'static ModelMeta],
    ) -> Result<()> {
        let tx = self.registry.begin_on(self.database).await?;
        let target = Target {
            conn: Conn::Transaction(tx.clone()),
            schema: Some(to.clone()),
        };
        let copied = copy_rows(self.database, &target, from, to, models).await;
        finish(tx, copied).await
    }
}

/// Commits `tx` after `work` succeeded, else rolls it back and returns the work's error (a
/// failed rollback is moot: the connection is discarded).
async fn finish(tx: crate::Transaction, work: Result<()>) -> Result<()> {
    match work {
        Ok(()) => tx.commit().await,
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// One snapshot for the whole clone; the first statement of its transaction.
const PG_REPEATABLE_READ: &str = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ";

/// Copies every table of `models` from `from` into `to` through `target` (a transaction),
/// then (PostgreSQL) sets each sequence past the copied keys.
async fn copy_rows(
    database: &Database,
    target: &Target,
    from: &SchemaName,
    to: &SchemaName,
    models: &[&'static ModelMeta],
) -> Result<()> {
    for meta in models {
        let source = table_name(database, Some(from), meta.table);
        let destination = table_name(database, Some(to), meta.table);
        let copy = copy(meta, source, destination, |ty| {
            (database.backend() == Backend::Postgres)
                .then(|| crate::enum_types::type_ref(database, Some(to), ty))
        })?;
        target.execute(&copy).await?;
    }
    if database.backend() == Backend::Postgres {
        for meta in models {
            if let Some(restart) = restart_sequence(database, to, meta) {
                target.fetch_all(&restart).await?;
            }
        }
    }
    Ok(())
}

/// `INSERT INTO destination (columns) SELECT columns FROM source ORDER BY key`. On
/// PostgreSQL each schema has its own copy of an enum type: such a column is converted by
/// its text to the destination's type (`type_in_destination`, `None` elsewhere).
fn copy(
    meta: &'static ModelMeta,
    source: sea_query::TableName,
    destination: sea_query::TableName,
    type_in_destination: impl Fn(&'static str) -> Option<sea_query::TypeRef>,
) -> Result<InsertStatement> {
    let columns = meta.column_names.iter().copied();
    let mut select = Query::select();
    for column in meta.columns {
        match column.enum_type.and_then(|ty| type_in_destination(ty.name)) {
            Some(ty) => {
                let text = sea_query::Func::cast_as(sea_query::Expr::col(column.name), "text");
                select.expr(sea_query::Func::cast_as_quoted(text, ty))
            }
            None => select.column(column.name),
        };
    }
    let select = select
        .from(source)
        .order_by(meta.primary_key_column().name, Order::Asc)
        .to_owned();
    let mut insert = Query::insert();
    insert.into_table(destination).columns(columns);
    select_into(&mut insert, select)?;
    Ok(insert)
}

fn select_into(insert: &mut InsertStatement, select: SelectStatement) -> Result<()> {
    insert
        .select_from(select)
        .map(drop)
        .map_err(|error| Error::InvalidArgument {
            argument: "clone",
            reason: leak_reason(error),
        })
}

/// sea-query refuses an INSERT … SELECT whose column counts differ, which the copy's
/// identical column lists rule out; its error has no static text of its own.
fn leak_reason(_: sea_query::error::Error) -> &'static str {
    "the copy's column lists differ"
}

/// PostgreSQL: `SELECT setval(pg_get_serial_sequence('"to"."table"', 'id'),
/// COALESCE(MAX(id), 1), MAX(id) IS NOT NULL) FROM "to"."table"`: the next key after the
/// copied maximum (1 on an empty table). `None` for a table without an auto key.
fn restart_sequence(
    database: &Database,
    to: &SchemaName,
    meta: &'static ModelMeta,
) -> Option<SelectStatement> {
    let key = meta.primary_key_column();
    if !key.auto_increment {
        return None;
    }
    // The sequence lookup takes the table as text (a bound value), quoted by the query
    // builder as PostgreSQL parses it.
    let mut qualified = String::with_capacity(to.as_str().len() + meta.table.len() + 5);
    PostgresQueryBuilder.prepare_iden(&DynIden::from(to.as_str().to_owned()), &mut qualified);
    qualified.push('.');
    PostgresQueryBuilder.prepare_iden(&DynIden::from(meta.table), &mut qualified);
    let sequence = Func::cust("pg_get_serial_sequence")
        .arg(Expr::val(qualified))
        .arg(Expr::val(key.name));
    let max = || Expr::from(Func::max(Expr::col(key.name)));
    let restart = Func::cust("setval").args([
        Expr::from(sequence),
        Expr::from(Func::coalesce([max(), Expr::val(1)])),
        max().is_not_null(),
    ]);
    Some(
        Query::select()
            .expr_as(restart, Alias::new("restarted"))
            .from(table_name(database, Some(to), meta.table))
            .to_owned(),
    )
}

/// SQLite: on a connection of its own to `to`'s file, `from`'s file attached read-only, one
/// transaction copies every table. Both schemas are pinned meanwhile, so neither is dropped
/// under the copy.
async fn copy_sqlite(
    store: &SqliteStore,
    from: &SchemaName,
    to: &SchemaName,
    models: &[&'static ModelMeta],
) -> Result<()> {
    store.pin(from)?;
    let pinned_to = store.pin(to);
    let result = match pinned_to {
        Ok(()) => {
            let copied = copy_sqlite_pinned(store, from, to, models).await;
            store.unpin(to);
            copied
        }
        Err(error) => Err(error),
    };
    store.unpin(from);
    result
}

async fn copy_sqlite_pinned(
    store: &SqliteStore,
    from: &SchemaName,
    to: &SchemaName,
    models: &[&'static ModelMeta],
) -> Result<()> {
    let mut conn = store.connect_options(Some(to)).connect().await?;
    let copied = async {
        sqlx::query(SQLITE_ATTACH_SOURCE)
            .bind(store.schema_file_uri(from))
            .execute(&mut conn)
            .await?;
        let mut tx = conn.begin().await?;
        for meta in models {
            let source = sea_query::TableName(
                Some(sea_query::SchemaName(None, SQLITE_SOURCE_ALIAS.into())),
                meta.table.into(),
            );
            // The connection's own file is the clone.
            let destination = sea_query::TableName(None, meta.table.into());
            let copy = copy(meta, source, destination, |_| None)?;
            let (sql, values) = crate::target::render(Backend::Sqlite, &copy);
            sqlx::query_with(&sql, values).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, Error>(())
    }
    .await;
    // Closed here, before the pins go: the file is never left to a late close.
    let closed = conn.close().await;
    copied?;
    Ok(closed?)
}

/// Attaches the clone's source file (the URI bound) under its alias. Not expressible in
/// sea-query; the alias is a constant and the file a bound value.
const SQLITE_ATTACH_SOURCE: &str = "ATTACH DATABASE ? AS \"tenantry_source\"";
