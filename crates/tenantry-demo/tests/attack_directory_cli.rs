//! Second attacker's review of the tenant directory in the CLI (`tenantry-cli`, through the
//! demo binary). `defect_*` tests FAIL on the code under review; `holds_*` tests pass.

mod common;

use std::process::{Command, Output};

/// The demo binary, logging warnings only, without the caller's environment for databases.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tenantry-demo"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .env_remove("TENANTRY_DIRECTORY_SERVERS");
    command
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_ok(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("tenantry-attack-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SECRET: &str = "S3cretPassw0rd";

// DEFECT (a directory server's password printed): `--directory-server` promises "URLs with
// passwords ... are never printed", and `parse_directory_server` (tenantry-cli/src/lib.rs)
// returns an error that does not echo the text -- but clap formats every value-parser error
// as "invalid value '<the value>' for '--directory-server <ALIAS=URL>'", so an operator who
// forgets the `ALIAS=` gets the whole URL, password included, on stderr (into CI logs).
#[test]
fn defect_a_server_given_without_its_alias_prints_its_password() {
    let dir = temp_dir("noalias");
    let url = format!("sqlite://{}/main.sqlite?mode=rwc", dir.display());
    let output = command(&[
        "--database-url",
        &url,
        "--directory-server",
        &format!("postgres://app:{SECRET}@127.0.0.1:1/app"),
        "tenants",
        "list",
    ])
    .output()
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = all_output(&output);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(!text.contains(SECRET), "the password was printed: {text}");
}

// DEFECT (the environment variable's password printed): TENANTRY_DIRECTORY_SERVERS is split
// on ',' (`value_delimiter = ','`, tenantry-cli/src/lib.rs) before parsing, although a
// password may hold a ',' (URL userinfo allows it unencoded); the part after the comma is
// then refused and echoed by clap ("invalid value '<rest of password>@host/db'"), with
// `hide_env_values` hiding it only in --help. The variable the help recommends "for URLs
// with passwords" leaks them.
#[test]
fn defect_a_comma_in_the_env_vars_password_prints_the_password() {
    let dir = temp_dir("comma");
    let url = format!("sqlite://{}/main.sqlite?mode=rwc", dir.display());
    let output = command(&["--database-url", &url, "tenants", "list"])
        .env(
            "TENANTRY_DIRECTORY_SERVERS",
            format!("home=postgres://app:x,{SECRET}@127.0.0.1:1/app"),
        )
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = all_output(&output);
    // Fixed: servers are separated by spaces, so the comma stays in the password and the
    // command runs (the server is never contacted by `list`).
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(!text.contains(SECRET), "the password was printed: {text}");
}

// A server that is down, refuses the login, or has an invalid alias: no password in any
// output, a non-zero exit code, no panic.
#[test]
fn holds_no_password_in_connection_failures() {
    let dir = temp_dir("down");
    let url = format!("sqlite://{}/main.sqlite?mode=rwc", dir.display());
    for server in [
        format!("home=postgres://app:{SECRET}@127.0.0.1:1/app"),
        format!("home=mysql://app:{SECRET}@127.0.0.1:1/app"),
        format!("Home=postgres://app:{SECRET}@127.0.0.1:1/app"),
        format!("home=nosuch://app:{SECRET}@127.0.0.1:1/app"),
        format!("home=postgres://app:{SECRET}@127.0.0.1:notaport/app"),
    ] {
        let output = command(&[
            "--database-url",
            &url,
            "tenants",
            "create",
            "zed",
            "--server",
            "home",
            "--database",
            "dd",
        ])
        .env("TENANTRY_DIRECTORY_SERVERS", &server)
        .output()
        .unwrap();
        let text = all_output(&output);
        assert_ne!(output.status.code(), Some(0), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// DEFECT (data loss by ambiguity): `tenants create NAME` (the default database) and
// `tenants create NAME --server S --database D` (the directory) both accept a name the
// other already holds (tenants.rs `create_in_directory` and the contrib path check only
// their own table), and `tenants list` then shows NAME twice. `tenants drop NAME --yes`
// (tenants.rs `drop_one`) silently drops the DIRECTORY tenant and its data -- and prints
// the same "dropped tenant NAME and its data" whichever it was -- so the operator cannot
// choose, nor tell which tenant's data is gone. A name held by both should be refused at
// creation, or the drop refused as ambiguous.
backend_test!(
    defect_drop_of_a_name_in_both_places_silently_drops_the_directory_tenant,
    |t: common::TestDb| async move {
        let url = t.url();
        let servers = format!("home={}", t.server_url());
        let database = format!("{}_ambdb", t.prefix);
        let name = t.schema("amb");
        let name = name.as_str();
        let run = |args: &[&str]| {
            command(args)
                .env("DATABASE_URL", &url)
                .env("TENANTRY_DIRECTORY_SERVERS", &servers)
                .output()
                .unwrap()
        };
        assert_ok(&run(&["migrate", "run"]));
        let in_default = run(&["tenants", "create", name]);
        let in_directory = run(&[
            "tenants",
            "create",
            name,
            "--server",
            "home",
            "--database",
            &database,
        ]);
        let both = in_default.status.success() && in_directory.status.success();
        let listed = assert_ok(&run(&["tenants", "list"]));
        let dropped = run(&["tenants", "drop", name, "--yes"]);
        let after = assert_ok(&run(&["tenants", "list"]));
        // Clean up whatever is left.
        let _ = run(&["tenants", "drop", name, "--yes"]);
        let _ = run(&["tenants", "drop", name, "--yes"]);
        assert!(
            !(both && dropped.status.success()),
            "both creations succeeded (list:\n{listed}), and `drop {name}` removed one \
             without saying which: {:?}; left:\n{after}",
            String::from_utf8_lossy(&dropped.stdout)
        );
    }
);

// `migrate run` over a directory tenant and a default tenant of the same name: each is
// migrated in its own database, the summary names the directory database, exit code 0,
// and the server URL never appears.
backend_test!(
    holds_migrate_run_summarises_directory_databases_without_urls,
    |t: common::TestDb| async move {
        let url = t.url();
        let servers = format!("home={}", t.server_url());
        let database = format!("{}_sumdb", t.prefix);
        let a = t.schema("sa");
        let a = a.as_str();
        let run = |args: &[&str]| {
            command(args)
                .env("DATABASE_URL", &url)
                .env("TENANTRY_DIRECTORY_SERVERS", &servers)
                .output()
                .unwrap()
        };
        assert_ok(&run(&["migrate", "run"]));
        assert_ok(&run(&[
            "tenants",
            "create",
            a,
            "--server",
            "home",
            "--database",
            &database,
        ]));
        let output = run(&["migrate", "run"]);
        let text = all_output(&output);
        let _ = run(&["tenants", "drop", a, "--yes"]);
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!(
                "directory database home/{database}: 0 migrated, 0 failed"
            )),
            "{text}"
        );
        if t.backend != tenantry::Backend::Sqlite {
            assert!(!text.contains(&t.server_url()), "{text}");
            assert!(!text.contains("@127.0.0.1"), "{text}");
        }
    }
);

async fn get_products(app: &axum::Router, tenant: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::get("/products")
        .header("tenant", tenant)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

// DEFECT (tenants of the default database are no longer served once a directory is
// configured): with `--directory-server`, `tenants create NAME` (no --server) still creates
// a tenant of the default database (tenants.rs `create_one`, contrib::create_tenant) and
// `tenants list` shows it, but the demo's layer then looks tenants up in the directory's
// store ONLY (tenantry-demo/src/routes.rs `app_with`: `TenantCache::with_store(..,
// directory.store(..))`): the tenant's requests are 404 (strict) -- or, not strict, served
// the shared data instead of the tenant's. Every existing tenant disappears the moment an
// operator adds a directory server.
backend_test!(
    defect_a_default_database_tenant_is_not_served_once_a_directory_is_configured,
    |t: common::TestDb| async move {
        use tenantry_demo::models::{Product, User};
        let directory = tenantry::Directory::new(tenantry::ConnectionBudget::new(4))
            .server("home", &t.server_url())
            .unwrap();
        let registry = tenantry_demo::register(t.registry.clone()).directory(directory.clone());
        registry.create_all().await.unwrap();
        let acme = t.schema("acme");
        tenantry::contrib::create_tenant(&registry, &acme, "Acme")
            .await
            .unwrap();
        tenantry::with_tenant(Some(acme.clone()), async {
            let owner = User::query(&registry)
                .create(User {
                    id: 0,
                    name: "acme-owner".into(),
                })
                .await
                .unwrap();
            Product::query(&registry)
                .create(Product {
                    id: 0,
                    name: "p-acme-default".into(),
                    user: Some(tenantry::ForeignKey::from(&owner)),
                    price: tenantry::Decimal::ONE,
                    stock: 1,
                })
                .await
                .unwrap();
        })
        .await;
        let app = tenantry_demo::app(registry.clone(), true);
        let (status, body) = get_products(&app, acme.as_str()).await;
        directory.disconnect().await;
        assert!(
            status == 200 && body.contains("p-acme-default"),
            "the default database's tenant {acme} answered {status}: {body}"
        );
    }
);

// A job queued from a request the layer routed to a directory tenant records
// `directory: true`, and restored with `run_in` reads that tenant (not the default
// database's tenant of the same name).
backend_test!(
    holds_a_job_queued_behind_the_layer_is_a_directory_context,
    |t: common::TestDb| async move {
        use tenantry_demo::models::User;
        let directory = tenantry::Directory::new(tenantry::ConnectionBudget::new(4))
            .server("home", &t.server_url())
            .unwrap();
        let registry = tenantry_demo::register(t.registry.clone()).directory(directory.clone());
        registry.create_all().await.unwrap();
        let name = t.schema("jobs");
        tenantry::create_schema(&registry, &name, None, false, true)
            .await
            .unwrap();
        tenantry::with_tenant(Some(name.clone()), async {
            User::query(&registry)
                .create(User {
                    id: 0,
                    name: "default-side".into(),
                })
                .await
                .unwrap();
        })
        .await;
        directory
            .add_tenant(
                &registry,
                name.as_str(),
                "home",
                &format!("{}_jobdb", t.prefix),
            )
            .await
            .unwrap();
        directory
            .with_tenant(&registry, name.as_str(), async {
                User::query(&registry)
                    .create(User {
                        id: 0,
                        name: "directory-side".into(),
                    })
                    .await
                    .unwrap();
            })
            .await
            .unwrap();
        let store = std::sync::Arc::new(directory.store(&registry));
        let layer = tenantry_axum::TenantLayer::with_cache(tenantry_axum::TenantCache::with_store(
            registry.clone(),
            store,
        ))
        .strict(true);
        let app = axum::Router::new()
            .route(
                "/products",
                axum::routing::get(|| async {
                    serde_json::to_string(&tenantry::TenantContext::current().unwrap()).unwrap()
                }),
            )
            .layer(layer);
        let (status, json) = get_products(&app, name.as_str()).await;
        assert_eq!(status, 200, "{json}");
        let job: tenantry::TenantContext = serde_json::from_str(&json).unwrap();
        assert!(job.is_directory(), "{json}");
        let seen = job
            .run_in(&registry, async {
                User::query(&registry)
                    .all()
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|u| u.into_inner().name)
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap();
        directory.disconnect().await;
        assert_eq!(seen, ["directory-side"]);
    }
);

// DEFECT (the wrong tenant's data dropped on a retry): `tenants drop NAME` first removes
// the directory entry, then drops the schema on the tenant's database
// (Directory::remove_tenant, tenancy/directory_admin.rs: entry deleted before the drop).
// When the drop fails (the database unreachable), the command exits 1 -- and the operator's
// natural retry finds no directory entry (TenantNotFound), so `drop_one`
// (tenantry-cli/src/tenants.rs) falls through to `contrib::drop_tenant` and drops the
// DEFAULT database's tenant of the same name and all its data: a tenant nobody asked to
// drop. (PostgreSQL and MySQL: the entry names a database that is not there.)
backend_test!(
    defect_a_retried_drop_removes_the_default_databases_tenant_of_that_name,
    |t: common::TestDb| async move {
        if t.backend == tenantry::Backend::Sqlite {
            return;
        }
        let url = t.url();
        let servers = format!("home={}", t.server_url());
        let run = |args: &[&str]| {
            command(args)
                .env("DATABASE_URL", &url)
                .env("TENANTRY_DIRECTORY_SERVERS", &servers)
                .output()
                .unwrap()
        };
        assert_ok(&run(&["migrate", "run"]));
        let name = t.schema("twice");
        assert_ok(&run(&[
            "tenants",
            "create",
            name.as_str(),
            "--display",
            "Default side",
        ]));
        let directory = tenantry::Directory::new(tenantry::ConnectionBudget::new(4))
            .server("home", &t.server_url())
            .unwrap();
        let registry = tenantry::contrib::register(tenantry::Registry::new(t.reconnect().await))
            .register::<tenantry::contrib::DirectoryEntry>()
            .directory(directory.clone());
        directory
            .add_entry(
                &registry,
                name.as_str(),
                "home",
                &format!("{}_gone", t.prefix),
                tenantry::contrib::TenantState::Active,
            )
            .await
            .unwrap();
        directory.disconnect().await;
        registry.disconnect().await;
        let first = run(&["tenants", "drop", name.as_str(), "--yes"]);
        let second = run(&["tenants", "drop", name.as_str(), "--yes"]);
        let listed = assert_ok(&run(&["tenants", "list"]));
        assert!(
            listed.contains(&format!("{name}\tDefault side")),
            "first drop: {}; second drop: {}{}; the default database's tenant {name} is gone \
             (list: {listed:?})",
            all_output(&first),
            all_output(&second),
            second.status
        );
    }
);
