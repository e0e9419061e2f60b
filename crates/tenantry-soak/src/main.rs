//! `soak`: a long mixed run over many tenants, through the demo's HTTP API and the library,
//! with a verdict per isolation check.
//!
//! ```text
//! cargo run --release -p tenantry-soak -- --database-url URL [--seconds N | --minutes N]
//!     [--tenants 20] [--workers 8] [--max-connections N] [--seed N] [--keep] [--self-test]
//! ```
//!
//! The run registers the demo's models on URL's database, serves the demo's router
//! in-process on a free port (strict mode: a tenant header naming no tenant is 404, never
//! the shared data), provisions `--tenants` tenants (half over `POST /tenants`, half with
//! `contrib::create_tenant`), then for the given time:
//!
//! - `--workers` loops send random reads (`GET /products`, `Product::query().all()` inside
//!   `with_tenant` and with `using`) and writes (`POST /products`, `create` inside
//!   `with_tenant`, `bulk_create` with `using`) to random tenants; every row is named
//!   `<schema>:g<generation>:w<worker>:<seq>:<via>`, every acknowledged write is logged,
//!   every read is checked for foreign rows and for acknowledged writes it should show;
//! - a churn task drops a random tenant (`contrib::drop_tenant`, data included) and creates
//!   it again (over HTTP or through the library, in turn), resetting its log, about once a
//!   second, and provisions new tenants (up to half as many again) every few seconds.
//!
//! Then every tenant is read through a fresh handle and over HTTP, and one line per check is
//! printed: `PASS`/`FAIL`, the check, the numbers. Exit status 1 if any check failed.
//!
//! `--self-test` proves the checker: after the load it writes one row tagged with tenant A
//! into tenant B and deletes one acknowledged row, behind the checker's back. Exactly the
//! checks "cross-tenant rows at the end" and "lost acknowledged writes" must then fail, each
//! with a count of 1; the run prints `self-test: PASS` and exits 0 only then (1 otherwise).
//!
//! At the end the run drops every tenant it made (unless `--keep`); the tables in the
//! URL's own database stay. Use a database of its own (CI creates a fresh one per run).

mod args;
mod check;
mod http;
mod world;

use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::{atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use tenantry::{contrib, Backend, Database, Error, Registry};
use tenantry_demo::models::Product;

use crate::{
    check::{Found, Verdict, CROSS_AT_END, LOST_WRITES},
    http::Client,
    world::{lock, Rng, Via, World},
};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = args::parse();
    match run(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::from(2)
        }
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "postgres",
        Backend::MySql => "mysql",
        Backend::Sqlite => "sqlite",
    }
}

