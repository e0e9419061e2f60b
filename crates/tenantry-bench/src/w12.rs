//! W12_stream: `--stream-rows` products of one tenant (`tenant_w12`, 1,000,000 by default)
//! streamed and counted. Not in the default run (`--only W12`): the set-up alone inserts a
//! million rows.
//!
//! 1. Set-up, untimed: the rows are inserted with `bulk_create`, [`INSERT_CHUNK`] at a time,
//!    and then counted once (`count()`), so that no timed pass is the first to read the
//!    rows after their insert (PostgreSQL sets hint bits on that read).
//! 2. Timed: `Product::query(r).using(s).stream()` (batches of [`STREAM_BATCH`] rows, each
//!    one statement `WHERE id > last ORDER BY id LIMIT 10000` on a connection borrowed for
//!    it), every row decoded into an instance: `seconds`, `rows_per_sec`, and
//!    `rss_growth_mib`, the highest `VmRSS` sampled every 50 ms during a pass less the one
//!    just before it (`baseline_rss_mib`: the RSS before the first pass).
//! 3. Timed: the bare-sqlx counterpart, sqlx's `fetch` of one `SELECT … ORDER BY id` on one
//!    connection, every row decoded by hand: `raw_rows_per_sec`, `ratio` (ORM time / raw
//!    time), `raw_rss_growth_mib`.
//! 4. Timed: the statements `stream()` sends, through bare sqlx on a connection borrowed
//!    per statement (the SQL checked equal to the ORM's): `batched_rows_per_sec` and
//!    `batched_ratio` (ORM time / that time), which separate the ORM's own cost from the
//!    cost of reading in batches.
//!
//! Passes 2, 3 and 4 run in turn [`REPS`] times (so that none always runs first): the
//! median time of each is reported (`reps`), and the highest RSS growth of each.

use std::time::Instant;

use futures_util::TryStreamExt as _;
use serde_json::json;
use tenantry::{SchemaName, STREAM_BATCH};

use crate::{
    later::same_sql,
    median,
    models::Product,
    raw, round,
    stats::{ops_per_sec, ratio, Fields},
    w8::{rss_kib, RssSampler},
    Bench, Result,
};

/// Rows per `bulk_create` of the set-up.
const INSERT_CHUNK: usize = 10_000;

