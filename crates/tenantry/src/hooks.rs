//! Lifecycle hooks (Edgy's signals): code run before and after an instance is saved or
//! deleted, inside the same transaction and the same tenant as the write.

use std::{future::Future, pin::Pin};

use crate::{
    error::Result, instance::related_query, model::Model, query::QuerySet, schema_name::SchemaName,
    target::Origin, transaction::Transaction,
};

/// Hooks of a model declared `#[model(hooks)]`; every method defaults to doing nothing.
///
/// They run around [`Instance::save`](crate::Instance::save) (and `save_fields`,
/// [`QuerySet::create`](crate::QuerySet::create), `get_or_create`, `update_or_create`) and
/// [`Instance::delete`](crate::Instance::delete), in one transaction with the write: the
/// instance's own transaction when it has one, else one begun for the write (on the
/// instance's database, in its schema). An error from a hook (or from the write) rolls the
/// whole of it back and is returned; the instance is left as it was before the call, except
/// for what `pre_save` changed on it. Bulk operations (`bulk_create`, `update`, `delete` on
/// a QuerySet, upserts) run no hooks, as in Django.
///
/// A hook's queries go through [`HookContext::query`], which runs them in the write's
/// transaction and the instance's tenant. A query through the registry instead needs a
/// second connection (on a pool of one it fails with `PoolTimedOut` after the acquire
/// timeout) and does not see the write. On SQLite, where a transaction spans one schema
/// file, a hook's query of a model in another file (a tenant model's hook writing a shared
/// table, or the reverse) is [`Error::Unsupported`](crate::Error::Unsupported): it could
/// not be undone with the write.
///
/// ```no_run
/// use tenantry::{Error, HookContext, Hooks, Model};
///
/// #[derive(Model, Debug, Clone)]
/// #[model(hooks)]
/// struct Article {
///     id: i64,
///     #[model(max_length = 80)]
///     title: String,
///     #[model(max_length = 80)]
///     slug: String,
/// }
///
/// #[derive(Model, Debug, Clone)]
/// struct AuditEntry {
///     id: i64,
///     #[model(max_length = 80)]
///     what: String,
/// }
///
/// impl Hooks for Article {
///     async fn pre_save(&mut self, _: &HookContext<Self>) -> tenantry::Result<()> {
///         if self.title.is_empty() {
///             return Err(Error::InvalidArgument { argument: "title", reason: "empty" });
///         }
///         self.slug = self.title.to_lowercase().replace(' ', "-");
///         Ok(())
///     }
///
///     async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
///         let entry = AuditEntry { id: 0, what: format!("saved {}", self.slug) };
///         hook.query::<AuditEntry>().create(entry).await?;
///         Ok(())
///     }
/// }
/// ```
pub trait Hooks: Model {
    /// Before the INSERT or UPDATE; may change the instance.
    fn pre_save(&mut self, _hook: &HookContext<Self>) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// After the INSERT or UPDATE, before the transaction commits.
    fn post_save(&self, _hook: &HookContext<Self>) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// Before the DELETE.
    fn pre_delete(&self, _hook: &HookContext<Self>) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }

    /// After the DELETE, before the transaction commits.
    fn post_delete(&self, _hook: &HookContext<Self>) -> impl Future<Output = Result<()>> + Send {
        async { Ok(()) }
    }
}

/// Where a hook runs: the write's transaction and the instance's schema.
pub struct HookContext<M> {
    origin: Origin,
    transaction: Transaction,
    _model: std::marker::PhantomData<fn() -> M>,
}

impl<M: Model> HookContext<M> {
    pub(crate) fn new(origin: Origin, transaction: Transaction) -> Self {
        HookContext {
            origin,
            transaction: transaction.unending(),
            _model: std::marker::PhantomData,
        }
    }

    /// A query over `R` in the write's transaction: in the instance's schema for a tenant
    /// model, in the shared schema for a shared one (as [`Instance::related`](crate::Instance::related)
    /// places it).
    ///
    /// The query stays in that transaction: where it would run on the database instead
    /// (after the write ended, or on SQLite in a schema kept in another file, including one
    /// chosen with `using(..)`), it is [`Error::Unsupported`](crate::Error::Unsupported),
    /// so nothing a hook writes outlives a rolled-back write.
    pub fn query<R: Model>(&self) -> QuerySet<R> {
        related_query::<M, R>(&self.origin).bound_to_write()
    }

    /// The write's transaction (a handle that cannot commit or roll it back).
    pub fn transaction(&self) -> &Transaction {
        &self.transaction
    }

    /// The instance's schema (`None`: the default schema).
    pub fn schema(&self) -> Option<&SchemaName> {
        self.origin.schema()
    }
}

/// A hook's future.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// A model's hooks as function pointers; `#[model(hooks)]` makes `Model::hooks` return
/// them. Not part of the API.
#[doc(hidden)]
pub struct HookFns<M: 'static> {
    pub pre_save: for<'a> fn(&'a mut M, &'a HookContext<M>) -> HookFuture<'a>,
    pub post_save: for<'a> fn(&'a M, &'a HookContext<M>) -> HookFuture<'a>,
    pub pre_delete: for<'a> fn(&'a M, &'a HookContext<M>) -> HookFuture<'a>,
    pub post_delete: for<'a> fn(&'a M, &'a HookContext<M>) -> HookFuture<'a>,
}
