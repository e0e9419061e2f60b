//! Large inputs: `select_related` over more referenced keys than one statement may bind,
//! `bulk_create` over several batches (all or nothing), and MySQL keys under
//! `auto_increment_increment > 1`.
mod common;

use std::collections::HashMap;

use chrono::{NaiveDate, TimeZone, Utc};
use common::models::*;
use tenantry::{create_schema, Error, Model, Registry, SchemaName};

const CHILDREN: usize = 70_000;

/// `CHILDREN` products, product `i` owned by `owners[i % owners.len()]`, every tenth one by
/// nobody.
fn products(owners: &[i64]) -> Vec<Product> {
    (0..CHILDREN)
        .map(|i| Product {
            id: 0,
            name: format!("p{i}"),
            user: (i % 10 != 9).then(|| tenantry::ForeignKey::new(owners[i % owners.len()])),
        })
        .collect()
}

/// Every product loaded with select_related has its owner attached, and the right one.
async fn check_loaded(r: &Registry, schema: Option<&SchemaName>, owners: &HashMap<i64, String>) {
    let q = match schema {
        Some(s) => Product::query(r).using(s),
        None => Product::query(r),
    };
    let loaded = q.select_related(Product::user()).all().await.unwrap();
    assert_eq!(loaded.len(), CHILDREN);
    let mut attached = 0;
    for p in &loaded {
        if let Some(fk) = &p.user {
            let user = fk.get().expect("owner loaded");
            assert_eq!(user.id, *fk.key());
            assert_eq!(&user.name, &owners[fk.key()]);
            assert_eq!(user.origin().schema(), schema);
            attached += 1;
        }
    }
    assert_eq!(attached, CHILDREN - CHILDREN / 10);
}

backend_test!(
    select_related_few_parents_many_children,
    |t: common::TestDb| async move {
        let r = &t.registry;
        // Before deduplication these 63,000 references were one IN list of 63,000 keys, over
        // SQLite's limit; with 70,000 referencing rows and no NULLs, over every backend's.
        let owners = User::query(r)
            .bulk_create([user("Ann"), user("Ben"), user("Cat")])
            .await
            .unwrap();
        let ids: Vec<i64> = owners.iter().map(|u| u.id).collect();
        let names: HashMap<i64, String> = owners.iter().map(|u| (u.id, u.name.clone())).collect();
        let mut all = products(&ids);
        for p in all.iter_mut() {
            p.user
                .get_or_insert_with(|| tenantry::ForeignKey::new(ids[0]));
        }
        Product::query(r).bulk_create(all).await.unwrap();
        let loaded = Product::query(r)
            .select_related(Product::user())
            .all()
            .await
            .unwrap();
        assert_eq!(loaded.len(), CHILDREN);
        assert!(loaded.iter().all(|p| {
            let fk = p.user.as_ref().unwrap();
            fk.get()
                .is_some_and(|u| u.id == *fk.key() && u.name == names[fk.key()])
        }));
    }
);

backend_test!(
    select_related_more_keys_than_binds,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tenant = t.schema("many");
        create_schema(r, &tenant, None, false, true).await.unwrap();
        // More distinct owners than any backend binds in one statement (65,535 on
        // PostgreSQL and MySQL, 32,766 on SQLite), each referenced once or twice.
        let distinct = t.backend.capabilities().max_bind_params + 465;
        assert!(distinct < CHILDREN);
        let owners = User::query(r)
            .using(&tenant)
            .bulk_create((0..distinct).map(|i| user(&format!("u{i}"))))
            .await
            .unwrap();
        let ids: Vec<i64> = owners.iter().map(|u| u.id).collect();
        let names: HashMap<i64, String> = owners.iter().map(|u| (u.id, u.name.clone())).collect();
        assert_eq!(names.len(), distinct, "distinct keys");
        Product::query(r)
            .using(&tenant)
            .bulk_create(products(&ids))
            .await
            .unwrap();
        check_loaded(r, Some(&tenant), &names).await;
        // The default schema holds none of them.
        assert_eq!(Product::query(r).count().await.unwrap(), 0);
    }
);

