//! The run's state: the tenants, the log of acknowledged writes, the counters, and the
//! operations the workers and the churn task perform.
//!
//! Every product a run writes is named `<schema>:g<generation>:<writer>:<seq>:<via>`: the
//! tenant's tag comes first, so a row found in tenant B whose name starts with `A:` crossed
//! tenants. Each tenant has a gate (an async read/write lock): requests hold it shared, a
//! drop-and-recreate holds it exclusively, so the log of a tenant always matches one
//! generation of its schema.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard, RwLock,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};
use tenantry::{contrib, with_tenant, Error, Registry, SchemaName};
use tenantry_demo::models::Product;

use crate::http::Client;

/// Any single request longer than this counts as a hang.
pub const REQUEST_BOUND: Duration = Duration::from_secs(20);

/// How an acknowledged write was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Http,
    Library,
}

/// What a tenant must hold: the writes acknowledged since it was (re)created, and the
/// writes whose outcome is unknown (they returned an error; they may have committed).
#[derive(Default)]
pub struct Log {
    pub generation: u32,
    pub acked: Vec<(String, Via)>,
    pub unknown: BTreeSet<String>,
}

pub struct Tenant {
    pub schema: SchemaName,
    /// Shared by requests, exclusive for a drop-and-recreate.
    pub gate: tokio::sync::RwLock<()>,
    pub log: Mutex<Log>,
    /// Set when a re-creation failed for good: the tenant is left out from then on.
    pub lost: AtomicBool,
}

impl Tenant {
    fn new(schema: SchemaName) -> Arc<Tenant> {
        Arc::new(Tenant {
            schema,
            gate: tokio::sync::RwLock::new(()),
            log: Mutex::new(Log::default()),
            lost: AtomicBool::new(false),
        })
    }

    /// The tag every row of this tenant starts with.
    pub fn tag(&self) -> String {
        format!("{}:", self.schema)
    }

    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counters of the run.
#[derive(Default)]
pub struct Stats {
    pub ops: Mutex<BTreeMap<&'static str, u64>>,
    pub errors: Mutex<BTreeMap<String, u64>>,
    pub requests: AtomicU64,
    pub reads: AtomicU64,
    /// Rows of another tenant returned by reads during the run.
    pub cross_seen: AtomicU64,
    /// Acknowledged writes missing from a read that started after they were acknowledged.
    pub missing_seen: AtomicU64,
    pub samples: Mutex<Vec<String>>,
    pub drops: AtomicU64,
    pub recreated: AtomicU64,
    pub provisioned: AtomicU64,
}

impl Stats {
    fn op(&self, name: &'static str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *lock(&self.ops).entry(name).or_default() += 1;
    }

    pub fn error(&self, kind: String) {
        *lock(&self.errors).entry(kind).or_default() += 1;
    }

    fn sample(&self, text: String) {
        let mut samples = lock(&self.samples);
        if samples.len() < 20 {
            samples.push(text);
        }
    }
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A small deterministic generator (xorshift64*) for the operation mix.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The kind of a library error, for the error counts (no tenant data).
pub fn kind(error: &Error) -> String {
    match error {
        Error::Database(sqlx_error) => {
            let text = format!("{sqlx_error:?}");
            let head: String = text.chars().take_while(|c| c.is_alphanumeric()).collect();
            match error.database_code() {
                Some(code) => format!("Database({head} {code})"),
                None => format!("Database({head})"),
            }
        }
        other => format!("{other:?}")
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect(),
    }
}

pub struct World {
    pub registry: Registry,
    pub addr: SocketAddr,
    pub prefix: String,
    pub tenants: RwLock<Vec<Arc<Tenant>>>,
    pub max_tenants: usize,
    next_tenant: AtomicUsize,
    pub stats: Stats,
}

/// The operations of a worker, with their weights.
#[derive(Clone, Copy, Debug)]
enum Op {
    HttpRead,
    LibRead,
    LibReadUsing,
    HttpWrite,
    LibWrite,
    LibBulk,
}

const MIX: [(Op, usize); 6] = [
    (Op::HttpRead, 30),
    (Op::LibRead, 15),
    (Op::LibReadUsing, 10),
    (Op::HttpWrite, 20),
    (Op::LibWrite, 17),
    (Op::LibBulk, 8),
];

impl World {
    pub fn new(registry: Registry, addr: SocketAddr, prefix: String, max_tenants: usize) -> World {
        World {
            registry,
            addr,
            prefix,
            tenants: RwLock::new(Vec::new()),
            max_tenants,
            next_tenant: AtomicUsize::new(0),
            stats: Stats::default(),
        }
    }

