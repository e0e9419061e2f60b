//! The demo over real HTTP (a server on 127.0.0.1:0, a hyper client), on every backend.
mod common;

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use common::http::{spawn, Client};
use serde_json::{json, Value};
use tenantry::{Registry, SchemaName};

/// The demo's registry on the test's database, seeded with the seed's tenant under a name
/// unique to the test.
async fn seeded(t: &common::TestDb) -> (Registry, SchemaName) {
    let registry = tenantry_demo::register(t.registry.clone());
    let edgy = t.schema("edgy");
    tenantry_demo::seed_as(&registry, &edgy).await.unwrap();
    (registry, edgy)
}

fn names(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("not a list: {body}"))
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert!(body["error"].is_string(), "no JSON error: {body}");
}

backend_test!(practical_case, |t: common::TestDb| async move {
    let (registry, edgy) = seeded(&t).await;
    let addr = spawn(&registry, false).await;
    let mut client = Client::connect(addr).await;

    let (status, body) = client.get("/products", Some(edgy.as_str())).await;
    assert_eq!(status, 200);
    let products = body.as_array().unwrap();
    assert_eq!(products.len(), 10);
    let owner = &products[0]["user"];
    assert!(owner.is_i64());
    for (i, product) in products.iter().enumerate() {
        assert_eq!(product["name"], format!("Product-{i}"));
        assert_eq!(&product["user"], owner);
        assert!(product["id"].is_i64());
    }
    let (status, body) = client.get("/products", None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 25);

    // Seeding again adds nothing.
    tenantry_demo::seed_as(&registry, &edgy).await.unwrap();
    assert_eq!(
        names(&client.get("/products", Some(edgy.as_str())).await.1).len(),
        10
    );
    assert_eq!(names(&client.get("/products", None).await.1).len(), 25);

    let (status, _) = client.get("/healthz", None).await;
    assert_eq!(status, 200);
    let (status, body) = client.get("/tenants", None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["schema_name"], edgy.as_str());
    assert_eq!(body[0]["tenant_name"], edgy.as_str());
    assert!(body[0]["created_at"].is_string());
    assert_eq!(body[0]["database"], Value::Null);
});

backend_test!(two_demos_on_one_server, |t: common::TestDb| async move {
    // Two demo databases on one server both seed tenant `edgy`, the very name, at once. On
    // MariaDB each is the database `<database>$edgy` of its own tenant namespace: neither
    // collides with the other (nor with a server database called `edgy`).
    let one = tenantry_demo::register(t.registry.clone());
    let two = tenantry_demo::register(Registry::new(t.other_database("demo2").await));
    let (a, b) = tokio::join!(tenantry_demo::seed(&one), tenantry_demo::seed(&two));
    a.unwrap();
    b.unwrap();
    let mut first = Client::connect(spawn(&one, true).await).await;
    let mut second = Client::connect(spawn(&two, true).await).await;
    let (status, _) = first
        .post("/products", Some("edgy"), json!({"name": "only-first"}))
        .await;
    assert_eq!(status, 201);
    let firsts = names(&first.get("/products", Some("edgy")).await.1);
    let seconds = names(&second.get("/products", Some("edgy")).await.1);
    assert_eq!(firsts.len(), 11);
    assert!(firsts.contains(&"only-first".to_owned()));
    assert_eq!(seconds.len(), 10);
    assert!(!seconds.contains(&"only-first".to_owned()));
    for (registry, client) in [(&one, &mut first), (&two, &mut second)] {
        let tenants = client.get("/tenants", None).await.1;
        assert_eq!(tenants.as_array().unwrap().len(), 1, "{tenants}");
        assert_eq!(
            registry.schema().list().await.unwrap(),
            vec![SchemaName::parse("edgy").unwrap()]
        );
    }
    two.disconnect().await;
});

