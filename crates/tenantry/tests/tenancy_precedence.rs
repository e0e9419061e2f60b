//! The schema precedence: using > instance origin > tenant > activate_schema > default.
mod common;

use common::models::*;
use tenantry::{
    activate_schema, create_schema, set_tenant, tenant_scope, with_tenant, ForeignKey, Instance,
    Registry, SchemaName,
};

/// One way of choosing a schema.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Layer {
    /// `.using(s_using)` on the QuerySet.
    Using,
    /// The QuerySet comes from an instance loaded from `s_inst` (`related`).
    Instance,
    /// The QuerySet comes from an instance loaded from the default schema.
    InstanceFromDefault,
    /// The query runs inside `with_tenant(Some(s_tenant), …)`.
    WithTenant,
    /// The query runs inside a scope after `set_tenant(Some(s_tenant))`.
    SetTenant,
    /// The query runs inside a scope after `activate_schema(s_active)`.
    Activate,
}

/// Which place answered.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Place {
    Default,
    Using,
    Instance,
    Tenant,
    Active,
}

impl Place {
    fn label(self) -> &'static str {
        match self {
            Place::Default => "default",
            Place::Using => "using",
            Place::Instance => "inst",
            Place::Tenant => "tenant",
            Place::Active => "active",
        }
    }

    /// Each place holds a different number of products.
    fn products(self) -> usize {
        match self {
            Place::Default => 1,
            Place::Instance => 2,
            Place::Tenant => 3,
            Place::Active => 4,
            Place::Using => 5,
        }
    }
}

use Layer::*;

/// Every pair of layers (and each alone), with the place that must answer.
const CASES: &[(&[Layer], Place)] = &[
    (&[], Place::Default),
    (&[Using], Place::Using),
    (&[Instance], Place::Instance),
    (&[InstanceFromDefault], Place::Default),
    (&[WithTenant], Place::Tenant),
    (&[SetTenant], Place::Tenant),
    (&[Activate], Place::Active),
    (&[Using, Instance], Place::Using),
    (&[Using, InstanceFromDefault], Place::Using),
    (&[Using, WithTenant], Place::Using),
    (&[Using, SetTenant], Place::Using),
    (&[Using, Activate], Place::Using),
    (&[Instance, WithTenant], Place::Instance),
    (&[Instance, SetTenant], Place::Instance),
    (&[Instance, Activate], Place::Instance),
    (&[InstanceFromDefault, WithTenant], Place::Default),
    (&[InstanceFromDefault, SetTenant], Place::Default),
    (&[InstanceFromDefault, Activate], Place::Default),
    (&[WithTenant, Activate], Place::Tenant),
    (&[SetTenant, Activate], Place::Tenant),
    (&[Using, Instance, WithTenant, Activate], Place::Using),
    (&[Instance, SetTenant, Activate], Place::Instance),
    (&[InstanceFromDefault, SetTenant, Activate], Place::Default),
];

struct Ctx {
    r: Registry,
    s_using: SchemaName,
    s_inst: SchemaName,
    s_tenant: SchemaName,
    s_active: SchemaName,
    inst: Instance<User>,
    inst_default: Instance<User>,
}

async fn setup(t: &common::TestDb) -> Ctx {
    let r = t.registry.clone();
    let s_using = t.schema("using");
    let s_inst = t.schema("inst");
    let s_tenant = t.schema("tenant");
    let s_active = t.schema("active");
    let places = [
        (None, Place::Default),
        (Some(&s_using), Place::Using),
        (Some(&s_inst), Place::Instance),
        (Some(&s_tenant), Place::Tenant),
        (Some(&s_active), Place::Active),
    ];
    for (schema, place) in places {
        let query = |r: &Registry| match schema {
            Some(s) => User::query(r).using(s),
            None => User::query(r),
        };
        if let Some(s) = schema {
            create_schema(&r, s, None, false, true).await.unwrap();
        }
        let owner = query(&r).create(user(place.label())).await.unwrap();
        let products: Vec<Product> = (0..place.products())
            .map(|i| product(&format!("{}-{i}", place.label()), Some(&owner)))
            .collect();
        let q = match schema {
            Some(s) => Product::query(&r).using(s),
            None => Product::query(&r),
        };
        q.bulk_create(products).await.unwrap();
    }
    let inst = User::query(&r)
        .using(&s_inst)
        .get(User::name().eq("inst"))
        .await
        .unwrap();
    let inst_default = User::query(&r)
        .get(User::name().eq("default"))
        .await
        .unwrap();
    // Every owner has the same key in its schema, so `related` finds every product there.
    assert_eq!(inst.id, inst_default.id);
    Ctx {
        r,
        s_using,
        s_inst,
        s_tenant,
        s_active,
        inst,
        inst_default,
    }
}

