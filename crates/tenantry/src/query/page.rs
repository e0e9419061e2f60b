//! Page-number pagination: `paginate(per_page).page(n)`, the items of page `n` and the
//! total.

use sea_query::Order;

use super::{QuerySet, MAX_ROWS};
use crate::{
    error::{Error, Result},
    instance::Instance,
    model::Model,
};

/// The pages of a QuerySet's rows: [`QuerySet::paginate`].
#[must_use = "a paginator does nothing until .page(n) is awaited"]
pub struct Paginator<M: Model> {
    query: QuerySet<M>,
    per_page: u64,
}

/// One page of rows, with the total the pages are cut from.
#[derive(Debug)]
pub struct Page<M: Model> {
    /// The rows of this page; empty past the last page.
    pub items: Vec<Instance<M>>,
    /// The number of matching rows in all.
    pub total: u64,
    /// This page's number, from 1.
    pub number: u64,
    /// The most rows a page holds.
    pub per_page: u64,
}

impl<M: Model> Page<M> {
    /// The number of pages (0 when there is no row).
    pub fn pages(&self) -> u64 {
        self.total.div_ceil(self.per_page)
    }

    /// Whether a page follows this one.
    pub fn has_next(&self) -> bool {
        self.number < self.pages()
    }

    /// Whether a page comes before this one.
    pub fn has_previous(&self) -> bool {
        self.number > 1
    }
}

impl<M: Model> QuerySet<M> {
    /// Cuts the matching rows into pages of `per_page` rows, in the QuerySet's ordering with
    /// the primary key as the last tie-breaker (so that no row is on two pages or none).
    ///
    /// The total and the page are two statements; inside a transaction with repeatable
    /// reads they see the same rows, otherwise a write between them may make the total
    /// differ from what the pages hold. For lists written to while they are read, prefer
    /// keyset pagination (ordering on a unique column and filtering past the last row seen).
    ///
    /// ```no_run
    /// # use tenantry::__doc::*;
    /// # async fn demo(registry: tenantry::Registry) -> tenantry::Result<()> {
    /// let page = User::query(&registry)
    ///     .order_by([User::name().asc()])
    ///     .paginate(20)
    ///     .page(2)
    ///     .await?;
    /// println!("{} of {} users, page {} of {}", page.items.len(), page.total, page.number, page.pages());
    /// # Ok(()) }
    /// ```
    pub fn paginate(self, per_page: u64) -> Paginator<M> {
        Paginator {
            query: self,
            per_page,
        }
    }
}

impl<M: Model> Paginator<M> {
    /// Page `number` (from 1) and the total. A page past the last is empty, with the total.
    /// [`Error::InvalidArgument`] for page 0, `per_page` 0, or a page whose first row is
    /// past `u64::MAX`.
    pub async fn page(&self, number: u64) -> Result<Page<M>> {
        if self.per_page == 0 || self.per_page > MAX_ROWS {
            return Err(invalid("per_page", "must be between 1 and i64::MAX"));
        }
        if self.query.limit.is_some() || self.query.offset.is_some() {
            return Err(invalid(
                "paginate",
                "the pages cut the whole QuerySet; remove its limit and offset",
            ));
        }
        if number == 0 {
            return Err(invalid("page", "pages are numbered from 1"));
        }
        let skip = (number - 1)
            .checked_mul(self.per_page)
            .ok_or_else(|| invalid("page", "the page starts past the last row any table holds"))?;
        let total = self.query.clone().count().await?;
        let items = if skip >= total {
            Vec::new()
        } else {
            self.ordered()
                .offset(skip)
                .limit(self.per_page)
                .all()
                .await?
        };
        Ok(Page {
            items,
            total,
            number,
            per_page: self.per_page,
        })
    }

    /// The QuerySet with the primary key as its last ordering.
    fn ordered(&self) -> QuerySet<M> {
        let mut query = self.query.clone();
        let pk = M::META.primary_key_column().name;
        if !query.order.iter().any(|o| is_own_column::<M>(o, pk)) {
            query.order.push(query.pk_order(Order::Asc));
        }
        query
    }
}

/// Whether `ordering` is on `M`'s own column `column` (not one reached through a relation).
pub(super) fn is_own_column<M: Model>(ordering: &crate::model::Ordering, column: &str) -> bool {
    ordering.column == column && ordering.path.is_empty() && (ordering.from)() == M::META
}

fn invalid(argument: &'static str, reason: &'static str) -> Error {
    Error::InvalidArgument { argument, reason }
}
