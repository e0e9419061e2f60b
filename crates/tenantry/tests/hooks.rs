//! Lifecycle hooks inside the tenant: pre/post save and delete run in the write's
//! transaction and the instance's tenant (two tenants at once in one task, pools of 1 and
//! 2); a failing hook rolls the write and the hooks' own writes back, leaves the instance as
//! it was, and inside a caller's transaction undoes only this write; on every backend.
mod common;

use tenantry::{
    create_schema, with_tenant, Error, HookContext, Hooks, Instance, Model, Registry, SchemaName,
};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "hk_articles", hooks)]
struct Article {
    id: i64,
    #[model(max_length = 80, unique)]
    title: String,
    #[model(max_length = 120)]
    slug: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "hk_audit")]
struct Audit {
    id: i64,
    #[model(max_length = 160)]
    what: String,
}

impl Hooks for Article {
    async fn pre_save(&mut self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        if self.title == "forbidden" {
            return Err(Error::InvalidArgument {
                argument: "title",
                reason: "forbidden",
            });
        }
        let tenant = hook.schema().map_or("default", |s| s.as_str());
        self.slug = format!("{tenant}/{}", self.title);
        Ok(())
    }

    async fn post_save(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        audit(hook, format!("saved {}", self.slug)).await?;
        if self.title == "fail-after" {
            return Err(Error::InvalidArgument {
                argument: "title",
                reason: "fails after the write",
            });
        }
        Ok(())
    }

    async fn pre_delete(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        if self.title == "keep" {
            return Err(Error::InvalidArgument {
                argument: "title",
                reason: "kept",
            });
        }
        audit(hook, format!("deleting {}", self.slug)).await
    }

    async fn post_delete(&self, hook: &HookContext<Self>) -> tenantry::Result<()> {
        // The row is gone inside the write's transaction.
        let left = hook
            .query::<Article>()
            .filter(Article::id().eq(self.id))
            .count()
            .await?;
        audit(hook, format!("deleted {} ({left} left)", self.slug)).await
    }
}

async fn audit(hook: &HookContext<Article>, what: String) -> tenantry::Result<()> {
    hook.query::<Audit>()
        .create(Audit { id: 0, what })
        .await
        .map(|_| ())
}

fn article(title: &str) -> Article {
    Article {
        id: 0,
        title: title.into(),
        slug: String::new(),
    }
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(
        registry,
        name,
        Some(&[Article::META, Audit::META]),
        false,
        true,
    )
    .await
    .unwrap();
}

async fn audits(registry: &Registry, tenant: &SchemaName) -> Vec<String> {
    Audit::query(registry)
        .using(tenant)
        .order_by([Audit::id().asc()])
        .values_list(Audit::what())
        .await
        .unwrap()
}

/// Creates, updates and deletes an article in the task's tenant.
async fn lifecycle(registry: Registry) -> tenantry::Result<()> {
    let mut first = Article::query(&registry).create(article("first")).await?;
    tokio::task::yield_now().await;
    first.title = "renamed".into();
    first.save().await?;
    let second = Article::query(&registry).create(article("second")).await?;
    second.delete().await?;
    Ok(())
}

async fn hooks_in_each_tenant(t: common::TestDb) {
    let (a, b) = (t.schema("ha"), t.schema("hb"));
    tenant(&t.registry, &a).await;
    tenant(&t.registry, &b).await;
    let (in_a, in_b) = tokio::join!(
        with_tenant(Some(a.clone()), lifecycle(t.registry.clone())),
        with_tenant(Some(b.clone()), lifecycle(t.registry.clone())),
    );
    in_a.unwrap();
    in_b.unwrap();
    for tenant in [&a, &b] {
        assert_eq!(
            audits(&t.registry, tenant).await,
            vec![
                format!("saved {tenant}/first"),
                format!("saved {tenant}/renamed"),
                format!("saved {tenant}/second"),
                format!("deleting {tenant}/second"),
                format!("deleted {tenant}/second (0 left)"),
            ]
        );
        let slugs = Article::query(&t.registry)
            .using(tenant)
            .values_list(Article::slug())
            .await
            .unwrap();
        assert_eq!(slugs, vec![format!("{tenant}/renamed")]);
    }
}

