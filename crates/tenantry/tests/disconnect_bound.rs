//! `disconnect` waits up to the disconnect timeout, once: on SQLite with transactions open on
//! several tenant files, one deadline covers every pool (not one bound per pool).
mod common;

use std::time::{Duration, Instant};

use common::{models::*, sqlite_dir::sqlite_registry};
use tenantry::{create_schema, SchemaName};

#[tokio::test]
async fn sqlite_disconnect_honours_one_bound_with_several_busy_schemas() {
    let (_dir, r) = sqlite_registry("disconnect", |o| {
        o.disconnect_timeout(Duration::from_millis(300))
    })
    .await;
    let mut txs = Vec::new();
    for i in 0..4 {
        let s = SchemaName::parse(&format!("busy{i}")).unwrap();
        create_schema(&r, &s, None, false, true).await.unwrap();
        let tx = r.begin_in(&s).await.unwrap();
        User::query(&tx).using(&s).count().await.unwrap();
        txs.push(tx);
    }
    let started = Instant::now();
    r.disconnect().await;
    let took = started.elapsed();
    drop(txs);
    assert!(
        took < Duration::from_millis(700),
        "disconnect with a 300 ms bound took {took:?}"
    );
}