async fn run_case(ctx: &Ctx, layers: &[Layer]) -> Vec<Instance<Product>> {
    let has = |layer| layers.contains(&layer);
    let mut qs = if has(Instance) {
        ctx.inst.related(Product::user())
    } else if has(InstanceFromDefault) {
        ctx.inst_default.related(Product::user())
    } else {
        Product::query(&ctx.r)
    };
    if has(Using) {
        qs = qs.using(&ctx.s_using);
    }
    if !(has(WithTenant) || has(SetTenant) || has(Activate)) {
        return qs.all().await.unwrap();
    }
    let tenant = has(WithTenant).then(|| ctx.s_tenant.clone());
    with_tenant(tenant, async {
        if has(SetTenant) {
            set_tenant(Some(ctx.s_tenant.clone())).unwrap();
        }
        if has(Activate) {
            activate_schema(&ctx.s_active).unwrap();
        }
        qs.all().await.unwrap()
    })
    .await
}

fn answered_by(rows: &[Instance<Product>]) -> Option<Place> {
    let places = [
        Place::Default,
        Place::Using,
        Place::Instance,
        Place::Tenant,
        Place::Active,
    ];
    places.into_iter().find(|place| {
        rows.len() == place.products()
            && rows
                .iter()
                .all(|p| p.name.starts_with(&format!("{}-", place.label())))
    })
}

