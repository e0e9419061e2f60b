//! Citus: tenants as distributed schemas of a live cluster (`TENANTRY_TEST_CITUS_URL`, the
//! coordinator of the 3-node cluster `.ci/run` starts), shared models as reference tables,
//! the rules refused before any SQL, tenant moves and rebalancing. Each test has a database
//! of its own on the cluster (`common::citus`).

mod common;

use std::{
    collections::BTreeSet,
    sync::{atomic::Ordering, Arc},
};

use common::{citus::CitusDb, citus_models::*, statements::CountStatements};
use futures_util::{stream, StreamExt};
use sqlx::{Connection as _, Row as _};
use tenantry::{
    create_schema, Deployment, DistributionRule, Error, ForeignKey, Model, Registry, SchemaName,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_are_distributed_schemas_on_both_workers_and_read_only_their_rows() {
    let Some(cluster) = CitusDb::create("fifty").await else {
        return;
    };
    let db = cluster.connect(16).await;
    assert!(matches!(
        db.deployment().await.unwrap(),
        Deployment::Citus { .. }
    ));
    assert!(db.capabilities().distributed_schemas);
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let names = tenants(&r, 50, 3).await;

    // The shared model is a reference table; the tenants' tables are in their schemas.
    let mut admin = cluster.admin().await;
    let kinds: Vec<(String, String)> =
        sqlx::query("SELECT logicalrelid::text, repmodel::text FROM pg_dist_partition ORDER BY 1")
            .fetch_all(&mut admin)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
    assert!(kinds.contains(&("plans".into(), "t".into())), "{kinds:?}");
    let distributed: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_dist_schema")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(distributed, 50);

    // Spread over both workers, each tenant where the placement says.
    let citus = db.citus().await.unwrap();
    let nodes = citus.nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    for node in &nodes {
        assert!(
            !node.tenants.is_empty(),
            "{}:{} holds no tenant",
            node.host,
            node.port
        );
    }
    let placed: BTreeSet<_> = citus
        .placements()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.schema)
        .collect();
    assert_eq!(placed, names.iter().cloned().collect());

    // 32 requests at once, each tenant read many times, several tenants in one task too.
    let reads: Vec<SchemaName> = (0..400).map(|i| names[(i * 7) % 50].clone()).collect();
    stream::iter(reads)
        .for_each_concurrent(32, |s| {
            let r = r.clone();
            let other = names[(s.as_str()[1..].parse::<usize>().unwrap() + 1) % 50].clone();
            async move {
                tokio::join!(
                    assert_reads_its_own(&r, &s, 3),
                    assert_reads_its_own(&r, &other, 3)
                );
            }
        })
        .await;

    // A dropped tenant leaves the cluster; the others keep their rows.
    tenantry::drop_schema(&r, names[0].as_str(), true, false)
        .await
        .unwrap();
    let distributed: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_dist_schema")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(distributed, 49);
    assert!(matches!(
        citus.placement(&names[0]).await,
        Err(Error::SchemaNotFound { .. })
    ));
    assert!(Note::query(&r).using(&names[0]).count().await.is_err());
    assert_reads_its_own(&r, &names[1], 3).await;
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
}

#[test]
fn each_rule_is_refused_with_its_error_before_any_sql() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let Some(cluster) = CitusDb::create("rules").await else {
            return;
        };
        let db = cluster.connect(2).await;
        let r = registry(db.clone());
        r.create_all().await.unwrap();
        let (a, b) = (schema("rule_a"), schema("rule_b"));
        tenants_named(&r, &[&a, &b]).await;
        let account = Account::query(&r).using(&a).get_pk(1_i64).await.unwrap();

        let (count, counter) = CountStatements::new();
        let _counting = tracing::subscriber::set_default(counter);
        let small = Registry::new(db.clone()).register::<SmallKey>();
        let refused = small.create_all().await.unwrap_err();
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
        let refused = create_schema(&small, &schema("rule_c"), None, false, true)
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Distribution {
                    rule: DistributionRule::KeyNotBigint { .. },
                    ..
                }
            ),
            "{refused:?}"
        );
        let shared = registry(db.clone()).register::<SharedToTenant>();
        let refused = shared.create_all().await.unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Distribution {
                    ref model,
                    rule: DistributionRule::SharedReferencesTenant { ref column, ref target }
                } if model == "shared_to_tenants" && column == "account_id" && target == "accounts"
            ),
            "{refused:?}"
        );
        // One statement over tenant b's labels chosen by tenant a's links.
        let refused = LABELS.of(&account).all().using(&b).all().await.unwrap_err();
        assert!(
            matches!(
                refused,
                Error::Distribution {
                    ref model,
                    rule: DistributionRule::AcrossTenants { .. }
                } if model == "account_labels"
            ),
            "{refused:?}"
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            0,
            "a refused operation sent SQL"
        );
        drop(_counting);

        // Nothing was made: no table of the refused models, no schema rule_c.
        let mut admin = cluster.admin().await;
        let made: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_class WHERE relname IN ('small_keys', 'shared_to_tenants')",
        )
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(made, 0);
        admin.close().await.unwrap();
        db.disconnect().await;
        cluster.drop().await;
    });
}

