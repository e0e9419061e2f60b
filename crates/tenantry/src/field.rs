//! The Rust types a model field may have, and how each travels to and from the database.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use sea_query::Value;
use sqlx::Row as _;

use crate::{row::Row, Backend};

/// The storage class of a column; each backend's dialect turns it into a column type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SqlType {
    /// 32-bit integer.
    Integer,
    /// 64-bit integer.
    BigInteger,
    /// 16-bit integer (`SMALLINT`).
    SmallInteger,
    /// 32-bit float (`REAL`, MySQL `FLOAT`).
    Float,
    /// Bytes (`BYTEA`, MySQL `LONGBLOB`, SQLite `BLOB`).
    Bytes,
    /// A date and time of day without a time zone (`TIMESTAMP`, MySQL `DATETIME(6)`, SQLite
    /// text); microseconds are kept (PostgreSQL and MySQL keep no finer).
    DateTime,
    /// A time of day (`TIME`, MySQL `TIME(6)`, SQLite text).
    Time,
    /// `VARCHAR(n)`; the length comes from `max_length` (255 if not given).
    Varchar,
    /// Unbounded text.
    Text,
    /// Boolean.
    Boolean,
    /// 64-bit float.
    Double,
    /// A UTC timestamp.
    Timestamp,
    /// A calendar date.
    Date,
    /// A UUID.
    Uuid,
    /// A JSON document.
    Json,
    /// An exact decimal, `NUMERIC(p, s)`: precision `p` from `max_digits` (1 to 28) and scale
    /// `s` from `decimal_places` (0 to `p`), both required on the field. PostgreSQL
    /// `NUMERIC(p, s)`, MySQL / MariaDB `DECIMAL(p, s)`; SQLite, which has no exact decimal
    /// type, stores the value's text in a `TEXT` column whose collation
    /// (`tenantry_decimal`, registered on every connection tenantry opens) compares by
    /// numeric value, so filters (`eq`, `gt`, `lt`, `is_in`, …) and `order_by` give the same
    /// answers on every backend. Every value written is checked against `p` and `s` first:
    /// [`Error::ValueOutOfRange`](crate::Error::ValueOutOfRange), never a rounded or clipped
    /// value.
    Decimal,
}

/// A PostgreSQL enum type a `#[derive(Enum)]` type is stored as, declared with
/// `#[model(type_name = "...")]` on the enum.
///
/// On PostgreSQL the type is created in each schema that holds a table using it (every
/// tenant schema has its own, as it has its own tables), before the tables, by `create_all`
/// and tenant schema creation; values are bound as text and cast to the schema's type where
/// they meet the column. MySQL, MariaDB and SQLite store the variant's text in a
/// `VARCHAR` column, as for an enum without `type_name`.
///
/// A PostgreSQL enum orders by its variants' declaration order (`order_by`, `gt`, keyset
/// pages), where text orders by the text: declare the variants in the order you want them
/// sorted, or sort on another column where backends must agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnumType {
    /// The type's name in each schema: lowercase ASCII letters, digits and `_`, starting
    /// with a letter or `_`, at most 63 characters (checked by the derive).
    pub name: &'static str,
    /// The stored text of each variant, in declaration order.
    pub variants: &'static [&'static str],
}

/// A Rust type that can be a model field.
///
/// Implemented for `i16`, `i32`, `i64`, `String`, `bool`, `f32`, `f64`, `Vec<u8>`,
/// `chrono::DateTime<Utc>`, `chrono::NaiveDateTime`, `chrono::NaiveDate`,
/// `chrono::NaiveTime`, `uuid::Uuid`, `serde_json::Value`, [`Json<T>`](crate::Json) for any
/// serde type, [`Decimal`](crate::Decimal)
/// (with `#[model(max_digits = P, decimal_places = S)]`, see [`SqlType::Decimal`]),
/// [`ForeignKey`](crate::ForeignKey), and `Option` of each (a nullable column).
pub trait FieldType: Sized + Send + Sync + 'static {
    /// The storage class.
    const SQL_TYPE: SqlType;
    /// Whether the column accepts NULL.
    const NULLABLE: bool = false;
    /// The PostgreSQL enum type the column has, for a `#[derive(Enum)]` type declared with
    /// `type_name` (and an `Option` of one). A primary key never has one (the derive
    /// refuses it), so neither does a foreign key.
    const ENUM_TYPE: Option<&'static EnumType> = None;
    /// The value bound as a statement parameter.
    fn to_value(&self) -> Value;
    /// A NULL of this type.
    fn null_value() -> Value;
    /// Decodes column `index` of `row`.
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error>;
    /// Decodes column `index` of `row`, `None` for NULL (a nullable column's `Option`).
    /// This default looks the column up twice, for NULL and then for the value; the types
    /// sqlx decodes itself read it once.
    fn decode_nullable(row: &Row, index: usize) -> Result<Option<Self>, sqlx::Error> {
        if row.is_null(index)? {
            Ok(None)
        } else {
            Self::decode(row, index).map(Some)
        }
    }
    /// For auto-increment keys: the value from MySQL's `LAST_INSERT_ID()`.
    fn from_insert_id(_id: u64) -> Option<Self> {
        None
    }
    /// Whether `value` is this value bound ([`to_value`](Self::to_value)`() == value`),
    /// without building the bound value where the type can compare in place.
    fn matches_value(&self, value: &Value) -> bool {
        self.to_value() == *value
    }
    /// This value in the form `backend` compares it in, where that differs from `==`;
    /// `None` where it is the value itself. Keys the server matched and tenantry then
    /// matches again in memory (prefetched children to their parents, `select_related`'s
    /// rows to the foreign keys) are compared in this form, so that none the server relates
    /// is dropped.
    fn compared_form(&self, _backend: Backend) -> Option<Self> {
        None
    }
}

