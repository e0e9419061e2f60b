//! W13_upsert and W14_update: writes inside the tenant, each timed against the same SQL
//! through bare sqlx on a connection from the same pool, interleaved operation by
//! operation (the paths take turns at going first).
//!
//! - **W13_upsert**: `--upserts` batches of `--upsert-batch` rows (1,000) into
//!   `tenant_w13`'s `w13_stock` table (`sku` unique), half of each batch conflicting with
//!   the 5,000 rows made first, half new; `on_conflict(sku).do_update(stock)` through
//!   `bulk_create`, returning the rows as stored. The counterpart sends the same INSERT
//!   (`RETURNING` on PostgreSQL and SQLite; on MySQL `ON DUPLICATE KEY UPDATE` and the
//!   read-back `SELECT … WHERE sku IN (..)` in one transaction, as tenantry does) and
//!   decodes the rows.
//! - **W14_update**: `--gets` updates `stock = stock - 1` by primary key, round-robin over
//!   W2's tenants (W4's keys), through `update([Product::stock().set_expr(..)])`.

use std::time::Instant;

use serde_json::json;
use sqlx::Row as _;
use tenantry::{Model, SchemaName};

use crate::{
    later::{compared, ensure, same_sql, turns},
    models::{Product, StockItem},
    raw::{Arg, Exec as _, Raw},
    round,
    stats::{ops_per_sec, ratio, Samples},
    tenant, Bench, Result,
};

/// W13's rows made before the loop; each batch's conflicting half is drawn from them.
const W13_EXISTING: usize = 5_000;

/// Untimed batches before W13's loop.
const W13_WARMUP: usize = 3;

/// A row as bare sqlx decodes it: key, sku, stock.
type RawSku = (i64, String, i32);

impl Bench {
    /// W13: see the module documentation.
    pub(crate) async fn w13_upsert(&mut self) -> Result<()> {
        let schema = SchemaName::parse("tenant_w13")?;
        self.registry
            .schema()
            .create(&schema, Some(&[StockItem::META]), false, true)
            .await?;
        self.created.push(schema.clone());
        let skus = || StockItem::query(&self.registry).using(&schema);
        skus()
            .bulk_create((0..W13_EXISTING).map(|i| StockItem::new(format!("e-{i}"), 0)))
            .await?;
        // Each batch's conflicting half is distinct rows of the ones made first.
        let size = self.args.upsert_batch.clamp(2, 2 * W13_EXISTING);
        let batch = |path: usize, round: usize| -> Vec<StockItem> {
            (0..size)
                .map(|k| {
                    let sku = if k % 2 == 0 {
                        format!("e-{}", (round * size / 2 + k / 2) % W13_EXISTING)
                    } else {
                        format!("n-{path}-{round}-{k}")
                    };
                    StockItem::new(sku, (round * 7 + k) as i32)
                })
                .collect()
        };
        let sql = self.raw.upsert_sql(&schema, size);
        let probe = batch(0, 0);
        same_sql(
            "W13 upsert",
            skus()
                .on_conflict(StockItem::sku())
                .do_update(StockItem::stock())
                .insert_sql(&probe),
            &sql.insert,
        )?;

        let n = self.args.upserts;
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        for i in 0..W13_WARMUP + n {
            for path in turns(i, 2) {
                let rows = batch(path, i);
                let wanted: Vec<RawSku> =
                    rows.iter().map(|s| (0, s.sku.clone(), s.stock)).collect();
                let op = Instant::now();
                let stored: Vec<RawSku> = if path == 0 {
                    let stored = skus()
                        .on_conflict(StockItem::sku())
                        .do_update(StockItem::stock())
                        .bulk_create(rows)
                        .await?;
                    stored
                        .into_iter()
                        .map(|s| {
                            let s = s.into_inner();
                            (s.id, s.sku, s.stock)
                        })
                        .collect()
                } else {
                    let args: Vec<Arg<'_>> = wanted
                        .iter()
                        .flat_map(|(_, sku, stock)| [Arg::Text(sku), Arg::Int32(*stock)])
                        .collect();
                    upsert(&self.raw, &schema, &sql, &args, size).await?
                };
                if i >= W13_WARMUP {
                    let samples = if path == 0 {
                        &mut orm_samples
                    } else {
                        &mut raw_samples
                    };
                    samples.push(op.elapsed());
                }
                check_upsert(&stored, &wanted, path)?;
            }
        }
        let rows_in_table = skus().count().await? as usize;
        let expected = W13_EXISTING + 2 * (W13_WARMUP + n) * (size / 2);
        ensure(rows_in_table == expected, || {
            format!("W13: {rows_in_table} rows after the loop, wanted {expected}")
        })?;

        let seconds = orm_samples.total();
        let mut extra = compared(n, &orm_samples, &raw_samples, &Samples::with_capacity(0));
        extra.insert("rows_per_batch", json!(size));
        extra.insert("conflicting_per_batch", json!(size / 2));
        extra.insert(
            "rows_per_sec",
            json!(round(ops_per_sec(n * size, seconds), 1)),
        );
        extra.insert(
            "raw_rows_per_sec",
            json!(round(ops_per_sec(n * size, raw_samples.total()), 1)),
        );
        self.emit("W13_upsert", n, seconds, extra);
        Ok(())
    }

