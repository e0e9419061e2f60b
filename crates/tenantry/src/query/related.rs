//! `select_related`: loading the rows foreign keys point to, one query per relation.
//!
//! Each relation is loaded with one `WHERE pk IN (…)` query rather than a JOIN, so it works
//! the same on every backend, including SQLite, where a tenant schema and the shared schema
//! are different files that one statement cannot join.

use sea_query::{Expr, ExprTrait, Query};

use super::QuerySet;
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::{Column, Model, ModelMeta},
    row::Row,
    target::{Origin, Target},
};

/// A foreign key field seen without its target type, so a model can hand out its foreign
/// keys by column index. Implemented by [`ForeignKey`](crate::ForeignKey) and its `Option`.
pub trait AnyForeignKey {
    /// The referenced key, `None` for a NULL.
    fn key_value(&self) -> Option<sea_query::Value>;
    /// Finds the referenced row among `rows` (the target's columns, in order) and keeps it.
    fn attach(&mut self, rows: &[Row], origin: &Origin) -> Result<()>;
}

impl<R: Model> AnyForeignKey for crate::ForeignKey<R> {
    fn key_value(&self) -> Option<sea_query::Value> {
        Some(self.key().to_value())
    }

    fn attach(&mut self, rows: &[Row], origin: &Origin) -> Result<()> {
        let pk = R::META.primary_key;
        for row in rows {
            if R::PrimaryKey::decode(row, pk).map_err(Error::Database)? == *self.key() {
                self.set_loaded(Instance::stored(R::from_row(row)?, origin.clone()));
                return Ok(());
            }
        }
        Ok(())
    }
}

impl<R: Model> AnyForeignKey for Option<crate::ForeignKey<R>> {
    fn key_value(&self) -> Option<sea_query::Value> {
        self.as_ref().and_then(AnyForeignKey::key_value)
    }

    fn attach(&mut self, rows: &[Row], origin: &Origin) -> Result<()> {
        match self {
            Some(fk) => fk.attach(rows, origin),
            None => Ok(()),
        }
    }
}

impl<M: Model> QuerySet<M> {
    /// Also loads the row each row's foreign key `column` points to, readable afterwards
    /// with [`ForeignKey::get`](crate::ForeignKey::get). A column that is not a foreign key
    /// is ignored.
    pub fn select_related<T: FieldType>(mut self, column: Column<M, T>) -> Self {
        if let Some(index) = M::META.columns.iter().position(|c| c.name == column.name()) {
            if M::META.columns[index].foreign_key.is_some() && !self.related.contains(&index) {
                self.related.push(index);
            }
        }
        self
    }

    pub(super) async fn load_related(
        &self,
        target: &Target,
        instances: &mut [Instance<M>],
    ) -> Result<()> {
        for &index in &self.related {
            let Some(fk) = M::META.columns[index].foreign_key else {
                continue;
            };
            let parent = (fk.target)();
            let keys: Vec<sea_query::Value> = instances
                .iter_mut()
                .filter_map(|i| i.foreign_key_mut(index).and_then(|f| f.key_value()))
                .collect();
            if keys.is_empty() {
                continue;
            }
            let parent_target = Target {
                conn: target.conn.clone(),
                schema: if parent.shared {
                    None
                } else {
                    target.schema.clone()
                },
            };
            let rows = parent_target
                .fetch_all(&select_in(&parent_target, parent, keys))
                .await?;
            let origin = parent_target.origin();
            for instance in instances.iter_mut() {
                if let Some(slot) = instance.foreign_key_mut(index) {
                    slot.attach(&rows, &origin)?;
                }
            }
        }
        Ok(())
    }
}

fn select_in(
    target: &Target,
    meta: &'static ModelMeta,
    keys: Vec<sea_query::Value>,
) -> sea_query::SelectStatement {
    Query::select()
        .columns(meta.column_names.iter().copied())
        .from(target.table(meta))
        .and_where(Expr::col(meta.primary_key_column().name).is_in(keys))
        .to_owned()
}
