//! Many-to-many relations through a junction model: `add`, `remove`, `set`, `clear`, `all`,
//! lookups across, and `prefetch_many`, inside the tenant.
//!
//! The junction is an ordinary model with a foreign key to each side (declare it, register
//! it, and `makemigrations` builds its table like any other):
//!
//! ```
//! # use tenantry::{ForeignKey, ManyToMany, Model};
//! # #[derive(Model, Debug, Clone)] pub struct Product { pub id: i64 }
//! # #[derive(Model, Debug, Clone)] pub struct Tag { pub id: i64 }
//! #[derive(Model, Debug, Clone)]
//! pub struct ProductTag {
//!     pub id: i64,
//!     #[model(on_delete = "cascade")]
//!     pub product: ForeignKey<Product>,
//!     #[model(on_delete = "cascade")]
//!     pub tag: ForeignKey<Tag>,
//! }
//!
//! /// Product ↔ Tag through ProductTag.
//! pub const TAGS: ManyToMany<ProductTag, Product, Tag> =
//!     ManyToMany::new(ProductTag::product(), ProductTag::tag());
//! ```

use std::{collections::HashMap, marker::PhantomData};

use sea_query::{Alias, Expr, ExprTrait, Order, Query};

use super::{
    prefetch::{Grouped, ParentKey, Repeats},
    QuerySet,
};
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::{related_query, Instance},
    model::{Column, Filter, Model},
    target::Origin,
};

/// A many-to-many relation between `L` and `R` through the junction model `J`, whose
/// foreign key `left` points at `L` and `right` at `R`. `Copy`; keep one in a `const`.
pub struct ManyToMany<J, L: Model, R: Model> {
    left: Column<J, L::PrimaryKey>,
    right: Column<J, R::PrimaryKey>,
}

impl<J, L: Model, R: Model> Clone for ManyToMany<J, L, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<J, L: Model, R: Model> Copy for ManyToMany<J, L, R> {}

impl<J: Model, L: Model, R: Model> ManyToMany<J, L, R> {
    /// The relation through `J`'s foreign keys `left` (to `L`) and `right` (to `R`); both
    /// are checked against `J`'s metadata when used ([`Error::InvalidRelation`]).
    pub const fn new(left: Column<J, L::PrimaryKey>, right: Column<J, R::PrimaryKey>) -> Self {
        ManyToMany { left, right }
    }

    pub(crate) fn left_column(&self) -> &'static str {
        self.left.name()
    }

    pub(crate) fn right_column(&self) -> &'static str {
        self.right.name()
    }

    /// The same relation seen from `R`'s side.
    pub const fn reversed(self) -> ManyToMany<J, R, L> {
        ManyToMany {
            left: self.right,
            right: self.left,
        }
    }

    /// The `R` rows related to `owner`, and the operations that change them.
    pub fn of(&self, owner: &Instance<L>) -> RelatedMany<J, L, R> {
        RelatedMany {
            relation: *self,
            key: owner.primary_key().clone(),
            origin: owner.origin().clone(),
            _model: PhantomData,
        }
    }

    /// A filter on `L`: the rows related to at least one `R` row matching `filter` (in the
    /// query's tenant): `Product::query(r).filter(TAGS.having(Tag::name().eq("red")))`.
    pub fn having(&self, filter: Filter) -> Filter {
        self.left.having(Filter(crate::model::Node::Forward {
            from: crate::model::meta::<J>,
            path: {
                let mut path = crate::model::path::Path::EMPTY;
                path.push(crate::model::path::Hop {
                    column: self.right.name(),
                    target: crate::model::meta::<R>,
                });
                path
            },
            inner: Box::new(filter.0),
        }))
    }

    /// Checks that `left` and `right` are `J`'s foreign keys to `L` and `R`.
    fn check(&self) -> Result<()> {
        for (column, target) in [(self.left.name(), L::META), (self.right.name(), R::META)] {
            match J::META.column(column).and_then(|c| c.foreign_key) {
                Some(fk) if (fk.target)() == target => {}
                _ => {
                    return Err(Error::InvalidRelation {
                        model: J::META.table,
                        column,
                        reason: "not the junction's foreign key to the related model",
                    })
                }
            }
        }
        Ok(())
    }
}

