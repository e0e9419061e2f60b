//! Transactions inside tenant scopes under failure: an `Err` from `registry.transaction`, a
//! database error, a dropped transaction, an explicit rollback, and a transaction whose
//! `begin`, work or `commit` is cancelled at each await point. The pool has ONE connection
//! (`max_connections(1)`), so the next user of that connection is the next query: after each
//! failure it must find no open transaction, none of the rolled-back rows and exactly the
//! committed rows, in every tenant.
mod common;

use std::collections::BTreeSet;

use common::{cancel::cancel_after_polls, models::*, state, TestDb};
use tenantry::{create_schema, with_tenant, Backend, Error, Registry, SchemaName, Transaction};

const TENANTS: usize = 3;

/// A registry over a fresh one-connection pool on the test database, and `TENANTS` tenant
/// schemas, tenant `i` holding users `t<i>-base-0..=i+1`.
async fn one_connection(t: &TestDb) -> (Registry, Vec<SchemaName>) {
    let r = common::models::register(Registry::new(t.reconnect_with(1).await));
    let mut tenants = Vec::new();
    for i in 0..TENANTS {
        let schema = t.schema(&format!("x{i}"));
        create_schema(&r, &schema, None, false, true).await.unwrap();
        with_tenant(
            Some(schema.clone()),
            User::query(&r).bulk_create((0..=i + 1).map(|k| user(&format!("t{i}-base-{k}")))),
        )
        .await
        .unwrap();
        tenants.push(schema);
    }
    (r, tenants)
}

/// A transaction for the current tenant: on SQLite in the tenant's file.
async fn begin(r: &Registry, tenant: &SchemaName) -> tenantry::Result<Transaction> {
    match r.database().backend() {
        Backend::Sqlite => r.begin_in(tenant).await,
        _ => r.begin().await,
    }
}

/// What the next user of the one connection must see: no open transaction, every tenant
/// exactly its `expected` names (and its own only), and no plan but `plans`.
async fn assert_clean(
    t: &TestDb,
    r: &Registry,
    tenants: &[SchemaName],
    expected: &[BTreeSet<String>],
    plans: &BTreeSet<String>,
    after: &str,
) {
    assert_eq!(
        state::assert_no_open_transaction(t, r.database()).await,
        1,
        "the pool has one connection"
    );
    for (i, tenant) in tenants.iter().enumerate() {
        let seen = state::names(r, tenant).await.unwrap();
        assert_eq!(seen, expected[i], "tenant {tenant} after {after}");
    }
    let seen: BTreeSet<String> = Plan::query(r)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.into_inner().title)
        .collect();
    assert_eq!(&seen, plans, "plans after {after}");
}

fn baseline(tenants: &[SchemaName]) -> Vec<BTreeSet<String>> {
    (0..tenants.len())
        .map(|i| (0..=i + 1).map(|k| format!("t{i}-base-{k}")).collect())
        .collect()
}

/// Writes in the current tenant inside `tx`: a user, three more, every user renamed, the
/// first base user deleted, a plan in the shared schema (PostgreSQL and MySQL: one
/// transaction spans both; SQLite: the plan is skipped, the transaction lives in the
/// tenant's file).
async fn tenant_writes(tx: &Transaction, i: usize, label: &str) -> tenantry::Result<()> {
    User::query(tx)
        .create(user(&format!("t{i}-{label}")))
        .await?;
    User::query(tx)
        .bulk_create((0..3).map(|k| user(&format!("t{i}-{label}-{k}"))))
        .await?;
    User::query(tx)
        .update([User::email().set(format!("{label}@example.com"))])
        .await?;
    User::query(tx)
        .filter(User::name().eq(format!("t{i}-base-0")))
        .delete()
        .await?;
    if tx.database().backend() != Backend::Sqlite {
        Plan::query(tx)
            .create(Plan {
                id: 0,
                title: format!("t{i}-{label}"),
            })
            .await?;
    }
    assert!(User::query(tx).count().await? >= 4);
    Ok(())
}

