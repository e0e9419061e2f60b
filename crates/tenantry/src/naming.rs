//! How a schema is named on the server, and how tables are qualified with it (DESIGN 4.11).
//!
//! PostgreSQL schemas live inside the database the URL names, and SQLite schemas are files
//! beside the main one: there a tenant schema goes by its own name. On MySQL / MariaDB a
//! schema is a database, shared by every client of the server, so each application keeps
//! its tenants in a **tenant namespace**: tenant schema `s` is the database
//! `<namespace>$<s>`.
//!
//! - The namespace is the `tenant_namespace` URL key or
//!   [`DatabaseOptions::tenant_namespace`], else the name of the database in the URL. It is
//!   1 to 62 characters from `a-z`, `0-9`, `_` and `-`; an invalid explicit one is
//!   [`Error::InvalidUrl`] when the database is built.
//! - `$` never occurs in a [`SchemaName`] nor in a namespace, so the mapping is one to one:
//!   the default database (no `$`), another application's tenants (another namespace) and
//!   any unrelated database of the server can never be addressed as a tenant schema.
//! - MySQL names stop at 64 characters: namespace + 1 + schema name ≤ 64. A longer schema
//!   name is [`Error::InvalidSchemaName`] when a statement resolves it, before any SQL.
//! - A MySQL URL without a database (or with one whose name is not a valid namespace) and
//!   no `tenant_namespace` has no namespace: tenant schemas are refused there with
//!   [`Error::Unsupported`] (no fixed fallback, which two applications would share).
//!
//! The mapping is applied when a statement is rendered; nothing is stored per tenant.

use std::sync::OnceLock;

use sea_query::{DynIden, TableName};

