//! Tenant-only models (`#[model(tenant)]`) fail closed, on every backend: with no tenant
//! schema chosen, every operation on one, and every lookup, subquery, prefetch, relation,
//! many-to-many and raw statement that reaches one from the shared schema, returns
//! `Error::TenantRequired` and sends no statement (counted through the `tenantry.query`
//! spans); `create_all` and the shared migration scope leave the table out of the shared
//! schema while each tenant schema has it; two tenants queried concurrently in one task
//! (pools of 1 and 2) see only their own rows; `set_tenant` inside a scope works.
mod common;

use std::sync::atomic::Ordering;

use common::{
    models::{self, user, Plan, User},
    statements::CountStatements,
    TestDb,
};
use futures_util::StreamExt;
use tenantry::{
    activate_schema, create_schema,
    migrate::{
        diff, introspect, Migration, MigrationScope, Migrations, Migrator, Renames, RunOptions,
        Snapshot,
    },
    set_tenant, tenant_scope, with_tenant, Backend, Error, Filter, ForeignKey, Instance,
    ManyToMany, Model, Registry, SchemaName,
};

/// A tenant-only model, pointing at a tenant-capable one and at a shared one.
#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(tenant, table = "t_ledgers")]
struct Ledger {
    id: i64,
    #[model(max_length = 100, index)]
    label: String,
    amount: i64,
    #[model(on_delete = "set_null")]
    owner: Option<ForeignKey<User>>,
    #[model(on_delete = "set_null")]
    plan: Option<ForeignKey<Plan>>,
}

/// A tenant-only junction: ledgers watched by users.
#[derive(Model, Debug, Clone, PartialEq, serde::Serialize)]
#[model(tenant, table = "t_ledger_watchers")]
struct LedgerWatcher {
    id: i64,
    ledger: ForeignKey<Ledger>,
    user: ForeignKey<User>,
}

const WATCHERS: ManyToMany<LedgerWatcher, Ledger, User> =
    ManyToMany::new(LedgerWatcher::ledger(), LedgerWatcher::user());

const KEY: &[u8] = b"tenant-only-test-cursor-key-of-32-bytes!";

fn ledger(label: &str, amount: i64) -> Ledger {
    Ledger {
        id: 0,
        label: label.into(),
        amount,
        owner: None,
        plan: None,
    }
}

/// The test models plus the tenant-only ones, their shared tables created.
async fn registry(t: &TestDb) -> Registry {
    let r = t
        .registry
        .clone()
        .register::<Ledger>()
        .register::<LedgerWatcher>()
        .cursor_key(KEY);
    r.create_all().await.unwrap();
    r
}

/// A tenant schema holding ledgers `labels` (ids from 1), each owned by user `owner`.
async fn tenant(r: &Registry, schema: &SchemaName, owner: &str, labels: &[&str]) {
    create_schema(r, schema, None, false, true).await.unwrap();
    let owner = User::query(r)
        .using(schema)
        .create(user(owner))
        .await
        .unwrap();
    for (i, label) in labels.iter().enumerate() {
        let mut row = ledger(label, i as i64 + 1);
        row.owner = Some((&owner).into());
        Ledger::query(r).using(schema).create(row).await.unwrap();
    }
}

