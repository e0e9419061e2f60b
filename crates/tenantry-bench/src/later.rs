//! W9_join, W10_aggregate and W11_prefetch: queries inside the tenant, each timed against
//! the same SQL through bare sqlx (`raw.rs`) on a connection borrowed from the same pool per
//! statement and, on PostgreSQL and MariaDB, on one held connection (`held_ratio`). W10 and
//! W11 interleave the paths operation by operation and hold the connection for the whole
//! loop; W9, a point read whose round trip is most of its time, runs the paths in turns of
//! [`HELD_BLOCK`] reads and holds the connection for its turn, as W4 does (see there why).
//!
//! - **W9_join**: `--gets` point reads, round-robin over W2's tenants (W4's keys), each
//!   filtered by its owner's name across the foreign key (a join) and loading the owner
//!   with `select_related` (a second statement, `WHERE id IN (..)`): `get_pk` of
//!   `filter(Product::user().to(User::name()).eq(owner))`. Two statements an operation.
//! - **W10_aggregate**: `--aggregates` times the count and the sum of `price` per owner
//!   (`group_by(Product::user().optional())`) over `--aggregate-rows` products of one tenant
//!   (`tenant_w10`: 100 owners, every 101st product of nobody, so 101 groups).
//! - **W11_prefetch**: `--prefetches` times the 100 users of one tenant (`tenant_w11`) with
//!   their 10 products each, by `prefetch_related` (two statements), against the same two
//!   statements by hand, the products attached to their owners through a hash map.
//!
//! Within a round (W9: a turn of blocks) the paths take turns at going first (see [`turns`]). Before each loop,
//! the raw SQL text is checked equal to the text the ORM renders for the same query
//! (`to_sql` and its hidden siblings), so that both sides send the same statements; every
//! path's answer is checked as well (outside the timings).

use std::{collections::HashMap, time::Instant};

use serde_json::json;
use tenantry::SchemaName;

use crate::{
    models::{price, Product, User},
    raw, round,
    stats::{ops_per_sec, ratio, Fields, Samples},
    tenant, Bench, Result, HELD_BLOCK,
};

/// W10's owners (a 101st group holds the products of nobody).
const W10_OWNERS: usize = 100;

/// W11's users, and products of each.
const W11_USERS: usize = 100;
const W11_PER_USER: usize = 10;

/// Untimed rounds before W10's and W11's loops.
const WARMUP: usize = 10;

/// Fails unless the ORM renders `raw` for the same query.
pub(crate) fn same_sql(what: &str, orm: tenantry::Result<String>, raw: &str) -> Result<()> {
    let orm = orm?;
    if orm == raw {
        Ok(())
    } else {
        Err(
            format!("{what}: the raw SQL differs from the ORM's\n  orm: {orm}\n  raw: {raw}")
                .into(),
        )
    }
}

/// The order of the paths (0: the ORM, 1: bare sqlx on the pool, 2: the held connection)
/// in round `i` of `paths`: each leads in turn, so that none is always the first to use a
/// connection (or, on SQLite, a schema file's connections and their worker threads) that
/// the previous round left idle.
pub(crate) fn turns(i: usize, paths: usize) -> impl Iterator<Item = usize> {
    (0..paths).map(move |k| (k + i) % paths)
}

/// Fails with `message` unless `ok`.
pub(crate) fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(message().into())
    }
}

/// The fields of an ORM / pool / held comparison of `n` operations.
pub(crate) fn compared(n: usize, orm: &Samples, raw: &Samples, held: &Samples) -> Fields {
    let mut extra = Fields::new();
    extra.insert(
        "raw_ops_per_sec",
        json!(round(ops_per_sec(n, raw.total()), 1)),
    );
    extra.insert("ratio", json!(ratio(orm.total(), raw.total())));
    if !held.is_empty() {
        extra.insert(
            "held_ops_per_sec",
            json!(round(ops_per_sec(n, held.total()), 1)),
        );
        extra.insert("held_ratio", json!(ratio(orm.total(), held.total())));
    }
    orm.report(&mut extra, "");
    raw.report(&mut extra, "raw_");
    if !held.is_empty() {
        held.report(&mut extra, "held_");
    }
    extra.insert(
        "p50_ratio",
        json!(ratio(orm.percentile(0.5), raw.percentile(0.5))),
    );
    extra
}

