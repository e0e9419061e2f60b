//! Attacks on generated many-to-many junctions (`#[model(many_to_many(..))]`), the shared
//! `Origin` and the upsert repeat check (review2). A test that fails demonstrates a defect;
//! it asserts the correct behaviour.
//!
//! Found at compile time (not testable here, checked with a scratch file): a generated
//! junction whose unique key name passes 63 characters (`OrganizationMember` ↔
//! `PermissionGroup`) is refused with advice (`name = "..."`) that `many_to_many` cannot
//! take; `to = Self` and a model named like a keyword (`Type`) make the derive write a field
//! named `self` / `type` (unparsable tokens); a relation named `query` collides with the
//! model's `query()`; a default or shared model related to a tenant-only one is refused by
//! the junction's own foreign-key check, whose message says to mark the (generated) junction
//! `#[model(tenant)]`.
mod common;

use std::str::FromStr;

use tenantry::{create_schema, with_tenant, Decimal, Error, Instance, Model, Registry, SchemaName};

// ---------------------------------------------------------------------------------------
// A shared model related to a tenant-capable one: the junction is generated shared.

#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared, table = "aj_plans", many_to_many(features, to = Feature))]
struct Plan {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aj_features")]
struct Feature {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

// A default or shared model related to a tenant-only one (`to = Secret`, `#[model(tenant)]`)
// is refused at compile time by the junction's own foreign-key check (held).

// Two plain tenant models, for the create_schema subset and the table collision.

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aj_posts", many_to_many(tags, to = Tag))]
struct Post {
    id: i64,
    #[model(max_length = 40)]
    title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aj_tags")]
struct Tag {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

/// A hand-written model whose table is the one `Post::tags`'s junction is given by default
/// (`<table>_<name>`): an application moving its old junction to the generated one.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aj_posts_tags")]
struct LegacyPostTag {
    id: i64,
    post_id: i64,
    #[model(max_length = 40)]
    tag_name: String,
}

async fn tenant(registry: &Registry, name: &SchemaName) {
    create_schema(registry, name, None, false, true)
        .await
        .unwrap();
}

fn names(rows: Vec<Instance<Feature>>) -> Vec<String> {
    let mut names: Vec<String> = rows.into_iter().map(|f| f.name.clone()).collect();
    names.sort();
    names
}

// Tenant `a` relates the shared plan `pro` to its feature `a-only` (key 1). Tenant `b`,
// which never linked anything, must not see its own feature with key 1 (`b-only`) as
// related to `pro`: the generated junction is shared, so `a`'s link is every tenant's.
backend_pool_test!(
    a_shared_models_junction_leaks_one_tenants_links_to_another,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().register::<Feature>().register::<Plan>();
        r.create_all().await.unwrap();
        let (a, b) = (t.schema("pa"), t.schema("pb"));
        tenant(r, &a).await;
        tenant(r, &b).await;
        let plan = Plan::query(r)
            .create(Plan {
                id: 0,
                name: "pro".into(),
            })
            .await
            .unwrap();
        // The default schema's own feature (a tenant-capable model lives there too).
        Feature::query(r)
            .create(Feature {
                id: 0,
                name: "default-one".into(),
            })
            .await
            .unwrap();
        let make = |name: &'static str| async move {
            Feature::query(r)
                .create(Feature {
                    id: 0,
                    name: name.into(),
                })
                .await
                .unwrap()
        };
        let (fa, fb) = tokio::join!(
            with_tenant(Some(a.clone()), make("a-only")),
            with_tenant(Some(b.clone()), make("b-only")),
        );
        assert_eq!(fa.id, fb.id, "both tenants' features have key 1");
        let added = with_tenant(Some(a.clone()), async {
            Plan::features().of(&plan).add(&[&fa]).await
        })
        .await;
        if let Err(error) = &added {
            // Refusing the relation up front is acceptable; linking it shared is not.
            assert!(
                matches!(
                    error,
                    Error::InvalidRelation { .. } | Error::Unsupported { .. }
                ),
                "{error:?}"
            );
            return;
        }
        let read = |tenant: SchemaName| {
            let plan = plan.clone();
            with_tenant(Some(tenant), async move {
                names(Plan::features().of(&plan).all().all().await.unwrap())
            })
        };
        let (in_a, in_b) = tokio::join!(read(a.clone()), read(b.clone()));
        assert_eq!(in_a, vec!["a-only".to_owned()]);
        assert_eq!(
            in_b,
            Vec::<String>::new(),
            "tenant b sees tenant a's link (to b's own row with a's key)"
        );
    }
);

// `create_schema(Some(&[Tag, Post]))`: the model is listed, its junction (registered with
// it, never named by the application) is not built, and the relation fails afterwards.
backend_test!(
    create_schema_with_a_models_list_leaves_its_junction_out,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().register::<Tag>().register::<Post>();
        let a = t.schema("sub");
        create_schema(r, &a, Some(&[Tag::META, Post::META]), false, true)
            .await
            .unwrap();
        let post = Post::query(r)
            .using(&a)
            .create(Post {
                id: 0,
                title: "p".into(),
            })
            .await
            .unwrap();
        let tag = Tag::query(r)
            .using(&a)
            .create(Tag {
                id: 0,
                name: "t".into(),
            })
            .await
            .unwrap();
        let added = Post::tags().of(&post).add(&[&tag]).await;
        assert!(added.is_ok(), "the junction was not built: {added:?}");
    }
);

// The generated junction's default table `aj_posts_tags` is already another registered
// model's table: building the tenant must refuse the pair instead of skipping the second
// `CREATE TABLE IF NOT EXISTS` and leaving one of the two models on the other's columns.
backend_test!(
    a_generated_junction_table_named_like_another_models_is_refused,
    |t: common::TestDb| async move {
        // Both registration orders: the hand-written model first, then the junction first.
        let orders = [
            t.registry
                .clone()
                .register::<Tag>()
                .register::<LegacyPostTag>()
                .register::<Post>(),
            t.registry
                .clone()
                .register::<Tag>()
                .register::<Post>()
                .register::<LegacyPostTag>(),
        ];
        let mut accepted = Vec::new();
        for (i, r) in orders.iter().enumerate() {
            let a = t.schema(&format!("clash{i}"));
            let built = create_schema(r, &a, None, false, true).await;
            if built.is_err() {
                continue;
            }
            // Both were "built": both must work.
            let post = Post::query(r)
                .using(&a)
                .create(Post {
                    id: 0,
                    title: "p".into(),
                })
                .await
                .unwrap();
            let tag = Tag::query(r)
                .using(&a)
                .create(Tag {
                    id: 0,
                    name: "t".into(),
                })
                .await
                .unwrap();
            let linked = Post::tags().of(&post).add(&[&tag]).await.map(|_| ());
            let legacy = LegacyPostTag::query(r)
                .using(&a)
                .create(LegacyPostTag {
                    id: 0,
                    post_id: post.id,
                    tag_name: "t".into(),
                })
                .await
                .map(|_| ());
            accepted.push(format!("order {i}: link {linked:?}, legacy {legacy:?}"));
        }
        assert!(
            accepted.is_empty(),
            "two models on table aj_posts_tags were both accepted:\n{}",
            accepted.join("\n")
        );
    }
);

// A junction linking two tenants' rows is refused, with two tenants in one task on pools
// of 1 and 2 (expected to hold).
backend_pool_test!(
    a_generated_junction_refuses_another_tenants_row,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().register::<Tag>().register::<Post>();
        let (a, b) = (t.schema("xa"), t.schema("xb"));
        tenant(r, &a).await;
        tenant(r, &b).await;
        let make = |prefix: &'static str| async move {
            let post = Post::query(r)
                .create(Post {
                    id: 0,
                    title: format!("{prefix}-p"),
                })
                .await
                .unwrap();
            let tag = Tag::query(r)
                .create(Tag {
                    id: 0,
                    name: format!("{prefix}-t"),
                })
                .await
                .unwrap();
            (post, tag)
        };
        let ((pa, ta), (pb, tb)) = tokio::join!(
            with_tenant(Some(a.clone()), make("a")),
            with_tenant(Some(b.clone()), make("b")),
        );
        // Inside b's scope, a's post with b's tag (same keys): refused.
        let rel = Post::tags().of(&pa);
        let crossed = with_tenant(Some(b.clone()), rel.add(&[&tb])).await;
        assert!(
            matches!(crossed, Err(Error::InvalidRelation { .. })),
            "{crossed:?}"
        );
        // Each owner's links go to its own tenant, whatever the scope says.
        let (rel_a, rel_b) = (Post::tags().of(&pa), Post::tags().of(&pb));
        let (ta_ref, tb_ref) = ([&ta], [&tb]);
        let (la, lb) = tokio::join!(
            with_tenant(Some(b.clone()), rel_a.add(&ta_ref)),
            with_tenant(Some(a.clone()), rel_b.add(&tb_ref)),
        );
        la.unwrap();
        lb.unwrap();
        for (tenant, tag) in [(&a, "a-t"), (&b, "b-t")] {
            assert_eq!(PostTags::query(r).using(tenant).count().await.unwrap(), 1);
            let linked: Vec<String> = Post::query(r)
                .using(tenant)
                .filter(Post::tags().having(Tag::name().eq(tag)))
                .values_list(Post::title())
                .await
                .unwrap();
            assert_eq!(linked.len(), 1);
        }
    }
);