/// Every operation that reaches a tenant-only model, run where the context chooses no
/// tenant schema, with its outcome. `ann` is a user of the shared schema, `gold` a shared
/// plan.
async fn every_operation(
    r: &Registry,
    ann: &Instance<User>,
    gold: &Instance<Plan>,
) -> Vec<(&'static str, Result<(), Error>)> {
    let q = || Ledger::query(r);
    let mut out: Vec<(&'static str, Result<(), Error>)> = Vec::new();
    out.push(("all", q().all().await.map(drop)));
    out.push(("get", q().get(Ledger::label().eq("a1")).await.map(drop)));
    out.push(("get_pk", q().get_pk(1).await.map(drop)));
    out.push(("first", q().first().await.map(drop)));
    out.push(("last", q().last().await.map(drop)));
    out.push(("count", q().count().await.map(drop)));
    out.push(("exists", q().exists().await.map(drop)));
    out.push(("create", q().create(ledger("x", 1)).await.map(drop)));
    out.push((
        "bulk_create",
        q().bulk_create([ledger("x", 1), ledger("y", 2)])
            .await
            .map(drop),
    ));
    out.push((
        "update",
        q().update([Ledger::amount().set(0)]).await.map(drop),
    ));
    out.push(("delete", q().delete().await.map(drop)));
    out.push((
        "get_or_create",
        q().get_or_create(Ledger::label().eq("x"), ledger("x", 1))
            .await
            .map(drop),
    ));
    out.push((
        "update_or_create",
        q().update_or_create(Ledger::label().eq("x"), ledger("x", 1))
            .await
            .map(drop),
    ));
    out.push(("instance", q().instance(ledger("x", 1)).map(drop)));
    out.push(("to_sql", q().to_sql().map(drop)));
    out.push((
        "aggregate",
        q().aggregate((Ledger::id().count(), Ledger::amount().sum()))
            .await
            .map(drop),
    ));
    out.push((
        "group_by",
        q().group_by(Ledger::label())
            .aggregate((Ledger::amount().sum(),))
            .await
            .map(drop),
    ));
    out.push((
        "values_list",
        q().values_list((Ledger::label(), Ledger::amount()))
            .await
            .map(drop),
    ));
    out.push(("paginate", q().paginate(2).page(1).await.map(drop)));
    out.push(("page_after", q().page_after(2, None).await.map(drop)));
    out.push((
        "stream",
        match q().stream().next().await {
            Some(outcome) => outcome.map(drop),
            None => Ok(()),
        },
    ));
    out.push((
        "select_related",
        q().select_related(Ledger::owner()).all().await.map(drop),
    ));
    out.push((
        "prefetch_related (own)",
        q().prefetch_related(LedgerWatcher::ledger())
            .all()
            .await
            .map(drop),
    ));
    // Into the tenant-only models from the shared schema's rows.
    out.push((
        "prefetch_related into",
        User::query(r)
            .prefetch_related(Ledger::owner())
            .all()
            .await
            .map(drop),
    ));
    out.push((
        "prefetch_many into",
        User::query(r)
            .prefetch_many(WATCHERS.reversed())
            .all()
            .await
            .map(drop),
    ));
    out.push((
        "reverse lookup into",
        User::query(r)
            .filter(Ledger::owner().having(Ledger::amount().gt(0)))
            .all()
            .await
            .map(drop),
    ));
    out.push((
        "subquery into",
        User::query(r)
            .filter(User::id().in_query(Ledger::query(r).subquery(Ledger::owner())))
            .count()
            .await
            .map(drop),
    ));
    out.push((
        "exists into",
        User::query(r)
            .filter(Filter::exists(Ledger::query(r)))
            .count()
            .await
            .map(drop),
    ));
    out.push((
        "prefetch_related from a shared model",
        Plan::query(r)
            .prefetch_related(Ledger::plan())
            .all()
            .await
            .map(drop),
    ));
    out.push((
        "related from a shared instance",
        gold.related(Ledger::plan()).all().await.map(drop),
    ));
    out.push((
        "related (reverse FK) into",
        ann.related(Ledger::owner()).count().await.map(drop),
    ));
    out.push((
        "many-to-many all into",
        WATCHERS.reversed().of(ann).all().all().await.map(drop),
    ));
    out.push((
        "many-to-many clear into",
        WATCHERS.reversed().of(ann).clear().await.map(drop),
    ));
    out.push((
        "raw fetch_all",
        r.raw("SELECT id FROM {t_ledgers}")
            .fetch_all()
            .await
            .map(drop),
    ));
    out.push((
        "raw execute",
        r.raw("DELETE FROM {t_ledgers}").execute().await.map(drop),
    ));
    out.push((
        "raw join into",
        r.raw("SELECT u.id FROM {users} u JOIN {t_ledgers} l ON l.owner_id = u.id")
            .fetch_all()
            .await
            .map(drop),
    ));
    out.push((
        "raw fetch_models",
        r.raw("SELECT id, label, amount, owner_id, plan_id FROM {t_ledgers}")
            .fetch_models::<Ledger>()
            .await
            .map(drop),
    ));
    out
}

/// The shared plan "gold".
async fn gold_plan(r: &Registry) -> Instance<Plan> {
    Plan::query(r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap()
}

/// The operations whose outcome is not `TenantRequired` for a tenant-only table.
fn failures(context: &str, outcomes: Vec<(&'static str, Result<(), Error>)>) -> Vec<String> {
    outcomes
        .into_iter()
        .filter_map(|(op, outcome)| match outcome {
            Err(Error::TenantRequired { model })
                if model == "t_ledgers" || model == "t_ledger_watchers" =>
            {
                None
            }
            other => Some(format!("{context}: {op}: {other:?}")),
        })
        .collect()
}

// The counting subscriber is the test thread's: the harness's runtime polls the test body
// (every statement it sends) on that thread. A control query checks that statements are seen.
backend_test!(
    no_tenant_is_a_typed_error_and_sends_nothing,
    |t: TestDb| async move {
        let r = &registry(&t).await;
        let a = t.schema("a");
        tenant(r, &a, "Ann", &["a1", "a2"]).await;
        let ann = User::query(r).create(user("Ann")).await.unwrap();
        let gold = gold_plan(r).await;
        let (count, counter) = CountStatements::new();
        let _counting = tracing::subscriber::set_default(counter);

        let mut wrong = Vec::new();
        wrong.extend(failures("no scope", every_operation(r, &ann, &gold).await));
        wrong.extend(failures(
            "with_tenant(None)",
            with_tenant(None, every_operation(r, &ann, &gold)).await,
        ));
        wrong.extend(failures(
            "tenant_scope",
            tenant_scope(every_operation(r, &ann, &gold)).await,
        ));
        let outside = count.load(Ordering::SeqCst);
        // In a transaction of the default database.
        let tx = r.begin().await.unwrap();
        let before = count.load(Ordering::SeqCst);
        let in_tx = vec![
            ("tx count", Ledger::query(&tx).count().await.map(drop)),
            (
                "tx create",
                Ledger::query(&tx).create(ledger("x", 1)).await.map(drop),
            ),
            (
                "tx raw",
                tx.raw("SELECT id FROM {t_ledgers}")
                    .fetch_all()
                    .await
                    .map(drop),
            ),
        ];
        wrong.extend(failures("transaction", in_tx));
        let in_tx_sent = count.load(Ordering::SeqCst) - before;
        tx.rollback().await.unwrap();
        let sent = count.load(Ordering::SeqCst);
        assert!(wrong.is_empty(), "{}: {wrong:#?}", t.backend);
        assert_eq!(outside, 0, "{}: statements sent with no tenant", t.backend);
        assert_eq!(
            in_tx_sent, 0,
            "{}: statements sent in the transaction",
            t.backend
        );

        // Control: a tenant-only query with a schema runs, and its statement is counted.
        let in_a = Ledger::query(r).using(&a).count().await.unwrap();
        assert_eq!(in_a, 2);
        assert!(
            count.load(Ordering::SeqCst) > sent,
            "statements are counted"
        );
        // Nothing was written anywhere: the tenant still has its two ledgers, unchanged.
        let labels: Vec<(String, i64)> = Ledger::query(r)
            .using(&a)
            .order_by([Ledger::id().asc()])
            .values_list((Ledger::label(), Ledger::amount()))
            .await
            .unwrap();
        assert_eq!(labels, [("a1".into(), 1), ("a2".into(), 2)]);
    }
);

backend_test!(a_tenant_schema_runs_every_way, |t: TestDb| async move {
    let r = &registry(&t).await;
    let (a, b) = (t.schema("a"), t.schema("b"));
    tenant(r, &a, "Ann", &["a1", "a2"]).await;
    tenant(r, &b, "Bob", &["b1"]).await;
    // using(schema), with_tenant, set_tenant in a scope, activate_schema in a scope.
    assert_eq!(Ledger::query(r).using(&a).count().await.unwrap(), 2);
    assert_eq!(
        with_tenant(Some(b.clone()), Ledger::query(r).count())
            .await
            .unwrap(),
        1
    );
    let via_set = tenant_scope(async {
        set_tenant(Some(a.clone()))?;
        Ledger::query(r).count().await
    })
    .await
    .unwrap();
    assert_eq!(via_set, 2);
    let via_activate = tenant_scope(async {
        activate_schema(&b)?;
        Ledger::query(r).count().await
    })
    .await
    .unwrap();
    assert_eq!(via_activate, 1);
    // A shared plan's tenant-only rows are the scope's tenant's.
    let gold = gold_plan(r).await;
    let mut second = Ledger::query(r).using(&a).get_pk(2).await.unwrap();
    second.plan = Some((&gold).into());
    second.save().await.unwrap();
    let of_gold = |s: SchemaName| with_tenant(Some(s), gold.related(Ledger::plan()).count());
    assert_eq!(of_gold(a.clone()).await.unwrap(), 1);
    assert_eq!(of_gold(b.clone()).await.unwrap(), 0);
    let plans = with_tenant(
        Some(a.clone()),
        Plan::query(r).prefetch_related(Ledger::plan()).all(),
    )
    .await
    .unwrap();
    assert_eq!(plans[0].prefetched(Ledger::plan()).unwrap()[0].label, "a2");
    // A transaction begun in the tenant's scope.
    let in_tx = with_tenant(Some(b.clone()), async {
        let tx = r.begin().await?;
        Ledger::query(&tx).create(ledger("b-tx", 5)).await?;
        let n = Ledger::query(&tx).count().await?;
        tx.commit().await?;
        Ok::<_, Error>(n)
    })
    .await
    .unwrap();
    assert_eq!(in_tx, 2);
    // An explicit using() outranks the scope's tenant.
    let explicit = with_tenant(Some(b.clone()), Ledger::query(r).using(&a).count())
        .await
        .unwrap();
    assert_eq!(explicit, 2);

    // An instance goes back to its tenant outside any scope (it never has the shared
    // schema as its origin): save, refresh, relations, many-to-many, delete.
    let mut first = Ledger::query(r).using(&a).get_pk(1).await.unwrap();
    assert_eq!(first.origin().schema(), Some(&a));
    first.amount = 100;
    first.save().await.unwrap();
    first.refresh().await.unwrap();
    assert_eq!(first.amount, 100);
    let owner = first.fetch(first.owner.as_ref().unwrap()).await.unwrap();
    assert_eq!(owner.name, "Ann");
    assert_eq!(owner.origin().schema(), Some(&a));
    assert_eq!(owner.related(Ledger::owner()).count().await.unwrap(), 2);
    WATCHERS.of(&first).add(&[&owner]).await.unwrap();
    let watched = WATCHERS.reversed().of(&owner).all().all().await.unwrap();
    assert_eq!(watched.len(), 1);
    assert_eq!(watched[0].label, "a1");
    let users = User::query(r)
        .using(&a)
        .prefetch_related(Ledger::owner())
        .prefetch_many(WATCHERS.reversed())
        .all()
        .await
        .unwrap();
    assert_eq!(users[0].prefetched(Ledger::owner()).unwrap().len(), 2);
    assert_eq!(
        users[0].prefetched_many(WATCHERS.reversed()).unwrap().len(),
        1
    );
    let raw = with_tenant(
        Some(a.clone()),
        r.raw("SELECT id, label, amount, owner_id, plan_id FROM {t_ledgers} ORDER BY id")
            .fetch_models::<Ledger>(),
    )
    .await
    .unwrap();
    assert_eq!(raw.len(), 2);
    assert_eq!(raw[0].origin().schema(), Some(&a));
    let watcher = LedgerWatcher::query(r).using(&a).get_pk(1).await.unwrap();
    watcher.delete().await.unwrap();
    assert_eq!(LedgerWatcher::query(r).using(&a).count().await.unwrap(), 0);
    // b has only its own rows.
    assert_eq!(
        Ledger::query(r)
            .using(&b)
            .order_by([Ledger::id().asc()])
            .values_list((Ledger::label(), Ledger::amount()))
            .await
            .unwrap(),
        [("b1".to_owned(), 1), ("b-tx".to_owned(), 5)]
    );
});

backend_pool_test!(
    two_tenants_concurrently_in_one_task,
    |t: TestDb| async move {
        let r = &registry(&t).await;
        let (a, b) = (t.schema("a"), t.schema("b"));
        // The same ids in both tenants, different rows.
        tenant(r, &a, "Ann", &["a1", "a2", "a3"]).await;
        tenant(r, &b, "Bob", &["b1", "b2"]).await;
        let work = |label: &'static str| async move {
            let mut seen = Vec::new();
            for _ in 0..5 {
                let rows: Vec<String> = Ledger::query(r)
                    .order_by([Ledger::id().asc()])
                    .all()
                    .await?
                    .into_iter()
                    .map(|l| l.into_inner().label)
                    .collect();
                seen.push(rows);
                tokio::task::yield_now().await;
            }
            let one = Ledger::query(r).get_pk(1).await?;
            let made = Ledger::query(r).create(ledger(label, 9)).await?;
            let total = Ledger::query(r).count().await?;
            let owners = Ledger::query(r)
                .select_related(Ledger::owner())
                .filter(Ledger::owner().to(User::name()).ne(""))
                .count()
                .await?;
            Ok::<_, Error>((seen, one, made, total, owners))
        };
        let set_b = async {
            set_tenant(Some(b.clone()))?;
            work("new-b").await
        };
        let (in_a, in_b) = tokio::join!(
            with_tenant(Some(a.clone()), work("new-a")),
            tenant_scope(set_b)
        );
        let (seen_a, one_a, made_a, total_a, owners_a) = in_a.unwrap();
        let (seen_b, one_b, made_b, total_b, owners_b) = in_b.unwrap();
        for rows in &seen_a {
            assert_eq!(rows, &["a1", "a2", "a3"], "pool {}", t.max_connections);
        }
        for rows in &seen_b {
            assert_eq!(rows, &["b1", "b2"], "pool {}", t.max_connections);
        }
        assert_eq!((one_a.label.as_str(), one_b.label.as_str()), ("a1", "b1"));
        assert_eq!(one_a.origin().schema(), Some(&a));
        assert_eq!(one_b.origin().schema(), Some(&b));
        assert_eq!(
            (made_a.origin().schema(), made_b.origin().schema()),
            (Some(&a), Some(&b))
        );
        assert_eq!((total_a, total_b), (4, 3));
        assert_eq!((owners_a, owners_b), (3, 2));
        // Each write landed in its own tenant only.
        let labels = |s: SchemaName| async move {
            Ledger::query(r)
                .using(&s)
                .order_by([Ledger::id().asc()])
                .values_list((Ledger::label(),))
                .await
                .unwrap()
                .into_iter()
                .map(|(l,)| l)
                .collect::<Vec<String>>()
        };
        assert_eq!(labels(a.clone()).await, ["a1", "a2", "a3", "new-a"]);
        assert_eq!(labels(b.clone()).await, ["b1", "b2", "new-b"]);
        // A branch with no tenant beside a tenant's branch is refused, and does not borrow it.
        let (with_a, none) = tokio::join!(
            with_tenant(Some(a.clone()), Ledger::query(r).count()),
            tenant_scope(Ledger::query(r).count())
        );
        assert_eq!(with_a.unwrap(), 4);
        assert!(
            matches!(none, Err(Error::TenantRequired { model: "t_ledgers" })),
            "{none:?}"
        );
    }
);

/// The tables of the shared schema, from the backend's catalog.
async fn shared_catalog(t: &TestDb) -> Vec<String> {
    let db = t.registry.database();
    let mut names: Vec<String> = match t.backend {
        Backend::Postgres => {
            let mut conn = db.acquire_postgres().await.unwrap();
            sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
            )
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        }
        Backend::MySql => {
            let mut conn = db.acquire_mysql().await.unwrap();
            sqlx::query_scalar(
                "SELECT CAST(table_name AS CHAR) FROM information_schema.tables \
                 WHERE table_schema = DATABASE()",
            )
            .fetch_all(&mut *conn)
            .await
            .unwrap()
        }
        Backend::Sqlite => {
            let mut conn = db.acquire_sqlite(None).await.unwrap();
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut *conn)
                .await
                .unwrap()
        }
    };
    names.sort();
    names
}