use crate::{
    backend::{Backend, SchemaKind},
    database::{Database, DatabaseOptions},
    error::{Error, Result},
    model::ModelMeta,
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// The longest database name MySQL and MariaDB accept (`NAME_CHAR_LEN`).
pub(crate) const MAX_SERVER_NAME: usize = 64;

/// Between the namespace and the tenant's schema name. Never part of either.
const SEPARATOR: char = '$';

/// The longest namespace: `$` and at least one character of a schema name must follow.
const MAX_NAMESPACE: usize = MAX_SERVER_NAME - 2;

/// The URL key of the namespace.
const URL_KEY: &str = "tenant_namespace";

const NO_DATABASE: &str = "tenant schemas need a tenant namespace, and this MySQL URL names no \
     database; name one in the URL or set tenant_namespace";

const BAD_DATABASE: &str = "tenant schemas need a tenant namespace, and the name of this MySQL \
     URL's database is not one (1 to 62 characters from a-z, 0-9, _ and -); set tenant_namespace";

/// Where a database keeps its tenant schemas.
#[derive(Clone, Debug)]
pub(crate) enum TenantNamespace {
    /// PostgreSQL and SQLite: a tenant schema goes by its own name.
    Own,
    /// MySQL: tenant schema `s` is the database `<namespace>$<s>`.
    Prefixed {
        /// `<namespace>$`.
        prefix: Box<str>,
    },
    /// MySQL without a namespace: tenant schemas are refused, for this reason.
    Missing(&'static str),
}

impl TenantNamespace {
    /// The namespace of a database on `backend` whose URL names `url_database`, with the
    /// `explicit` setting (the URL key or the builder's), which is validated on every backend.
    pub(crate) fn new(
        backend: Backend,
        url_database: Option<&str>,
        explicit: Option<&str>,
    ) -> Result<TenantNamespace> {
        if let Some(namespace) = explicit {
            check_namespace(namespace).map_err(|why| Error::InvalidUrl {
                reason: format!(
                    "{URL_KEY} {:?}: {why}",
                    namespace.escape_debug().take(80).collect::<String>()
                ),
            })?;
        }
        if backend.capabilities().schema_kind != SchemaKind::Database {
            return Ok(TenantNamespace::Own);
        }
        Ok(match explicit.or(url_database) {
            None => TenantNamespace::Missing(NO_DATABASE),
            Some(namespace) if check_namespace(namespace).is_err() => {
                TenantNamespace::Missing(BAD_DATABASE)
            }
            Some(namespace) => {
                let mut prefix = String::with_capacity(namespace.len() + 1);
                prefix.push_str(namespace);
                prefix.push(SEPARATOR);
                TenantNamespace::Prefixed {
                    prefix: prefix.into_boxed_str(),
                }
            }
        })
    }

    /// The namespace, without the separator.
    pub(crate) fn name(&self) -> Option<&str> {
        match self {
            TenantNamespace::Prefixed { prefix } => prefix.strip_suffix(SEPARATOR),
            _ => None,
        }
    }

    /// `<namespace>$`, the start of every tenant database's name.
    pub(crate) fn prefix(&self) -> Result<&str> {
        match self {
            TenantNamespace::Own => Ok(""),
            TenantNamespace::Prefixed { prefix } => Ok(prefix),
            TenantNamespace::Missing(reason) => Err(Error::Unsupported {
                backend: Backend::MySql.name(),
                what: reason,
            }),
        }
    }

    /// Whether tenant schema `schema` can exist here: [`Error::InvalidSchemaName`] when the
    /// namespace leaves too little room for it, [`Error::Unsupported`] without a namespace.
    /// No allocation, no SQL.
    pub(crate) fn check(&self, schema: &SchemaName) -> Result<()> {
        match self {
            TenantNamespace::Own => Ok(()),
            // Both are ASCII: bytes are characters.
            TenantNamespace::Prefixed { prefix }
                if prefix.len() + schema.as_str().len() > MAX_SERVER_NAME =>
            {
                Err(Error::InvalidSchemaName {
                    name: schema.to_string(),
                    reason: too_long(prefix.len().saturating_sub(1)),
                })
            }
            TenantNamespace::Prefixed { .. } => Ok(()),
            TenantNamespace::Missing(_) => self.prefix().map(drop),
        }
    }

    /// The server's name for `schema`, checked.
    pub(crate) fn server_name(&self, schema: &SchemaName) -> Result<String> {
        self.check(schema)?;
        Ok(self.join(schema))
    }

    /// `schema` as an identifier for the query builder, which quotes it. One allocation of
    /// the exact size, as the schema's own name cost before namespaces. Statements are only
    /// rendered for schemas that passed [`check`](Self::check); should one slip through
    /// without a namespace, it renders `$<schema>`, a name no namespace produces (fail
    /// closed, never another application's database).
    pub(crate) fn iden(&self, schema: &SchemaName) -> DynIden {
        DynIden::from(self.join(schema))
    }

    fn join(&self, schema: &SchemaName) -> String {
        let prefix = match self {
            TenantNamespace::Own => "",
            TenantNamespace::Prefixed { prefix } => prefix,
            TenantNamespace::Missing(_) => "$",
        };
        let mut name = String::with_capacity(prefix.len() + schema.as_str().len());
        name.push_str(prefix);
        name.push_str(schema.as_str());
        name
    }

    /// The tenant schema whose server name is `server_name`, if it is one of this namespace:
    /// the name starts with exactly `<namespace>$` (byte for byte: the server's catalog may
    /// compare without case) and the rest is a valid [`SchemaName`].
    pub(crate) fn schema_of(&self, server_name: &str) -> Option<SchemaName> {
        let rest = server_name.strip_prefix(self.prefix().ok()?)?;
        SchemaName::parse(rest).ok()
    }

    /// A `LIKE` pattern (escape character `\`) matching the names that start with the prefix.
    pub(crate) fn like_pattern(&self) -> Result<String> {
        let prefix = self.prefix()?;
        let mut pattern = String::with_capacity(prefix.len() * 2 + 1);
        for ch in prefix.chars() {
            if matches!(ch, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(ch);
        }
        pattern.push('%');
        Ok(pattern)
    }
}

/// A namespace is 1 to 62 characters from `a-z`, `0-9`, `_` and `-`: lowercase, because
/// servers with `lower_case_table_names` fold database names; no `$`, the separator.
fn check_namespace(namespace: &str) -> std::result::Result<(), &'static str> {
    if namespace.is_empty() {
        return Err("it is empty");
    }
    if namespace.len() > MAX_NAMESPACE {
        return Err("it is longer than 62 characters (a `$` and a tenant's name must follow it within MySQL's 64)");
    }
    if !namespace
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err("only lowercase ASCII letters, digits, `_` and `-` are allowed");
    }
    Ok(())
}

/// The reason a schema name does not fit beside a namespace of `namespace_len` characters;
/// the 62 possible texts are made once per process.
fn too_long(namespace_len: usize) -> &'static str {
    static REASONS: OnceLock<Vec<String>> = OnceLock::new();
    let reasons = REASONS.get_or_init(|| {
        (0..=MAX_NAMESPACE)
            .map(|n| {
                format!(
                    "it is too long for this application's tenant namespace on MySQL \
                     (namespace {n} chars + 1 + name ≤ {MAX_SERVER_NAME}: at most {} characters)",
                    MAX_SERVER_NAME - 1 - n
                )
            })
            .collect()
    });
    reasons.get(namespace_len).map_or(
        "it is too long for this application's tenant namespace on MySQL",
        String::as_str,
    )
}

