//! Tenant-aware raw SQL: a statement tenantry does not build, whose tables are named by
//! model placeholders rendered for the current target, and whose values are always bound.
//!
//! The template is a `&'static str`: text written in the program, not assembled at run
//! time, so nothing a request carries can become SQL, and no schema name is ever typed by
//! its author. In it:
//!
//! - `{table}` is the table of the registered model whose table is `table`, qualified and
//!   quoted by the query builder for where the statement runs: the tenant's schema for a
//!   tenant model, the shared schema for a shared one;
//! - `?` is a value, bound in order (`$1`, `$2`, … on PostgreSQL);
//! - `{{`, `}}` and `??` are a literal `{`, `}` and `?` (`??` keeps PostgreSQL's JSON
//!   operator writable);
//! - string literals (`'…'`), quoted identifiers (`"…"`, `` `…` ``) and comments are copied
//!   unchanged: a `?` or `{` inside them is not a placeholder.
//!
//! Refused with [`Error::InvalidArgument`], before any SQL is sent, because one of the
//! backends would read them differently: a registered model's table named without braces
//! (`products`, `"products"`: it would run in the default schema, not the tenant's), a
//! `{table}` that two registered models share, `$` outside quotes (PostgreSQL's dollar
//! quotes and `$1` parameters), `#` outside quotes (MySQL comments), a backslash inside
//! quotes (MySQL escapes), and a comment opened inside a comment (PostgreSQL nests them).
//!
//! A statement that names only shared models' tables runs in the shared schema.
//!
//! The schema is chosen as for a query: [`using`](RawSql::using), else the task's tenant,
//! else `activate_schema`, else the default; inside a [`Transaction`] the statement runs in
//! it. Each statement runs in the same `tenantry.query` span as the query builder's.

use sea_query::{Query, Value};

use crate::{
    backend::Backend,
    error::{Error, Result},
    field::FieldType,
    instance::Instance,
    model::{Model, ModelMeta},
    registry::Registry,
    row::Row,
    schema_name::SchemaName,
    target::{Conn, Target},
    tenancy::context::{context_route, routed_database_of},
    transaction::Transaction,
};

/// A raw statement: [`Registry::raw`] or [`Transaction::raw`].
///
/// ```
/// # use tenantry::__doc::*;
/// let sql = render_raw("SELECT {products}.name, {users}.name FROM {products} JOIN {users} ON {users}.id = {products}.user_id WHERE {products}.stock > ? AND name <> '?{x}'");
/// assert_eq!(sql.postgres, r#"SELECT "public"."products".name, "public"."users".name FROM "public"."products" JOIN "public"."users" ON "public"."users".id = "public"."products".user_id WHERE "public"."products".stock > $1 AND name <> '?{x}'"#);
/// assert_eq!(sql.mysql, r#"SELECT `app`.`products`.name, `app`.`users`.name FROM `app`.`products` JOIN `app`.`users` ON `app`.`users`.id = `app`.`products`.user_id WHERE `app`.`products`.stock > ? AND name <> '?{x}'"#);
/// assert_eq!(sql.sqlite, r#"SELECT "products".name, "users".name FROM "products" JOIN "users" ON "users".id = "products".user_id WHERE "products".stock > ? AND name <> '?{x}'"#);
/// ```
#[must_use = "a raw statement does nothing until it is run"]
pub struct RawSql {
    template: &'static str,
    registry: Registry,
    transaction: Option<Transaction>,
    schema: std::result::Result<Option<SchemaName>, std::sync::Arc<Error>>,
    values: Vec<Value>,
}

impl Registry {
    /// A raw statement over this registry's default database; see [`RawSql`].
    pub fn raw(&self, template: &'static str) -> RawSql {
        RawSql::new(template, self.clone(), None)
    }
}

impl Transaction {
    /// A raw statement inside this transaction; see [`RawSql`].
    pub fn raw(&self, template: &'static str) -> RawSql {
        RawSql::new(template, self.registry().clone(), Some(self.clone()))
    }
}

impl RawSql {
    fn new(template: &'static str, registry: Registry, transaction: Option<Transaction>) -> RawSql {
        RawSql {
            template,
            registry,
            transaction,
            schema: Ok(None),
            values: Vec::new(),
        }
    }