backend_test!(
    create_all_leaves_the_shared_schema_out,
    |t: TestDb| async move {
        let r = &registry(&t).await;
        // Twice: creating is idempotent and still leaves them out.
        r.create_all().await.unwrap();
        let shared = shared_catalog(&t).await;
        assert!(shared.iter().any(|n| n == "users"), "{shared:?}");
        assert!(shared.iter().any(|n| n == "products"), "{shared:?}");
        assert!(!shared.iter().any(|n| n == "t_ledgers"), "{shared:?}");
        assert!(
            !shared.iter().any(|n| n == "t_ledger_watchers"),
            "{shared:?}"
        );
        let live = introspect(r.database(), None).await.unwrap();
        assert!(live.tables.contains_key("users"));
        assert!(!live.tables.contains_key("t_ledgers"));
        // A tenant schema gets them.
        let a = t.schema("a");
        create_schema(r, &a, None, false, true).await.unwrap();
        let live = introspect(r.database(), Some(&a)).await.unwrap();
        assert!(live.tables.contains_key("t_ledgers"), "{live:?}");
        assert!(live.tables.contains_key("t_ledger_watchers"), "{live:?}");
        assert!(
            !live.tables.contains_key("plans"),
            "a shared model stays out"
        );
        assert_eq!(Ledger::query(r).using(&a).count().await.unwrap(), 0);
        // Still none in the shared schema after a tenant was created.
        assert!(!shared_catalog(&t).await.iter().any(|n| n == "t_ledgers"));
    }
);

