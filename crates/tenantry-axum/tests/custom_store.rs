//! An application's own tenant table (with a plan and a status) drives the layer and
//! provisioning through `TenantStore`, on every backend: its tenants are served their own
//! rows, concurrently; a suspended one gets its rejection and no handler (no query) runs;
//! an unknown one follows the policy.
mod common;

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use axum::{
    body::Body,
    extract::State,
    http::{Request, StatusCode},
    routing::get,
    Json, Router,
};
use serde_json::{json, Value};
use tenantry::{contrib, BoxFuture, Model, Registry, Result, SchemaName, TenantInfo, TenantStore};
use tenantry_axum::{TenantCache, TenantLayer, TenantSource, UnknownTenantPolicy};
use tower::ServiceExt;

/// The application's tenant table.
#[derive(Model, Debug, Clone)]
#[model(shared)]
struct Organization {
    id: i64,
    #[model(max_length = 63, unique)]
    schema_name: String,
    #[model(max_length = 20)]
    plan: String,
    #[model(max_length = 20)]
    status: String,
}

#[derive(Model, Debug, Clone)]
struct Invoice {
    id: i64,
    #[model(max_length = 50)]
    label: String,
}

struct Organizations(Registry);

fn info(org: &Organization) -> Result<TenantInfo> {
    Ok(TenantInfo {
        schema: SchemaName::parse(&org.schema_name)?,
        suspended: org.status == "suspended",
        domains: Vec::new(),
        database: None,
    })
}

impl TenantStore for Organizations {
    fn find<'a>(&'a self, schema: &'a SchemaName) -> BoxFuture<'a, Result<Option<TenantInfo>>> {
        Box::pin(async move {
            let row = Organization::query(&self.0)
                .filter(Organization::schema_name().eq(schema.as_str()))
                .first()
                .await?;
            row.map(|org| info(&org)).transpose()
        })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<TenantInfo>>> {
        Box::pin(async move {
            Organization::query(&self.0)
                .order_by([Organization::schema_name().asc()])
                .all()
                .await?
                .iter()
                .map(|org| info(org))
                .collect()
        })
    }
}

/// Provisions `schema` through the application's own table, then gives it one invoice.
async fn provision(r: &Registry, schema: &SchemaName, plan: &'static str, status: &'static str) {
    let org = contrib::provision_tenant(r, schema, move |tx, schema| {
        Box::pin(async move {
            Organization::query(&tx)
                .create(Organization {
                    id: 0,
                    schema_name: schema.to_string(),
                    plan: plan.into(),
                    status: status.into(),
                })
                .await
        })
    })
    .await
    .unwrap();
    assert_eq!(org.plan, plan);
    Invoice::query(r)
        .using(schema)
        .create(Invoice {
            id: 0,
            label: format!("invoice of {schema}"),
        })
        .await
        .unwrap();
}

async fn invoices(State((r, calls)): State<(Registry, Arc<AtomicUsize>)>) -> Json<Value> {
    calls.fetch_add(1, Ordering::SeqCst);
    let labels = Invoice::query(&r)
        .values_list(Invoice::label())
        .await
        .unwrap();
    Json(json!(labels))
}

async fn get_json(app: &Router, tenant: &SchemaName) -> (StatusCode, Value) {
    get_host(app, "localhost", Some(tenant.as_str())).await
}

backend_pool_test!(
    your_own_tenant_table_drives_the_layer_and_provisioning,
    |t: common::TestDb| async move {
        // No contrib models at all: the application's table is the only tenant table.
        let r = t
            .registry
            .clone()
            .register::<Organization>()
            .register::<Invoice>();
        r.create_all().await.unwrap();
        let (a, b, c) = (t.schema("org_a"), t.schema("org_b"), t.schema("org_c"));
        // Provisioning off PostgreSQL holds two connections at once (the row's transaction
        // and the schema's DDL): it runs on a handle with a default pool.
        let admin = Registry::new(t.reconnect().await)
            .register::<Organization>()
            .register::<Invoice>();
        provision(&admin, &a, "pro", "active").await;
        provision(&admin, &b, "free", "active").await;
        provision(&admin, &c, "pro", "suspended").await;
        // Provisioning is all or nothing: a second org on the same schema leaves no row.
        let again = contrib::provision_tenant(&admin, &a, |tx, schema| {
            Box::pin(async move {
                Organization::query(&tx)
                    .create(Organization {
                        id: 0,
                        schema_name: schema.to_string(),
                        plan: "x".into(),
                        status: "active".into(),
                    })
                    .await
            })
        })
        .await;
        assert!(again.is_err(), "{:?}", again.err());
        admin.disconnect().await;
        assert_eq!(Organization::query(&r).count().await.unwrap(), 3);

        let store: Arc<dyn TenantStore> = Arc::new(Organizations(r.clone()));
        let calls = Arc::new(AtomicUsize::new(0));
        let layer = TenantLayer::with_cache(TenantCache::with_store(r.clone(), store.clone()))
            .unknown_tenant(UnknownTenantPolicy::Reject);
        let app = Router::new()
            .route("/invoices", get(invoices))
            .layer(layer.clone())
            .with_state((r.clone(), calls.clone()));
        // Two tenants served concurrently in one task: each its own invoice.
        let ((sa, ba), (sb, bb)) = tokio::join!(get_json(&app, &a), get_json(&app, &b));
        assert_eq!(
            (sa, ba),
            (StatusCode::OK, json!([format!("invoice of {a}")]))
        );
        assert_eq!(
            (sb, bb),
            (StatusCode::OK, json!([format!("invoice of {b}")]))
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Suspended: its own rejection, and the handler never runs.
        let (status, body) = get_json(&app, &c).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            body,
            json!({"error": format!("tenant {:?} is suspended", c.as_str())})
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Unknown: the policy (404 here), no handler either.
        let (status, _) = get_json(&app, &t.schema("org_none")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Suspending b in the application's table: refused once the cache forgets it.
        Organization::query(&r)
            .filter(Organization::schema_name().eq(b.as_str()))
            .update([Organization::status().set("suspended".to_string())])
            .await
            .unwrap();
        layer.cache().invalidate(&b);
        assert_eq!(get_json(&app, &b).await.0, StatusCode::FORBIDDEN);
        assert_eq!(get_json(&app, &a).await.0, StatusCode::OK);
        // Fleet work over the store's tenants skips the suspended ones.
        let ran = r
            .for_each_tenant(2)
            .store(store)
            .run(|tenant| {
                let r = r.clone();
                async move {
                    let labels = Invoice::query(&r).values_list(Invoice::label()).await?;
                    Ok((tenant, labels))
                }
            })
            .await
            .unwrap();
        let ran: Vec<(SchemaName, Vec<String>)> =
            ran.into_iter().map(|o| o.result.unwrap()).collect();
        assert_eq!(ran, [(a.clone(), vec![format!("invoice of {a}")])]);
    }
);

/// A store that counts how often it is asked, around the application's table.
struct Counting {
    inner: Organizations,
    finds: AtomicUsize,
    lists: AtomicUsize,
    epochs: AtomicUsize,
}

impl TenantStore for Counting {
    fn find<'a>(&'a self, schema: &'a SchemaName) -> BoxFuture<'a, Result<Option<TenantInfo>>> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find(schema)
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<TenantInfo>>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        // Custom domains: tenant `…_org_a` owns shop.example.org.
        Box::pin(async move {
            let mut tenants = self.inner.list().await?;
            for tenant in &mut tenants {
                if tenant.schema.as_str().ends_with("_org_a") {
                    tenant.domains.push("Shop.Example.org".into());
                }
            }
            Ok(tenants)
        })
    }

    fn epoch(&self) -> BoxFuture<'_, Result<Option<u128>>> {
        self.epochs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(None) })
    }
}