    /// Runs in `schema` instead of the one the context would choose. An invalid name is
    /// returned as [`Error::InvalidSchemaName`] when the statement runs.
    pub fn using(mut self, schema: impl TryInto<SchemaName, Error = Error>) -> Self {
        if self.schema.is_ok() {
            self.schema = schema.try_into().map(Some).map_err(std::sync::Arc::new);
        }
        self
    }

    /// Binds the next `?`.
    pub fn bind(mut self, value: impl FieldType) -> Self {
        self.values.push(value.to_value());
        self
    }

    /// Runs the statement and returns its rows, to decode with [`Row::get`].
    pub async fn fetch_all(self) -> Result<Vec<Row>> {
        let (target, sql, values) = self.prepare()?;
        target.fetch_raw(&sql, &values).await
    }

    /// Runs the statement and decodes every row into a tuple of field types
    /// (`(i64, String)`, up to eight).
    pub async fn fetch_as<T: FromRawRow>(self) -> Result<Vec<T>> {
        self.fetch_all()
            .await?
            .iter()
            .map(|row| T::from_raw_row(row).map_err(Error::Database))
            .collect()
    }

    /// Runs the statement and decodes every row into a model instance, which remembers the
    /// statement's schema (the shared schema for a shared model; saves go back there). The
    /// statement must select `M`'s columns, named as the fields' columns, in field order;
    /// anything else is [`Error::InvalidArgument`] (`{products}.*` follows the table's
    /// physical order, which equals field order only until a migration adds a column).
    pub async fn fetch_models<M: Model>(self) -> Result<Vec<Instance<M>>> {
        let (target, sql, values) = self.prepare()?;
        let mut origin = target.origin();
        if M::META.shared {
            origin = origin.in_shared_schema();
        }
        // Instances of a tenant-only model never belong to the shared schema.
        M::META.check_schema(origin.schema())?;
        let rows = target.fetch_raw(&sql, &values).await?;
        if let Some(first) = rows.first() {
            check_columns(first, M::META)?;
        }
        rows.iter()
            .map(|row| Ok(Instance::stored(M::from_row(row)?, origin.clone())))
            .collect()
    }

    /// Runs a statement that returns no rows; the number of rows it affected.
    pub async fn execute(self) -> Result<u64> {
        let (target, sql, values) = self.prepare()?;
        Ok(target.execute_raw(&sql, &values).await?.rows_affected)
    }

    /// The SQL this statement would send now, with its placeholders.
    #[doc(hidden)]
    pub fn to_sql(self) -> Result<String> {
        self.prepare().map(|(_, sql, _)| sql)
    }

    /// The target, the rendered SQL and the values.
    fn prepare(self) -> Result<(Target, String, Vec<Value>)> {
        let explicit = self.schema.map_err(|e| e.replay())?;
        let scan = scan(self.template, self.registry.models())?;
        // Only shared tables: the statement belongs to the shared schema, in the default
        // database (also from a directory tenant's scope).
        let shared_only = scan.shared && !scan.tenant;
        let from_context = explicit.is_none() && !shared_only;
        let (schema, routed) = match explicit {
            _ if shared_only => (None, None),
            Some(schema) => {
                let routed = routed_database_of(&schema);
                (Some(schema), routed)
            }
            None => context_route()?,
        };
        let routed_context = routed.is_some();
        let conn = match (&self.transaction, routed) {
            (Some(tx), Some(db)) if !tx.database().same_as(&db) => {
                return Err(Error::Unsupported {
                    backend: db.backend().name(),
                    what: "a transaction of another database inside a directory tenant's scope",
                })
            }
            (Some(tx), _) => Conn::Transaction(tx.clone()),
            (None, Some(db)) => Conn::Database(db),
            (None, None) => Conn::Database(self.registry.database().clone()),
        };
        let target = Target::resolved(conn, schema)?;
        target.refuse_unrouted(from_context && !routed_context)?;
        let sql = render(self.template, &target, self.registry.models())?;
        let expected = sql.placeholders;
        if expected != self.values.len() {
            return Err(Error::InvalidArgument {
                argument: "bind",
                reason: "the number of bound values differs from the number of ? in the statement",
            });
        }
        Ok((target, sql.text, self.values))
    }
}

