//! Isolation under cancellation: query futures dropped at every await point inside tenant
//! scopes leave no state on pooled connections and no rows where they must not be.
//!
//! Every operation (create, bulk_create, update, all, get, a transaction dropped midway, a
//! transaction rolled back, `registry.transaction` returning `Err`, `registry.transaction`
//! returning `Ok`) runs inside `with_tenant`:
//!
//! 1. dropped after its `n`-th poll, for `n = 1, 2, …` until it completes, so it is
//!    cancelled once at each of its await points;
//! 2. under `tokio::time::timeout` of 0, 1 µs, 10 µs, 100 µs, 500 µs, 1 ms, 2 ms and 5 ms;
//!
//! four tenants at once, in parallel tasks. An operation that completes must succeed, or
//! fail with a retryable deadlock/serialization error (counted; see `retryable`). Then:
//!
//! - no pooled connection is inside a transaction (see `common::state`);
//! - no row written by a transaction that did not commit is visible anywhere, and a
//!   `registry.transaction` that committed is visible whole or not at all;
//! - the default schema received nothing, and each tenant holds only rows of its own;
//! - 16 concurrent tasks reading the tenants in rotation each get exactly that tenant's
//!   rows, and the next users' writes are visible from a fresh handle.
mod common;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{cancel::cancel_after_polls, models::*, state};
use tenantry::{create_schema, with_tenant, Backend, Error, Model, Registry, SchemaName};

const TENANTS: usize = 4;
/// How often each tenant's task runs the whole schedule.
const ROUNDS: usize = 2;
/// An operation that needs more polls than this is a test bug.
const MAX_POLLS: usize = 500;
const TIMEOUTS_US: &[u64] = &[0, 1, 10, 100, 500, 1_000, 2_000, 5_000];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Create,
    BulkCreate,
    Update,
    All,
    Get,
    TxDropped,
    TxRolledBack,
    ScopeErr,
    ScopeOk,
}

const OPS: &[Op] = &[
    Op::Create,
    Op::BulkCreate,
    Op::Update,
    Op::All,
    Op::Get,
    Op::TxDropped,
    Op::TxRolledBack,
    Op::ScopeErr,
    Op::ScopeOk,
];

/// The error a `registry.transaction` body returns on purpose.
fn planned_error() -> Error {
    Error::NotFound { model: "planned" }
}

/// One tenant's world: its schema and the tag every row it owns starts with.
#[derive(Clone)]
struct Tenant {
    schema: SchemaName,
    tag: String,
}

/// A transaction for work in `tenant`: on SQLite a transaction lives in one schema file,
/// so it is begun in the tenant's; elsewhere `begin()` serves every schema.
async fn begin(r: &Registry, tenant: &Tenant) -> tenantry::Result<tenantry::Transaction> {
    match r.database().backend() {
        Backend::Sqlite => r.begin_in(&tenant.schema).await,
        _ => r.begin().await,
    }
}

/// Runs `op` once in the current tenant scope. `Ok` when it did what it should have.
async fn run(r: &Registry, tenant: &Tenant, op: Op, step: usize) -> tenantry::Result<()> {
    let tag = &tenant.tag;
    match op {
        Op::Create => {
            User::query(r)
                .create(user(&format!("{tag}-maybe-c{step}")))
                .await?;
        }
        Op::BulkCreate => {
            User::query(r)
                .bulk_create((0..10).map(|k| user(&format!("{tag}-maybe-b{step}-{k}"))))
                .await?;
        }
        Op::Update => {
            User::query(r)
                .filter(User::name().startswith(format!("{tag}-maybe")))
                .update([User::email().set(format!("{tag}-updated-{step}@example.com"))])
                .await?;
        }
        Op::All => {
            let rows = User::query(r).all().await?;
            for row in rows {
                assert!(row.name.starts_with(&format!("{tag}-")), "{}", row.name);
            }
        }
        Op::Get => {
            let found = User::query(r)
                .get(User::name().eq(format!("{tag}-base-0")))
                .await?;
            assert!(found.email.contains(tag.as_str()));
            assert!(User::query(r).count().await? >= 5);
        }
        Op::TxDropped => {
            let tx = begin(r, tenant).await?;
            User::query(&tx)
                .create(user(&format!("{tag}-never-d{step}")))
                .await?;
            User::query(&tx)
                .bulk_create((0..3).map(|k| user(&format!("{tag}-never-d{step}-{k}"))))
                .await?;
            User::query(&tx)
                .update([User::email().set(format!("{tag}-never-{step}@example.com"))])
                .await?;
            assert!(User::query(&tx).count().await? >= 9);
            drop(tx);
        }
        Op::TxRolledBack => {
            let tx = begin(r, tenant).await?;
            User::query(&tx)
                .create(user(&format!("{tag}-never-r{step}")))
                .await?;
            User::query(&tx)
                .filter(User::name().startswith(format!("{tag}-base")))
                .delete()
                .await?;
            tx.rollback().await?;
        }
        Op::ScopeErr => {
            let tenant = tenant.clone();
            let result: tenantry::Result<()> = r
                .transaction(|tx| async move {
                    scope_writes(&tx, &tenant, &format!("never-s{step}")).await?;
                    Err(planned_error())
                })
                .await;
            match result {
                Err(Error::NotFound { model: "planned" }) => {}
                other => other?,
            }
        }
        Op::ScopeOk => {
            let tenant = tenant.clone();
            r.transaction(
                |tx| async move { scope_writes(&tx, &tenant, &format!("grp{step}")).await },
            )
            .await?;
        }
    }
    Ok(())
}

