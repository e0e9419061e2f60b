//! TenantLayer over a Router, driven with `tower::ServiceExt::oneshot`, on every backend.
mod common;

use std::time::Duration;

use axum::{
    body::Body,
    extract::{Extension, Path},
    http::{HeaderValue, Request, StatusCode},
    routing::get,
    Json, Router,
};
use serde::Serialize;
use serde_json::{json, Value};
use tenantry::{
    contrib::{self, Tenant},
    create_schema, Model, Registry, SchemaName,
};
use tenantry_axum::{
    CurrentTenant, InvalidTenant, TenantCache, TenantLayer, TenantSource, UnknownTenantPolicy,
};
use tower::ServiceExt;

#[derive(Model, Debug, Clone, Serialize)]
struct Note {
    id: i64,
    #[model(max_length = 50)]
    text: String,
}

/// The registry with the contrib models and `Note`, a note "shared" in the shared schema,
/// and tenants `<prefix>_a` / `<prefix>_b` with one note each named after them.
async fn setup(t: &common::TestDb) -> (Registry, SchemaName, SchemaName) {
    let r = contrib::register(t.registry.clone()).register::<Note>();
    r.create_all().await.unwrap();
    Note::query(&r)
        .create(Note {
            id: 0,
            text: "shared".into(),
        })
        .await
        .unwrap();
    let a = t.schema("a");
    let b = t.schema("b");
    for schema in [&a, &b] {
        contrib::create_tenant(&r, schema, schema.as_str())
            .await
            .unwrap();
        Note::query(&r)
            .using(schema)
            .create(Note {
                id: 0,
                text: schema.to_string(),
            })
            .await
            .unwrap();
    }
    (r, a, b)
}

async fn notes(registry: axum::extract::State<Registry>) -> Json<Vec<String>> {
    let notes = Note::query(&*registry).all().await.unwrap();
    Json(notes.into_iter().map(|n| n.into_inner().text).collect())
}

async fn whoami(
    CurrentTenant(tenant): CurrentTenant,
    row: Option<Extension<Tenant>>,
) -> Json<Value> {
    Json(json!({
        "tenant": tenant.map(|t| t.to_string()),
        "row": row.map(|Extension(t)| t.tenant_name),
        "task": tenantry::get_tenant().map(|t| t.to_string()),
    }))
}