backend_test!(precedence_table, |t: common::TestDb| async move {
    let ctx = setup(&t).await;
    let mut failures = Vec::new();
    for (layers, expected) in CASES {
        let rows = run_case(&ctx, layers).await;
        let got = answered_by(&rows);
        if got != Some(*expected) {
            failures.push(format!(
                "{layers:?}: expected {expected:?}, answered by {got:?} ({} rows)",
                rows.len()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "precedence violated:\n{}",
        failures.join("\n")
    );
});

// refresh / save of an instance go to its origin whatever the context says.
backend_test!(
    instance_origin_beats_context,
    |t: common::TestDb| async move {
        let ctx = setup(&t).await;
        let r = &ctx.r;
        let contexts: &[&[Layer]] = &[
            &[WithTenant],
            &[SetTenant],
            &[Activate],
            &[WithTenant, Activate],
        ];
        // What each origin holds now (every round saves new names).
        let (mut in_inst, mut in_default) = ("inst".to_owned(), "default".to_owned());
        for (i, layers) in contexts.iter().enumerate() {
            let has = |layer| layers.contains(&layer);
            let mut inst = ctx.inst.clone();
            let mut inst_default = ctx.inst_default.clone();
            let tenant = has(WithTenant).then(|| ctx.s_tenant.clone());
            with_tenant(tenant, async {
                if has(SetTenant) {
                    set_tenant(Some(ctx.s_tenant.clone())).unwrap();
                }
                if has(Activate) {
                    activate_schema(&ctx.s_active).unwrap();
                }
                inst.name = "garbage".into();
                inst.refresh().await.unwrap();
                assert_eq!(inst.name, in_inst, "{layers:?}");
                inst_default.name = "garbage".into();
                inst_default.refresh().await.unwrap();
                assert_eq!(inst_default.name, in_default, "{layers:?}");

                inst.name = format!("inst-saved-{i}");
                inst.save().await.unwrap();
                inst_default.name = format!("default-saved-{i}");
                inst_default.save().await.unwrap();
            })
            .await;
            in_inst = format!("inst-saved-{i}");
            in_default = format!("default-saved-{i}");
            let by_key = |schema: Option<&SchemaName>| {
                let q = User::query(r);
                let q = match schema {
                    Some(s) => q.using(s),
                    None => q,
                };
                q.get_pk(ctx.inst.id)
            };
            assert_eq!(
                by_key(Some(&ctx.s_inst)).await.unwrap().name,
                format!("inst-saved-{i}")
            );
            assert_eq!(
                by_key(None).await.unwrap().name,
                format!("default-saved-{i}")
            );
            assert_eq!(by_key(Some(&ctx.s_tenant)).await.unwrap().name, "tenant");
            assert_eq!(by_key(Some(&ctx.s_active)).await.unwrap().name, "active");
        }
    }
);

// A QuerySet binds its schema when it is awaited, not when it is built.
backend_test!(
    queryset_binds_when_awaited,
    |t: common::TestDb| async move {
        let ctx = setup(&t).await;
        let r = &ctx.r;
        let built_outside = Product::query(r);
        let rows = with_tenant(Some(ctx.s_tenant.clone()), async move {
            built_outside.all().await.unwrap()
        })
        .await;
        assert_eq!(answered_by(&rows), Some(Place::Tenant));

        let built_inside =
            with_tenant(Some(ctx.s_tenant.clone()), async { Product::query(r) }).await;
        let rows = built_inside.all().await.unwrap();
        assert_eq!(answered_by(&rows), Some(Place::Default));

        // A future created outside the scope but polled inside it also sees the tenant.
        let future = Product::query(r).count();
        let count = tenant_scope(async {
            activate_schema(&ctx.s_active).unwrap();
            future.await.unwrap()
        })
        .await;
        assert_eq!(count as usize, Place::Active.products());
    }
);

// Shared models ignore the tenant context; a tenant row's FK to one resolves to the shared
// schema.
backend_test!(
    shared_models_ignore_context,
    |t: common::TestDb| async move {
        let r = &t.registry;
        let tenant = t.schema("tenant");
        create_schema(r, &tenant, None, false, true).await.unwrap();
        let gold = Plan::query(r)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        Plan::query(r)
            .create(Plan {
                id: 0,
                title: "silver".into(),
            })
            .await
            .unwrap();

        // A scope's tenant is fixed once: each context gets its own scope.
        let by_tenant = with_tenant(Some(tenant.clone()), Plan::query(r).all())
            .await
            .unwrap();
        let by_set = tenant_scope(async {
            set_tenant(Some(tenant.clone())).unwrap();
            Plan::query(r).count().await.unwrap()
        })
        .await;
        let by_active = tenant_scope(async {
            activate_schema(&tenant).unwrap();
            Plan::query(r).get_pk(gold.id).await.unwrap()
        })
        .await;
        assert_eq!(by_tenant.len(), 2);
        assert!(by_tenant.iter().all(|p| p.origin().schema().is_none()));
        assert_eq!(by_set, 2);
        assert_eq!(by_active.title, "gold");
        // The shared model has no table in the tenant schema at all.
        assert!(Plan::query(r).using(&tenant).count().await.is_err());

        // A tenant subscription pointing at the shared plan.
        let sub = with_tenant(Some(tenant.clone()), async {
            Subscription::query(r)
                .create(Subscription {
                    id: 0,
                    plan: ForeignKey::from(&gold),
                    note: "tenant sub".into(),
                })
                .await
                .unwrap()
        })
        .await;
        assert_eq!(sub.origin().schema(), Some(&tenant));
        assert_eq!(Subscription::query(r).count().await.unwrap(), 0);

        let loaded = Subscription::query(r)
            .using(&tenant)
            .get_pk(sub.id)
            .await
            .unwrap();
        let plan = loaded.fetch(&loaded.plan).await.unwrap();
        assert_eq!(plan.title, "gold");
        assert_eq!(plan.origin().schema(), None);
        // The same inside another tenant's scope.
        let other = t.schema("other");
        create_schema(r, &other, None, false, true).await.unwrap();
        let plan = with_tenant(Some(other.clone()), loaded.fetch(&loaded.plan))
            .await
            .unwrap();
        assert_eq!(plan.title, "gold");
        // select_related loads the shared plan too.
        let joined = with_tenant(Some(tenant.clone()), async {
            Subscription::query(r)
                .select_related(Subscription::plan())
                .all()
                .await
                .unwrap()
        })
        .await;
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].plan.get().map(|p| p.title.as_str()), Some("gold"));
    }
);
