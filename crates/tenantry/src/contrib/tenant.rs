//! The built-in `Tenant` model.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{
    error::Result, instance::Instance, query::QuerySource, registry::Registry,
    schema_name::SchemaName, BoxFuture, Model, TenantInfo, TenantStore,
};

/// A tenant: the schema its data lives in. A shared model (table `tenants`): it lives only in
/// the shared schema, whatever the task's tenant.
///
/// Create and drop tenants with [`create_tenant`](super::create_tenant) and
/// [`drop_tenant`](super::drop_tenant), which keep the row and the schema in step; inserting
/// a row by hand creates no schema.
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[model(shared, table = "tenants")]
pub struct Tenant {
    /// The primary key.
    pub id: i64,
    /// The tenant's schema: a valid [`SchemaName`], unique.
    #[model(max_length = 63, unique)]
    pub schema_name: String,
    /// A display name, unique.
    #[model(max_length = 100, unique)]
    pub tenant_name: String,
    /// When the tenant was created.
    pub created_at: DateTime<Utc>,
    /// For database-per-tenant: the registry's extra database that holds the tenant's
    /// schema; `None` is the registry's default database.
    #[model(max_length = 100)]
    pub database: Option<String>,
    /// A suspended tenant keeps its row and data but is refused service (`tenantry-axum`
    /// answers its requests with 403). Change it with
    /// [`suspend_tenant`](super::suspend_tenant) / [`resume_tenant`](super::resume_tenant).
    #[model(default = false)]
    pub suspended: bool,
}

impl Tenant {
    /// The tenant's schema, validated. A row written by hand with an invalid name is
    /// [`Error::InvalidSchemaName`](crate::Error::InvalidSchemaName).
    pub fn schema(&self) -> Result<SchemaName> {
        SchemaName::parse(&self.schema_name)
    }

    /// The tenant whose schema is `schema`, if there is one.
    pub async fn find(
        source: &impl QuerySource,
        schema: &SchemaName,
    ) -> Result<Option<Instance<Tenant>>> {
        Tenant::query(source)
            .filter(Tenant::schema_name().eq(schema.as_str()))
            .first()
            .await
    }
}

/// The [`TenantStore`] over the [`Tenant`] table of a registry, with the
/// [tenants epoch](super::TenantEpoch): what `tenantry-axum`'s `TenantCache::new` uses.
#[derive(Clone, Debug)]
pub struct TenantTable {
    registry: Registry,
}

impl TenantTable {
    /// The store over `registry`'s `tenants` table.
    pub fn new(registry: Registry) -> Self {
        TenantTable { registry }
    }
}

impl Tenant {
    /// What [`TenantStore`] reports of this row; `None` for a row whose schema name is not
    /// valid (written by hand): it names no schema a query could reach.
    pub fn info(&self) -> Option<TenantInfo> {
        Some(TenantInfo {
            schema: self.schema().ok()?,
            suspended: self.suspended,
            domains: Vec::new(),
            database: self.database.clone(),
        })
    }
}

impl TenantStore for TenantTable {
    fn find<'a>(&'a self, schema: &'a SchemaName) -> BoxFuture<'a, Result<Option<TenantInfo>>> {
        Box::pin(async move {
            let row = Tenant::find(&self.registry, schema).await?;
            Ok(row.and_then(|tenant| tenant.info()))
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<TenantInfo>>> {
        Box::pin(async move {
            let rows = Tenant::query(&self.registry)
                .order_by([Tenant::schema_name().asc()])
                .all()
                .await?;
            Ok(rows.iter().filter_map(|tenant| tenant.info()).collect())
        })
    }

    fn epoch(&self) -> BoxFuture<'_, Result<Option<u128>>> {
        Box::pin(async move { Ok(Some(super::epoch(&self.registry).await?.as_u128())) })
    }
}
