//! The properties the fuzz targets check, shared with the stable randomized test
//! `crates/tenantry/tests/fuzz_inputs.rs` (which includes this file by path).
//!
//! - [`schema_name`]: `SchemaName::parse` never panics; a name it accepts satisfies the
//!   documented rule (lowercase `[a-z_][a-z0-9_]{0,62}`, no `pg_` prefix, not reserved); and
//!   `User::query(..).using(name).to_sql()` renders, on every backend, exactly the statement a
//!   known-good name renders with that name substituted: the identifier appears quoted, once,
//!   and no quote escapes it. On MySQL the identifier is `app$<name>` (the tenant namespace of
//!   URL database `app`), and a name too long for it is refused.
//! - [`lookup_value`]: any text given to `eq`, `ne`, `contains`, `icontains`, `startswith`,
//!   `istartswith`, `endswith`, `iendswith` and `iexact` renders the same SQL as a benign value
//!   (the value is bound, so it cannot reach the SQL text), and a long value never appears in
//!   it.
#![allow(dead_code)]

use std::sync::OnceLock;

use tenantry::{Database, Error, Filter, Registry, SchemaName};

type User = tenantry::__doc::User;

/// The documented reserved names.
pub const RESERVED: &[&str] = &[
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

struct Backends {
    /// PostgreSQL, MySQL, SQLite registries; lazy, so never connected.
    registries: [Registry; 3],
    _runtime: tokio::runtime::Runtime,
}

fn backends() -> &'static Backends {
    static BACKENDS: OnceLock<Backends> = OnceLock::new();
    BACKENDS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let registries = runtime.block_on(async {
            let mut out = Vec::new();
            for url in [
                "postgres://postgres@localhost/app",
                "mysql://root@localhost/app",
                "sqlite::memory:",
            ] {
                let db = Database::connect_lazy(url).await.expect("a lazy database");
                out.push(Registry::new(db).register::<User>());
            }
            out
        });
        Backends {
            registries: registries.try_into().expect("three registries"),
            _runtime: runtime,
        }
    })
}

/// The documented rule, written independently of the library's check.
pub fn follows_rule(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= 63
        && (first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with("pg_")
        && !RESERVED.contains(&name)
}

/// How the MySQL registry (URL database `app`) names a tenant schema's database.
const MYSQL_TENANT_PREFIX: &str = "app$";

/// A name the rule accepts, whose rendering is the template for every other.
const PROBE: &str = "zq_probe_schema";

fn select_sql(registry: &Registry, schema: SchemaName) -> String {
    User::query(registry)
        .using(&schema)
        .to_sql()
        .expect("a SELECT with a valid schema renders")
}

/// See the module docs.
pub fn schema_name(input: &str) {
    match SchemaName::parse(input) {
        Err(error) => {
            assert!(
                !follows_rule(input),
                "{input:?} follows the rule but was refused: {error}"
            );
            assert!(
                matches!(error, Error::InvalidSchemaName { .. }),
                "{error:?}"
            );
            // The message is printable and bounded, whatever the input.
            let message = error.to_string();
            assert!(message.len() < 400, "{message}");
            // A refused name given to `using` is the operation's error, never SQL.
            for registry in &backends().registries {
                let refused = User::query(registry).using(input).to_sql();
                assert!(
                    matches!(refused, Err(Error::InvalidSchemaName { .. })),
                    "{refused:?}"
                );
            }
        }
        Ok(name) => {
            assert!(
                follows_rule(input),
                "{input:?} breaks the rule but was accepted"
            );
            assert_eq!(name.as_str(), input);
            let probe = SchemaName::parse(PROBE).expect("the probe name is valid");
            // MySQL's schemas are the databases `app$<schema>` of the URL database's tenant
            // namespace, and share its 64 characters: `app` + `$` + at most 60.
            let backends = backends().registries.iter().zip([
                ('"', ""),
                ('`', MYSQL_TENANT_PREFIX),
                ('"', ""),
            ]);
            for (registry, (quote, prefix)) in backends {
                if prefix.len() + input.len() > 64 {
                    let refused = User::query(registry).using(&name).to_sql();
                    assert!(
                        matches!(refused, Err(Error::InvalidSchemaName { .. })),
                        "{input:?} does not fit MySQL's namespace: {refused:?}"
                    );
                    continue;
                }
                let template = select_sql(registry, probe.clone());
                let sql = select_sql(registry, name.clone());
                if template.contains(PROBE) {
                    // PostgreSQL and MySQL qualify the table with the schema.
                    let quoted = format!("{quote}{prefix}{PROBE}{quote}");
                    assert_eq!(template.matches(&quoted).count(), 1, "{template}");
                    let input = format!("{prefix}{input}");
                    let expected = template.replace(&quoted, &format!("{quote}{input}{quote}"));
                    assert_eq!(sql, expected, "{input:?}");
                    // Qualifying exactly one table: `"name".` once.
                    assert_eq!(
                        sql.matches(&format!("{quote}{input}{quote}.")).count(),
                        1,
                        "{sql}"
                    );
                } else {
                    // SQLite: a schema is a file, the statement does not name it.
                    assert_eq!(sql, template, "{input:?}");
                }
                assert_eq!(sql.matches(quote).count() % 2, 0, "{sql}");
            }
        }
    }
}

type Lookup = fn(&str) -> Filter;

const LOOKUPS: &[(&str, Lookup)] = &[
    ("eq", |v| User::name().eq(v)),
    ("ne", |v| User::email().ne(v)),
    ("contains", |v| User::name().contains(v)),
    ("icontains", |v| User::email().icontains(v)),
    ("startswith", |v| User::name().startswith(v)),
    ("istartswith", |v| User::name().istartswith(v)),
    ("endswith", |v| User::email().endswith(v)),
    ("iendswith", |v| User::email().iendswith(v)),
    ("iexact", |v| User::name().iexact(v)),
];

/// A value no SQL keyword or identifier contains.
const BENIGN: &str = "benign";

fn lookup_sql(registry: &Registry, lookup: Lookup, value: &str) -> String {
    User::query(registry)
        .filter(lookup(value))
        .exclude(lookup(value))
        .to_sql()
        .expect("a filtered SELECT renders")
}

/// See the module docs. `which` picks the lookups to try (all of them for `None`).
pub fn lookup_value_with(value: &str, which: Option<usize>) {
    let lookups: Vec<&(&str, Lookup)> = match which {
        Some(i) => vec![&LOOKUPS[i % LOOKUPS.len()]],
        None => LOOKUPS.iter().collect(),
    };
    for (name, lookup) in lookups {
        for registry in &backends().registries {
            let template = lookup_sql(registry, *lookup, BENIGN);
            let sql = lookup_sql(registry, *lookup, value);
            assert_eq!(sql, template, "{name}({value:?}) changed the SQL text");
            if value.chars().count() >= 8 && !template.contains(value) {
                assert!(!sql.contains(value), "{name}({value:?}) reached the SQL");
            }
        }
    }
}

/// [`lookup_value_with`] over every lookup.
pub fn lookup_value(value: &str) {
    lookup_value_with(value, None);
}
