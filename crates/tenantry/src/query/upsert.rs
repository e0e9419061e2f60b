//! Upserts: an INSERT that, where a row with the same unique key exists, leaves it
//! (`do_nothing`) or updates it (`do_update`, `do_update_set`), in one statement per batch:
//! `ON CONFLICT (key) DO …` on PostgreSQL and SQLite, `ON DUPLICATE KEY UPDATE` on MySQL.

use hashbrown::{HashMap, HashSet};

use sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};

use super::{
    write::{assigned_expr, insert_values, own_transaction, unassigned_version},
    Columns, QuerySet,
};
use crate::{
    error::{Error, Result},
    instance::Instance,
    model::{Assignment, Model, ModelMeta},
    target::{Conn, Target},
};

/// An upsert's key, chosen with [`QuerySet::on_conflict`]; say what a conflict does with
/// [`do_nothing`](Self::do_nothing), [`do_update`](Self::do_update) or
/// [`do_update_set`](Self::do_update_set).
#[must_use = "an upsert does nothing until create or bulk_create runs it"]
pub struct Conflict<M: Model> {
    query: QuerySet<M>,
    key: Result<Vec<&'static str>>,
}

/// An INSERT with a conflict action; [`create`](Self::create) or
/// [`bulk_create`](Self::bulk_create) runs it.
#[must_use = "an upsert does nothing until create or bulk_create runs it"]
pub struct Upsert<M: Model> {
    query: QuerySet<M>,
    key: Result<Vec<&'static str>>,
    action: Result<Action<M>>,
}

enum Action<M> {
    Nothing,
    /// `column = <the proposed row's value>` for each of `columns`, then `assignments`
    /// (expressions over the stored row).
    Update {
        columns: Vec<&'static str>,
        assignments: Vec<Assignment<M>>,
    },
}

impl<M: Model> QuerySet<M> {
    /// Starts an upsert whose conflict is on `key`: the primary key (when the application
    /// sets it, not an auto-increment one) or a column declared `unique`. Any other key is
    /// [`Error::InvalidArgument`] when the upsert runs, before any SQL.
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let hit = Counter { id: 0, key: "home".into(), hits: 1 };
    /// let sql = render_upsert(|r| Counter::query(r).on_conflict(Counter::key()).do_update_set([Counter::hits().set_expr(Counter::hits() + 1)]), hit);
    /// assert_eq!(sql.postgres, r#"INSERT INTO "public"."counters" ("key", "hits") VALUES ($1, $2) ON CONFLICT ("key") DO UPDATE SET "hits" = "counters"."hits" + $3 RETURNING "id", "key", "hits""#);
    /// assert_eq!(sql.mysql, r#"INSERT INTO `app`.`counters` (`key`, `hits`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `hits` = `counters`.`hits` + ?"#);
    /// assert_eq!(sql.sqlite, r#"INSERT INTO "counters" ("key", "hits") VALUES (?, ?) ON CONFLICT ("key") DO UPDATE SET "hits" = "counters"."hits" + ? RETURNING "id", "key", "hits""#);
    /// ```
    pub fn on_conflict<K: Columns<M>>(self, key: K) -> Conflict<M> {
        Conflict {
            query: self,
            key: names(&key),
        }
    }
}

fn names<M: Model, C: Columns<M>>(columns: &C) -> Result<Vec<&'static str>> {
    let mut names = Vec::new();
    columns.names(&mut names)?;
    Ok(names)
}

impl<M: Model> Conflict<M> {
    /// On a conflict, keep the stored row as it is. The rows returned are the rows as
    /// stored: the new ones and the ones that were already there.
    pub fn do_nothing(self) -> Upsert<M> {
        self.with(Ok(Action::Nothing))
    }

    /// On a conflict, overwrite `columns` (a column handle or a tuple of them) of the
    /// stored row with the proposed row's values.
    pub fn do_update<C: Columns<M>>(self, columns: C) -> Upsert<M> {
        let action = names(&columns).map(|columns| Action::Update {
            columns,
            assignments: Vec::new(),
        });
        self.with(action)
    }

