//! A tenant of the demo moved to another Citus worker while about 1,000 writes a second go
//! to it through the HTTP API: no acknowledged write is lost, no write pauses a second. A
//! test binary of its own, so that no other test shares the machine while it paces its writes.

mod common;

use common::{citus::CitusDb, http::Client};
use serde_json::json;
use tenantry::{Registry, SchemaName};

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