impl Bench {
    /// W12: see the module documentation.
    pub(crate) async fn w12_stream(&mut self) -> Result<()> {
        let schema = SchemaName::parse("tenant_w12")?;
        self.create_tenant(&schema).await?;
        let rows = self.args.stream_rows;
        let started = Instant::now();
        let mut from = 0;
        while from < rows {
            let to = (from + INSERT_CHUNK).min(rows);
            Product::query(&self.registry)
                .using(&schema)
                .bulk_create((from..to).map(|i| Product::sample(format!("stream-{i}"), None, i)))
                .await?;
            from = to;
        }
        let counted = Product::query(&self.registry)
            .using(&schema)
            .count()
            .await?;
        if counted as usize != rows {
            return Err(format!("W12: {counted} rows inserted, wanted {rows}").into());
        }
        let setup_seconds = started.elapsed().as_secs_f64();
        eprintln!("tenantry-bench: W12 set-up of {rows} rows took {setup_seconds:.1} s");

        let (first, next) = self.raw.batch_sql(&schema);
        same_sql(
            "W12 first batch",
            Product::query(&self.registry)
                .using(&schema)
                .order_by([Product::id().asc()])
                .limit(STREAM_BATCH)
                .to_sql(),
            &first,
        )?;
        same_sql(
            "W12 next batch",
            Product::query(&self.registry)
                .using(&schema)
                .filter(Product::id().gt(0))
                .order_by([Product::id().asc()])
                .limit(STREAM_BATCH)
                .to_sql(),
            &next,
        )?;

        // The three passes in turn, REPS times, so that none always runs first; the median
        // time of each is reported, and the highest RSS growth.
        let baseline_kib = rss_kib();
        let sql = self.raw.stream_sql(&schema);
        let (mut times, mut raw_times, mut batched_times) = (Vec::new(), Vec::new(), Vec::new());
        let (mut rss_growth, mut raw_rss_growth): (Option<f64>, Option<f64>) = (None, None);
        for _ in 0..REPS {
            let (seconds, growth) = self.w12_orm_pass(&schema, rows).await?;
            times.push(seconds);
            rss_growth = max(rss_growth, growth);

            let sampler = RssSampler::start();
            let started = Instant::now();
            let raw_count = self.raw.stream_count(&schema, &sql).await?;
            raw_times.push(started.elapsed().as_secs_f64());
            if let Some(sampler) = sampler {
                raw_rss_growth = max(raw_rss_growth, Some(sampler.finish().await));
            }
            if raw_count as usize != rows {
                return Err(
                    format!("W12: bare sqlx streamed {raw_count} rows, wanted {rows}").into(),
                );
            }

            let started = Instant::now();
            let batched_count = raw::stream_batched(
                &mut self.raw.per_statement(&schema),
                (&first, &next),
                STREAM_BATCH,
            )
            .await?;
            batched_times.push(started.elapsed().as_secs_f64());
            if batched_count as usize != rows {
                return Err(format!(
                    "W12: bare sqlx's batches read {batched_count} rows, wanted {rows}"
                )
                .into());
            }
        }
        let seconds = median(&mut times);
        let raw_seconds = median(&mut raw_times);
        let batched_seconds = median(&mut batched_times);

        let mut extra = Fields::new();
        extra.insert("rows_per_sec", json!(round(ops_per_sec(rows, seconds), 1)));
        extra.insert("rss_growth_mib", json!(rss_growth.map(|m| round(m, 1))));
        extra.insert(
            "raw_rows_per_sec",
            json!(round(ops_per_sec(rows, raw_seconds), 1)),
        );
        extra.insert("ratio", json!(ratio(seconds, raw_seconds)));
        extra.insert(
            "raw_rss_growth_mib",
            json!(raw_rss_growth.map(|m| round(m, 1))),
        );
        extra.insert(
            "batched_rows_per_sec",
            json!(round(ops_per_sec(rows, batched_seconds), 1)),
        );
        extra.insert("batched_ratio", json!(ratio(seconds, batched_seconds)));
        extra.insert("batch", json!(STREAM_BATCH));
        extra.insert("reps", json!(REPS));
        extra.insert(
            "baseline_rss_mib",
            json!(baseline_kib.map(|k| round(k as f64 / 1024.0, 1))),
        );
        extra.insert("setup_seconds", json!(round(setup_seconds, 1)));
        self.emit("W12_stream", rows, seconds, extra);
        Ok(())
    }

    /// One pass of the ORM's `stream()` over the `rows` rows of `schema`: its time, and the
    /// RSS growth during it (MiB; `None` where it cannot be read).
    async fn w12_orm_pass(&self, schema: &SchemaName, rows: usize) -> Result<(f64, Option<f64>)> {
        let sampler = RssSampler::start();
        let started = Instant::now();
        let mut stream = Product::query(&self.registry).using(schema).stream();
        let (mut count, mut last) = (0usize, i64::MIN);
        while let Some(product) = stream.try_next().await? {
            if product.id <= last {
                return Err(format!("W12: key {} after {last}", product.id).into());
            }
            last = product.id;
            count += 1;
        }
        drop(stream);
        let seconds = started.elapsed().as_secs_f64();
        let growth = match sampler {
            Some(sampler) => Some(sampler.finish().await),
            None => None,
        };
        if count != rows {
            return Err(format!("W12: the ORM streamed {count} rows, wanted {rows}").into());
        }
        Ok((seconds, growth))
    }
}

/// Passes of each kind.
const REPS: usize = 3;

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