    /// On a conflict, apply `assignments` to the stored row; an expression reads the
    /// stored row's values: `Counter::hits().set_expr(Counter::hits() + 1)`.
    pub fn do_update_set(self, assignments: impl IntoIterator<Item = Assignment<M>>) -> Upsert<M> {
        self.with(Ok(Action::Update {
            columns: Vec::new(),
            assignments: assignments.into_iter().collect(),
        }))
    }

    fn with(self, action: Result<Action<M>>) -> Upsert<M> {
        Upsert {
            query: self.query,
            key: self.key,
            action,
        }
    }
}

impl<M: Model> Upsert<M> {
    /// Inserts `model`, or on a conflict does the chosen action; returns the row as stored.
    pub async fn create(self, model: M) -> Result<Instance<M>> {
        self.bulk_create([model])
            .await?
            .pop()
            .ok_or(Error::NotFound {
                model: M::META.table,
            })
    }

    /// Upserts every model, in batches sized to the backend's bind-parameter limit, and
    /// returns the rows as stored, in the order given.
    ///
    /// All or nothing, like [`QuerySet::bulk_create`]: more than one batch, or a read-back
    /// (below), runs in a transaction of its own unless the QuerySet is already in one.
    /// Where the backend returns the written rows (`RETURNING` on PostgreSQL and SQLite,
    /// for `do_update`) that is one statement per batch; otherwise (`do_nothing`, and
    /// MySQL) the rows are read back by key in the same transaction, whose lock on them
    /// keeps them as this upsert left them.
    ///
    /// Refused before any SQL ([`Error::InvalidArgument`]): two models with the same key
    /// (PostgreSQL refuses to update one row twice in a statement, MySQL and SQLite would
    /// apply both), and a NULL key (which never conflicts, so could not be read back).
    /// On MySQL, whose `ON DUPLICATE KEY UPDATE` fires on a conflict on any unique key, an
    /// upsert of a model with a unique key other than `key` is [`Error::Unsupported`]: it
    /// could update a row that does not share the key named.
    pub async fn bulk_create(
        self,
        models: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Instance<M>>> {
        let target = self.query.target()?;
        let plan = Plan::new(&target, self.key?, self.action?)?;
        let models: Vec<M> = models.into_iter().collect();
        let keys = checked_keys(&plan, &models)?;
        let per_batch = plan.per_batch(&target);
        let own = matches!(target.conn, Conn::Database(_))
            && (models.len() > per_batch || plan.read_back(&target));
        let mut stored: Vec<M> = Vec::with_capacity(models.len());
        if own {
            let (tx, in_tx) = own_transaction(&target).await?;
            match plan.run(&in_tx, &models, per_batch, &mut stored).await {
                Ok(()) => tx.commit().await?,
                Err(error) => {
                    let _ = tx.rollback().await;
                    return Err(error);
                }
            }
        } else {
            plan.run(&target, &models, per_batch, &mut stored).await?;
        }
        in_given_order(&plan, &keys, stored, target.origin())
    }

    /// The statement [`bulk_create`](Self::bulk_create) would send first for `models`.
    #[doc(hidden)]
    pub fn insert_sql(self, models: &[M]) -> Result<String> {
        let target = self.query.target()?;
        let plan = Plan::new(&target, self.key?, self.action?)?;
        let insert = plan.statement(&target, models)?;
        Ok(crate::target::render(target.backend(), &insert).0)
    }
}

/// A checked upsert: its key column and what a conflict does.
struct Plan<M> {
    key: &'static str,
    key_index: usize,
    action: Action<M>,
}

impl<M: Model> Plan<M> {
    fn new(target: &Target, key: Vec<&'static str>, action: Action<M>) -> Result<Self> {
        let meta = M::META;
        let key_index = conflict_key(meta, &key)?;
        let key = meta.columns[key_index].name;
        if let Action::Update {
            columns,
            assignments,
        } = &action
        {
            check_updates(meta, columns, assignments)?;
        }
        refuse_other_unique_keys(target, meta, key_index)?;
        Ok(Plan {
            key,
            key_index,
            action,
        })
    }

    /// Whether the stored rows are read back after the write, rather than returned by it.
    fn read_back(&self, target: &Target) -> bool {
        matches!(self.action, Action::Nothing) || !target.backend().capabilities().insert_returning
    }

