//! `tenantry-bench`: runs the workloads W1..W16 of `shared/bench/WORKLOADS.md` against one
//! database URL and prints one JSON object per workload on stdout (diagnostics on stderr).
//!
//! ```text
//! cargo run --release -p tenantry-bench -- --database-url URL [--quick] [--tenants N]
//!     [--insert-tenants N] [--inserts-per-tenant N] [--bulk N] [--gets N] [--filters N]
//!     [--concurrent N] [--scale 1,100,1000] [--aggregates N] [--aggregate-rows N]
//!     [--prefetches N] [--stream-rows N] [--upserts N] [--upsert-batch N] [--only W4,W7]
//!     [--migrate-tenants 1000,10000] [--migrate-concurrency N]
//! ```
//!
//! The default run (no `--only`) is W1..W7, W9..W11, W13 and W14. W8 (migrations over a fleet, see
//! `w8.rs`) is not part of it: it runs only with `--only W8` (alone, or before the others
//! when `--only` names some of them too), on a database of its own, since its runner
//! migrates every schema of the database. Nor is W12 (a million rows streamed, see
//! `w12.rs`): it runs only with `--only W12`, after the others.
//!
//! For W2, W3, W4 and W5 the same statements are also issued through bare sqlx on the same
//! pool (hand-written SQL, prepared once per connection by sqlx's statement cache), and W4
//! once more on one connection held for the whole loop. W9 (a lookup across the foreign key
//! with `select_related`), W10 (count and sum per owner) and W11 (`prefetch_related`), in
//! `later.rs`, are timed the same way against the same SQL (checked equal to the text the
//! ORM renders before the loop), on the pool and, on PostgreSQL and MariaDB, on one held
//! connection; W12 against sqlx's `fetch` of one `SELECT … ORDER BY id` on one connection.
//! W13 (upserts in batches, half conflicting) and W14 (`stock = stock - 1` by key), in
//! `writes.rs`, against the same SQL on the pool (W14 also on a held connection).
//! The binary creates the schemas `tenant_001`, … (and `tenant_bulk`, `tenant_bulk_raw`,
//! `tenant_w10`, `tenant_w11`, `tenant_w12`, `tenant_w13`) and drops them again at the end; a leftover of
//! an interrupted run is dropped at the start. W8 makes and drops its own `tenant_w8_*`
//! schemas.

mod args;
mod later;
mod models;
mod raw;
mod stats;
mod w12;
mod w15;
mod w16;
mod w8;
mod writes;

use std::{collections::HashMap, time::Instant};

use serde_json::json;
use tenantry::{with_tenant, Backend, Database, Registry, SchemaName};

use crate::{
    args::Args,
    models::{Product, User},
    raw::Raw,
    stats::{ops_per_sec, ratio, Fields, Samples},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    if let Err(error) = runtime.block_on(run(args)) {
        eprintln!("tenantry-bench: {error}");
        std::process::exit(1);
    }
}

fn tenant(i: usize) -> SchemaName {
    SchemaName::parse(&format!("tenant_{i:03}")).expect("a valid schema name")
}

fn is_bench_schema(name: &str) -> bool {
    name.strip_prefix("tenant_").is_some_and(|rest| {
        rest.bytes().all(|b| b.is_ascii_digit())
            || rest.starts_with("bulk")
            || rest.starts_with("w8_")
            || rest.starts_with("w15_")
            || matches!(rest, "w10" | "w11" | "w12" | "w13")
    })
}

/// The state the workloads pass on: the product keys of every tenant that has products.
struct Bench {
    args: Args,
    registry: Registry,
    database: Database,
    backend: Backend,
    raw: Raw,
    /// Product keys per tenant number.
    products: HashMap<usize, Vec<i64>>,
    /// Every schema this run created.
    created: Vec<SchemaName>,
}

async fn run(args: Args) -> Result<()> {
    let database = Database::connect(&args.database_url).await?;
    let backend = database.backend();
    let registry = Registry::new(database.clone())
        .register::<User>()
        .register::<Product>();
    eprintln!(
        "tenantry-bench: backend {}, sizes {:?}",
        backend.name(),
        args
    );
    let raw = Raw::new(&database);
    let mut bench = Bench {
        args,
        registry,
        database,
        backend,
        raw,
        products: HashMap::new(),
        created: Vec::new(),
    };
    bench.drop_leftovers().await?;
    let result = bench.workloads().await;
    let cleanup = bench.cleanup().await;
    bench.database.disconnect().await;
    result.and(cleanup)
}

