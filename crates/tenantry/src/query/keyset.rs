//! Keyset (cursor) pagination: `page_after(per_page, cursor)`, pages that stay stable while
//! rows are inserted, behind opaque cursors signed with the registry's key and bound to the
//! model, the tenant and the ordering.
//!
//! A cursor is `base64url(payload).base64url(HMAC-SHA256(key, payload))`; the payload is
//! JSON: what the cursor is bound to (`table|schema|column:order,…`) and the ordering
//! values of the last row of the page. Its values are bound parameters of the next page's
//! statement, never SQL text, and only after the signature and the binding were checked.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use hmac::{Hmac, Mac};
use rust_decimal::Decimal;
use sea_query::{Condition, Expr, ExprTrait, Order, Value};
use serde_json::Value as Json;
use sha2::Sha256;

use super::{QuerySet, Source};
use crate::{
    error::{Error, Result},
    field::SqlType,
    instance::Instance,
    model::{ColumnMeta, Filter, Model, Ordering},
};

/// One page of a keyset pagination: [`QuerySet::page_after`].
#[derive(Debug)]
pub struct CursorPage<M: Model> {
    /// The rows of the page, at most `per_page`.
    pub items: Vec<Instance<M>>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The shortest key [`Registry::cursor_key`](crate::Registry::cursor_key) accepts.
const MIN_KEY: usize = 32;

impl<M: Model> QuerySet<M> {
    /// The `per_page` rows after `cursor` (the first page for `None`), in the QuerySet's
    /// ordering with the primary key as the last tie-breaker, and the cursor of the next
    /// page. A row inserted while a client pages is either on a later page or, sorting
    /// before the cursor, on none; no row is seen twice or skipped because of it (unlike
    /// `offset`).
    ///
    /// The ordering may only name the model's own non-nullable columns of integer, text,
    /// boolean, float, decimal, timestamp, date or UUID type ([`Error::InvalidArgument`]).
    /// The cursor is signed with the registry's [`cursor_key`](crate::Registry::cursor_key)
    /// and bound to the model, the schema (tenant) and the ordering: a cursor that was
    /// altered, signed with another key, or made for another model, tenant or ordering is
    /// [`Error::InvalidCursor`], and no statement is sent. A QuerySet with a limit or an
    /// offset is [`Error::InvalidArgument`]: the pages cut every matching row.
    ///
    /// ```no_run
    /// # use tenantry::__doc::*;
    /// # async fn demo(registry: tenantry::Registry, cursor: Option<String>) -> tenantry::Result<()> {
    /// let page = User::query(&registry)
    ///     .order_by([User::name().asc()])
    ///     .page_after(20, cursor.as_deref())
    ///     .await?;
    /// // Send page.items, and page.next for the client to ask for the next page.
    /// # Ok(()) }
    /// ```
    pub async fn page_after(self, per_page: u64, cursor: Option<&str>) -> Result<CursorPage<M>> {
        self.refuse_window(super::window::PAGES_WINDOW)?;
        if per_page == 0 || per_page == u64::MAX {
            return Err(Error::InvalidArgument {
                argument: "per_page",
                reason: "must be between 1 and u64::MAX - 1",
            });
        }
        let key = self.cursor_key()?;
        let target = self.target()?;
        let columns = self.keyset_columns()?;
        let binding = binding::<M>(
            target.database().name(),
            target.schema.as_ref().map(|s| s.as_str()),
            &columns,
        );
        let mut query = self.clone();
        query.order = columns.iter().map(|(_, o)| o.clone()).collect();
        if let Some(cursor) = cursor {
            let values = open(&key, cursor, &binding, &columns)?;
            query = query.filter(after::<M>(&target, &columns, values));
        }
        let mut items = query.limit(per_page + 1).all().await?;
        let next = if items.len() as u64 > per_page {
            items.truncate(usize::try_from(per_page).unwrap_or(usize::MAX));
            items
                .last()
                .map(|last| seal(&key, &binding, &columns, &**last))
                .transpose()?
        } else {
            None
        };
        Ok(CursorPage { items, next })
    }