    /// Rows per statement: the bind limit, less the constants of the update's expressions
    /// (bound once per statement), over the row width.
    fn per_batch(&self, target: &Target) -> usize {
        let width = M::META.insert_columns().count().max(1);
        let constants = match &self.action {
            Action::Nothing => 0,
            Action::Update { assignments, .. } => assignments.iter().map(|a| a.constants()).sum(),
        };
        let limit = target.backend().capabilities().max_bind_params;
        (limit.saturating_sub(constants) / width).max(1)
    }

    async fn run(
        &self,
        target: &Target,
        models: &[M],
        per_batch: usize,
        stored: &mut Vec<M>,
    ) -> Result<()> {
        for chunk in models.chunks(per_batch) {
            let insert = self.statement(target, chunk)?;
            if self.read_back(target) {
                target.execute(&insert).await?;
                let select = self.read_back_select(target, chunk)?;
                for row in target.fetch_all(&select).await? {
                    stored.push(M::from_row(&row)?);
                }
            } else {
                for row in target.fetch_all(&insert).await? {
                    stored.push(M::from_row(&row)?);
                }
            }
        }
        Ok(())
    }

    fn statement(&self, target: &Target, models: &[M]) -> Result<sea_query::InsertStatement> {
        let meta = M::META;
        let mut insert = insert_values(target, models)?;
        let mut on_conflict = OnConflict::column(self.key);
        match &self.action {
            // MySQL has no DO NOTHING; sea-query writes `key = key` there.
            Action::Nothing => on_conflict.do_nothing_on([self.key]),
            Action::Update {
                columns,
                assignments,
            } => {
                on_conflict.update_columns(columns.iter().copied());
                // The stored row's columns, qualified where PostgreSQL needs it (`excluded`
                // is in scope too).
                for a in assignments {
                    let expr = assigned_expr(target, a, Some(meta.table))?;
                    on_conflict.value(a.column, expr);
                }
                let written = columns.iter().chain(assignments.iter().map(|a| &a.column));
                if let Some(version) = unassigned_version::<M>(written.copied()) {
                    on_conflict.value(version, Expr::col((meta.table, version)).add(1));
                }
                &mut on_conflict
            }
        };
        insert.on_conflict(on_conflict);
        if !self.read_back(target) {
            insert.returning(Query::returning().columns(meta.column_names.iter().copied()));
        }
        Ok(insert)
    }

    fn read_back_select(&self, target: &Target, models: &[M]) -> Result<SelectStatement> {
        let keys = models.iter().map(|m| m.column_value(self.key_index));
        Ok(Query::select()
            .columns(M::META.column_names.iter().copied())
            .from(target.table(M::META)?)
            .and_where(Expr::col(self.key).is_in(keys))
            .to_owned())
    }
}

/// The index of the column `key` names, if it is a key a conflict can be detected on.
fn conflict_key(meta: &'static ModelMeta, key: &[&'static str]) -> Result<usize> {
    let refuse = |reason| Error::InvalidArgument {
        argument: "on_conflict",
        reason,
    };
    let [name] = key else {
        return Err(refuse(
            "a conflict key is one column (the primary key or a unique column)",
        ));
    };
    let index = meta
        .columns
        .iter()
        .position(|c| c.name == *name)
        .ok_or(refuse("a column the model does not have"))?;
    let column = &meta.columns[index];
    if column.primary_key && column.auto_increment {
        return Err(refuse(
            "an auto-increment primary key is assigned by the database and never conflicts",
        ));
    }
    if !column.primary_key && !column.unique {
        return Err(refuse("a column with no unique constraint"));
    }
    Ok(index)
}

