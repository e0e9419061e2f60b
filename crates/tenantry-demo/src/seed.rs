//! The seed page's data, created once: a restart finds it and adds nothing.

use tenantry::{
    contrib::{self, Tenant},
    Registry, Result, SchemaName,
};

use crate::models::{Product, User};

/// Creates the tables and, unless present, user `esmerald` with 25 shared products and
/// tenant `edgy` with its own user and 10 products.
pub async fn seed(registry: &Registry) -> Result<()> {
    seed_as(registry, &SchemaName::parse("edgy")?).await
}

/// [`seed`] with another schema for the seed's tenant. On MySQL / MariaDB tenant `edgy` is
/// the server database `<database>$edgy` of the URL database's tenant namespace (see
/// [`Database::tenant_namespace`](tenantry::Database::tenant_namespace)), so demos on
/// different databases of one server each have their own.
pub async fn seed_as(registry: &Registry, tenant: &SchemaName) -> Result<()> {
    registry.create_all().await?;
    if Tenant::find(registry, tenant).await?.is_none() {
        contrib::create_tenant(registry, tenant, tenant.as_str()).await?;
        let owner = User::query(registry)
            .using(tenant)
            .create(User {
                id: 0,
                name: "Edgy schema user".into(),
            })
            .await?;
        let products = (0..10).map(|i| Product {
            id: 0,
            name: format!("Product-{i}"),
            user: Some((&owner).into()),
            price: tenantry::Decimal::ZERO,
            stock: 0,
        });
        Product::query(registry)
            .using(tenant)
            .bulk_create(products)
            .await?;
    }
    let esmerald = User::query(registry)
        .filter(User::name().eq("esmerald"))
        .exists()
        .await?;
    if !esmerald {
        let owner = User::query(registry)
            .create(User {
                id: 0,
                name: "esmerald".into(),
            })
            .await?;
        let products = (0..25).map(|i| Product {
            id: 0,
            name: format!("Product-{i}"),
            user: Some((&owner).into()),
            price: tenantry::Decimal::ZERO,
            stock: 0,
        });
        Product::query(registry).bulk_create(products).await?;
    }
    Ok(())
}