/// `key` in the form `backend` compares it in ([`FieldType::compared_form`]).
pub(crate) fn compared<K: FieldType>(key: K, backend: Backend) -> K {
    match key.compared_form(backend) {
        Some(form) => form,
        None => key,
    }
}

/// Decodes column `index` of `row` with sqlx's own decoder, whichever backend the row came
/// from, `None` for NULL; [`required`] makes the NULL an error.
fn decode_option<T>(row: &Row, index: usize) -> Result<Option<T>, sqlx::Error>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    T: for<'r> sqlx::Decode<'r, sqlx::MySql> + sqlx::Type<sqlx::MySql>,
    T: for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    match row {
        Row::Postgres(r) => r.try_get(index),
        Row::MySql(r) => r.try_get(index),
        Row::Sqlite(r) => r.try_get(index),
    }
}

/// `value` of column `index`, read into a field that is not an `Option`: a NULL is an error.
///
/// sqlx's PostgreSQL and MySQL decoders return that error themselves; its SQLite decoders
/// read NULL as the type's zero (`""`, `0`, `false`), which a save would then write over
/// the NULL. So values are decoded as `Option`s, and `None` is refused here.
fn required<T>(value: Option<T>, index: usize) -> Result<T, sqlx::Error> {
    value.ok_or_else(|| null_in(index))
}

/// The error for a NULL in column `index` read into a field that is not an `Option`.
fn null_in(index: usize) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: Box::new(sqlx::error::UnexpectedNullError),
    }
}

macro_rules! field_type {
    ($ty:ty, $sql:ident, $variant:ident, |$v:ident| $to:expr) => {
        field_type!(@impl $ty, $sql, $variant, |$v| $to, {});
    };
    (@impl $ty:ty, $sql:ident, $variant:ident, |$v:ident| $to:expr, { $($extra:item)* }) => {
        impl FieldType for $ty {
            const SQL_TYPE: SqlType = SqlType::$sql;
            fn to_value(&self) -> Value {
                let $v = self;
                Value::$variant(Some($to))
            }
            fn null_value() -> Value {
                Value::$variant(None)
            }
            fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
                required(decode_option(row, index)?, index)
            }
            fn decode_nullable(row: &Row, index: usize) -> Result<Option<Self>, sqlx::Error> {
                decode_option(row, index)
            }
            $($extra)*
        }
    };
}

/// Auto-increment keys also take MySQL's `LAST_INSERT_ID()`.
macro_rules! integer_field {
    ($ty:ty, $sql:ident, $variant:ident) => {
        field_type!(@impl $ty, $sql, $variant, |v| *v, {
            fn from_insert_id(id: u64) -> Option<Self> {
                <$ty>::try_from(id).ok()
            }
        });
    };
}

impl FieldType for String {
    const SQL_TYPE: SqlType = SqlType::Varchar;
    fn to_value(&self) -> Value {
        Value::String(Some(self.clone()))
    }
    fn null_value() -> Value {
        Value::String(None)
    }
    fn matches_value(&self, value: &Value) -> bool {
        matches!(value, Value::String(Some(s)) if s == self)
    }
    /// MySQL's `utf8mb4_bin`, the collation of tenantry's tables there, pads with spaces:
    /// `'abc ' = 'abc'`, so a foreign key `'abc '` points at the row `'abc'`.
    fn compared_form(&self, backend: Backend) -> Option<Self> {
        (backend == Backend::MySql && self.ends_with(' '))
            .then(|| self.trim_end_matches(' ').to_owned())
    }
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
        required(Self::decode_nullable(row, index)?, index)
    }
    fn decode_nullable(row: &Row, index: usize) -> Result<Option<Self>, sqlx::Error> {
        match row {
            Row::Postgres(r) => r.try_get(index),
            // MySQL flags every column of a `_bin` collation (tenantry's tables use
            // `utf8mb4_bin`) as BINARY, which sqlx's type check takes for VARBINARY and
            // refuses. The bytes are text; `String`'s decoder still checks they are UTF-8.
            Row::MySql(r) => r.try_get_unchecked(index),
            Row::Sqlite(r) => r.try_get(index),
        }
    }
}