backend_test!(
    failed_transactions_leave_nothing_to_the_next_user,
    |t: TestDb| async move {
        let (r, tenants) = one_connection(&t).await;
        let expected = baseline(&tenants);
        let no_plans = BTreeSet::new();
        assert_clean(&t, &r, &tenants, &expected, &no_plans, "setup").await;

        for (i, tenant) in tenants.iter().enumerate() {
            with_tenant(Some(tenant.clone()), async {
                // 1. registry.transaction whose body returns Err.
                let result: tenantry::Result<()> = r
                    .transaction(|tx| async move {
                        // On SQLite the transaction follows the tenant into its file.
                        tenant_writes(&tx, i, "err").await?;
                        Err(Error::NotFound { model: "planned" })
                    })
                    .await;
                assert!(
                    matches!(result, Err(Error::NotFound { model: "planned" })),
                    "{result:?}"
                );
                assert_clean(&t, &r, &tenants, &expected, &no_plans, "Err").await;

                // 2. registry.transaction failing on a database error (a unique violation),
                //    on the shared plans: outside the tenant, so that on SQLite it begins
                //    in the main file.
                let result: tenantry::Result<()> = with_tenant(
                    None,
                    r.transaction(|tx| async move {
                        for _ in 0..2 {
                            Plan::query(&tx)
                                .create(Plan {
                                    id: 0,
                                    title: format!("t{i}-dup"),
                                })
                                .await?;
                        }
                        Ok(())
                    }),
                )
                .await;
                assert!(
                    matches!(result, Err(Error::UniqueViolation { .. })),
                    "{result:?}"
                );
                assert_clean(&t, &r, &tenants, &expected, &no_plans, "unique violation").await;

                // 3. A tenant transaction failing on a database error, then dropped.
                {
                    let tx = begin(&r, tenant).await.unwrap();
                    tenant_writes(&tx, i, "dberr").await.unwrap();
                    let token = uuid::Uuid::new_v4();
                    Tag::query(&tx)
                        .create(Tag {
                            token,
                            label: "a".into(),
                        })
                        .await
                        .unwrap();
                    let dup = Tag::query(&tx)
                        .create(Tag {
                            token,
                            label: "b".into(),
                        })
                        .await;
                    assert!(matches!(dup, Err(Error::UniqueViolation { .. })), "{dup:?}");
                }
                assert_clean(&t, &r, &tenants, &expected, &no_plans, "failed statement").await;
                assert_eq!(
                    Tag::query(&r).count().await.unwrap(),
                    0,
                    "tag rows of a dropped transaction are visible"
                );

                // 4. Dropped without commit, clones included.
                {
                    let tx = begin(&r, tenant).await.unwrap();
                    let clone = tx.clone();
                    tenant_writes(&tx, i, "drop").await.unwrap();
                    drop(tx);
                    User::query(&clone)
                        .create(user(&format!("t{i}-drop-clone")))
                        .await
                        .unwrap();
                }
                assert_clean(&t, &r, &tenants, &expected, &no_plans, "drop").await;

                // 5. Explicit rollback.
                let tx = begin(&r, tenant).await.unwrap();
                tenant_writes(&tx, i, "rollback").await.unwrap();
                tx.rollback().await.unwrap();
                assert_clean(&t, &r, &tenants, &expected, &no_plans, "rollback").await;

                // 6. The body panics inside registry.transaction (caught by a task).
                let r2 = r.clone();
                let tenant2 = tenant.clone();
                let panicked = tokio::spawn(with_tenant(Some(tenant2), async move {
                    let _: tenantry::Result<()> = r2
                        .transaction(|tx| async move {
                            tenant_writes(&tx, i, "panic").await?;
                            panic!("the body panics on purpose");
                        })
                        .await;
                }))
                .await;
                assert!(panicked.unwrap_err().is_panic());
                assert_clean(&t, &r, &tenants, &expected, &no_plans, "panic").await;
            })
            .await;
        }

        // Committed work still lands, in its tenant only.
        let mut expected = expected;
        for (i, tenant) in tenants.iter().enumerate() {
            with_tenant(Some(tenant.clone()), async {
                let tx = begin(&r, tenant).await.unwrap();
                User::query(&tx)
                    .create(user(&format!("t{i}-committed")))
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            })
            .await;
            expected[i].insert(format!("t{i}-committed"));
        }
        assert_clean(&t, &r, &tenants, &expected, &no_plans, "commit").await;
        state::assert_tenants_read_their_own(&r, &tenants, &expected, 4, 6).await;
        r.disconnect().await;
    }
);