async fn get_host(app: &Router, host: &str, tenant: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::get("/invoices").header("host", host);
    if let Some(tenant) = tenant {
        request = request.header("tenant", tenant);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

backend_test!(
    a_chain_of_sources_and_every_tenant_in_memory,
    |t: common::TestDb| async move {
        let r = t
            .registry
            .clone()
            .register::<Organization>()
            .register::<Invoice>();
        r.create_all().await.unwrap();
        let (a, b) = (t.schema("org_a"), t.schema("org_b"));
        provision(&r, &a, "pro", "active").await;
        provision(&r, &b, "free", "active").await;
        let store = Arc::new(Counting {
            inner: Organizations(r.clone()),
            finds: AtomicUsize::new(0),
            lists: AtomicUsize::new(0),
            epochs: AtomicUsize::new(0),
        });
        let cache = TenantCache::with_store(r.clone(), store.clone()).every_tenant_in_memory();
        let layer = TenantLayer::with_cache(cache).source(TenantSource::chain([
            TenantSource::Domain,
            TenantSource::subdomain("example.com"),
            TenantSource::header("tenant"),
        ]));
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/invoices", get(invoices))
            .layer(layer)
            .with_state((r.clone(), calls.clone()));
        let mine = |s: &SchemaName| json!([format!("invoice of {s}")]);
        // A custom domain (any case, any port), a subdomain, the apex, then a header.
        let b_host = format!("{b}.example.com");
        let ((s1, v1), (s2, v2)) = tokio::join!(
            get_host(&app, "shop.EXAMPLE.org:8443", None),
            get_host(&app, &b_host, None)
        );
        assert_eq!((s1, v1), (StatusCode::OK, mine(&a)));
        assert_eq!((s2, v2), (StatusCode::OK, mine(&b)));
        // The apex names no tenant: the shared schema, which holds no invoice.
        assert_eq!(
            get_host(&app, "example.com", None).await,
            (StatusCode::OK, json!([]))
        );
        // Nor does an unknown host; its header does.
        assert_eq!(
            get_host(&app, "elsewhere.net", Some(b.as_str())).await,
            (StatusCode::OK, mine(&b))
        );
        // A custom domain wins over the header that follows it in the chain.
        assert_eq!(
            get_host(&app, "shop.example.org", Some(b.as_str())).await,
            (StatusCode::OK, mine(&a))
        );
        // A flood of valid but unknown names is answered from memory: no lookup at all.
        let started = std::time::Instant::now();
        for i in 0..10_000 {
            let name = format!("nobody_{i}");
            let (status, _) = get_host(&app, "elsewhere.net", Some(&name)).await;
            assert_eq!(status, StatusCode::OK);
        }
        let seconds = started.elapsed().as_secs() as usize;
        assert_eq!(store.finds.load(Ordering::SeqCst), 0);
        assert_eq!(store.lists.load(Ordering::SeqCst), 1);
        // The epoch (none here) is asked at most once a second.
        assert!(store.epochs.load(Ordering::SeqCst) <= seconds + 2);
    }
);