field_type!(bool, Boolean, Bool, |v| *v);
field_type!(f64, Double, Double, |v| *v);
field_type!(f32, Float, Float, |v| *v);
field_type!(Vec<u8>, Bytes, Bytes, |v| v.clone());
field_type!(chrono::NaiveDateTime, DateTime, ChronoDateTime, |v| *v);
field_type!(chrono::NaiveTime, Time, ChronoTime, |v| *v);
integer_field!(i16, SmallInteger, SmallInt);
field_type!(DateTime<Utc>, Timestamp, ChronoDateTimeUtc, |v| *v);
field_type!(NaiveDate, Date, ChronoDate, |v| *v);
field_type!(uuid::Uuid, Uuid, Uuid, |v| *v);
integer_field!(i32, Integer, Int);
integer_field!(i64, BigInteger, BigInt);

impl FieldType for serde_json::Value {
    const SQL_TYPE: SqlType = SqlType::Json;
    fn to_value(&self) -> Value {
        Value::Json(Some(Box::new(self.clone())))
    }
    fn null_value() -> Value {
        Value::Json(None)
    }
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
        let json = decode_option::<sqlx::types::Json<serde_json::Value>>(row, index)?;
        required(json, index).map(|json| json.0)
    }
}

/// `NUMERIC(p, s)`; see [`SqlType::Decimal`]. sqlx decodes PostgreSQL's `NUMERIC` and
/// MySQL's `DECIMAL` (sent as text) itself; on SQLite the column holds the value's text,
/// parsed here exactly (text that is not a decimal of at most 28 digits is a decode error,
/// never a rounded value).
impl FieldType for Decimal {
    const SQL_TYPE: SqlType = SqlType::Decimal;
    fn to_value(&self) -> Value {
        Value::Decimal(Some(*self))
    }
    fn null_value() -> Value {
        Value::Decimal(None)
    }
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
        match row {
            Row::Postgres(r) => r.try_get(index),
            Row::MySql(r) => r.try_get(index),
            // Unchecked: a value written by other means may be an INTEGER or a REAL, which
            // SQLite turns into its text; the parse below is the check.
            Row::Sqlite(r) => {
                let text = required(r.try_get_unchecked::<Option<String>, _>(index)?, index)?;
                crate::decimal::parse_stored(&text).map_err(|source| sqlx::Error::ColumnDecode {
                    index: index.to_string(),
                    source,
                })
            }
        }
    }
}

impl<T: FieldType> FieldType for Option<T> {
    const SQL_TYPE: SqlType = T::SQL_TYPE;
    const NULLABLE: bool = true;
    const ENUM_TYPE: Option<&'static EnumType> = T::ENUM_TYPE;
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => T::null_value(),
        }
    }
    fn null_value() -> Value {
        T::null_value()
    }
    fn matches_value(&self, value: &Value) -> bool {
        match self {
            Some(v) => v.matches_value(value),
            None => T::null_value() == *value,
        }
    }
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
        T::decode_nullable(row, index)
    }
}

/// The text of an enum variant in column `index` of `row`, whether the column is text or
/// (on PostgreSQL) an enum type, whose values travel as their text: the derive's decoder.
#[doc(hidden)]
pub fn decode_enum_text(row: &Row, index: usize) -> Result<String, sqlx::Error> {
    match row {
        // sqlx's type check accepts only text types; an enum's binary form is its label.
        Row::Postgres(r) => r.try_get_unchecked(index),
        _ => String::decode(row, index),
    }
}

/// A numeric field type, for `+`, `-` and `*` in an [`Expression`](crate::Expression):
/// `i32`, `i64`, `f64`, [`Decimal`] and their `Option`s.
pub trait Numeric: FieldType {}

/// A field type that `/` keeps exact on every backend: `f64` and `Option<f64>` (integer
/// division truncates on PostgreSQL and SQLite and not on MySQL; a decimal quotient's scale
/// differs by backend).
pub trait Fractional: Numeric {}

impl Numeric for i16 {}
impl Numeric for f32 {}
impl Fractional for f32 {}
impl Fractional for Option<f32> {}
impl Numeric for i32 {}
impl Numeric for i64 {}
impl Numeric for f64 {}
impl Numeric for Decimal {}
impl<T: Numeric> Numeric for Option<T> {}
impl Fractional for f64 {}
impl Fractional for Option<f64> {}

/// Any serde type stored as a JSON document (`JSONB` on PostgreSQL, `JSON` on MySQL, text on
/// SQLite): `settings: Json<Settings>`. Reading a document that is not a `T` is
/// [`Error::Decode`](crate::Error::Decode). A value serde cannot turn into JSON (a map
/// whose keys are not strings) is written as NULL, which a non-`Option` column refuses
/// ([`Error::NotNullViolation`](crate::Error::NotNullViolation)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T> FieldType for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    const SQL_TYPE: SqlType = SqlType::Json;
    fn to_value(&self) -> Value {
        Value::Json(serde_json::to_value(&self.0).ok().map(Box::new))
    }
    fn null_value() -> Value {
        Value::Json(None)
    }
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
        let json = serde_json::Value::decode(row, index)?;
        serde_json::from_value(json)
            .map(Json)
            .map_err(|error| sqlx::Error::ColumnDecode {
                index: index.to_string(),
                source: Box::new(error),
            })
    }
}
