//! The writing operations.

use sea_query::{Expr, InsertStatement, Query};

use super::QuerySet;
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::{Assignment, Filter, Model},
    target::Target,
};

impl<M: Model> QuerySet<M> {
    /// An unsaved instance bound to this QuerySet's target; [`Instance::save`] inserts it.
    pub fn instance(mut self, model: M) -> Result<Instance<M>> {
        let target = self.prepare()?;
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
    pub async fn create(mut self, model: M) -> Result<Instance<M>> {
        let target = self.prepare()?;
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
    /// backend's bind-parameter limit) and returns them as stored, keys set. On MySQL the keys
    /// of a batch are derived from `LAST_INSERT_ID()`, which InnoDB makes consecutive for a
    /// multi-row INSERT unless `innodb_autoinc_lock_mode = 2`.
    pub async fn bulk_create(
        mut self,
        models: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Instance<M>>> {
        let target = self.prepare()?;
        let mut models: Vec<M> = models.into_iter().collect();
        let width = M::META.insert_columns().count().max(1);
        let per_batch = (target.backend().capabilities().max_bind_params / width).max(1);
        for chunk in models.chunks_mut(per_batch) {
            insert_chunk(&target, chunk).await?;
        }
        let origin = target.origin();
        Ok(models
            .into_iter()
            .map(|m| Instance::stored(m, origin.clone()))
            .collect())
    }

    /// Sets `assignments` on every matching row; returns the number of rows changed.
    pub async fn update(
        mut self,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64> {
        let target = self.prepare()?;
        let mut update = Query::update();
        update.table(target.table(M::META)).values(
            assignments
                .into_iter()
                .map(|a| (a.column, Expr::val(a.value))),
        );
        if let Some(filter) = self.filter.take() {
            update.cond_where(filter);
        }
        Ok(target.execute(&update).await?.rows_affected)
    }

    /// Deletes every matching row; returns the number of rows deleted.
    pub async fn delete(mut self) -> Result<u64> {
        let target = self.prepare()?;
        let mut delete = Query::delete();
        delete.from_table(target.table(M::META));
        if let Some(filter) = self.filter.take() {
            delete.cond_where(filter);
        }
        Ok(target.execute(&delete).await?.rows_affected)
    }

    /// The row matching `filter`, or `defaults` created; `true` when it was created. A
    /// concurrent creation that wins a unique constraint is read back instead.
    pub async fn get_or_create(self, filter: Filter, defaults: M) -> Result<(Instance<M>, bool)> {
        let retry = self.shallow_clone();
        match self.shallow_clone().get(filter.clone()).await {
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
    /// `values`; `true` when it was created.
    pub async fn update_or_create(self, filter: Filter, values: M) -> Result<(Instance<M>, bool)> {
        match self.shallow_clone().get(filter).await {
            Ok(mut found) => {
                let key = found.primary_key().clone();
                *found = values;
                found.set_primary_key(key);
                found.save().await?;
                Ok((found, false))
            }
            Err(Error::NotFound { .. }) => Ok((self.create(values).await?, true)),
            Err(error) => Err(error),
        }
    }

    /// A copy of the builder state (the filter is cloned; related loads are kept).
    pub(crate) fn shallow_clone(&self) -> Self {
        QuerySet {
            source: self.source.clone(),
            database: self.database.clone(),
            schema: self.schema.clone(),
            error: None,
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            related: self.related.clone(),
            _model: std::marker::PhantomData,
        }
    }
}

/// The INSERT of `models` into `target`, returning the keys where the backend can.
pub(crate) fn insert_statement<M: Model>(target: &Target, models: &[M]) -> Result<InsertStatement> {
    let meta = M::META;
    let mut insert = Query::insert();
    insert
        .into_table(target.table(meta))
        .columns(meta.insert_columns().map(|(_, c)| c.name));
    for model in models {
        let row = meta
            .insert_columns()
            .map(|(i, _)| Expr::val(model.column_value(i)));
        insert.values(row).map_err(|e| Error::Unsupported {
            backend: target.backend().name(),
            what: statement_error(e),
        })?;
    }
    if meta.auto_primary_key() && target.backend().capabilities().insert_returning {
        insert.returning_col(meta.primary_key_column().name);
    }
    Ok(insert)
}

fn statement_error(_: sea_query::error::Error) -> &'static str {
    "an INSERT whose values do not match its columns"
}

/// Inserts `models` in one statement and sets their database-assigned keys.
pub(crate) async fn insert_chunk<M: Model>(target: &Target, models: &mut [M]) -> Result<()> {
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
    for (offset, model) in models.iter_mut().enumerate() {
        let key =
            M::PrimaryKey::from_insert_id(first + offset as u64).ok_or(Error::Unsupported {
                backend: target.backend().name(),
                what: "an auto-increment key that does not fit the primary key type",
            })?;
        model.set_primary_key(key);
    }
    Ok(())
}
