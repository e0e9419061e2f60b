//! Upserts: an INSERT that, where a row with the same unique key exists, leaves it
//! (`do_nothing`) or updates it (`do_update`, `do_update_set`), in one statement per batch:
//! `ON CONFLICT (key) DO …` on PostgreSQL and SQLite, `ON DUPLICATE KEY UPDATE` on MySQL.

use hashbrown::{HashMap, HashSet};
use smallvec::SmallVec;

use sea_query::{Expr, ExprTrait, LockType, OnConflict, Query, SelectStatement};

use super::{
    assign::{
        assigned_expr, checked_in_statement, refuse_reads_of_earlier_assignments,
        unassigned_version,
    },
    rendered::{Shape, SQLITE_TEXTS},
    write::{insert_values, own_transaction},
    Columns, QuerySet,
};
use crate::{
    error::{Error, Result},
    instance::Instance,
    model::{Assignment, Model, ModelMeta},
    row::Row,
    target::{Conn, Target},
    transaction_options::{backoff, is_retryable},
};

/// Attempts of an upsert on a database whose transaction was chosen as a deadlock's victim
/// or failed to serialize (MySQL's `ON DUPLICATE KEY UPDATE` takes a shared lock on an
/// existing key before the exclusive one, so two upserts of one row can deadlock whatever
/// their order): it is all rolled back, so it is run again.
const DEADLOCK_ATTEMPTS: u32 = 5;

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
    /// // SQLite, whose columns take any value, checks the result against the column's range.
    /// assert_eq!(sql.sqlite, r#"INSERT INTO "counters" ("key", "hits") VALUES (?, ?) ON CONFLICT ("key") DO UPDATE SET "hits" = (CASE WHEN (typeof("counters"."hits" + ?) = ? AND ("counters"."hits" + ? BETWEEN ? AND ?)) THEN "counters"."hits" + ? ELSE ABS(?) END) RETURNING "id", "key", "hits""#);
    ///
    /// // A composite unique key (`#[model(unique(event, number))]`), its columns in any order.
    /// let seat = Seat { id: 0, event: "gala".into(), number: 7, price: 50 };
    /// let sql = render_upsert(|r| Seat::query(r).on_conflict((Seat::number(), Seat::event())).do_update(Seat::price()), seat);
    /// assert_eq!(sql.postgres, r#"INSERT INTO "public"."seats" ("event", "number", "price") VALUES ($1, $2, $3) ON CONFLICT ("number", "event") DO UPDATE SET "price" = "excluded"."price" RETURNING "id", "event", "number", "price""#);
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
    /// stored row's values (`Counter::hits().set_expr(Counter::hits() + 1)`), and
    /// [`Column::excluded`](crate::Column::excluded) the proposed row's
    /// (`Counter::hits() + Counter::hits().excluded()` adds them).
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
    /// All or nothing: more than one batch, or a read-back (below), runs in a transaction
    /// of its own, or in a savepoint of the QuerySet's transaction, and every row is matched
    /// to its model before that ends, so a failure leaves nothing written. Where the backend
    /// returns the written rows (`RETURNING` on PostgreSQL and SQLite, for `do_update`) that
    /// is one statement per batch; otherwise (`do_nothing`, and MySQL) the rows are read
    /// back by key with `FOR UPDATE` (the latest rows, locked until the end) in the same
    /// transaction. Rows are written in key order whatever the order given, so that two
    /// upserts of the same keys lock them in the same order (no deadlock between them).
    ///
    /// Refused before any SQL ([`Error::InvalidArgument`]): two models with the same key
    /// (PostgreSQL refuses to update one row twice in a statement, MySQL and SQLite would
    /// apply both); a NULL or NaN key (it never conflicts); a timestamp key finer than the
    /// microseconds the database keeps; on MySQL, a text key ending in spaces (MySQL
    /// compares text ignoring them). Each would be a different key in Rust and the same one
    /// in the database. On MySQL, whose `ON DUPLICATE KEY UPDATE` fires on a conflict on
    /// any unique key, an upsert of a model with a unique key other than `key` is
    /// [`Error::Unsupported`]; a conflict on a unique index the model does not declare is
    /// found when the rows are read back, and is [`Error::Unsupported`] with nothing
    /// written.
    pub async fn bulk_create(
        self,
        models: impl IntoIterator<Item = M>,
    ) -> Result<Vec<Instance<M>>> {
        let target = self.query.target()?;
        let plan = Plan::new(&target, self.key?, self.action?)?;
        let (models, keys, given) = plan.in_key_order(&target, models.into_iter().collect())?;
        let per_batch = plan.per_batch(&target);
        let several = models.len() > per_batch || plan.read_back(&target);
        let stored = match &target.conn {
            Conn::Database(_) => {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match plan
                        .attempt(&target, &models, &keys, per_batch, several)
                        .await
                    {
                        Err(error) if attempt < DEADLOCK_ATTEMPTS && is_retryable(&error) => {
                            tokio::time::sleep(backoff(attempt)).await;
                        }
                        result => break result?,
                    }
                }
            }
            Conn::Transaction(tx) if several && tx.allows_savepoints() => {
                tx.savepoint(|_| plan.run(&target, &models, &keys, per_batch))
                    .await?
            }
            _ => plan.run(&target, &models, &keys, per_batch).await?,
        };
        let origin = target.origin();
        let mut slots: Vec<Option<Instance<M>>> =
            std::iter::repeat_with(|| None).take(stored.len()).collect();
        for (model, position) in stored.into_iter().zip(given) {
            slots[position] = Some(Instance::stored(model, origin.clone()));
        }
        Ok(slots.into_iter().flatten().collect())
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

