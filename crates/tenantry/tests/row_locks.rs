//! Row locks (`for_update`, `skip_locked`, `nowait`) inside the tenant: refusals outside a
//! transaction, a job queue drained by several workers per tenant with every job taken
//! exactly once, and two tenants' queues that never see each other; on every backend.
mod common;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use tenantry::{create_schema, with_tenant, Backend, Error, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "queue_jobs")]
struct QueueJob {
    id: i64,
    #[model(max_length = 40)]
    name: String,
    #[model(max_length = 10)]
    state: String,
    worker: Option<i64>,
}

const JOBS: usize = 40;
const WORKERS: i64 = 4;

async fn queue(registry: &Registry, tenant: &SchemaName) {
    create_schema(registry, tenant, Some(&[QueueJob::META]), false, true)
        .await
        .unwrap();
    let jobs = (0..JOBS).map(|i| QueueJob {
        id: 0,
        name: format!("{tenant}-{i}"),
        state: "ready".into(),
        worker: None,
    });
    QueueJob::query(registry)
        .using(tenant)
        .bulk_create(jobs)
        .await
        .unwrap();
}

/// One worker: takes the first ready job nobody holds, marks it done, until none is left.
/// Returns the names it took.
async fn work(registry: Registry, worker: i64) -> Vec<String> {
    let mut taken = Vec::new();
    loop {
        let tx = registry.begin().await.unwrap();
        let next = QueueJob::query(&tx)
            .filter(QueueJob::state().eq("ready"))
            .order_by([QueueJob::id().asc()])
            .limit(1)
            .skip_locked()
            .all()
            .await
            .unwrap();
        let Some(job) = next.into_iter().next() else {
            tx.commit().await.unwrap();
            return taken;
        };
        QueueJob::query(&tx)
            .filter(QueueJob::id().eq(job.id))
            .update([
                QueueJob::state().set("done".to_owned()),
                QueueJob::worker().set(worker),
            ])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        taken.push(job.into_inner().name);
    }
}

backend_test!(
    a_job_queue_per_tenant_hands_out_each_job_once,
    |t: common::TestDb| async move {
        let (a, b) = (t.schema("qa"), t.schema("qb"));
        queue(&t.registry, &a).await;
        queue(&t.registry, &b).await;
        // Several workers per tenant, both tenants at once, inside one task.
        let taken = Arc::new(Mutex::new(Vec::new()));
        let mut workers = Vec::new();
        for tenant in [&a, &b] {
            for worker in 0..WORKERS {
                let (registry, tenant, taken) = (t.registry.clone(), tenant.clone(), taken.clone());
                workers.push(async move {
                    let names = with_tenant(Some(tenant.clone()), work(registry, worker)).await;
                    for name in &names {
                        assert!(
                            name.starts_with(&format!("{tenant}-")),
                            "{tenant} took {name}"
                        );
                    }
                    taken.lock().unwrap().extend(names);
                });
            }
        }
        futures_util::future::join_all(workers).await;
        let taken = taken.lock().unwrap().clone();
        let distinct: HashSet<&String> = taken.iter().collect();
        assert_eq!(taken.len(), 2 * JOBS, "a job was taken twice or never");
        assert_eq!(distinct.len(), 2 * JOBS);
        for tenant in [&a, &b] {
            let done = QueueJob::query(&t.registry)
                .using(tenant)
                .filter(QueueJob::state().eq("done"))
                .count()
                .await
                .unwrap();
            assert_eq!(done, JOBS as u64);
        }
    }
);

backend_test!(
    a_lock_outside_a_transaction_or_on_no_rows_is_refused,
    |t: common::TestDb| async move {
        let a = t.schema("qa");
        queue(&t.registry, &a).await;
        let jobs = || QueueJob::query(&t.registry).using(&a);
        let outside = jobs().for_update().all().await;
        assert!(
            matches!(
                outside,
                Err(Error::InvalidArgument {
                    argument: "for_update",
                    ..
                })
            ),
            "{outside:?}"
        );
        let first = jobs().skip_locked().first().await;
        assert!(
            matches!(first, Err(Error::InvalidArgument { .. })),
            "{first:?}"
        );
        let values = jobs().nowait().values_list(QueueJob::name()).await;
        assert!(
            matches!(values, Err(Error::InvalidArgument { .. })),
            "{values:?}"
        );
        let tx = t.registry.begin_in(&a).await.unwrap();
        let count = QueueJob::query(&tx).using(&a).for_update().count().await;
        assert!(
            matches!(count, Err(Error::InvalidArgument { .. })),
            "{count:?}"
        );
        let exists = QueueJob::query(&tx).using(&a).for_update().exists().await;
        assert!(
            matches!(exists, Err(Error::InvalidArgument { .. })),
            "{exists:?}"
        );
        // Inside the transaction the same read works and returns the rows.
        let locked = QueueJob::query(&tx)
            .using(&a)
            .for_update()
            .all()
            .await
            .unwrap();
        assert_eq!(locked.len(), JOBS);
        tx.commit().await.unwrap();
    }
);

backend_test!(
    nowait_fails_at_once_on_a_held_row,
    |t: common::TestDb| async move {
        let a = t.schema("qa");
        queue(&t.registry, &a).await;
        let first = QueueJob::query(&t.registry)
            .using(&a)
            .filter(QueueJob::name().eq(format!("{a}-0")))
            .first()
            .await
            .unwrap()
            .unwrap()
            .id;
        // By primary key: InnoDB locks every row a scan passes, not only those it returns.
        let holder = t.registry.begin_in(&a).await.unwrap();
        let held = QueueJob::query(&holder)
            .using(&a)
            .filter(QueueJob::id().eq(first))
            .for_update()
            .all()
            .await
            .unwrap();
        assert_eq!(held.len(), 1);
        let other = t.registry.begin_in(&a).await.unwrap();
        let first_job = || {
            QueueJob::query(&other)
                .using(&a)
                .filter(QueueJob::id().eq(first))
        };
        if t.backend == Backend::Sqlite {
            // SQLite locks the file: the second transaction waits for the first.
            let waiting = tokio::spawn({
                let query = first_job().nowait();
                async move { query.all().await }
            });
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert!(!waiting.is_finished(), "SQLite did not wait for the holder");
            holder.commit().await.unwrap();
            assert_eq!(waiting.await.unwrap().unwrap().len(), 1);
        } else {
            let started = std::time::Instant::now();
            let refused = first_job().nowait().all().await;
            assert!(refused.is_err(), "{refused:?}");
            assert!(started.elapsed() < Duration::from_secs(2));
            // skip_locked leaves the held row out instead.
            let skipped = QueueJob::query(&other)
                .using(&a)
                .order_by([QueueJob::id().asc()])
                .limit(1)
                .skip_locked()
                .all()
                .await;
            // PostgreSQL aborts the transaction after the NOWAIT error; MySQL does not.
            if t.backend == Backend::MySql {
                assert_eq!(skipped.unwrap()[0].name, format!("{a}-1"));
            }
            holder.commit().await.unwrap();
        }
        let _ = other.rollback().await;
    }
);
