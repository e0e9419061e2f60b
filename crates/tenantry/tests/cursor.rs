//! Keyset (cursor) pagination: every row once, in order, per tenant; stable under inserts;
//! cursors signed and bound to model, tenant and ordering.
mod common;

use common::models::*;
use tenantry::{create_schema, with_tenant, Error, Registry, SchemaName};

const KEY: &[u8] = b"a test key of at least thirty-two bytes!";

/// Every name of `schema` in the ordering, paging `per_page` at a time (and the cursors).
async fn page_through(
    r: &Registry,
    schema: &SchemaName,
    per_page: u64,
) -> (Vec<String>, Vec<String>) {
    let (mut names, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor: Option<String> = None;
    loop {
        let page = with_tenant(
            Some(schema.clone()),
            User::query(r)
                .order_by([User::name().desc()])
                .page_after(per_page, cursor.as_deref()),
        )
        .await
        .unwrap();
        assert!(page.items.len() as u64 <= per_page);
        names.extend(page.items.iter().map(|u| u.name.clone()));
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => return (names, cursors),
        }
    }
}

async fn fill(r: &Registry, schema: &SchemaName, names: &[&str]) {
    create_schema(r, schema, None, false, true).await.unwrap();
    User::query(r)
        .using(schema)
        .bulk_create(names.iter().map(|n| user(n)))
        .await
        .unwrap();
}

backend_pool_test!(
    cursor_pages_of_two_tenants_see_each_row_once,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().cursor_key(KEY);
        let (a, b) = (t.schema("cur_a"), t.schema("cur_b"));
        // Ties ("dup" twice) are broken by the key.
        fill(r, &a, &["ann", "dup", "cat", "dup", "eve", "bob", "fay"]).await;
        fill(r, &b, &["zed", "yan"]).await;
        let ((names_a, cursors_a), (names_b, _)) =
            tokio::join!(page_through(r, &a, 2), page_through(r, &b, 2));
        assert_eq!(names_a, ["fay", "eve", "dup", "dup", "cat", "bob", "ann"]);
        assert_eq!(names_b, ["zed", "yan"]);
        assert_eq!(cursors_a.len(), 3);
        // A cursor of tenant a, in tenant b: refused before any statement.
        let foreign = User::query(r)
            .using(&b)
            .order_by([User::name().desc()])
            .page_after(2, Some(&cursors_a[0]))
            .await;
        assert!(
            matches!(foreign, Err(Error::InvalidCursor { .. })),
            "{foreign:?}"
        );
    }
);

backend_test!(
    cursor_pages_stay_stable_under_inserts,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().cursor_key(KEY);
        let s = t.schema("cur_ins");
        fill(r, &s, &["b", "d", "f", "h"]).await;
        let q = || User::query(r).using(&s).order_by([User::name().asc()]);
        let first = q().page_after(2, None).await.unwrap();
        let names: Vec<&str> = first.items.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["b", "d"]);
        // Inserted before the cursor (never seen) and after it (seen next).
        User::query(r)
            .using(&s)
            .bulk_create([user("a"), user("c"), user("e")])
            .await
            .unwrap();
        let second = q().page_after(2, first.next.as_deref()).await.unwrap();
        let names: Vec<&str> = second.items.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["e", "f"]);
        let third = q().page_after(2, second.next.as_deref()).await.unwrap();
        let names: Vec<&str> = third.items.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["h"]);
        assert!(third.next.is_none());
    }
);

backend_test!(
    bad_cursors_and_bad_orderings_are_typed_errors,
    |t: common::TestDb| async move {
        let r = &t.registry.clone().cursor_key(KEY);
        let s = t.schema("cur_bad");
        fill(r, &s, &["a", "b", "c"]).await;
        let q = || User::query(r).using(&s).order_by([User::name().asc()]);
        let cursor = q().page_after(1, None).await.unwrap().next.unwrap();
        let refused = |result: tenantry::Result<tenantry::CursorPage<User>>| {
            assert!(
                matches!(result, Err(Error::InvalidCursor { .. })),
                "{result:?}"
            );
        };
        // Altered: every single character changed in turn is refused.
        for i in 0..cursor.len() {
            let mut bytes = cursor.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(bytes).unwrap();
            if altered != cursor {
                refused(q().page_after(1, Some(&altered)).await);
            }
        }
        refused(q().page_after(1, Some("garbage")).await);
        refused(q().page_after(1, Some("")).await);
        // Another ordering, another key.
        refused(
            User::query(r)
                .using(&s)
                .order_by([User::email().asc()])
                .page_after(1, Some(&cursor))
                .await,
        );
        let other = t
            .registry
            .clone()
            .cursor_key(b"another key of at least thirty-two bytes");
        refused(
            User::query(&other)
                .using(&s)
                .order_by([User::name().asc()])
                .page_after(1, Some(&cursor))
                .await,
        );
        // No key, a short key, per_page 0, an ordering across a relation.
        let invalid = |result: tenantry::Result<tenantry::CursorPage<User>>| {
            assert!(
                matches!(result, Err(Error::InvalidArgument { .. })),
                "{result:?}"
            );
        };
        invalid(User::query(&t.registry).using(&s).page_after(1, None).await);
        invalid(
            User::query(&t.registry.clone().cursor_key(b"short"))
                .using(&s)
                .page_after(1, None)
                .await,
        );
        invalid(q().page_after(0, None).await);
        let products = Product::query(r)
            .using(&s)
            .order_by([Product::user().to(User::name()).asc()])
            .page_after(1, None)
            .await;
        assert!(
            matches!(products, Err(Error::InvalidArgument { .. })),
            "{products:?}"
        );
    }
);
