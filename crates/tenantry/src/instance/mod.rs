//! A model value that knows where it lives.

mod tracking;

use sea_query::{Expr, ExprTrait, Query};

use tracking::{Changes, Tracked};

use crate::{
    error::{Error, Result},
    field::FieldType,
    hooks::{HookContext, HookFns},
    model::{Column, ForeignKey, Model},
    query::{
        checked_in_statement, insert_chunk, own_transaction, Children, QuerySet, RelationKey,
        Source,
    },
    target::{Conn, Origin, Target},
};

/// A row of `M` together with its origin: the database and schema it was read from or will
/// be written to. Dereferences to `M`; serializes as `M`.
///
/// [`save`](Self::save), [`delete`](Self::delete) and [`refresh`](Self::refresh) go back to
/// the origin, whatever the current tenant context says; so do [`fetch`](Self::fetch) and
/// [`related`](Self::related), except where the other model's rows live elsewhere by design
/// (a shared model's rows in the shared schema; a shared instance's tenant-capable children
/// in the schema the context chooses; see [`related`](Self::related)). An instance read or
/// written in a transaction works inside that transaction while it is open, and on its
/// database afterwards.
///
/// Equality compares the fields and the place (database and schema), see the `PartialEq`
/// impl.
#[derive(Clone)]
pub struct Instance<M> {
    model: M,
    origin: Origin,
    stored: bool,
    /// Rows loaded by `prefetch_related`, per relation (empty, and unallocated, otherwise).
    prefetched: Vec<(RelationKey, Children)>,
    /// What changed through the instance since it was read or written (`None` until the
    /// first change: reading costs nothing); see [`tracking`].
    tracked: Option<Box<Tracked>>,
}

impl<M: Model> Instance<M> {
    pub(crate) fn stored(model: M, origin: Origin) -> Self {
        Instance {
            model,
            origin,
            stored: true,
            prefetched: Vec::new(),
            tracked: None,
        }
    }

    pub(crate) fn unsaved(model: M, origin: Origin) -> Self {
        Instance {
            model,
            origin,
            stored: false,
            prefetched: Vec::new(),
            tracked: None,
        }
    }

    /// Where this instance lives.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether the row exists in the database (it was loaded, created or saved).
    pub fn is_stored(&self) -> bool {
        self.stored
    }

    /// The model, for tenantry's own changes that are no field's (a related row attached
    /// to a foreign key): not tracked as a change, so costing no copy of the stored values.
    pub(crate) fn model_untracked(&mut self) -> &mut M {
        &mut self.model
    }

    /// Forgets the changes made through the instance: its next save writes every field.
    pub(crate) fn untrack(&mut self) {
        self.tracked = None;
    }

    /// Whether the instance's statements go through an open transaction, whose writes a
    /// rollback may undo unseen.
    fn in_transaction(&self) -> bool {
        matches!(self.origin.conn(), Conn::Transaction(_))
    }

    /// The model value, without its origin.
    pub fn into_inner(self) -> M {
        self.model
    }

    fn target(&self) -> Target {
        Target {
            conn: self.origin.conn(),
            schema: self.origin.schema().cloned(),
        }
    }

    fn pk_filter(&self) -> sea_query::Condition {
        let pk = M::META.primary_key_column().name;
        Expr::col(pk).eq(self.model.primary_key().to_value()).into()
    }

    /// [`Error::NotSaved`] for an instance whose row was never inserted.
    fn require_stored(&self) -> Result<()> {
        if self.stored {
            Ok(())
        } else {
            Err(Error::NotSaved {
                model: M::META.table,
            })
        }
    }