impl Bench {
    fn emit(&self, workload: &str, ops: usize, seconds: f64, extra: Fields) {
        let mut line = Fields::new();
        line.insert("workload", json!(workload));
        line.insert("backend", json!(self.backend.name()));
        line.insert("ops", json!(ops));
        line.insert("seconds", json!(round(seconds, 4)));
        line.insert("ops_per_sec", json!(round(ops_per_sec(ops, seconds), 1)));
        line.0.extend(extra.0);
        println!("{line}");
    }

    /// The connections the pool holds now (after W6 it is usually full).
    fn pool_size(&self) -> usize {
        match &self.raw {
            Raw::Postgres(db) | Raw::MySql(db) => db.pool_status().size.max(1),
            Raw::Sqlite(_) => 1,
        }
    }

    fn wants(&self, workload: &str) -> bool {
        self.args.wants(workload)
    }

    async fn workloads(&mut self) -> Result<()> {
        // First, while the database holds no other schema: W8's runner migrates them all.
        if self.args.wants_w8() {
            self.w8_migrate().await?;
        }
        if self.args.runs_base() {
            self.w1_provision().await?;
            self.w2_insert().await?;
        }
        if self.wants("W3") {
            self.w3_bulk().await?;
        }
        if self.wants("W4") {
            self.w4_get().await?;
        }
        if self.wants("W5") {
            self.w5_filter().await?;
        }
        if self.wants("W6") {
            self.w6_isolation().await?;
        }
        if self.wants("W7") {
            self.w7_scale().await?;
        }
        if self.wants("W9") {
            self.w9_join().await?;
        }
        if self.wants("W10") {
            self.w10_aggregate().await?;
        }
        if self.wants("W11") {
            self.w11_prefetch().await?;
        }
        if self.wants("W13") {
            self.w13_upsert().await?;
        }
        if self.wants("W14") {
            self.w14_update().await?;
        }
        if self.wants("W15") {
            self.w15_flood().await?;
        }
        if self.wants("W16") {
            self.w16_fault().await?;
        }
        // Last: the others' timings should not follow a million-row insert.
        if self.wants("W12") {
            self.w12_stream().await?;
        }
        Ok(())
    }

    async fn create_tenant(&mut self, schema: &SchemaName) -> Result<()> {
        self.registry
            .schema()
            .create(schema, None, false, true)
            .await?;
        self.created.push(schema.clone());
        Ok(())
    }

    /// Drops what an interrupted earlier run left behind.
    async fn drop_leftovers(&self) -> Result<()> {
        let leftovers: Vec<SchemaName> = self
            .registry
            .schema()
            .list()
            .await?
            .into_iter()
            .filter(|s| is_bench_schema(s.as_str()))
            .collect();
        if !leftovers.is_empty() {
            eprintln!(
                "tenantry-bench: dropping {} leftover schemas",
                leftovers.len()
            );
        }
        for schema in leftovers {
            self.registry.schema().drop(&schema, true, true).await?;
        }
        Ok(())
    }

