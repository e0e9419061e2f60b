//! Review of the tenant directory and the connection budget (commit "wip: tenant directory"),
//! as an attacker: every test named `defect_*` FAILS on the code under review and names the
//! defect and where it is; every test named `holds_*` passes and pins a property the feature
//! must keep (tenant isolation, fail-closed behaviour, no budget slot leaked).
//!
//! A recurring set-up: a tenant of the registry's default database and a tenant of the
//! directory share one name ("beta"). They are two tenants (the feature's own test
//! `tenants_in_two_databases_see_only_their_rows` says so), so any path that lets one read
//! the other's rows is a cross-tenant leak.
mod common;

use common::directory::{add_user, db_name, directory, names, schema, server_connections};

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use common::models::{product, user, Plan, Product, Subscription, User};
use futures_util::StreamExt;
use tenantry::{
    activate_schema,
    contrib::{self, DirectoryEntry, TenantState},
    create_schema, set_tenant, spawn_with_tenant, with_tenant, Backend, ConnectionBudget, Database,
    Directory, Error, Filter, ForeignKey, ManyToMany, Model, Registry, TenantContext,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

// ---------------------------------------------------------------------------------------
// Helpers (copied from tests/directory.rs, plus a few of this file's own).
// ---------------------------------------------------------------------------------------

/// A shared perk; which perks a (shared) plan has is chosen per tenant, through a tenant
/// junction: a many-to-many whose owner and target are shared and whose links are the
/// tenant's (`RelatedMany::all` documents exactly this case).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared)]
struct Perk {
    id: i64,
    #[model(max_length = 50)]
    name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
struct PlanPerk {
    id: i64,
    plan: ForeignKey<Plan>,
    perk: ForeignKey<Perk>,
}

const PLAN_PERKS: ManyToMany<PlanPerk, Plan, Perk> =
    ManyToMany::new(PlanPerk::plan(), PlanPerk::perk());

async fn registry_with(t: &common::TestDb, directory: &Directory) -> Registry {
    let registry = contrib::register(t.registry.clone())
        .register::<Perk>()
        .register::<PlanPerk>()
        .register::<DirectoryEntry>()
        .directory(directory.clone());
    registry.create_all().await.unwrap();
    registry
}

/// A default-database tenant "beta" holding user "default-beta", and a directory tenant
/// "beta" on database d1 holding user "dir-beta".
async fn two_betas(t: &common::TestDb, dir: &Directory, registry: &Registry) {
    create_schema(registry, "beta", None, false, true)
        .await
        .unwrap();
    with_tenant(Some(schema("beta")), add_user(registry, "default-beta")).await;
    dir.add_tenant(registry, "beta", "home", &db_name(t, 1))
        .await
        .unwrap();
    dir.with_tenant(registry, "beta", add_user(registry, "dir-beta"))
        .await
        .unwrap();
}

/// A TCP proxy in front of a database server whose answers can be held back: what the
/// server sent is delivered only once `hold` is false again. Used to make one in-flight
/// read of the directory table finish after a concurrent change (a deterministic race).
struct Proxy {
    port: u16,
    hold: Arc<AtomicBool>,
}

async fn proxy(upstream: String) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = Arc::new(AtomicBool::new(false));
    let held = hold.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let (upstream, hold) = (upstream.clone(), held.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    let _ = server_write.shutdown().await;
                });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match server_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    while hold.load(Ordering::SeqCst) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = client_write.shutdown().await;
                up.abort();
            });
        }
    });
    Proxy { port, hold }
}

/// `url` (`scheme://user@host:port/db`) with its `host:port` and the proxy's address.
fn split_authority(url: &str) -> (String, String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, rest) = rest.split_once('@').unwrap();
    let (authority, path) = rest.split_once('/').unwrap();
    (
        format!("{scheme}://{userinfo}@"),
        authority.to_owned(),
        format!("/{path}"),
    )
}

fn sleep_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "SELECT pg_sleep(3)",
        _ => "SELECT SLEEP(3)",
    }
}

fn unique_dir(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "tenantry-tests/attack-dir-{}-{name}-{n}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// Failing tests: defects.
// ---------------------------------------------------------------------------------------

// DEFECT (cross-tenant, cross-database read; PostgreSQL and MySQL): a many-to-many whose
// owner and target are shared and whose junction is a tenant model. Inside a directory
// tenant's scope, `PLAN_PERKS.of(&plan).all()` reads the links from the schema of the same
// name in the REGISTRY'S DEFAULT DATABASE, i.e. another tenant's links: `RelatedMany::all`
// (query/many.rs) resolves the links' schema on the directory database (routed) and hands
// only the schema to `Subquery::in_schema`; `Subquery::select` (query/subquery.rs) then
// renders that schema on the OUTER query's connection, which for a shared target is the
// default database. `add` writes the directory database's links (routed correctly), so
// what a tenant writes and what it reads disagree, and it reads the other "beta".
// (SQLite refuses the subquery across files with Unsupported: fail-closed there.)
backend_test!(
    defect_m2m_shared_owner_reads_links_of_the_default_databases_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let gold = Plan::query(&registry)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        let perks = Perk::query(&registry)
            .bulk_create(["fast", "big"].map(|name| Perk {
                id: 0,
                name: name.into(),
            }))
            .await
            .unwrap();
        // Default-database tenant "beta": gold has perk "fast".
        create_schema(&registry, "beta", None, false, true)
            .await
            .unwrap();
        with_tenant(Some(schema("beta")), async {
            PLAN_PERKS.of(&gold).add(&[&perks[0]]).await.unwrap();
        })
        .await;
        // Directory tenant "beta" (database d1): gold has perk "big".
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.with_tenant(&registry, "beta", async {
            PLAN_PERKS.of(&gold).add(&[&perks[1]]).await.unwrap();
        })
        .await
        .unwrap();
        let seen = dir
            .with_tenant(&registry, "beta", async {
                PLAN_PERKS.of(&gold).all().values_list(Perk::name()).await
            })
            .await
            .unwrap();
        match seen {
            Ok(names) => assert_eq!(
                names,
                ["big"],
                "the directory tenant beta read the links of the default database's tenant beta"
            ),
            Err(Error::Unsupported { .. }) => {}
            Err(error) => panic!("{error:?}"),
        }
        dir.disconnect().await;
    }
);

// Raw SQL naming only shared tables inside a directory tenant's scope never runs on the
// directory database's default schema: `qualified` (raw.rs) names tables with
// `Target::table_in`, whose directory refusal makes it `Unsupported` (fail-closed; the
// ORM reads the same shared rows from the default database).
backend_test!(
    holds_raw_sql_over_shared_tables_in_a_directory_scope_never_reaches_the_directory_database,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        Plan::query(&registry)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let orm = dir
            .with_tenant(&registry, "alpha", Plan::query(&registry).count())
            .await
            .unwrap();
        assert_eq!(
            orm.unwrap(),
            1,
            "the ORM reads shared rows from the default database"
        );
        let raw = dir
            .with_tenant(
                &registry,
                "alpha",
                registry
                    .raw("SELECT {plans}.title FROM {plans}")
                    .fetch_as::<(String,)>(),
            )
            .await
            .unwrap();
        match raw {
            Ok(rows) => assert_eq!(rows, [("gold".to_string(),)]),
            Err(Error::Unsupported { .. }) => {}
            Err(error) => panic!(
                "raw SQL over a shared table in a directory tenant's scope ran on the directory database: {error:?}"
            ),
        }
        dir.disconnect().await;
    }
);