/// The writes of a `registry.transaction` body, all named `<tag>-<label>-<k>`: three users
/// in the tenant's schema and, on PostgreSQL and MySQL, three shared `Plan` rows. (On SQLite
/// `registry.transaction` begins in the tenant's file, which the shared schema is not in.)
async fn scope_writes(
    tx: &tenantry::Transaction,
    tenant: &Tenant,
    label: &str,
) -> tenantry::Result<()> {
    let tag = &tenant.tag;
    for k in 0..3 {
        if tx.database().backend() != Backend::Sqlite {
            Plan::query(tx)
                .create(Plan {
                    id: 0,
                    title: format!("{tag}-{label}-{k}"),
                })
                .await?;
        }
        User::query(tx)
            .create(user(&format!("{tag}-{label}-{k}")))
            .await?;
    }
    Ok(())
}

#[derive(Default, Debug)]
struct Tally {
    /// (op, cancelled, completed)
    by_op: BTreeMap<Op, (usize, usize)>,
    /// Completed operations that failed with a deadlock or serialization error.
    retryable: usize,
}

/// One tenant's attack: the whole schedule, `ROUNDS` times, inside `with_tenant`.
async fn attack(r: Registry, tenant: Tenant, tally: Arc<Mutex<Tally>>) {
    let mut step = 0;
    with_tenant(Some(tenant.schema.clone()), async {
        for _ in 0..ROUNDS {
            for &op in OPS {
                // Cancelled at every await point in turn.
                let mut polls = 1;
                loop {
                    step += 1;
                    let outcome = cancel_after_polls(polls, run(&r, &tenant, op, step)).await;
                    record(&tally, op, &outcome);
                    match outcome {
                        Some(done) => {
                            check(done, format_args!("{op:?} after {polls} polls"));
                            break;
                        }
                        None => polls += 1,
                    }
                    assert!(polls < MAX_POLLS, "{op:?} never completes");
                }
                // Cancelled by timeouts of growing length.
                for &us in TIMEOUTS_US {
                    step += 1;
                    let outcome =
                        tokio::time::timeout(Duration::from_micros(us), run(&r, &tenant, op, step))
                            .await
                            .ok();
                    record(&tally, op, &outcome);
                    if let Some(done) = outcome {
                        check(done, format_args!("{op:?} under {us} µs"));
                    }
                }
            }
        }
    })
    .await;
}

fn record(tally: &Mutex<Tally>, op: Op, outcome: &Option<tenantry::Result<()>>) {
    let mut tally = tally.lock().unwrap();
    let entry = tally.by_op.entry(op).or_default();
    match outcome {
        None => entry.0 += 1,
        Some(_) => entry.1 += 1,
    }
    if let Some(Err(error)) = outcome {
        if retryable(error) {
            tally.retryable += 1;
        }
    }
}

/// A deadlock or serialization failure (SQLSTATE 40001 / 40P01): work cancelled a moment
/// earlier may still hold its locks on the server until its rollback (or the close of its
/// connection) is processed, and a new transaction of the same tenant can collide with it.
/// The database reports that clearly and the statement may be retried; it is counted, not
/// a failure of the test.
fn retryable(error: &Error) -> bool {
    matches!(error.database_code().as_deref(), Some("40001" | "40P01"))
}

/// Panics unless `result` is `Ok` or a retryable error.
fn check(result: tenantry::Result<()>, what: std::fmt::Arguments<'_>) {
    match result {
        Ok(()) => {}
        Err(error) if retryable(&error) => {}
        Err(error) => panic!("{what}: {error:?}"),
    }
}

