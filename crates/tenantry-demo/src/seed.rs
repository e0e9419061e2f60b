//! The seed page's data, created once: a restart finds it and adds nothing.

use tenantry::{create_schema, Registry, Result};

use crate::models::{Product, Tenant, User};

/// Creates the tables and, unless present, user `esmerald` with 25 shared products and
/// tenant `edgy` with its own user and 10 products.
pub async fn seed(registry: &Registry) -> Result<()> {
    registry.create_all().await?;
    if User::query(registry)
        .filter(User::name().eq("esmerald"))
        .exists()
        .await?
    {
        return Ok(());
    }
    let tenant = Tenant::query(registry)
        .create(Tenant {
            id: 0,
            schema_name: "edgy".into(),
            tenant_name: "edgy".into(),
        })
        .await?;
    create_schema(registry, tenant.schema_name.as_str(), None, true, true).await?;
    let edgy = User::query(registry)
        .using(tenant.schema_name.as_str())
        .create(User {
            id: 0,
            name: "Edgy schema user".into(),
        })
        .await?;
    let products = (0..10).map(|i| Product {
        id: 0,
        name: format!("Product-{i}"),
        user: Some((&edgy).into()),
    });
    Product::query(registry)
        .using(tenant.schema_name.as_str())
        .bulk_create(products)
        .await?;
    let esmerald = User::query(registry)
        .create(User {
            id: 0,
            name: "esmerald".into(),
        })
        .await?;
    let products = (0..25).map(|i| Product {
        id: 0,
        name: format!("Product-{i}"),
        user: Some((&esmerald).into()),
    });
    Product::query(registry).bulk_create(products).await?;
    Ok(())
}