/// The qualified name of `table` in `schema` on `database`: `"schema"."table"` on
/// PostgreSQL, `` `namespace$schema`.`table` `` on MySQL (the URL's database for the default
/// schema), the bare table on SQLite (the schema is the file the statement runs on).
pub(crate) fn table_name(
    database: &Database,
    schema: Option<&SchemaName>,
    table: &'static str,
) -> TableName {
    TableName(namespace(database, schema), table.into())
}

/// How a statement qualifies a name in `schema` on `database` (a table's, a type's): the
/// schema on PostgreSQL, the database on MySQL, nothing on SQLite.
pub(crate) fn namespace(
    database: &Database,
    schema: Option<&SchemaName>,
) -> Option<sea_query::SchemaName> {
    let namespace: Option<DynIden> = match database.backend().capabilities().schema_kind {
        SchemaKind::File => None,
        SchemaKind::Schema | SchemaKind::Database => match schema {
            Some(schema) => Some(database.tenant_namespace_rules().iden(schema)),
            None => database
                .default_namespace()
                .map(|ns| DynIden::from(ns.to_string())),
        },
    };
    namespace.map(|ns| sea_query::SchemaName(None, ns))
}

/// SQLite: the name under which a connection to a tenant's file reaches the main file (the
/// shared schema), attached on the first statement that names it (or before `BEGIN`).
/// Only ever the main file: another tenant's file is never attached.
pub(crate) const SQLITE_SHARED_ALIAS: &str = "tenantry_shared";

/// How a statement names [`SQLITE_SHARED_ALIAS`]: the connection attaches the main file
/// when the statement's text holds this.
pub(crate) const SQLITE_SHARED_QUALIFIER: &str = "\"tenantry_shared\".";

/// The qualified name of model `meta`'s table in `schema` on `database`, as
/// [`table_name`]: the one way a statement over a model's rows names its table. A
/// tenant-only model in the shared schema is [`Error::TenantRequired`](crate::Error::TenantRequired),
/// so no statement (a query, a join, a lookup's or a prefetch's subquery, a raw `{table}`)
/// can name such a table there.
///
/// On SQLite a tenant's table is `"main"."table"`: a connection to a tenant's file may have
/// the shared file attached, and an unqualified name the tenant's file lacks (a tenant
/// behind on a migration) would otherwise resolve to the shared file's table of that name.
pub(crate) fn model_table(
    database: &Database,
    schema: Option<&SchemaName>,
    meta: &'static ModelMeta,
) -> Result<TableName> {
    meta.check_schema(schema)?;
    if schema.is_none() && database.is_directory_database() {
        return Err(shared_from_directory(database));
    }
    if schema.is_some() && database.backend() == Backend::Sqlite {
        return Ok(TableName(
            Some(sea_query::SchemaName(None, SQLITE_OWN_FILE.into())),
            meta.table.into(),
        ));
    }
    Ok(table_name(database, schema, meta.table))
}

