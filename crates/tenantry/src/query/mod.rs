//! The QuerySet: a chain of sync builder calls ended by one async operation.
//!
//! A QuerySet binds its target when the operation runs (is awaited), not when it is built:
//! database first (`using_with_db`, else the source's), then the schema, by this precedence:
//!
//! 1. an explicit [`using`](QuerySet::using);
//! 2. the schema of the instance the QuerySet came from (reverse relations, refresh, save);
//! 3. the task's tenant ([`with_tenant`](crate::with_tenant) / [`set_tenant`](crate::set_tenant));
//! 4. the task's [`activate_schema`](crate::activate_schema);
//! 5. the database's default schema.
//!
//! A shared model (`#[model(shared)]`) skips 3 and 4: it lives only in the shared schema.
//! A tenant-only model (`#[model(tenant)]`) never reaches 5: when 1 to 4 choose no schema
//! the operation is [`Error::TenantRequired`], before any SQL is sent.
//!
//! A builder error (an invalid name given to `using`) is not a value that can be taken out
//! of the QuerySet and forgotten: the QuerySet's place is either a valid [`Place`] or that
//! error, every copy of the QuerySet (`Clone`, the copies `get_or_create` and
//! `update_or_create` make) carries it, and the only way to a target is
//! [`QuerySet::target`], which returns the error when there is one. No operation can
//! therefore resolve a schema, let alone send SQL, while a builder error is pending.

mod aggregate;
mod assign;
mod join;
mod kept;
mod keyset;
mod lock;
mod lookup;
mod many;
mod page;
mod prefetch;
mod projection;
mod read;
mod related;
mod rendered;
mod stream;
mod subquery;
mod upsert;
mod window;
mod write;

use std::{marker::PhantomData, sync::Arc};

use sea_query::{Condition, Order, Query, SelectStatement};

use crate::model::Node;

pub use aggregate::{Aggregate, Aggregates, Grouped, Ordered, Summable};
pub(crate) use assign::checked_in_statement;
pub use keyset::CursorPage;
pub(crate) use lookup::row_condition;
pub use many::{ManyToMany, RelatedMany};
pub use page::{Page, Paginator};
pub(crate) use prefetch::{Children, RelationKey};
pub use projection::{Columns, Optional};
pub use related::AnyForeignKey;
pub use stream::STREAM_BATCH;
pub(crate) use subquery::Inner;
pub use subquery::Subquery;
pub use upsert::{Conflict, Upsert};
pub(crate) use write::{insert_chunk, own_transaction};

use crate::{
    error::{Error, Result},
    model::{Filter, Model, Ordering},
    registry::Registry,
    schema_name::SchemaName,
    target::{Conn, Origin, Target},
    tenancy::context::{context_route, routed_database_of},
    transaction::Transaction,
};

/// The most rows a LIMIT or OFFSET names: the drivers bind them as `i64`.
pub(crate) const MAX_ROWS: u64 = i64::MAX as u64;

/// What a QuerySet runs against: a registry, a transaction, or the place an instance came
/// from.
#[derive(Clone)]
pub enum Source {
    /// The registry's default database, or one of its extras.
    Registry(Registry),
    /// A transaction.
    Transaction(Transaction),
    /// The database and schema an instance came from: the schema is pinned (only an
    /// explicit [`using`](QuerySet::using) overrides it).
    Origin(Origin),
    /// The database an instance came from (and its transaction while open), with the schema
    /// chosen by the usual precedence: explicit `using` > tenant > `activate_schema` >
    /// default. This is where the rows of a tenant-capable model related to an instance of a
    /// shared model live: a shared row (a plan) is one row for every tenant, so its
    /// tenant-capable children are the current tenant's, not the shared schema's.
    OriginDatabase(Origin),
}

/// Anything a query can start from: a [`Registry`] or a [`Transaction`].
pub trait QuerySource {
    /// The source of a new QuerySet.
    fn query_source(&self) -> Source;
}

impl QuerySource for Registry {
    fn query_source(&self) -> Source {
        Source::Registry(self.clone())
    }
}

impl QuerySource for Transaction {
    fn query_source(&self) -> Source {
        Source::Transaction(self.clone())
    }
}