    /// W14: see the module documentation.
    pub(crate) async fn w14_update(&mut self) -> Result<()> {
        let n = self.args.gets;
        let tenants: Vec<usize> = (1..=self.args.insert_tenants).collect();
        let schemas: Vec<SchemaName> = (0..=self.args.insert_tenants).map(tenant).collect();
        let sql: Vec<String> = schemas.iter().map(|s| self.raw.decrement_sql(s)).collect();
        for &t in &tenants {
            same_sql(
                "W14 update",
                Product::query(&self.registry)
                    .using(&schemas[t])
                    .filter(Product::id().eq(0))
                    .update_sql([Product::stock().set_expr(Product::stock() - 1)]),
                &sql[t],
            )?;
        }
        let total_stock = || async {
            let mut sum = 0i64;
            for &t in &tenants {
                let stock = Product::query(&self.registry)
                    .using(&schemas[t])
                    .aggregate(Product::stock().sum())
                    .await?;
                sum += stock.unwrap_or(0);
            }
            Ok::<_, tenantry::Error>(sum)
        };
        let before = total_stock().await?;

        let warmup = (tenants.len() * 20).min(n);
        let mut held = self.raw.hold().await?;
        let paths = if held.is_some() { 3 } else { 2 };
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        let mut held_samples = Samples::with_capacity(n);
        for i in 0..warmup + n {
            let timed = i >= warmup;
            let (t, key) = self.nth_key(&tenants, i);
            let schema = &schemas[t];
            let args = self.raw.decrement_args(key);
            for path in turns(i, paths) {
                let op = Instant::now();
                let samples = match path {
                    0 => {
                        let changed = Product::query(&self.registry)
                            .using(schema)
                            .filter(Product::id().eq(key))
                            .update([Product::stock().set_expr(Product::stock() - 1)])
                            .await?;
                        ensure(changed == 1, || {
                            format!("W14: updated {changed} rows of {key}")
                        })?;
                        &mut orm_samples
                    }
                    1 => {
                        self.raw.per_statement(schema).fetch(&sql[t], &args).await?;
                        &mut raw_samples
                    }
                    _ => match held.as_mut() {
                        Some(held) => {
                            held.fetch(&sql[t], &args).await?;
                            &mut held_samples
                        }
                        None => continue,
                    },
                };
                if timed {
                    samples.push(op.elapsed());
                }
            }
        }
        drop(held);
        let after = total_stock().await?;
        let updates = ((warmup + n) * paths) as i64;
        ensure(before - after == updates, || {
            format!("W14: stock fell by {}, wanted {updates}", before - after)
        })?;

        let seconds = orm_samples.total();
        let mut extra = compared(n, &orm_samples, &raw_samples, &held_samples);
        extra.insert("tenants", json!(tenants.len()));
        extra.insert(
            "raw_vs_orm_seconds",
            json!(ratio(raw_samples.total(), seconds)),
        );
        self.emit("W14_update", n, seconds, extra);
        Ok(())
    }
}

/// Every path must return each row it was given, in order, with the stock it wrote.
fn check_upsert(stored: &[RawSku], wanted: &[RawSku], path: usize) -> Result<()> {
    let same = stored.len() == wanted.len()
        && stored
            .iter()
            .zip(wanted)
            .all(|(s, w)| s.0 > 0 && s.1 == w.1 && s.2 == w.2);
    ensure(same, || {
        format!("W13: path {path} returned other rows than it wrote")
    })
}

/// W13's statements, as tenantry renders them.
pub struct UpsertSql {
    pub insert: String,
    /// MySQL: the read-back of the batch's rows by `sku`.
    pub read_back: Option<String>,
}