/// A shared model's table named on a [`Directory`](crate::Directory) database, which holds
/// no shared schema: from a directory tenant, shared rows are in the default database.
fn shared_from_directory(database: &Database) -> Error {
    Error::Unsupported {
        backend: database.backend().name(),
        what: "a shared model reached through a directory tenant's database (a join, a subquery, select_related or a fetch): shared rows are in the default database; query them there",
    }
}

/// SQLite: how a connection names its own file, whatever else is attached to it.
const SQLITE_OWN_FILE: &str = "main";

impl Target {
    /// `meta`'s table, for rows that live in `schema`, as a statement run at this target names
    /// it. On SQLite a statement runs in one file: from a tenant's file the shared schema is
    /// the attached main file ([`SQLITE_SHARED_ALIAS`]); a tenant's table named from another
    /// file is [`Error::Unsupported`].
    pub(crate) fn table_in(
        &self,
        meta: &'static ModelMeta,
        schema: Option<&SchemaName>,
    ) -> Result<TableName> {
        if schema.is_none() && self.database().is_directory_database() {
            return Err(shared_from_directory(self.database()));
        }
        if schema == self.schema.as_ref() || self.backend() != Backend::Sqlite {
            return model_table(self.database(), schema, meta);
        }
        meta.check_schema(schema)?;
        if schema.is_none() {
            return Ok(TableName(
                Some(sea_query::SchemaName(None, SQLITE_SHARED_ALIAS.into())),
                meta.table.into(),
            ));
        }
        Err(Error::Unsupported {
            backend: self.backend().name(),
            what: "a statement over two tenants' files, or over a tenant's file from the shared one (SQLite attaches only the shared file to a tenant's)",
        })
    }

    /// A target whose schema was chosen by a query: checked against the database's tenant
    /// namespace (on MySQL a name too long for it is [`Error::InvalidSchemaName`]) before
    /// any statement is rendered.
    pub(crate) fn resolved(conn: Conn, schema: Option<SchemaName>) -> Result<Target> {
        let target = Target { conn, schema };
        if let Some(schema) = &target.schema {
            target.database().tenant_namespace_rules().check(schema)?;
        }
        Ok(target)
    }
}

impl Database {
    /// The tenant namespace on MySQL / MariaDB: the `tenant_namespace` URL key or
    /// [`DatabaseOptions::tenant_namespace`], else the URL's database name. Tenant schema
    /// `s` is the server database `<namespace>$<s>`, and names share MySQL's 64 characters:
    /// namespace + 1 + schema name ≤ 64. `None` on PostgreSQL and SQLite (a schema lives in
    /// the database, or beside its file, already) and on a MySQL database without a
    /// namespace (no database in the URL), where tenant schemas are [`Error::Unsupported`].
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use tenantry::{Database, SchemaName};
    ///
    /// let db = Database::connect_lazy("mysql://root@127.0.0.1/shop").await.unwrap();
    /// assert_eq!(db.tenant_namespace(), Some("shop"));
    /// let edgy = SchemaName::parse("edgy").unwrap();
    /// assert_eq!(db.server_schema_name(&edgy).unwrap(), "shop$edgy");
    ///
    /// let db = Database::options("mysql://root@127.0.0.1/shop?tenant_namespace=shop-eu")
    ///     .connect_lazy()
    ///     .await
    ///     .unwrap();
    /// assert_eq!(db.server_schema_name(&edgy).unwrap(), "shop-eu$edgy");
    ///
    /// // 7 + 1 + 56 = 64 fits; one more character does not.
    /// assert!(db.server_schema_name(&SchemaName::parse(&"a".repeat(56)).unwrap()).is_ok());
    /// assert!(matches!(
    ///     db.server_schema_name(&SchemaName::parse(&"a".repeat(57)).unwrap()),
    ///     Err(tenantry::Error::InvalidSchemaName { .. })
    /// ));
    /// # });
    /// ```
    pub fn tenant_namespace(&self) -> Option<&str> {
        self.tenant_namespace_rules().name()
    }

