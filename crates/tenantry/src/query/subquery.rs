//! Subqueries: `Column::in_query(other.subquery(column))` and `Filter::exists(other)`,
//! rendered in the schema of the query they are used in (the same tenant), never their own.

use std::{marker::PhantomData, sync::Arc};

use sea_query::{Expr, SelectStatement};

use super::QuerySet;
use crate::{
    backend::Backend,
    error::{Error, Result},
    field::FieldType,
    model::{Column, Filter, Model, Node},
    target::Target,
};

/// The values of one column of a QuerySet's rows, as a subquery for
/// [`Column::in_query`]: `Product::query(r).filter(..).subquery(Product::user())`.
pub struct Subquery<R: Model, T> {
    query: QuerySet<R>,
    column: Option<&'static str>,
    /// The database and schema the subquery's rows are in, when they are not the outer
    /// query's (a many-to-many junction of the owner's tenant, under a query over a shared
    /// model).
    schema: Option<(crate::Database, Option<crate::schema_name::SchemaName>)>,
    _type: PhantomData<fn() -> T>,
}

/// A subquery seen without its model, as a filter holds it.
pub(crate) trait Inner: Send + Sync {
    /// The SELECT in the schema of `outer`, the query the subquery is used in; its column
    /// converted to enum type `typed` (PostgreSQL's, of the outer column's schema) when
    /// its own table is in another schema, whose copy of the type is another type.
    fn select(&self, outer: &Target, typed: Option<sea_query::TypeRef>) -> Result<SelectStatement>;
}

impl<R: Model> QuerySet<R> {
    /// The values of `column` of the matching rows, for [`Column::in_query`]. The subquery
    /// runs in the schema of the query it is used in (its tenant), so it must not have a
    /// `using` of its own ([`Error::InvalidArgument`] when the outer query runs); its filter
    /// and ordering apply, and its limit and offset where the backend allows them in a
    /// subquery (MySQL does not: [`Error::Unsupported`]).
    pub fn subquery<T: FieldType>(self, column: Column<R, T>) -> Subquery<R, T> {
        Subquery {
            query: self,
            column: Some(column.name()),
            schema: None,
            _type: PhantomData,
        }
    }
}

impl<R: Model, T> Subquery<R, T> {
    /// Runs the subquery in `schema` of `database` instead of the outer query's schema; a
    /// `database` other than the outer query's is [`Error::Unsupported`] when it renders
    /// (one statement cannot read two databases).
    pub(crate) fn in_place(
        mut self,
        database: crate::Database,
        schema: Option<crate::schema_name::SchemaName>,
    ) -> Self {
        self.schema = Some((database, schema));
        self
    }
}

impl<R: Model, T> Inner for Subquery<R, T> {
    fn select(&self, outer: &Target, typed: Option<sea_query::TypeRef>) -> Result<SelectStatement> {
        let mut query = self.query.clone();
        query.refuse_lock("a subquery locks nothing of its own; lock the outer query's rows")?;
        let place = query.place.as_ref().map_err(|e| e.error())?;
        if place.schema.is_some() || place.database.is_some() {
            return Err(Error::InvalidArgument {
                argument: "subquery",
                reason:
                    "a subquery runs in the schema of the query it is used in; remove its using()",
            });
        }
        let schema = match &self.schema {
            Some((database, _)) if !database.same_as(outer.database()) => {
                return Err(Error::Unsupported {
                    backend: outer.backend().name(),
                    what: "a subquery over rows of another database (a many-to-many whose junction is in a directory tenant's database and whose targets are shared)",
                })
            }
            Some((_, pinned)) => {
                crate::citus::refuse_across_tenants(
                    R::META,
                    outer.schema.as_ref(),
                    pinned.as_ref(),
                )?;
                pinned.clone()
            }
            None if R::META.shared => None,
            None => outer.schema.clone(),
        };
        let backend = outer.backend();
        if backend == Backend::MySql && (query.limit.is_some() || query.offset.is_some()) {
            return Err(Error::Unsupported {
                backend: backend.name(),
                what: "LIMIT or OFFSET in a subquery",
            });
        }
        // The subquery is part of the outer statement: on SQLite it runs in the outer
        // query's file, naming its own table (and the tables of its lookups) from there.
        let (target, table) = if backend == Backend::Sqlite && schema != outer.schema {
            if !R::META.shared {
                // Its lookups would be named from the outer file, not from its own schema.
                return Err(Error::Unsupported {
                    backend: backend.name(),
                    what: "a subquery over a tenant model's rows in another schema file",
                });
            }
            (
                Target {
                    conn: outer.conn.clone(),
                    schema: outer.schema.clone(),
                },
                Some(outer.table_in(R::META, schema.as_ref())?),
            )
        } else {
            (
                Target {
                    conn: outer.conn.clone(),
                    schema,
                },
                None,
            )
        };
        let mut select = query.select(&target)?;
        if let Some(table) = table {
            select.from_clear().from(table);
        }
        select.clear_selects();
        let typed = match typed {
            Some(ty) if target.table(R::META)?.0 != ty.0 => Some(ty),
            _ => None,
        };
        match (self.column, typed) {
            (Some(column), Some(ty)) => {
                let text = sea_query::Func::cast_as(Expr::col(column), "text");
                select.expr(sea_query::Func::cast_as_quoted(text, ty))
            }
            (Some(column), None) => select.column(column),
            (None, _) => select.expr(Expr::val(1)),
        };
        Ok(select)
    }
}

impl<M: Model, T: FieldType> Column<M, T> {
    /// `column IN (subquery)`: the rows whose value is among the values the subquery
    /// selects, in the same tenant.
    ///
    /// ```
    /// # use tenantry::__doc::*;
    /// let sql = render_select(|r| User::query(r).filter(User::id().in_query(Product::query(r).filter(Product::stock().gt(0)).subquery(Product::user()))));
    /// assert_eq!(sql.postgres, r#"SELECT "id", "name", "email" FROM "public"."users" WHERE "id" IN (SELECT "user_id" FROM "public"."products" WHERE "stock" > $1)"#);
    /// assert_eq!(sql.sqlite, r#"SELECT "id", "name", "email" FROM "users" WHERE "id" IN (SELECT "user_id" FROM "products" WHERE "stock" > ?)"#);
    /// ```
    pub fn in_query<R: Model>(&self, subquery: Subquery<R, T>) -> Filter {
        self.wrap(Node::InQuery {
            model: self.model_at_end(),
            column: self.name(),
            inner: Arc::new(subquery),
        })
    }
}

impl Filter {
    /// True when `query` has at least one row, in the tenant of the query this filter is
    /// used in (`EXISTS (SELECT 1 FROM …)`).
    pub fn exists<R: Model>(query: QuerySet<R>) -> Filter {
        Filter(Node::Exists(Arc::new(Subquery::<R, ()> {
            query,
            column: None,
            schema: None,
            _type: PhantomData,
        })))
    }
}
