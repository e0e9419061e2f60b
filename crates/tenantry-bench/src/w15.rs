//! W15_flood: requests through `tenantry-axum`'s layer while a flood of requests names
//! tenants that do not exist. Not in the default run (`--only W15`): it takes about 40 s.
//!
//! 1. Set-up, untimed: [`KNOWN`] tenants (`tenant_w15_NN`) with one product each; an
//!    in-process router whose `/n` counts the tenant's products, behind a `TenantLayer`
//!    (unknown tenants refused, 404) whose cache holds every tenant in memory
//!    (`TenantCache::every_tenant_in_memory`) over a store that counts its database
//!    lookups (`find` and `list`, each one query).
//! 2. Timed, four phases of [`PHASE`] each, in the order unknown, malformed, malformed,
//!    unknown: a flood at a steady [`FLOOD_RATE`] requests/s naming tenants that do not
//!    exist, each name new (`unknown`: valid names; `malformed`: names that are not schema
//!    names, refused with 400 before any lookup), and meanwhile one known tenant's request
//!    after another (round robin, [`PROBE_GAP`] apart), each timed.
//! 3. Reported: `flood_requests` (per unknown phase), `unknown_lookups` (the store's
//!    lookups during the unknown phases, per phase: the check allows 10),
//!    `known_under_unknown_p50_us`, `known_under_malformed_p50_us` (the median of the two
//!    phases' p50s each) and `ratio` (the first over the second: the check allows 1.10).

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use axum::{body::Body, extract::State, http::Request, routing::get, Router};
use serde_json::json;
use tenantry::{BoxFuture, Registry, SchemaName, TenantInfo, TenantStore};
use tenantry_axum::{TenantCache, TenantLayer, UnknownTenantPolicy};
use tower::ServiceExt;

use crate::{
    median,
    models::Product,
    round,
    stats::{ratio, Fields, Samples},
    Bench, Result,
};

/// Known tenants.
const KNOWN: usize = 20;
/// How long each phase floods.
const PHASE: Duration = Duration::from_secs(10);
/// Flood requests per second.
const FLOOD_RATE: u64 = 1_000;
/// The pause between two known tenants' requests.
const PROBE_GAP: Duration = Duration::from_millis(2);

/// A store over the bench's `tenant_w15_*` schemas that counts its database lookups.
struct CountingStore {
    registry: Registry,
    lookups: AtomicUsize,
}

impl TenantStore for CountingStore {
    fn find<'a>(
        &'a self,
        schema: &'a SchemaName,
    ) -> BoxFuture<'a, tenantry::Result<Option<TenantInfo>>> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            let known = is_w15(schema.as_str()) && self.registry.schema().exists(schema).await?;
            Ok(known.then(|| TenantInfo::active(schema.clone())))
        })
    }

    fn list(&self) -> BoxFuture<'_, tenantry::Result<Vec<TenantInfo>>> {
        Box::pin(async move {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            let schemas = self.registry.schema().list().await?;
            Ok(schemas
                .into_iter()
                .filter(|s| is_w15(s.as_str()))
                .map(TenantInfo::active)
                .collect())
        })
    }
}

fn is_w15(name: &str) -> bool {
    name.starts_with("tenant_w15_")
}

fn known(i: usize) -> Result<SchemaName> {
    Ok(SchemaName::parse(&format!("tenant_w15_{i:02}"))?)
}

/// A name no tenant has, different for every `i` (splitmix64, so that names look random).
fn unknown_name(i: u64, malformed: bool) -> String {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D1_049B_B133_111B);
    z ^= z >> 31;
    if malformed {
        format!("No Such {z:016x}!")
    } else {
        format!("ghost_{z:016x}")
    }
}

async fn count(State(registry): State<Registry>) -> String {
    match Product::query(&registry).count().await {
        Ok(n) => n.to_string(),
        Err(error) => format!("error: {error}"),
    }
}

async fn call(app: &Router, tenant: &str) -> u16 {
    let request = Request::get("/n")
        .header("tenant", tenant)
        .body(Body::empty())
        .expect("a request");
    match app.clone().oneshot(request).await {
        Ok(response) => response.status().as_u16(),
        Err(never) => match never {},
    }
}

