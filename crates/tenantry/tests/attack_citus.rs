//! Attacks on the Citus support (review of branch `review-citus`): each test tries one way
//! to break tenant isolation or the guarantees `docs/scaling-out-on-citus.md` makes. Tests
//! marked "Found by review" failed on the reviewed code and pass since their fixes; the others
//! held and assert what held.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{citus::CitusDb, citus_models::*};
use sqlx::{Connection as _, PgConnection};
use tenantry::{
    contrib, create_schema, Database, DistributionRule, Error, ForeignKey, Model, Registry,
    SchemaName,
};

/// Creates each tenant with one account named after it and `notes` notes.
async fn tenants_named(r: &Registry, names: &[&SchemaName], notes: usize) {
    let gold = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap();
    for s in names {
        create_schema(r, *s, None, false, true).await.unwrap();
        let account = Account::query(r)
            .using(*s)
            .create(Account {
                id: 0,
                name: s.to_string(),
                plan: ForeignKey::from(&gold),
            })
            .await
            .unwrap();
        if notes > 0 {
            Note::query(r)
                .using(*s)
                .bulk_create((0..notes).map(|i| Note {
                    id: 0,
                    body: format!("{s}-{i}"),
                    account: ForeignKey::from(&account),
                }))
                .await
                .unwrap();
        }
    }
}

async fn distributed_schemas(admin: &mut PgConnection) -> Vec<String> {
    sqlx::query_scalar("SELECT schemaid::regnamespace::text FROM pg_dist_schema ORDER BY 1")
        .fetch_all(admin)
        .await
        .unwrap()
}

/// Attack: the transaction-local `citus.enable_schema_based_sharding` leaking to the
/// pooled session (pool of ONE connection) after a creation that commits and after one
/// that rolls back, so that a later unrelated `CREATE SCHEMA` on that connection would be
/// distributed. Holds: `set_config(.., true)` is transaction-local.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharding_setting_does_not_outlive_the_creating_transaction_on_a_pool_of_one() {
    let Some(cluster) = CitusDb::create("leak").await else {
        return;
    };
    let db = cluster.connect(1).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let a = schema("leak_a");
    tenants_named(&r, &[&a], 0).await;

    // After a commit: the only pooled connection is the one that created leak_a.
    let setting = r
        .raw("SELECT current_setting('citus.enable_schema_based_sharding')")
        .fetch_as::<(String,)>()
        .await
        .unwrap();
    assert_eq!(setting[0].0, "off", "the setting outlived the commit");
    r.raw("CREATE SCHEMA after_commit")
        .fetch_all()
        .await
        .unwrap();

    // After a rollback: the creation of an existing schema fails after set_config.
    let refused = create_schema(&r, &a, None, false, true).await.unwrap_err();
    assert!(
        matches!(refused, Error::SchemaAlreadyExists { .. }) || refused.database_code().is_some(),
        "{refused:?}"
    );
    let setting = r
        .raw("SELECT current_setting('citus.enable_schema_based_sharding')")
        .fetch_as::<(String,)>()
        .await
        .unwrap();
    assert_eq!(setting[0].0, "off", "the setting outlived the rollback");
    r.raw("CREATE SCHEMA after_rollback")
        .fetch_all()
        .await
        .unwrap();

    let mut admin = cluster.admin().await;
    let distributed = distributed_schemas(&mut admin).await;
    assert_eq!(distributed, vec!["leak_a".to_string()], "{distributed:?}");
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
}