impl Bench {
    /// W9: see the module documentation.
    pub(crate) async fn w9_join(&mut self) -> Result<()> {
        let n = self.args.gets;
        let tenants: Vec<usize> = (1..=self.args.insert_tenants).collect();
        let schemas: HashMap<usize, SchemaName> = tenants.iter().map(|&t| (t, tenant(t))).collect();
        // W2's owner of each tenant.
        let owners: HashMap<usize, String> =
            tenants.iter().map(|&t| (t, format!("owner-{t}"))).collect();
        let sql: HashMap<usize, String> = tenants
            .iter()
            .map(|&t| (t, self.raw.join_sql(&schemas[&t])))
            .collect();
        for &t in &tenants {
            let schema = &schemas[&t];
            same_sql(
                "W9 join",
                Product::query(&self.registry)
                    .using(schema)
                    .filter(Product::user().to(User::name()).eq("owner"))
                    .filter(Product::id().eq(0))
                    .limit(2)
                    .to_sql(),
                &sql[&t],
            )?;
            same_sql(
                "W9 select_related",
                User::query(&self.registry)
                    .using(schema)
                    .filter(User::id().is_in([0i64]))
                    .to_sql(),
                &self.raw.users_in_sql(schema, 1),
            )?;
        }

        let warmup = (tenants.len() * 20).min(n);
        let paths = if self.raw.hold().await?.map(raw::Held::release).is_some() {
            3
        } else {
            2
        };
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        let mut held_samples = Samples::with_capacity(n);
        // The paths take turns of HELD_BLOCK reads, as in W4: the held connection is taken
        // from the pool for its turn and handed back, so that all three paths talk to one
        // server process (held for the whole loop, it was a second one, and `held_ratio`
        // measured where the kernel ran it: 1.4-1.5).
        let total = warmup + n;
        for from in (0..total).step_by(HELD_BLOCK) {
            let block = from..(from + HELD_BLOCK).min(total);
            for path in turns(from / HELD_BLOCK, paths) {
                let mut held = match path {
                    2 => self.raw.hold().await?,
                    _ => None,
                };
                for i in block.clone() {
                    let (t, key) = self.nth_key(&tenants, i);
                    let (schema, owner) = (&schemas[&t], owners[&t].as_str());
                    let op = Instant::now();
                    let samples = match (path, held.as_mut()) {
                        (0, _) => {
                            let product = Product::query(&self.registry)
                                .using(schema)
                                .filter(Product::user().to(User::name()).eq(owner))
                                .select_related(Product::user())
                                .get_pk(key)
                                .await?;
                            let loaded = product.user.as_ref().and_then(|fk| fk.get());
                            let right =
                                product.id == key && loaded.map(|u| u.name.as_str()) == Some(owner);
                            ensure(right, || {
                                format!("W9: product {key} of {owner} read without its owner")
                            })?;
                            &mut orm_samples
                        }
                        (1, _) => {
                            let mut exec = self.raw.per_statement(schema);
                            let rows =
                                raw::join(&self.raw, &mut exec, schema, &sql[&t], owner, key)
                                    .await?;
                            check_join(&rows, key, owner)?;
                            &mut raw_samples
                        }
                        (_, Some(held)) => {
                            let rows =
                                raw::join(&self.raw, held, schema, &sql[&t], owner, key).await?;
                            check_join(&rows, key, owner)?;
                            &mut held_samples
                        }
                        (_, None) => break,
                    };
                    if i >= warmup {
                        samples.push(op.elapsed());
                    }
                }
                if let Some(held) = held {
                    held.release();
                }
            }
        }

        let seconds = orm_samples.total();
        let mut extra = compared(n, &orm_samples, &raw_samples, &held_samples);
        extra.insert("statements", json!(2));
        extra.insert("tenants", json!(tenants.len()));
        self.emit("W9_join", n, seconds, extra);
        Ok(())
    }