async fn tenants_named(r: &Registry, names: &[&SchemaName]) {
    let gold = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap();
    for &s in names {
        create_schema(r, s, None, false, true).await.unwrap();
        let account = Account::query(r)
            .using(s)
            .create(Account {
                id: 0,
                name: s.to_string(),
                plan: ForeignKey::from(&gold),
            })
            .await
            .unwrap();
        let label = Label::query(r)
            .using(s)
            .create(Label {
                id: 0,
                name: format!("{s}-label"),
            })
            .await
            .unwrap();
        LABELS.of(&account).add(&[&label]).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_registry_runs_unchanged_on_plain_postgres() {
    let Some(url) = std::env::var("TENANTRY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            !common::servers::required(),
            "TENANTRY_TEST_POSTGRES_URL is not set"
        );
        return;
    };
    let test_db = tenantry::testing::TestDatabase::create(&url).await.unwrap();
    let db = test_db.database().clone();
    assert_eq!(db.deployment().await.unwrap(), &Deployment::Single);
    assert!(!db.capabilities().distributed_schemas);
    assert!(matches!(db.citus().await, Err(Error::Unsupported { .. })));
    // What Citus refuses is allowed here.
    let r = registry(db.clone())
        .register::<SmallKey>()
        .register::<SharedToTenant>();
    r.create_all().await.unwrap();
    let names = tenants(&r, 2, 2).await;
    for s in &names {
        assert_reads_its_own(&r, s, 2).await;
    }
    test_db.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_spreads_twenty_tenants_made_on_one_worker() {
    let Some(cluster) = CitusDb::create("rebalance").await else {
        return;
    };
    let db = cluster.connect(8).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let citus = db.citus().await.unwrap();
    let nodes = citus.nodes().await.unwrap();
    let (full, empty) = (&nodes[0], &nodes[1]);
    let mut admin = cluster.admin().await;
    let set = "SELECT citus_set_node_property($1, $2, 'shouldhaveshards', $3)";
    sqlx::query(set)
        .bind(&empty.host)
        .bind(i32::from(empty.port))
        .bind(false)
        .execute(&mut admin)
        .await
        .unwrap();
    let names = tenants(&r, 20, 2).await;
    sqlx::query(set)
        .bind(&empty.host)
        .bind(i32::from(empty.port))
        .bind(true)
        .execute(&mut admin)
        .await
        .unwrap();
    let before = citus.nodes().await.unwrap();
    assert_eq!(
        before
            .iter()
            .find(|n| n.port == full.port)
            .unwrap()
            .tenants
            .len(),
        20
    );

    let done = citus.rebalance().await.unwrap();
    for node in &done.nodes {
        assert!(
            node.tenants.len() <= 12,
            "{}:{} holds {} of 20",
            node.host,
            node.port,
            node.tenants.len()
        );
    }
    assert!(!done.moves.is_empty());
    let after = citus.rebalance().await.unwrap();
    assert!(
        after.moves.is_empty(),
        "a second rebalance moved {:?}",
        after.moves
    );
    for s in &names {
        assert_reads_its_own(&r, s, 2).await;
    }
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
}

#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared, table = "c_plans")]
struct CPlan {
    id: i64,
    #[model(max_length = 100)]
    name: String,
}

/// `c_items` before migration 0003.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_items")]
struct CItemV2 {
    id: i64,
    #[model(max_length = 50)]
    name: String,
}

/// `c_items` after migration 0003.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(table = "c_items")]
struct CItemV3 {
    id: i64,
    #[model(max_length = 50)]
    name: String,
    stock: i32,
}

const C_SHARED: &str = r#"{ "scope": "shared", "operations": [
  { "op": "create_table", "table": "c_plans", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 100 } ] } ] }"#;