backend_test!(migrations_match_create_all, |t: TestDb| async move {
    // What makemigrations writes for each scope, from nothing, replayed into a fresh database
    // builds what create_all and create_schema build: the shared schema without the
    // tenant-only tables, each tenant with them.
    let built = &registry(&t).await;
    let models = built.models();
    let shared = Snapshot::of_models(models, MigrationScope::Shared).unwrap();
    let tenant_snapshot = Snapshot::of_models(models, MigrationScope::Tenant).unwrap();
    assert!(shared.table("t_ledgers").is_none());
    assert!(shared.table("users").is_some());
    assert!(tenant_snapshot.table("t_ledgers").is_some());
    assert!(tenant_snapshot.table("plans").is_none());
    let file = |scope, snapshot: &Snapshot| {
        let changes = diff(&Snapshot::default(), snapshot, &Renames::default()).unwrap();
        Migration::file_text(scope, false, &changes.operations)
    };
    let (shared_text, tenant_text) = (
        file(MigrationScope::Shared, &shared),
        file(MigrationScope::Tenant, &tenant_snapshot),
    );
    let set = Migrations::from_files(&[
        ("0001_initial_shared", shared_text.as_str()),
        ("0002_initial_tenant", tenant_text.as_str()),
    ])
    .unwrap();
    let replayed = models::register(Registry::new(t.other_database("gen").await))
        .register::<Ledger>()
        .register::<LedgerWatcher>();
    let (a, b) = (t.schema("built"), t.schema("replayed"));
    create_schema(built, &a, None, false, true).await.unwrap();
    create_schema(&replayed, &b, Some(&[]), false, false)
        .await
        .unwrap();
    let report = Migrator::new(&replayed, set)
        .run(RunOptions {
            tenant: Some(b.clone()),
            ..RunOptions::default()
        })
        .await
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    let (built_shared, replayed_shared) = (
        introspect(built.database(), None).await.unwrap(),
        introspect(replayed.database(), None).await.unwrap(),
    );
    let differences = built_shared.differences(&replayed_shared);
    assert!(
        differences.is_empty(),
        "{}: shared: {differences:#?}",
        t.backend
    );
    assert!(!replayed_shared.tables.contains_key("t_ledgers"));
    let (built_tenant, replayed_tenant) = (
        introspect(built.database(), Some(&a)).await.unwrap(),
        introspect(replayed.database(), Some(&b)).await.unwrap(),
    );
    let differences = built_tenant.differences(&replayed_tenant);
    assert!(
        differences.is_empty(),
        "{}: tenant: {differences:#?}",
        t.backend
    );
    assert!(replayed_tenant.tables.contains_key("t_ledgers"));
    // The migrated database refuses the same way.
    let refused = Ledger::query(&replayed).count().await;
    assert!(
        matches!(refused, Err(Error::TenantRequired { .. })),
        "{refused:?}"
    );
    assert_eq!(Ledger::query(&replayed).using(&b).count().await.unwrap(), 0);
    replayed.disconnect().await;
});
