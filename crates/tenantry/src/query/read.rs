//! The reading operations.

use sea_query::{Asterisk, Expr, ExprTrait, Order, Query};

use super::{
    kept::Statement,
    window::{GET_WINDOW, LAST_WINDOW},
    QuerySet, MAX_ROWS,
};
use crate::{
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::{Comparison, Filter, Model, Test},
    target::Target,
};

impl<M: Model> QuerySet<M> {
    /// Every matching row.
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| User::query(r).filter(User::email().icontains("@example.com")));
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "email" FROM "public"."users" WHERE LOWER("email") LIKE $1 ESCAPE E'\\'"#);
    /// assert_eq!(sql.mysql, r#"SELECT `id`, `name`, `email` FROM `app`.`users` WHERE LOWER(`email`) LIKE ? ESCAPE '\\'"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "email" FROM "users" WHERE LOWER("email") LIKE ? ESCAPE '\'"#);
    /// ```
    pub async fn all(mut self) -> Result<Vec<Instance<M>>> {
        let target = self.target()?;
        let mut sink = Instances::new(&target, self.limit.unwrap_or(0));
        match self.statement(&target)? {
            Statement::Built(select) => {
                self.take_lock(&target).await?;
                target.fetch_into(&select, &mut sink).await?;
            }
            Statement::Rendered { text, values } => {
                let again = values.clone();
                target
                    .fetch_sql_into(&text, values, move || again, &mut sink)
                    .await?;
            }
            Statement::Kept(kept) => {
                let values = || self.values(kept.order.as_deref());
                target
                    .fetch_sql_into(&kept.text, values(), values, &mut sink)
                    .await?;
            }
        }
        let mut instances = sink.finish()?;
        self.load_related(&target, &mut instances).await?;
        self.load_prefetched(&target.origin(), &mut instances)
            .await?;
        Ok(instances)
    }

    /// The one row matching `filter` (and earlier filters): [`Error::NotFound`] when there is
    /// none, [`Error::MultipleObjectsReturned`] when there are several. A limit or an offset,
    /// which would hide the row, is [`Error::InvalidArgument`].
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| User::query(r).filter(User::id().eq(1)).limit(2));
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "email" FROM "public"."users" WHERE "id" = $1 LIMIT $2"#);
    /// assert_eq!(sql.mysql, r#"SELECT `id`, `name`, `email` FROM `app`.`users` WHERE `id` = ? LIMIT ?"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "email" FROM "users" WHERE "id" = ? LIMIT ?"#);
    /// ```
    pub async fn get(self, filter: Filter) -> Result<Instance<M>> {
        self.refuse_window(GET_WINDOW)?;
        let mut rows = self.filter(filter).limit(2).all().await?;
        match rows.len() {
            0 => Err(Error::NotFound {
                model: M::META.table,
            }),
            1 => Ok(rows.remove(0)),
            _ => Err(Error::MultipleObjectsReturned {
                model: M::META.table,
            }),
        }
    }

    /// The row whose primary key is `key`, or [`Error::NotFound`].
    pub async fn get_pk(self, key: impl Into<M::PrimaryKey>) -> Result<Instance<M>> {
        let pk = M::META.primary_key_column().name;
        let value = key.into().to_value();
        self.get(Filter::new(Test::Compare {
            column: pk,
            op: Comparison::Eq,
            value,
        }))
        .await
    }

    /// The first row by the ordering (by primary key when none was given), if any: the
    /// first of the window when a limit or an offset is set.
    pub async fn first(mut self) -> Result<Option<Instance<M>>> {
        if self.order.is_empty() {
            self.order.push(self.pk_order(Order::Asc));
        }
        let limit = self.limit.map_or(1, |limit| Ord::min(limit, 1));
        Ok(self.limit(limit).all().await?.pop())
    }

    /// The last row by the ordering (by primary key when none was given), if any. It reads
    /// the ordering backwards, so a limit or an offset (which would cut the other end) is
    /// [`Error::InvalidArgument`].
    pub async fn last(mut self) -> Result<Option<Instance<M>>> {
        self.refuse_window(LAST_WINDOW)?;
        if self.order.is_empty() {
            self.order.push(self.pk_order(Order::Asc));
        }
        for ordering in &mut self.order {
            ordering.order = match ordering.order {
                Order::Desc => Order::Asc,
                _ => Order::Desc,
            };
        }
        Ok(self.limit(1).all().await?.pop())
    }

    /// The number of matching rows, within the limit and offset when they are set (the
    /// number of rows [`all`](Self::all) would return).
    ///
    /// ```no_run
    /// # use tenantry::__doc::*;
    /// # async fn demo(registry: tenantry::Registry) -> tenantry::Result<()> {
    /// // Of 25 users: 25, then 10, then the 5 after the first 20.
    /// let all = User::query(&registry).count().await?;
    /// let first_ten = User::query(&registry).limit(10).count().await?;
    /// let last_page = User::query(&registry).offset(20).limit(10).count().await?;
    /// # Ok(()) }
    /// ```
    pub async fn count(mut self) -> Result<u64> {
        self.refuse_lock("count returns no rows to lock; lock them with all() or get()")?;
        let target = self.target()?;
        let mut select = Query::select();
        select
            .expr(Expr::col(Asterisk).count())
            .from(target.table(M::META)?);
        self.add_select_filter(&target, &mut select)?;
        let rows = target.fetch_all(&select).await?;
        let count: i64 = match rows.first() {
            Some(row) => row.get(0).map_err(Error::Database)?,
            None => 0,
        };
        Ok(self.windowed(u64::try_from(count).unwrap_or_default()))
    }

    /// Whether any row matches, within the limit and offset when they are set (whether
    /// [`all`](Self::all) would return a row).
    pub async fn exists(mut self) -> Result<bool> {
        self.refuse_lock("exists returns no rows to lock; lock them with all() or get()")?;
        let target = self.target()?;
        let mut select = Query::select();
        select
            .expr(Expr::val(1))
            .from(target.table(M::META)?)
            .limit(1);
        if let Some(offset) = self.offset {
            select.offset(Ord::min(offset, MAX_ROWS));
        }
        self.add_select_filter(&target, &mut select)?;
        let found = !target.fetch_all(&select).await?.is_empty();
        Ok(found && self.limit != Some(0))
    }
}