/// Attack: a lazily connected Database (deployment never detected) whose first use is
/// `contrib::create_tenant` on a pool of one connection: a deadlock waiting for a second
/// connection to detect the deployment, or a tenant created as a plain (local) schema.
/// Holds: detection goes through the creating transaction; the tenant is distributed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_database_creates_a_distributed_tenant_on_a_pool_of_one() {
    let Some(cluster) = CitusDb::create("lazy").await else {
        return;
    };
    // The shared tables, made by another (eager) Database.
    let eager = cluster.connect(2).await;
    contrib::register(registry(eager.clone()))
        .create_all()
        .await
        .unwrap();
    eager.disconnect().await;

    let lazy = Database::options(&cluster.url())
        .max_connections(1)
        .connect_lazy()
        .await
        .unwrap();
    assert!(
        !lazy.capabilities().distributed_schemas,
        "nothing detected yet"
    );
    let r = contrib::register(registry(lazy.clone()));
    let made = tokio::time::timeout(
        Duration::from_secs(60),
        contrib::create_tenant(&r, "lazy_a", "Lazy A"),
    )
    .await
    .expect("create_tenant on a lazy pool of one deadlocked");
    made.unwrap();
    assert!(lazy.capabilities().distributed_schemas);
    let mut admin = cluster.admin().await;
    assert_eq!(
        distributed_schemas(&mut admin).await,
        vec!["lazy_a".to_string()]
    );
    admin.close().await.unwrap();
    lazy.disconnect().await;
    cluster.drop().await;
}

/// Attack: `create_schema(if_not_exists = true)` over a schema that already exists as a
/// plain local schema of the coordinator (a tenant made before `CREATE EXTENSION citus`, a
/// restored dump, or a schema made by hand), empty or already holding a table. Holds: Citus
/// distributes the existing schema under the transaction's setting, and tenantry's tables
/// are schema-distributed tables placed on a worker (a pre-existing local table stays local).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_not_exists_over_a_local_schema_distributes_the_tenant() {
    let Some(cluster) = CitusDb::create("localschema").await else {
        return;
    };
    let db = cluster.connect(2).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let mut admin = cluster.admin().await;
    sqlx::raw_sql(
        "CREATE SCHEMA local_a; CREATE SCHEMA local_b; \
         CREATE TABLE local_b.legacy (id bigint PRIMARY KEY)",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let citus = db.citus().await.unwrap();
    // An empty local schema: distributed by the creation (holds).
    create_schema(&r, "local_a", None, true, true)
        .await
        .unwrap();
    assert!(distributed_schemas(&mut admin)
        .await
        .contains(&"local_a".to_string()));
    assert!(citus.placement(&schema("local_a")).await.is_ok());
    // A local schema holding a table.
    let created = create_schema(&r, "local_b", None, true, true).await;
    let distributed = distributed_schemas(&mut admin).await;
    let placed = citus.placement(&schema("local_b")).await;
    let kinds: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, citus_table_type::text FROM citus_tables \
         WHERE table_name::text LIKE 'local_b.%' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
    assert!(
        created.is_err() || (distributed.contains(&"local_b".to_string()) && placed.is_ok()),
        "create_schema(if_not_exists) returned {created:?} but local_b is not distributed \
         (pg_dist_schema: {distributed:?}, placement: {placed:?})"
    );
    let tables: Vec<&str> = kinds.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        tables,
        vec![
            "local_b.account_labels",
            "local_b.accounts",
            "local_b.labels",
            "local_b.notes"
        ]
    );
    assert!(kinds.iter().all(|(_, kind)| kind == "schema"), "{kinds:?}");
}