backend_pool_test!(
    hooks_run_in_the_write_s_tenant_and_transaction,
    hooks_in_each_tenant
);
backend_test!(
    hooks_run_in_the_write_s_tenant_on_the_default_pool,
    hooks_in_each_tenant
);

backend_test!(
    a_failing_hook_rolls_the_write_back,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ha"), t.schema("hb"));
        tenant(&t.registry, &a).await;
        tenant(&t.registry, &b).await;
        let articles = || Article::query(&t.registry).using(&a);
        // pre_save refuses: nothing is sent.
        let refused = articles().create(article("forbidden")).await;
        assert!(
            matches!(refused, Err(Error::InvalidArgument { .. })),
            "{refused:?}"
        );
        // post_save fails after the INSERT and its own audit row: both undone, and the
        // instance is unsaved again, its key as it was.
        let mut late = articles().instance(article("fail-after")).unwrap();
        let failed = late.save().await;
        assert!(
            matches!(failed, Err(Error::InvalidArgument { .. })),
            "{failed:?}"
        );
        assert!(!late.is_stored());
        assert_eq!(late.id, 0);
        assert_eq!(articles().count().await.unwrap(), 0);
        assert!(audits(&t.registry, &a).await.is_empty());
        late.title = "fixed".into();
        late.save().await.unwrap();
        assert!(late.is_stored() && late.id > 0);
        // An update whose post_save fails leaves the stored row as it was.
        late.title = "fail-after".into();
        assert!(late.save().await.is_err());
        let stored = articles().get_pk(late.id).await.unwrap();
        assert_eq!(stored.title, "fixed");
        // pre_delete refuses: the row stays.
        let kept = articles().create(article("keep")).await.unwrap();
        let id = kept.id;
        assert!(kept.delete().await.is_err());
        assert!(articles()
            .filter(Article::id().eq(id))
            .exists()
            .await
            .unwrap());
        // Tenant b saw none of it.
        assert!(audits(&t.registry, &b).await.is_empty());
        assert_eq!(
            audits(&t.registry, &a).await,
            vec![format!("saved {a}/fixed"), format!("saved {a}/keep")]
        );
    }
);

backend_test!(
    inside_a_transaction_a_failing_hook_undoes_only_its_write,
    |t: common::TestDb| async move {
        let a = t.schema("ha");
        tenant(&t.registry, &a).await;
        let tx = t.registry.begin_in(&a).await.unwrap();
        let kept = Article::query(&tx)
            .using(&a)
            .create(article("kept"))
            .await
            .unwrap();
        let failed = Article::query(&tx)
            .using(&a)
            .create(article("fail-after"))
            .await;
        assert!(failed.is_err());
        // The transaction goes on and commits the first write and its audit only.
        Audit::query(&tx)
            .using(&a)
            .create(Audit {
                id: 0,
                what: "after".into(),
            })
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let titles = Article::query(&t.registry)
            .using(&a)
            .values_list(Article::title())
            .await
            .unwrap();
        assert_eq!(titles, vec!["kept".to_owned()]);
        assert_eq!(kept.slug, format!("{a}/kept"));
        assert_eq!(
            audits(&t.registry, &a).await,
            vec![format!("saved {a}/kept"), "after".to_owned()]
        );
    }
);

backend_test!(
    get_or_create_and_update_or_create_run_the_hooks,
    |t: common::TestDb| async move {
        let a = t.schema("ha");
        tenant(&t.registry, &a).await;
        let articles = || Article::query(&t.registry).using(&a);
        let (made, created) = articles()
            .get_or_create(Article::title().eq("one"), article("one"))
            .await
            .unwrap();
        assert!(created);
        assert_eq!(made.slug, format!("{a}/one"));
        let (updated, created): (Instance<Article>, bool) = articles()
            .update_or_create(Article::title().eq("one"), article("one"))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(updated.id, made.id);
        assert_eq!(
            audits(&t.registry, &a).await,
            vec![format!("saved {a}/one"), format!("saved {a}/one")]
        );
        // Bulk operations run no hooks.
        articles().bulk_create([article("bulk")]).await.unwrap();
        assert_eq!(audits(&t.registry, &a).await.len(), 2);
    }
);
