//! A builder error (an invalid `using` name, an undeclared `using_with_db` database) is
//! returned by every operation and never lost on the way: not by the copies `get_or_create`
//! and `update_or_create` make, not by a later valid `using`, not inside a tenant scope or
//! under `activate_schema`. Nothing is read or written anywhere.
mod common;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, tenant_scope, with_tenant, Error, Instance, Model, QuerySet,
    Registry, SchemaName,
};

/// How the QuerySet is spoiled.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// `using("Bad-Name")`.
    Schema,
    /// `using("Bad-Name")` then a valid `using`: the error is kept.
    SchemaThenValid,
    /// A valid `using` then `using("Bad-Name")`.
    ValidThenSchema,
    /// `using_with_db("nope")`.
    Db,
}

const ALL_BAD: [Bad; 4] = [
    Bad::Schema,
    Bad::SchemaThenValid,
    Bad::ValidThenSchema,
    Bad::Db,
];

fn spoil<M: Model>(q: QuerySet<M>, bad: Bad, valid: &SchemaName) -> QuerySet<M> {
    match bad {
        Bad::Schema => q.using("Bad-Name"),
        Bad::SchemaThenValid => q.using("Bad-Name").using(valid),
        Bad::ValidThenSchema => q.using(valid).using("Bad-Name"),
        Bad::Db => q.using_with_db("nope"),
    }
}

fn expected(bad: Bad, error: &Error) -> bool {
    match bad {
        Bad::Db => matches!(error, Error::UnknownDatabase { name } if name == "nope"),
        _ => matches!(error, Error::InvalidSchemaName { name, .. } if name.contains("Bad-Name")),
    }
}

/// Every operation on a spoiled QuerySet, by name, with its outcome (`Ok` is a failure of the
/// test: the operation ran somewhere). Filters match the rows every place holds ("Ann") or
/// none, so that an operation that ran would find, change or create something.
async fn every_operation(
    r: &Registry,
    bad: Bad,
    valid: &SchemaName,
    ann_id: i64,
) -> Vec<(&'static str, Result<(), Error>)> {
    let q = || spoil(User::query(r), bad, valid);
    let mut out: Vec<(&'static str, Result<(), Error>)> = Vec::new();
    out.push(("all", q().all().await.map(drop)));
    out.push(("get", q().get(User::name().eq("Ann")).await.map(drop)));
    out.push(("get_pk", q().get_pk(ann_id).await.map(drop)));
    out.push(("first", q().first().await.map(drop)));
    out.push(("last", q().last().await.map(drop)));
    out.push(("count", q().count().await.map(drop)));
    out.push(("exists", q().exists().await.map(drop)));
    out.push(("create", q().create(user("Created")).await.map(drop)));
    out.push((
        "bulk_create",
        q().bulk_create([user("Bulk1"), user("Bulk2")])
            .await
            .map(drop),
    ));
    out.push((
        "update",
        q().update([User::name().set("Overwritten")])
            .await
            .map(drop),
    ));
    out.push(("delete", q().delete().await.map(drop)));
    out.push((
        "get_or_create found",
        q().get_or_create(User::name().eq("Ann"), user("Ann"))
            .await
            .map(drop),
    ));
    out.push((
        "get_or_create missing",
        q().get_or_create(User::name().eq("Nobody"), user("Nobody"))
            .await
            .map(drop),
    ));
    out.push((
        "update_or_create found",
        q().update_or_create(User::name().eq("Ann"), user("Overwritten"))
            .await
            .map(drop),
    ));
    out.push((
        "update_or_create missing",
        q().update_or_create(User::name().eq("Nobody"), user("Nobody"))
            .await
            .map(drop),
    ));
    out.push(("instance", q().instance(user("Unsaved")).map(drop)));
    out.push(("to_sql", q().to_sql().map(drop)));
    out.push(("clone", q().clone().count().await.map(drop)));
    out.push((
        "select_related all",
        spoil(Product::query(r), bad, valid)
            .select_related(Product::user())
            .all()
            .await
            .map(drop),
    ));
    out.push((
        "select_related get",
        spoil(Product::query(r), bad, valid)
            .select_related(Product::user())
            .get(Product::name().eq("Ann-p"))
            .await
            .map(drop),
    ));
    out
}

/// Every user and product (names, ids, owners) of one schema.
type Snapshot = (Vec<(i64, String, String)>, Vec<(i64, String, Option<i64>)>);

async fn snapshot(r: &Registry, schema: Option<&SchemaName>) -> Snapshot {
    let users = match schema {
        Some(s) => User::query(r).using(s),
        None => User::query(r),
    };
    let products = match schema {
        Some(s) => Product::query(r).using(s),
        None => Product::query(r),
    };
    let users = users
        .order_by([User::id().asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.id, u.name.clone(), u.email.clone()))
        .collect();
    let products = products
        .order_by([Product::id().asc()])
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.id, p.name.clone(), p.user.as_ref().map(|u| *u.key())))
        .collect();
    (users, products)
}