/// Attack: bypass the rules. An i32 auto key passed explicitly to `create_schema`, the same
/// model with tables not created, and AcrossTenants through another door (a many-to-many's
/// rows used as a subquery under another tenant's query). Also: the refusal's Display must
/// not name either tenant. Holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_hold_through_explicit_models_and_subqueries() {
    let Some(cluster) = CitusDb::create("bypass").await else {
        return;
    };
    let db = cluster.connect(4).await;
    let r = registry(db.clone()).register::<SmallKey>();
    // create_all refuses the registry with SmallKey; make the others' tables with a
    // registry without it.
    let refused = r.create_all().await.unwrap_err();
    assert!(matches!(
        refused,
        Error::Distribution {
            rule: DistributionRule::KeyNotBigint { .. },
            ..
        }
    ));
    let ok = registry(db.clone());
    ok.create_all().await.unwrap();
    let (a, b) = (schema("bypass_a"), schema("bypass_b"));
    tenants_named(&ok, &[&a, &b], 0).await;

    for tables in [true, false] {
        let refused = create_schema(&ok, "bypass_c", Some(&[SmallKey::META]), false, tables)
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Distribution {
                    ref model,
                    rule: DistributionRule::KeyNotBigint { ref column }
                } if model == "small_keys" && column == "id"
            ),
            "{refused:?}"
        );
    }

    let account_a = Account::query(&ok).using(&a).get_pk(1_i64).await.unwrap();
    let label_a = Label::query(&ok)
        .using(&a)
        .create(Label {
            id: 0,
            name: "red".into(),
        })
        .await
        .unwrap();
    LABELS.of(&account_a).add(&[&label_a]).await.unwrap();
    Label::query(&ok)
        .using(&b)
        .create(Label {
            id: 0,
            name: "b-secret".into(),
        })
        .await
        .unwrap();

    // a's links choosing b's labels: refused, and the message names neither tenant.
    let refused = LABELS
        .of(&account_a)
        .all()
        .using(&b)
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Distribution {
                rule: DistributionRule::AcrossTenants { .. },
                ..
            }
        ),
        "{refused:?}"
    );
    let shown = refused.to_string();
    assert!(
        !shown.contains("bypass_a") && !shown.contains("bypass_b"),
        "{shown}"
    );
    // The same pinned rows as a subquery of b's query: refused too (a subquery with a place).
    let sub = LABELS.of(&account_a).all().subquery(Label::id());
    let refused = Label::query(&ok)
        .using(&b)
        .filter(Label::id().in_query(sub))
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::InvalidArgument { .. } | Error::Distribution { .. }
        ),
        "{refused:?}"
    );
    // In its own tenant it reads its own label only.
    let own = LABELS.of(&account_a).all().all().await.unwrap();
    assert_eq!(
        own.iter().map(|l| l.name.clone()).collect::<Vec<_>>(),
        vec!["red"]
    );
    db.disconnect().await;
    cluster.drop().await;
}

/// Attack: move_tenant with an unknown host, port 0, an empty host, a schema that is not a
/// distributed tenant (a plain local schema; a name that does not exist), and a second
/// rebalance looping. Holds: each refused before any move, no ledger row written, and a
/// rebalance of a balanced cluster moves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_tenant_refuses_bad_destinations_and_schemas() {
    let Some(cluster) = CitusDb::create("badmove").await else {
        return;
    };
    let db = cluster.connect(4).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let (a, b) = (schema("move_a"), schema("move_b"));
    tenants_named(&r, &[&a, &b], 3).await;
    let citus = db.citus().await.unwrap();
    let from = citus.placement(&a).await.unwrap();
    let nodes = citus.nodes().await.unwrap();
    let other = nodes.iter().find(|n| n.port != from.port).unwrap();

    for (host, port) in [
        ("no-such-host", other.port),
        ("", other.port),
        (other.host.as_str(), 0),
        ("::1", other.port),
    ] {
        let refused = citus.move_tenant(&a, host, port).await.unwrap_err();
        assert!(
            matches!(refused, Error::InvalidArgument { argument: "to", .. }),
            "{host}:{port}: {refused:?}"
        );
    }
    let mut admin = cluster.admin().await;
    sqlx::raw_sql("CREATE SCHEMA plain_local; CREATE TABLE plain_local.t (id bigint)")
        .execute(&mut admin)
        .await
        .unwrap();
    for name in ["plain_local", "ghost"] {
        let refused = citus
            .move_tenant(&schema(name), &other.host, other.port)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, Error::SchemaNotFound { .. }),
            "{name}: {refused:?}"
        );
    }
    let ledger: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('public.tenantry_tenant_moves')::text")
            .fetch_one(&mut admin)
            .await
            .unwrap();
    assert_eq!(ledger, None, "a refused move wrote the ledger");
    assert_eq!(citus.placement(&a).await.unwrap(), from);

    // Rebalance terminates, and a second one moves nothing.
    citus.rebalance().await.unwrap();
    let again = citus.rebalance().await.unwrap();
    assert!(again.moves.is_empty(), "{:?}", again.moves);
    // b was never touched by a's refused moves and reads its own rows.
    let notes = Note::query(&r).using(&b).all().await.unwrap();
    assert_eq!(notes.len(), 3);
    assert!(notes.iter().all(|n| n.body.starts_with("move_b-")));
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
}

