//! Projections: some columns of the matching rows, decoded into tuples, without loading
//! whole models (Edgy's `values_list`).

use sea_query::{NullOrdering, Order, SelectStatement};

use super::QuerySet;
use crate::{
    error::{Error, Result},
    field::FieldType,
    model::{Column, Expression, Model},
    row::Row,
};

/// A column handle, or a tuple of them (up to eight), read by
/// [`QuerySet::values_list`] and grouped by [`QuerySet::group_by`].
pub trait Columns<M: Model> {
    /// The decoded values, in the same shape: `T` for a `Column<M, T>`, a tuple for a tuple.
    type Output;
    #[doc(hidden)]
    fn select(&self, select: &mut SelectStatement, backend: crate::Backend) -> Result<()>;
    #[doc(hidden)]
    fn group_and_order(&self, select: &mut SelectStatement, backend: crate::Backend);
    #[doc(hidden)]
    fn decode(&self, row: &Row, index: &mut usize) -> Result<Self::Output>;
    /// Computes on decimals (refused where that is not exact).
    #[doc(hidden)]
    fn decimal_arithmetic(&self) -> bool {
        false
    }
    /// The constants bound in these columns' expressions.
    #[doc(hidden)]
    fn constants(&self) -> usize {
        0
    }
    /// The names of the model's own columns these are (an upsert's key and updated
    /// columns); a computed column or one reached through a relation is refused.
    #[doc(hidden)]
    fn names(&self, names: &mut Vec<&'static str>) -> Result<()>;
}

/// A computed column: `values_list((Product::name(), Product::stock() * 2))`.
impl<M: Model, T: FieldType> Columns<M> for Expression<M, T> {
    type Output = T;
    fn select(&self, select: &mut SelectStatement, backend: crate::Backend) -> Result<()> {
        select.expr(self.render(backend)?);
        Ok(())
    }
    fn group_and_order(&self, select: &mut SelectStatement, backend: crate::Backend) {
        // A term that does not render was refused by `select`, which runs first.
        if let Ok(expr) = self.render(backend) {
            select
                .add_group_by([expr.clone()])
                .order_by_expr_with_nulls(expr, Order::Asc, NullOrdering::First);
        }
    }
    fn decode(&self, row: &Row, index: &mut usize) -> Result<T> {
        decode_next(row, index, M::META.table, "")
    }
    fn decimal_arithmetic(&self) -> bool {
        T::SQL_TYPE == crate::SqlType::Decimal && self.term.is_arithmetic()
    }
    fn constants(&self) -> usize {
        self.term.constants()
    }
    fn names(&self, _: &mut Vec<&'static str>) -> Result<()> {
        Err(Error::InvalidArgument {
            argument: "columns",
            reason: "a computed expression where the model's own columns are required",
        })
    }
}

impl<M: Model, T: FieldType> Expression<M, T> {
    fn render(&self, backend: crate::Backend) -> Result<sea_query::Expr> {
        let checked = backend.capabilities().division_by_zero_is_null;
        self.term
            .render(crate::model::Scope::plain(checked), &Ok)
            .map_err(|e| super::lookup::on_model(e, M::META))
    }
}

impl<M: Model, T: FieldType> Columns<M> for Column<M, T> {
    type Output = T;
    fn select(&self, select: &mut SelectStatement, _: crate::Backend) -> Result<()> {
        if self.through_relation() {
            return Err(super::write::through_relation::<M>(self.name()));
        }
        select.column(self.name());
        Ok(())
    }
    fn group_and_order(&self, select: &mut SelectStatement, _: crate::Backend) {
        // NULL first on every backend (PostgreSQL's own default puts it last).
        select.group_by_col(self.name()).order_by_with_nulls(
            self.name(),
            Order::Asc,
            NullOrdering::First,
        );
    }
    fn decode(&self, row: &Row, index: &mut usize) -> Result<T> {
        // Some drivers read a NULL as the type's zero (SQLite's 0 for an integer).
        if row
            .is_null(*index)
            .map_err(|e| decode_error::<M>(self.name(), e))?
        {
            return Err(decode_error::<M>(
                self.name(),
                sqlx::Error::Decode("NULL in a column read without .optional()".into()),
            ));
        }
        decode_next(row, index, M::META.table, self.name())
    }
    fn names(&self, names: &mut Vec<&'static str>) -> Result<()> {
        if self.through_relation() {
            return Err(super::write::through_relation::<M>(self.name()));
        }
        names.push(self.name());
        Ok(())
    }
}

fn decode_error<M: Model>(column: &'static str, source: sqlx::Error) -> Error {
    Error::Decode {
        model: M::META.table,
        column,
        source,
    }
}

/// A column read as `Option<T>`, for a nullable column: [`Column::optional`].
pub struct Optional<M, T>(Column<M, T>);

impl<M, T> Clone for Optional<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Optional<M, T> {}

impl<M: Model, T: FieldType> Column<M, T> {
    /// This column read as `Option<T>` by [`QuerySet::values_list`] and
    /// [`QuerySet::group_by`]: a column handle has the field's type without its `Option`
    /// (it is what lookups compare with), so a nullable column's NULL is read through this
    /// (`group_by(Product::user().optional())`); read without it, a NULL is
    /// [`Error::Decode`].
    pub fn optional(self) -> Optional<M, T> {
        Optional(self)
    }
}

impl<M: Model, T: FieldType> Columns<M> for Optional<M, T> {
    type Output = Option<T>;
    fn select(&self, select: &mut SelectStatement, backend: crate::Backend) -> Result<()> {
        self.0.select(select, backend)
    }
    fn group_and_order(&self, select: &mut SelectStatement, backend: crate::Backend) {
        self.0.group_and_order(select, backend);
    }
    fn decode(&self, row: &Row, index: &mut usize) -> Result<Option<T>> {
        decode_next(row, index, M::META.table, self.0.name())
    }
    fn names(&self, names: &mut Vec<&'static str>) -> Result<()> {
        self.0.names(names)
    }
}

fn decode_next<T: FieldType>(
    row: &Row,
    index: &mut usize,
    model: &'static str,
    column: &'static str,
) -> Result<T> {
    let at = *index;
    *index += 1;
    row.get(at).map_err(|source| Error::Decode {
        model,
        column,
        source,
    })
}

macro_rules! columns_tuple {
    ($($name:ident),+) => {
        impl<M: Model, $($name: Columns<M>),+> Columns<M> for ($($name,)+) {
            type Output = ($($name::Output,)+);
            #[allow(non_snake_case)]
            fn select(&self, select: &mut SelectStatement, backend: crate::Backend) -> Result<()> {
                let ($($name,)+) = self;
                $($name.select(select, backend)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn group_and_order(&self, select: &mut SelectStatement, backend: crate::Backend) {
                let ($($name,)+) = self;
                $($name.group_and_order(select, backend);)+
            }
            #[allow(non_snake_case)]
            fn decode(&self, row: &Row, index: &mut usize) -> Result<Self::Output> {
                let ($($name,)+) = self;
                Ok(($($name.decode(row, index)?,)+))
            }
            #[allow(non_snake_case)]
            fn names(&self, names: &mut Vec<&'static str>) -> Result<()> {
                let ($($name,)+) = self;
                $($name.names(names)?;)+
                Ok(())
            }
            #[allow(non_snake_case)]
            fn constants(&self) -> usize {
                let ($($name,)+) = self;
                0 $(+ $name.constants())+
            }
            #[allow(non_snake_case)]
            fn decimal_arithmetic(&self) -> bool {
                let ($($name,)+) = self;
                false $(|| $name.decimal_arithmetic())+
            }
        }
    };
}

columns_tuple!(A);
columns_tuple!(A, B);
columns_tuple!(A, B, C);
columns_tuple!(A, B, C, D);
columns_tuple!(A, B, C, D, E);
columns_tuple!(A, B, C, D, E, F);
columns_tuple!(A, B, C, D, E, F, G);
columns_tuple!(A, B, C, D, E, F, G, H);

impl<M: Model> QuerySet<M> {
    /// The values of `columns` (a column handle or a tuple of them) of every matching row,
    /// with the QuerySet's filter, ordering, limit, offset and [`distinct`](Self::distinct).
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_values(|r| User::query(r).order_by([User::name().asc()]).distinct(), (User::name(), User::email()));
    /// assert_eq!(sql.postgres, r#"SELECT DISTINCT "name", "email" FROM "public"."users" ORDER BY "name" ASC"#);
    /// assert_eq!(sql.mysql, r#"SELECT DISTINCT `name`, `email` FROM `app`.`users` ORDER BY `name` ASC"#);
    /// assert_eq!(sql.sqlite, r#"SELECT DISTINCT "name", "email" FROM "users" ORDER BY "name" ASC"#);
    /// ```
    pub async fn values_list<C: Columns<M>>(mut self, columns: C) -> Result<Vec<C::Output>> {
        let target = self.target()?;
        let select = self.values_select(&target, &columns)?;
        self.take_lock(&target).await?;
        let rows = target.fetch_all(&select).await?;
        rows.iter().map(|row| columns.decode(row, &mut 0)).collect()
    }

    /// Only distinct rows: of the whole rows for [`all`](Self::all), of the selected
    /// columns for [`values_list`](Self::values_list).
    ///
    /// Whole rows ordered across a relation also select the related column, after the
    /// model's own: PostgreSQL orders a DISTINCT only by what it selects, and a forward
    /// relation's column is one value per row, so the rows stay as distinct as they were.
    /// (`values_list` selects only its columns: ordered by another, PostgreSQL refuses it.)
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| Product::query(r).distinct().order_by([Product::user().to(User::name()).asc()]));
    /// assert_eq!(sql.postgres, r#"SELECT DISTINCT "id", "name", "user_id", "price", "stock", "tenantry_j1"."tenantry_v1" FROM "public"."products" LEFT JOIN (SELECT "users"."id" AS "tenantry_j1", "users"."name" AS "tenantry_v1" FROM "public"."users") AS "tenantry_j1" ON "tenantry_j1"."tenantry_j1" = "products"."user_id" ORDER BY "tenantry_j1"."tenantry_v1" ASC"#);
    /// ```
    pub fn distinct(mut self) -> Self {
        self.distinct = true;
        self
    }

    fn values_select<C: Columns<M>>(
        &mut self,
        target: &crate::target::Target,
        columns: &C,
    ) -> Result<SelectStatement> {
        super::lookup::refuse_decimal_arithmetic(target, columns.decimal_arithmetic(), &[])?;
        let mut select = self.select(target)?;
        select.clear_selects();
        columns.select(&mut select, target.backend())?;
        Ok(select)
    }

    /// The SELECT [`values_list`](Self::values_list) would run.
    #[doc(hidden)]
    pub fn values_sql<C: Columns<M>>(mut self, columns: C) -> Result<String> {
        let target = self.target()?;
        let select = self.values_select(&target, &columns)?;
        Ok(crate::target::render(target.backend(), &select).0)
    }
}