/// The `R` rows related to one `L` row: [`ManyToMany::of`]. Its statements run where the
/// owner lives: its schema (the shared schema for shared models), in its transaction while
/// that is open.
pub struct RelatedMany<J, L: Model, R: Model> {
    relation: ManyToMany<J, L, R>,
    key: L::PrimaryKey,
    origin: Origin,
    _model: PhantomData<fn() -> J>,
}

impl<J: Model, L: Model, R: Model> RelatedMany<J, L, R> {
    fn links(&self) -> QuerySet<J> {
        related_query::<L, J>(&self.origin).filter(self.relation.left.eq(self.key.clone()))
    }

    /// The related rows, as a QuerySet (filter, order, paginate it further). The links are
    /// read where the owner's junction rows live, even when `R` is shared (its rows then
    /// come from the shared schema, chosen by the owner's tenant's links).
    pub fn all(&self) -> QuerySet<R> {
        let mut query = related_query::<L, R>(&self.origin);
        let junction = self.relation.check().and_then(|()| self.links().target());
        let junction = match junction {
            Ok(target) => target,
            Err(error) => {
                query.defer(error);
                return query;
            }
        };
        let pk: Column<R, R::PrimaryKey> = Column::new(R::META.primary_key_column().name);
        let links = self
            .links()
            .subquery(self.relation.right)
            .in_place(junction.database().clone(), junction.schema.clone());
        query.filter(pk.in_query(links))
    }

    /// Checks that every target lives where this owner's related `R` rows live: the same
    /// database, and the owner's schema (the shared schema for a shared `R`). A row of
    /// another tenant with the same key would otherwise be linked in its place.
    fn check_targets(&self, targets: &[&Instance<R>]) -> Result<()> {
        let place = related_query::<L, R>(&self.origin).target()?;
        for target in targets {
            let origin = target.origin();
            if !origin.database().same_as(place.database())
                || origin.schema() != place.schema.as_ref()
            {
                return Err(Error::InvalidRelation {
                    model: R::META.table,
                    column: self.relation.right.name(),
                    reason: "a row of another tenant or database than the owner's related rows",
                });
            }
        }
        Ok(())
    }