// DEFECT (wrong database, no typed refusal; PostgreSQL and MySQL): a subquery over a shared
// model inside a directory tenant's query is rendered on the directory database's default
// schema. `Subquery::select` (query/subquery.rs) builds `Target { conn: outer.conn, schema:
// None }` and names the table with `Target::table` (`model_table`), bypassing the
// directory refusal that `Target::table_in` (naming.rs) has for joins; the statement reaches
// the directory database and fails there with a driver error instead of `Unsupported`
// (SQLite goes through `table_in` and is refused as designed).
backend_test!(
    defect_subquery_over_a_shared_model_reaches_the_directory_database,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let gold = Plan::query(&registry)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let result = dir
            .with_tenant(&registry, "alpha", async {
                Subscription::query(&registry)
                    .create(Subscription {
                        id: 0,
                        plan: ForeignKey::from(&gold),
                        note: "n".into(),
                    })
                    .await
                    .unwrap();
                Subscription::query(&registry)
                    .filter(Filter::exists(
                        Plan::query(&registry).filter(Plan::title().eq("gold")),
                    ))
                    .count()
                    .await
            })
            .await
            .unwrap();
        match result {
            Ok(n) => assert_eq!(n, 1),
            Err(Error::Unsupported { .. }) => {}
            Err(error) => {
                panic!("a subquery over a shared model ran on the directory database: {error:?}")
            }
        }
        dir.disconnect().await;
    }
);

// DEFECT (a directory tenant's row cannot follow its foreign key to a shared row; and
// select_related reads the shared parents on the WRONG database):
// - `Instance::fetch` of a `ForeignKey<Plan>` from a directory tenant's row goes through
//   `related_query` (instance.rs), which keeps the instance's origin DATABASE (the directory
//   database) and only clears the schema; `Place::resolve` then refuses it ("a directory
//   database outside its tenants' scopes") although the plan is in the default database.
// - `select_related(Subscription::plan())` in the directory tenant's scope builds
//   `parent_target = Target { conn: target.conn, schema: None }` (query/related.rs) and reads
//   the plans from the DIRECTORY database's default schema, with no directory check at all:
//   a driver error ("relation public.plans does not exist" / "no such table: plans"), or
//   whatever that database's default schema holds. Shared parents belong to the default
//   database, where the ORM reads shared models from a directory scope.
backend_test!(
    defect_fetch_of_a_shared_foreign_key_from_a_directory_row_is_refused,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let gold = Plan::query(&registry)
            .create(Plan {
                id: 0,
                title: "gold".into(),
            })
            .await
            .unwrap();
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let (fetched, selected) = dir
            .with_tenant(&registry, "alpha", async {
                let sub = Subscription::query(&registry)
                    .create(Subscription {
                        id: 0,
                        plan: ForeignKey::from(&gold),
                        note: "n".into(),
                    })
                    .await
                    .unwrap();
                // select_related is documented as a separate read "from the shared schema
                // when the referenced model is shared" (not a join): it fails the same way.
                let selected = Subscription::query(&registry)
                    .select_related(Subscription::plan())
                    .all()
                    .await
                    .map(|subs| {
                        subs.iter()
                            .map(|s| s.plan.get().map(|p| p.title.clone()))
                            .collect::<Vec<_>>()
                    });
                (sub.fetch(&sub.plan).await, selected)
            })
            .await
            .unwrap();
        // Fixed: select_related reads shared parents from the registry's default database.
        // `fetch` from the instance alone (which knows its own database, not the
        // registry's) stays a typed refusal, never a read of the directory database.
        let fetched = fetched.map(|plan| plan.title.clone());
        assert!(
            matches!(&fetched, Err(Error::Unsupported { .. })),
            "fetch: {fetched:?}"
        );
        assert_eq!(selected.unwrap(), [Some("gold".to_string())]);
        dir.disconnect().await;
    }
);

// DEFECT (fleet silently does nothing): `Directory::store` is documented as the store "for
// ForEachTenant::store", but `ForEachTenant::run` (tenancy/fleet.rs) drops every tenant
// whose `TenantInfo::database` is set, and `DirectoryStore::info` (directory_admin.rs) sets
// it for every tenant. `for_each_tenant(..).store(directory.store(..))` therefore returns
// Ok(vec![]): a migration or backfill over the directory's tenants reports success having
// touched none of them. (Were they kept, the work would run in plain `TenantScope::new`,
// i.e. in the default database's schemas of the same names: the fleet must route them.)
backend_test!(
    defect_fleet_over_the_directory_store_runs_no_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        for (tenant, n) in [("alpha", 1), ("beta", 2)] {
            dir.add_tenant(&registry, tenant, "home", &db_name(&t, n))
                .await
                .unwrap();
            dir.with_tenant(&registry, tenant, add_user(&registry, tenant))
                .await
                .unwrap();
        }
        let outcomes = registry
            .for_each_tenant(2)
            .store(Arc::new(dir.store(&registry)))
            .run(|_tenant| {
                let registry = registry.clone();
                async move { Ok(names(&registry).await) }
            })
            .await
            .unwrap();
        let seen: Vec<(String, Vec<String>)> = outcomes
            .into_iter()
            .map(|o| (o.tenant.to_string(), o.result.unwrap()))
            .collect();
        assert_eq!(
            seen,
            [
                ("alpha".to_string(), vec!["alpha".to_string()]),
                ("beta".to_string(), vec!["beta".to_string()]),
            ],
            "the fleet over the directory's store skipped (or misrouted) its tenants"
        );
        dir.disconnect().await;
    }
);

