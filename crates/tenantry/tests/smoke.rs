//! Smoke test of the core path on every backend.
mod common;
use common::models::*;

backend_test!(create_and_get, |t: common::TestDb| async move {
    let r = &t.registry;
    let a = User::query(r).create(user("Alice")).await.unwrap();
    assert!(a.id > 0);
    let b = User::query(r).create(user("Bob")).await.unwrap();
    assert_ne!(a.id, b.id);
    let got = User::query(r).get(User::name().eq("Bob")).await.unwrap();
    assert_eq!(got.id, b.id);
    assert_eq!(User::query(r).count().await.unwrap(), 2);
    let found = User::query(r)
        .filter(User::email().icontains("ALICE"))
        .all()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
});