/// Attack: move a tenant onto a worker that does not accept tenants (`shouldhaveshards` =
/// false: being drained); move_tenant checks only that host:port is listed by nodes().
/// Holds: Citus itself refuses (0A000), the tenant stays where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_tenant_onto_a_worker_that_accepts_no_tenants_is_refused() {
    let Some(cluster) = CitusDb::create("drained").await else {
        return;
    };
    let db = cluster.connect(4).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let a = schema("drain_a");
    tenants_named(&r, &[&a], 2).await;
    let citus = db.citus().await.unwrap();
    let from = citus.placement(&a).await.unwrap();
    let other = citus
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.port != from.port)
        .unwrap();
    let mut admin = cluster.admin().await;
    sqlx::query("SELECT citus_set_node_property($1, $2, 'shouldhaveshards', false)")
        .bind(&other.host)
        .bind(i32::from(other.port))
        .execute(&mut admin)
        .await
        .unwrap();
    let moved = citus.move_tenant(&a, &other.host, other.port).await;
    let now = citus.placement(&a).await.unwrap();
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
    assert!(
        moved.is_err() && now.port == from.port,
        "moved onto a worker that accepts no tenants: {moved:?}, now on {}:{}",
        now.host,
        now.port
    );
}

/// Attack: the progress of one tenant's move while another tenant's move runs. Progress is
/// read from `get_rebalance_progress()`, which lists every move of the database.
// Found by review (fixed: the progress query keeps only the moved schema's tables): tenant
// `prog_small`'s move reported tenant `prog_big`'s shards as its own progress (total_bytes
// and phase of the other tenant's move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_progress_counts_only_the_moved_tenant() {
    let Some(cluster) = CitusDb::create("progress").await else {
        return;
    };
    let db = cluster.connect(8).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let (small, big) = (schema("prog_small"), schema("prog_big"));
    tenants_named(&r, &[&small, &big], 1).await;
    let mut admin = cluster.admin().await;
    sqlx::raw_sql(
        "INSERT INTO prog_big.notes (body, account_id) \
         SELECT repeat('x', 500), 1 FROM generate_series(1, 120000)",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let citus = db.citus().await.unwrap();
    let small_at = citus.placement(&small).await.unwrap();
    let big_at = citus.placement(&big).await.unwrap();
    let nodes = citus.nodes().await.unwrap();
    let small_to = nodes
        .iter()
        .find(|n| n.port != small_at.port)
        .unwrap()
        .clone();
    let big_to = nodes
        .iter()
        .find(|n| n.port != big_at.port)
        .unwrap()
        .clone();

    // The big tenant moves (by another operator, logical replication) ...
    let url = cluster.url();
    let big_move = tokio::spawn(async move {
        let mut other = PgConnection::connect(&url).await.unwrap();
        let moved = sqlx::query(
            "SELECT citus_schema_move('prog_big'::regnamespace, $1, $2, 'force_logical')",
        )
        .bind(&big_to.host)
        .bind(i32::from(big_to.port))
        .execute(&mut other)
        .await;
        other.close().await.unwrap();
        (moved.map(drop), std::time::Instant::now())
    });
    // ... seen in get_rebalance_progress() ...
    let mut overlapping = false;
    for _ in 0..200 {
        let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM get_rebalance_progress()")
            .fetch_one(&mut admin)
            .await
            .unwrap();
        if rows > 0 {
            overlapping = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        overlapping,
        "the big move never showed in get_rebalance_progress()"
    );
    // ... while the small one moves with progress.
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let moved = citus
        .move_tenant_with(&small, &small_to.host, small_to.port, move |p| {
            seen.lock().unwrap().push(p)
        })
        .await;
    let small_done = std::time::Instant::now();
    let (big_moved, big_done) = big_move.await.unwrap();
    let big_after_small = big_done > small_done;
    let reports = reports.lock().unwrap().clone();
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
    eprintln!(
        "small {} bytes moved {moved:?}; big {} bytes moved {big_moved:?} \
         (ended after the small one: {big_after_small}); reports {reports:?}",
        small_at.bytes, big_at.bytes
    );
    assert!(moved.is_ok() && big_moved.is_ok());
    // Generous bound: the small tenant's total is a few tables of 8-16 kB each.
    let bound = small_at.bytes.max(1) * 4;
    for report in &reports {
        assert!(
            report.total_bytes <= bound,
            "prog_small's progress reports {} bytes (its size {}): another tenant's move",
            report.total_bytes,
            small_at.bytes
        );
    }
}

/// Attack: NodeUnavailable classification. An ordinary error a statement raises itself with
/// a SQLSTATE of class 08 (a trigger, a function, a foreign data wrapper) on plain
/// PostgreSQL, where there is no node and no Citus.
// Found by review (fixed: only Citus's own "connection to the remote node" report of class 08
// is NodeUnavailable, which keeps its SQLSTATE): on plain PostgreSQL a tenant's own `RAISE ..
// USING ERRCODE = '08006'` (message "tenant acme: invoice 42 ...") became
// Error::NodeUnavailable, answered 503 and logged as a node outage with the tenant's data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_class_08_error_on_plain_postgres_is_not_node_unavailable() {
    let Ok(url) = std::env::var("TENANTRY_TEST_POSTGRES_URL") else {
        assert!(std::env::var("TENANTRY_TEST_REQUIRE_ALL").is_err());
        return;
    };
    let db = Database::connect(&url).await.unwrap();
    assert!(!db.deployment().await.unwrap().is_citus());
    // A function of the application's (a trigger would do the same), made beside it.
    let mut admin = PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE OR REPLACE FUNCTION attack_citus_raise() RETURNS int LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'tenant acme: invoice 42 is locked' USING ERRCODE = '08006'; \
         END $$",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let r = Registry::new(db.clone());
    let error = r
        .raw("SELECT attack_citus_raise()")
        .fetch_all()
        .await
        .unwrap_err();
    sqlx::raw_sql("DROP FUNCTION attack_citus_raise()")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    db.disconnect().await;
    assert!(
        !matches!(error, Error::NodeUnavailable { .. }),
        "an ordinary error on a single server classified as a node outage: {error:?}"
    );
}

