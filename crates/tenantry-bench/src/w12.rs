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
//! 3. Timed: the same statements (the SQL checked equal to the ORM's) through bare sqlx on
//!    a connection borrowed from the same pool per statement, every row decoded by hand:
//!    `raw_rows_per_sec` and `ratio` (ORM time / that time), the ORM's own cost.
//! 4. Timed, PostgreSQL and MySQL: the same statements on one connection held for the
//!    whole pass (taken from the pool for it: the connection the other passes use, so that
//!    all talk to one server process): `held_rows_per_sec`, `held_ratio`.
//! 5. Timed: not the same SQL but what a bare-sqlx export might do instead, sqlx's `fetch`
//!    of one `SELECT … ORDER BY id` on one connection held for the whole export:
//!    `single_select_rows_per_sec`, `single_select_ratio`, `single_select_rss_growth_mib`.
//!    It shows the cost of reading in batches, which `stream()` pays so as to hold no
//!    connection while its consumer works.
//!
//! Passes 2 to 5 run in turn [`REPS`] times, each rep starting one pass later (so that
//! every pass follows every other as often): the median time of each is reported (`reps`),
//! and the highest RSS growth.

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

        // The passes in turn, REPS times, each rep starting one pass later, so that every
        // pass follows every other as often (run in a fixed order, the ORM's always came
        // after the single SELECT and measured 1.06-1.10 against bare sqlx's batches, where
        // ten passes of either alone took the same time); the median time of each is
        // reported, and the highest RSS growth.
        let baseline_kib = rss_kib();
        let sql = self.raw.stream_sql(&schema);
        let (mut times, mut raw_times, mut held_times, mut single_times) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut rss_growth, mut single_rss_growth): (Option<f64>, Option<f64>) = (None, None);
        for rep in 0..REPS {
            for turn in 0..PASSES {
                match pass_at(rep, turn) {
                    0 => {
                        let (seconds, growth) = self.w12_orm_pass(&schema, rows).await?;
                        times.push(seconds);
                        rss_growth = max(rss_growth, growth);
                    }
                    1 => {
                        let started = Instant::now();
                        let count = raw::stream_batched(
                            &mut self.raw.per_statement(&schema),
                            (&first, &next),
                            STREAM_BATCH,
                        )
                        .await?;
                        raw_times.push(started.elapsed().as_secs_f64());
                        expect_rows("bare sqlx's batches", count, rows)?;
                    }
                    2 => {
                        // Taken for the pass and handed back: the pool's most recently used
                        // connection, the one the other passes use (see W4 on why not a
                        // second one).
                        if let Some(mut held) = self.raw.hold().await? {
                            let started = Instant::now();
                            let count =
                                raw::stream_batched(&mut held, (&first, &next), STREAM_BATCH)
                                    .await?;
                            held_times.push(started.elapsed().as_secs_f64());
                            held.release();
                            expect_rows("bare sqlx's batches on a held connection", count, rows)?;
                        }
                    }
                    _ => {
                        let sampler = RssSampler::start();
                        let started = Instant::now();
                        let count = self.raw.stream_count(&schema, &sql).await?;
                        single_times.push(started.elapsed().as_secs_f64());
                        if let Some(sampler) = sampler {
                            single_rss_growth =
                                max(single_rss_growth, Some(sampler.finish().await));
                        }
                        expect_rows("bare sqlx's single SELECT", count, rows)?;
                    }
                }
            }
        }
        let seconds = median(&mut times);
        let rate = |seconds: f64| json!(round(ops_per_sec(rows, seconds), 1));

        let mut extra = Fields::new();
        extra.insert("rows_per_sec", rate(seconds));
        extra.insert("rss_growth_mib", json!(rss_growth.map(|m| round(m, 1))));
        let raw_seconds = median(&mut raw_times);
        extra.insert("raw_rows_per_sec", rate(raw_seconds));
        extra.insert("ratio", json!(ratio(seconds, raw_seconds)));
        if !held_times.is_empty() {
            let held_seconds = median(&mut held_times);
            extra.insert("held_rows_per_sec", rate(held_seconds));
            extra.insert("held_ratio", json!(ratio(seconds, held_seconds)));
        }
        let single_seconds = median(&mut single_times);
        extra.insert("single_select_rows_per_sec", rate(single_seconds));
        extra.insert("single_select_ratio", json!(ratio(seconds, single_seconds)));
        extra.insert(
            "single_select_rss_growth_mib",
            json!(single_rss_growth.map(|m| round(m, 1))),
        );
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

/// Passes of each kind: eight (two in each place of the rotation), since a pass takes under
/// a second and single passes vary by more than the difference measured.
const REPS: usize = 8;

/// The kinds of pass: the ORM, bare sqlx per statement, held, the single SELECT.
const PASSES: usize = 4;

/// The pass in place `turn` of rep `rep`: the order is rotated by one every two reps and
/// reversed every other rep, so that over eight reps each pass is first twice and follows
/// and precedes each other pass as often.
fn pass_at(rep: usize, turn: usize) -> usize {
    let place = if rep.is_multiple_of(2) {
        turn
    } else {
        PASSES - 1 - turn
    };
    (place + rep / 2) % PASSES
}

/// An error unless a pass read `rows` rows.
fn expect_rows(pass: &str, count: u64, rows: usize) -> Result<()> {
    if count as usize != rows {
        return Err(format!("W12: {pass} read {count} rows, wanted {rows}").into());
    }
    Ok(())
}

fn max(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}
