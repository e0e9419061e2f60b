//! 10,000 SQLite tenants touched in turn under `ulimit -n 1024`, at the default budget
//! (each tenant's connection also attaching the main file to read a shared row)
//! (derived from the limit). Its own test binary: the limit is set for the whole process.
mod common;

use common::models::*;
use tenantry::{create_schema, with_tenant, Database, Registry, SchemaName};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10,000 tenant files (run by .ci/run with --ignored)"]
async fn ten_thousand_tenants_under_ulimit_1024() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, 1024, hard.max(1024)).unwrap();
    let dir = std::env::temp_dir().join(format!("tenantry-10k-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}/main.sqlite?mode=rwc", dir.display());
    let r = Registry::new(Database::connect(&url).await.unwrap())
        .register::<User>()
        .register::<Plan>()
        .register::<Subscription>();
    r.create_all().await.unwrap();
    // Every tenant's connection attaches the main file (three more descriptors) to reach
    // the shared plan.
    let gold = Plan::query(&r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap();
    let names: Vec<SchemaName> = (0..10_000)
        .map(|i| SchemaName::parse(&format!("t{i}")).unwrap())
        .collect();
    for (i, s) in names.iter().enumerate() {
        create_schema(&r, s, None, false, true).await.unwrap();
        User::query(&r)
            .using(s)
            .create(user(&format!("t{i}")))
            .await
            .unwrap();
        Subscription::query(&r)
            .using(s)
            .create(Subscription {
                id: 0,
                plan: tenantry::ForeignKey::from(&gold),
                note: format!("t{i}"),
            })
            .await
            .unwrap();
    }
    for (i, s) in names.iter().enumerate() {
        let rows = with_tenant(Some(s.clone()), User::query(&r).all())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "tenant {s}");
        assert_eq!(
            rows[0].name,
            format!("t{i}"),
            "tenant {s} read another tenant's row"
        );
        let notes = with_tenant(
            Some(s.clone()),
            Subscription::query(&r)
                .filter(Subscription::plan().to(Plan::title()).eq("gold"))
                .values_list(Subscription::note()),
        )
        .await
        .unwrap();
        assert_eq!(notes, [format!("t{i}")], "tenant {s}");
    }
    r.disconnect().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