impl Raw {
    /// W13: the upsert of `rows` rows (binds: sku and stock of each), and on MySQL the
    /// read-back of them.
    pub fn upsert_sql(&self, schema: &SchemaName, rows: usize) -> UpsertSql {
        let q = self.quote();
        let table = self.table_named(schema, "w13_stock");
        let values = (0..rows)
            .map(|i| {
                format!(
                    "({}, {})",
                    self.placeholder(2 * i + 1),
                    self.placeholder(2 * i + 2)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let head = format!("INSERT INTO {table} ({q}sku{q}, {q}stock{q}) VALUES {values}");
        match self {
            Raw::MySql(_) => UpsertSql {
                insert: format!("{head} ON DUPLICATE KEY UPDATE `stock` = VALUES(`stock`)"),
                read_back: Some(format!(
                    "SELECT `id`, `sku`, `stock` FROM {table} WHERE `sku` IN ({}) FOR UPDATE",
                    vec!["?"; rows].join(", ")
                )),
            },
            _ => UpsertSql {
                insert: format!(
                    "{head} ON CONFLICT (\"sku\") DO UPDATE SET \"stock\" = \"excluded\".\"stock\" \
                     RETURNING \"id\", \"sku\", \"stock\""
                ),
                read_back: None,
            },
        }
    }

    /// W14: `stock = stock - ?` by key (binds: [`decrement_args`](Self::decrement_args)).
    /// On SQLite, whose columns take any value, tenantry checks the result against the
    /// column's range in the statement, and so does this.
    pub fn decrement_sql(&self, schema: &SchemaName) -> String {
        let q = self.quote();
        let table = self.table_named(schema, "products");
        match self {
            Raw::Sqlite(_) => format!(
                "UPDATE {table} SET \"stock\" = (CASE WHEN (typeof(\"stock\" - ?) = ? AND (\"stock\" - ? BETWEEN ? AND ?)) THEN \"stock\" - ? ELSE ABS(?) END) WHERE \"id\" = ?"
            ),
            _ => format!(
                "UPDATE {table} SET {q}stock{q} = {q}stock{q} - {} WHERE {q}id{q} = {}",
                self.placeholder(1),
                self.placeholder(2)
            ),
        }
    }

    /// The binds of [`decrement_sql`](Self::decrement_sql) for the product `key`.
    pub fn decrement_args(&self, key: i64) -> Vec<Arg<'static>> {
        match self {
            Raw::Sqlite(_) => vec![
                Arg::Int32(1),
                Arg::Text("integer"),
                Arg::Int32(1),
                Arg::Int(i64::from(i32::MIN)),
                Arg::Int(i64::from(i32::MAX)),
                Arg::Int32(1),
                Arg::Int(i64::MIN),
                Arg::Int(key),
            ],
            _ => vec![Arg::Int32(1), Arg::Int(key)],
        }
    }
}

/// W13's counterpart: one batch through bare sqlx on a connection from tenantry's pool.
async fn upsert(
    raw: &Raw,
    schema: &SchemaName,
    sql: &UpsertSql,
    args: &[Arg<'_>],
    rows: usize,
) -> Result<Vec<RawSku>> {
    let stored = match raw {
        Raw::MySql(db) => {
            let mut conn = db.acquire_mysql().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            crate::raw::bind_mysql(sqlx::query(&sql.insert), args)
                .execute(&mut *tx)
                .await?;
            let keys: Vec<Arg<'_>> = args.iter().step_by(2).copied().collect();
            let read_back = sql.read_back.as_deref().unwrap_or_default();
            let found = crate::raw::bind_mysql(sqlx::query(read_back), &keys)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            conn.release();
            let found = found
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get_unchecked(1)?, r.try_get(2)?)))
                .collect::<sqlx::Result<Vec<RawSku>>>()?;
            in_order(found, args)?
        }
        _ => raw
            .per_statement(schema)
            .fetch(&sql.insert, args)
            .await?
            .skus()?,
    };
    ensure(stored.len() == rows, || {
        format!("W13: bare sqlx stored {} rows", stored.len())
    })?;
    Ok(stored)
}

/// MySQL's read-back rows in the order of the batch, matched by sku through a hash map as
/// tenantry matches them.
fn in_order(found: Vec<RawSku>, args: &[Arg<'_>]) -> Result<Vec<RawSku>> {
    let mut by_sku: std::collections::HashMap<String, RawSku> =
        found.into_iter().map(|row| (row.1.clone(), row)).collect();
    args.iter()
        .step_by(2)
        .map(|arg| match arg {
            Arg::Text(sku) => by_sku
                .remove(*sku)
                .ok_or_else(|| "W13: a row was not read back".into()),
            _ => Err("W13: a sku bound as a number".into()),
        })
        .collect()
}
