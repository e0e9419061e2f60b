//! A Citus worker stopped under load, on a private cluster this test starts on free ports
//! (`../shared/citus/cluster.sh`, or `TENANTRY_TEST_CITUS_SCRIPT`): the other worker's tenants
//! see no error, the stopped worker's tenants get `Error::NodeUnavailable` within the acquire
//! timeout, and every tenant answers again once the worker is back, with no restart.

mod common;

use std::time::{Duration, Instant};

use common::citus::PrivateCluster;

use tenantry::{create_schema, Database, Error, ForeignKey, Model, Registry, SchemaName};

#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared)]
struct Plan {
    id: i64,
    #[model(max_length = 50)]
    title: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct Account {
    id: i64,
    #[model(max_length = 80)]
    name: String,
    plan: ForeignKey<Plan>,
}

async fn read(r: &Registry, s: &SchemaName) -> tenantry::Result<Vec<String>> {
    let accounts = Account::query(r)
        .using(s)
        .filter(Account::plan().to(Plan::title()).eq("gold"))
        .all()
        .await?;
    Ok(accounts.into_iter().map(|a| a.name.clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_fails_only_its_tenants_and_they_answer_again_when_it_is_back() {
    let Some(cluster) = PrivateCluster::start("down") else {
        return;
    };
    let url = cluster.url().to_owned();
    let acquire = Duration::from_secs(5);
    let db = Database::options(&url)
        .max_connections(8)
        .acquire_timeout(acquire)
        .connect()
        .await
        .unwrap();
    let r = Registry::new(db.clone())
        .register::<Plan>()
        .register::<Account>();
    r.create_all().await.unwrap();
    let gold = Plan::query(&r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap();
    let names: Vec<SchemaName> = (0..8)
        .map(|i| SchemaName::parse(&format!("w{i}")).unwrap())
        .collect();
    for s in &names {
        create_schema(&r, s, None, false, true).await.unwrap();
        Account::query(&r)
            .using(s)
            .create(Account {
                id: 0,
                name: s.to_string(),
                plan: ForeignKey::from(&gold),
            })
            .await
            .unwrap();
    }
    let citus = db.citus().await.unwrap();
    let stopped_port = cluster.worker_port(2);
    let (mut down, mut up) = (Vec::new(), Vec::new());
    for placement in citus.placements().await.unwrap() {
        if placement.port == stopped_port {
            down.push(placement.schema);
        } else {
            up.push(placement.schema);
        }
    }
    assert!(
        !down.is_empty() && !up.is_empty(),
        "tenants on one worker only"
    );

    // Load on every tenant while the worker stops.
    cluster.stop_worker(2);
    for round in 0..5 {
        let reads = futures_util::future::join_all(names.iter().map(|s| {
            let r = r.clone();
            async move {
                let started = Instant::now();
                (s.clone(), read(&r, s).await, started.elapsed())
            }
        }))
        .await;
        for (s, result, took) in reads {
            if down.contains(&s) {
                assert!(
                    matches!(result, Err(Error::NodeUnavailable { .. })),
                    "round {round}: tenant {s} on the stopped worker: {result:?}"
                );
                assert!(took < acquire, "tenant {s} waited {took:?}");
            } else {
                assert_eq!(
                    result.unwrap(),
                    vec![s.to_string()],
                    "round {round}: tenant {s}"
                );
            }
        }
    }

    // Back: every tenant answers again through the same Database.
    cluster.start_worker(2);
    let deadline = Instant::now() + Duration::from_secs(20);
    for s in &names {
        loop {
            match read(&r, s).await {
                Ok(names) => {
                    assert_eq!(names, vec![s.to_string()]);
                    break;
                }
                Err(error) if Instant::now() < deadline => {
                    eprintln!("{s} not back yet: {error}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => panic!("tenant {s} did not answer again: {error}"),
            }
        }
    }
    for s in &names {
        assert_eq!(read(&r, s).await.unwrap(), vec![s.to_string()]);
    }
    db.disconnect().await;
    drop(cluster);
}