backend_test!(
    cancelled_futures_leave_no_trace,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let started = std::time::Instant::now();
        let mut tenants = Vec::new();
        for i in 0..TENANTS {
            let schema = t.schema(&format!("k{i}"));
            create_schema(r, &schema, Some(&[User::META]), false, true)
                .await
                .unwrap();
            let tag = format!("k{i}");
            with_tenant(
                Some(schema.clone()),
                User::query(r).bulk_create((0..5).map(|k| user(&format!("{tag}-base-{k}")))),
            )
            .await
            .unwrap();
            tenants.push(Tenant { schema, tag });
        }

        let tally = Arc::new(Mutex::new(Tally::default()));
        let mut tasks = Vec::new();
        for tenant in &tenants {
            tasks.push(tokio::spawn(attack(
                r.clone(),
                tenant.clone(),
                tally.clone(),
            )));
        }
        for task in tasks {
            task.await.unwrap();
        }

        // No pooled connection is left inside a transaction.
        let checked = state::assert_no_open_transaction(&t, r.database()).await;

        // Nothing of a transaction that did not commit is visible; a committed scope is
        // visible whole or not at all; every tenant holds only its own rows.
        let plans: Vec<String> = Plan::query(r)
            .all()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.into_inner().title)
            .collect();
        assert!(
            plans.iter().all(|p| !p.contains("never")),
            "rolled-back plans are visible: {plans:?}"
        );
        let mut committed_scopes = 0;
        for tenant in &tenants {
            let users: Vec<User> = with_tenant(Some(tenant.schema.clone()), User::query(r).all())
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.into_inner())
                .collect();
            for u in &users {
                assert!(u.name.starts_with(&format!("{}-", tenant.tag)), "{u:?}");
                assert!(!u.name.contains("never"), "rolled-back row visible: {u:?}");
                assert!(
                    !u.email.contains("never"),
                    "rolled-back update visible: {u:?}"
                );
                assert!(u.email.contains(tenant.tag.as_str()), "{u:?}");
            }
            for k in 0..5 {
                let base = format!("{}-base-{k}", tenant.tag);
                assert!(users.iter().any(|u| u.name == base), "{base} is gone");
            }
            // Group atomicity: per committed scope, 3 users (and 3 plans off SQLite) or none.
            let mut groups: BTreeMap<String, (usize, usize)> = BTreeMap::new();
            let prefix = format!("{}-grp", tenant.tag);
            for p in plans.iter().filter(|p| p.starts_with(&prefix)) {
                groups.entry(group_of(p)).or_default().0 += 1;
            }
            for u in users.iter().filter(|u| u.name.starts_with(&prefix)) {
                groups.entry(group_of(&u.name)).or_default().1 += 1;
            }
            let plans_per_group = if t.backend == Backend::Sqlite { 0 } else { 3 };
            for (group, counts) in &groups {
                assert_eq!(*counts, (plans_per_group, 3), "scope {group} is partial");
            }
            committed_scopes += groups.len();
        }
        assert_eq!(
            User::query(r).count().await.unwrap(),
            0,
            "the default schema received rows"
        );

        // Each tenant reads exactly its own rows, also 16 tasks at once.
        let schemas: Vec<SchemaName> = tenants.iter().map(|t| t.schema.clone()).collect();
        let expected = state::snapshot(r, &schemas).await;
        state::assert_tenants_read_their_own(r, &schemas, &expected, 16, 12).await;

        // The pool's next users write and are seen from a fresh handle.
        let mut everyone: Vec<Option<SchemaName>> = schemas.iter().cloned().map(Some).collect();
        everyone.push(None);
        state::assert_next_writes_visible(&t, r, &everyone, 4, "after").await;
        state::assert_no_open_transaction(&t, r.database()).await;

        let tally = tally.lock().unwrap();
        let (cancelled, completed) = tally
            .by_op
            .values()
            .fold((0, 0), |(c, d), (a, b)| (c + a, d + b));
        eprintln!(
            "[attack_cancellation] {}: {cancelled} operations cancelled, {completed} completed \
             ({:?}), {} completed with a retryable deadlock error; {committed_scopes} \
             committed scopes whole; {checked} pooled connections clean; {:.1} s",
            t.backend,
            tally.by_op,
            tally.retryable,
            started.elapsed().as_secs_f64()
        );
    }
);

/// `k0-grp17-2` → `k0-grp17`.
fn group_of(name: &str) -> String {
    name.rsplit_once('-')
        .map(|(g, _)| g)
        .unwrap_or(name)
        .to_owned()
}