/// Refuses rows whose columns are not `meta`'s in field order: a model decodes by position,
/// and a table's physical column order (what `*` selects) changes with migrations.
fn check_columns(row: &Row, meta: &ModelMeta) -> Result<()> {
    let names = row.column_names();
    if names.len() != meta.column_names.len()
        || names.iter().zip(meta.column_names).any(|(a, b)| a != b)
    {
        return Err(Error::InvalidArgument {
            argument: "fetch_models",
            reason: "select the model's columns by name, in field order (a table's * follows its physical order, which migrations change)",
        });
    }
    Ok(())
}

/// What a template names, found before it is rendered.
struct Scan {
    shared: bool,
    tenant: bool,
}

/// Checks `template` (see the module docs) and tells which kinds of tables it names.
fn scan(template: &str, models: &[&'static ModelMeta]) -> Result<Scan> {
    let mut found = Scan {
        shared: false,
        tenant: false,
    };
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\'' => {
                let end = quoted_end(template, i, '\'');
                if template[i..end].contains('\\') {
                    return Err(refused(
                        "a backslash inside quotes (MySQL reads it as an escape)",
                    ));
                }
                i = end;
            }
            b'"' | b'`' => {
                let end = quoted_end(template, i, c as char);
                // Without its closing quote the text runs to the end.
                let inner_end = if end > i + 1 && bytes[end - 1] == c {
                    end - 1
                } else {
                    end
                };
                let name = template
                    .get(i + 1..inner_end)
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if models.iter().any(|m| m.table == name) {
                    return Err(refused(
                        "a model's table named without braces: write {table}",
                    ));
                }
                i = end;
            }
            b'-' if template[i..].starts_with("--") => {
                i = template[i..].find('\n').map_or(bytes.len(), |n| i + n);
            }
            b'/' if template[i..].starts_with("/*") => {
                let end = template[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |n| i + 2 + n + 2);
                if template[i + 2..end].contains("/*") {
                    return Err(refused(
                        "a comment inside a comment (PostgreSQL nests them)",
                    ));
                }
                i = end;
            }
            b'$' => return Err(refused("$ outside quotes (dollar quotes, $n parameters)")),
            b'#' => return Err(refused("# outside quotes (a comment on MySQL)")),
            b'{' if template[i..].starts_with("{{") => i += 2,
            b'{' => {
                let close = template[i..]
                    .find('}')
                    .ok_or(refused("a { without its closing }"))?;
                let name = &template[i + 1..i + close];
                let mut named = models.iter().filter(|m| m.table == name);
                let meta = named.next().ok_or(refused(
                    "a {table} placeholder names no registered model's table",
                ))?;
                if named.next().is_some() {
                    return Err(refused("two registered models share this {table}"));
                }
                if meta.shared {
                    found.shared = true;
                } else {
                    found.tenant = true;
                }
                i += close + 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = template[i..]
                    .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_'))
                    .map_or(bytes.len(), |n| i + n);
                let word = template[i..end].to_ascii_lowercase();
                // `x.products` is a column or alias, never the table (qualified by its own
                // placeholder when it is one).
                let qualified = i > 0 && bytes[i - 1] == b'.';
                if !qualified && models.iter().any(|m| m.table == word) {
                    return Err(refused(
                        "a model's table named without braces: write {table}",
                    ));
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

fn refused(reason: &'static str) -> Error {
    Error::InvalidArgument {
        argument: "raw",
        reason,
    }
}

/// A rendered template.
struct Rendered {
    text: String,
    placeholders: usize,
}

/// Renders `template` for `target`: tables qualified, `?` numbered for the backend.
fn render(template: &str, target: &Target, models: &[&'static ModelMeta]) -> Result<Rendered> {
    let backend = target.backend();
    let mut text = String::with_capacity(template.len() + 64);
    let mut placeholders = 0usize;
    let mut chars = template.char_indices().peekable();
    while let Some((at, ch)) = chars.next() {
        match ch {
            '\'' | '"' | '`' => {
                let end = quoted_end(template, at, ch);
                text.push_str(&template[at..end]);
                skip_to(&mut chars, end);
            }
            '-' if template[at..].starts_with("--") => {
                let end = template[at..].find('\n').map_or(template.len(), |n| at + n);
                text.push_str(&template[at..end]);
                skip_to(&mut chars, end);
            }
            '/' if template[at..].starts_with("/*") => {
                let end = template[at + 2..]
                    .find("*/")
                    .map_or(template.len(), |n| at + 2 + n + 2);
                text.push_str(&template[at..end]);
                skip_to(&mut chars, end);
            }
            '?' if template[at..].starts_with("??") => {
                text.push('?');
                chars.next();
            }
            '?' => {
                placeholders += 1;
                if backend == Backend::Postgres {
                    text.push('$');
                    text.push_str(&placeholders.to_string());
                } else {
                    text.push('?');
                }
            }
            '{' if template[at..].starts_with("{{") => {
                text.push('{');
                chars.next();
            }
            '}' if template[at..].starts_with("}}") => {
                text.push('}');
                chars.next();
            }
            '{' => {
                let close = template[at..].find('}').ok_or(Error::InvalidArgument {
                    argument: "raw",
                    reason: "a { without its closing }",
                })?;
                let name = &template[at + 1..at + close];
                let meta =
                    models
                        .iter()
                        .find(|m| m.table == name)
                        .ok_or(Error::InvalidArgument {
                            argument: "raw",
                            reason: "a {table} placeholder names no registered model's table",
                        })?;
                // `{table}.column`: on SQLite a column is qualified by the table's name
                // alone (`"main"."t".*` is no SQLite syntax).
                let qualifier = template[at + close + 1..].starts_with('.');
                text.push_str(&qualified(target, meta, qualifier)?);
                skip_to(&mut chars, at + close + 1);
            }
            '}' => {
                return Err(Error::InvalidArgument {
                    argument: "raw",
                    reason: "a } without its opening { (write }} for a literal one)",
                })
            }
            other => text.push(other),
        }
    }
    Ok(Rendered { text, placeholders })
}

/// The byte just past the quoted text starting at `start` (a doubled quote is part of it).
fn quoted_end(template: &str, start: usize, quote: char) -> usize {
    let bytes = template.as_bytes();
    let q = quote as u8;
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == q {
            if bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    template.len()
}

fn skip_to(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, end: usize) {
    while chars.peek().is_some_and(|(i, _)| *i < end) {
        chars.next();
    }
}

/// `meta`'s table, qualified and quoted by the backend's query builder, for `target` (on
/// SQLite, a shared table from a tenant's file is the attached main file's). As a column
/// `qualifier` on SQLite, the table's name alone: it names the table of the FROM clause.
fn qualified(target: &Target, meta: &'static ModelMeta, qualifier: bool) -> Result<String> {
    let schema = if meta.shared {
        None
    } else {
        target.schema.as_ref()
    };
    let mut table = target.table_in(meta, schema)?;
    if qualifier && target.backend() == Backend::Sqlite {
        table.0 = None;
    }
    // The builder's own rendering of the name, cut out of a statement that holds only it.
    let probe = Query::select().from(table).to_owned();
    let (rendered, _) = crate::target::render(target.backend(), &probe);
    Ok(rendered
        .strip_prefix("SELECT  FROM ")
        .or_else(|| rendered.strip_prefix("SELECT FROM "))
        .unwrap_or(&rendered)
        .to_owned())
}

/// A row decoded into a tuple of field types: [`RawSql::fetch_as`].
pub trait FromRawRow: Sized {
    /// Decodes the row's columns, in order.
    fn from_raw_row(row: &Row) -> std::result::Result<Self, sqlx::Error>;
}

macro_rules! from_raw_row {
    ($($name:ident $index:tt),+) => {
        impl<$($name: FieldType),+> FromRawRow for ($($name,)+) {
            fn from_raw_row(row: &Row) -> std::result::Result<Self, sqlx::Error> {
                Ok(($(row.get::<$name>($index)?,)+))
            }
        }
    };
}

from_raw_row!(A 0);
from_raw_row!(A 0, B 1);
from_raw_row!(A 0, B 1, C 2);
from_raw_row!(A 0, B 1, C 2, D 3);
from_raw_row!(A 0, B 1, C 2, D 3, E 4);
from_raw_row!(A 0, B 1, C 2, D 3, E 4, F 5);
from_raw_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
from_raw_row!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