    /// Inserts the row if it is not stored yet (the database assigns an auto-increment key),
    /// else updates the fields changed through the instance since it was read or last
    /// written (`lamp.stock = 7` writes `stock` alone, so a concurrent change to another
    /// field is kept), compared after the `pre_save` hooks ran. A field set back to its
    /// stored value is not written (no field at all when every change was set back: the
    /// row is still looked for, and its version checked and bumped); an
    /// instance never changed through itself writes every non-key field. A field a save
    /// inside a transaction wrote is written again by every later save until one outside a
    /// transaction, since a rollback there would undo it unseen. An update that finds no
    /// row is [`Error::NotFound`].
    ///
    /// ```no_run
    /// # use tenantry::{Model, Registry};
    /// # #[derive(Model, Debug, Clone)] struct Product { id: i64, #[model(max_length = 40)] name: String, stock: i32 }
    /// # async fn demo(registry: Registry) -> tenantry::Result<()> {
    /// let mut lamp = Product::query(&registry).get_pk(1).await?;
    /// lamp.stock = 7;
    /// lamp.save().await?; // UPDATE … SET "stock" = $1 WHERE "id" = $2
    /// # Ok(()) }
    /// ```
    ///
    /// With a `#[model(version)]` column (optimistic locking) the update is
    /// `… SET …, "version" = "version" + 1 WHERE <key> AND "version" = <the version read>`:
    /// when another writer saved the row since this instance read it, nothing is written and
    /// the result is [`Error::VersionConflict`]; on success the instance's version is
    /// bumped too, so it can be saved again.
    pub async fn save(&mut self) -> Result<()> {
        self.write(None).await
    }

    /// Updates only `columns` (a column handle or a tuple of them) of the stored row, so
    /// that a concurrent change to another column is kept (Django's `update_fields`). With a
    /// `#[model(version)]` column, the write is checked and bumped as [`save`](Self::save)
    /// does. The primary key, the version column, a computed column or one reached through
    /// a relation is [`Error::InvalidArgument`] / [`Error::InvalidRelation`]; an instance
    /// never saved is [`Error::NotSaved`].
    ///
    /// ```no_run
    /// # use tenantry::{Model, Registry};
    /// # #[derive(Model, Debug, Clone)] struct Product { id: i64, #[model(max_length = 40)] name: String, stock: i32 }
    /// # async fn demo(registry: Registry) -> tenantry::Result<()> {
    /// let mut lamp = Product::query(&registry).get_pk(1).await?;
    /// lamp.stock = 7;
    /// lamp.save_fields(Product::stock()).await?; // UPDATE … SET "stock" = $1 WHERE "id" = $2
    /// # Ok(()) }
    /// ```
    pub async fn save_fields<C: crate::Columns<M>>(&mut self, columns: C) -> Result<()> {
        self.require_stored()?;
        let mut names = Vec::new();
        columns.names(&mut names)?;
        let meta = M::META;
        for name in &names {
            let written = meta.column(name).is_some_and(|c| !c.primary_key)
                && meta.version.map(|v| meta.columns[v].name) != Some(*name);
            if !written {
                return Err(Error::InvalidArgument {
                    argument: "save_fields",
                    reason:
                        "the primary key, the version column, or a column the model does not have",
                });
            }
        }
        self.write(Some(&names)).await
    }