// ---------------------------------------------------------------------------------------
// Upsert repeat detection (expected to hold).

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aj_readings", unique(sensor, level))]
struct Reading {
    id: i64,
    #[model(max_length = 20)]
    sensor: String,
    level: f64,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "aj_prices", unique(code, amount))]
struct Price {
    id: i64,
    #[model(max_length = 20)]
    code: String,
    #[model(max_digits = 10, decimal_places = 2)]
    amount: Decimal,
}

backend_test!(
    upsert_repeats_equal_but_differently_spelled_are_refused,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().register::<Reading>().register::<Price>();
        let a = t.schema("up");
        tenant(r, &a).await;
        let reading = |sensor: &str, level: f64| Reading {
            id: 0,
            sensor: sensor.into(),
            level,
        };
        // 0.0 and -0.0 are one key to every database; other keys sort between them.
        let floats = Reading::query(r)
            .using(&a)
            .on_conflict((Reading::sensor(), Reading::level()))
            .do_nothing()
            .bulk_create([
                reading("s", 0.0),
                reading("s", -1.0),
                reading("r", 5.0),
                reading("s", -0.0),
            ])
            .await;
        assert!(
            matches!(floats, Err(Error::InvalidArgument { .. })),
            "{floats:?}"
        );
        let price = |code: &str, amount: &str| Price {
            id: 0,
            code: code.into(),
            amount: Decimal::from_str(amount).unwrap(),
        };
        let decimals = Price::query(r)
            .using(&a)
            .on_conflict((Price::code(), Price::amount()))
            .do_nothing()
            .bulk_create([
                price("x", "1.0"),
                price("x", "2"),
                price("w", "1.00"),
                price("x", "1.00"),
            ])
            .await;
        assert!(
            matches!(decimals, Err(Error::InvalidArgument { .. })),
            "{decimals:?}"
        );
        // Case differs: distinct keys on every backend (MySQL tables are utf8mb4_bin).
        let cased = Price::query(r)
            .using(&a)
            .on_conflict((Price::code(), Price::amount()))
            .do_nothing()
            .bulk_create([price("Acme", "1"), price("acme", "1")])
            .await
            .unwrap();
        assert_eq!(cased.len(), 2);
        assert_eq!(Price::query(r).using(&a).count().await.unwrap(), 2);
    }
);