backend_test!(
    alternating_tenants_no_leaks,
    |t: common::TestDb| async move {
        let (registry, edgy) = seeded(&t).await;
        let addr = spawn(&registry, false).await;
        let mut tasks = Vec::new();
        for worker in 0..4 {
            let edgy = edgy.to_string();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                for i in 0..150 {
                    let (tenant, expected) = match (i + worker) % 3 {
                        0 => (Some(edgy.as_str()), 10),
                        1 => (None, 25),
                        // Valid but no tenant: the shared data (not strict).
                        _ => (Some("nobody_at_all"), 25),
                    };
                    let (status, body) = client.get("/products", tenant).await;
                    assert_eq!(status, 200);
                    assert_eq!(names(&body).len(), expected, "request {i} as {tenant:?}");
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }
);

backend_test!(strict_mode, |t: common::TestDb| async move {
    let (registry, edgy) = seeded(&t).await;
    let addr = spawn(&registry, true).await;
    let mut client = Client::connect(addr).await;
    let (status, body) = client.get("/products", Some("nobody_at_all")).await;
    assert_error(status, &body, 404);
    assert_eq!(body["error"], "unknown tenant \"nobody_at_all\"");
    assert_eq!(
        names(&client.get("/products", Some(edgy.as_str())).await.1).len(),
        10
    );
    assert_eq!(names(&client.get("/products", None).await.1).len(), 25);
    let (status, body) = client.get("/products", Some("Not Valid")).await;
    assert_error(status, &body, 400);
    // Routes outside the tenant layer ignore the header.
    let (status, _) = client.get("/healthz", Some("nobody_at_all")).await;
    assert_eq!(status, 200);
});

backend_test!(invalid_input_is_4xx, |t: common::TestDb| async move {
    let (registry, _) = seeded(&t).await;
    let addr = spawn(&registry, false).await;
    let mut client = Client::connect(addr).await;

    for bad in [
        "Edgy",
        "public",
        "pg_catalog",
        "x-y",
        "a b",
        "1abc",
        "'; DROP TABLE products;--",
    ] {
        let (status, body) = client.get("/products", Some(bad)).await;
        assert_error(status, &body, 400);
        let (status, body) = client
            .post("/products", Some(bad), json!({"name": "x"}))
            .await;
        assert_error(status, &body, 400);
        let (status, body) = client
            .post(
                "/tenants",
                None,
                json!({"schema_name": bad, "tenant_name": "x"}),
            )
            .await;
        assert_error(status, &body, 400);
    }
    let long = "x".repeat(64);
    let (status, body) = client
        .post(
            "/tenants",
            None,
            json!({"schema_name": long, "tenant_name": "x"}),
        )
        .await;
    assert_error(status, &body, 400);
    let name = t.schema("fine");
    for tenant_name in ["", "   ", &"n".repeat(101)] {
        let (status, body) = client
            .post(
                "/tenants",
                None,
                json!({"schema_name": name.as_str(), "tenant_name": tenant_name}),
            )
            .await;
        assert_error(status, &body, 400);
    }
    // Malformed bodies: axum's statuses, as JSON.
    let (status, body) = client
        .post_raw("/tenants", "application/json", "{not json")
        .await;
    assert_error(status, &body, 400);
    let (status, body) = client
        .post("/tenants", None, json!({"schema_name": name.as_str()}))
        .await;
    assert_error(status, &body, 422);
    let (status, body) = client.post_raw("/tenants", "text/plain", "hello").await;
    assert_error(status, &body, 415);
    let (status, body) = client.post("/products", None, json!({"name": ""})).await;
    assert_error(status, &body, 400);
    let (status, body) = client
        .post("/products", None, json!({"name": "n".repeat(256)}))
        .await;
    assert_error(status, &body, 400);
    let (status, body) = client.post("/products", None, json!({"nom": "x"})).await;
    assert_error(status, &body, 422);
    // Nothing of that was created.
    assert_eq!(
        client
            .get("/tenants", None)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(names(&client.get("/products", None).await.1).len(), 25);
});

backend_test!(new_tenant_lifecycle, |t: common::TestDb| async move {
    let (registry, edgy) = seeded(&t).await;
    let addr = spawn(&registry, true).await;
    let mut client = Client::connect(addr).await;
    let acme = t.schema("acme");

    // Unknown before it is made (strict), known right after.
    let (status, _) = client.get("/products", Some(acme.as_str())).await;
    assert_eq!(status, 404);
    let (status, body) = client
        .post(
            "/tenants",
            None,
            json!({"schema_name": acme.as_str(), "tenant_name": "Acme"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["schema_name"], acme.as_str());
    assert_eq!(body["tenant_name"], "Acme");
    assert!(body["id"].is_i64());
    let (status, body) = client.get("/products", Some(acme.as_str())).await;
    assert_eq!((status, body), (200, json!([])));

    // Taken names: 409, and nothing made.
    let (status, body) = client
        .post(
            "/tenants",
            None,
            json!({"schema_name": acme.as_str(), "tenant_name": "Other"}),
        )
        .await;
    assert_error(status, &body, 409);
    let other = t.schema("other");
    let (status, body) = client
        .post(
            "/tenants",
            None,
            json!({"schema_name": other.as_str(), "tenant_name": "Acme"}),
        )
        .await;
    assert_error(status, &body, 409);
    assert!(!registry.schema().exists(&other).await.unwrap());
    let (status, _) = client.get("/products", Some(other.as_str())).await;
    assert_eq!(status, 404);

    // Its own products, seen by no one else.
    for name in ["anvil", "rocket", "magnet"] {
        let (status, body) = client
            .post("/products", Some(acme.as_str()), json!({"name": name}))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["name"], name);
        assert_eq!(body["user"], Value::Null);
    }
    assert_eq!(
        names(&client.get("/products", Some(acme.as_str())).await.1),
        ["anvil", "rocket", "magnet"]
    );
    assert_eq!(
        names(&client.get("/products", Some(edgy.as_str())).await.1).len(),
        10
    );
    assert_eq!(names(&client.get("/products", None).await.1).len(), 25);
    let second = t.schema("second");
    let (status, _) = client
        .post(
            "/tenants",
            None,
            json!({"schema_name": second.as_str(), "tenant_name": "Second"}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        client.get("/products", Some(second.as_str())).await.1,
        json!([])
    );
    let (_, tenants) = client.get("/tenants", None).await;
    assert_eq!(tenants.as_array().unwrap().len(), 3);
});

backend_test!(
    five_thousand_requests_fifty_tenants,
    |t: common::TestDb| async move {
        const TENANTS: usize = 50;
        const REQUESTS: usize = 5_000;
        const CONCURRENCY: usize = 32;

        let (registry, edgy) = seeded(&t).await;
        let addr = spawn(&registry, true).await;
        let started = Instant::now();

        // 50 tenants through POST /tenants, each with 1 to 7 products of its own through
        // POST /products, 4 clients at a time.
        let tenants: Vec<SchemaName> = (0..TENANTS)
            .map(|i| t.schema(&format!("c{i:02}")))
            .collect();
        let mut tasks = Vec::new();
        for chunk in tenants.chunks(TENANTS.div_ceil(4)) {
            let chunk = chunk.to_vec();
            tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(addr).await;
            for schema in chunk {
                let (status, body) = client
                    .post(
                        "/tenants",
                        None,
                        json!({"schema_name": schema.as_str(), "tenant_name": format!("Customer {schema}")}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                let count = 1 + schema.as_str().len() % 7 + schema.as_str().bytes().last().unwrap() as usize % 3;
                for j in 0..count {
                    let (status, _) = client
                        .post("/products", Some(schema.as_str()), json!({"name": format!("{schema}-{j}")}))
                        .await;
                    assert_eq!(status, 201);
                }
            }
        }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let provisioned = started.elapsed();

        // What each tenant (and the shared schema, key "") must answer, read once.
        let mut expected: HashMap<String, Value> = HashMap::new();
        let mut client = Client::connect(addr).await;
        for schema in tenants.iter().chain([&edgy]) {
            let (status, body) = client.get("/products", Some(schema.as_str())).await;
            assert_eq!(status, 200);
            expected.insert(schema.to_string(), body);
        }
        expected.insert(String::new(), client.get("/products", None).await.1);
        for schema in &tenants {
            let body = &expected[schema.as_str()];
            assert!(!names(body).is_empty());
            assert!(names(body)
                .iter()
                .all(|n| n.starts_with(&format!("{schema}-"))));
        }
        assert_eq!(names(&expected[edgy.as_str()]).len(), 10);
        assert_eq!(names(&expected[""]).len(), 25);
        let keys: Vec<String> = expected.keys().cloned().collect();
        let expected = std::sync::Arc::new(expected);

        // 5,000 requests, 32 connections at a time, random tenant headers.
        let started = Instant::now();
        let mut tasks = Vec::new();
        for worker in 0..CONCURRENCY {
            let expected = expected.clone();
            let keys = keys.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = Client::connect(addr).await;
                let mut rng = 0x9E37_79B9_7F4A_7C15u64
                    ^ (worker as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
                let mut checked = 0;
                for _ in (worker..REQUESTS).step_by(CONCURRENCY) {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let key = &keys[(rng % keys.len() as u64) as usize];
                    let tenant = (!key.is_empty()).then_some(key.as_str());
                    let (status, body) = client.get("/products", tenant).await;
                    assert_eq!(status, 200);
                    assert_eq!(
                        &body, &expected[key],
                        "a response for {key:?} holds other data"
                    );
                    checked += 1;
                }
                checked
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        let elapsed = started.elapsed();
        assert_eq!(total, REQUESTS);
        eprintln!(
        "{:?}: {TENANTS} tenants provisioned in {provisioned:.2?}; {REQUESTS} requests, {CONCURRENCY} at a time, in {elapsed:.2?} ({:.0} req/s)",
        t.backend,
        REQUESTS as f64 / elapsed.as_secs_f64()
    );
        assert!(elapsed < Duration::from_secs(300));
    }
);

// The hostile corpus as the `tenant` header and as POST /tenants' schema_name, over real
// HTTP: 400 for invalid names, shared data (404 when strict) for valid unknown ones, never
// 500 nor the tenant's data; afterwards GET /tenants and the schema list are unchanged.
backend_test!(hostile_corpus_over_http, |t: common::TestDb| async move {
    let (registry, edgy) = seeded(&t).await;
    let own = |names: Vec<SchemaName>| -> Vec<SchemaName> {
        names
            .into_iter()
            .filter(|n| n.as_str().starts_with(&t.prefix))
            .collect()
    };
    let schemas_before = own(registry.schema().list().await.unwrap());
    let lenient = spawn(&registry, false).await;
    let strict = spawn(&registry, true).await;
    let mut client = Client::connect(lenient).await;
    let mut strict_client = Client::connect(strict).await;
    let (_, tenants_before) = client.get("/tenants", None).await;

    let corpus = common::hostile::corpus();
    assert!(corpus.len() >= 200);
    let mut sent = 0;
    for value in &corpus {
        let (status, body) = client
            .post(
                "/tenants",
                None,
                json!({"schema_name": value, "tenant_name": "Evil"}),
            )
            .await;
        assert_error(status, &body, 400);

        // Control characters (and DEL) are not header bytes: the client cannot build such
        // a request at all, so those values are not sent.
        if axum::http::HeaderValue::from_str(value).is_err() {
            continue;
        }
        sent += 1;
        // HTTP strips a header value's leading and trailing blanks before the server sees it.
        let received = value.trim_matches([' ', '\t']);
        let valid = SchemaName::parse(received).is_ok();
        let (status, body) = client.get("/products", Some(value)).await;
        if valid {
            assert_eq!(status, 200, "{value:?}: {body}");
            assert_eq!(names(&body).len(), 25, "{value:?} must get the shared data");
        } else {
            assert_error(status, &body, 400);
        }
        let (status, body) = strict_client.get("/products", Some(value)).await;
        assert_error(status, &body, if valid { 404 } else { 400 });
    }
    assert!(sent >= 150, "only {sent} values sendable");
    for value in common::hostile::valid_lookalikes(edgy.as_str()) {
        let (status, body) = client.get("/products", Some(&value)).await;
        assert_eq!(status, 200);
        assert_eq!(names(&body).len(), 25, "{value:?}");
        let (status, body) = strict_client.get("/products", Some(&value)).await;
        assert_error(status, &body, 404);
    }
    assert_eq!(
        names(&client.get("/products", Some(edgy.as_str())).await.1).len(),
        10
    );
    assert_eq!(client.get("/tenants", None).await.1, tenants_before);
    assert_eq!(own(registry.schema().list().await.unwrap()), schemas_before);
});

backend_test!(
    a_tenant_behind_answers_503_while_the_others_are_served,
    |t: common::TestDb| async move {
        use tenantry::migrate::{Migrations, Migrator, RunOptions};
        let current = tenantry_demo::migrations().unwrap();
        let registry = tenantry_demo::register(t.registry.clone()).migrations(current.clone());
        registry.create_all().await.unwrap();
        let (ahead, behind) = (t.schema("ahead"), t.schema("behind"));
        for (schema, product) in [(&ahead, "ahead-1"), (&behind, "behind-1")] {
            tenantry::contrib::create_tenant(&registry, schema, schema.as_str())
                .await
                .unwrap();
            tenantry_demo::models::Product::query(&registry)
                .using(schema)
                .create(tenantry_demo::models::Product {
                    id: 0,
                    name: product.into(),
                    user: None,
                    price: tenantry::Decimal::ZERO,
                    stock: 0,
                })
                .await
                .unwrap();
        }
        // A release with one more tenant migration, applied to `ahead` only.
        let note = r#"{ "scope": "tenant", "operations": [ { "op": "add_column", "table": "products",
        "column": { "name": "note", "type": "integer", "null": true } } ] }"#;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut texts: Vec<(String, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                (
                    p.file_stem().unwrap().to_str().unwrap().to_owned(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect();
        texts.push(("0006_tenant_product_note".into(), note.into()));
        let pairs: Vec<(&str, &str)> = texts
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let next = Migrations::from_files(&pairs).unwrap();
        let migrator = Migrator::new(&registry, next);
        let report = migrator
            .run(RunOptions {
                tenant: Some(ahead.clone()),
                ..RunOptions::default()
            })
            .await
            .unwrap();
        assert!(report.is_complete(), "{report:?}");

        let gate = tenantry_demo::BehindTenants::watch(migrator).await.unwrap();
        let addr =
            common::http::spawn_app(tenantry_demo::app_with(registry.clone(), false, gate)).await;
        let (mut ca, mut cb) = (Client::connect(addr).await, Client::connect(addr).await);
        let ((sa, ba), (sb, bb)) = tokio::join!(
            ca.get("/products", Some(ahead.as_str())),
            cb.get("/products", Some(behind.as_str())),
        );
        assert_eq!(sa, 200, "{ba}");
        assert_eq!(names(&ba), ["ahead-1"]);
        assert_error(sb, &bb, 503);
        let message = bb["error"].as_str().unwrap();
        assert!(
            message.contains(behind.as_str()) && message.contains("tenantry-demo migrate"),
            "{message}"
        );
        assert!(
            !message.contains("ahead"),
            "another tenant's name in the body: {message}"
        );
        // The shared data (no tenant) is served.
        let (status, _) = ca.get("/products", None).await;
        assert_eq!(status, 200);
    }
);

backend_test!(
    owner_filter_cursor_pages_and_summary_per_tenant,
    |t: common::TestDb| async move {
        use tenantry_demo::models::{Product, User};
        let (registry, edgy) = seeded(&t).await;
        let acme = t.schema("acme");
        tenantry::contrib::create_tenant(&registry, &acme, "Acme")
            .await
            .unwrap();
        // acme: owner "Edgy fan" (id 1, like edgy's owner) with two priced products, and
        // one product of nobody.
        let fan = User::query(&registry)
            .using(&acme)
            .create(User {
                id: 0,
                name: "Edgy fan".into(),
            })
            .await
            .unwrap();
        let priced = |name: &str, price: &str, stock: i32, owner: bool| Product {
            id: 0,
            name: name.into(),
            user: owner.then(|| (&fan).into()),
            price: price.parse().unwrap(),
            stock,
        };
        Product::query(&registry)
            .using(&acme)
            .bulk_create([
                priced("anvil", "1.50", 3, true),
                priced("rocket", "2.25", 4, true),
                priced("spare", "0.10", 1, false),
            ])
            .await
            .unwrap();
        let addr = spawn(&registry, false).await;
        let (mut to_edgy, mut to_acme) = (Client::connect(addr).await, Client::connect(addr).await);

        // The owner filter, both tenants at once: each its own owner's products.
        let ((s1, in_edgy), (s2, in_acme)) = tokio::join!(
            to_edgy.get("/products?owner=EDGY", Some(edgy.as_str())),
            to_acme.get("/products?owner=EDGY", Some(acme.as_str()))
        );
        assert_eq!((s1, s2), (200, 200));
        assert_eq!(names(&in_edgy).len(), 10);
        assert_eq!(names(&in_acme), ["anvil", "rocket"]);
        let (_, none) = to_acme
            .get("/products?owner=nobody", Some(acme.as_str()))
            .await;
        assert!(names(&none).is_empty());

        // Cursor pages through edgy's ten products, four at a time.
        let mut seen = Vec::new();
        let mut path = "/products/page?per_page=4".to_string();
        let mut first_cursor = None;
        loop {
            let (status, body) = to_edgy.get(&path, Some(edgy.as_str())).await;
            assert_eq!(status, 200, "{body}");
            seen.extend(names(&body["items"]));
            match body["next"].as_str() {
                Some(next) => {
                    first_cursor.get_or_insert_with(|| next.to_owned());
                    path = format!("/products/page?per_page=4&after={next}");
                }
                None => break,
            }
        }
        let expected: Vec<String> = (0..10).map(|i| format!("Product-{i}")).collect();
        assert_eq!(seen, expected);
        // edgy's cursor in acme, an altered cursor, a bad per_page: 400 with a JSON error.
        let cursor = first_cursor.unwrap();
        let (status, body) = to_acme
            .get(
                &format!("/products/page?after={cursor}"),
                Some(acme.as_str()),
            )
            .await;
        assert_error(status, &body, 400);
        let (status, body) = to_edgy
            .get("/products/page?after=abc.def", Some(edgy.as_str()))
            .await;
        assert_error(status, &body, 400);
        let (status, body) = to_edgy
            .get("/products/page?per_page=0", Some(edgy.as_str()))
            .await;
        assert_error(status, &body, 400);

        // The summary of each tenant.
        let ((_, edgy_sum), (_, acme_sum)) = tokio::join!(
            to_edgy.get("/summary", Some(edgy.as_str())),
            to_acme.get("/summary", Some(acme.as_str()))
        );
        assert_eq!(edgy_sum["products"], 10);
        assert_eq!(edgy_sum["stock"], 0);
        assert_eq!(edgy_sum["owners"].as_array().unwrap().len(), 1);
        assert_eq!(acme_sum["products"], 3);
        assert_eq!(acme_sum["price"], "3.85");
        assert_eq!(acme_sum["stock"], 8);
        assert_eq!(
            acme_sum["owners"],
            json!([
                {"owner": null, "products": 1, "price": "0.10", "stock": 1},
                {"owner": fan.id, "products": 2, "price": "3.75", "stock": 7},
            ])
        );
    }
);
