//! Review of issue 9 item 3 / DESIGN 4.9: sibling futures of one task must never see each
//! other's tenant. `set_tenant` and `activate_schema` are checked against different fields
//! of the shared scope, so one branch's `set_tenant(b)` silently overrides another branch's
//! `activate_schema(a)` (tenant outranks activated schema), with no TenantConflict.
mod common;

use common::models::*;
use tenantry::{activate_schema, create_schema, set_tenant, tenant_scope, Error, Model};

backend_test!(
    activate_in_one_branch_set_tenant_in_another,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let (a, b) = (t.schema("a"), t.schema("b"));
        for (schema, n) in [(&a, 1usize), (&b, 2)] {
            create_schema(r, schema, Some(&[User::META]), false, true)
                .await
                .unwrap();
            User::query(r)
                .using(schema)
                .bulk_create((0..n).map(|k| user(&format!("{schema}_{k}"))))
                .await
                .unwrap();
        }
        let (branch_a, _) = tenant_scope(async {
            tokio::join!(
                async {
                    activate_schema(&a).unwrap();
                    tokio::task::yield_now().await;
                    User::query(r).all().await
                },
                async {
                    let set = set_tenant(Some(b.clone()));
                    (set, User::query(r).count().await)
                },
            )
        })
        .await;
        // Branch a activated a: it must read a's one row, or fail closed (TenantConflict).
        match branch_a {
            Err(Error::TenantConflict { .. }) => {}
            Ok(rows) => {
                let names: Vec<String> = rows.into_iter().map(|u| u.into_inner().name).collect();
                assert!(
                    names.iter().all(|n| n.starts_with(a.as_str())),
                    "branch that activated {a} read {names:?} (tenant {b}'s rows)"
                );
            }
            Err(e) => panic!("{e:?}"),
        }
    }
);

backend_test!(
    set_tenant_in_one_branch_moves_a_sibling_write,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let a = t.schema("a");
        create_schema(r, &a, Some(&[User::META]), false, true)
            .await
            .unwrap();
        // Branch 1 writes to the scope's schema (no tenant: the default schema), yields, and
        // writes again; branch 2 tries to pick tenant a for the scope meanwhile. The scope's
        // schema was chosen by branch 1's first write, so the set is refused and the scope
        // fails closed. (A sibling that has not run any query yet cannot be told apart from
        // code that runs after set_tenant in the same future: it follows the tenant. That is
        // documented on set_tenant; each branch should have its own with_tenant.)
        let (written, set) = tenant_scope(async {
            tokio::join!(
                async {
                    User::query(r).create(user("meant-for-default-1")).await?;
                    tokio::task::yield_now().await;
                    User::query(r).create(user("meant-for-default-2")).await
                },
                async { set_tenant(Some(a.clone())) },
            )
        })
        .await;
        assert!(matches!(set, Err(Error::TenantConflict { .. })), "{set:?}");
        assert!(
            matches!(written, Err(Error::TenantConflict { .. })),
            "{written:?}"
        );
        let in_a = User::query(r).using(&a).count().await.unwrap();
        assert!(
            written.is_err() || in_a == 0,
            "a sibling's set_tenant moved branch 1's write into tenant {a} ({in_a} row)"
        );
    }
);
