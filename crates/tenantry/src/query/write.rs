//! The writing operations.

use sea_query::{Expr, ExprTrait, InsertStatement, Query, UpdateStatement};

use super::{window::WRITE_WINDOW, QuerySet};
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::{Assignment, Filter, Model},
    query::assign::{
        assigned_expr, checked_in_statement, refuse_reads_of_earlier_assignments,
        unassigned_version,
    },
    registry::Registry,
    row::Row,
    target::{Conn, Target},
    transaction::Transaction,
};

impl<M: Model> QuerySet<M> {
    /// An unsaved instance bound to this QuerySet's target; [`Instance::save`] inserts it.
    pub fn instance(self, model: M) -> Result<Instance<M>> {
        let target = self.target()?;
        Ok(Instance::unsaved(model, target.origin()))
    }

    /// Inserts `model` and returns it as stored. An auto-increment primary key is assigned by
    /// the database (whatever the field held is ignored) and set on the returned instance.
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_insert(User { id: 0, name: "Edgy".into(), email: "edgy@example.com".into() });
    /// assert_eq!(sql.postgres, r#"INSERT INTO "public"."users" ("name", "email") VALUES ($1, $2) RETURNING "id""#);
    /// assert_eq!(sql.mysql, r#"INSERT INTO `app`.`users` (`name`, `email`) VALUES (?, ?)"#);
    /// assert_eq!(sql.sqlite, r#"INSERT INTO "users" ("name", "email") VALUES (?, ?) RETURNING "id""#);
    /// ```
    pub async fn create(self, model: M) -> Result<Instance<M>> {
        let target = self.target()?;
        if M::hooks().is_some() {
            // Boxed: the hooks' transaction and savepoint would otherwise grow every
            // `create` future, hooks or not (several in one task overflowed a stack).
            let mut instance = Instance::unsaved(model, target.origin());
            Box::pin(instance.save()).await?;
            return Ok(instance);
        }
        let mut models = vec![model];
        insert_chunk(&target, &mut models).await?;
        let origin = target.origin();
        models
            .pop()
            .map(|m| Instance::stored(m, origin))
            .ok_or(Error::NotFound {
                model: M::META.table,
            })
    }