/// Runs `select` and decodes every row, as it arrives, into an instance that remembers
/// `target`; room for `expected` rows (at most) is made at once.
pub(crate) async fn fetch<M: Model>(
    target: &Target,
    select: &sea_query::SelectStatement,
    expected: u64,
) -> Result<Vec<Instance<M>>> {
    let mut sink = Instances::new(target, expected);
    target.fetch_into(select, &mut sink).await?;
    sink.finish()
}

/// Rows decoded into instances of `M` read at one target, each as it arrives.
struct Instances<M> {
    origin: crate::target::Origin,
    instances: Vec<Instance<M>>,
    /// The first row that did not decode; reading stopped there.
    error: Option<Error>,
}

/// Room made at once for at most this many instances (a LIMIT may be far above the rows).
const ROOM_AT_ONCE: u64 = 10_000;

impl<M: Model> Instances<M> {
    fn new(target: &Target, expected: u64) -> Self {
        Instances {
            origin: target.origin(),
            // Sized once where the number is known: grown by doubling, a 10,000-row batch
            // had every instance copied about twice more.
            instances: Vec::with_capacity(std::cmp::min(expected, ROOM_AT_ONCE) as usize),
            error: None,
        }
    }

    fn finish(self) -> Result<Vec<Instance<M>>> {
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.instances),
        }
    }
}

impl<M: Model> crate::database::RowSink for Instances<M> {
    fn take(&mut self, row: &crate::row::Row) -> bool {
        match M::from_row(row) {
            Ok(model) => {
                let origin = self.origin.clone();
                self.instances.push(Instance::stored(model, origin));
                true
            }
            Err(error) => {
                self.error = Some(error);
                false
            }
        }
    }

    fn restart(&mut self) {
        self.instances.clear();
        self.error = None;
    }
}
