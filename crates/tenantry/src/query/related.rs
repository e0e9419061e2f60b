//! `select_related`: loading the rows foreign keys point to, with `WHERE pk IN (…)` queries.
//!
//! Each relation is loaded with `WHERE pk IN (…)` queries rather than a JOIN, so it works
//! the same on every backend, including SQLite, where a tenant schema and the shared schema
//! are different files that one statement cannot join.
//!
//! The referenced keys are deduplicated (70,000 products of three users send three keys),
//! split into IN lists of at most the backend's bind-parameter limit
//! ([`Capabilities::max_bind_params`](crate::Capabilities::max_bind_params)), one query
//! each, and the loaded rows are matched to the referencing rows through a hash map on the
//! primary key: O(n + m) for n referencing and m referenced rows.

use std::{any::Any, collections::HashMap};

use sea_query::{Expr, ExprTrait, Query};

use super::{
    rendered::{Shape, SQLITE_TEXTS},
    QuerySet, Source,
};
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::{Column, Model, ModelMeta},
    row::Row,
    target::{Conn, Origin, Target},
};

/// A foreign key field seen without its target type, so a model can hand out its foreign
/// keys by column index. Implemented by [`ForeignKey`](crate::ForeignKey) and its `Option`.
pub trait AnyForeignKey {
    /// The referenced key, `None` for a NULL.
    fn key_value(&self) -> Option<sea_query::Value>;
    /// Adds the referenced key to the keys of `related` (created on the first call), unless
    /// it is NULL or already there.
    #[doc(hidden)]
    fn collect_key(&self, related: &mut Option<RelatedRows>, backend: crate::Backend);
    /// Finds the referenced row among `related` and keeps it, decoded, with `origin`.
    #[doc(hidden)]
    fn attach(&mut self, related: &RelatedRows, origin: &Origin) -> Result<()>;
}

/// The distinct keys one relation references and, once loaded, the rows they name, indexed
/// by key. Opaque: it holds a `Related<R>` for the relation's target model `R`.
#[doc(hidden)]
pub struct RelatedRows(Box<dyn ErasedRelated>);

/// What `load_related` needs of a `Related<R>` without knowing `R`.
trait ErasedRelated: Send + Sync {
    /// The distinct keys, as bind values.
    fn key_values(&self) -> Vec<sea_query::Value>;
    /// Indexes loaded rows by their primary key.
    fn add_rows(&mut self, rows: Vec<Row>) -> Result<()>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// The keys referenced by one relation to `R` and the rows loaded for them.
struct Related<R: Model> {
    /// Each distinct key, in the form `backend` compares keys in, with the position of its
    /// row in `rows` once loaded.
    keys: HashMap<R::PrimaryKey, Option<usize>>,
    rows: Vec<Row>,
    backend: crate::Backend,
}

impl<R: Model> ErasedRelated for Related<R> {
    fn key_values(&self) -> Vec<sea_query::Value> {
        self.keys.keys().map(FieldType::to_value).collect()
    }