// DEFECT (a suspended tenant keeps being served, indefinitely; PostgreSQL and MySQL, made
// deterministic with a proxy): `Directory::route` (tenancy/directory.rs) reads an entry
// from the table and inserts it into the route cache afterwards, with nothing tying the
// insert to the cache's generation. A read that began before a change of THIS process
// (`set_state` -> `change` -> `forget`) and finishes after the `forget` re-inserts the old
// entry. `forget` also sets `checked = None`, and `check_epoch` only clears the cache when a
// previous epoch was seen (`routes.checked.is_some_and(..)`), so the next epoch read adopts
// the new epoch WITHOUT clearing: the stale entry (here: "active" after a suspension) is
// served until some later change or an LRU eviction, far past the documented second.
backend_test!(
    defect_a_read_racing_a_change_caches_the_old_route_forever,
    |t: common::TestDb| async move {
        if t.backend == Backend::Sqlite {
            return; // The race needs a network round trip to hold back.
        }
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        // A second registry over the same default database, through the proxy.
        let (head, authority, path) = split_authority(&t.url());
        let proxy = proxy(authority).await;
        let proxied_url = format!("{head}127.0.0.1:{}{path}", proxy.port);
        let proxied = contrib::register(Registry::new(
            Database::options(&proxied_url)
                .max_connections(1)
                .connect()
                .await
                .unwrap(),
        ))
        .register::<DirectoryEntry>()
        .directory(dir.clone());
        // Warm up: the epoch was just read (no epoch read in the next route) and the
        // proxied connection has the directory's SELECT prepared.
        dir.forget();
        assert!(dir
            .route(&proxied, &schema("warm"))
            .await
            .unwrap()
            .is_none());
        // A route read whose answer the proxy holds back.
        proxy.hold.store(true, Ordering::SeqCst);
        let reader = tokio::spawn({
            let (dir, proxied) = (dir.clone(), proxied.clone());
            async move { dir.route(&proxied, &schema("alpha")).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // This process suspends the tenant (on the direct connection), which forgets the
        // routes; then the held read completes.
        dir.set_state(&registry, "alpha", TenantState::Suspended)
            .await
            .unwrap();
        proxy.hold.store(false, Ordering::SeqCst);
        let raced = reader.await.unwrap().unwrap().unwrap();
        assert_eq!(
            raced.state,
            TenantState::Active,
            "precondition: the held read saw the entry before the change"
        );
        // Well past the documented second (and after an epoch read).
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let _ = dir.route(&registry, &schema("other")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let served = dir.with_tenant(&registry, "alpha", async {}).await;
        assert!(
            matches!(served, Err(Error::TenantSuspended { .. })),
            "2.4 s after this process suspended alpha, it is still served: {served:?}"
        );
        dir.disconnect().await;
        proxied.disconnect().await;
    }
);

// DEFECT (two tenants become one): nothing stops a directory entry from naming the
// registry's OWN default database (PostgreSQL/MySQL: the URL's database on the same server;
// SQLite: the main file's stem in the server directory that holds it). `add_tenant` (and
// `add_entry`) accept it, `Directory::database` opens a second pool on it marked
// `is_directory_database` ("holds no shared schema": false), and the directory tenant
// "gamma" is then the default database's schema "gamma": a plain `with_tenant(gamma)`
// (or the default-database fleet, `Schemas::list`) reads and writes the directory tenant's
// rows. `Directory::check`/`new_entry` (directory.rs, directory_admin.rs) should refuse a
// database that is the registry's own.
backend_test!(
    defect_a_directory_entry_may_name_the_registrys_own_database,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        // SQLite: "main" is no valid name, so the registry's main file is `appmain.sqlite`
        // in the server's directory (any application may name its file so).
        let registry = match t.backend {
            Backend::Sqlite => {
                let db = Database::connect(&format!("{}/appmain.sqlite?mode=rwc", t.server_url()))
                    .await
                    .unwrap();
                let registry = contrib::register(common::models::register(Registry::new(db)))
                    .register::<DirectoryEntry>()
                    .directory(dir.clone());
                registry.create_all().await.unwrap();
                registry
            }
            _ => registry_with(&t, &dir).await,
        };
        let own = match t.backend {
            Backend::Sqlite => "appmain".to_string(),
            _ => t.database_name().to_string(),
        };
        let added = dir.add_tenant(&registry, "gamma", "home", &own).await;
        if added.is_ok() {
            dir.with_tenant(&registry, "gamma", add_user(&registry, "directory-gamma"))
                .await
                .unwrap();
            let plain = with_tenant(Some(schema("gamma")), names(&registry)).await;
            let listed = registry.schema().list().await.unwrap();
            if t.backend == Backend::Sqlite {
                registry.disconnect().await;
            }
            panic!(
                "the directory accepted the registry's own database {own:?}: the default \
                 database's tenant gamma now reads {plain:?}, and its schemas list {listed:?}"
            );
        }
        assert!(
            matches!(added, Err(Error::InvalidArgument { .. })),
            "{added:?}"
        );
        dir.disconnect().await;
    }
);

// DEFECT (connection budget exceeded on the server; PostgreSQL and MySQL): a statement
// cancelled mid-flight (a request timeout, a dropped future) makes its connection be
// discarded; `Pooled::drop` -> `Closing::close` (database/pool.rs) sends Terminate/COM_QUIT
// and shuts the socket, then gives the budget slot back. The server is still executing the
// statement (no cancel request / KILL QUERY is sent), so its backend/thread stays alive
// while the slot is reused by another pool: the server holds more connections than the
// budget, contrary to the budget's documented guarantee ("a server's own count of
// connections never exceeds the budget because of one still closing"). The same mechanism
// (a close that returns before the server thread is gone) makes the feature's own test
// `pools_stay_within_the_budget` fail intermittently on MySQL ("saw 3 connections for a
// budget of 2").
backend_test!(
    defect_a_cancelled_statement_keeps_its_server_connection_after_its_slot_is_reused,
    |t: common::TestDb| async move {
        if t.backend == Backend::Sqlite {
            return; // No server to count.
        }
        // Fixed: the cancelled statement's connection keeps its slot until the server has
        // ended the statement (3 s), so b waits for it (the budget's wait is longer here) and
        // the server never holds two.
        let dir = Directory::new(ConnectionBudget::new(1).wait(Duration::from_secs(6)))
            .server("home", &t.server_url())
            .unwrap()
            .pool_size(1)
            .acquire_timeout(Duration::from_secs(8));
        let registry = registry_with(&t, &dir).await;
        let (d1, d2) = (db_name(&t, 1), db_name(&t, 2));
        dir.add_tenant(&registry, "a", "home", &d1).await.unwrap();
        dir.add_tenant(&registry, "b", "home", &d2).await.unwrap();
        let cancelled = dir
            .with_tenant(
                &registry,
                "a",
                tokio::time::timeout(
                    Duration::from_millis(300),
                    registry.raw(sleep_sql(t.backend)).execute(),
                ),
            )
            .await
            .unwrap();
        assert!(cancelled.is_err(), "the statement was meant to time out");
        let served = dir.with_tenant(&registry, "b", User::query(&registry).count());
        let watch = async {
            let mut most = 0;
            for _ in 0..20 {
                most = most.max(server_connections(&t, &dir, &[d1.clone(), d2.clone()]).await);
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            most
        };
        let (served, most) = tokio::join!(served, watch);
        assert_eq!(served.unwrap().unwrap(), 0);
        assert!(
            most <= 1,
            "the server held {most} connections while b waited"
        );
        assert!(dir.budget().in_use() <= 1, "{:?}", dir.budget());
        let seen = server_connections(&t, &dir, &[d1, d2]).await;
        assert!(
            seen <= 1,
            "the server holds {seen} connections of the directory for a budget of 1"
        );
        dir.disconnect().await;
    }
);

// DEFECT (raw SQL lacks the ORM's directory check): a transaction begun in a directory
// tenant's scope (database d1, which also holds directory tenant "alpha"), used for raw SQL
// inside a PLAIN scope of tenant "alpha" (the default database's alpha), runs on d1 in
// schema alpha: it reads the DIRECTORY tenant alpha's rows in the default tenant alpha's
// scope. The same query through the ORM is refused by `Place::resolve` ("a schema named
// by an unrouted context" on a directory database); `RawSql::prepare` (raw.rs) only refuses
// a transaction of another database when the context IS routed, and otherwise uses the
// transaction with the unrouted context's schema.
backend_test!(
    defect_raw_sql_on_a_directory_transaction_in_a_plain_scope_reads_the_directory_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let d1 = db_name(&t, 1);
        create_schema(&registry, "alpha", None, false, true)
            .await
            .unwrap();
        with_tenant(Some(schema("alpha")), add_user(&registry, "default-alpha")).await;
        dir.add_tenant(&registry, "alpha", "home", &d1)
            .await
            .unwrap();
        dir.add_tenant(&registry, "gamma", "home", &d1)
            .await
            .unwrap();
        dir.with_tenant(&registry, "alpha", add_user(&registry, "dir-alpha"))
            .await
            .unwrap();
        if t.backend == Backend::Sqlite {
            // A SQLite transaction spans one schema file: the cross-schema use is refused
            // by the transaction itself. Nothing to show here.
            return;
        }
        let tx = dir
            .with_tenant(&registry, "gamma", registry.begin())
            .await
            .unwrap()
            .unwrap();
        let (orm, raw) = with_tenant(Some(schema("alpha")), async {
            (
                User::query(&tx).values_list(User::name()).await,
                tx.raw("SELECT {users}.name FROM {users}")
                    .fetch_as::<(String,)>()
                    .await,
            )
        })
        .await;
        assert!(matches!(orm, Err(Error::Unsupported { .. })), "{orm:?}");
        tx.rollback().await.unwrap();
        match raw {
            Err(Error::Unsupported { .. }) => {}
            Ok(rows) => panic!(
                "raw SQL in the default tenant alpha's scope read the directory tenant alpha's rows: {rows:?}"
            ),
            Err(error) => panic!("{error:?}"),
        }
        dir.disconnect().await;
    }
);

// DEFECT (a cursor of one tenant opens in another): keyset cursors are bound to
// "table|schema|ordering" only (`binding`, query/keyset.rs), not to the database, so a
// cursor minted for the default database's tenant "beta" is accepted (not "made for another
// tenant") in the directory tenant "beta". The cursor carries the other tenant's key values
// and filters this tenant's rows by them.
backend_test!(
    defect_a_cursor_of_the_default_tenant_opens_in_the_directory_tenant_of_the_same_name,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await.cursor_key([7u8; 32]);
        two_betas(&t, &dir, &registry).await;
        with_tenant(Some(schema("beta")), add_user(&registry, "default-beta-2")).await;
        let page = with_tenant(
            Some(schema("beta")),
            User::query(&registry)
                .order_by([User::id().asc()])
                .page_after(1, None),
        )
        .await
        .unwrap();
        let cursor = page.next.expect("a second page");
        let reused = dir
            .with_tenant(
                &registry,
                "beta",
                User::query(&registry)
                    .order_by([User::id().asc()])
                    .page_after(1, Some(&cursor)),
            )
            .await
            .unwrap();
        assert!(
            matches!(reused, Err(Error::InvalidCursor { .. })),
            "the default tenant beta's cursor opened in the directory tenant beta: {:?}",
            reused.map(|p| p.items.len())
        );
        dir.disconnect().await;
    }
);

// DEFECT (budget clones stop closing each other's idle connections): `ConnectionBudget::wait`
// (database/budget.rs), called on a budget that is already shared, builds a new `Inner`
// that shares the semaphore but starts with an EMPTY list of pools. Pools enlisted on one
// clone are invisible to the other's `close_least_recently_used`, so an opener on the new
// clone waits its whole wait and fails with `ConnectionBudgetExhausted` while the cap is
// held by nothing but an idle connection of the other clone. (The doc only says the older
// clone "keeps the old wait"; it implies the two remain one budget.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defect_a_budget_clone_with_its_own_wait_cannot_free_the_others_idle_slot() {
    let dir = unique_dir("clone");
    let url = |name: &str| format!("sqlite://{}/{name}.sqlite?mode=rwc", dir.display());
    let budget = ConnectionBudget::new(1);
    let first = Database::options(&url("first"))
        .connection_budget(&budget)
        .connect()
        .await
        .unwrap();
    assert_eq!(budget.in_use(), 1, "the first database's idle connection");
    let quick = budget.clone().wait(Duration::from_millis(300));
    let second = Database::options(&url("second"))
        .connection_budget(&quick)
        .connect()
        .await;
    let ok = second.is_ok();
    if let Ok(db) = second {
        db.disconnect().await;
    }
    first.disconnect().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ok,
        "the clone could not take the slot held by the other clone's idle connection"
    );
}