/// A lazy query over model `M`. Builder methods are sync and chainable, in any order;
/// operations (`all`, `get`, `create`, …) are async and consume it.
///
/// Invalid input given to a builder method (say, a bad schema name to `using`) is kept and
/// returned by every operation, before any SQL is sent; later builder calls never clear it
/// (a valid `using` after an invalid one still fails), and a clone carries it.
///
/// Cloning copies the builder state (source, place, filter, ordering, limits, related
/// loads); the clones are independent QuerySets.
#[must_use = "a QuerySet does nothing until an operation such as .all() is awaited"]
pub struct QuerySet<M: Model> {
    source: Source,
    /// Where the caller asked the query to run, or the first builder error.
    place: std::result::Result<Place, Deferred>,
    filter: Option<Node>,
    order: Vec<Ordering>,
    limit: Option<u64>,
    offset: Option<u64>,
    distinct: bool,
    stream_batch: Option<u64>,
    related: Vec<usize>,
    prefetch: Vec<Arc<dyn prefetch::Prefetch<M>>>,
    /// The row lock a read of rows takes (`for_update`).
    lock: Option<lock::RowLock>,
    /// A hook's query: it runs in the write's transaction or not at all, wherever
    /// `using(..)` sends it (see [`HookContext::query`](crate::HookContext::query)).
    write_bound: bool,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> QuerySet<M> {
    /// A QuerySet over every row of `M` in `source`.
    pub fn new(source: Source) -> Self {
        QuerySet {
            source,
            place: Ok(Place::default()),
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
            distinct: false,
            stream_batch: None,
            related: Vec::new(),
            prefetch: Vec::new(),
            lock: None,
            write_bound: false,
            _model: PhantomData,
        }
    }

    /// Binds the query to the transaction its origin holds: where it would run on the
    /// database instead (the transaction finished, or on SQLite a schema in another file),
    /// every operation is [`Error::Unsupported`].
    pub(crate) fn bound_to_write(mut self) -> Self {
        self.write_bound = true;
        self
    }

    /// Queries `schema` instead of the one the context would choose (Edgy's `using`).
    /// An invalid name is returned as [`Error::InvalidSchemaName`] by the operation.
    pub fn using(mut self, schema: impl TryInto<SchemaName, Error = Error>) -> Self {
        let schema = schema.try_into();
        if let Ok(place) = &mut self.place {
            match schema {
                Ok(schema) => place.schema = Some(schema),
                Err(error) => self.place = Err(Deferred(Arc::new(error))),
            }
        }
        self
    }

    /// Keeps `error` for the operation to return (the first one wins), as for a bad `using`.
    pub(crate) fn defer(&mut self, error: Error) {
        if self.place.is_ok() {
            self.place = Err(Deferred(Arc::new(error)));
        }
    }

    /// Queries the extra database `name` of the registry (Edgy's `using_with_db`). Combine with
    /// [`using`](Self::using) for a schema in it. An undeclared name is returned as
    /// [`Error::UnknownDatabase`] by the operation.
    pub fn using_with_db(mut self, name: &str) -> Self {
        if let Ok(place) = &mut self.place {
            place.database = Some(name.to_owned());
        }
        self
    }

    /// Keeps the rows matching `filter` (ANDed with earlier filters).
    pub fn filter(mut self, filter: Filter) -> Self {
        self.filter = Some(match self.filter.take() {
            Some(previous) => Node::All(vec![previous, filter.0]),
            None => filter.0,
        });
        self
    }

    /// Drops the rows matching `filter`.
    pub fn exclude(self, filter: Filter) -> Self {
        self.filter(!filter)
    }

    /// Orders the rows; later calls add tie-breakers.
    pub fn order_by(mut self, orderings: impl IntoIterator<Item = Ordering>) -> Self {
        self.order.extend(orderings);
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: u64) -> Self {
        self.offset = Some(n);
        self
    }

    /// Resolves database and schema by the documented precedence: the only way from a
    /// QuerySet to a [`Target`]. A pending builder error is returned first, so nothing is
    /// resolved (and no SQL sent) while there is one; the error stays in the QuerySet.
    ///
    /// A tenant-only model resolved to the shared schema is [`Error::TenantRequired`] here
    /// (in [`Place::resolve`]), and so is a `select_related` or `prefetch_*` whose rows would
    /// be read from the shared schema though their model is tenant-only: the operation
    /// fails before its first statement (a `bulk_create`'s BEGIN, a prefetch's parents).
    pub(crate) fn target(&self) -> Result<Target> {
        let place = self.place.as_ref().map_err(Deferred::error)?;
        let target = place.resolve::<M>(&self.source)?;
        if self.write_bound && matches!(target.conn, Conn::Database(_)) {
            return Err(Error::Unsupported {
                backend: target.backend().name(),
                what: "a hook's query outside the write's transaction (it finished, or SQLite keeps that schema in another file)",
            });
        }
        if !self.related.is_empty() || !self.prefetch.is_empty() {
            self.check_relations(&target)?;
        }
        Ok(target)
    }

    /// The relations' half of [`target`](Self::target): where each `select_related` parent
    /// and each prefetched relation would be read from `target`, refused for a tenant-only
    /// model in the shared schema.
    fn check_relations(&self, target: &Target) -> Result<()> {
        for &index in &self.related {
            if let Some(fk) = M::META.columns.get(index).and_then(|c| c.foreign_key) {
                let parent = (fk.target)();
                if !parent.shared {
                    parent.check_schema(target.schema.as_ref())?;
                }
            }
        }
        if !self.prefetch.is_empty() {
            let origin = target.origin();
            for prefetch in &self.prefetch {
                prefetch.check(&origin)?;
            }
        }
        Ok(())
    }

    /// The filter as a condition on `M`'s rows at `target` (taken: an operation renders it
    /// once). Lookups across relations name their tables here, in the target's schema.
    fn take_condition(&mut self, target: &Target) -> Result<Option<Condition>> {
        self.filter
            .take()
            .map(|node| lookup::condition(node, M::META, target))
            .transpose()
    }

    /// Adds the filter, if any, to `statement`'s WHERE.
    fn add_filter(
        &mut self,
        target: &Target,
        statement: &mut impl sea_query::ConditionalStatement,
    ) -> Result<()> {
        if let Some(condition) = self.take_condition(target)? {
            statement.cond_where(condition);
        }
        Ok(())
    }

    /// Adds the filter, if any, to `select`, whose FROM is `M`'s table (unaliased): forward
    /// lookups as joins, unless the rows are locked (a join would lock the joined rows too).
    fn add_select_filter(&mut self, target: &Target, select: &mut SelectStatement) -> Result<()> {
        self.add_select_filter_counted(target, select, &mut 0)
    }

    /// [`add_select_filter`](Self::add_select_filter), `used` counting the joins.
    fn add_select_filter_counted(
        &mut self,
        target: &Target,
        select: &mut SelectStatement,
        used: &mut usize,
    ) -> Result<()> {
        if self.lock.is_some() {
            return self.add_filter(target, select);
        }
        match self.filter.take() {
            Some(node) => join::filter_select(select, node, M::META, target, used),
            None => Ok(()),
        }
    }

    fn select(&mut self, target: &Target) -> Result<SelectStatement> {
        let mut select = Query::select();
        select
            .columns(M::META.column_names.iter().copied())
            .from(target.table(M::META)?);
        if self.distinct {
            select.distinct();
        }
        let mut used = 0;
        self.add_select_filter_counted(target, &mut select, &mut used)?;
        for ordering in &self.order {
            let value = if self.lock.is_some() {
                lookup::order_expr(ordering, M::META, target)?
            } else {
                join::order_select(&mut select, ordering, M::META, target, &mut used)?
            };
            if self.distinct && !ordering.path.is_empty() {
                // PostgreSQL orders a DISTINCT only by what it selects. A related row's
                // column is one value per row (forward relations only), so selecting it
                // too, after the model's columns, leaves the rows as distinct as they were.
                select.expr(value.clone());
            }
            select.order_by_expr(value, ordering.order.clone());
        }
        // Bound to i64::MAX: the drivers bind LIMIT and OFFSET as signed 64-bit integers.
        if let Some(limit) = self.limit {
            select.limit(limit.min(MAX_ROWS));
        }
        if let Some(offset) = self.offset {
            if self.limit.is_none() {
                // MySQL and SQLite accept OFFSET only after a LIMIT.
                select.limit(MAX_ROWS);
            }
            select.offset(offset.min(MAX_ROWS));
        }
        self.add_lock(target.backend(), &mut select);
        Ok(select)
    }

    /// The SELECT this QuerySet would run now, as the backend's builder renders it, with
    /// placeholders for the bound values.
    pub fn to_sql(mut self) -> Result<String> {
        let target = self.target()?;
        let select = self.select(&target)?;
        Ok(crate::target::render(target.backend(), &select).0)
    }

    /// The INSERT that `create(model)` would send.
    #[doc(hidden)]
    pub fn insert_sql(self, model: &M) -> Result<String>
    where
        M: Clone,
    {
        let target = self.target()?;
        let insert = write::insert_statement(&target, std::slice::from_ref(model))?;
        Ok(crate::target::render(target.backend(), &insert).0)
    }

    fn pk_order(&self, order: Order) -> Ordering {
        Ordering {
            column: M::META.primary_key_column().name,
            order,
            from: crate::model::meta::<M>,
            path: crate::model::path::Path::EMPTY,
        }
    }
}

impl<M: Model> Clone for QuerySet<M> {
    /// A copy of the builder state, pending builder error included.
    fn clone(&self) -> Self {
        QuerySet {
            source: self.source.clone(),
            place: self.place.clone(),
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
            distinct: self.distinct,
            stream_batch: self.stream_batch,
            related: self.related.clone(),
            prefetch: self.prefetch.clone(),
            lock: self.lock,
            write_bound: self.write_bound,
            _model: PhantomData,
        }
    }
}

impl<M: Model> std::fmt::Debug for QuerySet<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("QuerySet");
        debug.field("model", &M::META.name);
        match &self.place {
            Ok(place) => debug
                .field("database", &place.database)
                .field("schema", &place.schema),
            Err(error) => debug.field("error", &*error.0),
        };
        debug.field("filter", &self.filter).finish_non_exhaustive()
    }
}

