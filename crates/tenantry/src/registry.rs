//! The registry: the default database, the named extra databases, and the models.

use std::sync::Arc;

use crate::{
    database::Database,
    ddl,
    error::{Error, Result},
    migrate::Migrations,
    model::{Model, ModelMeta},
};

/// The databases and models of an application. Cheap to clone (one reference count).
///
/// ```no_run
/// # use tenantry::{Database, Registry};
/// # async fn demo() -> tenantry::Result<()> {
/// let registry = Registry::new(Database::connect("postgres://postgres@127.0.0.1/app").await?)
///     .extra("alternative", Database::connect("postgres://postgres@127.0.0.1/other").await?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    database: Database,
    extra: Vec<(Arc<str>, Database)>,
    models: Vec<&'static ModelMeta>,
    migrations: Option<Migrations>,
    /// The secret that signs pagination cursors.
    cursor_key: Option<Arc<[u8]>>,
    /// Where tenants that live outside the registry's databases are.
    directory: Option<crate::Directory>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("database", &self.inner.database)
            .field("extra", &self.extra_names().collect::<Vec<_>>())
            .field(
                "models",
                &self.inner.models.iter().map(|m| m.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Registry {
    /// A registry over `database`, with no extra databases and no models yet.
    pub fn new(database: Database) -> Registry {
        Registry {
            inner: Arc::new(Inner {
                database,
                extra: Vec::new(),
                models: Vec::new(),
                migrations: None,
                cursor_key: None,
                directory: None,
            }),
        }
    }

    fn edit(self, change: impl FnOnce(&mut Inner)) -> Registry {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner);
        Registry {
            inner: Arc::new(inner),
        }
    }

    /// Declares the extra database `name` (Edgy's `extra={name: database}`), the target of
    /// [`QuerySet::using_with_db`](crate::QuerySet::using_with_db). A second declaration of
    /// the same name replaces the first.
    pub fn extra(self, name: &str, database: Database) -> Registry {
        self.edit(|inner| {
            inner.extra.retain(|(n, _)| &**n != name);
            inner.extra.push((Arc::from(name), database));
        })
    }

    /// Registers model `M` (for `create_all`, `drop_all` and `create_schema`).
    /// Registering a model twice has no further effect.
    pub fn register<M: Model>(self) -> Registry {
        self.edit(|inner| {
            let junctions = M::META.junctions.iter().map(|junction| junction());
            for meta in std::iter::once(M::META).chain(junctions) {
                if !inner.models.iter().any(|m| **m == *meta) {
                    inner.models.push(meta);
                }
            }
        })
    }

    /// Declares the application's migrations (usually [`migrations!`](crate::migrations)).
    /// From then on a schema built from the current models records them as applied instead
    /// of replaying them: [`create_all`](Self::create_all) stamps the shared schema, and
    /// [`create_schema`](crate::create_schema) with every tenant model (`models: None`, with
    /// tables) and [`create_tenant`](crate::contrib::create_tenant) stamp the new tenant and
    /// write its ledger row.
    pub fn migrations(self, migrations: Migrations) -> Registry {
        self.edit(|inner| inner.migrations = Some(migrations))
    }

    /// Sets the secret that signs the cursors of
    /// [`QuerySet::page_after`](crate::QuerySet::page_after) (HMAC-SHA256): at least 32
    /// bytes, the same on every instance of the application, kept out of the code (an
    /// environment variable). A cursor signed with another key is refused. Without a key (or
    /// with a shorter one) cursor pagination is refused with
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument).
    pub fn cursor_key(self, key: impl AsRef<[u8]>) -> Registry {
        let key: Arc<[u8]> = Arc::from(key.as_ref());
        self.edit(|inner| inner.cursor_key = Some(key))
    }

    /// Declares the tenant [`Directory`](crate::Directory): tenants that live in other
    /// databases or on other servers, routed by it. Register
    /// [`contrib::DirectoryEntry`](crate::contrib::DirectoryEntry) (and the
    /// [`contrib`](crate::contrib) models, for the tenants epoch) so that `create_all` and
    /// `makemigrations` make its table.
    pub fn directory(self, directory: crate::Directory) -> Registry {
        self.edit(|inner| inner.directory = Some(directory))
    }

    /// The tenant directory, if one was declared.
    pub fn tenant_directory(&self) -> Option<&crate::Directory> {
        self.inner.directory.as_ref()
    }

    pub(crate) fn cursor_secret(&self) -> Option<&[u8]> {
        self.inner.cursor_key.as_deref()
    }

    /// The declared migrations, if any.
    pub fn migration_set(&self) -> Option<&Migrations> {
        self.inner.migrations.as_ref()
    }

    /// The default database.
    pub fn database(&self) -> &Database {
        &self.inner.database
    }

    /// The extra database `name`, or [`Error::UnknownDatabase`].
    pub fn extra_database(&self, name: &str) -> Result<&Database> {
        self.inner
            .extra
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, db)| db)
            .ok_or_else(|| Error::UnknownDatabase {
                name: name.to_owned(),
            })
    }

    /// The names of the extra databases, in declaration order.
    pub fn extra_names(&self) -> impl Iterator<Item = &str> {
        self.inner.extra.iter().map(|(n, _)| &**n)
    }

    /// The registered models, in registration order.
    pub fn models(&self) -> &[&'static ModelMeta] {
        &self.inner.models
    }

    /// The tenant-capable (not shared) registered models, tenant-only ones included: what
    /// a tenant schema holds.
    pub fn tenant_models(&self) -> impl Iterator<Item = &'static ModelMeta> + '_ {
        self.inner.models.iter().copied().filter(|m| !m.shared)
    }

    /// The default database and every extra one.
    pub(crate) fn all_databases(&self) -> impl Iterator<Item = &Database> {
        self.databases()
    }

    fn databases(&self) -> impl Iterator<Item = &Database> {
        std::iter::once(&self.inner.database).chain(self.inner.extra.iter().map(|(_, db)| db))
    }

    /// Connects every database (one round trip each). If one fails, all are closed again and
    /// the first error is returned.
    pub async fn connect(&self) -> Result<()> {
        for db in self.databases() {
            if let Err(error) = db.ping().await {
                self.disconnect().await;
                return Err(error);
            }
        }
        Ok(())
    }

    /// Closes every database's pools, the tenant directory's included.
    pub async fn disconnect(&self) {
        for db in self.databases() {
            db.disconnect().await;
        }
        if let Some(directory) = &self.inner.directory {
            directory.disconnect().await;
        }
    }

    /// Creates the tables of every registered model in the default schema of every database
    /// (the default one and each extra), parents before children, except the tenant-only
    /// models (`#[model(tenant)]`), which have tables only in tenant schemas. Existing tables
    /// are kept.
    ///
    /// With [`migrations`](Self::migrations) declared, the default database's shared schema
    /// then records every shared migration as applied (once: a schema that already has a
    /// history, or model tables but no history, is left to
    /// [`Migrator`](crate::migrate::Migrator)) and gets the ledger.
    pub async fn create_all(&self) -> Result<()> {
        let unbuilt = match &self.inner.migrations {
            Some(_) => crate::migrate::is_unbuilt(self.database(), None, self.models()).await?,
            None => false,
        };
        for db in self.databases() {
            let citus = db.deployment().await?.is_citus();
            if citus {
                crate::citus::check_models(self.models())?;
            }
            ddl::create_tables(db, None, self.models()).await?;
            if citus {
                crate::citus::make_reference_tables(db, self.models()).await?;
            }
        }
        if let Some(migrations) = &self.inner.migrations {
            crate::migrate::ensure_ledger(self.database()).await?;
            if unbuilt {
                let shared = crate::target::Target {
                    conn: crate::target::Conn::Database(self.database().clone()),
                    schema: None,
                };
                crate::migrate::stamp(&shared, migrations).await?;
            }
        }
        Ok(())
    }

    /// Drops the tables of every registered model in the default schema of every database,
    /// children before parents (tenant-only models have none there). Missing tables are
    /// ignored.
    pub async fn drop_all(&self) -> Result<()> {
        for db in self.databases() {
            ddl::drop_tables(db, None, self.models()).await?;
        }
        Ok(())
    }
}