// DEFECT (cross-tenant read by an explicit schema; design hazard): inside a directory
// tenant's scope, `using(<the scope's own tenant>)` (e.g. `using(get_tenant().unwrap())`, or
// a helper that always names its schema) reads and writes the schema of that name in the
// REGISTRY'S DEFAULT DATABASE, i.e. the other tenant "beta": `Place::resolve`
// (query/mod.rs, `(Some(schema), _) => (Some(schema), None)`) and `RawSql::prepare` (raw.rs,
// `Some(schema) => (Some(schema), None)`) drop the scope's route as soon as a schema is
// named, even the scope's own. `routed_conn` refuses `using_with_db` precisely so as not to
// read "a schema of the same name there", and its error even advises `using(..)`; naming
// the scope's own tenant should stay on the tenant's database (or be refused).
backend_test!(
    defect_using_the_scopes_own_tenant_reads_the_default_databases_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let (orm, raw) = dir
            .with_tenant(&registry, "beta", async {
                let own = tenantry::get_tenant().expect("the scope's tenant");
                (
                    User::query(&registry)
                        .using(&own)
                        .values_list(User::name())
                        .await,
                    registry
                        .raw("SELECT {users}.name FROM {users}")
                        .using(&own)
                        .fetch_as::<(String,)>()
                        .await
                        .map(|rows| rows.into_iter().map(|(n,)| n).collect::<Vec<_>>()),
                )
            })
            .await
            .unwrap();
        for (what, seen) in [("the ORM", orm), ("raw SQL", raw)] {
            match seen {
                Ok(names) => assert_eq!(
                    names,
                    ["dir-beta"],
                    "{what}: using(own tenant) in the directory tenant beta's scope read the \
                     default database's tenant beta"
                ),
                Err(Error::Unsupported { .. }) => {}
                Err(error) => panic!("{what}: {error:?}"),
            }
        }
        dir.disconnect().await;
    }
);

// DEFECT (bad input maps to the filesystem root): `Directory::server` accepts a SQLite
// server with an empty directory ("sqlite:", "sqlite://"); `Server::sqlite_dir`
// (tenancy/directory.rs) trims it to "" and `database_url` then builds
// `sqlite:///<database>.sqlite`, a file at the filesystem ROOT, and `ensure_database`'s
// `create_dir_all("")` succeeds. It should be `InvalidUrl`, as an in-memory SQLite server is.
// (Only the configuration is checked here: nothing is written.)
#[test]
fn defect_an_empty_sqlite_server_directory_is_accepted() {
    for url in ["sqlite:", "sqlite://"] {
        let configured = Directory::new(ConnectionBudget::new(1)).server("flat", url);
        assert!(
            matches!(configured, Err(Error::InvalidUrl { .. })),
            "{url:?} accepted: its databases would be files at the filesystem root ({:?})",
            configured.map(|d| d.servers().map(str::to_owned).collect::<Vec<_>>())
        );
    }
}