    /// Inserts every model with one multi-row INSERT per batch (batches sized to the
    /// backend's bind-parameter limit) and returns them as stored, keys set.
    ///
    /// All or nothing: when the QuerySet runs on a database (not in a transaction) and the
    /// work needs more than one statement, every batch runs in one transaction of its own on
    /// the same database (on SQLite in the target schema's file), so a batch that fails
    /// leaves no row of the earlier ones. Inside a caller's transaction the batches simply
    /// run in it; a failure is the caller's to roll back. A single-batch insert with keys
    /// the database returns runs as one statement, atomic by itself.
    ///
    /// Keys without `RETURNING` (MySQL, MariaDB): a multi-row INSERT reports only its first
    /// key (`LAST_INSERT_ID()`); the others are `first + k * step`, where the step is the
    /// session's `@@auto_increment_increment`, read on the connection that inserts (inside
    /// the transaction above, which a multi-row insert on MySQL therefore always has), so a
    /// server or session with `auto_increment_increment > 1` gets the stored keys. InnoDB
    /// assigns a multi-row INSERT's keys in such steps unless `innodb_autoinc_lock_mode = 2`
    /// ("interleaved"), under which no client can know them.
    pub async fn bulk_create(
        self,
        models: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Instance<M>>> {
        let target = self.target()?;
        let mut models: Vec<M> = models.into_iter().collect();
        let width = M::META.insert_columns().count();
        let per_batch = match width {
            // Only an auto-increment key: SQLite's `DEFAULT VALUES` makes one row a statement.
            0 if target.backend() == crate::Backend::Sqlite => 1,
            _ => (target.backend().capabilities().max_bind_params / width.max(1)).max(1),
        };
        let batches = models.len().div_ceil(per_batch);
        let derived_keys = derives_keys::<M>(&target) && models.len() > 1;
        let own = matches!(target.conn, Conn::Database(_)) && (batches > 1 || derived_keys);
        if own {
            // The transaction never leaves this function; dropped halfway (the caller's
            // future cancelled), it rolls back.
            let (tx, in_tx) = own_transaction(&target).await?;
            let result = insert_batches(&in_tx, &mut models, per_batch, derived_keys).await;
            tx.end_with(result).await?;
        } else {
            insert_batches(&target, &mut models, per_batch, derived_keys).await?;
        }
        // The instances belong to the target (its database, or the caller's transaction),
        // not to the finished internal transaction.
        let origin = target.origin();
        Ok(models
            .into_iter()
            .map(|m| Instance::stored(m, origin.clone()))
            .collect())
    }

    /// Sets `assignments` on every matching row; returns the number of rows changed. A
    /// QuerySet with a limit or an offset is [`Error::InvalidArgument`]: the UPDATE would
    /// change every matching row, not the window.
    pub async fn update(
        mut self,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64> {
        let target = self.target()?;
        let update = self.update_statement(&target, assignments)?;
        Ok(target.execute(&update).await?.rows_affected)
    }

    /// The UPDATE [`update`](Self::update) would run.
    #[doc(hidden)]
    pub fn update_sql(
        mut self,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<String> {
        let target = self.target()?;
        let update = self.update_statement(&target, assignments)?;
        Ok(crate::target::render(target.backend(), &update).0)
    }

    fn update_statement(
        &mut self,
        target: &Target,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<UpdateStatement> {
        self.refuse_window(WRITE_WINDOW)?;
        let assignments: Vec<Assignment<M>> = assignments.into_iter().collect();
        refuse_reads_of_earlier_assignments(target, &[], &assignments)?;
        let mut values = assignments
            .iter()
            .map(|a| Ok((a.column, assigned_expr::<M>(target, a, None)?)))
            .collect::<Result<Vec<_>>>()?;
        if let Some(version) = unassigned_version::<M>(values.iter().map(|(name, _)| *name)) {
            let bumped = Expr::col(version).add(1);
            values.push((version, checked_in_statement::<M>(target, version, bumped)));
        }
        let mut update = Query::update();
        update.table(target.table(M::META)?).values(values);
        self.add_filter(target, &mut update)?;
        Ok(update)
    }

    /// Deletes every matching row; returns the number of rows deleted. A QuerySet with a
    /// limit or an offset is [`Error::InvalidArgument`]: the DELETE would remove every
    /// matching row, not the window (to delete a window, filter on the keys it holds).
    pub async fn delete(mut self) -> Result<u64> {
        let target = self.target()?;
        self.refuse_window(WRITE_WINDOW)?;
        let mut delete = Query::delete();
        delete.from_table(target.table(M::META)?);
        self.add_filter(&target, &mut delete)?;
        Ok(target.execute(&delete).await?.rows_affected)
    }

    /// The row matching `filter`, or `defaults` created; `true` when it was created. A
    /// concurrent creation that wins a unique constraint is read back instead.
    ///
    /// The lookup, the insert and the read-back are clones of this QuerySet: a builder error
    /// (an invalid `using` name) is returned before any of them sends SQL.
    pub async fn get_or_create(self, filter: Filter, defaults: M) -> Result<(Instance<M>, bool)> {
        let retry = self.clone();
        match self.clone().get(filter.clone()).await {
            Ok(found) => return Ok((found, false)),
            Err(Error::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        match self.create(defaults).await {
            Ok(created) => Ok((created, true)),
            Err(Error::UniqueViolation { .. }) => Ok((retry.get(filter).await?, false)),
            Err(error) => Err(error),
        }
    }

    /// Updates the row matching `filter` with every non-key field of `values`, or creates
    /// `values`; `true` when it was created. The update goes to the row's origin, which is
    /// this QuerySet's target; a builder error is returned before any SQL is sent.
    ///
    /// Race-free outside a transaction: when a concurrent call creates the row between the
    /// lookup and the insert (the insert fails on a unique constraint), the row it made is
    /// read and updated instead, so racing calls end with one row and every call succeeds.
    /// Inside a transaction the unique violation is returned (on PostgreSQL it has aborted
    /// the transaction). For one statement with no lookup, use an upsert:
    /// [`on_conflict`](Self::on_conflict)`(key).do_update(..)`.
    pub async fn update_or_create(self, filter: Filter, values: M) -> Result<(Instance<M>, bool)> {
        let retry = self.clone();
        let target = self.target()?;
        let outside = matches!(target.conn, Conn::Database(_));
        match self.clone().get(filter.clone()).await {
            Ok(found) => {
                return Ok((
                    overwrite(&retry, &filter, found, values, outside).await?,
                    false,
                ))
            }
            Err(Error::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        // Through `save`, so that the model's hooks run; a failed save leaves `values` in it.
        let mut created = Instance::unsaved(values, target.origin());
        let inserted = created.save().await;
        match inserted {
            Ok(()) => Ok((created, true)),
            Err(violation @ Error::UniqueViolation { .. }) if outside => {
                match retry.clone().get(filter.clone()).await {
                    Ok(found) => {
                        let values = created.into_inner();
                        Ok((
                            overwrite(&retry, &filter, found, values, outside).await?,
                            false,
                        ))
                    }
                    // Another unique key than the filter's: the violation is the answer.
                    Err(Error::NotFound { .. }) => Err(violation),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(error),
        }
    }
}

/// Reads of a versioned row that another writer changed between `update_or_create`'s
/// lookup and its save.
const VERSION_ATTEMPTS: u32 = 5;

/// `found` with every non-key field of `values`, saved. The version is the one read, not
/// whatever `values` holds; when another writer saved the row meanwhile (`retry`: outside a
/// transaction) it is read again (`query`, `filter`) and overwritten, a bounded number of
/// times, so that racing calls all succeed.
async fn overwrite<M: Model>(
    query: &QuerySet<M>,
    filter: &Filter,
    mut found: Instance<M>,
    mut values: M,
    retry: bool,
) -> Result<Instance<M>> {
    let mut attempt = 1;
    loop {
        let key = found.primary_key().clone();
        let read = std::mem::replace(&mut *found, values);
        found.set_primary_key(key);
        found.copy_version(&read);
        // Every field of `values` is written, whether or not it differs from the row.
        found.untrack();
        match found.save().await {
            Ok(()) => return Ok(found),
            Err(Error::VersionConflict { .. }) if retry && attempt < VERSION_ATTEMPTS => {
                attempt += 1;
                values = found.into_inner();
                found = query.clone().get(filter.clone()).await?;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A transaction of its own on `target`'s database, and the target inside it: for work of
/// several statements that must be all or nothing. It begins in the target's own schema
/// file on SQLite (not the context's: the target may be a shared model).
pub(crate) async fn own_transaction(target: &Target) -> Result<(Transaction, Target)> {
    let database = target.database();
    let tx = Registry::new(database.clone())
        .begin_at(database, target.schema.clone())
        .await?;
    let in_tx = Target {
        conn: Conn::Transaction(tx.clone()),
        schema: target.schema.clone(),
    };
    Ok((tx, in_tx))
}

/// The INSERT of `models` into `target`, returning the keys where the backend can.
pub(crate) fn insert_statement<M: Model>(target: &Target, models: &[M]) -> Result<InsertStatement> {
    let meta = M::META;
    let mut insert = insert_values(target, models)?;
    if meta.auto_primary_key() && target.backend().capabilities().insert_returning {
        insert.returning_col(meta.primary_key_column().name);
    }
    Ok(insert)
}

/// The INSERT of `models` into `target`, with no RETURNING.
pub(crate) fn insert_values<M: Model>(target: &Target, models: &[M]) -> Result<InsertStatement> {
    let meta = M::META;
    let mut insert = Query::insert();
    insert
        .into_table(target.table(meta)?)
        .columns(meta.insert_columns().map(|(_, c)| c.name));
    if meta.insert_columns().next().is_none() {
        // A model of an auto-increment key alone: `VALUES (DEFAULT), …` (MySQL `()`, SQLite
        // `DEFAULT VALUES`, one row).
        let rows = u32::try_from(models.len()).map_err(|_| Error::InvalidArgument {
            argument: "bulk_create",
            reason: "more rows than one statement holds",
        })?;
        insert.or_default_values_many(rows);
        return Ok(insert);
    }
    for model in models {
        let row = meta
            .insert_columns()
            .map(|(i, c)| crate::enum_types::bind(target, meta, c, model.column_value(i)))
            .collect::<Result<Vec<_>>>()?;
        insert.values(row).map_err(|e| Error::Unsupported {
            backend: target.backend().name(),
            what: statement_error(e),
        })?;
    }
    Ok(insert)
}

fn statement_error(_: sea_query::error::Error) -> &'static str {
    "an INSERT whose values do not match its columns"
}

/// Whether the keys of `M` rows inserted into `target` are derived from the first one
/// (an auto-increment key on a backend without `RETURNING`).
fn derives_keys<M: Model>(target: &Target) -> bool {
    M::META.auto_primary_key() && !target.backend().capabilities().insert_returning
}

/// Inserts `models` in batches of `per_batch`, all on `target`'s connection. With
/// `derived_keys` the auto-increment step is read first, on that same connection (the caller
/// makes it a transaction so that it is one connection).
async fn insert_batches<M: Model>(
    target: &Target,
    models: &mut [M],
    per_batch: usize,
    derived_keys: bool,
) -> Result<()> {
    let step = if derived_keys {
        auto_increment_step(target).await?
    } else {
        1
    };
    for chunk in models.chunks_mut(per_batch) {
        insert_stepped(target, chunk, step).await?;
    }
    Ok(())
}

/// The step between the auto-increment keys of one multi-row INSERT on `target`'s
/// connection: the backend's session variable (MySQL's `@@auto_increment_increment`), read
/// with a sea-query SELECT; 1 on backends without one.
async fn auto_increment_step(target: &Target) -> Result<u64> {
    let Some(variable) = target.backend().capabilities().auto_increment_step else {
        return Ok(1);
    };
    let select = Query::select()
        .expr(Expr::cust(variable).cast_as("UNSIGNED"))
        .to_owned();
    let rows = target.fetch_all(&select).await?;
    let step = match rows.first() {
        Some(Row::MySql(row)) => sqlx::Row::try_get::<u64, _>(row, 0)?,
        _ => 1,
    };
    Ok(std::cmp::max(step, 1))
}

/// Inserts `models` in one statement and sets their database-assigned keys. Where keys are
/// derived (MySQL), a single row's key is exact whatever the session's step.
pub(crate) async fn insert_chunk<M: Model>(target: &Target, models: &mut [M]) -> Result<()> {
    insert_stepped(target, models, 1).await
}

/// Inserts `models` in one statement and sets their keys; derived keys are
/// `first + k * step`.
async fn insert_stepped<M: Model>(target: &Target, models: &mut [M], step: u64) -> Result<()> {
    if models.is_empty() {
        return Ok(());
    }
    let insert = insert_statement(target, models)?;
    if !M::META.auto_primary_key() {
        target.execute(&insert).await?;
        return Ok(());
    }
    if target.backend().capabilities().insert_returning {
        let rows = target.fetch_all(&insert).await?;
        for (model, row) in models.iter_mut().zip(&rows) {
            model.set_primary_key(M::PrimaryKey::decode(row, 0).map_err(Error::Database)?);
        }
        return Ok(());
    }
    let done = target.execute(&insert).await?;
    let first = done.last_insert_id.unwrap_or_default();
    for (k, model) in models.iter_mut().enumerate() {
        let key = (k as u64)
            .checked_mul(step)
            .and_then(|offset| first.checked_add(offset))
            .and_then(M::PrimaryKey::from_insert_id)
            .ok_or(Error::Unsupported {
                backend: target.backend().name(),
                what: "an auto-increment key that does not fit the primary key type",
            })?;
        model.set_primary_key(key);
    }
    Ok(())
}

/// A column handle reached through a relation ([`Column::to`](crate::Column::to)) used where
/// only the model's own columns may be: it names another model's column, which the
/// statement would read (or write) as this model's column of the same name.
pub(crate) fn through_relation<M: Model>(column: &'static str) -> Error {
    Error::InvalidRelation {
        model: M::META.table,
        column,
        reason: "a column reached through a relation is for lookups and orderings only",
    }
}
