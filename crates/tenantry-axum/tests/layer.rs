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
    create_schema, Model, Registry, SchemaName, TenantInfo,
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

/// The notes of the request's tenant; a failed query (a tenant dropped a moment ago, while
/// a layer still knows it) is a 500.
async fn notes(
    registry: axum::extract::State<Registry>,
) -> Result<Json<Vec<String>>, (StatusCode, Json<Value>)> {
    match Note::query(&*registry).all().await {
        Ok(notes) => Ok(Json(
            notes.into_iter().map(|n| n.into_inner().text).collect(),
        )),
        Err(error) => Err((
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": error.to_string()})),
        )),
    }
}

async fn whoami(
    CurrentTenant(tenant): CurrentTenant,
    row: Option<Extension<TenantInfo>>,
) -> Json<Value> {
    Json(json!({
        "tenant": tenant.map(|t| t.to_string()),
        "row": row.map(|Extension(t)| t.schema.to_string()),
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

    // The extractor, the TenantInfo extension and the task's tenant agree.
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
    // The tenants epoch is not read after the first lookup here: this test is about the TTL
    // and explicit invalidation (`other_process_changes_are_seen_within_a_second` is about
    // the epoch).
    let cache = TenantCache::with_limits(r.clone(), Duration::from_secs(3600), 100)
        .with_epoch_interval(Duration::MAX);
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
    assert_eq!(uncached.lookup(&e).await.unwrap().unwrap().schema, e);

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

/// A body of 5 chunks, each made by a query run when the server polls the body (after the
/// handler returned): `{"notes": [...], "task": tenant}` per line.
async fn streamed_notes(registry: axum::extract::State<Registry>) -> Body {
    let r = registry.0;
    let chunks = futures_util::stream::unfold(0, move |i| {
        let r = r.clone();
        async move {
            if i == 5 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            let notes: Vec<String> = Note::query(&r)
                .all()
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.into_inner().text)
                .collect();
            let line = json!({
                "notes": notes,
                "task": tenantry::get_tenant().map(|t| t.to_string()),
            });
            Some((
                Ok::<_, std::convert::Infallible>(format!("{line}\n")),
                i + 1,
            ))
        }
    });
    Body::from_stream(chunks)
}

/// The same as server-sent events.
async fn sse_notes(
    registry: axum::extract::State<Registry>,
) -> axum::response::sse::Sse<
    impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    let r = registry.0;
    let events = futures_util::stream::unfold(0, move |i| {
        let r = r.clone();
        async move {
            if i == 5 {
                return None;
            }
            tokio::task::yield_now().await;
            let count = Note::query(&r).count().await.unwrap();
            let first = Note::query(&r)
                .first()
                .await
                .unwrap()
                .map(|n| n.into_inner().text);
            let event = axum::response::sse::Event::default()
                .data(json!({"count": count, "first": first}).to_string());
            Some((Ok(event), i + 1))
        }
    });
    axum::response::sse::Sse::new(events)
}

async fn body_lines(response: axum::response::Response) -> Vec<Value> {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("data: ").unwrap_or(line);
            (!line.is_empty()).then(|| serde_json::from_str(line).unwrap())
        })
        .collect()
}