/// The columns a conflict updates must be the model's, and never its primary key.
fn check_updates<M>(
    meta: &'static ModelMeta,
    columns: &[&'static str],
    assignments: &[Assignment<M>],
) -> Result<()> {
    let written = columns.iter().chain(assignments.iter().map(|a| &a.column));
    for name in written {
        let column = meta.column(name).ok_or(Error::InvalidArgument {
            argument: "do_update",
            reason: "a column the model does not have",
        })?;
        if column.primary_key {
            return Err(Error::InvalidArgument {
                argument: "do_update",
                reason: "the primary key (a conflict never changes which row it is)",
            });
        }
    }
    if columns.is_empty() && assignments.is_empty() {
        return Err(Error::InvalidArgument {
            argument: "do_update",
            reason: "no column to update (use do_nothing)",
        });
    }
    Ok(())
}

/// MySQL's `ON DUPLICATE KEY UPDATE` fires on any unique key: refused when the model has
/// one besides `key` that an INSERT sets (an auto-increment key is new on every insert).
fn refuse_other_unique_keys(target: &Target, meta: &'static ModelMeta, key: usize) -> Result<()> {
    if target.backend().capabilities().conflict_target {
        return Ok(());
    }
    let other = meta
        .columns
        .iter()
        .enumerate()
        .any(|(i, c)| i != key && (c.unique || (c.primary_key && !c.auto_increment)));
    if other {
        return Err(Error::Unsupported {
            backend: target.backend().name(),
            what: "an upsert on a model with another unique key (ON DUPLICATE KEY UPDATE fires on any of them)",
        });
    }
    Ok(())
}

/// Each model's key, in order; a NULL or repeated key is refused.
fn checked_keys<M: Model>(plan: &Plan<M>, models: &[M]) -> Result<Vec<Key>> {
    let keys: Vec<Key> = models
        .iter()
        .map(|model| Key(model.column_value(plan.key_index)))
        .collect();
    let mut seen: HashSet<&Key> = HashSet::with_capacity(keys.len());
    for key in &keys {
        if key.is_null() {
            return Err(Error::InvalidArgument {
                argument: "bulk_create",
                reason: "a row whose conflict key is NULL (it never conflicts)",
            });
        }
        if !seen.insert(key) {
            return Err(Error::InvalidArgument {
                argument: "bulk_create",
                reason: "two rows with the same conflict key",
            });
        }
    }
    drop(seen);
    Ok(keys)
}

/// `stored` in the order of `keys` (the models given). The backends return the rows of a
/// multi-row INSERT in the order of its VALUES in practice, which is checked row by row;
/// any other order is put right through a hash map.
fn in_given_order<M: Model>(
    plan: &Plan<M>,
    keys: &[Key],
    stored: Vec<M>,
    origin: crate::target::Origin,
) -> Result<Vec<Instance<M>>> {
    let in_order = stored.len() == keys.len()
        && stored
            .iter()
            .zip(keys)
            .all(|(model, key)| model.column_matches(plan.key_index, &key.0));
    if in_order {
        return Ok(stored
            .into_iter()
            .map(|m| Instance::stored(m, origin.clone()))
            .collect());
    }
    let stored_keys: Vec<Key> = stored
        .iter()
        .map(|model| Key(model.column_value(plan.key_index)))
        .collect();
    let mut by_key: HashMap<&Key, M> = stored_keys.iter().zip(stored).collect();
    keys.iter()
        .map(|key| {
            by_key
                .remove(key)
                .map(|m| Instance::stored(m, origin.clone()))
                .ok_or(Error::NotFound {
                    model: M::META.table,
                })
        })
        .collect()
}

/// A key value that can be hashed: sea-query's `Value` is `PartialEq` only. Hashed with
/// hashbrown's seeded foldhash (the keys are the caller's data).
#[derive(Debug)]
struct Key(sea_query::Value);

impl Key {
    fn is_null(&self) -> bool {
        use sea_query::Value as V;
        matches!(
            self.0,
            V::Int(None)
                | V::BigInt(None)
                | V::String(None)
                | V::Uuid(None)
                | V::Decimal(None)
                | V::ChronoDate(None)
                | V::ChronoDateTimeUtc(None)
                | V::Bool(None)
                | V::Double(None)
                | V::Json(None)
        )
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        use sea_query::Value as V;
        std::mem::discriminant(&self.0).hash(state);
        // Equal values hash alike: `Decimal`'s hash ignores trailing zeros, as its `==`
        // does; variants not listed hash by variant only, which is still consistent.
        match &self.0 {
            V::Int(v) => v.hash(state),
            V::BigInt(v) => v.hash(state),
            V::String(v) => v.hash(state),
            V::Uuid(v) => v.hash(state),
            V::Decimal(v) => v.hash(state),
            V::ChronoDate(v) => v.hash(state),
            V::ChronoDateTimeUtc(v) => v.hash(state),
            V::Bool(v) => v.hash(state),
            _ => {}
        }
    }
}
