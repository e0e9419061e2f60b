//! `prefetch_related`: the rows of another model pointing at each row of a query (a user's
//! products), loaded with one query per relation (per bind-limit chunk of parents) instead
//! of one per parent, and attached to the parents in O(n + m).

use std::{any::Any, collections::HashMap, marker::PhantomData, sync::Arc};

use futures_util::future::BoxFuture;
use sea_query::Order;

use super::QuerySet;
use crate::{
    backend::Backend,
    error::{Error, Result},
    field::{compared, FieldType},
    instance::{related_query, Instance},
    model::{Column, Filter, Model, Test},
    target::Origin,
};

/// Loads one relation's rows for a batch of parents of model `M`.
pub(crate) trait Prefetch<M: Model>: Send + Sync {
    /// Resolves where the relation's rows would be read from parents at `origin`, sending
    /// nothing: [`Error::TenantRequired`] for a tenant-only model that would be read from
    /// the shared schema, so that the parents' query is not sent either.
    fn check(&self, origin: &Origin) -> Result<()>;

    fn load<'a>(
        &'a self,
        origin: &'a Origin,
        parents: &'a mut [Instance<M>],
    ) -> BoxFuture<'a, Result<()>>;
}

/// The rows of `C` whose foreign key `column` points at the parent.
struct Reverse<M, C> {
    column: &'static str,
    _models: PhantomData<fn() -> (M, C)>,
}

/// What identifies a prefetched relation on an instance: the child's table and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RelationKey {
    pub(crate) table: &'static str,
    pub(crate) column: &'static str,
    /// A many-to-many relation's other foreign key; empty for a reverse foreign key.
    pub(crate) through: &'static str,
}

/// The prefetched children of one parent: a `Vec<Instance<C>>` behind `Any`.
pub(crate) type Children = Arc<dyn Any + Send + Sync>;

impl<M: Model, C: Model> Reverse<M, C> {
    /// The index of the foreign key column in `C`'s columns, checked to point at `M`.
    fn column_index(&self) -> Result<usize> {
        let index = C::META
            .columns
            .iter()
            .position(|c| c.name == self.column)
            .ok_or_else(|| self.invalid("no such column"))?;
        match C::META.columns[index].foreign_key {
            Some(fk) if (fk.target)() == M::META => Ok(index),
            _ => Err(self.invalid("not a foreign key to the queried model")),
        }
    }

    fn invalid(&self, reason: &'static str) -> Error {
        Error::InvalidRelation {
            model: C::META.table,
            column: self.column,
            reason,
        }
    }
}

impl<M: Model, C: Model> Prefetch<M> for Reverse<M, C> {
    fn check(&self, origin: &Origin) -> Result<()> {
        if C::META.tenant_only {
            related_query::<M, C>(origin).target()?;
        }
        Ok(())
    }

    fn load<'a>(
        &'a self,
        origin: &'a Origin,
        parents: &'a mut [Instance<M>],
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let fk = self.column_index()?;
            let keys = parent_keys(parents);
            let mut children = HashMap::new();
            for chunk in keys.chunks(per_query(origin)) {
                let mut query = related_query::<M, C>(origin).filter(Filter::new(Test::In {
                    column: self.column,
                    values: chunk.to_vec(),
                }));
                query.order.push(query.pk_order(Order::Asc));
                let target = query.target()?;
                let select = query.select(&target)?;
                let key = ParentKey {
                    at: fk,
                    model: C::META.table,
                    column: self.column,
                };
                let mut sink =
                    Grouped::<M::PrimaryKey, C>::new(key, Repeats::Kept, target.origin());
                target.fetch_into(&select, &mut sink).await?;
                sink.finish_into(&mut children)?;
            }
            let relation = RelationKey {
                table: C::META.table,
                column: self.column,
                through: "",
            };
            attach(parents, children, relation, origin.database().backend());
            Ok(())
        })
    }
}

/// Where a prefetch statement's rows carry the key of the parent they belong to, and the
/// model and column an error names when it does not decode.
pub(super) struct ParentKey {
    pub(super) at: usize,
    pub(super) model: &'static str,
    pub(super) column: &'static str,
}

/// What [`Grouped`] does with a child read twice in a row for one parent.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeats {
    /// Kept twice (two rows).
    Kept,
    /// Kept once: one related row linked twice through a junction without a unique
    /// constraint, as `all()` reads it (the rows come ordered by the child's key).
    Once,
}

/// A prefetch statement's rows, each decoded as it arrives into a child and the key of its
/// parent, grouped by that key.
pub(super) struct Grouped<K, C> {
    key: ParentKey,
    repeats: Repeats,
    origin: Origin,
    /// Keys are grouped in the form this backend compares them in.
    backend: Backend,
    children: HashMap<K, Vec<Instance<C>>>,
    /// The first row that did not decode; reading stopped there.
    error: Option<Error>,
}

impl<K: FieldType + Eq + std::hash::Hash, C: Model> Grouped<K, C> {
    pub(super) fn new(key: ParentKey, repeats: Repeats, origin: Origin) -> Self {
        Grouped {
            key,
            repeats,
            backend: origin.database().backend(),
            origin,
            children: HashMap::new(),
            error: None,
        }
    }