// The tenant scope covers the response body: a streaming body (and SSE) polled after the
// handler returned reads the request's tenant in every chunk, for two tenants at once, even
// when both bodies are polled by one task.
backend_test!(
    streaming_body_keeps_the_tenant,
    |t: common::TestDb| async move {
        let (r, a, b) = setup(&t).await;
        let app = Router::new()
            .route("/stream", get(streamed_notes))
            .route("/sse", get(sse_notes))
            .layer(TenantLayer::new(r.clone()))
            .with_state(r.clone());
        let request = |uri: &str, tenant: Option<&SchemaName>| {
            get_with(uri, tenant.map(|t| ("tenant", t.as_str())))
        };
        let expect_stream = |tenant: Option<&SchemaName>| {
            let name = tenant.map_or("shared".to_owned(), |t| t.to_string());
            json!({"notes": [name], "task": tenant.map(|t| t.to_string())})
        };
        let expect_sse = |tenant: Option<&SchemaName>| {
            let name = tenant.map_or("shared".to_owned(), |t| t.to_string());
            json!({"count": 1, "first": name})
        };

        // Two tenants and the shared schema: responses first, bodies read afterwards, all three
        // bodies polled together by this one task.
        for _ in 0..3 {
            let ra = app
                .clone()
                .oneshot(request("/stream", Some(&a)))
                .await
                .unwrap();
            let rb = app
                .clone()
                .oneshot(request("/stream", Some(&b)))
                .await
                .unwrap();
            let rs = app.clone().oneshot(request("/stream", None)).await.unwrap();
            let (la, lb, ls) = tokio::join!(body_lines(ra), body_lines(rb), body_lines(rs));
            assert_eq!(la, vec![expect_stream(Some(&a)); 5]);
            assert_eq!(lb, vec![expect_stream(Some(&b)); 5]);
            assert_eq!(ls, vec![expect_stream(None); 5]);

            let ra = app
                .clone()
                .oneshot(request("/sse", Some(&a)))
                .await
                .unwrap();
            let rb = app
                .clone()
                .oneshot(request("/sse", Some(&b)))
                .await
                .unwrap();
            let (la, lb) = tokio::join!(body_lines(ra), body_lines(rb));
            assert_eq!(la, vec![expect_sse(Some(&a)); 5]);
            assert_eq!(lb, vec![expect_sse(Some(&b)); 5]);
        }

        // Many concurrent requests, bodies read on other tasks than the one that called.
        let mut tasks = Vec::new();
        for i in 0..40 {
            let app = app.clone();
            let tenant = [Some(a.clone()), Some(b.clone()), None][i % 3].clone();
            let uri = if i % 2 == 0 { "/stream" } else { "/sse" };
            let expected = if i % 2 == 0 {
                expect_stream(tenant.as_ref())
            } else {
                expect_sse(tenant.as_ref())
            };
            let response = app.oneshot(request(uri, tenant.as_ref())).await.unwrap();
            tasks.push(tokio::spawn(async move {
                assert_eq!(body_lines(response).await, vec![expected; 5]);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
);

/// Sends `tenant`'s /notes request to `app` until it answers `status`, for at most 1.5 s
/// from now; returns how long that took.
async fn wait_for(app: &Router, tenant: &SchemaName, status: StatusCode) -> (Duration, Value) {
    let start = std::time::Instant::now();
    loop {
        let (got, body) = send(app, get_with("/notes", Some(("tenant", tenant.as_str())))).await;
        if got == status {
            eprintln!("{tenant}: {status} after {:?}", start.elapsed());
            return (start.elapsed(), body);
        }
        assert!(
            start.elapsed() < Duration::from_millis(1500),
            "still {got} {body} for {tenant} after {:?}, expected {status}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Two layers on two Database handles (two "processes"), each with the default 30 s cache:
// a tenant created, suspended, resumed or dropped through one is seen by the other within a
// second (through the tenants epoch), while requests for two other tenants keep getting
// their own data throughout.
backend_test!(
    other_process_changes_are_seen_within_a_second,
    |t: common::TestDb| async move { other_process_changes(t, false).await }
);

// The same with every tenant held in memory (the cache that a flood of unknown names
// cannot turn into database load).
backend_test!(
    other_process_changes_are_seen_within_a_second_in_memory,
    |t: common::TestDb| async move { other_process_changes(t, true).await }
);

async fn other_process_changes(t: common::TestDb, in_memory: bool) {
    {
        let (r1, a, b) = setup(&t).await;
        let r2 = contrib::register(Registry::new(t.reconnect().await)).register::<Note>();
        let layer = |r: &Registry| {
            let cache = TenantCache::new(r.clone());
            let cache = match in_memory {
                true => cache.every_tenant_in_memory(),
                false => cache,
            };
            TenantLayer::with_cache(cache).strict(true)
        };
        let layer1 = layer(&r1);
        let layer2 = layer(&r2);
        let app1 = app(&r1, layer1.clone());
        let app2 = app(&r2, layer2.clone());
        let c = t.schema("c");

        // Background traffic for a and b on both layers, checked all along.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut traffic = Vec::new();
        for (app, tenant) in [(&app1, &a), (&app2, &b), (&app2, &a), (&app1, &b)] {
            let (app, tenant, stop) = (app.clone(), tenant.clone(), stop.clone());
            traffic.push(tokio::spawn(async move {
                let mut served = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, body) =
                        send(&app, get_with("/notes", Some(("tenant", tenant.as_str())))).await;
                    assert_eq!(status, StatusCode::OK);
                    assert_eq!(body, json!([tenant.as_str()]));
                    served += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                served
            }));
        }

        // Both layers know c is no tenant (and remember it for 30 s).
        for app in [&app1, &app2] {
            let (status, _) = send(app, get_with("/notes", Some(("tenant", c.as_str())))).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
        }

        // Created through layer 1's cache: layer 1 at once, layer 2 within a second.
        layer1.cache().create_tenant(&c, "C").await.unwrap();
        Note::query(&r1)
            .using(&c)
            .create(Note {
                id: 0,
                text: c.to_string(),
            })
            .await
            .unwrap();
        let (status, body) = send(&app1, get_with("/notes", Some(("tenant", c.as_str())))).await;
        assert_eq!((status, body), (StatusCode::OK, json!([c.as_str()])));
        let (_, body) = wait_for(&app2, &c, StatusCode::OK).await;
        assert_eq!(body, json!([c.as_str()]));

        // Suspended by "another process" (plain contrib on registry 1): both layers refuse it
        // within a second, with 403 and a JSON error.
        let suspended = contrib::suspend_tenant(&r1, &c).await.unwrap();
        assert!(suspended.suspended);
        for app in [&app1, &app2] {
            let (_, body) = wait_for(app, &c, StatusCode::FORBIDDEN).await;
            assert_eq!(
                body,
                json!({"error": format!("tenant {:?} is suspended", c.as_str())})
            );
        }
        // Suspension is not a fallback to the shared schema, whatever the policy.
        let lenient = app(&r2, TenantLayer::new(r2.clone()));
        let (status, _) = send(&lenient, get_with("/notes", Some(("tenant", c.as_str())))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // Resumed through layer 2's cache.
        layer2.cache().resume_tenant(&c).await.unwrap();
        for app in [&app2, &app1] {
            let (_, body) = wait_for(app, &c, StatusCode::OK).await;
            assert_eq!(body, json!([c.as_str()]));
        }

        // Dropped through registry 2: both layers stop serving it within a second.
        contrib::drop_tenant(&r2, &c, true).await.unwrap();
        for app in [&app1, &app2] {
            wait_for(app, &c, StatusCode::NOT_FOUND).await;
        }

        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in traffic {
            assert!(task.await.unwrap() > 0);
        }
        r2.disconnect().await;
    }
}
