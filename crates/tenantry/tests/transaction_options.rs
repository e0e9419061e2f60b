//! Transaction options inside the tenant: isolation levels, read-only transactions, and
//! transactions retried after a serialization failure or a deadlock (two tenants' counters
//! incremented by racing tasks, each ending exact and its own); on every backend.
mod common;

use tenantry::{
    create_schema, with_tenant, Backend, Error, IsolationLevel, Model, Registry, SchemaName,
    TransactionOptions,
};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "tx_counters")]
struct Counter {
    id: i64,
    #[model(max_length = 20)]
    name: String,
    value: i64,
}

const TASKS: i64 = 12;

async fn counter(registry: &Registry, tenant: &SchemaName, start: i64) {
    create_schema(registry, tenant, Some(&[Counter::META]), false, true)
        .await
        .unwrap();
    Counter::query(registry)
        .using(tenant)
        .create(Counter {
            id: 0,
            name: "hits".into(),
            value: start,
        })
        .await
        .unwrap();
}

/// Reads the counter and writes it back plus one, in a serializable transaction retried on
/// conflicts.
async fn increment(registry: Registry) -> tenantry::Result<()> {
    let serializable = TransactionOptions::new().isolation(IsolationLevel::Serializable);
    registry
        .transaction_retrying(serializable, 50, |tx| async move {
            let current = Counter::query(&tx)
                .filter(Counter::name().eq("hits"))
                .first()
                .await?
                .ok_or(Error::NotFound {
                    model: "tx_counters",
                })?;
            tokio::task::yield_now().await;
            Counter::query(&tx)
                .filter(Counter::id().eq(current.id))
                .update([Counter::value().set(current.value + 1)])
                .await?;
            Ok(())
        })
        .await
}

backend_test!(
    racing_serializable_increments_are_retried_to_an_exact_count,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        counter(&t.registry, &a, 0).await;
        counter(&t.registry, &b, 1000).await;
        let mut tasks = Vec::new();
        for tenant in [&a, &b] {
            for _ in 0..TASKS {
                let (registry, tenant) = (t.registry.clone(), tenant.clone());
                tasks.push(tokio::spawn(with_tenant(Some(tenant), increment(registry))));
            }
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for (tenant, start) in [(&a, 0), (&b, 1000)] {
            let value = Counter::query(&t.registry)
                .using(tenant)
                .first()
                .await
                .unwrap()
                .unwrap()
                .value;
            assert_eq!(value, start + TASKS, "{tenant}");
        }
    }
);

backend_test!(
    read_only_transactions_refuse_writes,
    |t: common::TestDb| async move {
        let a = t.schema("ca");
        counter(&t.registry, &a, 7).await;
        let read_only = TransactionOptions::new().read_only();
        let begun = with_tenant(Some(a.clone()), t.registry.begin_with(read_only)).await;
        if t.backend == Backend::Sqlite {
            assert!(
                matches!(begun, Err(Error::Unsupported { .. })),
                "{:?}",
                begun.err()
            );
            return;
        }
        let tx = begun.unwrap();
        let read = Counter::query(&tx)
            .using(&a)
            .first()
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.value, 7);
        let write = Counter::query(&tx)
            .using(&a)
            .update([Counter::value().set(8)])
            .await;
        assert!(write.is_err(), "{write:?}");
        let _ = tx.rollback().await;
        let value = Counter::query(&t.registry)
            .using(&a)
            .first()
            .await
            .unwrap()
            .unwrap()
            .value;
        assert_eq!(value, 7);
    }
);

backend_test!(
    every_isolation_level_begins_and_reads_the_tenant,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("ca"), t.schema("cb"));
        counter(&t.registry, &a, 1).await;
        counter(&t.registry, &b, 2).await;
        for level in [
            IsolationLevel::ReadCommitted,
            IsolationLevel::RepeatableRead,
            IsolationLevel::Serializable,
        ] {
            let options = TransactionOptions::new().isolation(level);
            for (tenant, expected) in [(&a, 1), (&b, 2)] {
                let value = with_tenant(Some(tenant.clone()), async {
                    let tx = t.registry.begin_with(options).await.unwrap();
                    let value = Counter::query(&tx).first().await.unwrap().unwrap().value;
                    tx.commit().await.unwrap();
                    value
                })
                .await;
                assert_eq!(value, expected, "{level:?} {tenant}");
            }
        }
        // A work that fails with another error is not retried: it runs once.
        let runs = std::sync::atomic::AtomicU32::new(0);
        let failed: tenantry::Result<()> = t
            .registry
            .transaction_retrying(TransactionOptions::new(), 5, |_tx| {
                runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { Err(Error::NotFound { model: "x" }) }
            })
            .await;
        assert!(matches!(failed, Err(Error::NotFound { .. })));
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
);