backend_test!(
    cancelled_transactions_leave_nothing_to_the_next_user,
    |t: TestDb| async move {
        let (r, tenants) = one_connection(&t).await;
        let mut expected = baseline(&tenants);
        let mut plans = BTreeSet::new();
        let mut tally = [0usize; 5];

        for (i, tenant) in tenants.iter().enumerate() {
            with_tenant(Some(tenant.clone()), async {
                // `begin` cancelled at each await point, then the next user writes
                // outside any transaction: the write must be visible from a fresh handle.
                for polls in 1.. {
                    let begun = cancel_after_polls(polls, begin(&r, tenant)).await;
                    let finished = match begun {
                        None => false,
                        Some(tx) => {
                            tx.unwrap().rollback().await.unwrap();
                            true
                        }
                    };
                    let name = format!("t{i}-after-begin-{polls}");
                    User::query(&r).create(user(&name)).await.unwrap();
                    expected[i].insert(name);
                    let fresh = Registry::new(t.reconnect().await).register::<User>();
                    assert_eq!(
                        state::names(&fresh, tenant).await.unwrap(),
                        expected[i],
                        "a write after begin cancelled at poll {polls} is not visible"
                    );
                    fresh.disconnect().await;
                    if finished {
                        break;
                    }
                    tally[0] += 1;
                    assert!(polls < 500);
                }
                assert_clean(&t, &r, &tenants, &expected, &plans, "cancelled begin").await;

                // The work of a transaction cancelled at each await point.
                for polls in 1.. {
                    let label = format!("work{polls}");
                    let work = async {
                        let tx = begin(&r, tenant).await?;
                        tenant_writes(&tx, i, &label).await
                    };
                    let done = cancel_after_polls(polls, work).await;
                    assert_clean(&t, &r, &tenants, &expected, &plans, "cancelled work").await;
                    match done {
                        None => tally[1] += 1,
                        Some(result) => {
                            result.unwrap();
                            break;
                        }
                    }
                    assert!(polls < 500);
                }

                // A registry.transaction cancelled at each await point, its commit
                // included: afterwards its rows are there whole or not at all.
                for polls in 1.. {
                    let label = format!("scope{polls}");
                    let scope = r.transaction(|tx| {
                        let label = label.clone();
                        async move {
                            User::query(&tx)
                                .create(user(&format!("t{i}-{label}")))
                                .await?;
                            // On SQLite the transaction lives in the tenant's file, which
                            // the shared plans are not in.
                            if tx.database().backend() != Backend::Sqlite {
                                Plan::query(&tx)
                                    .create(Plan {
                                        id: 0,
                                        title: format!("t{i}-{label}"),
                                    })
                                    .await?;
                            }
                            Ok(())
                        }
                    });
                    let done = cancel_after_polls(polls, scope).await;
                    state::settle(r.database()).await;
                    let title = format!("t{i}-{label}");
                    let committed = User::query(&r)
                        .filter(User::name().eq(&title))
                        .exists()
                        .await
                        .unwrap();
                    let plan_committed = Plan::query(&r)
                        .filter(Plan::title().eq(&title))
                        .exists()
                        .await
                        .unwrap();
                    if t.backend != Backend::Sqlite {
                        assert_eq!(committed, plan_committed, "half a transaction committed");
                    }
                    if committed {
                        expected[i].insert(title.clone());
                        if plan_committed {
                            plans.insert(title);
                        }
                    }
                    assert_clean(&t, &r, &tenants, &expected, &plans, "cancelled scope").await;
                    match done {
                        None => {
                            tally[2] += 1;
                            tally[4] += usize::from(committed);
                        }
                        Some(result) => {
                            result.unwrap();
                            assert!(committed);
                            break;
                        }
                    }
                    assert!(polls < 500);
                }

                // `commit` and `rollback` cancelled at each await point.
                for polls in 1.. {
                    let name = format!("t{i}-commit-{polls}");
                    let tx = begin(&r, tenant).await.unwrap();
                    User::query(&tx).create(user(&name)).await.unwrap();
                    let done = cancel_after_polls(polls, tx.commit()).await;
                    drop(tx);
                    state::settle(r.database()).await;
                    let fresh = Registry::new(t.reconnect().await).register::<User>();
                    let seen = state::names(&fresh, tenant).await.unwrap();
                    fresh.disconnect().await;
                    if seen.contains(&name) {
                        expected[i].insert(name);
                    }
                    assert_clean(&t, &r, &tenants, &expected, &plans, "cancelled commit").await;
                    let rollback = {
                        let tx = begin(&r, tenant).await.unwrap();
                        User::query(&tx)
                            .create(user(&format!("t{i}-rolled-{polls}")))
                            .await
                            .unwrap();
                        cancel_after_polls(polls, tx.rollback()).await
                    };
                    assert_clean(&t, &r, &tenants, &expected, &plans, "cancelled rollback").await;
                    match (done, rollback) {
                        (Some(result), Some(rolled)) => {
                            result.unwrap();
                            rolled.unwrap();
                            break;
                        }
                        _ => tally[3] += 1,
                    }
                    assert!(polls < 500);
                }
            })
            .await;
        }
        state::assert_tenants_read_their_own(&r, &tenants, &expected, 4, 6).await;
        eprintln!(
            "[attack_transactions] {}: cancelled begin {} times, transaction work {} times, \
             registry.transaction {} times ({} of them had committed), commit/rollback {} \
             times; the one connection was clean after each",
            t.backend, tally[0], tally[1], tally[2], tally[4], tally[3]
        );
        r.disconnect().await;
    }
);