    pub fn tenants(&self) -> Vec<Arc<Tenant>> {
        self.tenants
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn live(&self) -> Vec<Arc<Tenant>> {
        self.tenants()
            .into_iter()
            .filter(|t| !t.lost.load(Ordering::Relaxed))
            .collect()
    }

    fn next_schema(&self) -> Result<SchemaName, Error> {
        let n = self.next_tenant.fetch_add(1, Ordering::Relaxed);
        SchemaName::parse(&format!("{}t{n:03}", self.prefix))
    }

    /// Provisions a new tenant, through the HTTP API or the library, and adds it.
    pub async fn provision(&self, client: &mut Client, via: Via) -> Result<(), String> {
        let schema = self
            .next_schema()
            .map_err(|e| format!("schema name: {e}"))?;
        self.create(client, &schema, via).await?;
        self.stats.provisioned.fetch_add(1, Ordering::Relaxed);
        self.tenants
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Tenant::new(schema));
        Ok(())
    }

    /// Creates tenant `schema` (row, schema and tables).
    async fn create(
        &self,
        client: &mut Client,
        schema: &SchemaName,
        via: Via,
    ) -> Result<(), String> {
        let display = format!("Soak {schema}");
        match via {
            Via::Http => {
                self.stats.op("http POST /tenants");
                let body = json!({ "schema_name": schema.as_str(), "tenant_name": display });
                match tokio::time::timeout(REQUEST_BOUND, client.post("/tenants", None, body)).await
                {
                    Ok(Ok((201, _))) => Ok(()),
                    Ok(Ok((status, body))) => {
                        let kind = format!("http POST /tenants {status}");
                        self.stats.error(kind.clone());
                        Err(format!("{kind}: {body}"))
                    }
                    Ok(Err(e)) => {
                        self.stats.error("http transport".into());
                        Err(e)
                    }
                    Err(_) => {
                        self.stats.error("http POST /tenants hang".into());
                        Err("hang".into())
                    }
                }
            }
            Via::Library => {
                self.stats.op("lib create_tenant");
                let created = tokio::time::timeout(
                    REQUEST_BOUND,
                    contrib::create_tenant(&self.registry, schema, &display),
                )
                .await;
                match created {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => {
                        self.stats.error(format!("create_tenant {}", kind(&e)));
                        Err(e.to_string())
                    }
                    Err(_) => {
                        self.stats.error("create_tenant hang".into());
                        Err("hang".into())
                    }
                }
            }
        }
    }