// DEFECT (a cancelled add_tenant strands its schema, and the name): `add_tenant`
// (directory_admin.rs) creates the tenant's schema, then writes the entry, and drops the
// schema again only when the write RETURNS an error. Cancelled while the entry is being
// written (an admin request's timeout, a dropped future), the schema stays on the
// database with no entry; every later `add_tenant` of that name is refused
// ("a schema that exists on that database already") until someone drops it by hand.
// Here the entry's transaction waits on a lock held by another transaction (the tenants
// epoch row), and the caller gives up after 2 s.
backend_test!(
    defect_a_cancelled_add_tenant_strands_its_schema_and_the_name,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let d1 = db_name(&t, 1);
        // The epoch row and the database exist: the next add_tenant only creates a schema.
        dir.add_tenant(&registry, "warm", "home", &d1)
            .await
            .unwrap();
        let blocker = registry.begin().await.unwrap();
        contrib::TenantEpoch::query(&blocker)
            .update([contrib::TenantEpoch::changed_at().set(chrono::Utc::now())])
            .await
            .unwrap();
        let cancelled = tokio::time::timeout(
            Duration::from_secs(2),
            dir.add_tenant(&registry, "late", "home", &d1),
        )
        .await;
        assert!(
            cancelled.is_err(),
            "precondition: the add was cancelled: {cancelled:?}"
        );
        blocker.rollback().await.unwrap();
        // Fixed: the add runs detached and completes once the lock is free: the tenant is
        // whole (entry and schema), never a schema without an entry.
        let started = std::time::Instant::now();
        loop {
            dir.forget();
            if dir
                .route(&registry, &schema("late"))
                .await
                .unwrap()
                .is_some()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the detached add never finished"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let n = dir
            .with_tenant(&registry, "late", User::query(&registry).count())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        let retried = dir.add_tenant(&registry, "late", "home", &d1).await;
        assert!(
            matches!(retried, Err(Error::SchemaAlreadyExists { .. })),
            "{retried:?}"
        );
        dir.disconnect().await;
    }
);

// DEFECT (panic on a configuration value): `ConnectionBudget::new(usize::MAX)` (e.g. an
// "unlimited" budget read from configuration) panics inside tokio's `Semaphore::new`
// ("a semaphore may not have more than MAX_PERMITS permits"): `ConnectionBudget::new`
// (database/budget.rs) clamps the limit below (`max(1)`) but not above.
#[test]
fn defect_an_unlimited_connection_budget_panics() {
    let made = std::panic::catch_unwind(|| ConnectionBudget::new(usize::MAX).limit());
    assert!(made.is_ok(), "ConnectionBudget::new(usize::MAX) panicked");
}

// DEFECT (cross-registry route reuse): the route cache of a `Directory` (`State::routes`,
// tenancy/directory.rs) is keyed by the tenant's name only, while every call names the
// registry whose directory table it reads (`route(registry, ..)`, `with_tenant(registry, ..)`).
// One directory (one connection budget, the point of the budget) attached to two registries
// with different default databases (two applications, two regions) serves registry B's
// tenant "acme" with the route cached from registry A's table for up to a second: B's acme
// reads and writes A's acme's database.
backend_test!(
    defect_one_directory_over_two_registries_mixes_their_tenants,
    |t: common::TestDb| async move {
        let dir = directory(&t, 6);
        let a = registry_with(&t, &dir).await;
        let b = contrib::register(common::models::register(Registry::new(
            t.other_database("b").await,
        )))
        .register::<DirectoryEntry>()
        .directory(dir.clone());
        b.create_all().await.unwrap();
        dir.add_tenant(&a, "acme", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.add_tenant(&b, "acme", "home", &db_name(&t, 2))
            .await
            .unwrap();
        dir.with_tenant(&a, "acme", add_user(&a, "a-acme"))
            .await
            .unwrap();
        dir.with_tenant(&b, "acme", add_user(&b, "b-acme"))
            .await
            .unwrap();
        let mut wrong = Vec::new();
        for _ in 0..5 {
            let in_a = dir.with_tenant(&a, "acme", names(&a)).await.unwrap();
            let in_b = dir.with_tenant(&b, "acme", names(&b)).await.unwrap();
            if in_a != ["a-acme"] || in_b != ["b-acme"] {
                wrong.push((in_a, in_b));
            }
        }
        dir.disconnect().await;
        b.disconnect().await;
        assert!(
            wrong.is_empty(),
            "registry A's and B's tenants acme were mixed (A, B): {wrong:?}"
        );
    }
);

// DEFECT (a decommissioned server alias bricks the directory): an entry whose server is no
// longer in the configuration (a server retired, the process redeployed without it) makes
// `entries()` (and so `DirectoryStore::list`, i.e. tenantry-axum's in-memory tenant list)
// fail for EVERY tenant, and `remove_tenant(.., drop_data = false)`, the one way to clean
// it up, refuses too: it runs `self.check(&row)?` (directory_admin.rs) before deleting the
// row, although without `drop_data` it never needs the server.
backend_test!(
    defect_an_entry_of_a_retired_server_cannot_be_removed,
    |t: common::TestDb| async move {
        let old = directory(&t, 4).server("retired", &t.server_url()).unwrap();
        let registry = registry_with(&t, &old).await;
        old.add_tenant(&registry, "keep", "home", &db_name(&t, 1))
            .await
            .unwrap();
        old.add_tenant(&registry, "gone", "retired", &db_name(&t, 2))
            .await
            .unwrap();
        old.disconnect().await;
        // Redeployed without the retired server.
        let new = directory(&t, 4);
        let listed = new.entries(&registry).await;
        let removed = new.remove_tenant(&registry, "gone", false).await;
        let listed_after = new.entries(&registry).await.map(|rows| rows.len());
        new.disconnect().await;
        assert!(
            removed.is_ok(),
            "the entry of a retired server cannot be removed ({removed:?}); meanwhile entries() \
             fails for every tenant: {listed:?}"
        );
        assert_eq!(listed_after.unwrap(), 1);
    }
);

// ---------------------------------------------------------------------------------------
// Passing tests: properties that hold (and must keep holding).
// ---------------------------------------------------------------------------------------

// The control of the test above: with ONE budget value, an opener closes another pool's
// idle connection and gets its slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_one_budget_closes_another_pools_idle_connection_for_an_opener() {
    let dir = unique_dir("lru");
    let url = |name: &str| format!("sqlite://{}/{name}.sqlite?mode=rwc", dir.display());
    let budget = ConnectionBudget::new(1).wait(Duration::from_millis(500));
    let first = Database::options(&url("first"))
        .connection_budget(&budget)
        .connect()
        .await
        .unwrap();
    let second = Database::options(&url("second"))
        .connection_budget(&budget)
        .connect()
        .await
        .unwrap();
    assert!(budget.in_use() <= 1, "{budget:?}");
    second.disconnect().await;
    first.disconnect().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// Every ORM operation of a directory tenant stays on its database, next to a default
// tenant of the same name: reads, get_or_create, update_or_create, bulk_create (several
// batches), update, delete, stream, paginate, aggregate, exists, values_list, raw SQL over
// its tables, a transaction; and the default tenant's rows are untouched.
backend_test!(
    holds_every_operation_of_a_directory_tenant_stays_in_its_database,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let r = &registry;
        dir.with_tenant(r, "beta", async {
            let (_, created) = User::query(r)
                .get_or_create(User::name().eq("dir-beta"), user("dir-beta"))
                .await
                .unwrap();
            assert!(!created, "dir-beta exists in the directory tenant");
            let (_, created) = User::query(r)
                .get_or_create(User::name().eq("default-beta"), user("default-beta"))
                .await
                .unwrap();
            assert!(created, "default-beta is the other tenant's");
            let (_, created) = User::query(r)
                .update_or_create(User::name().eq("dir-beta"), user("dir-beta"))
                .await
                .unwrap();
            assert!(!created);
            let many: Vec<User> = (0..40).map(|i| user(&format!("bulk-{i}"))).collect();
            User::query(r).bulk_create(many).await.unwrap();
            assert_eq!(User::query(r).count().await.unwrap(), 42);
            User::query(r)
                .filter(User::name().startswith("bulk-"))
                .update([User::is_active().set(true)])
                .await
                .unwrap();
            User::query(r)
                .filter(User::name().eq("bulk-39"))
                .delete()
                .await
                .unwrap();
            let streamed: Vec<_> = User::query(r).stream().collect().await;
            assert_eq!(streamed.len(), 41);
            let page = User::query(r)
                .order_by([User::id().asc()])
                .paginate(10)
                .page(1)
                .await
                .unwrap();
            assert_eq!(page.total, 41);
            let n = User::query(r).aggregate(User::id().count()).await.unwrap();
            assert_eq!(n, 41);
            assert!(User::query(r)
                .filter(User::name().eq("dir-beta"))
                .exists()
                .await
                .unwrap());
            let raw: Vec<(String,)> = r
                .raw("SELECT {users}.name FROM {users} WHERE {users}.name = ?")
                .bind("default-beta".to_string())
                .fetch_as()
                .await
                .unwrap();
            assert_eq!(raw.len(), 1, "the directory tenant's own copy");
            r.transaction(|tx| async move {
                User::query(&tx).create(user("in-tx")).await?;
                Ok(())
            })
            .await
            .unwrap();
            // Relations between tenant models: prefetch_related, select_related.
            let owner = User::query(r)
                .get(User::name().eq("dir-beta"))
                .await
                .unwrap();
            Product::query(r)
                .create(product("p1", Some(&owner)))
                .await
                .unwrap();
            let owners = User::query(r)
                .filter(User::name().eq("dir-beta"))
                .prefetch_related(Product::user())
                .all()
                .await
                .unwrap();
            assert_eq!(owners[0].prefetched(Product::user()).unwrap().len(), 1);
            let products = Product::query(r)
                .select_related(Product::user())
                .all()
                .await
                .unwrap();
            let parent = products[0].user.as_ref().and_then(|fk| fk.get());
            assert_eq!(parent.map(|u| u.name.as_str()), Some("dir-beta"));
            // From a shared row to the tenant's rows: the tenant's, on its database.
            let gold = Plan::query(r)
                .create(Plan {
                    id: 0,
                    title: "gold".into(),
                })
                .await
                .unwrap();
            Subscription::query(r)
                .create(Subscription {
                    id: 0,
                    plan: ForeignKey::from(&gold),
                    note: "dir".into(),
                })
                .await
                .unwrap();
            assert_eq!(gold.related(Subscription::plan()).count().await.unwrap(), 1);
        })
        .await
        .unwrap();
        let subs = with_tenant(Some(schema("beta")), Subscription::query(r).count()).await;
        assert_eq!(subs.unwrap(), 0);
        let plain = with_tenant(Some(schema("beta")), names(r)).await;
        assert_eq!(plain, ["default-beta"]);
        dir.disconnect().await;
    }
);