// ---------------------------------------------------------------------------------------
// A tenant-only model related to a shared one: the junction is tenant-only, its foreign key
// to the shared side crosses schemas.

#[derive(Model, Debug, Clone, PartialEq)]
#[model(tenant, table = "aj_ledgers", many_to_many(currencies, to = Currency))]
struct Ledger {
    id: i64,
    #[model(max_length = 40)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared, table = "aj_currencies")]
struct Currency {
    id: i64,
    #[model(max_length = 10)]
    code: String,
}

async fn ledger_registry(t: &common::TestDb) -> Registry {
    let r = t
        .registry
        .clone()
        .register::<Currency>()
        .register::<Ledger>();
    r.create_all().await.unwrap();
    r
}

// Two tenants in one task each relate their ledger to a shared currency: each sees its own
// links only, through all(), having, prefetch and the currency's side (expected to hold).
backend_pool_test!(
    a_tenant_only_junction_to_a_shared_model_keeps_tenants_apart,
    |t: common::TestDb| async move {
        let r = &ledger_registry(&t).await;
        let (a, b) = (t.schema("la"), t.schema("lb"));
        tenant(r, &a).await;
        tenant(r, &b).await;
        let currencies = Currency::query(r)
            .bulk_create(["usd", "eur"].map(|c| Currency {
                id: 0,
                code: c.into(),
            }))
            .await
            .unwrap();
        let work = |code: &'static str| {
            let currency = currencies.iter().find(|c| c.code == code).unwrap().clone();
            let usd = currencies.iter().find(|c| c.code == "usd").unwrap().clone();
            async move {
                let ledger = Ledger::query(r)
                    .create(Ledger {
                        id: 0,
                        name: format!("{code}-book"),
                    })
                    .await
                    .unwrap();
                Ledger::currencies()
                    .of(&ledger)
                    .add(&[&currency])
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                // On SQLite all() over a shared target is refused (a known limit,
                // tests/shared_joins.rs): the tenant's junction is in another file.
                let mine: Vec<String> = match Ledger::currencies()
                    .of(&ledger)
                    .all()
                    .values_list(Currency::code())
                    .await
                {
                    Err(Error::Unsupported { .. }) => vec![code.to_owned()],
                    other => other.unwrap(),
                };
                let prefetched = Ledger::query(r)
                    .prefetch_many(Ledger::currencies())
                    .all()
                    .await
                    .unwrap();
                let prefetched: Vec<String> = prefetched[0]
                    .prefetched_many(Ledger::currencies())
                    .unwrap()
                    .iter()
                    .map(|c| c.code.clone())
                    .collect();
                let of_usd: Vec<String> = Ledger::currencies()
                    .reversed()
                    .of(&usd)
                    .all()
                    .values_list(Ledger::name())
                    .await
                    .unwrap();
                (mine, prefetched, of_usd)
            }
        };
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), work("usd")),
            with_tenant(Some(b.clone()), work("eur")),
        );
        assert_eq!(in_a.0, vec!["usd".to_owned()]);
        assert_eq!(in_a.1, vec!["usd".to_owned()]);
        assert_eq!(in_a.2, vec!["usd-book".to_owned()]);
        assert_eq!(in_b.0, vec!["eur".to_owned()]);
        assert_eq!(in_b.1, vec!["eur".to_owned()]);
        assert_eq!(in_b.2, Vec::<String>::new());
        assert_eq!(
            LedgerCurrencies::query(r).using(&a).count().await.unwrap(),
            1
        );
        assert_eq!(
            LedgerCurrencies::query(r).using(&b).count().await.unwrap(),
            1
        );
    }
);