    /// W10: see the module documentation.
    pub(crate) async fn w10_aggregate(&mut self) -> Result<()> {
        let schema = SchemaName::parse("tenant_w10")?;
        self.create_tenant(&schema).await?;
        let rows = self.args.aggregate_rows;
        let started = Instant::now();
        let owners = User::query(&self.registry)
            .using(&schema)
            .bulk_create((0..W10_OWNERS).map(|k| User {
                id: 0,
                name: format!("w10-owner-{k}"),
            }))
            .await?;
        let keys: Vec<i64> = owners.iter().map(|u| u.id).collect();
        // Product i belongs to owner i mod 101; the 101st "owner" is nobody (the NULL group).
        Product::query(&self.registry)
            .using(&schema)
            .bulk_create((0..rows).map(|i| {
                Product::sample(
                    format!("w10-{i}"),
                    keys.get(i % (W10_OWNERS + 1)).copied(),
                    i,
                )
            }))
            .await?;
        let setup_seconds = started.elapsed().as_secs_f64();
        let total: tenantry::Decimal = (0..rows).map(price).sum();

        let sql = self.raw.group_sql(&schema);
        let args = self.raw.group_args();
        same_sql(
            "W10 group by",
            Product::query(&self.registry)
                .using(&schema)
                .group_by(Product::user().optional())
                .to_sql((Product::id().count(), Product::price().sum())),
            &sql,
        )?;

        // The answer every path must give, read once (untimed) and checked against the
        // rows inserted.
        let expected = Product::query(&self.registry)
            .using(&schema)
            .group_by(Product::user().optional())
            .aggregate((Product::id().count(), Product::price().sum()))
            .await?;
        let (count, sum) = expected
            .iter()
            .fold((0, tenantry::Decimal::ZERO), |(c, s), g| {
                (c + g.1 .0, s + g.1 .1.unwrap_or_default())
            });
        ensure(count as usize == rows && sum == total, || {
            format!("W10: {count} rows summing {sum}, wanted {rows} summing {total}")
        })?;

        let n = self.args.aggregates;
        let mut held = self.raw.hold().await?;
        let paths = if held.is_some() { 3 } else { 2 };
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        let mut held_samples = Samples::with_capacity(n);
        for i in 0..WARMUP + n {
            let timed = i >= WARMUP;
            for path in turns(i, paths) {
                let op = Instant::now();
                let (groups, samples, who) = match path {
                    0 => (
                        Product::query(&self.registry)
                            .using(&schema)
                            .group_by(Product::user().optional())
                            .aggregate((Product::id().count(), Product::price().sum()))
                            .await?,
                        &mut orm_samples,
                        "the ORM",
                    ),
                    1 => (
                        raw::groups(&mut self.raw.per_statement(&schema), &sql, &args).await?,
                        &mut raw_samples,
                        "bare sqlx",
                    ),
                    _ => match held.as_mut() {
                        Some(held) => (
                            raw::groups(held, &sql, &args).await?,
                            &mut held_samples,
                            "the held connection",
                        ),
                        None => continue,
                    },
                };
                if timed {
                    samples.push(op.elapsed());
                }
                ensure(groups == expected, || {
                    format!("W10: {who} read other groups")
                })?;
            }
        }
        // Handed back: dropped, a pooled connection is closed.
        if let Some(held) = held {
            held.release();
        }

        let seconds = orm_samples.total();
        let mut extra = compared(n, &orm_samples, &raw_samples, &held_samples);
        extra.insert("rows", json!(rows));
        extra.insert("groups", json!(expected.len()));
        extra.insert("setup_seconds", json!(round(setup_seconds, 2)));
        self.emit("W10_aggregate", n, seconds, extra);
        Ok(())
    }

