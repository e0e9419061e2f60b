//! A thousand tenant schemas on every backend, and no per-tenant metadata.
mod common;

use std::{sync::Arc, time::Instant};

use common::models::*;
use tenantry::{create_schema, drop_schema, with_tenant, Model, ModelMeta};
use tokio::{sync::Semaphore, task::JoinSet};

const TENANTS: usize = 1_000;
/// Schemas created / queried at once (the harness's pools hold 8 connections).
const PARALLEL: usize = 8;

backend_test!(thousand_tenants, |t: common::TestDb| async move {
    let r = t.registry.clone();
    let models_before: Vec<*const ModelMeta> =
        r.models().iter().map(|m| *m as *const ModelMeta).collect();
    let schemas: Vec<_> = (0..TENANTS)
        .map(|i| t.schema(&format!("s{i:04}")))
        .collect();
    let gate = Arc::new(Semaphore::new(PARALLEL));

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for schema in &schemas {
        let (r, gate, schema) = (r.clone(), gate.clone(), schema.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            create_schema(&r, &schema, None, false, true).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let created = started.elapsed();

    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, schema) in schemas.iter().cloned().enumerate() {
        let (r, gate) = (r.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            User::query(&r)
                .using(&schema)
                .create(user(&format!("u{i}")))
                .await
                .unwrap();
            let count = with_tenant(Some(schema), User::query(&r).count())
                .await
                .unwrap();
            (i, count)
        });
    }
    let mut checked = 0;
    while let Some(done) = tasks.join_next().await {
        let (i, count) = done.unwrap();
        assert_eq!(count, 1, "tenant {i}");
        checked += 1;
    }
    let queried = started.elapsed();
    assert_eq!(checked, TENANTS);
    eprintln!(
        "{}: {TENANTS} schemas created in {created:.1?}, inserted+counted in {queried:.1?}",
        t.backend
    );

    // Every tenant is listed, and spot checks read back the tenant's own row.
    let listed = r.schema().list().await.unwrap();
    assert!(schemas.iter().all(|s| listed.binary_search(s).is_ok()));
    for i in [0, 499, 999] {
        let got = User::query(&r).using(&schemas[i]).all().await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, format!("u{i}"));
    }
    // The default schema was never written.
    assert_eq!(User::query(&r).count().await.unwrap(), 0);

    // And dropped again, in parallel.
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for schema in &schemas {
        let (r, gate, schema) = (r.clone(), gate.clone(), schema.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            drop_schema(&r, &schema, true, false).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let dropped = started.elapsed();
    eprintln!("{}: {TENANTS} schemas dropped in {dropped:.1?}", t.backend);
    let listed = r.schema().list().await.unwrap();
    assert!(schemas.iter().all(|s| listed.binary_search(s).is_err()));

    // No per-tenant metadata: the registry still holds exactly the statics it was built
    // with (one `&'static ModelMeta` per model, shared by every schema). The schema lives in
    // each instance's `Origin` and is bound when a statement is rendered.
    let models_after: Vec<*const ModelMeta> =
        r.models().iter().map(|m| *m as *const ModelMeta).collect();
    assert_eq!(models_before, models_after);
    // `META` is an associated const (its address may differ between uses), so the static
    // is found by value.
    assert!(r.models().iter().any(|m| **m == *User::META));
});