// The documented bound: a suspension made by another process (its own directory over the
// same table) is refused here within about a second.
backend_test!(
    holds_a_suspension_by_another_process_is_refused_within_about_a_second,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.with_tenant(&registry, "alpha", async {}).await.unwrap();
        let other = directory(&t, 4);
        let other_registry = contrib::register(t.registry.clone())
            .register::<DirectoryEntry>()
            .directory(other.clone());
        other
            .set_state(&other_registry, "alpha", TenantState::Suspended)
            .await
            .unwrap();
        let started = Instant::now();
        loop {
            match dir.with_tenant(&registry, "alpha", async {}).await {
                Err(Error::TenantSuspended { .. }) => break,
                Ok(()) if started.elapsed() < Duration::from_millis(1500) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                other => panic!("after {:?}: {other:?}", started.elapsed()),
            }
        }
        dir.disconnect().await;
        other.disconnect().await;
    }
);

// spawn_with_tenant carries the route: the spawned task reads the directory tenant's
// rows, not those of the default tenant of the same name.
backend_test!(
    holds_spawn_with_tenant_carries_the_route,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let r = registry.clone();
        let spawned = dir
            .with_tenant(&registry, "beta", async move {
                spawn_with_tenant(async move { names(&r).await })
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(spawned, ["dir-beta"]);
        dir.disconnect().await;
    }
);

// Instances go home: a row loaded in a directory tenant's scope is saved, refreshed and
// deleted on its database whatever scope the call runs in (another directory tenant's on
// the same database, a plain scope of the same name, none).
backend_test!(
    holds_instances_go_home_from_any_scope,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        dir.add_tenant(&registry, "gamma", "home", &db_name(&t, 1))
            .await
            .unwrap();
        let mut row = dir
            .with_tenant(&registry, "beta", async {
                User::query(&registry).first().await.unwrap().unwrap()
            })
            .await
            .unwrap();
        row.name = "renamed-in-gamma".into();
        dir.with_tenant(&registry, "gamma", row.save())
            .await
            .unwrap()
            .unwrap();
        row.name = "renamed-in-plain-beta".into();
        with_tenant(Some(schema("beta")), row.save()).await.unwrap();
        row.refresh().await.unwrap();
        assert_eq!(row.name, "renamed-in-plain-beta");
        assert_eq!(
            dir.with_tenant(&registry, "beta", names(&registry))
                .await
                .unwrap(),
            ["renamed-in-plain-beta"]
        );
        assert!(dir
            .with_tenant(&registry, "gamma", names(&registry))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            with_tenant(Some(schema("beta")), names(&registry)).await,
            ["default-beta"]
        );
        with_tenant(Some(schema("beta")), row.delete())
            .await
            .unwrap();
        assert!(dir
            .with_tenant(&registry, "beta", names(&registry))
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            with_tenant(Some(schema("beta")), names(&registry)).await,
            ["default-beta"]
        );
        dir.disconnect().await;
    }
);