    fn cursor_key(&self) -> Result<Vec<u8>> {
        let registry = match &self.source {
            Source::Registry(registry) => registry,
            Source::Transaction(tx) => tx.registry(),
            Source::Origin(_) | Source::OriginDatabase(_) => {
                return Err(Error::InvalidArgument {
                    argument: "cursor",
                    reason: "cursor pagination starts from a registry or a transaction",
                })
            }
        };
        match registry.cursor_secret() {
            Some(key) if key.len() >= MIN_KEY => Ok(key.to_vec()),
            _ => Err(Error::InvalidArgument {
                argument: "cursor",
                reason: "set a cursor key of at least 32 bytes with Registry::cursor_key",
            }),
        }
    }

    /// The ordering columns with their metadata, the primary key appended if absent.
    fn keyset_columns(&self) -> Result<Vec<(&'static ColumnMeta, Ordering)>> {
        let mut columns = Vec::with_capacity(self.order.len() + 1);
        for ordering in &self.order {
            let column = M::META
                .column(ordering.column)
                .filter(|_| ordering.path.is_empty() && (ordering.from)() == M::META)
                .ok_or(Error::InvalidArgument {
                    argument: "order_by",
                    reason: "cursor pagination orders by the model's own columns only",
                })?;
            if column.nullable || json_of_type(column.sql_type).is_none() {
                return Err(Error::InvalidArgument {
                    argument: "order_by",
                    reason: "cursor pagination orders by non-nullable integer, text, boolean, float, decimal, timestamp, date or UUID columns",
                });
            }
            columns.push((column, ordering.clone()));
        }
        let pk = M::META.primary_key_column();
        if !columns.iter().any(|(c, _)| c.name == pk.name) {
            columns.push((pk, self.pk_order(Order::Asc)));
        }
        Ok(columns)
    }
}

/// Whether values of `sql_type` can travel in a cursor (`Some(())`).
fn json_of_type(sql_type: SqlType) -> Option<()> {
    match sql_type {
        SqlType::Integer
        | SqlType::BigInteger
        | SqlType::Varchar
        | SqlType::Text
        | SqlType::Boolean
        | SqlType::Double
        | SqlType::Decimal
        | SqlType::Timestamp
        | SqlType::Date
        | SqlType::Uuid => Some(()),
        _ => None,
    }
}

/// What a cursor is bound to: the database (by its name on the server, so that a tenant of a
/// directory database and a tenant of the same name elsewhere never share cursors), the
/// table, the schema and the ordering.
fn binding<M: Model>(
    database: Option<&str>,
    schema: Option<&str>,
    columns: &[(&'static ColumnMeta, Ordering)],
) -> String {
    let mut binding = String::with_capacity(96);
    binding.push_str(database.unwrap_or(""));
    binding.push('|');
    binding.push_str(M::META.table);
    binding.push('|');
    binding.push_str(schema.unwrap_or(""));
    for (column, ordering) in columns {
        binding.push('|');
        binding.push_str(column.name);
        binding.push_str(match ordering.order {
            Order::Desc => ":desc",
            _ => ":asc",
        });
    }
    binding
}

/// The rows after `values` in the ordering of `columns`:
/// `c1 > v1 OR (c1 = v1 AND c2 > v2) OR …` (`<` for a descending column).
fn after<M: Model>(
    target: &crate::target::Target,
    columns: &[(&'static ColumnMeta, Ordering)],
    values: Vec<Value>,
) -> Filter {
    let typed = |column: &ColumnMeta, value: &Value| {
        crate::enum_types::typed(target, M::META, column.enum_type, value.clone())
    };
    let mut any = Condition::any();
    for i in 0..columns.len() {
        let mut all = Condition::all();
        for ((column, _), value) in columns.iter().zip(&values).take(i) {
            all = all.add(Expr::col(column.name).eq(typed(column, value)));
        }
        let (column, ordering) = &columns[i];
        let value = typed(column, &values[i]);
        all = all.add(match ordering.order {
            Order::Desc => Expr::col(column.name).lt(value),
            _ => Expr::col(column.name).gt(value),
        });
        any = any.add(all);
    }
    Filter::new(crate::model::Test::Built(any))
}

fn mac(key: &[u8], payload: &[u8]) -> Result<Hmac<Sha256>> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|_| Error::InvalidArgument {
            argument: "cursor",
            reason: "the cursor key is not usable",
        })?;
    mac.update(payload);
    Ok(mac)
}

/// The cursor after `last`.
fn seal<M: Model>(
    key: &[u8],
    binding: &str,
    columns: &[(&'static ColumnMeta, Ordering)],
    last: &M,
) -> Result<String> {
    let values: Vec<Json> = columns
        .iter()
        .map(|(column, _)| {
            let index = M::META
                .columns
                .iter()
                .position(|c| c.name == column.name)
                .unwrap_or_default();
            to_json(last.column_value(index))
        })
        .collect::<Result<_>>()?;
    let payload = serde_json::to_vec(&serde_json::json!({ "b": binding, "v": values }))
        .map_err(|_| invalid("the cursor could not be written"))?;
    let tag = mac(key, &payload)?.finalize().into_bytes();
    let mut cursor = URL_SAFE_NO_PAD.encode(&payload);
    cursor.push('.');
    cursor.push_str(&URL_SAFE_NO_PAD.encode(tag));
    Ok(cursor)
}

/// The values of a cursor, once its signature and binding are checked.
fn open(
    key: &[u8],
    cursor: &str,
    binding: &str,
    columns: &[(&'static ColumnMeta, Ordering)],
) -> Result<Vec<Value>> {
    let (payload, tag) = cursor.split_once('.').ok_or(invalid("not a cursor"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| invalid("not a cursor"))?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| invalid("not a cursor"))?;
    mac(key, &payload)?
        .verify_slice(&tag)
        .map_err(|_| invalid("not signed with this application's key"))?;
    let payload: Json = serde_json::from_slice(&payload).map_err(|_| invalid("not a cursor"))?;
    if payload["b"].as_str() != Some(binding) {
        return Err(invalid("made for another model, tenant or ordering"));
    }
    let values = payload["v"].as_array().ok_or(invalid("not a cursor"))?;
    if values.len() != columns.len() {
        return Err(invalid("made for another ordering"));
    }
    columns
        .iter()
        .zip(values)
        .map(|((column, _), json)| {
            from_json(column.sql_type, json).ok_or(invalid("a value does not fit its column"))
        })
        .collect()
}

fn invalid(reason: &'static str) -> Error {
    Error::InvalidCursor { reason }
}

fn to_json(value: Value) -> Result<Json> {
    Ok(match value {
        Value::Int(Some(v)) => Json::from(v),
        Value::BigInt(Some(v)) => Json::from(v),
        Value::String(Some(v)) => Json::from(v),
        Value::Bool(Some(v)) => Json::from(v),
        Value::Double(Some(v)) => Json::from(v),
        Value::Decimal(Some(v)) => Json::from(v.to_string()),
        Value::ChronoDateTimeUtc(Some(v)) => Json::from(v.to_rfc3339()),
        Value::ChronoDate(Some(v)) => Json::from(v.to_string()),
        Value::Uuid(Some(v)) => Json::from(v.to_string()),
        _ => {
            return Err(Error::InvalidArgument {
                argument: "order_by",
                reason: "a column of this type cannot be a cursor's ordering",
            })
        }
    })
}

fn from_json(sql_type: SqlType, json: &Json) -> Option<Value> {
    Some(match sql_type {
        SqlType::Integer => Value::Int(Some(i32::try_from(json.as_i64()?).ok()?)),
        SqlType::BigInteger => Value::BigInt(Some(json.as_i64()?)),
        SqlType::Varchar | SqlType::Text => Value::String(Some(json.as_str()?.to_owned())),
        SqlType::Boolean => Value::Bool(Some(json.as_bool()?)),
        SqlType::Double => Value::Double(Some(json.as_f64()?)),
        SqlType::Decimal => Value::Decimal(Some(json.as_str()?.parse::<Decimal>().ok()?)),
        SqlType::Timestamp => Value::ChronoDateTimeUtc(Some(
            chrono::DateTime::parse_from_rfc3339(json.as_str()?)
                .ok()?
                .with_timezone(&chrono::Utc),
        )),
        SqlType::Date => Value::ChronoDate(Some(json.as_str()?.parse().ok()?)),
        SqlType::Uuid => Value::Uuid(Some(json.as_str()?.parse().ok()?)),
        _ => return None,
    })
}