/// Attack: the KeyNotBigint rule through the migration runner, which creates tables in every
/// tenant's distributed schema without `create_all` or `create_schema`.
// Found by review (fixed: on Citus the runner checks every migration's columns before any
// step): tenants `mig_a` and `mig_b` (distributed schemas) got a table `m_small` whose
// database-assigned key was a 32-bit SERIAL; an insert through mig_a's worker then failed
// ("nextval: reached maximum value of sequence m_small_id_seq").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_cannot_create_a_32_bit_auto_key_in_a_distributed_tenant() {
    use tenantry::migrate::{Migrations, Migrator, RunOptions};
    const SMALL: &str = r#"{ "scope": "tenant", "operations": [
      { "op": "create_table", "table": "m_small", "columns": [
        { "name": "id", "type": "integer", "primary_key": true, "auto_increment": true },
        { "name": "code", "type": "varchar", "max_length": 10 } ] } ] }"#;
    let Some(cluster) = CitusDb::create("migrate").await else {
        return;
    };
    let db = cluster.connect(4).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    for name in ["mig_a", "mig_b"] {
        create_schema(&r, name, Some(&[]), false, false)
            .await
            .unwrap();
    }
    let migrations = Migrations::from_files(&[("0001_small", SMALL)]).unwrap();
    let ran = Migrator::new(&r, migrations)
        .run(RunOptions {
            concurrency: 1,
            ..RunOptions::default()
        })
        .await;
    let mut admin = cluster.admin().await;
    let made: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM citus_tables WHERE table_name::text LIKE '%.m_small' \
         ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    // What such a table does: an insert through the worker that holds mig_a.
    let from_worker = match db.citus().await.unwrap().placement(&schema("mig_a")).await {
        Ok(p) => {
            let url = format!("postgres://postgres@{}:{}/{}", p.host, p.port, cluster.name);
            let mut worker = PgConnection::connect(&url).await.unwrap();
            let inserted = sqlx::raw_sql("INSERT INTO mig_a.m_small (code) VALUES ('x')")
                .execute(&mut worker)
                .await
                .map(drop)
                .map_err(|e| e.to_string());
            worker.close().await.unwrap();
            format!("{inserted:?}")
        }
        Err(error) => format!("no placement: {error}"),
    };
    db.disconnect().await;
    cluster.drop().await;
    let refused = match &ran {
        Err(Error::Distribution { .. }) => true,
        Ok(report) => !report.is_complete() && made.is_empty(),
        Err(_) => false,
    };
    assert!(
        refused && made.is_empty(),
        "a 32-bit auto key was made in distributed tenants {made:?} (run: {:?}); \
         an insert through mig_a's worker: {from_worker}",
        ran.map(|r| r.is_complete())
    );
}