    /// Relates `targets` to the owner; a pair already related is left as it is. Every
    /// target must live where the owner's related rows do ([`Error::InvalidRelation`]
    /// otherwise). Two concurrent adds of the same pair may both insert it unless the
    /// junction has a unique constraint on its two keys (then the loser is told it is
    /// related); reads (`all`, `prefetch_many`) show a pair once either way.
    pub async fn add(&self, targets: &[&Instance<R>]) -> Result<()> {
        self.relation.check()?;
        self.check_targets(targets)?;
        let wanted: Vec<R::PrimaryKey> = targets.iter().map(|t| t.primary_key().clone()).collect();
        let present = self.present(&wanted).await?;
        let backend = self.origin.database().backend();
        let missing: Vec<&R::PrimaryKey> = dedup(&wanted)
            .into_iter()
            .filter(|k| {
                let form = k.compared_form(backend);
                !present.contains_key(form.as_ref().unwrap_or(k))
            })
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let target = self.links().target()?;
        let mut insert = Query::insert();
        insert
            .into_table(target.table(J::META)?)
            .columns([self.relation.left.name(), self.relation.right.name()]);
        for key in missing {
            insert
                .values([Expr::val(self.key.to_value()), Expr::val(key.to_value())])
                .map_err(|_| Error::InvalidArgument {
                    argument: "add",
                    reason: "a junction row needs its two keys",
                })?;
        }
        match target.execute(&insert).await {
            Ok(_) => Ok(()),
            // A unique constraint on the junction met a concurrent add of the same pair:
            // related, as asked.
            Err(Error::UniqueViolation { .. })
                if self.present(&wanted).await?.len() == dedup(&wanted).len() =>
            {
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Unrelates `targets` from the owner; the number of links removed.
    pub async fn remove(&self, targets: &[&Instance<R>]) -> Result<u64> {
        self.relation.check()?;
        self.check_targets(targets)?;
        let keys: Vec<R::PrimaryKey> = targets.iter().map(|t| t.primary_key().clone()).collect();
        self.links()
            .filter(self.relation.right.is_in(keys))
            .delete()
            .await
    }

    /// Unrelates every row from the owner; the number of links removed.
    pub async fn clear(&self) -> Result<u64> {
        self.relation.check()?;
        self.links().delete().await
    }

    /// Makes `targets` exactly the related rows: removes the others, adds the missing. Two
    /// statements: load the owner inside a transaction to make them one change.
    pub async fn set(&self, targets: &[&Instance<R>]) -> Result<()> {
        self.relation.check()?;
        self.check_targets(targets)?;
        let keys: Vec<R::PrimaryKey> = targets.iter().map(|t| t.primary_key().clone()).collect();
        self.links()
            .exclude(self.relation.right.is_in(keys))
            .delete()
            .await?;
        self.add(targets).await
    }

    /// The keys among `keys` already related to the owner, in the form the backend
    /// compares keys in ([`FieldType::compared_form`]: a link to `abc ` is one to `abc`
    /// on MySQL).
    async fn present(&self, keys: &[R::PrimaryKey]) -> Result<HashMap<R::PrimaryKey, ()>> {
        let backend = self.origin.database().backend();
        Ok(self
            .links()
            .filter(self.relation.right.is_in(keys.iter().cloned()))
            .values_list(self.relation.right)
            .await?
            .into_iter()
            .map(|k| (crate::field::compared(k, backend), ()))
            .collect())
    }
}

fn dedup<K: Eq + std::hash::Hash>(keys: &[K]) -> Vec<&K> {
    let mut seen = std::collections::HashSet::new();
    keys.iter().filter(|k| seen.insert(*k)).collect()
}

impl<L: Model> QuerySet<L> {
    /// Also loads, for every row, its related `R` rows through `relation`, readable
    /// afterwards with [`Instance::prefetched_many`]: one statement per relation (per
    /// bind-limit chunk of parents), `SELECT R.…, J.left FROM R JOIN J ON J.right = R.pk
    /// WHERE J.left IN (…)`, in the parents' schema.
    pub fn prefetch_many<J: Model, R: Model>(mut self, relation: ManyToMany<J, L, R>) -> Self {
        self.prefetch.push(std::sync::Arc::new(Many { relation }));
        self
    }
}

struct Many<J, L: Model, R: Model> {
    relation: ManyToMany<J, L, R>,
}

impl<J: Model, L: Model, R: Model> super::prefetch::Prefetch<L> for Many<J, L, R> {
    fn check(&self, origin: &Origin) -> Result<()> {
        if R::META.tenant_only {
            related_query::<L, R>(origin).target()?;
        }
        if J::META.tenant_only {
            related_query::<L, J>(origin).target()?;
        }
        Ok(())
    }

    fn load<'a>(
        &'a self,
        origin: &'a Origin,
        parents: &'a mut [Instance<L>],
    ) -> futures_util::future::BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.relation.check()?;
            let keys = super::prefetch::parent_keys(parents);
            let mut children = HashMap::new();
            for chunk in keys.chunks(super::prefetch::per_query(origin)) {
                let query = related_query::<L, R>(origin);
                let target = query.target()?;
                let junction = related_query::<L, J>(origin).target()?;
                // Run where the tenant's table is: on SQLite a tenant's file reaches the
                // shared one, never the other way round.
                let run = if target.schema.is_none() {
                    &junction
                } else {
                    &target
                };
                let (r, j) = (Alias::new("tenantry_r"), Alias::new("tenantry_j"));
                let mut select = Query::select();
                for column in R::META.column_names {
                    select.column((r.clone(), *column));
                }
                select
                    .column((j.clone(), self.relation.left.name()))
                    .from_as(run.table_in(R::META, target.schema.as_ref())?, r.clone())
                    .join_as(
                        sea_query::JoinType::InnerJoin,
                        run.table_in(J::META, junction.schema.as_ref())?,
                        j.clone(),
                        Expr::col((j.clone(), self.relation.right.name()))
                            .equals((r.clone(), R::META.primary_key_column().name)),
                    )
                    .and_where(
                        Expr::col((j.clone(), self.relation.left.name()))
                            .is_in(chunk.iter().cloned()),
                    )
                    .order_by((r.clone(), R::META.primary_key_column().name), Order::Asc);
                let key = ParentKey {
                    at: R::META.columns.len(),
                    model: J::META.table,
                    column: self.relation.left.name(),
                };
                let mut sink =
                    Grouped::<L::PrimaryKey, R>::new(key, Repeats::Once, target.origin());
                run.fetch_into(&select, &mut sink).await?;
                sink.finish_into(&mut children)?;
            }
            let relation = super::RelationKey {
                table: J::META.table,
                column: self.relation.left.name(),
                through: self.relation.right.name(),
            };
            super::prefetch::attach(parents, children, relation, origin.database().backend());
            Ok(())
        })
    }
}