/// Where a QuerySet was told to run: `using_with_db`'s database name and `using`'s schema.
#[derive(Clone, Default)]
struct Place {
    database: Option<String>,
    schema: Option<SchemaName>,
}

/// A builder error waiting for the operation. Shared (an `Arc`), so that every copy of the
/// QuerySet carries the same error; [`Deferred::error`] hands out a copy of it each time.
#[derive(Clone)]
struct Deferred(Arc<Error>);

impl Deferred {
    fn error(&self) -> Error {
        self.0.replay()
    }
}

/// Where the connection of a target comes from, before the schema is known.
enum Via {
    /// A fixed connection: a database or a transaction.
    Conn(Conn),
    /// An instance's origin: its transaction while open and able to reach the schema, else
    /// its database.
    Origin(Origin),
}

impl Place {
    /// The target of a query over `M` from `source`, by the precedence in the module docs.
    fn resolve<M: Model>(&self, source: &Source) -> Result<Target> {
        // `Some(schema)` when the source pins the schema (an instance's origin, where `None`
        // is the default schema); `None` when the context may choose.
        let (via, pinned): (Via, Option<Option<SchemaName>>) = match source {
            Source::Registry(registry) => {
                let db = match &self.database {
                    Some(name) => registry.extra_database(name)?,
                    None => registry.database(),
                };
                (Via::Conn(Conn::Database(db.clone())), None)
            }
            Source::Transaction(tx) => {
                if let Some(name) = &self.database {
                    let db = tx.registry().extra_database(name)?;
                    if !db.same_as(tx.database()) {
                        return Err(Error::Unsupported {
                            backend: db.backend().name(),
                            what: "using_with_db inside a transaction of another database",
                        });
                    }
                }
                (Via::Conn(Conn::Transaction(tx.clone())), None)
            }
            Source::Origin(origin) | Source::OriginDatabase(origin) => {
                if let Some(name) = &self.database {
                    return Err(Error::UnknownDatabase { name: name.clone() });
                }
                let pinned = match source {
                    Source::Origin(_) => Some(origin.schema().cloned()),
                    _ => None,
                };
                (Via::Origin(origin.clone()), pinned)
            }
        };
        // `routed`: the database a directory tenant's scope sends its schema's queries to.
        let mut from_context = false;
        let (schema, routed) = match (self.schema.clone(), pinned) {
            (Some(schema), _) => {
                let routed = routed_database_of(&schema);
                (Some(schema), routed)
            }
            (None, Some(pinned)) => (pinned, None),
            (None, None) if M::META.shared => (None, None),
            (None, None) => {
                from_context = true;
                context_route()?
            }
        };
        // A tenant-only model never runs in the shared schema: refused here, where every
        // QuerySet operation gets its target, before anything is sent.
        M::META.check_schema(schema.as_ref())?;
        let routed_context = routed.is_some();
        let conn = match routed {
            Some(database) => self.routed_conn(via, database, schema.as_ref())?,
            None => match via {
                Via::Conn(conn) => conn,
                Via::Origin(origin) => origin.conn_in(schema.as_ref()),
            },
        };
        let target = Target::resolved(conn, schema)?;
        target.refuse_unrouted(from_context && !routed_context)?;
        Ok(target)
    }

    /// The connection of a query whose schema a directory tenant's scope chose, which lives
    /// in `database`: that database, or a transaction or instance of it. Naming another
    /// database (`using_with_db`, a transaction begun elsewhere) is refused rather than
    /// reading a schema of the same name there.
    fn routed_conn(
        &self,
        via: Via,
        database: crate::Database,
        schema: Option<&SchemaName>,
    ) -> Result<Conn> {
        let other = |what| Error::Unsupported {
            backend: database.backend().name(),
            what,
        };
        if self.database.is_some() {
            return Err(other("using_with_db inside a directory tenant's scope (name the schema with using(..) too)"));
        }
        match via {
            Via::Conn(Conn::Transaction(tx)) if !tx.database().same_as(&database) => Err(other(
                "a transaction of another database inside a directory tenant's scope",
            )),
            Via::Conn(Conn::Transaction(tx)) => Ok(Conn::Transaction(tx)),
            Via::Conn(Conn::Database(_)) => Ok(Conn::Database(database)),
            Via::Origin(origin) if origin.database().same_as(&database) => {
                Ok(origin.conn_in(schema))
            }
            Via::Origin(_) => Ok(Conn::Database(database)),
        }
    }
}