impl Bench {
    /// W15: see the module documentation.
    pub(crate) async fn w15_flood(&mut self) -> Result<()> {
        for i in 0..KNOWN {
            let schema = known(i)?;
            self.create_tenant(&schema).await?;
            Product::query(&self.registry)
                .using(&schema)
                .create(Product::sample(format!("w15-{i}"), None, i))
                .await?;
        }
        let store = Arc::new(CountingStore {
            registry: self.registry.clone(),
            lookups: AtomicUsize::new(0),
        });
        let cache =
            TenantCache::with_store(self.registry.clone(), store.clone()).every_tenant_in_memory();
        let layer = TenantLayer::with_cache(cache).unknown_tenant(UnknownTenantPolicy::Reject);
        let app = Router::new()
            .route("/n", get(count))
            .layer(layer)
            .with_state(self.registry.clone());
        // Warm: the roster is loaded and every known tenant answered once.
        for i in 0..KNOWN {
            let status = call(&app, known(i)?.as_str()).await;
            if status != 200 {
                return Err(format!("W15: known tenant {i} answered {status}").into());
            }
        }
        let mut next_name = 0u64;
        let (mut unknown_p50s, mut malformed_p50s) = (Vec::new(), Vec::new());
        let mut lookups = Vec::new();
        let mut flood_requests = 0;
        for malformed in [false, true, true, false] {
            let before = store.lookups.load(Ordering::Relaxed);
            let (samples, sent) = phase(&app, malformed, &mut next_name).await?;
            let p50 = samples.percentile(0.50);
            if malformed {
                malformed_p50s.push(p50);
            } else {
                unknown_p50s.push(p50);
                lookups.push(store.lookups.load(Ordering::Relaxed) - before);
                flood_requests = sent;
            }
        }
        let under_unknown = median(&mut unknown_p50s);
        let under_malformed = median(&mut malformed_p50s);
        let mut extra = Fields::new();
        extra.insert("flood_requests", json!(flood_requests));
        extra.insert("flood_rate", json!(FLOOD_RATE));
        extra.insert("unknown_lookups", json!(lookups.iter().max()));
        extra.insert("known_under_unknown_p50_us", json!(round(under_unknown, 1)));
        extra.insert(
            "known_under_malformed_p50_us",
            json!(round(under_malformed, 1)),
        );
        extra.insert("ratio", json!(ratio(under_unknown, under_malformed)));
        self.emit("W15_flood", flood_requests, PHASE.as_secs_f64(), extra);
        Ok(())
    }
}

/// One phase: the flood and the known tenants' timed requests, side by side. Returns the
/// known requests' latencies and the flood's request count; a flood request answered
/// otherwise than refused (404 unknown, 400 malformed) is an error.
async fn phase(app: &Router, malformed: bool, next_name: &mut u64) -> Result<(Samples, usize)> {
    let expected = if malformed { 400 } else { 404 };
    let flood = {
        let app = app.clone();
        let first = *next_name;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / FLOOD_RATE));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let total = (FLOOD_RATE * PHASE.as_secs()) as usize;
            let mut requests = Vec::with_capacity(total);
            for i in 0..total as u64 {
                tick.tick().await;
                let (app, name) = (app.clone(), unknown_name(first + i, malformed));
                requests.push(tokio::spawn(async move { call(&app, &name).await }));
            }
            let mut wrong = 0;
            for request in requests {
                if request.await.unwrap_or(0) != expected {
                    wrong += 1;
                }
            }
            (total, wrong)
        })
    };
    *next_name += FLOOD_RATE * PHASE.as_secs();
    let mut samples = Samples::with_capacity(5_000);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < PHASE {
        let tenant = known(i % KNOWN)?;
        let t0 = Instant::now();
        let status = call(app, tenant.as_str()).await;
        samples.push(t0.elapsed());
        if status != 200 {
            return Err(format!("W15: known tenant answered {status} under the flood").into());
        }
        i += 1;
        tokio::time::sleep(PROBE_GAP).await;
    }
    let (sent, wrong) = flood.await.map_err(|e| format!("W15 flood: {e}"))?;
    if wrong > 0 {
        return Err(format!("W15: {wrong} flood requests were not refused with {expected}").into());
    }
    Ok((samples, sent))
}