/// "Ann" and her product in `schema`; returns Ann.
async fn seed(r: &Registry, schema: Option<&SchemaName>) -> Instance<User> {
    let (users, products) = match schema {
        Some(s) => (User::query(r).using(s), Product::query(r).using(s)),
        None => (User::query(r), Product::query(r)),
    };
    let ann = users.create(user("Ann")).await.unwrap();
    products.create(product("Ann-p", Some(&ann))).await.unwrap();
    ann
}

fn failures(
    bad: Bad,
    scope: &str,
    outcomes: Vec<(&'static str, Result<(), Error>)>,
) -> Vec<String> {
    outcomes
        .into_iter()
        .filter_map(|(op, outcome)| match outcome {
            Err(error) if expected(bad, &error) => None,
            other => Some(format!("{scope} {bad:?} {op}: {other:?}")),
        })
        .collect()
}

backend_test!(
    every_operation_returns_the_builder_error,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tenant = t.schema("tenant");
        let active = t.schema("active");
        let valid = t.schema("valid");
        for s in [&tenant, &active, &valid] {
            create_schema(r, s, None, false, true).await.unwrap();
        }
        let ann = seed(r, None).await;
        for s in [&tenant, &active, &valid] {
            let here = seed(r, Some(s)).await;
            assert_eq!(here.id, ann.id, "Ann has the same key in every place");
        }
        let places = [None, Some(&tenant), Some(&active), Some(&valid)];
        let mut before = Vec::new();
        for place in places {
            before.push(snapshot(r, place).await);
        }

        let mut wrong = Vec::new();
        for bad in ALL_BAD {
            // Outside any scope (the default schema would answer).
            wrong.extend(failures(
                bad,
                "no scope",
                every_operation(r, bad, &valid, ann.id).await,
            ));
            // Inside a tenant scope (the tenant's schema would answer).
            let outcomes = with_tenant(
                Some(tenant.clone()),
                every_operation(r, bad, &valid, ann.id),
            )
            .await;
            wrong.extend(failures(bad, "with_tenant", outcomes));
            // Under activate_schema.
            let outcomes = tenant_scope(async {
                activate_schema(&active).unwrap();
                every_operation(r, bad, &valid, ann.id).await
            })
            .await;
            wrong.extend(failures(bad, "activate_schema", outcomes));
        }
        assert!(
            wrong.is_empty(),
            "operations that did not fail as expected:\n{}",
            wrong.join("\n")
        );

        for (place, before) in places.into_iter().zip(before) {
            assert_eq!(
                snapshot(r, place).await,
                before,
                "rows changed in {place:?}"
            );
        }
    }
);

backend_test!(
    an_instance_from_an_invalid_queryset_never_exists,
    |t: common::TestDb| async move {
        let r = &t.registry;
        // The error is returned where the instance would be made, so no unsaved instance
        // bound to the default schema can be saved later.
        assert!(matches!(
            User::query(r).using("Bad-Name").instance(user("Ann")),
            Err(Error::InvalidSchemaName { .. })
        ));
        // A clone made before the error keeps working; one made after carries it.
        let good = User::query(r);
        let spoiled = good.clone().using("Bad-Name");
        let copy = spoiled.clone();
        assert_eq!(good.count().await.unwrap(), 0);
        assert!(matches!(
            spoiled.count().await,
            Err(Error::InvalidSchemaName { .. })
        ));
        assert!(matches!(
            copy.all().await,
            Err(Error::InvalidSchemaName { .. })
        ));
        // Debug shows the pending error.
        let debug = format!("{:?}", User::query(r).using("Bad-Name"));
        assert!(debug.contains("InvalidSchemaName"), "{debug}");
        assert_eq!(User::query(r).count().await.unwrap(), 0);
    }
);