fn every_type(i: usize) -> EveryType {
    EveryType {
        key: 0,
        body: format!("body {i}"),
        code: format!("c{i}"),
        flag: i.is_multiple_of(2),
        ratio: i as f64 / 7.0,
        at: Utc.timestamp_opt(1_700_000_000 + i as i64, 0).unwrap(),
        day: NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
        token: uuid::Uuid::new_v4(),
        doc: serde_json::json!({ "i": i }),
        maybe: None,
        maybe_number: Some(i as i64),
    }
}

/// Rows for three batches of `EveryType` on this backend, the last row repeating the first
/// row's unique code.
fn three_batches_last_fails(t: &common::TestDb) -> Vec<EveryType> {
    let width = EveryType::META
        .columns
        .iter()
        .filter(|c| !c.auto_increment)
        .count();
    let per_batch = t.backend.capabilities().max_bind_params / width;
    let n = 2 * per_batch + 10;
    let mut rows: Vec<EveryType> = (0..n).map(every_type).collect();
    rows[n - 1].code = rows[0].code.clone();
    rows
}

backend_test!(
    bulk_create_failing_last_batch_leaves_nothing,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tenant = t.schema("bulk");
        create_schema(r, &tenant, None, false, true).await.unwrap();
        EveryType::query(r)
            .create(every_type(1_000_000))
            .await
            .unwrap();
        // In the default schema and in a tenant's (on SQLite, a transaction in its file).
        for schema in [None, Some(&tenant)] {
            let q = || match schema {
                Some(s) => EveryType::query(r).using(s),
                None => EveryType::query(r),
            };
            let before = q().count().await.unwrap();
            let outcome = q().bulk_create(three_batches_last_fails(&t)).await;
            assert!(
                matches!(outcome, Err(Error::UniqueViolation { .. })),
                "{schema:?}: {outcome:?}"
            );
            assert_eq!(
                q().count().await.unwrap(),
                before,
                "{schema:?}: nothing kept"
            );
            // Inside a tenant scope too.
            if let Some(s) = schema {
                let outcome = tenantry::with_tenant(Some(s.clone()), async {
                    EveryType::query(r)
                        .bulk_create(three_batches_last_fails(&t))
                        .await
                })
                .await;
                assert!(matches!(outcome, Err(Error::UniqueViolation { .. })));
                assert_eq!(q().count().await.unwrap(), before);
            }
            // The same rows without the duplicate all go in, keys as stored.
            let mut good = three_batches_last_fails(&t);
            good.pop();
            let n = good.len();
            let created = q().bulk_create(good).await.unwrap();
            assert_eq!(created.len(), n);
            assert_eq!(q().count().await.unwrap(), before + n as u64);
            let stored: HashMap<String, i32> = q()
                .all()
                .await
                .unwrap()
                .iter()
                .map(|e| (e.code.clone(), e.key))
                .collect();
            assert!(created.iter().all(|e| stored[&e.code] == e.key));
            assert_eq!(created[0].origin().schema(), schema);
        }
    }
);

backend_test!(
    bulk_create_in_a_caller_transaction_is_the_callers,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tx = r.begin().await.unwrap();
        let outcome = EveryType::query(&tx)
            .bulk_create(three_batches_last_fails(&t))
            .await;
        assert!(matches!(outcome, Err(Error::UniqueViolation { .. })));
        tx.rollback().await.unwrap();
        assert_eq!(EveryType::query(r).count().await.unwrap(), 0);
        // Committed, every batch is there, keys as stored.
        let tx = r.begin().await.unwrap();
        let mut good = three_batches_last_fails(&t);
        good.pop();
        let n = good.len();
        let created = EveryType::query(&tx).bulk_create(good).await.unwrap();
        tx.commit().await.unwrap();
        let stored: HashMap<String, i32> = EveryType::query(r)
            .all()
            .await
            .unwrap()
            .iter()
            .map(|e| (e.code.clone(), e.key))
            .collect();
        assert_eq!(stored.len(), n);
        assert!(created.iter().all(|e| stored[&e.code] == e.key));
    }
);

