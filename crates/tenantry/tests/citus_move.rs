//! A tenant moved to another Citus worker while it is written about 1,000 times a second: no
//! acknowledged write lost, none doubled, no write paused a second, the other tenant
//! untouched, the move's ledger row written. A test binary of its own, so that no other test
//! moves tenants meanwhile.

mod common;

use std::{
    collections::BTreeSet,
    sync::{atomic::Ordering, Arc, Mutex},
    time::{Duration, Instant},
};

use common::{citus::CitusDb, citus_models::*};
use sqlx::{Connection as _, Row as _};
use tenantry::ForeignKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_moves_while_it_is_written_and_loses_no_acknowledged_write() {
    let Some(cluster) = CitusDb::create("move").await else {
        return;
    };
    let db = cluster.connect(8).await;
    let r = registry(db.clone());
    r.create_all().await.unwrap();
    let names = tenants(&r, 2, 500).await;
    let citus = db.citus().await.unwrap();
    let (moving, other) = (&names[0], &names[1]);
    let from = citus.placement(moving).await.unwrap();
    let to = citus
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.host != from.host || n.port != from.port)
        .unwrap();
    let account = Account::query(&r)
        .using(moving)
        .get_pk(1_i64)
        .await
        .unwrap();

    // Four writers into the moving tenant and one into the other, until the move is done.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let longest = Arc::new(Mutex::new(Duration::ZERO));
    let writers: Vec<_> = (0..5)
        .map(|w| {
            let (r, done, acked, longest) = (
                r.clone(),
                done.clone(),
                acknowledged.clone(),
                longest.clone(),
            );
            let s = if w < 4 { moving.clone() } else { other.clone() };
            let account = ForeignKey::from(&account);
            tokio::spawn(async move {
                let mut i = 0;
                let mut errors = 0;
                // Each writer paced at 250 writes a second (1,000 into the moving tenant): an
                // unpaced flood on two cores can outrun the logical replication that Citus
                // waits for, with writes blocked, before it switches (once seen: 11 s).
                let mut tick = tokio::time::interval(Duration::from_millis(4));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !done.load(Ordering::SeqCst) {
                    tick.tick().await;
                    let body = format!("w{w}-{i}");
                    let started = Instant::now();
                    let written = if w < 4 {
                        Note::query(&r)
                            .using(&s)
                            .create(Note {
                                id: 0,
                                body: body.clone(),
                                account: account.clone(),
                            })
                            .await
                            .map(drop)
                    } else {
                        Label::query(&r)
                            .using(&s)
                            .create(Label {
                                id: 0,
                                name: body.clone(),
                            })
                            .await
                            .map(drop)
                    };
                    let took = started.elapsed();
                    let mut l = longest.lock().unwrap();
                    *l = (*l).max(took);
                    drop(l);
                    match written {
                        Ok(()) if w < 4 => acked.lock().unwrap().push(body),
                        Ok(()) => {}
                        Err(error) => {
                            errors += 1;
                            eprintln!("write {body} failed: {error}");
                        }
                    }
                    i += 1;
                }
                (i, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reports = Arc::new(Mutex::new(Vec::new()));
    let seen = reports.clone();
    let moved = citus
        .move_tenant_with(moving, &to.host, to.port, move |p| {
            seen.lock().unwrap().push(p)
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, Ordering::SeqCst);
    let mut writes = 0;
    for writer in writers {
        let (n, errors) = writer.await.unwrap();
        assert_eq!(errors, 0, "a write failed during the move");
        writes += n;
    }
    assert_eq!(moved.mode, "logical");
    assert_eq!(moved.to, format!("{}:{}", to.host, to.port));
    let now = citus.placement(moving).await.unwrap();
    assert_eq!((now.host.as_str(), now.port), (to.host.as_str(), to.port));

    // Every acknowledged write is there, once; the other tenant saw none of them.
    let acked: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let stored: Vec<String> = Note::query(&r)
        .using(moving)
        .filter(Note::body().startswith("w"))
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.body.clone())
        .collect();
    assert_eq!(stored.len(), acked.len(), "a write was lost or doubled");
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), acked);
    assert_eq!(
        Note::query(&r)
            .using(other)
            .filter(Note::body().startswith("w"))
            .count()
            .await
            .unwrap(),
        0
    );
    assert_reads_its_own(&r, other, 500).await;

    // The move's ledger entry.
    let mut admin = cluster.admin().await;
    let row = sqlx::query("SELECT tenant, to_node, mode, error FROM tenantry_tenant_moves")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(0), moving.as_str());
    assert_eq!(row.get::<String, _>(1), moved.to);
    assert_eq!(row.get::<String, _>(2), "logical");
    assert_eq!(row.get::<Option<String>, _>(3), None);
    admin.close().await.unwrap();
    eprintln!(
        "moved {} bytes in {:?}; {writes} writes, {} acknowledged in the moving tenant, longest write {:?}, {} progress reports",
        moved.bytes,
        moved.duration,
        acked.len(),
        *longest.lock().unwrap(),
        reports.lock().unwrap().len()
    );
    assert!(
        *longest.lock().unwrap() < Duration::from_secs(1),
        "a write paused a second or more"
    );
    db.disconnect().await;
    cluster.drop().await;
}