fn app(registry: &Registry, layer: TenantLayer) -> Router {
    Router::new()
        .route("/notes", get(notes))
        .route("/whoami", get(whoami))
        .route("/{tenant}/notes", get(|_: Path<String>, r| notes(r)))
        .layer(layer)
        .with_state(registry.clone())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get_with(uri: &str, header: Option<(&str, &str)>) -> Request<Body> {
    let mut request = Request::get(uri);
    if let Some((name, value)) = header {
        request = request.header(name, value);
    }
    request.body(Body::empty()).unwrap()
}

backend_test!(header_default_policy, |t: common::TestDb| async move {
    let (r, a, b) = setup(&t).await;
    let app = app(&r, TenantLayer::new(r.clone()));

    let (status, body) = send(&app, get_with("/notes", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(["shared"]));
    for schema in [&a, &b] {
        let (status, body) =
            send(&app, get_with("/notes", Some(("tenant", schema.as_str())))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!([schema.as_str()]));
    }
    // Unknown but valid: the shared schema (the seed's behaviour).
    let (status, body) = send(&app, get_with("/notes", Some(("tenant", "nobody_here")))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(["shared"]));

    // Invalid names: 400 with a JSON error, whatever the policy.
    for bad in ["Bad-Name", "public", "pg_x", "a;drop", "", &"x".repeat(64)] {
        let (status, body) = send(&app, get_with("/notes", Some(("tenant", bad)))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(
            body["error"].as_str().unwrap().contains("invalid tenant"),
            "{body}"
        );
    }
    let mut request = get_with("/notes", None);
    request
        .headers_mut()
        .insert("tenant", HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
    let (status, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());

    // The extractor, the Tenant row extension and the task's tenant agree.
    let (_, body) = send(&app, get_with("/whoami", Some(("tenant", a.as_str())))).await;
    assert_eq!(
        body,
        json!({"tenant": a.as_str(), "row": a.as_str(), "task": a.as_str()})
    );
    let (_, body) = send(&app, get_with("/whoami", None)).await;
    assert_eq!(body, json!({"tenant": null, "row": null, "task": null}));
});

backend_test!(header_strict_policy, |t: common::TestDb| async move {
    let (r, a, _) = setup(&t).await;
    let app = app(&r, TenantLayer::new(r.clone()).strict(true));
    let (status, body) = send(&app, get_with("/notes", Some(("tenant", "nobody_here")))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "unknown tenant \"nobody_here\""}));
    let (status, body) = send(&app, get_with("/notes", Some(("tenant", a.as_str())))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([a.as_str()]));
    // No tenant named: still the shared schema.
    let (status, body) = send(&app, get_with("/notes", None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!(["shared"]));
    // A custom header name.
    let app2 = self::app(
        &r,
        TenantLayer::new(r.clone())
            .source(TenantSource::header("x-tenant"))
            .unknown_tenant(UnknownTenantPolicy::Reject),
    );
    let (_, body) = send(&app2, get_with("/notes", Some(("x-tenant", a.as_str())))).await;
    assert_eq!(body, json!([a.as_str()]));
    let (_, body) = send(&app2, get_with("/notes", Some(("tenant", a.as_str())))).await;
    assert_eq!(body, json!(["shared"]));
});

backend_test!(other_sources, |t: common::TestDb| async move {
    let (r, a, b) = setup(&t).await;

    let by_host = app(
        &r,
        TenantLayer::new(r.clone()).source(TenantSource::subdomain("example.com")),
    );
    let host = format!("{a}.Example.COM:8080");
    let (_, body) = send(&by_host, get_with("/notes", Some(("host", &host)))).await;
    assert_eq!(body, json!([a.as_str()]));
    let (_, body) = send(&by_host, get_with("/notes", Some(("host", "example.com")))).await;
    assert_eq!(body, json!(["shared"]));
    let (_, body) = send(
        &by_host,
        get_with("/notes", Some(("host", "elsewhere.org"))),
    )
    .await;
    assert_eq!(body, json!(["shared"]));
    let (status, _) = send(
        &by_host,
        get_with("/notes", Some(("host", "x.y.example.com"))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let by_path = app(
        &r,
        TenantLayer::new(r.clone()).source(TenantSource::PathSegment),
    );
    let (_, body) = send(&by_path, get_with(&format!("/{b}/notes"), None)).await;
    assert_eq!(body, json!([b.as_str()]));
    let (status, _) = send(&by_path, get_with("/Nope/notes", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A closure: the `t` query parameter; `t=` alone is refused by the resolver itself.
    let by_query = app(
        &r,
        TenantLayer::new(r.clone()).source(TenantSource::custom(
            |parts: &axum::http::request::Parts| {
                let query = parts.uri.query().unwrap_or("");
                match query.split('&').find_map(|kv| kv.strip_prefix("t=")) {
                    Some("") => Err(InvalidTenant::new("empty t parameter")),
                    Some(name) => Ok(Some(name.to_owned())),
                    None => Ok(None),
                }
            },
        )),
    );
    let (_, body) = send(&by_query, get_with(&format!("/notes?x=1&t={a}"), None)).await;
    assert_eq!(body, json!([a.as_str()]));
    let (_, body) = send(&by_query, get_with("/notes", None)).await;
    assert_eq!(body, json!(["shared"]));
    let (status, body) = send(&by_query, get_with("/notes?t=", None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "invalid tenant: empty t parameter"}));
});

backend_test!(cache_and_invalidation, |t: common::TestDb| async move {
    let (r, _, _) = setup(&t).await;
    let cache = TenantCache::with_limits(r.clone(), Duration::from_secs(3600), 100);
    let app = app(&r, TenantLayer::with_cache(cache.clone()).strict(true));
    let c = t.schema("c");

    // Unknown, and remembered as unknown.
    let (status, _) = send(&app, get_with("/notes", Some(("tenant", c.as_str())))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Created behind the cache's back: still unknown until invalidated.
    contrib::create_tenant(&r, &c, "C").await.unwrap();
    let (status, _) = send(&app, get_with("/notes", Some(("tenant", c.as_str())))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cache.invalidate(&c);
    let (status, body) = send(&app, get_with("/notes", Some(("tenant", c.as_str())))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));

    // Through the cache: seen at once, both ways.
    let d = t.schema("d");
    let (status, _) = send(&app, get_with("/notes", Some(("tenant", d.as_str())))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    cache.create_tenant(&d, "D").await.unwrap();
    let (status, _) = send(&app, get_with("/notes", Some(("tenant", d.as_str())))).await;
    assert_eq!(status, StatusCode::OK);
    cache.drop_tenant(&d, true).await.unwrap();
    let (status, _) = send(&app, get_with("/notes", Some(("tenant", d.as_str())))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // clear() forgets everything; a zero TTL caches nothing.
    contrib::drop_tenant(&r, &c, true).await.unwrap();
    cache.clear();
    let (status, _) = send(&app, get_with("/notes", Some(("tenant", c.as_str())))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let uncached = TenantCache::with_limits(r.clone(), Duration::ZERO, 100);
    let e = t.schema("e");
    assert!(uncached.lookup(&e).await.unwrap().is_none());
    contrib::create_tenant(&r, &e, "E").await.unwrap();
    assert_eq!(uncached.lookup(&e).await.unwrap().unwrap().tenant_name, "E");

    // A bounded cache keeps working past its capacity.
    let small = TenantCache::with_limits(r.clone(), Duration::from_secs(3600), 2);
    for i in 0..10 {
        let name = SchemaName::parse(&format!("nobody_{i}")).unwrap();
        assert!(small.lookup(&name).await.unwrap().is_none());
    }
    assert!(small.lookup(&e).await.unwrap().is_some());
});

backend_test!(lookup_failure_is_500, |t: common::TestDb| async move {
    // No tenants table: the lookup fails.
    let r = t.registry.clone().register::<Note>();
    r.create_all().await.unwrap();
    let app = app(&r, TenantLayer::new(r.clone()));
    let (status, body) = send(&app, get_with("/notes", Some(("tenant", "somebody")))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"error": "the tenant could not be looked up"}));
    // Requests naming no tenant do not look anything up.
    let (status, _) = send(&app, get_with("/notes", None)).await;
    assert_eq!(status, StatusCode::OK);
});

backend_test!(
    concurrent_requests_stay_apart,
    |t: common::TestDb| async move {
        let (r, a, b) = setup(&t).await;
        // A third tenant whose schema exists only through create_schema (no row): shared.
        let norow = t.schema("norow");
        create_schema(&r, &norow, None, false, true).await.unwrap();
        let app = app(&r, TenantLayer::new(r.clone()));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let app = app.clone();
            let (tenant, expected) = match i % 4 {
                0 => (Some(a.to_string()), a.to_string()),
                1 => (Some(b.to_string()), b.to_string()),
                2 => (Some(norow.to_string()), "shared".to_owned()),
                _ => (None, "shared".to_owned()),
            };
            tasks.push(tokio::spawn(async move {
                let request = get_with("/notes", tenant.as_deref().map(|t| ("tenant", t)));
                let (status, body) = send(&app, request).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(body, json!([expected]));
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
);

// Every hostile header value is refused with 400 under both policies; valid look-alikes of
// a tenant are unknown tenants (shared data, or 404 when strict). Never 500, never a
// tenant's data, and nothing created.
backend_test!(hostile_header_corpus, |t: common::TestDb| async move {
    let (r, a, _) = setup(&t).await;
    let tenants_before: Vec<String> = Tenant::query(&r)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.into_inner().schema_name)
        .collect();
    let own = |names: Vec<SchemaName>| -> Vec<SchemaName> {
        names
            .into_iter()
            .filter(|n| n.as_str().starts_with(&t.prefix))
            .collect()
    };
    let schemas_before = own(r.schema().list().await.unwrap());
    let lenient = app(&r, TenantLayer::new(r.clone()));
    let strict = app(&r, TenantLayer::new(r.clone()).strict(true));
    let by_path = app(
        &r,
        TenantLayer::new(r.clone()).source(TenantSource::PathSegment),
    );
    let corpus = common::hostile::corpus();
    assert!(corpus.len() >= 200);
    let mut sent = 0;
    for value in &corpus {
        // Control characters (and DEL) are not header bytes: `HeaderValue` refuses to build
        // them, so no client can send them. Skip those.
        let Ok(header) = HeaderValue::from_str(value) else {
            continue;
        };
        sent += 1;
        for (policy, app) in [("lenient", &lenient), ("strict", &strict)] {
            let mut request = get_with("/notes", None);
            request.headers_mut().insert("tenant", header.clone());
            let (status, body) = send(app, request).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{policy} {value:?}: {body}"
            );
            assert!(body["error"].is_string(), "{body}");
        }
        // In the path too, where it survives percent-encoding as a segment.
        let segment: String = value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'_' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        if !segment.is_empty() {
            let (status, body) = send(&by_path, get_with(&format!("/{segment}/notes"), None)).await;
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
                "path {value:?}: {status} {body}"
            );
            assert_ne!(body, json!([a.as_str()]));
        }
    }
    assert!(sent >= 150, "only {sent} values sendable");
    for value in common::hostile::valid_lookalikes(a.as_str()) {
        let (status, body) = send(&lenient, get_with("/notes", Some(("tenant", &value)))).await;
        assert_eq!(status, StatusCode::OK, "{value:?}");
        assert_eq!(body, json!(["shared"]), "{value:?}");
        let (status, body) = send(&strict, get_with("/notes", Some(("tenant", &value)))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{value:?}: {body}");
    }
    // The real tenant still gets its own data.
    let (_, body) = send(&strict, get_with("/notes", Some(("tenant", a.as_str())))).await;
    assert_eq!(body, json!([a.as_str()]));
    let tenants_after: Vec<String> = Tenant::query(&r)
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.into_inner().schema_name)
        .collect();
    assert_eq!(tenants_after, tenants_before);
    assert_eq!(own(r.schema().list().await.unwrap()), schemas_before);
});