// Deleting the shared currency deletes the tenants' links to it on PostgreSQL. Where the
// cross-schema key is left out (SQLite files, MySQL) the link stays, as documented: it
// relates nothing, and a new currency does not take the freed key.
backend_test!(
    deleting_the_shared_side_deletes_the_tenants_links_where_the_key_exists,
    |t: common::TestDb| async move {
        let r = &ledger_registry(&t).await;
        let a = t.schema("ldel");
        tenant(r, &a).await;
        let _keep = Currency::query(r)
            .create(Currency {
                id: 0,
                code: "chf".into(),
            })
            .await
            .unwrap();
        let gone = Currency::query(r)
            .create(Currency {
                id: 0,
                code: "dem".into(),
            })
            .await
            .unwrap();
        let ledger = Ledger::query(r)
            .using(&a)
            .create(Ledger {
                id: 0,
                name: "book".into(),
            })
            .await
            .unwrap();
        Ledger::currencies()
            .of(&ledger)
            .add(&[&gone])
            .await
            .unwrap();
        let gone_id = gone.id;
        gone.delete().await.unwrap();
        let reborn = Currency::query(r)
            .create(Currency {
                id: 0,
                code: "eur".into(),
            })
            .await
            .unwrap();
        let related: Vec<String> = Ledger::query(r)
            .using(&a)
            .prefetch_many(Ledger::currencies())
            .all()
            .await
            .unwrap()[0]
            .prefetched_many(Ledger::currencies())
            .unwrap()
            .iter()
            .map(|c| c.code.clone())
            .collect();
        let links = LedgerCurrencies::query(r).using(&a).count().await.unwrap();
        assert!(related.is_empty(), "{related:?}");
        assert_ne!(reborn.id, gone_id, "the freed key was taken again");
        let expected = if t.backend == tenantry::Backend::Postgres {
            0
        } else {
            1
        };
        assert_eq!(links, expected, "{:?}", t.backend);
    }
);