async fn run(args: args::Args) -> Result<ExitCode, String> {
    let began = Instant::now();
    let mut options = Database::options(&args.database_url);
    if let Some(n) = args.max_connections {
        options = options.max_connections(n);
    }
    let database = options
        .connect()
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    let backend = database.backend();
    let registry = tenantry_demo::register(Registry::new(database));
    registry
        .create_all()
        .await
        .map_err(|e| format!("cannot create the demo's tables: {e}"))?;

    // The demo's router, in-process, strict.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot bind a port: {e}"))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = tenantry_demo::app(registry.clone(), true);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    println!(
        "soak: {} for {:?}, {} tenants (+{} during the run), {} workers, pool {}, seed {}, \
         demo on http://{addr}{}",
        backend_name(backend),
        args.duration,
        args.tenants,
        args.tenants / 2,
        args.workers,
        args.max_connections
            .map_or_else(|| "default".to_owned(), |n| n.to_string()),
        args.seed,
        if args.self_test { ", SELF-TEST" } else { "" }
    );

    let world = Arc::new(World::new(
        registry.clone(),
        addr,
        args.prefix.clone(),
        args.tenants + args.tenants / 2,
    ));
    let mut client = Client::new(addr);
    for i in 0..args.tenants {
        let via = if i % 2 == 1 { Via::Library } else { Via::Http };
        world
            .provision(&mut client, via)
            .await
            .map_err(|e| format!("cannot provision tenant {i}: {e}"))?;
    }
    println!(
        "soak: {} tenants provisioned in {:?}",
        args.tenants,
        began.elapsed()
    );

    // The load.
    let start = Instant::now();
    let deadline = start + args.duration;
    let mut seeds = Rng::new(args.seed);
    let mut tasks = Vec::new();
    for id in 0..args.workers {
        let (world, rng) = (world.clone(), Rng::new(seeds.next()));
        tasks.push(tokio::spawn(async move {
            world.worker(id, deadline, rng).await
        }));
    }
    let churn = {
        let (world, mut rng) = (world.clone(), Rng::new(seeds.next()));
        tokio::spawn(async move {
            let mut client = Client::new(world.addr);
            let mut round = 0usize;
            while Instant::now() + Duration::from_millis(1_500) < deadline {
                tokio::time::sleep(Duration::from_millis(500 + rng.below(1_000) as u64)).await;
                round += 1;
                let via = if round % 2 != 1 {
                    Via::Http
                } else {
                    Via::Library
                };
                if round % 3 == 2 && world.tenants().len() < world.max_tenants {
                    if let Err(e) = world.provision(&mut client, via).await {
                        lock(&world.stats.samples).push(format!("provisioning failed: {e}"));
                    }
                    continue;
                }
                let tenants = world.live();
                if !tenants.is_empty() {
                    let tenant = tenants[rng.below(tenants.len())].clone();
                    world.drop_and_recreate(&mut client, &tenant, via).await;
                }
            }
        })
    };
    let progress = {
        let world = world.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                let stats = &world.stats;
                println!(
                    "soak: {:>4}s {} requests, {} errors, {} drops, {} tenants",
                    start.elapsed().as_secs(),
                    stats.requests.load(Ordering::Relaxed),
                    lock(&stats.errors).values().sum::<u64>(),
                    stats.drops.load(Ordering::Relaxed),
                    world.tenants().len()
                );
            }
        })
    };
    for task in tasks {
        task.await.map_err(|e| format!("a worker panicked: {e}"))?;
    }
    churn
        .await
        .map_err(|e| format!("the churn task panicked: {e}"))?;
    progress.abort();
    let elapsed = start.elapsed();

    let injected = if args.self_test {
        Some(
            inject(&world)
                .await
                .map_err(|e| format!("self-test injection failed: {e}"))?,
        )
    } else {
        None
    };

    // A fresh handle: nothing of the run's pool.
    let fresh = Database::connect(&args.database_url)
        .await
        .map_err(|e| format!("cannot connect for verification: {e}"))?;
    let fresh = tenantry_demo::register(Registry::new(fresh));
    let (verdicts, found) = check::verify(&world, &fresh)
        .await
        .map_err(|e| format!("verification failed to read: {e}"))?;

    print_summary(&world, elapsed);
    for verdict in &verdicts {
        println!(
            "{} {} ({})",
            if verdict.pass { "PASS" } else { "FAIL" },
            verdict.name,
            verdict.detail
        );
    }
    let samples = lock(&world.stats.samples).clone();
    for sample in samples.iter().take(20) {
        println!("  e.g. {sample}");
    }

    if !args.keep {
        cleanup(&world, &fresh).await;
    }
    fresh.disconnect().await;
    server.abort();
    registry.disconnect().await;

    let code = match injected {
        None => {
            let failed = verdicts.iter().filter(|v| !v.pass).count();
            if failed == 0 {
                println!("soak: PASS ({} checks)", verdicts.len());
                ExitCode::SUCCESS
            } else {
                println!("soak: FAIL ({failed} of {} checks)", verdicts.len());
                ExitCode::from(1)
            }
        }
        Some(description) => self_test_verdict(&verdicts, &found, &description),
    };
    println!("soak: done in {:?}", began.elapsed());
    Ok(code)
}

