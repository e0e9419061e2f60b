//! 10,000 SQLite tenants touched in turn under `ulimit -n 1024`, at the default budget
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
    let r = Registry::new(Database::connect(&url).await.unwrap()).register::<User>();
    r.create_all().await.unwrap();
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
    }
    r.disconnect().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