    /// Adds the children read to `all` (each statement's parents are other parents), or
    /// returns the error that stopped the reading.
    pub(super) fn finish_into(self, all: &mut HashMap<K, Vec<Instance<C>>>) -> Result<()> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if all.is_empty() {
            *all = self.children;
        } else {
            for (key, children) in self.children {
                all.entry(key).or_default().extend(children);
            }
        }
        Ok(())
    }

    fn decode(&self, row: &crate::row::Row) -> Result<(K, Instance<C>)> {
        let key = K::decode(row, self.key.at).map_err(|source| Error::Decode {
            model: self.key.model,
            column: self.key.column,
            source,
        })?;
        Ok((
            compared(key, self.backend),
            Instance::stored(C::from_row(row)?, self.origin.clone()),
        ))
    }
}

impl<K: FieldType + Eq + std::hash::Hash, C: Model> crate::database::RowSink for Grouped<K, C> {
    fn take(&mut self, row: &crate::row::Row) -> bool {
        match self.decode(row) {
            Ok((key, child)) => {
                let mine = self.children.entry(key).or_default();
                let repeated = self.repeats == Repeats::Once
                    && mine.last().map(|last| last.primary_key()) == Some(child.primary_key());
                if !repeated {
                    mine.push(child);
                }
                true
            }
            Err(error) => {
                self.error = Some(error);
                false
            }
        }
    }

    fn restart(&mut self) {
        self.children.clear();
        self.error = None;
    }
}

/// The parents' keys, as bind values.
pub(super) fn parent_keys<M: Model>(parents: &[Instance<M>]) -> Vec<sea_query::Value> {
    parents.iter().map(|p| p.primary_key().to_value()).collect()
}

/// The most parent keys one prefetch statement binds.
pub(super) fn per_query(origin: &Origin) -> usize {
    origin
        .database()
        .backend()
        .capabilities()
        .max_bind_params
        .max(1)
}

/// Gives each parent its children (none when it has none) under `relation`; `children` are
/// keyed in the form `backend` compares keys in.
pub(super) fn attach<M: Model, C: Model>(
    parents: &mut [Instance<M>],
    mut children: HashMap<M::PrimaryKey, Vec<Instance<C>>>,
    relation: RelationKey,
    backend: Backend,
) {
    for parent in parents.iter_mut() {
        let form = parent.primary_key().compared_form(backend);
        let key = form.as_ref().unwrap_or(parent.primary_key());
        let mine = children.remove(key).unwrap_or_default();
        parent.set_prefetched(relation, Arc::new(mine));
    }
}

impl<M: Model> QuerySet<M> {
    /// Also loads, for every row, the rows of `C` whose foreign key `column` points at it
    /// (a user's products: `User::query(r).prefetch_related(Product::user())`), readable
    /// afterwards with [`Instance::prefetched`]. One query per relation, whatever the number
    /// of rows (more only past the backend's bind-parameter limit: one per chunk of
    /// parents), each child attached to its parent through a hash map.
    ///
    /// The children are read where [`Instance::related`] would read them: the parents'
    /// schema, or the shared schema for a shared `C`, in the parents' transaction while it
    /// is open. A column that is not a foreign key to `M` is
    /// [`Error::InvalidRelation`] when the query runs.
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_prefetch(|r| User::query(r).filter(User::name().eq("ann")), Product::user(), &[7, 8]);
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "user_id", "price", "stock" FROM "public"."products" WHERE "user_id" IN ($1, $2) ORDER BY "id" ASC"#);
    /// assert_eq!(sql.mysql, r#"SELECT `id`, `name`, `user_id`, `price`, `stock` FROM `app`.`products` WHERE `user_id` IN (?, ?) ORDER BY `id` ASC"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "user_id", "price", "stock" FROM "products" WHERE "user_id" IN (?, ?) ORDER BY "id" ASC"#);
    /// ```
    pub fn prefetch_related<C: Model>(mut self, column: Column<C, M::PrimaryKey>) -> Self {
        if column.through_relation() {
            self.defer(super::write::through_relation::<C>(column.name()));
            return self;
        }
        self.prefetch.push(Arc::new(Reverse::<M, C> {
            column: column.name(),
            _models: PhantomData,
        }));
        self
    }

    /// Runs every `prefetch_related` of this QuerySet over `instances`.
    pub(super) async fn load_prefetched(
        &self,
        origin: &Origin,
        instances: &mut [Instance<M>],
    ) -> Result<()> {
        if instances.is_empty() {
            return Ok(());
        }
        for prefetch in &self.prefetch {
            prefetch.load(origin, instances).await?;
        }
        Ok(())
    }

    /// The statement the prefetch of `column` sends for parents with keys `keys`.
    #[doc(hidden)]
    pub fn prefetch_sql<C: Model>(
        self,
        column: Column<C, M::PrimaryKey>,
        keys: &[M::PrimaryKey],
    ) -> Result<String> {
        let target = self.target()?;
        let mut query = related_query::<M, C>(&target.origin()).filter(Filter::new(Test::In {
            column: column.name(),
            values: keys.iter().map(FieldType::to_value).collect(),
        }));
        query.order.push(query.pk_order(Order::Asc));
        let target = query.target()?;
        let select = query.select(&target)?;
        Ok(crate::target::render(target.backend(), &select).0)
    }
}