// Transactions of one database are refused in the other's scope, by the ORM and by raw
// SQL: one begun outside (default database) inside a directory scope, and one begun in a
// directory scope outside any scope.
backend_test!(
    holds_transactions_do_not_cross_databases,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let outside = with_tenant(Some(schema("beta")), registry.begin())
            .await
            .unwrap();
        let (orm, raw) = dir
            .with_tenant(&registry, "beta", async {
                (
                    User::query(&outside).count().await,
                    outside
                        .raw("SELECT {users}.name FROM {users}")
                        .fetch_as::<(String,)>()
                        .await,
                )
            })
            .await
            .unwrap();
        assert!(matches!(orm, Err(Error::Unsupported { .. })), "{orm:?}");
        assert!(matches!(raw, Err(Error::Unsupported { .. })), "{raw:?}");
        outside.rollback().await.unwrap();
        let inside = dir
            .with_tenant(&registry, "beta", registry.begin())
            .await
            .unwrap()
            .unwrap();
        let unscoped = User::query(&inside).count().await;
        assert!(
            matches!(unscoped, Err(Error::Unsupported { .. })),
            "{unscoped:?}"
        );
        let shared = Plan::query(&inside).count().await;
        assert!(
            matches!(shared, Err(Error::Unsupported { .. })),
            "{shared:?}"
        );
        inside.rollback().await.unwrap();
        dir.disconnect().await;
    }
);

// Changing the tenant inside a directory scope fails closed: set_tenant of another tenant
// poisons the scope (every later query fails), activate_schema cannot move the queries,
// a nested plain with_tenant is its own scope (the default database's tenant), and a
// nested directory scope routes to its own tenant.
backend_test!(
    holds_set_tenant_and_activate_schema_cannot_move_a_directory_scope,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        dir.add_tenant(&registry, "alpha", "home", &db_name(&t, 2))
            .await
            .unwrap();
        dir.with_tenant(&registry, "alpha", add_user(&registry, "dir-alpha"))
            .await
            .unwrap();
        dir.with_tenant(&registry, "alpha", async {
            assert!(set_tenant(Some(schema("alpha"))).is_ok());
            activate_schema("beta").unwrap();
            assert_eq!(names(&registry).await, ["dir-alpha"]);
            let nested = with_tenant(Some(schema("beta")), names(&registry)).await;
            assert_eq!(nested, ["default-beta"]);
            let routed = dir
                .with_tenant(&registry, "beta", names(&registry))
                .await
                .unwrap();
            assert_eq!(routed, ["dir-beta"]);
            let moved = set_tenant(Some(schema("beta")));
            assert!(
                matches!(moved, Err(Error::TenantConflict { .. })),
                "{moved:?}"
            );
            let after = User::query(&registry).count().await;
            assert!(
                matches!(after, Err(Error::TenantConflict { .. })),
                "{after:?}"
            );
            let raw = registry
                .raw("SELECT {users}.name FROM {users}")
                .fetch_as::<(String,)>()
                .await;
            assert!(matches!(raw, Err(Error::TenantConflict { .. })), "{raw:?}");
        })
        .await
        .unwrap();
        dir.disconnect().await;
    }
);

