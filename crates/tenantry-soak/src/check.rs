//! The end of a run: every acknowledged write verified, every check a verdict.
//!
//! The rows are read twice: through a FRESH library handle (a new pool, explicit `using`:
//! nothing of the run's pool or task context) and through the demo's HTTP API. The library
//! read is the reference; the HTTP read must agree with it.

use std::{
    collections::BTreeSet,
    sync::{atomic::Ordering, Arc},
};

use serde_json::Value;
use tenantry::{contrib::Tenant as TenantRow, Registry, Result};
use tenantry_demo::models::Product;

use crate::{
    http::Client,
    world::{lock, Tenant, Via, World},
};

/// One check: its name, whether it passed, and the numbers behind it.
pub struct Verdict {
    pub name: &'static str,
    pub pass: bool,
    pub detail: String,
}

pub const CROSS_AT_END: &str = "cross-tenant rows at the end = 0";
pub const LOST_WRITES: &str = "lost acknowledged writes = 0";

/// The numbers a check found, for the self-test.
#[derive(Default)]
pub struct Found {
    pub cross_at_end: usize,
    pub lost: usize,
}

/// Runs every check.
pub async fn verify(world: &World, fresh: &Registry) -> Result<(Vec<Verdict>, Found)> {
    let mut verdicts = Vec::new();
    let stats = &world.stats;
    let tenants: Vec<Arc<Tenant>> = world.live();
    let mut client = Client::new(world.addr);

    let reads = stats.reads.load(Ordering::Relaxed);
    let cross_seen = stats.cross_seen.load(Ordering::Relaxed);
    verdicts.push(Verdict {
        name: "cross-tenant rows returned by reads during the run = 0",
        pass: cross_seen == 0,
        detail: format!("{cross_seen} in {reads} reads"),
    });
    let missing_seen = stats.missing_seen.load(Ordering::Relaxed);
    verdicts.push(Verdict {
        name: "acknowledged writes missing from later reads during the run = 0",
        pass: missing_seen == 0,
        detail: format!("{missing_seen} in {reads} reads"),
    });

    let (mut cross, mut lost, mut phantom, mut rows_total, mut acked_total) = (0, 0, 0, 0, 0);
    let (mut acked_http, mut acked_lib) = (0, 0);
    let mut disagree = Vec::new();
    let mut samples = Vec::new();
    for tenant in &tenants {
        let tag = tenant.tag();
        let rows: Vec<String> = Product::query(fresh)
            .using(&tenant.schema)
            .all()
            .await?
            .into_iter()
            .map(|p| p.into_inner().name)
            .collect();
        rows_total += rows.len();
        let names: BTreeSet<&str> = rows.iter().map(String::as_str).collect();
        {
            let log = tenant.log();
            acked_total += log.acked.len();
            for (name, via) in &log.acked {
                match via {
                    Via::Http => acked_http += 1,
                    Via::Library => acked_lib += 1,
                }
                if !names.contains(name.as_str()) {
                    lost += 1;
                    if samples.len() < 10 {
                        samples.push(format!("lost in {}: {name:?}", tenant.schema));
                    }
                }
            }
            let acked: BTreeSet<&str> = log.acked.iter().map(|(n, _)| n.as_str()).collect();
            for name in &rows {
                if !name.starts_with(&tag) {
                    cross += 1;
                    if samples.len() < 10 {
                        samples.push(format!("tenant {} holds {name:?}", tenant.schema));
                    }
                } else if !acked.contains(name.as_str()) && !log.unknown.contains(name) {
                    phantom += 1;
                    if samples.len() < 10 {
                        samples.push(format!(
                            "tenant {} holds {name:?}, never written",
                            tenant.schema
                        ));
                    }
                }
            }
        }
        match client.get("/products", Some(tenant.schema.as_str())).await {
            Ok((200, Value::Array(products))) => {
                let over_http: BTreeSet<&str> =
                    products.iter().filter_map(|p| p["name"].as_str()).collect();
                if over_http != names {
                    disagree.push(tenant.schema.to_string());
                }
            }
            Ok((status, _)) => disagree.push(format!("{} (HTTP {status})", tenant.schema)),
            Err(e) => disagree.push(format!("{} ({e})", tenant.schema)),
        }
    }
    verdicts.push(Verdict {
        name: CROSS_AT_END,
        pass: cross == 0,
        detail: format!("{cross} in {rows_total} rows of {} tenants", tenants.len()),
    });
    verdicts.push(Verdict {
        name: LOST_WRITES,
        pass: lost == 0,
        detail: format!(
            "{lost} of {acked_total} acknowledged ({acked_http} over HTTP, {acked_lib} through the library)"
        ),
    });
    verdicts.push(Verdict {
        name: "rows no request wrote = 0",
        pass: phantom == 0,
        detail: format!("{phantom}"),
    });
    verdicts.push(Verdict {
        name: "HTTP and library reads agree per tenant",
        pass: disagree.is_empty(),
        detail: if disagree.is_empty() {
            format!("{} of {}", tenants.len(), tenants.len())
        } else {
            format!("disagree: {}", disagree.join(", "))
        },
    });

    let shared = Product::query(fresh).count().await?;
    verdicts.push(Verdict {
        name: "rows in the shared schema = 0",
        pass: shared == 0,
        detail: format!("{shared}"),
    });

    // The tenant list: the `tenants` table over HTTP, and the schemas, both exactly the
    // live tenants (among this run's names).
    let live: BTreeSet<String> = tenants.iter().map(|t| t.schema.to_string()).collect();
    let listed: BTreeSet<String> = match client.get("/tenants", None).await {
        Ok((200, Value::Array(rows))) => rows
            .iter()
            .filter_map(|t| t["schema_name"].as_str())
            .filter(|s| s.starts_with(&world.prefix))
            .map(str::to_owned)
            .collect(),
        _ => BTreeSet::new(),
    };
    let rows: BTreeSet<String> = TenantRow::query(fresh)
        .all()
        .await?
        .into_iter()
        .map(|t| t.into_inner().schema_name)
        .filter(|s| s.starts_with(&world.prefix))
        .collect();
    let schemas: BTreeSet<String> = fresh
        .schema()
        .list()
        .await?
        .into_iter()
        .map(|s| s.to_string())
        .filter(|s| s.starts_with(&world.prefix))
        .collect();
    let lost_tenants = world.tenants().len() - tenants.len();
    verdicts.push(Verdict {
        name: "tenants listed (HTTP, tenants table, schemas) = the live ones",
        pass: listed == live && rows == live && schemas == live,
        detail: format!(
            "{} live; HTTP lists {}, the table {}, the schemas {}",
            live.len(),
            listed.len(),
            rows.len(),
            schemas.len()
        ),
    });
    verdicts.push(Verdict {
        name: "tenants lost to a failed re-creation = 0",
        pass: lost_tenants == 0,
        detail: format!("{lost_tenants}"),
    });

    let requests = stats.requests.load(Ordering::Relaxed);
    let errors = lock(&stats.errors).clone();
    let errored: u64 = errors.values().sum();
    verdicts.push(Verdict {
        name: "requests errored = 0",
        pass: errored == 0,
        detail: format!(
            "{errored} of {requests}{}",
            if errors.is_empty() {
                String::new()
            } else {
                format!(
                    "; kinds: {}",
                    errors
                        .iter()
                        .map(|(k, n)| format!("{k} × {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        ),
    });

    for sample in samples {
        lock(&stats.samples).push(sample);
    }
    Ok((
        verdicts,
        Found {
            cross_at_end: cross,
            lost,
        },
    ))
}