    /// The INSERT or UPDATE, with the model's hooks around it when it has some; the version
    /// is bumped on the instance once the write is committed.
    ///
    /// The instance is marked stored, and its version bumped, only once the write is
    /// committed: a write whose future is dropped (or whose hook panics) leaves an instance
    /// that is still unsaved, never one that believes in a rolled-back row.
    async fn write(&mut self, only: Option<&[&'static str]>) -> Result<()> {
        let written = match M::hooks() {
            None => self.store(only).await?,
            Some(hooks) => {
                let key = self.model.primary_key().clone();
                // Boxed, so that a model without hooks pays nothing for them in its future.
                let result = Box::pin(self.hooked(&hooks, Hooked::Save(only))).await;
                if result.is_err() {
                    // Rolled back: the key the INSERT assigned is no row's.
                    self.model.set_primary_key(key);
                }
                result?
            }
        };
        if written.inserted {
            self.stored = true;
        }
        if written.bumped {
            self.model.bump_version();
        }
        self.written(only);
        Ok(())
    }

    /// After a write of `only` (every field for `None`): outside a transaction the row
    /// holds what the instance holds there; inside one those fields are unsure (see
    /// [`tracking`]).
    fn written(&mut self, only: Option<&[&'static str]>) {
        if self.in_transaction() {
            let model = &self.model;
            let tracked = self
                .tracked
                .get_or_insert_with(|| Box::new(Tracked::of(model)));
            tracked.written_in_transaction::<M>(only);
            return;
        }
        match (only, self.tracked.as_deref_mut()) {
            (None, _) => self.tracked = None,
            (Some(names), Some(tracked)) => tracked.written(&self.model, names),
            (Some(_), None) => {}
        }
    }

    /// What a `save` of the stored row writes.
    fn changes(&self) -> Changes {
        match &self.tracked {
            Some(tracked) => tracked.changes(&self.model),
            None => Changes::Untracked,
        }
    }

    /// `op` between its hooks, in one transaction: the instance's own (inside a savepoint,
    /// so that a failure undoes only this work), or one begun for it on the instance's
    /// database and schema. Meanwhile the instance's statements go through that transaction.
    async fn hooked(&mut self, hooks: &HookFns<M>, op: Hooked<'_>) -> Result<Written> {
        let target = self.target();
        let (own, tx) = match &target.conn {
            Conn::Transaction(tx) => (None, tx.clone()),
            Conn::Database(_) => {
                let (tx, _) = own_transaction(&target).await?;
                (Some(tx.clone()), tx)
            }
        };
        let origin = self.origin.in_transaction(tx.downgrade());
        let before = std::mem::replace(&mut self.origin, origin.clone());
        let context = HookContext::new(origin, tx.clone());
        let work = self.between_hooks(hooks, op, &context);
        let result = match &own {
            None if tx.allows_savepoints() => tx.savepoint(|_| work).await,
            // A migration's data step: cancelled half way, the migration cannot commit.
            None => tx.abandoned_if_dropped(work).await,
            Some(_) => work.await,
        };
        if let (None, Err(error)) = (&own, &result) {
            if !tx.allows_savepoints() {
                // A migration's data step, where no savepoint can undo the half-done write:
                // the migration's transaction cannot commit it either, even if the step
                // goes on after the error.
                tx.mark_aborted(error.to_string()).await;
            }
        }
        self.origin = before;
        match own {
            Some(own) => own.end_with(result).await,
            None => result,
        }
    }

    async fn between_hooks(
        &mut self,
        hooks: &HookFns<M>,
        op: Hooked<'_>,
        context: &HookContext<M>,
    ) -> Result<Written> {
        match op {
            Hooked::Save(only) => {
                (hooks.pre_save)(&mut self.model, context).await?;
                let written = self.store(only).await?;
                (hooks.post_save)(&self.model, context).await?;
                Ok(written)
            }
            Hooked::Delete => {
                (hooks.pre_delete)(&self.model, context).await?;
                self.delete_row().await?;
                (hooks.post_delete)(&self.model, context).await?;
                Ok(Written::default())
            }
        }
    }

    /// The INSERT (of an instance never saved) or the UPDATE; `true` when the stored
    /// version was bumped.
    async fn store(&mut self, only: Option<&[&'static str]>) -> Result<Written> {
        if self.stored {
            let changed = match (only, self.changes()) {
                (Some(_), _) | (None, Changes::Untracked) => None,
                (None, Changes::Fields(fields)) => Some(fields),
                // Every field changed was set back: none is written, but the row is still
                // found (and its version checked and bumped).
                (None, Changes::None) => Some(Vec::new()),
            };
            let bumped = self.update(changed.as_deref().or(only)).await?;
            return Ok(Written {
                inserted: false,
                bumped,
            });
        }
        let target = self.target();
        insert_chunk(&target, std::slice::from_mut(&mut self.model)).await?;
        Ok(Written {
            inserted: true,
            bumped: false,
        })
    }

    /// Writes the named columns (every non-key one for `None`) of the stored row; with a
    /// version column, only over the version read, which it bumps (`true`).
    async fn update(&mut self, only: Option<&[&'static str]>) -> Result<bool> {
        let target = self.target();
        let meta = M::META;
        let version = meta.version.map(|v| (v, meta.columns[v].name));
        let values = meta
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                !c.primary_key
                    && Some(*i) != meta.version
                    && only.is_none_or(|names| names.contains(&c.name))
            })
            .map(|(i, c)| {
                let value = self.model.column_value(i);
                Ok((c.name, crate::enum_types::bind(&target, meta, c, value)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut update = Query::update();
        if values.is_empty() && version.is_none() {
            // No field to write: `SET key = key` still finds the row.
            let pk = meta.primary_key_column().name;
            update.value(pk, Expr::col(pk));
        }
        update
            .table(target.table(meta)?)
            .values(values)
            .cond_where(self.pk_filter());
        if let Some((index, name)) = version {
            update
                .value(
                    name,
                    checked_in_statement::<M>(&target, name, Expr::col(name).add(1)),
                )
                .and_where(Expr::col(name).eq(self.model.column_value(index)));
        }
        // MySQL counts changed rows, not matched ones: 0 may be a row written unchanged.
        if target.execute(&update).await?.rows_affected == 0 {
            if !self.exists().await? {
                return Err(Error::NotFound { model: meta.table });
            }
            if version.is_some() {
                return Err(Error::VersionConflict { model: meta.table });
            }
        }
        Ok(version.is_some())
    }

    async fn exists(&self) -> Result<bool> {
        let key = self.model.primary_key().clone();
        self.here().filter(pk_column::<M>().eq(key)).exists().await
    }

    /// Deletes the row; returns the model value. Deleting a row that is already gone is
    /// [`Error::NotFound`]; an instance that was never saved is [`Error::NotSaved`].
    pub async fn delete(mut self) -> Result<M> {
        self.require_stored()?;
        match M::hooks() {
            None => self.delete_row().await?,
            Some(hooks) => {
                Box::pin(self.hooked(&hooks, Hooked::Delete)).await?;
            }
        }
        Ok(self.model)
    }

    async fn delete_row(&self) -> Result<()> {
        let target = self.target();
        let mut delete = Query::delete();
        delete
            .from_table(target.table(M::META)?)
            .cond_where(self.pk_filter());
        if target.execute(&delete).await?.rows_affected == 0 {
            return Err(Error::NotFound {
                model: M::META.table,
            });
        }
        Ok(())
    }

    /// Reloads every field from the database; [`Error::NotFound`] if the row is gone,
    /// [`Error::NotSaved`] if it was never saved.
    pub async fn refresh(&mut self) -> Result<()> {
        self.require_stored()?;
        let key = self.model.primary_key().clone();
        let fresh = self.here().get_pk(key).await?;
        self.model = fresh.model;
        // Inside a transaction the refreshed values may be rolled back unseen: what was
        // read before is kept (see `tracking`).
        if !self.in_transaction() {
            self.tracked = None;
        }
        Ok(())
    }

    /// A QuerySet over this instance's own row's place: its database and schema, pinned.
    fn here(&self) -> QuerySet<M> {
        QuerySet::new(Source::Origin(self.origin.clone()))
    }

    /// A QuerySet over model `R` where `R`'s rows related to this instance live: see
    /// [`related_query`].
    fn same_place<R: Model>(&self) -> QuerySet<R> {
        related_query::<M, R>(&self.origin)
    }

    /// Loads the row `key` points to, on this instance's database: from its schema, or
    /// the shared schema when `R` is a shared model, or the context's schema when this
    /// instance is shared and `R` is not (see [`related`](Self::related)).
    /// [`Error::NotFound`] if it is gone.
    pub async fn fetch<R: Model>(&self, key: &ForeignKey<R>) -> Result<Instance<R>> {
        self.same_place::<R>().get_pk(key.key().clone()).await
    }

    /// The rows of `C` whose foreign key `column` points to this instance (a user's
    /// products), on this instance's database. The schema:
    ///
    /// - this instance tenant-capable (a user): its own schema, whatever the context says;
    /// - this instance shared (a plan) and `C` tenant-capable (subscriptions): the schema
    ///   the context chooses, as for `C::query(&registry)`: inside a tenant scope the
    ///   tenant's subscriptions to the plan, never another tenant's or the default schema's;
    /// - `C` shared: the shared schema.
    ///
    /// The QuerySet is lazy: the context is read when the operation runs. `update` and
    /// `delete` through it touch the same rows `all` and `count` see.
    pub fn related<C: Model>(&self, column: Column<C, M::PrimaryKey>) -> QuerySet<C> {
        self.same_place::<C>()
            .filter(column.eq(self.model.primary_key().clone()))
    }

    /// The rows of `C` whose foreign key `column` points at this instance, as loaded by
    /// [`QuerySet::prefetch_related`] (ordered by `C`'s primary key); `None` when that
    /// relation was not prefetched. Reading it sends no query.
    pub fn prefetched<C: Model>(&self, column: Column<C, M::PrimaryKey>) -> Option<&[Instance<C>]> {
        let relation = RelationKey {
            table: C::META.table,
            column: column.name(),
            through: "",
        };
        self.prefetched
            .iter()
            .find(|(key, _)| *key == relation)
            .and_then(|(_, children)| children.downcast_ref::<Vec<Instance<C>>>())
            .map(Vec::as_slice)
    }

    /// The rows related to this instance through the many-to-many `relation`, as loaded by
    /// [`QuerySet::prefetch_many`] (ordered by `R`'s primary key); `None` when that
    /// relation was not prefetched.
    pub fn prefetched_many<J: Model, R: Model>(
        &self,
        relation: crate::ManyToMany<J, M, R>,
    ) -> Option<&[Instance<R>]> {
        let relation = RelationKey {
            table: J::META.table,
            column: relation.left_column(),
            through: relation.right_column(),
        };
        self.prefetched
            .iter()
            .find(|(key, _)| *key == relation)
            .and_then(|(_, children)| children.downcast_ref::<Vec<Instance<R>>>())
            .map(Vec::as_slice)
    }

    pub(crate) fn set_prefetched(&mut self, relation: RelationKey, children: Children) {
        self.prefetched.retain(|(key, _)| *key != relation);
        self.prefetched.push((relation, children));
    }
}

/// What a save did, to be recorded on the instance once it is committed.
#[derive(Default)]
struct Written {
    /// The row was inserted (the instance is now stored).
    inserted: bool,
    /// The stored version was bumped.
    bumped: bool,
}

/// The write a model's hooks surround.
enum Hooked<'a> {
    /// `save` (every column) or `save_fields` (these).
    Save(Option<&'a [&'static str]>),
    Delete,
}

/// A QuerySet over model `R` (a foreign key's target, or a reverse relation's model)
/// where `R`'s rows related to a row of `M` from `origin` live, always on that database
/// (and in its transaction while that is open and reaches the schema):
///
/// - `R` shared: the shared (default) schema, wherever the row lives; a tenant row's
///   foreign key to a shared model resolves there (DESIGN 4.5).
/// - `R` tenant-capable, `M` shared: the schema by the usual precedence (explicit `using` >
///   tenant > `activate_schema` > default), as for a query from the registry. A shared row
///   (a plan) is the same row for every tenant, so the children it has are the current
///   tenant's; pinning them to the shared schema read (and wrote) the default schema's rows
///   inside a tenant scope.
/// - both tenant-capable: the row's schema, pinned (DESIGN 4.2 and 4.4: the schema an
///   instance came from outranks the context).
///
/// An explicit [`using`](QuerySet::using) on the returned QuerySet outranks all three.
pub(crate) fn related_query<M: Model, R: Model>(origin: &Origin) -> QuerySet<R> {
    let source = if R::META.shared {
        Source::Origin(origin.in_shared_schema())
    } else if M::META.shared {
        Source::OriginDatabase(origin.clone())
    } else {
        Source::Origin(origin.clone())
    };
    QuerySet::new(source)
}

fn pk_column<M: Model>() -> Column<M, M::PrimaryKey> {
    Column::new(M::META.primary_key_column().name)
}

impl<M> std::ops::Deref for Instance<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

/// The first change through a stored instance keeps its stored values (see
/// [`Instance::save`]).
impl<M: Model> std::ops::DerefMut for Instance<M> {
    fn deref_mut(&mut self) -> &mut M {
        if self.stored && self.tracked.is_none() {
            self.tracked = Some(Box::new(Tracked::of(&self.model)));
        }
        &mut self.model
    }
}

impl<M: std::fmt::Debug> std::fmt::Debug for Instance<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.model.fmt(f)
    }
}

impl<M: serde::Serialize> serde::Serialize for Instance<M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.model.serialize(s)
    }
}

/// Two instances are equal when their fields are equal **and** they live in the same
/// place: the same database (the same [`Database`](crate::Database) handle, or a clone of it)
/// and the same schema. The same key and fields in two tenants' schemas are two different
/// rows, so they are not equal. Not compared: whether the row is stored yet, and the
/// transaction the instance was read in (it is a way to the row, not a different row).
impl<M: PartialEq> PartialEq for Instance<M> {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
            && self.origin.database().same_as(other.origin.database())
            && self.origin.schema() == other.origin.schema()
    }
}