fn print_summary(world: &World, elapsed: Duration) {
    let stats = &world.stats;
    let requests = stats.requests.load(Ordering::Relaxed);
    let ops = lock(&stats.ops)
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "soak: {requests} requests in {elapsed:.1?} ({:.0}/s): {ops}",
        requests as f64 / elapsed.as_secs_f64().max(0.001)
    );
    println!(
        "soak: {} drops re-created {} times, {} tenants provisioned, {} tenants at the end",
        stats.drops.load(Ordering::Relaxed),
        stats.recreated.load(Ordering::Relaxed),
        stats.provisioned.load(Ordering::Relaxed),
        world.tenants().len()
    );
}

/// The self-test's faults, behind the checker's back (neither is logged): a row tagged with
/// tenant A written into tenant B, and one acknowledged row of tenant C deleted.
async fn inject(world: &World) -> Result<String, Error> {
    let live = world.live();
    let (a, b) = (&live[0], &live[1]);
    let name = format!("{}selftest-cross", a.tag());
    Product::query(&world.registry)
        .using(&b.schema)
        .create(Product {
            id: 0,
            name: name.clone(),
            user: None,
            price: tenantry::Decimal::ZERO,
            stock: 0,
        })
        .await?;
    // The tenant with an acknowledged write; if the run was too short to make one, make it.
    let c = live
        .iter()
        .find(|t| !t.log().acked.is_empty())
        .unwrap_or(&live[0]);
    if c.log().acked.is_empty() {
        let extra = format!("{}selftest-acked", c.tag());
        Product::query(&world.registry)
            .using(&c.schema)
            .create(Product {
                id: 0,
                name: extra.clone(),
                user: None,
                price: tenantry::Decimal::ZERO,
                stock: 0,
            })
            .await?;
        c.log().acked.push((extra, Via::Library));
    }
    let victim = c.log().acked[0].0.clone();
    let deleted = Product::query(&world.registry)
        .using(&c.schema)
        .filter(Product::name().eq(victim.clone()))
        .delete()
        .await?;
    Ok(format!(
        "wrote {name:?} into tenant {}; deleted acknowledged {victim:?} ({deleted} row) from tenant {}",
        b.schema, c.schema
    ))
}

fn self_test_verdict(verdicts: &[Verdict], found: &Found, injected: &str) -> ExitCode {
    println!("soak: self-test injected: {injected}");
    println!(
        "soak: self-test EXPECTS exactly two FAIL lines above: \"{CROSS_AT_END}\" (1) and \
         \"{LOST_WRITES}\" (1)"
    );
    let failed = |name: &str| verdicts.iter().any(|v| v.name == name && !v.pass);
    let detected =
        failed(CROSS_AT_END) && found.cross_at_end == 1 && failed(LOST_WRITES) && found.lost == 1;
    let others: Vec<&str> = verdicts
        .iter()
        .filter(|v| !v.pass && v.name != CROSS_AT_END && v.name != LOST_WRITES)
        .map(|v| v.name)
        .collect();
    if !others.is_empty() {
        println!(
            "soak: self-test: other checks failed too (not caused by the injection): {}",
            others.join("; ")
        );
    }
    if detected {
        println!("soak: self-test PASS: both injected faults were detected, each exactly once");
        ExitCode::SUCCESS
    } else {
        println!(
            "soak: self-test FAIL: the checker found {} cross-tenant row(s) and {} lost write(s); \
             expected exactly 1 and 1",
            found.cross_at_end, found.lost
        );
        ExitCode::from(1)
    }
}

/// Drops every tenant this run made (row and data).
async fn cleanup(world: &World, fresh: &Registry) {
    let mut failed = 0;
    for tenant in world.tenants() {
        let dropped = contrib::drop_tenant(fresh, &tenant.schema, true).await;
        if dropped.is_err() {
            // A tenant lost halfway may have a schema without a row.
            if tenantry::drop_schema(fresh, &tenant.schema, true, true)
                .await
                .is_err()
            {
                failed += 1;
            }
        }
    }
    if failed > 0 {
        println!("soak: cleanup: {failed} tenant(s) could not be dropped");
    }
}