const C_ITEMS: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "create_table", "table": "c_items", "columns": [
    { "name": "id", "type": "big_integer", "primary_key": true, "auto_increment": true },
    { "name": "name", "type": "varchar", "max_length": 50 } ] } ] }"#;

const C_STOCK: &str = r#"{ "scope": "tenant", "operations": [
  { "op": "add_column", "table": "c_items",
    "column": { "name": "stock", "type": "integer", "default": 0 } } ] }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_migrates_distributed_schemas_through_the_coordinator_while_they_are_read() {
    use tenantry::migrate::{Migrations, Migrator, RunOptions};
    let Some(cluster) = CitusDb::create("migrate").await else {
        return;
    };
    let db = cluster.connect(8).await;
    let v2 = Registry::new(db.clone())
        .register::<CPlan>()
        .register::<CItemV2>();
    let names: Vec<SchemaName> = (0..6).map(|i| schema(&format!("m{i}"))).collect();
    for s in &names {
        create_schema(&v2, s, Some(&[]), false, false)
            .await
            .unwrap();
    }
    // Extension schemas (citus, citus_internal) are no tenants.
    assert_eq!(v2.schema().list().await.unwrap(), names);
    let first =
        Migrations::from_files(&[("0001_shared", C_SHARED), ("0002_items", C_ITEMS)]).unwrap();
    let options = || RunOptions {
        concurrency: 3,
        ..RunOptions::default()
    };
    let report = Migrator::new(&v2, first).run(options()).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.tenants.len(), 6);
    for s in &names {
        CItemV2::query(&v2)
            .using(s)
            .create(CItemV2 {
                id: 0,
                name: format!("{s}-item"),
            })
            .await
            .unwrap();
    }
    let mut admin = cluster.admin().await;
    let kinds: Vec<(String, String, i32)> = sqlx::query(
        "SELECT logicalrelid::text, repmodel::text, colocationid FROM pg_dist_partition ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1), row.get(2)))
    .collect();
    assert!(
        kinds.iter().any(|k| k.0 == "c_plans" && k.1 == "t"),
        "{kinds:?}"
    );
    for s in &names {
        let table = format!("{s}.c_items");
        assert!(
            kinds.iter().any(|k| k.0 == table && k.1 == "s" && k.2 != 0),
            "{table} is not in a distributed schema: {kinds:?}"
        );
    }

    // 0003 over the fleet while two tenants are read.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = names[..2]
        .iter()
        .map(|s| {
            let (r, s, stop) = (v2.clone(), s.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !stop.load(Ordering::SeqCst) || reads < 20 {
                    let rows = CItemV2::query(&r).using(&s).all().await.unwrap();
                    let got: Vec<_> = rows.iter().map(|i| i.name.clone()).collect();
                    assert_eq!(got, vec![format!("{s}-item")]);
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let v3 = Registry::new(db.clone())
        .register::<CPlan>()
        .register::<CItemV3>();
    let next = Migrations::from_files(&[
        ("0001_shared", C_SHARED),
        ("0002_items", C_ITEMS),
        ("0003_stock", C_STOCK),
    ])
    .unwrap();
    let report = Migrator::new(&v3, next).run(options()).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    for reader in readers {
        assert!(reader.await.unwrap() >= 20);
    }
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(
        report
            .tenants
            .iter()
            .filter(|t| t.applied == ["0003_stock"])
            .count(),
        6
    );
    for s in &names {
        let items = CItemV3::query(&v3).using(s).all().await.unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            (items[0].name.as_str(), items[0].stock),
            (format!("{s}-item").as_str(), 0)
        );
    }
    admin.close().await.unwrap();
    db.disconnect().await;
    cluster.drop().await;
}