    fn add_rows(&mut self, rows: Vec<Row>) -> Result<()> {
        let pk = R::META.primary_key;
        for row in rows {
            let key = R::PrimaryKey::decode(&row, pk).map_err(Error::Database)?;
            let key = crate::field::compared(key, self.backend);
            if let Some(slot) = self.keys.get_mut(&key) {
                *slot = Some(self.rows.len());
                self.rows.push(row);
            }
        }
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl<R: Model> AnyForeignKey for crate::ForeignKey<R> {
    fn key_value(&self) -> Option<sea_query::Value> {
        Some(self.key().to_value())
    }

    fn collect_key(&self, related: &mut Option<RelatedRows>, backend: crate::Backend) {
        let related = related.get_or_insert_with(|| {
            RelatedRows(Box::new(Related::<R> {
                keys: HashMap::new(),
                rows: Vec::new(),
                backend,
            }))
        });
        // Every slot of one relation has the same target model; anything else is skipped.
        if let Some(related) = related.0.as_any_mut().downcast_mut::<Related<R>>() {
            let form = self.key().compared_form(related.backend);
            let key = form.unwrap_or_else(|| self.key().clone());
            related.keys.entry(key).or_insert(None);
        }
    }

    fn attach(&mut self, related: &RelatedRows, origin: &Origin) -> Result<()> {
        let Some(related) = related.0.as_any().downcast_ref::<Related<R>>() else {
            return Ok(());
        };
        let form = self.key().compared_form(related.backend);
        if let Some(&Some(index)) = related.keys.get(form.as_ref().unwrap_or(self.key())) {
            let model = R::from_row(&related.rows[index])?;
            self.set_loaded(Instance::stored(model, origin.clone()));
        }
        Ok(())
    }
}

impl<R: Model> AnyForeignKey for Option<crate::ForeignKey<R>> {
    fn key_value(&self) -> Option<sea_query::Value> {
        self.as_ref().and_then(AnyForeignKey::key_value)
    }

    fn collect_key(&self, related: &mut Option<RelatedRows>, backend: crate::Backend) {
        if let Some(fk) = self {
            fk.collect_key(related, backend);
        }
    }

    fn attach(&mut self, related: &RelatedRows, origin: &Origin) -> Result<()> {
        match self {
            Some(fk) => fk.attach(related, origin),
            None => Ok(()),
        }
    }
}

impl<M: Model> QuerySet<M> {
    /// Also loads the row each row's foreign key `column` points to, readable afterwards
    /// with [`ForeignKey::get`](crate::ForeignKey::get). A column that is not a foreign key
    /// is ignored.
    ///
    /// The referenced rows are read from the rows' schema, or from the shared schema when
    /// the referenced model is shared. Each distinct key is sent once, in IN lists no longer
    /// than the backend's bind-parameter limit (one query per list).
    pub fn select_related<T: FieldType>(mut self, column: Column<M, T>) -> Self {
        if column.through_relation() {
            self.defer(super::write::through_relation::<M>(column.name()));
            return self;
        }
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
            let mut related = None;
            for instance in instances.iter_mut() {
                if let Some(slot) = instance.model_untracked().foreign_key_mut(index) {
                    slot.collect_key(&mut related, target.backend());
                }
            }
            let Some(mut related) = related else {
                continue;
            };
            let parent_target = self.parent_target(target, parent)?;
            let per_query = target.backend().capabilities().max_bind_params.max(1);
            let keys = related.0.key_values();
            for chunk in keys.chunks(per_query) {
                let rows = fetch_by_keys(&parent_target, parent, chunk).await?;
                related.0.add_rows(rows)?;
            }
            let origin = parent_target.origin();
            for instance in instances.iter_mut() {
                if let Some(slot) = instance.model_untracked().foreign_key_mut(index) {
                    slot.attach(&related, &origin)?;
                }
            }
        }
        Ok(())
    }
}

impl<M: Model> QuerySet<M> {
    /// Where the rows a foreign key of rows read at `target` points to are: the same schema,
    /// or the shared schema for a shared parent. From a directory tenant's database the
    /// shared schema is the registry's default database's (a query made from the registry);
    /// from a transaction of that database it cannot be reached ([`Error::Unsupported`], by
    /// the table's naming).
    fn parent_target(&self, target: &Target, parent: &'static ModelMeta) -> Result<Target> {
        if !parent.shared {
            return Ok(Target {
                conn: target.conn.clone(),
                schema: target.schema.clone(),
            });
        }
        let conn = match (&self.source, target.database().is_directory_database()) {
            (Source::Registry(registry), true) => Conn::Database(registry.database().clone()),
            _ => target.conn.clone(),
        };
        Ok(Target { conn, schema: None })
    }
}

/// The rows of `meta` at `target` whose primary key is among `keys`. On SQLite the
/// statement's text is the same in every tenant's file: it is rendered once per number of
/// keys and kept (`rendered.rs`).
async fn fetch_by_keys(
    target: &Target,
    meta: &'static ModelMeta,
    keys: &[sea_query::Value],
) -> Result<Vec<Row>> {
    if target.backend() != crate::Backend::Sqlite {
        return target
            .fetch_all(&select_in(target, meta, keys.to_vec())?)
            .await;
    }
    let shape = Shape::ByKeys {
        model: std::ptr::from_ref(meta) as usize,
        table: target.table(meta)?,
        keys: keys.len(),
    };
    if let Some(text) = SQLITE_TEXTS.get(&shape) {
        return target
            .fetch_sql(&text, keys.to_vec(), || keys.to_vec())
            .await;
    }
    let select = select_in(target, meta, keys.to_vec())?;
    let (sql, values) = crate::target::render(target.backend(), &select);
    let text: std::sync::Arc<str> = sql.into();
    // Kept only if its values are the keys, in order: then any keys can be bound to it.
    if values.0 .0 == keys {
        SQLITE_TEXTS.insert(shape, text.clone());
    }
    target.fetch_sql(&text, values.0 .0, || keys.to_vec()).await
}

fn select_in(
    target: &Target,
    meta: &'static ModelMeta,
    keys: Vec<sea_query::Value>,
) -> Result<sea_query::SelectStatement> {
    let mut select = Query::select();
    select
        .columns(meta.column_names.iter().copied())
        .from(target.table(meta)?)
        .and_where(Expr::col(meta.primary_key_column().name).is_in(keys));
    Ok(select)
}
