//! W16_fault: directory tenants' point reads while another tenant's server is down. Not in
//! the default run (`--only W16`), PostgreSQL and MySQL only (SQLite has no server to lose).
//!
//! 1. Set-up, untimed: a [`Directory`] with the bench's server (`home`, database
//!    `bench_w16`) and a server that accepts connections and never answers (`down`: a
//!    listener of this process that holds every socket it accepts, as a hung server or a
//!    firewall's black hole does), [`KNOWN`] tenants on `home` with one product each, and
//!    tenant `lost` on `down`. The directory's pools hold 8 connections each, its budget 16,
//!    its acquire timeout 1 s.
//! 2. Timed, four phases of [`PHASE`] in the order quiet, fault, fault, quiet: one known
//!    tenant's `count()` after another (round robin, through `Directory::with_tenant`), each
//!    timed; in the fault phases, meanwhile, [`FAULT_RATE`] requests/s to `lost`, each of
//!    which must fail with a typed error.
//! 3. Reported: `quiet_p50_us`, `fault_p50_us` (medians of the phases' p50s), `ratio`
//!    (fault over quiet), `lost_requests` and `lost_error_p50_us` (how long `lost` took to
//!    fail).

use std::time::{Duration, Instant};

use serde_json::json;
use tenantry::{contrib, Backend, ConnectionBudget, Directory, Registry};

use crate::{
    median,
    models::Product,
    round,
    stats::{ratio, Fields, Samples},
    Bench, Result,
};

const KNOWN: usize = 10;
const PHASE: Duration = Duration::from_secs(5);
const FAULT_RATE: u64 = 200;
const DATABASE: &str = "bench_w16";

fn known(i: usize) -> String {
    format!("w16_known_{i:02}")
}

impl Bench {
    /// W16: see the module documentation.
    pub(crate) async fn w16_fault(&mut self) -> Result<()> {
        let scheme = match self.backend {
            Backend::Postgres => "postgres://postgres",
            Backend::MySql => "mysql://root",
            Backend::Sqlite => {
                eprintln!("tenantry-bench: W16 needs a server (PostgreSQL or MySQL); skipped");
                return Ok(());
            }
        };
        let port = hung_server().await?;
        let down = format!("{scheme}@127.0.0.1:{port}/nowhere");
        let directory = Directory::new(ConnectionBudget::new(16))
            .server("home", &self.args.database_url)?
            .server("down", &down)?
            .pool_size(8)
            .acquire_timeout(Duration::from_secs(1));
        let registry = contrib::register(self.registry.clone())
            .register::<contrib::DirectoryEntry>()
            .directory(directory.clone());
        registry.create_all().await?;
        let result = self.w16_timed(&registry, &directory).await;
        for i in 0..KNOWN {
            directory.remove_tenant(&registry, &known(i), true).await?;
        }
        directory
            .remove_tenant(&registry, "w16_lost", false)
            .await?;
        directory.disconnect().await;
        result
    }

    async fn w16_timed(&mut self, registry: &Registry, directory: &Directory) -> Result<()> {
        for i in 0..KNOWN {
            let tenant = known(i);
            // A leftover of an interrupted run goes first.
            let _ = directory.remove_tenant(registry, &tenant, true).await;
            directory
                .add_tenant(registry, &tenant, "home", DATABASE)
                .await?;
            directory
                .with_tenant(
                    registry,
                    tenant.as_str(),
                    Product::query(registry).create(Product::sample(format!("w16-{i}"), None, i)),
                )
                .await??;
        }
        let _ = directory.remove_tenant(registry, "w16_lost", false).await;
        directory
            .add_entry(
                registry,
                "w16_lost",
                "down",
                "nowhere",
                contrib::TenantState::Active,
            )
            .await?;
        let (mut quiet, mut fault) = (Vec::new(), Vec::new());
        let mut lost = Samples::with_capacity(4_000);
        for faulty in [false, true, true, false] {
            let samples = phase(registry, directory, faulty, &mut lost).await?;
            let p50 = samples.percentile(0.50);
            if faulty {
                fault.push(p50);
            } else {
                quiet.push(p50);
            }
        }
        let (quiet, fault) = (median(&mut quiet), median(&mut fault));
        let mut extra = Fields::new();
        extra.insert("quiet_p50_us", json!(round(quiet, 1)));
        extra.insert("fault_p50_us", json!(round(fault, 1)));
        extra.insert("ratio", json!(ratio(fault, quiet)));
        extra.insert("lost_requests", json!(lost.len()));
        extra.insert("lost_error_p50_us", json!(round(lost.percentile(0.50), 1)));
        self.emit("W16_fault", KNOWN, PHASE.as_secs_f64(), extra);
        Ok(())
    }
}

/// A listener that accepts connections and never answers (nor closes them); its port.
async fn hung_server() -> Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    Ok(port)
}

/// One phase: the known tenants' timed reads, and with `faulty` the requests to the lost
/// tenant beside them (each must fail; its time to fail goes into `lost`).
async fn phase(
    registry: &Registry,
    directory: &Directory,
    faulty: bool,
    lost: &mut Samples,
) -> Result<Samples> {
    let flood = faulty.then(|| {
        let (registry, directory) = (registry.clone(), directory.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FAULT_RATE));
            let total = FAULT_RATE * PHASE.as_secs();
            let mut requests = Vec::with_capacity(total as usize);
            for _ in 0..total {
                tick.tick().await;
                let (registry, directory) = (registry.clone(), directory.clone());
                requests.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let result = directory
                        .with_tenant(&registry, "w16_lost", Product::query(&registry).count())
                        .await;
                    (matches!(result, Ok(Err(_)) | Err(_)), started.elapsed())
                }));
            }
            let mut times = Vec::with_capacity(requests.len());
            for request in requests {
                times.push(request.await.unwrap_or((false, Duration::ZERO)));
            }
            times
        })
    });
    let mut samples = Samples::with_capacity(10_000);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < PHASE {
        let tenant = known(i % KNOWN);
        let t0 = Instant::now();
        directory
            .with_tenant(registry, tenant.as_str(), Product::query(registry).count())
            .await??;
        samples.push(t0.elapsed());
        i += 1;
    }
    if let Some(flood) = flood {
        for (failed, took) in flood.await.map_err(|e| format!("W16: {e}"))? {
            if !failed {
                return Err("W16: a request to the lost tenant succeeded".into());
            }
            lost.push(took);
        }
    }
    Ok(samples)
}
