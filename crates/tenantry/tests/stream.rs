//! `stream()`: every row of the tenant once, in key order, in batches; two tenants streamed
//! concurrently in one task each see their own rows; a consumer that queries while it
//! iterates works on a pool of one; the schema is the one chosen when the stream was made.
mod common;

use common::models::*;
use futures_util::{StreamExt, TryStreamExt};
use tenantry::{create_schema, with_tenant, Error, Registry, SchemaName};

/// `n` users named `<tag>-<i>` in `schema`.
async fn fill(r: &Registry, schema: &SchemaName, tag: &str, n: usize) {
    let users: Vec<User> = (0..n).map(|i| user(&format!("{tag}-{i}"))).collect();
    User::query(r)
        .using(schema)
        .bulk_create(users)
        .await
        .unwrap();
}

async fn names(
    stream: impl futures_util::Stream<Item = tenantry::Result<tenantry::Instance<User>>>,
) -> Vec<String> {
    stream
        .map_ok(|u| u.into_inner().name)
        .try_collect()
        .await
        .unwrap()
}

backend_pool_test!(
    streams_of_two_tenants_in_one_task_see_their_own_rows,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = (t.schema("st_a"), t.schema("st_b"));
        for s in [&a, &b] {
            create_schema(r, s, None, false, true).await.unwrap();
        }
        fill(r, &a, "a", 250).await;
        fill(r, &b, "b", 120).await;
        // Each stream made in its tenant's scope, then polled together, outside any scope.
        let in_a = with_tenant(Some(a.clone()), async {
            User::query(r).stream_batch(40).stream()
        })
        .await;
        let in_b = with_tenant(Some(b.clone()), async {
            User::query(r).stream_batch(40).stream()
        })
        .await;
        let (names_a, names_b) = tokio::join!(names(in_a), names(in_b));
        let expect =
            |tag: &str, n: usize| -> Vec<String> { (0..n).map(|i| format!("{tag}-{i}")).collect() };
        assert_eq!(names_a, expect("a", 250));
        assert_eq!(names_b, expect("b", 120));
        // The consumer queries on every row while the stream runs: no connection is held
        // between batches, so this finishes on a pool of one.
        let mut stream = Box::pin(User::query(r).using(&a).stream_batch(25).stream());
        let mut seen = 0;
        while let Some(user) = stream.try_next().await.unwrap() {
            let again = User::query(r).using(&a).get_pk(user.id).await.unwrap();
            assert_eq!(again.name, user.name);
            seen += 1;
        }
        assert_eq!(seen, 250);
    }
);

backend_test!(
    stream_keeps_filter_limit_offset_and_refuses_what_it_cannot_do,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let s = t.schema("st_c");
        create_schema(r, &s, None, false, true).await.unwrap();
        fill(r, &s, "c", 30).await;
        let q = || User::query(r).using(&s);
        let got = names(
            q().filter(User::name().endswith("7"))
                .stream_batch(1)
                .stream(),
        )
        .await;
        assert_eq!(got, ["c-7", "c-17", "c-27"]);
        let got = names(q().offset(5).limit(12).stream_batch(5).stream()).await;
        let expect: Vec<String> = (5..17).map(|i| format!("c-{i}")).collect();
        assert_eq!(got, expect);
        let got = names(q().limit(0).stream()).await;
        assert!(got.is_empty());
        // Another ordering, and a bad schema name: one typed error, then the end.
        let mut by_name = Box::pin(q().order_by([User::name().asc()]).stream());
        let first = by_name.next().await.unwrap();
        assert!(
            matches!(first, Err(Error::InvalidArgument { .. })),
            "{first:?}"
        );
        assert!(by_name.next().await.is_none());
        let mut bad = Box::pin(User::query(r).using("Bad-Name").stream());
        let first = bad.next().await.unwrap();
        assert!(
            matches!(first, Err(Error::InvalidSchemaName { .. })),
            "{first:?}"
        );
        assert!(bad.next().await.is_none());
        // A stream dropped half way leaves the pool usable.
        let mut half = Box::pin(q().stream_batch(4).stream());
        for _ in 0..6 {
            half.try_next().await.unwrap();
        }
        drop(half);
        assert_eq!(q().count().await.unwrap(), 30);
    }
);