    /// The name the server knows tenant schema `schema` by: `<namespace>$<schema>` on MySQL
    /// (see [`tenant_namespace`](Self::tenant_namespace)), the schema's own name on
    /// PostgreSQL and SQLite (where it is the file `<main>.<schema>.sqlite`). For SQL written
    /// by hand beside tenantry's. [`Error::InvalidSchemaName`] when it does not fit MySQL's
    /// 64 characters, [`Error::Unsupported`] on MySQL without a namespace.
    pub fn server_schema_name(&self, schema: &SchemaName) -> Result<String> {
        self.tenant_namespace_rules().server_name(schema)
    }

    /// [`Error::InvalidSchemaName`] / [`Error::Unsupported`] when `schema` cannot be a tenant
    /// schema of this database (see [`server_schema_name`](Self::server_schema_name)).
    pub(crate) fn check_schema(&self, schema: &SchemaName) -> Result<()> {
        self.tenant_namespace_rules().check(schema)
    }
}

impl DatabaseOptions {
    /// Takes the `tenant_namespace` key out of the URL (so that the driver never sees it) and
    /// returns the namespace setting: the builder's if set, else the URL's.
    pub(crate) fn take_tenant_namespace(mut self) -> (Self, Option<String>) {
        let from_url = match self.url.split_once('?') {
            Some((base, query)) if query_has_key(query) => {
                let mut kept = url::form_urlencoded::Serializer::new(String::new());
                let mut any_kept = false;
                let mut value = None;
                for (key, v) in url::form_urlencoded::parse(query.as_bytes()) {
                    if key == URL_KEY {
                        value = Some(v.into_owned());
                    } else {
                        kept.append_pair(&key, &v);
                        any_kept = true;
                    }
                }
                let mut url = base.to_owned();
                if any_kept {
                    url.push('?');
                    url.push_str(&kept.finish());
                }
                self.url = url;
                value
            }
            _ => None,
        };
        let namespace = self.tenant_namespace.take().or(from_url);
        (self, namespace)
    }
}