    /// W11: see the module documentation.
    pub(crate) async fn w11_prefetch(&mut self) -> Result<()> {
        let schema = SchemaName::parse("tenant_w11")?;
        self.create_tenant(&schema).await?;
        let users = User::query(&self.registry)
            .using(&schema)
            .bulk_create((0..W11_USERS).map(|k| User {
                id: 0,
                name: format!("w11-user-{k}"),
            }))
            .await?;
        let keys: Vec<i64> = users.iter().map(|u| u.id).collect();
        // Interleaved, so that a user's products are not neighbours by key.
        Product::query(&self.registry)
            .using(&schema)
            .bulk_create(
                (0..W11_USERS * W11_PER_USER)
                    .map(|i| Product::sample(format!("w11-{i}"), Some(keys[i % W11_USERS]), i)),
            )
            .await?;

        let users_sql = self.raw.users_sql(&schema);
        same_sql(
            "W11 parents",
            User::query(&self.registry).using(&schema).to_sql(),
            &users_sql,
        )?;
        same_sql(
            "W11 children",
            User::query(&self.registry)
                .using(&schema)
                .prefetch_sql(Product::user(), &keys),
            &self.raw.children_sql(&schema, keys.len()),
        )?;

        let n = self.args.prefetches;
        let mut held = self.raw.hold().await?;
        let paths = if held.is_some() { 3 } else { 2 };
        let mut orm_samples = Samples::with_capacity(n);
        let mut raw_samples = Samples::with_capacity(n);
        let mut held_samples = Samples::with_capacity(n);
        for i in 0..WARMUP + n {
            let timed = i >= WARMUP;
            for path in turns(i, paths) {
                match path {
                    0 => {
                        let op = Instant::now();
                        let loaded = User::query(&self.registry)
                            .using(&schema)
                            .prefetch_related(Product::user())
                            .all()
                            .await?;
                        if timed {
                            orm_samples.push(op.elapsed());
                        }
                        ensure(
                            loaded.len() == W11_USERS
                                && loaded.iter().all(|u| {
                                    u.prefetched(Product::user()).is_some_and(|p| {
                                        p.len() == W11_PER_USER
                                            && p.iter().all(|c| {
                                                c.user.as_ref().map(|f| *f.key()) == Some(u.id)
                                            })
                                    })
                                }),
                            || "W11: users loaded without their products".into(),
                        )?;
                    }
                    1 => {
                        let op = Instant::now();
                        let loaded = raw::prefetch(
                            &self.raw,
                            &mut self.raw.per_statement(&schema),
                            &schema,
                            &users_sql,
                        )
                        .await?;
                        if timed {
                            raw_samples.push(op.elapsed());
                        }
                        check_prefetch(&loaded)?;
                    }
                    _ => {
                        if let Some(held) = held.as_mut() {
                            let op = Instant::now();
                            let loaded =
                                raw::prefetch(&self.raw, held, &schema, &users_sql).await?;
                            if timed {
                                held_samples.push(op.elapsed());
                            }
                            check_prefetch(&loaded)?;
                        }
                    }
                }
            }
        }
        // Handed back: dropped, a pooled connection is closed.
        if let Some(held) = held {
            held.release();
        }

        let seconds = orm_samples.total();
        let mut extra = compared(n, &orm_samples, &raw_samples, &held_samples);
        extra.insert("users", json!(W11_USERS));
        extra.insert("products", json!(W11_USERS * W11_PER_USER));
        extra.insert("statements", json!(2));
        self.emit("W11_prefetch", n, seconds, extra);
        Ok(())
    }
}

fn check_join(
    rows: &[(raw::RawProduct, Option<raw::RawUser>)],
    key: i64,
    owner: &str,
) -> Result<()> {
    ensure(
        rows.len() == 1
            && rows[0].0.id == key
            && rows[0].1.as_ref().map(|u| u.name.as_str()) == Some(owner),
        || format!("W9: bare sqlx read product {key} of {owner} wrong"),
    )
}

fn check_prefetch(loaded: &[(raw::RawUser, Vec<raw::RawProduct>)]) -> Result<()> {
    ensure(
        loaded.len() == W11_USERS
            && loaded
                .iter()
                .all(|(u, p)| p.len() == W11_PER_USER && p.iter().all(|c| c.user_id == Some(u.id))),
        || "W11: bare sqlx loaded users without their products".into(),
    )
}