backend_test!(
    bulk_create_keys_under_auto_increment_increment,
    |t: common::TestDb| async move {
        // A pool of one connection, so the session setting below is the inserts' session.
        let db = t.reconnect_with(1).await;
        if db.backend() == tenantry::Backend::MySql {
            // Borrowed from tenantry's pool and handed back with the session setting on it.
            let mut conn = db.acquire_mysql().await.unwrap();
            sqlx::query("SET SESSION auto_increment_increment = 3")
                .execute(&mut *conn)
                .await
                .unwrap();
            let (step,): (u64,) =
                sqlx::query_as("SELECT CAST(@@SESSION.auto_increment_increment AS UNSIGNED)")
                    .fetch_one(&mut *conn)
                    .await
                    .unwrap();
            assert_eq!(step, 3);
            // Handed back on purpose with the session setting on it.
            conn.release();
        }
        let r = common::models::register(Registry::new(db));
        let check = |created: &[tenantry::Instance<User>], stored: &HashMap<String, i64>| {
            for u in created {
                assert_eq!(stored[&u.name], u.id, "{}", u.name);
            }
        };
        let stored = |r: Registry| async move {
            User::query(&r)
                .all()
                .await
                .unwrap()
                .iter()
                .map(|u| (u.name.clone(), u.id))
                .collect::<HashMap<String, i64>>()
        };
        // One batch, several batches, then one row.
        let small = User::query(&r)
            .bulk_create((0..10).map(|i| user(&format!("s{i}"))))
            .await
            .unwrap();
        let big = User::query(&r)
            .bulk_create((0..50_000).map(|i| user(&format!("b{i}"))))
            .await
            .unwrap();
        let one = User::query(&r).create(user("one")).await.unwrap();
        let now = stored(r.clone()).await;
        assert_eq!(now.len(), 50_011);
        check(&small, &now);
        check(&big, &now);
        assert_eq!(now["one"], one.id);
        if t.backend == tenantry::Backend::MySql {
            // The setting took effect: keys step by 3.
            assert_eq!(small[1].id - small[0].id, 3);
            assert_eq!(big[49_999].id - big[0].id, 3 * 49_999);
        }
        r.disconnect().await;
    }
);

/// A model of an auto-increment key alone (a ticket counter).
#[derive(tenantry::Model, Debug, Clone, PartialEq)]
#[model(table = "bk_tickets")]
struct Ticket {
    id: i64,
}

async fn tickets(registry: &tenantry::Registry, n: usize) -> Vec<i64> {
    let first = Ticket::query(registry)
        .create(Ticket { id: 0 })
        .await
        .unwrap();
    let mut ids = vec![first.id];
    let made = Ticket::query(registry)
        .bulk_create((0..n).map(|_| Ticket { id: 0 }))
        .await
        .unwrap();
    ids.extend(made.iter().map(|t| t.id));
    ids
}

// Rows of a key alone: `VALUES (DEFAULT), …` (SQLite: one `DEFAULT VALUES` a row), keys
// returned, in two tenants at once inside one task.
backend_test!(
    a_model_of_its_key_alone_is_created_in_bulk,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = (t.schema("ka"), t.schema("kb"));
        for schema in [&a, &b] {
            tenantry::create_schema(r, schema, Some(&[Ticket::META]), false, true)
                .await
                .unwrap();
        }
        let (in_a, in_b) = tokio::join!(
            tenantry::with_tenant(Some(a.clone()), tickets(r, 5)),
            tenantry::with_tenant(Some(b.clone()), tickets(r, 2)),
        );
        assert_eq!(in_a, (1..=6).collect::<Vec<i64>>());
        assert_eq!(in_b, (1..=3).collect::<Vec<i64>>());
        for (schema, n) in [(&a, 6), (&b, 3)] {
            let mut stored: Vec<i64> = Ticket::query(r)
                .using(schema)
                .values_list(Ticket::id())
                .await
                .unwrap();
            stored.sort_unstable();
            assert_eq!(stored, (1..=n).collect::<Vec<i64>>());
        }
    }
);
