//! The validated schema name: the only way a schema reaches SQL.

use std::{fmt, sync::Arc};

use crate::error::{Error, Result};

/// Names no tenant may take: they belong to the database engines themselves.
const RESERVED: &[&str] = &[
    "public",
    "information_schema",
    "performance_schema",
    "mysql",
    "sys",
    "main",
    "temp",
    "pg_catalog",
    "pg_toast",
    "default",
];

const MAX_LEN: usize = 63;

/// A schema name that is safe to send to any backend.
///
/// Valid names are lowercase ASCII: a letter or `_` first, then letters, digits or `_`,
/// 63 characters at most, without the `pg_` prefix and not one of the engines' reserved names
/// (`public`, `information_schema`, `performance_schema`, `mysql`, `sys`, `main`, `temp`,
/// `pg_catalog`, `pg_toast`, `default`). A name is checked once, when it is built; the check
/// never touches the database.
///
/// Cloning is cheap (a reference count).
///
/// ```
/// use tenantry::SchemaName;
///
/// let name = SchemaName::parse("tenant_001").unwrap();
/// assert_eq!(name.as_str(), "tenant_001");
/// assert!(SchemaName::parse("Robert'); DROP TABLE users;--").is_err());
/// assert!(SchemaName::parse("public").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaName(Arc<str>);

impl SchemaName {
    /// Validates `name`, returning [`Error::InvalidSchemaName`] with the reason if it is not
    /// a valid schema name.
    pub fn parse(name: &str) -> Result<Self> {
        match check(name) {
            Ok(()) => Ok(SchemaName(Arc::from(name))),
            Err(reason) => Err(Error::InvalidSchemaName {
                name: name.escape_debug().take(80).collect(),
                reason,
            }),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check(name: &str) -> std::result::Result<(), &'static str> {
    let bytes = name.as_bytes();
    let first = *bytes.first().ok_or("it is empty")?;
    if bytes.len() > MAX_LEN {
        return Err("it is longer than 63 characters");
    }
    if !(first.is_ascii_lowercase() || first == b'_') {
        return Err("it must start with a lowercase letter or an underscore");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
    {
        return Err("only lowercase ASCII letters, digits and underscores are allowed");
    }
    if name.starts_with("pg_") {
        return Err("the pg_ prefix is reserved by PostgreSQL");
    }
    if RESERVED.contains(&name) {
        return Err("it is a reserved name");
    }
    Ok(())
}

impl TryFrom<&str> for SchemaName {
    type Error = Error;
    fn try_from(name: &str) -> Result<Self> {
        SchemaName::parse(name)
    }
}

impl TryFrom<&String> for SchemaName {
    type Error = Error;
    fn try_from(name: &String) -> Result<Self> {
        SchemaName::parse(name)
    }
}

impl TryFrom<String> for SchemaName {
    type Error = Error;
    fn try_from(name: String) -> Result<Self> {
        SchemaName::parse(&name)
    }
}

impl TryFrom<&SchemaName> for SchemaName {
    type Error = Error;
    fn try_from(name: &SchemaName) -> Result<Self> {
        Ok(name.clone())
    }
}

impl std::str::FromStr for SchemaName {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self> {
        SchemaName::parse(name)
    }
}

impl AsRef<str> for SchemaName {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for SchemaName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SchemaName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        SchemaName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Lets a validated name be a sea-query identifier, so the query builder quotes it.
impl sea_query::Iden for SchemaName {
    fn unquoted(&self) -> &str {
        self.as_str()
    }
}