// A job context captured in a directory tenant's scope says so, and never restores into the
// default database's tenant of the same name: `run` refuses its queries, `run_in` routes it.
backend_test!(
    holds_tenant_context_of_a_directory_tenant_runs_only_routed,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let captured = dir
            .with_tenant(&registry, "beta", async { TenantContext::current() })
            .await
            .unwrap()
            .unwrap();
        let json = serde_json::to_string(&captured).unwrap();
        assert_eq!(json, r#"{"tenant":"beta","directory":true}"#);
        let restored: TenantContext = serde_json::from_str(&json).unwrap();
        let unrouted = restored.run(User::query(&registry).count()).await;
        assert!(
            matches!(unrouted, Err(Error::TenantConflict { .. })),
            "{unrouted:?}"
        );
        let routed = restored.run_in(&registry, names(&registry)).await.unwrap();
        assert_eq!(routed, ["dir-beta"]);
        // The default database's beta is still reachable with a plain context.
        let plain: TenantContext = serde_json::from_str(r#"{"tenant":"beta"}"#).unwrap();
        assert_eq!(
            plain.run_in(&registry, names(&registry)).await.unwrap(),
            ["default-beta"]
        );
        dir.disconnect().await;
    }
);

// Several tenants in one task within a budget of 1 (pools of 1): join! of two tenants'
// queries; a select! that cancels a query waiting for a budget slot; statements that fail;
// a cancelled transaction: no slot leaks, and the next tenant is served.
backend_test!(
    holds_budget_of_one_serves_several_tenants_in_one_task_without_leaking,
    |t: common::TestDb| async move {
        let dir = Directory::new(ConnectionBudget::new(1).wait(Duration::from_secs(1)))
            .server("home", &t.server_url())
            .unwrap()
            .pool_size(1)
            .acquire_timeout(Duration::from_secs(2));
        let registry = registry_with(&t, &dir).await;
        dir.add_tenant(&registry, "a", "home", &db_name(&t, 1))
            .await
            .unwrap();
        dir.add_tenant(&registry, "b", "home", &db_name(&t, 2))
            .await
            .unwrap();
        let count = |tenant: &'static str| {
            dir.with_tenant(&registry, tenant, User::query(&registry).count())
        };
        for _ in 0..5 {
            let (a, b) = tokio::join!(count("a"), count("b"));
            assert_eq!(a.unwrap().unwrap(), 0);
            assert_eq!(b.unwrap().unwrap(), 0);
        }
        assert!(dir.budget().in_use() <= 1, "{:?}", dir.budget());
        // a holds the only slot in a transaction; b waits and is cancelled by select!.
        let held = dir
            .with_tenant(&registry, "a", registry.begin())
            .await
            .unwrap()
            .unwrap();
        tokio::select! {
            done = count("b") => panic!("b got a slot held by a's transaction: {done:?}"),
            () = tokio::time::sleep(Duration::from_millis(150)) => {}
        }
        drop(held); // Rolled back by closing its connection.
        let started = Instant::now();
        assert_eq!(count("b").await.unwrap().unwrap(), 0);
        assert!(started.elapsed() < Duration::from_secs(1));
        // Failing statements give their connection back.
        for _ in 0..3 {
            let failed = dir
                .with_tenant(
                    &registry,
                    "a",
                    registry.raw("SELECT no_such_column FROM {users}").execute(),
                )
                .await
                .unwrap();
            assert!(failed.is_err());
        }
        // A statement cancelled while waiting for its connection.
        let _ = tokio::time::timeout(Duration::from_millis(1), count("b")).await;
        assert_eq!(count("a").await.unwrap().unwrap(), 0);
        assert_eq!(count("b").await.unwrap().unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(dir.budget().in_use() <= 1, "{:?}", dir.budget());
        dir.disconnect().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(dir.budget().in_use(), 0, "{:?}", dir.budget());
    }
);

// Pools of 2 within a budget of 2, three tenants on three databases, all in ONE task
// (join_all of 30 queries, each in its own directory scope), watched by a sibling future:
// the budget never has more than 2 slots in use, every query gets its own tenant's rows.
backend_test!(
    holds_budget_of_two_with_pools_of_two_in_one_task,
    |t: common::TestDb| async move {
        let dir = directory(&t, 2);
        let registry = registry_with(&t, &dir).await;
        for i in 0..3u32 {
            let tenant = format!("t{i}");
            dir.add_tenant(&registry, &tenant, "home", &db_name(&t, i + 1))
                .await
                .unwrap();
            dir.with_tenant(&registry, tenant.as_str(), add_user(&registry, &tenant))
                .await
                .unwrap();
        }
        let done = AtomicBool::new(false);
        let queries = (0..30).map(|n| {
            let tenant = format!("t{}", n % 3);
            let (dir, registry) = (&dir, &registry);
            async move {
                let seen = dir
                    .with_tenant(registry, tenant.as_str(), names(registry))
                    .await
                    .unwrap();
                assert_eq!(seen, std::slice::from_ref(&tenant));
            }
        });
        let watch = async {
            let mut most = 0;
            while !done.load(Ordering::SeqCst) {
                most = most.max(dir.budget().in_use());
                tokio::task::yield_now().await;
            }
            most
        };
        let run = async {
            futures_util::future::join_all(queries).await;
            done.store(true, Ordering::SeqCst);
        };
        let ((), most) = tokio::join!(run, watch);
        assert!(most <= 2, "{most} slots in use for a budget of 2");
        dir.disconnect().await;
    }
);

// No credential in Debug output or errors: a server whose password is a marker, unreachable;
// the directory, its store, a route, and the errors of a query there never show it.
backend_test!(
    holds_no_credential_in_debug_or_errors,
    |t: common::TestDb| async move {
        const SECRET: &str = "Hunter2MarkerSecret";
        let far = match t.backend {
            Backend::MySql => format!("mysql://app:{SECRET}@127.0.0.1:1/x"),
            _ => format!("postgres://app:{SECRET}@127.0.0.1:1/postgres"),
        };
        let bad_port = format!("postgres://app:{SECRET}@127.0.0.1:99999/postgres");
        let dir = directory(&t, 4)
            .server("far", &far)
            .unwrap()
            .server("odd", &bad_port)
            .unwrap()
            .acquire_timeout(Duration::from_millis(800));
        let registry = registry_with(&t, &dir).await;
        dir.add_entry(&registry, "lost", "far", "somewhere", TenantState::Active)
            .await
            .unwrap();
        dir.add_entry(&registry, "odd", "odd", "somewhere", TenantState::Active)
            .await
            .unwrap();
        let mut shown = vec![
            format!("{dir:?}"),
            format!("{:?}", dir.store(&registry)),
            format!("{:?}", dir.route(&registry, &schema("lost")).await),
            format!("{:?}", dir.route(&registry, &schema("odd")).await),
        ];
        for tenant in ["lost", "odd"] {
            let result = dir
                .with_tenant(&registry, tenant, User::query(&registry).count())
                .await;
            shown.push(format!("{result:?}"));
            if let Ok(Err(error)) | Err(error) = result {
                shown.push(error.to_string());
            }
        }
        let added = dir
            .add_tenant(&registry, "new_one", "far", "somewhere")
            .await;
        shown.push(format!("{added:?}"));
        for text in &shown {
            assert!(!text.contains(SECRET), "a credential leaked: {text}");
        }
        dir.disconnect().await;
    }
);

// Malformed entries written by hand are never routed: a state that is not exactly
// "active"/"suspended", a database that is no valid name (a path), an empty server.
backend_test!(
    holds_malformed_entries_are_refused_not_routed,
    |t: common::TestDb| async move {
        let dir = directory(&t, 4);
        let registry = registry_with(&t, &dir).await;
        let rows = [
            ("cased", "home", db_name(&t, 1), "Active"),
            ("pathy", "home", "../escape".to_string(), "active"),
            ("empty", "", db_name(&t, 1), "active"),
            ("spaced", "home", format!("{} ", db_name(&t, 1)), "active"),
        ];
        for (tenant, server, database, state) in &rows {
            DirectoryEntry::query(&registry)
                .create(DirectoryEntry {
                    id: 0,
                    schema_name: tenant.to_string(),
                    server: server.to_string(),
                    database: database.clone(),
                    state: state.to_string(),
                    epoch: 1,
                })
                .await
                .unwrap();
        }
        for (tenant, ..) in &rows {
            let ran = AtomicBool::new(false);
            let routed = dir
                .with_tenant(&registry, *tenant, async {
                    ran.store(true, Ordering::SeqCst)
                })
                .await;
            assert!(
                matches!(
                    routed,
                    Err(Error::InvalidArgument { .. } | Error::InvalidSchemaName { .. })
                ),
                "{tenant}: {routed:?}"
            );
            assert!(!ran.load(Ordering::SeqCst));
        }
        // As stored, for an operator to see and remove; never in the store's list.
        assert_eq!(dir.entries(&registry).await.unwrap().len(), 4);
        let listed = tenantry::TenantStore::list(&dir.store(&registry))
            .await
            .unwrap();
        assert!(listed.is_empty(), "{listed:?}");
        dir.disconnect().await;
    }
);

// Two concurrent add_tenant of one name: exactly one wins, and the loser's clean-up never
// drops the winner's schema (same database and different databases).
backend_test!(
    holds_concurrent_add_tenant_of_one_name_keeps_the_winner_intact,
    |t: common::TestDb| async move {
        let dir = directory(&t, 6);
        let registry = registry_with(&t, &dir).await;
        let (d1, d2) = (db_name(&t, 1), db_name(&t, 2));
        for (name, first, second) in [("same_db", &d1, &d1), ("two_dbs", &d1, &d2)] {
            let (a, b) = tokio::join!(
                dir.add_tenant(&registry, name, "home", first),
                dir.add_tenant(&registry, name, "home", second)
            );
            assert!(
                a.is_ok() != b.is_ok(),
                "{name}: exactly one must win: {a:?} / {b:?}"
            );
            dir.with_tenant(&registry, name, add_user(&registry, name))
                .await
                .unwrap();
            let seen = dir
                .with_tenant(&registry, name, names(&registry))
                .await
                .unwrap();
            assert_eq!(seen, [name]);
        }
        assert_eq!(dir.entries(&registry).await.unwrap().len(), 2);
        dir.disconnect().await;
    }
);

// remove_tenant / add_tenant racing queries: a query of the tenant reads the old database
// or the new one, never the default database's tenant of the same name.
backend_test!(
    holds_queries_racing_a_move_never_read_the_default_tenant,
    |t: common::TestDb| async move {
        let dir = directory(&t, 6);
        let registry = registry_with(&t, &dir).await;
        two_betas(&t, &dir, &registry).await;
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for _ in 0..4 {
            let (dir, registry, stop) = (dir.clone(), registry.clone(), stop.clone());
            readers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let read = dir
                        .with_tenant(&registry, "beta", async {
                            User::query(&registry).values_list(User::name()).await
                        })
                        .await;
                    if let Ok(Ok(names)) = read {
                        seen.push(names);
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                seen
            }));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        dir.remove_tenant(&registry, "beta", false).await.unwrap();
        dir.add_tenant(&registry, "beta", "home", &db_name(&t, 2))
            .await
            .unwrap();
        dir.with_tenant(&registry, "beta", add_user(&registry, "moved-beta"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::SeqCst);
        // (A read racing the move may cache the old route: see
        // defect_a_read_racing_a_change_caches_the_old_route_forever. Not this test's point.)
        dir.forget();
        for reader in readers {
            for names in reader.await.unwrap() {
                assert!(
                    !names.iter().any(|n| n == "default-beta"),
                    "a directory read returned the default tenant's rows: {names:?}"
                );
            }
        }
        assert_eq!(
            dir.with_tenant(&registry, "beta", names(&registry))
                .await
                .unwrap(),
            ["moved-beta"]
        );
        dir.disconnect().await;
    }
);