/// Attack: tenant `live_b` is moved (logical replication, then the switch) while tenant
/// `live_a`, on the same worker, is written and read without pause: does `live_a` see any of
/// `live_b`'s rows, lose a write, or fail? Holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenant_written_during_a_move_sees_nothing_of_it() {
    let Some(cluster) = CitusDb::create("livemove").await else {
        return;
    };
    let db = cluster.connect(8).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let (a, b) = (schema("live_a"), schema("live_b"));
    tenants_named(&r, &[&a, &b], 200).await;
    let citus = db.citus().await.unwrap();
    let b_at = citus.placement(&b).await.unwrap();
    let to = citus
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.port != b_at.port)
        .unwrap();
    let account_a = Account::query(&r).using(&a).get_pk(1_i64).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (r, a, stop, account_a) = (r.clone(), a.clone(), stop.clone(), account_a.clone());
        tokio::spawn(async move {
            let mut written = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || written < 20 {
                Note::query(&r)
                    .using(&a)
                    .create(Note {
                        id: 0,
                        body: format!("live_a-w{written}"),
                        account: ForeignKey::from(&account_a),
                    })
                    .await
                    .unwrap();
                written += 1;
                let notes = Note::query(&r).using(&a).all().await.unwrap();
                assert_eq!(notes.len(), 200 + written);
                assert!(
                    notes.iter().all(|n| n.body.starts_with("live_a-")),
                    "live_a read live_b's notes during its move"
                );
            }
            written
        })
    };
    let moved = citus.move_tenant(&b, &to.host, to.port).await.unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.await.unwrap();
    assert_eq!(moved.to, format!("{}:{}", to.host, to.port));
    assert_eq!(citus.placement(&b).await.unwrap().port, to.port);
    let b_notes = Note::query(&r).using(&b).all().await.unwrap();
    assert_eq!(b_notes.len(), 200);
    assert!(b_notes.iter().all(|n| n.body.starts_with("live_b-")));
    assert_eq!(
        Note::query(&r).using(&a).count().await.unwrap(),
        (200 + written) as u64
    );
    db.disconnect().await;
    cluster.drop().await;
}
