//! The demo on a live Citus cluster (`TENANTRY_TEST_CITUS_URL`): 50 tenants provisioned through
//! its HTTP API are distributed schemas spread over both workers, the shared tables are
//! reference tables, and under 32 concurrent requests every tenant reads only its own rows.

mod common;

use common::{citus::CitusDb, http::Client};
use futures_util::{stream, StreamExt};
use serde_json::json;
use sqlx::{Connection as _, Row as _};
use tenantry::{Registry, SchemaName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tenants_through_the_demo_are_distributed_and_read_only_their_own_products() {
    let Some(cluster) = CitusDb::create("demo").await else {
        return;
    };
    let db = cluster.connect(16).await;
    let registry = tenantry_demo::register(Registry::new(db.clone()));
    let edgy = SchemaName::parse("edgy").unwrap();
    tenantry_demo::seed_as(&registry, &edgy).await.unwrap();
    let addr = common::http::spawn(&registry, true).await;

    let names: Vec<String> = (0..50).map(|i| format!("acme{i}")).collect();
    stream::iter(names.clone())
        .for_each_concurrent(4, |name| async move {
            let mut client = Client::connect(addr).await;
            let (status, body) = client
                .post(
                    "/tenants",
                    None,
                    json!({"schema_name": name, "tenant_name": name}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            for i in 0..3 {
                let (status, body) = client
                    .post(
                        "/products",
                        Some(&name),
                        json!({"name": format!("{name}-{i}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        })
        .await;

    // Distributed schemas on both workers; the shared tables are reference tables.
    let nodes = db.citus().await.unwrap().nodes().await.unwrap();
    assert_eq!(nodes.len(), 2);
    for node in &nodes {
        assert!(
            node.tenants.len() >= 10,
            "{}:{} holds {}",
            node.host,
            node.port,
            node.tenants.len()
        );
    }
    let mut admin = cluster.admin().await;
    let reference: Vec<String> = sqlx::query(
        "SELECT logicalrelid::text FROM pg_dist_partition WHERE repmodel = 't' ORDER BY 1",
    )
    .fetch_all(&mut admin)
    .await
    .unwrap()
    .iter()
    .map(|row| row.get(0))
    .collect();
    for shared in ["tenants", "tenant_users", "tenant_directory"] {
        assert!(
            reference.iter().any(|t| t == shared),
            "{shared} is not a reference table: {reference:?}"
        );
    }
    let distributed: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_dist_schema")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(distributed, 51, "50 tenants and edgy");
    admin.close().await.unwrap();

    // 32 requests at once, each tenant many times: only its own products.
    let requests: Vec<String> = (0..640).map(|i| names[(i * 13) % 50].clone()).collect();
    stream::iter(requests)
        .for_each_concurrent(32, |name| async move {
            let mut client = Client::connect(addr).await;
            let (status, body) = client.get("/products", Some(&name)).await;
            assert_eq!(status, 200, "{body}");
            let got: Vec<&str> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let expected: Vec<String> = (0..3).map(|i| format!("{name}-{i}")).collect();
            assert_eq!(got, expected, "tenant {name} read another's products");
        })
        .await;
    db.disconnect().await;
    cluster.drop().await;
}

/// Tenant `name` through the demo's API (201).
async fn create_tenant(client: &mut Client, name: &str) {
    let (status, body) = client
        .post(
            "/tenants",
            None,
            json!({"schema_name": name, "tenant_name": name}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_under_a_thousand_http_writes_a_second_and_loses_none() {
    use std::{
        collections::BTreeSet,
        sync::{
            atomic::{AtomicBool, Ordering},
            Arc, Mutex,
        },
        time::{Duration, Instant},
    };
    use tenantry_demo::models::Product;
    let Some(cluster) = CitusDb::create("demomove").await else {
        return;
    };
    let db = cluster.connect(16).await;
    let registry = tenantry_demo::register(Registry::new(db.clone()));
    tenantry_demo::seed_as(&registry, &SchemaName::parse("edgy").unwrap())
        .await
        .unwrap();
    let addr = common::http::spawn(&registry, true).await;
    let mut client = Client::connect(addr).await;
    create_tenant(&mut client, "mover").await;
    let mover = SchemaName::parse("mover").unwrap();
    let citus = db.citus().await.unwrap();
    let from = citus.placement(&mover).await.unwrap();
    let to = citus
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.port != from.port || n.host != from.host)
        .unwrap();

    // Sixteen clients, each paced at 66 writes a second: over 1,000 a second into the moving
    // tenant when each write takes under 15 ms (a debug build on a loaded machine may not).
    let done = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (done, acked) = (done.clone(), acknowledged.clone());
            tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut tick = tokio::time::interval(Duration::from_millis(15));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let (mut longest, mut failed, mut i) = (Duration::ZERO, Vec::new(), 0);
                while !done.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let name = format!("w{w}-{i}");
                    let started = Instant::now();
                    let (status, body) = client
                        .post("/products", Some("mover"), json!({"name": name}))
                        .await;
                    longest = longest.max(started.elapsed());
                    if status == 201 {
                        acked.lock().unwrap().insert(name);
                    } else {
                        failed.push(format!("{status} {body}"));
                    }
                    i += 1;
                }
                (longest, failed)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let started = Instant::now();
    let moved = citus.move_tenant(&mover, &to.host, to.port).await.unwrap();
    let writing = started.elapsed() + Duration::from_millis(2000);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    done.store(true, Ordering::SeqCst);
    let mut longest = Duration::ZERO;
    for writer in writers {
        let (pause, failed) = writer.await.unwrap();
        assert!(
            failed.is_empty(),
            "writes failed during the move: {failed:?}"
        );
        longest = longest.max(pause);
    }
    assert_eq!(citus.placement(&mover).await.unwrap().port, to.port);
    let acked = acknowledged.lock().unwrap().clone();
    let stored: BTreeSet<String> = Product::query(&registry)
        .using(&mover)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.clone())
        .filter(|n| n.starts_with('w'))
        .collect();
    assert_eq!(stored, acked, "an acknowledged write was lost");
    let rate = acked.len() as f64 / writing.as_secs_f64();
    eprintln!(
        "moved in {:?} ({}): {} writes acknowledged, {rate:.0}/s, 0 lost, longest write {longest:?}",
        moved.duration,
        moved.mode,
        acked.len()
    );
    assert!(
        rate > 500.0,
        "the writers reached only {rate:.0} writes a second"
    );
    assert!(
        longest < Duration::from_secs(1),
        "a write paused {longest:?}"
    );
    db.disconnect().await;
    cluster.drop().await;
}

/// The demo binary, logging warnings only.
fn demo(url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry-demo"))
        .arg("--database-url")
        .arg(url)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "{args:?}: {stdout}{stderr}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_lists_moves_and_rebalances_the_tenants() {
    let Some(cluster) = CitusDb::create("democli").await else {
        return;
    };
    let url = cluster.url();
    let migrated = demo(&url, &["migrate"]);
    assert!(!migrated.is_empty());
    for name in ["c0", "c1", "c2", "c3"] {
        demo(&url, &["tenants", "create", name]);
    }
    let nodes = demo(&url, &["tenants", "nodes"]);
    let workers: Vec<&str> = nodes.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(workers.len(), 2, "{nodes}");
    let listed: Vec<&str> = nodes
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(listed.len(), 4, "{nodes}");
    // Move every tenant onto the first worker, then spread them again.
    let first = workers[0].split('\t').next().unwrap().to_owned();
    for name in ["c0", "c1", "c2", "c3"] {
        let out = demo(&url, &["tenants", "move", name, "--to", &first]);
        assert!(
            out.starts_with(&format!("moved tenant {name} from ")),
            "{out}"
        );
    }
    let nodes = demo(&url, &["tenants", "nodes"]);
    assert!(nodes.contains(&format!("{first}\t4 tenants")), "{nodes}");
    let spread = demo(&url, &["tenants", "rebalance"]);
    assert!(spread.contains("\t2 tenants"), "{spread}");
    assert!(!spread.contains("\t4 tenants"), "{spread}");
    // The tenants still read their own data through the demo.
    let db = cluster.connect(4).await;
    let registry = tenantry_demo::register(Registry::new(db.clone()));
    let addr = common::http::spawn(&registry, true).await;
    let mut client = Client::connect(addr).await;
    for name in ["c0", "c1", "c2", "c3"] {
        let (status, body) = client
            .post(
                "/products",
                Some(name),
                json!({"name": format!("{name}-p")}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = client.get("/products", Some(name)).await;
        assert_eq!(status, 200, "{body}");
        let names: Vec<&str> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec![format!("{name}-p")]);
    }
    db.disconnect().await;
    cluster.drop().await;
}
