//! A tenant dropped while writes run in it. On PostgreSQL `DROP SCHEMA … CASCADE` locks a
//! table's sequence before the table and an `INSERT` locks them the other way round (and a
//! foreign key check locks the parent table after the child), so a drop racing writes could
//! deadlock them; the server then failed the user's statement as the victim (40P01), which
//! CI saw once in `attack_enum_types`. Every write must succeed or be
//! `Error::SchemaNotFound`, and another tenant read at the same time keeps its rows.
mod common;

use std::time::Duration;

use common::{models::*, tenants::read_names_until};
use tenantry::{create_schema, drop_schema, Error, Model, Registry, SchemaName};

/// Rounds of create, write, drop: the deadlock needs the drop to land between a write's two
/// locks, which one round hits only sometimes.
const ROUNDS: usize = 12;
const WRITERS: usize = 3;
const WRITES: usize = 40;

/// Products of `owner` written into `schema` until it is gone; every outcome.
async fn write(
    r: Registry,
    schema: SchemaName,
    owner: tenantry::Instance<User>,
    writer: usize,
) -> Vec<Result<(), Error>> {
    let mut outcomes = Vec::new();
    for i in 0..WRITES {
        let outcome = Product::query(&r)
            .using(&schema)
            .create(product(&format!("w{writer}_{i}"), Some(&owner)))
            .await
            .map(drop);
        let gone = matches!(outcome, Err(Error::SchemaNotFound { .. }));
        outcomes.push(outcome);
        if gone {
            break;
        }
        tokio::task::yield_now().await;
    }
    outcomes
}

backend_test!(
    writes_racing_a_schema_drop_succeed_or_find_it_gone,
    |t: common::TestDb| async move {
        let r = t.registry.clone();
        let models = [User::META, Product::META];
        let kept = t.schema("kept");
        create_schema(&r, &kept, Some(&models), false, true)
            .await
            .unwrap();
        User::query(&r)
            .using(&kept)
            .create(user("kept"))
            .await
            .unwrap();
        for round in 0..ROUNDS {
            let gone = t.schema(&format!("gone{round}"));
            create_schema(&r, &gone, Some(&models), false, true)
                .await
                .unwrap();
            let owner = User::query(&r)
                .using(&gone)
                .create(user("owner"))
                .await
                .unwrap();
            let (stop, until) = tokio::sync::watch::channel(false);
            let writers = (0..WRITERS)
                .map(|w| write(r.clone(), gone.clone(), owner.clone(), w))
                .collect::<Vec<_>>();
            // The writers and the kept tenant's reader share one task.
            let reader = read_names_until(r.clone(), kept.clone(), until, Duration::ZERO);
            let racing = tokio::spawn(async move {
                tokio::join!(futures_util::future::join_all(writers), reader)
            });
            tokio::time::sleep(Duration::from_millis(1 + round as u64 % 6)).await;
            drop_schema(&t.registry, &gone, true, false).await.unwrap();
            stop.send(true).unwrap();
            let (writes, reads) = racing.await.unwrap();
            for outcome in writes.into_iter().flatten() {
                assert!(
                    matches!(outcome, Ok(()) | Err(Error::SchemaNotFound { .. })),
                    "round {round}: {outcome:?}"
                );
            }
            for names in reads {
                assert_eq!(names, ["kept"], "round {round}");
            }
            let after = Product::query(&t.registry).using(&gone).count().await;
            assert!(
                matches!(after, Err(Error::SchemaNotFound { .. })),
                "round {round}: {after:?}"
            );
        }
    }
);

// A drop behind an open transaction that wrote into the tenant waits for it, across as
// many of its PostgreSQL tries as it takes (each gives way after 100 ms): it neither fails
// nor returns before the transaction ends, whose write is committed before the drop; the
// other tenant, read meanwhile, keeps its rows.
backend_test!(
    a_drop_waits_for_an_open_transaction_in_the_tenant,
    |t: common::TestDb| async move {
        let r = t.registry.clone();
        let models = [User::META, Product::META];
        let (kept, gone) = (t.schema("kept"), t.schema("gone"));
        for schema in [&kept, &gone] {
            create_schema(&r, schema, Some(&models), false, true)
                .await
                .unwrap();
            User::query(&r)
                .using(schema)
                .create(user(schema.as_str()))
                .await
                .unwrap();
        }
        let tx = r.begin_in(&gone).await.unwrap();
        User::query(&tx)
            .using(&gone)
            .create(user("in flight"))
            .await
            .unwrap();
        let dropping = tokio::spawn({
            let r = r.clone();
            let gone = gone.clone();
            async move { drop_schema(&r, &gone, true, false).await }
        });
        let (stop, until) = tokio::sync::watch::channel(false);
        let (reads, ()) = tokio::join!(
            read_names_until(r.clone(), kept.clone(), until, Duration::ZERO),
            async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                stop.send(true).unwrap();
            }
        );
        assert!(
            !dropping.is_finished(),
            "the drop returned under an open transaction"
        );
        let in_tx = User::query(&tx).using(&gone).count().await.unwrap();
        assert_eq!(in_tx, 2);
        tx.commit().await.unwrap();
        dropping.await.unwrap().unwrap();
        assert!(!reads.is_empty());
        for names in reads {
            assert_eq!(names, [kept.as_str()]);
        }
        let after = User::query(&r).using(&gone).count().await;
        assert!(
            matches!(after, Err(Error::SchemaNotFound { .. })),
            "{after:?}"
        );
    }
);