/// A checked upsert: its key's columns and what a conflict does.
struct Plan<M> {
    /// The key's columns' indexes in the model, in the order the key was given.
    key_indexes: Vec<usize>,
    action: Action<M>,
}

impl<M: Model> Plan<M> {
    fn new(target: &Target, key: Vec<&'static str>, action: Action<M>) -> Result<Self> {
        let meta = M::META;
        let key_indexes = conflict_key(meta, &key)?;
        if let Action::Update {
            columns,
            assignments,
        } = &action
        {
            check_updates(meta, &key, columns, assignments)?;
        }
        refuse_other_unique_keys(target, meta, &key)?;
        let computed =
            matches!(&action, Action::Update { assignments, .. } if !assignments.is_empty());
        if computed && meta.table == "excluded" && target.backend().capabilities().conflict_target {
            // The stored row is named by its table, which would be the proposed row's name.
            return Err(Error::Unsupported {
                backend: target.backend().name(),
                what: "do_update_set on a table named `excluded` (the name of the proposed row)",
            });
        }
        Ok(Plan {
            key_indexes,
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
        // An assignment's expression may be rendered four times, with six more values, on
        // SQLite (`query::assign`).
        let constants = match &self.action {
            Action::Nothing => 0,
            Action::Update { assignments, .. } => {
                assignments.iter().map(|a| 4 * a.constants() + 6).sum()
            }
        };
        let limit = target.backend().capabilities().max_bind_params;
        (limit.saturating_sub(constants) / width).max(1)
    }

    /// `models` checked ([`checked_keys`]) and sorted by key (on SQLite: as given), with
    /// their keys and each one's position in the order given.
    fn in_key_order(
        &self,
        target: &Target,
        models: Vec<M>,
    ) -> Result<(Vec<M>, Vec<Key>, Vec<usize>)> {
        let keys = checked_keys(self, target, &models)?;
        let mut order: Vec<usize> = (0..models.len()).collect();
        // The key order is the order rows lock in, so that two upserts cannot deadlock;
        // SQLite's writer holds the whole file, and the rows stay as given.
        let sorted = target.backend() != crate::Backend::Sqlite;
        if sorted {
            // Keys are distinct (below), so an unstable sort gives one order.
            order.sort_unstable_by(|&a, &b| keys[a].order(&keys[b]));
        }
        refuse_repeats(&keys, &order, sorted)?;
        if !sorted {
            return Ok((models, keys, order));
        }
        let mut slots: Vec<Option<(M, Key)>> = models.into_iter().zip(keys).map(Some).collect();
        let (mut in_order, mut in_order_keys) = (
            Vec::with_capacity(order.len()),
            Vec::with_capacity(order.len()),
        );
        for (model, key) in order.iter().filter_map(|&i| slots[i].take()) {
            in_order.push(model);
            in_order_keys.push(key);
        }
        Ok((in_order, in_order_keys, order))
    }

    /// One attempt of an upsert on a database: in a transaction of its own when it takes
    /// `several` statements, committed only once every row was matched.
    async fn attempt(
        &self,
        target: &Target,
        models: &[M],
        keys: &[Key],
        per_batch: usize,
        several: bool,
    ) -> Result<Vec<M>> {
        if !several {
            return self.run(target, models, keys, per_batch).await;
        }
        let (tx, in_tx) = own_transaction(target).await?;
        let result = self.run(&in_tx, models, keys, per_batch).await;
        tx.end_with(result).await
    }

    /// Writes `models` (whose keys are `keys`) and returns the stored rows, one per model
    /// and in the same order, or an error before the caller's transaction ends.
    async fn run(
        &self,
        target: &Target,
        models: &[M],
        keys: &[Key],
        per_batch: usize,
    ) -> Result<Vec<M>> {
        let mut stored = Vec::with_capacity(models.len());
        for (chunk, chunk_keys) in models.chunks(per_batch).zip(keys.chunks(per_batch)) {
            if let Some(shape) = self.shape(target, chunk)? {
                let rows = self.run_rendered(target, chunk, shape).await?;
                let rows = rows.iter().map(M::from_row).collect::<Result<Vec<M>>>()?;
                stored.extend(self.matched(target, chunk_keys, rows)?);
                continue;
            }
            let insert = self.statement(target, chunk)?;
            let rows = if self.read_back(target) {
                target.execute(&insert).await?;
                let select = self.read_back_select(target, chunk)?;
                target.fetch_all(&select).await?
            } else {
                target.fetch_all(&insert).await?
            };
            let rows = rows.iter().map(M::from_row).collect::<Result<Vec<M>>>()?;
            stored.extend(self.matched(target, chunk_keys, rows)?);
        }
        Ok(stored)
    }

    /// The shape of `chunk`'s statement when its text can be kept (see
    /// [`rendered`](super::rendered)): on SQLite, an upsert returning its rows whose
    /// conflict clause binds no value.
    fn shape(&self, target: &Target, chunk: &[M]) -> Result<Option<Shape>> {
        let updated = match &self.action {
            Action::Update {
                columns,
                assignments,
            } if assignments.is_empty() => columns,
            _ => return Ok(None),
        };
        let meta = M::META;
        if target.backend() != crate::Backend::Sqlite
            || self.read_back(target)
            || meta.version.is_some()
            || meta.insert_columns().next().is_none()
        {
            return Ok(None);
        }
        Ok(Some(Shape::Upsert {
            model: std::ptr::from_ref(meta) as usize,
            table: target.table(meta)?,
            rows: chunk.len(),
            conflict: (self.key_indexes.iter().copied().collect(), updated.clone()),
        }))
    }

    /// Runs `chunk`'s statement by its kept text (rendered by sea-query the first time),
    /// its values bound in the text's order: each row's insert columns.
    async fn run_rendered(&self, target: &Target, chunk: &[M], shape: Shape) -> Result<Vec<Row>> {
        let text = match SQLITE_TEXTS.get(&shape) {
            Some(text) => text,
            None => {
                let (sql, values) =
                    crate::target::render(target.backend(), &self.statement(target, chunk)?);
                let text: std::sync::Arc<str> = sql.into();
                // The values of the text are the rows' cells, in order, or it is not kept.
                if values.0 .0 == row_values(chunk)? {
                    SQLITE_TEXTS.insert(shape, text.clone());
                }
                return target
                    .fetch_sql(&text, values.0 .0, || row_values(chunk).unwrap_or_default())
                    .await;
            }
        };
        target
            .fetch_sql(&text, row_values(chunk)?, || {
                row_values(chunk).unwrap_or_default()
            })
            .await
    }

    /// `rows` in the order of `keys`: as returned when they match (a multi-row INSERT
    /// returns its rows in the order of its VALUES), else through a hash map. A key with
    /// no row is an error: on MySQL the conflict was on another unique index, elsewhere
    /// the row was deleted meanwhile.
    fn matched(&self, target: &Target, keys: &[Key], rows: Vec<M>) -> Result<Vec<M>> {
        let in_order = rows.len() == keys.len()
            && rows.iter().zip(keys).all(|(row, key)| {
                (self.key_indexes.iter().zip(&key.0))
                    .all(|(&i, value)| row.column_matches(i, value))
            });
        if in_order {
            return Ok(rows);
        }
        // MySQL compares text ignoring trailing spaces: a given key `abc` (one ending in
        // spaces is refused) conflicts with, and reads back, a stored `abc `.
        let trims_spaces = !target.backend().capabilities().conflict_target;
        let row_keys: Vec<Key> = rows
            .iter()
            .map(|row| self.key_of(row).compared(trims_spaces))
            .collect();
        let mut by_key: HashMap<&Key, M> = row_keys.iter().zip(rows).collect();
        keys.iter()
            .map(|key| by_key.remove(key).ok_or_else(|| missing_row::<M>(target)))
            .collect()
    }

    /// The key's column names, in the order the key was given.
    fn key_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.key_indexes.iter().map(|&i| M::META.columns[i].name)
    }

    /// Key column `index` of `model`, as the read-back compares it at `target`.
    fn key_value(&self, target: &Target, model: &M, index: usize) -> Expr {
        let ty = M::META.columns[index].enum_type;
        crate::enum_types::typed(target, M::META, ty, model.column_value(index))
    }

    /// `model`'s key values, in key order.
    fn key_of(&self, model: &M) -> Key {
        Key(self
            .key_indexes
            .iter()
            .map(|&i| model.column_value(i))
            .collect())
    }

    fn statement(&self, target: &Target, models: &[M]) -> Result<sea_query::InsertStatement> {
        let meta = M::META;
        let mut insert = insert_values(target, models)?;
        let mut on_conflict = OnConflict::columns(self.key_names());
        match &self.action {
            // MySQL has no DO NOTHING; sea-query writes `key = key` there.
            Action::Nothing => on_conflict.do_nothing_on(self.key_names().take(1)),
            Action::Update {
                columns,
                assignments,
            } => {
                refuse_reads_of_earlier_assignments(target, columns, assignments)?;
                on_conflict.update_columns(columns.iter().copied());
                // The stored row's columns, qualified where PostgreSQL needs it (`excluded`
                // is in scope too).
                for a in assignments {
                    let expr = assigned_expr(target, a, Some(meta.table))?;
                    on_conflict.value(a.column, expr);
                }
                let written = columns.iter().chain(assignments.iter().map(|a| &a.column));
                if let Some(version) = unassigned_version::<M>(written.copied()) {
                    let bumped = Expr::col((meta.table, version)).add(1);
                    on_conflict.value(version, checked_in_statement::<M>(target, version, bumped));
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

    /// The rows of `models` by key, locked (`FOR UPDATE`, which also reads the latest
    /// rows rather than the transaction's snapshot; SQLite's transaction holds the file).
    fn read_back_select(&self, target: &Target, models: &[M]) -> Result<SelectStatement> {
        let by_key = match self.key_indexes[..] {
            [one] => {
                let name = M::META.columns[one].name;
                Expr::col(name).is_in(models.iter().map(|m| self.key_value(target, m, one)))
            }
            // `(a, b) IN ((?, ?), …)`: row values, on every backend tenantry supports.
            _ => Expr::tuple(self.key_names().map(Expr::col)).binary(
                sea_query::BinOper::In,
                Expr::Tuple(
                    models
                        .iter()
                        .map(|m| {
                            let key = self.key_indexes.iter();
                            Expr::Tuple(key.map(|&i| self.key_value(target, m, i)).collect())
                        })
                        .collect(),
                ),
            ),
        };
        let mut select = Query::select();
        select
            .columns(M::META.column_names.iter().copied())
            .from(target.table(M::META)?)
            .and_where(by_key);
        if target.backend() != crate::Backend::Sqlite {
            select.lock(LockType::Update);
        }
        Ok(select)
    }
}

/// The indexes of the columns `key` names, if they are a key a conflict can be detected
/// on: the primary key (not an auto-increment one), a `unique` column, or the columns of a
/// composite unique constraint (`#[model(unique(a, b))]`, named in any order).
fn conflict_key(meta: &'static ModelMeta, key: &[&'static str]) -> Result<Vec<usize>> {
    let refuse = |reason| Error::InvalidArgument {
        argument: "on_conflict",
        reason,
    };
    let mut indexes = Vec::with_capacity(key.len());
    for name in key {
        let index = meta
            .columns
            .iter()
            .position(|c| c.name == *name)
            .ok_or(refuse("a column the model does not have"))?;
        if indexes.contains(&index) {
            return Err(refuse("a column named twice in the key"));
        }
        indexes.push(index);
    }
    // Alone or in a composite key: the database assigns it anew on every insert.
    if indexes.iter().any(|&i| meta.columns[i].auto_increment) {
        return Err(refuse(
            "an auto-increment primary key is assigned by the database and never conflicts",
        ));
    }
    if key.is_empty() || !meta.is_unique_key(key) {
        return Err(refuse(
            "columns with no unique constraint (a key is the primary key, a unique column, or the columns of a #[model(unique(a, b))])",
        ));
    }
    Ok(indexes)
}

/// The columns a conflict updates must be the model's, and never its primary key; an
/// expression never assigns a key column (the row would no longer be found by its key).
fn check_updates<M>(
    meta: &'static ModelMeta,
    key: &[&'static str],
    columns: &[&'static str],
    assignments: &[Assignment<M>],
) -> Result<()> {
    if assignments.iter().any(|a| key.contains(&a.column)) {
        return Err(Error::InvalidArgument {
            argument: "do_update_set",
            reason: "a column of the conflict key (the row would change which key it has)",
        });
    }
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
fn refuse_other_unique_keys(
    target: &Target,
    meta: &'static ModelMeta,
    key: &[&'static str],
) -> Result<()> {
    if target.backend().capabilities().conflict_target {
        return Ok(());
    }
    let is_key =
        |columns: &[&str]| columns.len() == key.len() && columns.iter().all(|c| key.contains(c));
    let other_column = meta
        .columns
        .iter()
        .any(|c| !is_key(&[c.name]) && (c.unique || (c.primary_key && !c.auto_increment)));
    let other_index = meta
        .indexes
        .iter()
        .any(|ix| ix.unique && !is_key(ix.columns));
    let other = other_column || other_index;
    if other {
        return Err(Error::Unsupported {
            backend: target.backend().name(),
            what: "an upsert on a model with another unique key (ON DUPLICATE KEY UPDATE fires on any of them)",
        });
    }
    Ok(())
}

/// Each model's key, in order. Refused: a NULL or NaN key, and keys the database would
/// take for another (see [`Upsert::bulk_create`]).
fn checked_keys<M: Model>(plan: &Plan<M>, target: &Target, models: &[M]) -> Result<Vec<Key>> {
    let keys: Vec<Key> = models.iter().map(|model| plan.key_of(model)).collect();
    let trims_spaces = !target.backend().capabilities().conflict_target;
    if let Some(reason) = keys.iter().find_map(|key| key.refusal(trims_spaces)) {
        return Err(refused_keys(reason));
    }
    Ok(keys)
}

/// Refuses two models with the same key. When `sorted`, `order` is the keys sorted: where
/// every key value is of a kind [`Key::order`] ranks, equal keys are neighbours there;
/// otherwise they are found with a hash set.
fn refuse_repeats(keys: &[Key], order: &[usize], sorted: bool) -> Result<()> {
    let repeated = if sorted && keys.iter().all(Key::is_ranked) {
        order.windows(2).any(|pair| keys[pair[0]] == keys[pair[1]])
    } else {
        let mut seen: HashSet<&Key> = HashSet::with_capacity(keys.len());
        !keys.iter().all(|key| seen.insert(key))
    };
    if repeated {
        return Err(refused_keys("two rows with the same conflict key"));
    }
    Ok(())
}

/// A `bulk_create` refused for its keys.
fn refused_keys(reason: &'static str) -> Error {
    Error::InvalidArgument {
        argument: "bulk_create",
        reason,
    }
}

/// A key an upsert wrote but could not read back.
fn missing_row<M: Model>(target: &Target) -> Error {
    if target.backend().capabilities().conflict_target {
        Error::NotFound {
            model: M::META.table,
        }
    } else {
        Error::Unsupported {
            backend: target.backend().name(),
            what: "an upsert that conflicted on another unique index of the table (ON DUPLICATE KEY UPDATE fired on it); nothing was written",
        }
    }
}

/// A key's values, in key order, that can be hashed: sea-query's `Value` is `PartialEq`
/// only. Hashed with hashbrown's seeded foldhash (the keys are the caller's data). One
/// column's key is held inline.
#[derive(Debug)]
struct Key(SmallVec<[sea_query::Value; 1]>);

impl Key {
    /// Why this key cannot be upserted, if it cannot: `trims_spaces` for MySQL, which
    /// compares text ignoring trailing spaces. A composite key with a NULL in any column
    /// never conflicts either.
    fn refusal(&self, trims_spaces: bool) -> Option<&'static str> {
        self.0.iter().find_map(|value| refusal(value, trims_spaces))
    }

    /// The key as the server compares it: its text values without trailing spaces where
    /// `trims_spaces` (MySQL).
    fn compared(mut self, trims_spaces: bool) -> Key {
        if trims_spaces {
            for value in &mut self.0 {
                if let sea_query::Value::String(Some(text)) = value {
                    let kept = text.trim_end_matches(' ').len();
                    text.truncate(kept);
                }
            }
        }
        self
    }

    /// Whether [`order`](Self::order) ranks every value of this key (equal keys compare
    /// `Equal` and only they do).
    fn is_ranked(&self) -> bool {
        self.0.iter().all(|value| rank(value, value).is_some())
    }

    /// A total order on keys of the same columns, column by column, for writing rows in
    /// the same order every time.
    #[inline]
    fn order(&self, other: &Key) -> std::cmp::Ordering {
        // One column: the common key, compared without the iterator (a 1,000-row batch
        // sorts with about 10,000 comparisons).
        if let ([a], [b]) = (&self.0[..], &other.0[..]) {
            return order(a, b);
        }
        self.0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| order(a, b))
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

/// The nanoseconds of a timestamp or time value.
fn nanosecond(value: &sea_query::Value) -> Option<u32> {
    use chrono::Timelike;
    use sea_query::Value as V;
    match value {
        V::ChronoDateTimeUtc(Some(at)) => Some(at.nanosecond()),
        V::ChronoDateTime(Some(at)) => Some(at.nanosecond()),
        V::ChronoTime(Some(at)) => Some(at.nanosecond()),
        _ => None,
    }
}

/// Why one key value cannot be upserted (see [`Key::refusal`]).
fn refusal(value: &sea_query::Value, trims_spaces: bool) -> Option<&'static str> {
    use sea_query::Value as V;
    match value {
        _ if is_null(value) => Some("a row whose conflict key is NULL (it never conflicts)"),
        V::Double(Some(f)) if f.is_nan() => Some("a NaN conflict key (it equals nothing)"),
        V::Float(Some(f)) if f.is_nan() => Some("a NaN conflict key (it equals nothing)"),
        _ if nanosecond(value).is_some_and(|n| n % 1_000 != 0) => {
            Some("a timestamp conflict key finer than the microseconds the database keeps")
        }
        V::String(Some(text)) if trims_spaces && text.ends_with(' ') => {
            Some("a text conflict key ending in spaces (MySQL compares text ignoring them)")
        }
        _ => None,
    }
}

/// A total order on values of one column; values of kinds it does not rank are left in the
/// order given.
#[inline]
fn order(a: &sea_query::Value, b: &sea_query::Value) -> std::cmp::Ordering {
    rank(a, b).unwrap_or(std::cmp::Ordering::Equal)
}

/// The order of two values of one column, `None` for kinds it does not rank (JSON; a NaN,
/// which is refused before the order is asked).
#[inline]
fn rank(a: &sea_query::Value, b: &sea_query::Value) -> Option<std::cmp::Ordering> {
    use sea_query::Value as V;
    Some(match (a, b) {
        (V::Int(a), V::Int(b)) => a.cmp(b),
        (V::BigInt(a), V::BigInt(b)) => a.cmp(b),
        (V::String(a), V::String(b)) => a.cmp(b),
        (V::Uuid(a), V::Uuid(b)) => a.cmp(b),
        (V::Decimal(a), V::Decimal(b)) => a.cmp(b),
        (V::ChronoDate(a), V::ChronoDate(b)) => a.cmp(b),
        (V::ChronoDateTimeUtc(a), V::ChronoDateTimeUtc(b)) => a.cmp(b),
        (V::Bool(a), V::Bool(b)) => a.cmp(b),
        (V::SmallInt(a), V::SmallInt(b)) => a.cmp(b),
        (V::ChronoDateTime(a), V::ChronoDateTime(b)) => a.cmp(b),
        (V::ChronoTime(a), V::ChronoTime(b)) => a.cmp(b),
        (V::Bytes(a), V::Bytes(b)) => a.cmp(b),
        (V::Double(a), V::Double(b)) => a.partial_cmp(b)?,
        (V::Float(a), V::Float(b)) => a.partial_cmp(b)?,
        _ => return None,
    })
}

fn is_null(value: &sea_query::Value) -> bool {
    use sea_query::Value as V;
    matches!(
        value,
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
            | V::SmallInt(None)
            | V::Float(None)
            | V::Bytes(None)
            | V::ChronoDateTime(None)
            | V::ChronoTime(None)
    )
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for value in &self.0 {
            hash_value(value, state);
        }
    }
}

fn hash_value<H: std::hash::Hasher>(value: &sea_query::Value, state: &mut H) {
    use sea_query::Value as V;
    use std::hash::Hash;
    std::mem::discriminant(value).hash(state);
    // Equal values hash alike: `Decimal`'s hash ignores trailing zeros, as its `==`
    // does; variants not listed hash by variant only, which is still consistent.
    match value {
        V::Int(v) => v.hash(state),
        V::BigInt(v) => v.hash(state),
        V::String(v) => v.hash(state),
        V::Uuid(v) => v.hash(state),
        V::Decimal(v) => v.hash(state),
        V::ChronoDate(v) => v.hash(state),
        V::ChronoDateTimeUtc(v) => v.hash(state),
        V::Bool(v) => v.hash(state),
        V::SmallInt(v) => v.hash(state),
        V::ChronoDateTime(v) => v.hash(state),
        V::ChronoTime(v) => v.hash(state),
        V::Bytes(v) => v.hash(state),
        _ => {}
    }
}

/// The insert columns' values of `models`, row by row, checked against their columns as an
/// INSERT binds them.
fn row_values<M: Model>(models: &[M]) -> Result<Vec<sea_query::Value>> {
    let meta = M::META;
    let columns = meta.insert_columns().count();
    let mut values = Vec::with_capacity(models.len() * columns);
    for model in models {
        for (i, column) in meta.insert_columns() {
            values.push(column.bind(meta, model.column_value(i))?);
        }
    }
    Ok(values)
}