    /// Drops `tenant` (row and data, through the library) and creates it again (HTTP or
    /// library, alternately), holding its gate: its log starts over.
    pub async fn drop_and_recreate(&self, client: &mut Client, tenant: &Tenant, via: Via) {
        let _exclusive = tenant.gate.write().await;
        if tenant.lost.load(Ordering::Relaxed) {
            return;
        }
        self.stats.op("lib drop_tenant");
        let dropped = tokio::time::timeout(
            REQUEST_BOUND,
            contrib::drop_tenant(&self.registry, &tenant.schema, true),
        )
        .await;
        match dropped {
            Ok(Ok(_)) => {
                self.stats.drops.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => self.stats.error(format!("drop_tenant {}", kind(&e))),
            Err(_) => self.stats.error("drop_tenant hang".into()),
        }
        for attempt in 0..3 {
            if attempt > 0 {
                // Whatever is left of it (a schema without a row) goes first.
                let _ = tenantry::drop_schema(&self.registry, &tenant.schema, true, true).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if self.create(client, &tenant.schema, via).await.is_ok() {
                let mut log = tenant.log();
                log.generation += 1;
                log.acked.clear();
                log.unknown.clear();
                self.stats.recreated.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        tenant.lost.store(true, Ordering::Relaxed);
        self.stats.sample(format!(
            "tenant {} could not be created again after its drop; left out",
            tenant.schema
        ));
    }

    /// One worker: random operations on random tenants until `deadline`.
    pub async fn worker(&self, id: usize, deadline: Instant, mut rng: Rng) {
        let mut client = Client::new(self.addr);
        let mut seq = 0u64;
        let total: usize = MIX.iter().map(|(_, w)| w).sum();
        while Instant::now() < deadline {
            let tenants = self.live();
            if tenants.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let tenant = &tenants[rng.below(tenants.len())];
            let mut pick = rng.below(total);
            let op = MIX
                .iter()
                .find(|(_, w)| {
                    if pick < *w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .map_or(Op::HttpRead, |(op, _)| *op);
            // A drop-and-recreate holds the gate; never wait for it past the deadline.
            let Ok(_shared) = tokio::time::timeout_at(deadline.into(), tenant.gate.read()).await
            else {
                break;
            };
            if tenant.lost.load(Ordering::Relaxed) {
                continue;
            }
            seq += 1;
            match op {
                Op::HttpRead => self.http_read(&mut client, tenant).await,
                Op::LibRead => self.lib_read(tenant, false).await,
                Op::LibReadUsing => self.lib_read(tenant, true).await,
                Op::HttpWrite => self.http_write(&mut client, tenant, id, seq).await,
                Op::LibWrite => self.lib_write(tenant, id, seq, 1).await,
                Op::LibBulk => self.lib_write(tenant, id, seq, 3).await,
            }
        }
    }

    /// Checks the names a read of `tenant` returned: all its own, and none of the first
    /// `acked_before` acknowledged writes missing.
    fn check_read(&self, tenant: &Tenant, names: &[String], acked_before: usize, via: &str) {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let tag = tenant.tag();
        let foreign: Vec<&String> = names.iter().filter(|n| !n.starts_with(&tag)).collect();
        if !foreign.is_empty() {
            self.stats
                .cross_seen
                .fetch_add(foreign.len() as u64, Ordering::Relaxed);
            self.stats.sample(format!(
                "a {via} read of tenant {} returned {} foreign row(s), e.g. {:?}",
                tenant.schema,
                foreign.len(),
                foreign[0]
            ));
        }
        let seen: HashSet<&str> = names.iter().map(String::as_str).collect();
        let log = tenant.log();
        let missing: Vec<&str> = log
            .acked
            .iter()
            .take(acked_before)
            .map(|(n, _)| n.as_str())
            .filter(|n| !seen.contains(n))
            .collect();
        if !missing.is_empty() {
            self.stats
                .missing_seen
                .fetch_add(missing.len() as u64, Ordering::Relaxed);
            self.stats.sample(format!(
                "a {via} read of tenant {} missed {} acknowledged write(s), e.g. {:?}",
                tenant.schema,
                missing.len(),
                missing[0]
            ));
        }
    }

    async fn http_read(&self, client: &mut Client, tenant: &Tenant) {
        self.stats.op("http GET /products");
        let acked_before = tenant.log().acked.len();
        let response = tokio::time::timeout(
            REQUEST_BOUND,
            client.get("/products", Some(tenant.schema.as_str())),
        )
        .await;
        match response {
            Ok(Ok((200, Value::Array(products)))) => {
                let names: Vec<String> = products
                    .iter()
                    .map(|p| p["name"].as_str().unwrap_or("<no name>").to_owned())
                    .collect();
                self.check_read(tenant, &names, acked_before, "HTTP");
            }
            Ok(Ok((status, _))) => self.stats.error(format!("http GET /products {status}")),
            Ok(Err(_)) => self.stats.error("http transport".into()),
            Err(_) => self.stats.error("http GET /products hang".into()),
        }
    }

    async fn lib_read(&self, tenant: &Tenant, using: bool) {
        self.stats.op(if using {
            "lib all (using)"
        } else {
            "lib all (with_tenant)"
        });
        let acked_before = tenant.log().acked.len();
        let read = async {
            if using {
                Product::query(&self.registry)
                    .using(&tenant.schema)
                    .all()
                    .await
            } else {
                with_tenant(
                    Some(tenant.schema.clone()),
                    Product::query(&self.registry).all(),
                )
                .await
            }
        };
        match tokio::time::timeout(REQUEST_BOUND, read).await {
            Ok(Ok(rows)) => {
                let names: Vec<String> = rows.into_iter().map(|p| p.into_inner().name).collect();
                self.check_read(tenant, &names, acked_before, "library");
            }
            Ok(Err(e)) => self.stats.error(format!("lib read {}", kind(&e))),
            Err(_) => self.stats.error("lib read hang".into()),
        }
    }

    fn name(&self, tenant: &Tenant, writer: usize, seq: u64, k: usize, via: &str) -> String {
        let generation = tenant.log().generation;
        format!("{}g{generation}:w{writer}:{seq}.{k}:{via}", tenant.tag())
    }

    async fn http_write(&self, client: &mut Client, tenant: &Tenant, writer: usize, seq: u64) {
        self.stats.op("http POST /products");
        let name = self.name(tenant, writer, seq, 0, "http");
        let response = tokio::time::timeout(
            REQUEST_BOUND,
            client.post(
                "/products",
                Some(tenant.schema.as_str()),
                json!({ "name": name }),
            ),
        )
        .await;
        let mut log_unknown = true;
        match response {
            Ok(Ok((201, body))) if body["name"] == name.as_str() => {
                tenant.log().acked.push((name.clone(), Via::Http));
                log_unknown = false;
            }
            Ok(Ok((201, body))) => {
                self.stats.sample(format!(
                    "POST /products in tenant {} for {name:?} answered {body}",
                    tenant.schema
                ));
                self.stats
                    .error("http POST /products 201 with another row".into());
            }
            Ok(Ok((status, _))) => self.stats.error(format!("http POST /products {status}")),
            Ok(Err(_)) => self.stats.error("http transport".into()),
            Err(_) => self.stats.error("http POST /products hang".into()),
        }
        if log_unknown {
            tenant.log().unknown.insert(name);
        }
    }

    async fn lib_write(&self, tenant: &Tenant, writer: usize, seq: u64, rows: usize) {
        let names: Vec<String> = (0..rows)
            .map(|k| self.name(tenant, writer, seq, k, "lib"))
            .collect();
        let products = names.iter().map(|name| Product {
            id: 0,
            name: name.clone(),
            user: None,
            price: tenantry::Decimal::ZERO,
            stock: 0,
        });
        let write = async {
            if rows == 1 {
                self.stats.op("lib create (with_tenant)");
                let product = products.into_iter().next().map(|p| {
                    with_tenant(
                        Some(tenant.schema.clone()),
                        Product::query(&self.registry).create(p),
                    )
                });
                match product {
                    Some(create) => create.await.map(|p| vec![p.into_inner().name]),
                    None => Ok(vec![]),
                }
            } else {
                self.stats.op("lib bulk_create (using)");
                Product::query(&self.registry)
                    .using(&tenant.schema)
                    .bulk_create(products)
                    .await
                    .map(|created| created.into_iter().map(|p| p.into_inner().name).collect())
            }
        };
        match tokio::time::timeout(REQUEST_BOUND, write).await {
            Ok(Ok(created)) if created == names => {
                let mut log = tenant.log();
                log.acked
                    .extend(names.into_iter().map(|name| (name, Via::Library)));
            }
            Ok(Ok(created)) => {
                self.stats.sample(format!(
                    "a library write of {names:?} in tenant {} returned {created:?}",
                    tenant.schema
                ));
                self.stats.error("lib write returned other rows".into());
                tenant.log().unknown.extend(names);
            }
            Ok(Err(e)) => {
                self.stats.error(format!("lib write {}", kind(&e)));
                tenant.log().unknown.extend(names);
            }
            Err(_) => {
                self.stats.error("lib write hang".into());
                tenant.log().unknown.extend(names);
            }
        }
    }
}