fn query_has_key(query: &str) -> bool {
    url::form_urlencoded::parse(query.as_bytes()).any(|(key, _)| key == URL_KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mysql(url_database: Option<&str>, explicit: Option<&str>) -> Result<TenantNamespace> {
        TenantNamespace::new(Backend::MySql, url_database, explicit)
    }

    fn name(s: &str) -> SchemaName {
        SchemaName::parse(s).unwrap()
    }

    #[test]
    fn mysql_tenants_live_under_the_namespace() {
        let ns = mysql(Some("app"), None).unwrap();
        assert_eq!(ns.name(), Some("app"));
        assert_eq!(ns.server_name(&name("edgy")).unwrap(), "app$edgy");
        assert_eq!(ns.schema_of("app$edgy"), Some(name("edgy")));
        // Not this namespace's: the default database, other namespaces, look-alikes.
        for other in [
            "app",
            "edgy",
            "apps$edgy",
            "ap$edgy",
            "APP$edgy",
            "app$",
            "app$Edgy",
        ] {
            assert_eq!(ns.schema_of(other), None, "{other}");
        }
        // A deeper name is not a schema (a schema has no `$`).
        assert_eq!(ns.schema_of("app$a$b"), None);
        let explicit = mysql(Some("app"), Some("shop-eu")).unwrap();
        assert_eq!(explicit.server_name(&name("edgy")).unwrap(), "shop-eu$edgy");
    }

    #[test]
    fn the_64_character_limit() {
        let ns = mysql(Some(&"n".repeat(10)), None).unwrap();
        // 10 + 1 + 53 = 64.
        assert_eq!(ns.server_name(&name(&"a".repeat(53))).unwrap().len(), 64);
        match ns.server_name(&name(&"a".repeat(54))) {
            Err(Error::InvalidSchemaName { reason, .. }) => {
                assert!(
                    reason.contains("namespace 10 chars + 1 + name ≤ 64"),
                    "{reason}"
                );
                assert!(reason.contains("at most 53 characters"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // The longest namespace leaves one character.
        let ns = mysql(Some(&"n".repeat(62)), None).unwrap();
        ns.check(&name("a")).unwrap();
        assert!(ns.check(&name("ab")).is_err());
        // PostgreSQL and SQLite: a schema name's own limit only.
        for backend in [Backend::Postgres, Backend::Sqlite] {
            let own = TenantNamespace::new(backend, Some("app"), None).unwrap();
            assert_eq!(
                own.server_name(&name(&"a".repeat(63))).unwrap(),
                "a".repeat(63)
            );
            assert_eq!(own.name(), None);
        }
    }

    #[test]
    fn namespaces_are_validated() {
        for bad in [
            "",
            "App",
            "a$b",
            "a b",
            "a`b",
            "a.b",
            "a/b",
            "a%",
            "é",
            &"n".repeat(63),
        ] {
            assert!(
                matches!(mysql(Some("app"), Some(bad)), Err(Error::InvalidUrl { .. })),
                "{bad:?}"
            );
            // Validated on every backend, so a typo is caught before moving to MySQL.
            assert!(TenantNamespace::new(Backend::Postgres, None, Some(bad)).is_err());
            // From the URL's database: no namespace, tenant schemas refused.
            let ns = mysql(Some(bad), None).unwrap();
            assert!(matches!(
                ns.check(&name("a")),
                Err(Error::Unsupported { .. })
            ));
        }
        for good in ["a", "0", "my-app", "tenantry_test", &"n".repeat(62)] {
            mysql(None, Some(good)).unwrap();
        }
        let none = mysql(None, None).unwrap();
        assert_eq!(none.name(), None);
        assert!(matches!(
            none.server_name(&name("edgy")),
            Err(Error::Unsupported { what, .. }) if what.contains("names no database")
        ));
        // A statement that slipped past the check renders no real namespace's name.
        assert_eq!(none.iden(&name("edgy")).to_string(), "$edgy");
    }

    #[test]
    fn like_pattern_escapes_wildcards() {
        let ns = mysql(Some("my_app"), None).unwrap();
        assert_eq!(ns.like_pattern().unwrap(), "my\\_app$%");
    }

    #[test]
    fn url_key_is_taken_out_of_the_url() {
        let (options, namespace) =
            Database::options("mysql://h/db?max_connections=2&tenant_namespace=x")
                .take_tenant_namespace();
        assert_eq!(namespace.as_deref(), Some("x"));
        assert_eq!(options.url, "mysql://h/db?max_connections=2");
        let (options, namespace) = Database::options("mysql://h/db?tenant_namespace=x")
            .tenant_namespace("y")
            .take_tenant_namespace();
        assert_eq!(namespace.as_deref(), Some("y"));
        assert_eq!(options.url, "mysql://h/db");
        // A URL without the key is left exactly as it was.
        let (options, namespace) =
            Database::options("mysql://h/db?ssl-mode=DISABLED&x=a%20b").take_tenant_namespace();
        assert_eq!(namespace, None);
        assert_eq!(options.url, "mysql://h/db?ssl-mode=DISABLED&x=a%20b");
    }
}