    async fn cleanup(&mut self) -> Result<()> {
        let started = Instant::now();
        let count = self.created.len();
        for schema in std::mem::take(&mut self.created) {
            self.registry.schema().drop(&schema, true, true).await?;
        }
        eprintln!(
            "tenantry-bench: dropped {count} schemas in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// W1: create `--tenants` schemas with both tables.
    async fn w1_provision(&mut self) -> Result<()> {
        let n = self.args.tenants.max(self.args.insert_tenants);
        let started = Instant::now();
        for i in 1..=n {
            self.create_tenant(&tenant(i)).await?;
        }
        let seconds = started.elapsed().as_secs_f64();
        self.emit("W1_provision", n, seconds, Fields::new());
        Ok(())
    }

    /// W2: per insert tenant, one owner and `--inserts-per-tenant` products one by one.
    ///
    /// Each ORM insert is followed by the same insert through bare sqlx, so that both see the
    /// same machine (other load, table size, WAL); the raw rows are deleted afterwards.
    async fn w2_insert(&mut self) -> Result<()> {
        let tenants = self.args.insert_tenants;
        let per = self.args.inserts_per_tenant;
        let mut samples = Samples::with_capacity(tenants * per);
        let mut raw_samples = Samples::with_capacity(tenants * per);
        let mut owner_seconds = 0.0;
        for t in 1..=tenants {
            let schema = tenant(t);
            let sql = self.raw.insert_sql(&schema);
            let op = Instant::now();
            let owner = User::query(&self.registry)
                .using(&schema)
                .create(User {
                    id: 0,
                    name: format!("owner-{t}"),
                })
                .await?;
            owner_seconds += op.elapsed().as_secs_f64();
            let mut keys = Vec::with_capacity(per);
            let mut raw_keys = Vec::with_capacity(per);
            for i in 0..per {
                let op = Instant::now();
                let product = Product::query(&self.registry)
                    .using(&schema)
                    .create(Product::sample(format!("product-{i}"), Some(owner.id), i))
                    .await?;
                samples.push(op.elapsed());
                keys.push(product.id);

                let op = Instant::now();
                let key = self
                    .raw
                    .insert(&schema, &sql, format!("product-{i}"), owner.id, i)
                    .await?;
                raw_samples.push(op.elapsed());
                raw_keys.push(key);
            }
            let removed = Product::query(&self.registry)
                .using(&schema)
                .filter(Product::id().is_in(raw_keys))
                .delete()
                .await?;
            assert_eq!(removed as usize, per);
            self.products.insert(t, keys);
        }
        let seconds = samples.total() + owner_seconds;
        let ops = tenants * (per + 1);
        let mut extra = Fields::new();
        extra.insert(
            "raw_ops_per_sec",
            json!(round(ops_per_sec(tenants * per, raw_samples.total()), 1)),
        );
        // Per product insert: the owners have no raw counterpart.
        extra.insert("ratio", json!(ratio(samples.total(), raw_samples.total())));
        samples.report(&mut extra, "");
        raw_samples.report(&mut extra, "raw_");
        extra.insert(
            "p50_ratio",
            json!(ratio(samples.percentile(0.5), raw_samples.percentile(0.5))),
        );
        extra.insert("tenants", json!(tenants));
        self.emit("W2_insert", ops, seconds, extra);
        Ok(())
    }

    /// W3: `bulk_create` into a fresh tenant, and a hand-written multi-row INSERT into
    /// another, alternately, three times each; the median of each is reported.
    async fn w3_bulk(&mut self) -> Result<()> {
        let n = self.args.bulk;
        let orm_schema = SchemaName::parse("tenant_bulk")?;
        let raw_schema = SchemaName::parse("tenant_bulk_raw")?;
        self.create_tenant(&orm_schema).await?;
        self.create_tenant(&raw_schema).await?;
        let names: Vec<String> = (0..n).map(|i| format!("product-{i}")).collect();
        let (mut orm_times, mut raw_times) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let models: Vec<Product> = names
                .iter()
                .enumerate()
                .map(|(i, name)| Product::sample(name.clone(), None, i))
                .collect();
            let started = Instant::now();
            let stored = Product::query(&self.registry)
                .using(&orm_schema)
                .bulk_create(models)
                .await?;
            orm_times.push(started.elapsed().as_secs_f64());
            assert_eq!(stored.len(), n);

            let names = names.clone();
            let started = Instant::now();
            let inserted = self.raw.bulk_insert(&raw_schema, &names).await?;
            raw_times.push(started.elapsed().as_secs_f64());
            assert_eq!(inserted, n);
        }
        let (seconds, raw_seconds) = (median(&mut orm_times), median(&mut raw_times));
        let mut extra = Fields::new();
        extra.insert(
            "raw_ops_per_sec",
            json!(round(ops_per_sec(n, raw_seconds), 1)),
        );
        extra.insert("ratio", json!(ratio(seconds, raw_seconds)));
        extra.insert("reps", json!(3));
        self.emit("W3_bulk", n, seconds, extra);
        Ok(())
    }

    /// The (tenant, key) of the `i`-th point read over `tenants`.
    fn nth_key(&self, tenants: &[usize], i: usize) -> (usize, i64) {
        let t = tenants[i % tenants.len()];
        let keys = &self.products[&t];
        (t, keys[(i / tenants.len() * 7919 + i) % keys.len()])
    }

    /// W4: point reads through the ORM, bare sqlx on the pool, and a held connection, in
    /// turns of [`HELD_BLOCK`] reads.
    ///
    /// The held connection is taken from the pool for a turn and handed back after it, so
    /// that it is the connection the ORM and the pool's path use too. Held for the whole
    /// loop it was a second server process, doing a third of the reads against the
    /// other's two thirds, and on a 2-vCPU VM the kernel ran the busier process on the
    /// other vCPU from the bench and the held one on the bench's: 60 µs against 25 µs a
    /// round trip (`held_ratio` 1.3–1.8). With the server's processes and the bench pinned
    /// to one vCPU all three paths took 25 µs, pinned to different vCPUs all three 60 µs.
    async fn w4_get(&mut self) -> Result<()> {
        let n = self.args.gets;
        let tenants: Vec<usize> = (1..=self.args.insert_tenants).collect();
        let schemas: HashMap<usize, SchemaName> = tenants.iter().map(|&t| (t, tenant(t))).collect();
        let sql: HashMap<usize, String> = tenants
            .iter()
            .map(|&t| (t, self.raw.get_sql(&schemas[&t])))
            .collect();
        let warmup = (tenants.len() * 20).min(n);
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        let mut held_samples = Samples::with_capacity(n);
        let (total, mut from) = (warmup + n, 0);
        while from < total {
            let block = from..(from + HELD_BLOCK).min(total);
            // The three take turns at going first: the first read of a row pays for the
            // caches the next two find warm.
            for turn in 0..3 {
                match (turn + from / HELD_BLOCK) % 3 {
                    0 => {
                        for i in block.clone() {
                            let (t, key) = self.nth_key(&tenants, i);
                            let op = Instant::now();
                            let product = Product::query(&self.registry)
                                .using(&schemas[&t])
                                .get_pk(key)
                                .await?;
                            if i >= warmup {
                                orm_samples.push(op.elapsed());
                            }
                            assert_eq!(product.id, key);
                        }
                    }
                    1 => {
                        for i in block.clone() {
                            let (t, key) = self.nth_key(&tenants, i);
                            let op = Instant::now();
                            let product = self.raw.get(&schemas[&t], &sql[&t], key).await?;
                            if i >= warmup {
                                raw_samples.push(op.elapsed());
                            }
                            assert_eq!(product.id, key);
                        }
                    }
                    _ => {
                        // The pool hands out its most recently used connection: the one
                        // the two other paths use, so all three talk to one server process.
                        let Some(mut held) = self.raw.hold().await? else {
                            continue;
                        };
                        for i in block.clone() {
                            let (t, key) = self.nth_key(&tenants, i);
                            let op = Instant::now();
                            held.get(&sql[&t], key).await?;
                            if i >= warmup {
                                held_samples.push(op.elapsed());
                            }
                        }
                        held.release();
                    }
                }
            }
            from = block.end;
        }

        let seconds = orm_samples.total();
        let mut extra = Fields::new();
        extra.insert(
            "raw_ops_per_sec",
            json!(round(ops_per_sec(n, raw_samples.total()), 1)),
        );
        extra.insert("ratio", json!(ratio(seconds, raw_samples.total())));
        let has_held = !held_samples.is_empty();
        if has_held {
            extra.insert(
                "held_ops_per_sec",
                json!(round(ops_per_sec(n, held_samples.total()), 1)),
            );
            extra.insert("held_ratio", json!(ratio(seconds, held_samples.total())));
        }
        orm_samples.report(&mut extra, "");
        raw_samples.report(&mut extra, "raw_");
        extra.insert(
            "p50_ratio",
            json!(ratio(
                orm_samples.percentile(0.5),
                raw_samples.percentile(0.5)
            )),
        );
        if has_held {
            held_samples.report(&mut extra, "held_");
        }
        self.emit("W4_get", n, seconds, extra);
        Ok(())
    }

    /// W5: `icontains("7")` lists, round-robin over the insert tenants, ORM and bare sqlx
    /// interleaved query by query.
    async fn w5_filter(&mut self) -> Result<()> {
        let n = self.args.filters;
        let tenants: Vec<SchemaName> = (1..=self.args.insert_tenants).map(tenant).collect();
        let sql: Vec<String> = tenants.iter().map(|s| self.raw.filter_sql(s)).collect();
        let warmup = tenants.len().min(n);
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        let (mut rows, mut raw_rows) = (0, 0);
        for i in 0..warmup + n {
            let timed = i >= warmup;
            let k = i % tenants.len();
            let op = Instant::now();
            let products = Product::query(&self.registry)
                .using(&tenants[k])
                .filter(Product::name().icontains("7"))
                .all()
                .await?;
            if timed {
                orm_samples.push(op.elapsed());
                rows += products.len();
            }
            drop(products);

            let op = Instant::now();
            let products = self.raw.filter(&tenants[k], &sql[k], "%7%").await?;
            if timed {
                raw_samples.push(op.elapsed());
                raw_rows += products.len();
            }
        }
        assert_eq!(rows, raw_rows);

        let seconds = orm_samples.total();
        let mut extra = Fields::new();
        extra.insert(
            "raw_ops_per_sec",
            json!(round(ops_per_sec(n, raw_samples.total()), 1)),
        );
        extra.insert("ratio", json!(ratio(seconds, raw_samples.total())));
        orm_samples.report(&mut extra, "");
        raw_samples.report(&mut extra, "raw_");
        extra.insert(
            "p50_ratio",
            json!(ratio(
                orm_samples.percentile(0.5),
                raw_samples.percentile(0.5)
            )),
        );
        extra.insert("rows_returned", json!(rows / n.max(1)));
        self.emit("W5_filter", n, seconds, extra);
        Ok(())
    }

    /// W6: `--concurrent` tasks at once, task j in tenant j mod 50's scope, each counting.
    async fn w6_isolation(&mut self) -> Result<()> {
        let tenants = self.args.tenants.max(self.args.insert_tenants).min(50);
        // Give tenant k k more products, so that every tenant's count is distinct.
        let mut expected = HashMap::new();
        for k in 1..=tenants {
            let extra: Vec<Product> = (0..k)
                .map(|i| Product::sample(format!("w6-{i}"), None, i))
                .collect();
            Product::query(&self.registry)
                .using(&tenant(k))
                .bulk_create(extra)
                .await?;
            let count = Product::query(&self.registry)
                .using(&tenant(k))
                .count()
                .await?;
            expected.insert(k, count);
        }
        let mut counts: Vec<u64> = expected.values().copied().collect();
        counts.sort_unstable();
        counts.dedup();
        assert_eq!(counts.len(), tenants, "tenant counts must be distinct");

        let n = self.args.concurrent;
        let started = Instant::now();
        let mut handles = Vec::with_capacity(n);
        for j in 0..n {
            let k = j % tenants + 1;
            let registry = self.registry.clone();
            handles.push(tokio::spawn(with_tenant(Some(tenant(k)), async move {
                tokio::task::yield_now().await;
                let count = Product::query(&registry).count().await?;
                Ok::<_, tenantry::Error>((k, count))
            })));
        }
        let mut wrong = 0;
        for handle in handles {
            let (k, count) = handle.await??;
            if count != expected[&k] {
                wrong += 1;
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let mut extra = Fields::new();
        extra.insert("wrong", json!(wrong));
        extra.insert("tenants", json!(tenants));
        self.emit("W6_isolation", n, seconds, extra);
        Ok(())
    }

    /// W7: point reads spread over 1, 100 and 1,000 tenant schemas.
    ///
    /// The sizes take turns of [`HELD_BLOCK`] reads, in a rotating order, after a warm-up
    /// of each. Timed one size after the other, each size's p50 was also where the kernel
    /// happened to run the server process at that moment (see W4): on a 2-vCPU VM that
    /// moved one size's p50 by 10–15 % against the next, in either direction, and the
    /// ratio with it. In turns, every size sees the same placements.
    async fn w7_scale(&mut self) -> Result<()> {
        let sizes = self.args.scale.clone();
        let reads = self.args.scale_reads;
        let largest = sizes.iter().copied().max().unwrap_or(1);
        self.scale_setup(largest).await?;

        let sets: Vec<ScaleSet> = sizes.iter().map(|&size| self.scale_set(size)).collect();
        let mut extra = Fields::new();
        for set in &sets {
            // Warm-up, as in a service that has been up: the pool hands its idle
            // connections out in turn, so every tenant is read twice on each connection
            // the pool holds.
            let warmup = self
                .args
                .scale_warmup
                .max(set.tenants.len() * 2 * self.pool_size());
            self.scale_reads(set, 0..warmup, None).await?;
            extra.insert(format!("warmup_{}", set.tenants.len()), json!(warmup));
        }
        let mut timed: Vec<(Samples, Samples)> = sets
            .iter()
            .map(|_| (Samples::with_capacity(reads), Samples::with_capacity(reads)))
            .collect();
        for from in (0..reads).step_by(HELD_BLOCK) {
            let block = from..(from + HELD_BLOCK).min(reads);
            for k in 0..sets.len() {
                let s = (k + from / HELD_BLOCK) % sets.len();
                self.scale_reads(&sets[s], block.clone(), Some(&mut timed[s]))
                    .await?;
            }
        }

        let mut total_seconds = 0.0;
        for (set, (samples, raw_samples)) in sets.iter().zip(&timed) {
            let size = set.tenants.len();
            total_seconds += samples.total();
            let (median, p99) = (samples.percentile(0.50), samples.percentile(0.99));
            extra.insert(format!("p50_us_{size}"), json!(round(median, 1)));
            extra.insert(format!("p99_us_{size}"), json!(round(p99, 1)));
            extra.insert(
                format!("raw_p50_us_{size}"),
                json!(round(raw_samples.percentile(0.50), 1)),
            );
            extra.insert(
                format!("ops_per_sec_{size}"),
                json!(round(ops_per_sec(reads, samples.total()), 1)),
            );
        }
        if let (Some(first), Some(last)) = (timed.first(), timed.last()) {
            let ratio = |pick: fn(&(Samples, Samples)) -> &Samples| {
                round(
                    pick(last).percentile(0.50) / pick(first).percentile(0.50),
                    3,
                )
            };
            extra.insert("ratio", json!(ratio(|t| &t.0)));
            extra.insert("raw_ratio", json!(ratio(|t| &t.1)));
        }
        extra.insert("tenants", json!(largest));
        self.emit("W7_scale", reads * sizes.len(), total_seconds, extra);
        Ok(())
    }

    /// W7's tenants: a schema and ten products for each up to `largest`.
    async fn scale_setup(&mut self, largest: usize) -> Result<()> {
        let started = Instant::now();
        let existing = self.args.tenants.max(self.args.insert_tenants);
        for t in 1..=largest {
            if t > existing {
                self.create_tenant(&tenant(t)).await?;
            }
            if !self.products.contains_key(&t) {
                let stored = Product::query(&self.registry)
                    .using(&tenant(t))
                    .bulk_create((0..10).map(|i| Product::sample(format!("scale-{i}"), None, i)))
                    .await?;
                self.products
                    .insert(t, stored.iter().map(|p| p.id).collect());
            }
        }
        eprintln!(
            "tenantry-bench: W7 set-up of {largest} tenants took {:.1} s",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// The tenants of one W7 size, with bare sqlx's statement for each.
    fn scale_set(&self, size: usize) -> ScaleSet {
        let tenants: Vec<usize> = (1..=size).collect();
        let schemas: Vec<SchemaName> = tenants.iter().map(|&t| tenant(t)).collect();
        let sql = schemas.iter().map(|s| self.raw.get_sql(s)).collect();
        ScaleSet {
            tenants,
            schemas,
            sql,
        }
    }

    /// W7's reads `range` of one size: the ORM's and bare sqlx's in turn, timed into
    /// `samples` (ORM, bare sqlx) when given.
    async fn scale_reads(
        &self,
        set: &ScaleSet,
        range: std::ops::Range<usize>,
        mut samples: Option<&mut (Samples, Samples)>,
    ) -> Result<()> {
        for i in range {
            let (t, key) = self.nth_key(&set.tenants, i);
            // Each goes first every other read (see W4).
            for turn in 0..2 {
                let op = Instant::now();
                if (turn + i) % 2 == 0 {
                    let product = Product::query(&self.registry)
                        .using(&set.schemas[t - 1])
                        .get_pk(key)
                        .await?;
                    if let Some((orm, _)) = samples.as_deref_mut() {
                        orm.push(op.elapsed());
                    }
                    assert_eq!(product.id, key);
                } else {
                    self.raw
                        .get(&set.schemas[t - 1], &set.sql[t - 1], key)
                        .await?;
                    if let Some((_, raw)) = samples.as_deref_mut() {
                        raw.push(op.elapsed());
                    }
                }
            }
        }
        Ok(())
    }
}

/// The tenants of one W7 size: tenant `t` is `tenants[t - 1]`, with `schemas[t - 1]` and
/// bare sqlx's `sql[t - 1]`.
struct ScaleSet {
    tenants: Vec<usize>,
    schemas: Vec<SchemaName>,
    sql: Vec<String>,
}

/// W4's reads per turn of each path.
pub(crate) const HELD_BLOCK: usize = 100;

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}
