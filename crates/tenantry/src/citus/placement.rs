//! Where each tenant lives on a Citus cluster, and moving tenants between workers.

use std::time::{Duration, Instant};

use sea_query::{Expr, ExprTrait, Func, JoinType, Order, Query, SelectStatement};
use tracing::Instrument;

use crate::{
    database::Database,
    error::{Error, Result},
    row::Row,
    schema_name::SchemaName,
    target::{Conn, Target},
};

/// The Citus side of a [`Database`]: its workers, where each tenant is, and tenant moves.
/// From [`Database::citus`].
///
/// ```no_run
/// # async fn demo(db: tenantry::Database) -> tenantry::Result<()> {
/// let citus = db.citus().await?;
/// for node in citus.nodes().await? {
///     println!("{}:{} holds {} tenants", node.host, node.port, node.tenants.len());
/// }
/// let acme = tenantry::SchemaName::parse("acme")?;
/// citus.move_tenant(&acme, "10.0.0.7", 5432).await?;
/// let spread = citus.rebalance().await?;
/// println!("{} tenants moved", spread.moves.len());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Citus {
    database: Database,
}

/// A worker of the cluster and the tenants placed on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The worker's host, as the coordinator knows it.
    pub host: String,
    /// The worker's port.
    pub port: u16,
    /// Whether new tenants (and moves) may be placed on it (Citus's `shouldhaveshards`).
    pub accepts_tenants: bool,
    /// The tenants on this worker, largest first.
    pub tenants: Vec<Placement>,
    /// The tenants' total size, in bytes.
    pub bytes: u64,
}

/// Where one tenant's schema is, and its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The tenant's schema.
    pub schema: SchemaName,
    /// The worker's host.
    pub host: String,
    /// The worker's port.
    pub port: u16,
    /// The size of its tables on that worker, in bytes.
    pub bytes: u64,
}

/// A finished tenant move ([`Citus::move_tenant`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantMove {
    /// The tenant's schema.
    pub schema: SchemaName,
    /// Where it was, `host:port`.
    pub from: String,
    /// Where it is now, `host:port`.
    pub to: String,
    /// Its size when the move began, in bytes.
    pub bytes: u64,
    /// How it moved: `logical` (Citus copies, then follows writes by logical replication;
    /// writes pause only for the final switch), `block_writes` (writes wait for the whole
    /// copy: the fallback when logical replication is refused), or `none` (already there).
    pub mode: &'static str,
    /// How long the move took.
    pub duration: Duration,
}

/// What one copy of a move has reached, reported while it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MoveProgress {
    /// Bytes of the tenant's tables on the destination so far.
    pub copied_bytes: u64,
    /// Bytes of the tenant's tables on the source.
    pub total_bytes: u64,
    /// Citus's phase (`Copying Data`, `Catching Up`, …).
    pub phase: String,
}

/// What [`Citus::rebalance`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebalance {
    /// The moves, in the order they were made.
    pub moves: Vec<TenantMove>,
    /// The workers afterwards.
    pub nodes: Vec<Node>,
}

/// The shared-schema table where every move is recorded, done or failed.
const MOVES_TABLE: &str = "tenantry_tenant_moves";

impl Database {
    /// The Citus handle of a Citus coordinator; [`Error::Unsupported`] on any other database.
    pub async fn citus(&self) -> Result<Citus> {
        if self.deployment().await?.is_citus() {
            Ok(Citus {
                database: self.clone(),
            })
        } else {
            Err(Error::Unsupported {
                backend: self.backend().name(),
                what: "Citus placement (the database is not a Citus coordinator)",
            })
        }
    }
}

impl Citus {
    /// The workers (not the coordinator), each with the tenants placed on it.
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        let mut nodes: Vec<Node> = self
            .rows(&workers())
            .await?
            .iter()
            .map(|row| {
                Ok(Node {
                    host: row.get(0)?,
                    port: port(row.get(1)?)?,
                    accepts_tenants: row.get(2)?,
                    tenants: Vec::new(),
                    bytes: 0,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(Error::Database)?;
        for placement in self.placements().await? {
            if let Some(node) = nodes
                .iter_mut()
                .find(|n| n.host == placement.host && n.port == placement.port)
            {
                node.bytes += placement.bytes;
                node.tenants.push(placement);
            }
        }
        Ok(nodes)
    }

    /// Every distributed tenant schema that holds a table, with its worker and size,
    /// largest first. A schema whose name is not a valid [`SchemaName`] is left out.
    pub async fn placements(&self) -> Result<Vec<Placement>> {
        let mut out = Vec::new();
        for row in self.rows(&placements()).await? {
            let name: String = row.get(0).map_err(Error::Database)?;
            let Ok(schema) = SchemaName::parse(&name) else {
                continue;
            };
            let bytes: i64 = row.get(3).map_err(Error::Database)?;
            out.push(Placement {
                schema,
                host: row.get(1).map_err(Error::Database)?,
                port: port(row.get(2).map_err(Error::Database)?).map_err(Error::Database)?,
                bytes: u64::try_from(bytes).unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Where `schema` is; [`Error::SchemaNotFound`] when it is not a distributed schema
    /// holding a table.
    pub async fn placement(&self, schema: &SchemaName) -> Result<Placement> {
        self.placements()
            .await?
            .into_iter()
            .find(|p| &p.schema == schema)
            .ok_or_else(|| Error::SchemaNotFound {
                schema: schema.to_string(),
            })
    }

    /// Moves tenant `schema` to the worker `host:port` with `citus_schema_move`: by logical
    /// replication (reads and writes go on during the copy; writes pause for the switch),
    /// falling back to blocking writes for the copy when the cluster refuses logical
    /// replication. The move is recorded in the shared table `tenantry_tenant_moves` (done or
    /// failed, with its size, mode and duration). A tenant already there is not moved
    /// (`mode` `none`). [`Error::InvalidArgument`] for a host and port that is no active
    /// worker, [`Error::SchemaNotFound`] for a schema that is not distributed.
    pub async fn move_tenant(
        &self,
        schema: &SchemaName,
        host: &str,
        port: u16,
    ) -> Result<TenantMove> {
        self.move_tenant_with(schema, host, port, |_| {}).await
    }

    /// [`move_tenant`](Self::move_tenant), calling `progress` about twice a second with how
    /// far the copy is.
    pub async fn move_tenant_with(
        &self,
        schema: &SchemaName,
        host: &str,
        port: u16,
        mut progress: impl FnMut(MoveProgress) + Send,
    ) -> Result<TenantMove> {
        let nodes = self.nodes().await?;
        let Some(node) = nodes.iter().find(|n| n.host == host && n.port == port) else {
            return Err(Error::InvalidArgument {
                argument: "to",
                reason: "no active worker of the cluster has this host and port",
            });
        };
        // The nodes hold every placement already: no second catalog read.
        let from = nodes
            .iter()
            .flat_map(|n| &n.tenants)
            .find(|p| &p.schema == schema)
            .cloned()
            .ok_or_else(|| Error::SchemaNotFound {
                schema: schema.to_string(),
            })?;
        if !node.accepts_tenants && (from.host != host || from.port != port) {
            return Err(Error::InvalidArgument {
                argument: "to",
                reason: "this worker takes no tenants (shouldhaveshards is off)",
            });
        }
        let started = Instant::now();
        let mut done = TenantMove {
            schema: schema.clone(),
            from: format!("{}:{}", from.host, from.port),
            to: format!("{host}:{port}"),
            bytes: from.bytes,
            mode: "none",
            duration: Duration::ZERO,
        };
        if from.host == host && from.port == port {
            return Ok(done);
        }
        let span = tracing::info_span!("tenantry.move_tenant", schema = %schema, from = %done.from, to = %done.to);
        let moved = async {
            let copy = self.copy(schema, host, port);
            let watch = watch_progress(&self.database, schema, &mut progress);
            tokio::select! {
                moved = copy => moved,
                never = watch => match never {},
            }
        }
        .instrument(span)
        .await;
        done.duration = started.elapsed();
        let recorded = match &moved {
            Ok(mode) => {
                done.mode = mode;
                self.record(&done, None).await
            }
            Err(error) => self.record(&done, Some(&error.to_string())).await,
        };
        moved?;
        if let Err(error) = recorded {
            tracing::warn!(%error, schema = %schema, "the tenant moved, but its ledger entry was not written");
        }
        tracing::info!(schema = %schema, from = %done.from, to = %done.to, mode = done.mode, ms = done.duration.as_millis() as u64, "tenant moved");
        Ok(done)
    }

    /// The copy itself; the mode that worked.
    async fn copy(&self, schema: &SchemaName, host: &str, port: u16) -> Result<&'static str> {
        match self.rows(&schema_move(schema, host, port, "auto")).await {
            Ok(_) => Ok("logical"),
            Err(error)
                if error.is_server_refusal()
                    && self
                        .placement(schema)
                        .await
                        .is_ok_and(|p| p.host != host || p.port != port) =>
            {
                tracing::warn!(%error, schema = %schema, "logical replication refused; moving with writes blocked");
                self.rows(&schema_move(schema, host, port, "block_writes"))
                    .await?;
                Ok("block_writes")
            }
            Err(error) => Err(error),
        }
    }

    /// Spreads the tenants over the workers that accept tenants by size: while moving the
    /// largest tenant that fits from the fullest worker to the emptiest narrows the gap
    /// between them, it is moved. Tenants equal in size count one each, so that 20 empty
    /// tenants on one worker end 10 and 10.
    pub async fn rebalance(&self) -> Result<Rebalance> {
        let mut moves = Vec::new();
        let mut nodes = self.nodes().await?;
        // Each round moves one tenant; a cluster of n tenants needs fewer than n rounds.
        let rounds = nodes.iter().map(|n| n.tenants.len()).sum::<usize>();
        for _ in 0..=rounds {
            let Some((schema, to)) = next_move(&nodes) else {
                break;
            };
            moves.push(self.move_tenant(&schema, &to.0, to.1).await?);
            nodes = self.nodes().await?;
        }
        Ok(Rebalance { moves, nodes })
    }

    async fn record(&self, done: &TenantMove, error: Option<&str>) -> Result<()> {
        let target = self.shared();
        target.execute_ddl(&create_moves_table()).await?;
        let insert = Query::insert()
            .into_table(("public", MOVES_TABLE))
            .columns([
                "tenant",
                "from_node",
                "to_node",
                "bytes",
                "mode",
                "duration_ms",
                "error",
            ])
            .values_panic([
                done.schema.as_str().into(),
                done.from.as_str().into(),
                done.to.as_str().into(),
                i64::try_from(done.bytes).unwrap_or(i64::MAX).into(),
                done.mode.into(),
                i64::try_from(done.duration.as_millis())
                    .unwrap_or(i64::MAX)
                    .into(),
                error.map(str::to_owned).into(),
            ])
            .to_owned();
        target.execute(&insert).await.map(drop)
    }

    async fn rows(&self, select: &SelectStatement) -> Result<Vec<Row>> {
        self.shared().fetch_all(select).await
    }

    fn shared(&self) -> Target {
        Target {
            conn: Conn::Database(self.database.clone()),
            schema: None,
        }
    }
}

/// The next move of a rebalance: the largest tenant of the fullest worker that narrows the
/// gap to the emptiest accepting worker (sizes count at least one byte each).
fn next_move(nodes: &[Node]) -> Option<(SchemaName, (String, u16))> {
    let weight = |p: &Placement| std::cmp::max(p.bytes, 1);
    let load = |n: &Node| n.tenants.iter().map(weight).sum::<u64>();
    let emptiest = nodes
        .iter()
        .filter(|n| n.accepts_tenants)
        .min_by_key(|n| load(n))?;
    let fullest = nodes.iter().max_by_key(|n| load(n))?;
    let gap = load(fullest).checked_sub(load(emptiest))?;
    fullest
        .tenants
        .iter()
        .filter(|p| weight(p) * 2 <= gap)
        .max_by_key(|p| weight(p))
        .map(|p| (p.schema.clone(), (emptiest.host.clone(), emptiest.port)))
}

/// Polls `get_rebalance_progress()` on another connection while a move runs; never ends.
async fn watch_progress(
    database: &Database,
    schema: &SchemaName,
    progress: &mut (impl FnMut(MoveProgress) + Send),
) -> std::convert::Infallible {
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        // A failed poll (no connection free) skips one report; the move goes on.
        let Ok(rows) = target.fetch_unchecked(&move_progress(schema)).await else {
            continue;
        };
        let mut report = MoveProgress {
            copied_bytes: 0,
            total_bytes: 0,
            phase: String::new(),
        };
        for row in rows {
            let source: i64 = row.get(0).unwrap_or(0);
            let copied: i64 = row.get(1).unwrap_or(0);
            report.total_bytes += u64::try_from(source).unwrap_or(0);
            report.copied_bytes += u64::try_from(copied).unwrap_or(0);
            if let Ok(Some(phase)) = row.get::<Option<String>>(2) {
                report.phase = phase;
            }
        }
        if report.total_bytes > 0 {
            progress(report);
        }
    }
}

fn port(value: i32) -> std::result::Result<u16, sqlx::Error> {
    u16::try_from(value).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// `SELECT nodename, nodeport, shouldhaveshards FROM pg_dist_node WHERE groupid <> 0 AND
/// isactive AND noderole::text = 'primary' ORDER BY nodename, nodeport`.
fn workers() -> SelectStatement {
    Query::select()
        .columns(["nodename", "nodeport", "shouldhaveshards"])
        .from(("pg_catalog", "pg_dist_node"))
        .and_where(Expr::col("groupid").ne(0))
        .and_where(Expr::col("isactive").eq(true))
        .and_where(Func::cast_as(Expr::col("noderole"), "text").eq("primary"))
        .order_by("nodename", Order::Asc)
        .order_by("nodeport", Order::Asc)
        .to_owned()
}

/// Each distributed schema's worker and size, from `citus_shards`, largest first.
fn placements() -> SelectStatement {
    let size = Func::cast_as(Func::sum(Expr::col(("s", "shard_size"))), "bigint");
    Query::select()
        .expr(Func::cast_as(Expr::col(("n", "nspname")), "text"))
        .column(("s", "nodename"))
        .column(("s", "nodeport"))
        .expr_as(size, "bytes")
        .from_as(("pg_catalog", "citus_shards"), "s")
        .join_as(
            JoinType::InnerJoin,
            ("pg_catalog", "pg_class"),
            "c",
            Expr::col(("c", "oid")).equals(("s", "table_name")),
        )
        .join_as(
            JoinType::InnerJoin,
            ("pg_catalog", "pg_namespace"),
            "n",
            Expr::col(("n", "oid")).equals(("c", "relnamespace")),
        )
        .and_where(Func::cast_as(Expr::col(("s", "citus_table_type")), "text").eq("schema"))
        .group_by_col(("n", "nspname"))
        .group_by_col(("s", "nodename"))
        .group_by_col(("s", "nodeport"))
        .order_by("bytes", Order::Desc)
        .order_by(("n", "nspname"), Order::Asc)
        .to_owned()
}

/// `SELECT citus_schema_move(CAST($1 AS regnamespace), $2, $3, CAST($4 AS
/// citus.shard_transfer_mode))`.
fn schema_move(schema: &SchemaName, host: &str, port: u16, mode: &str) -> SelectStatement {
    let mode_type = sea_query::TypeRef::from(("citus", "shard_transfer_mode"));
    Query::select()
        .expr(
            Func::cust("citus_schema_move")
                .arg(Func::cast_as(Expr::val(schema.as_str()), "regnamespace"))
                .arg(Expr::val(host))
                .arg(Expr::val(i32::from(port)))
                .arg(Func::cast_as_quoted(Expr::val(mode), mode_type)),
        )
        .to_owned()
}

/// `SELECT source_shard_size, target_shard_size, status FROM get_rebalance_progress() AS p
/// WHERE p.table_name IN (SELECT oid FROM pg_class WHERE relnamespace = CAST($1 AS
/// regnamespace))`: the copies of `schema`'s tables only (the function lists every move
/// running in the database, another operator's included).
fn move_progress(schema: &SchemaName) -> SelectStatement {
    let tables = Query::select()
        .column("oid")
        .from(("pg_catalog", "pg_class"))
        .and_where(
            Expr::col("relnamespace").eq(Func::cast_as(Expr::val(schema.as_str()), "regnamespace")),
        )
        .to_owned();
    Query::select()
        .columns(["source_shard_size", "target_shard_size", "status"])
        .from_function(Func::cust("get_rebalance_progress"), "p")
        .and_where(Expr::col(("p", "table_name")).in_subquery(tables))
        .to_owned()
}

fn create_moves_table() -> String {
    use sea_query::{ColumnDef, PostgresQueryBuilder, Table};
    Table::create()
        .table(("public", MOVES_TABLE))
        .if_not_exists()
        .col(
            ColumnDef::new("id")
                .big_integer()
                .auto_increment()
                .primary_key(),
        )
        .col(ColumnDef::new("tenant").text().not_null())
        .col(ColumnDef::new("from_node").text().not_null())
        .col(ColumnDef::new("to_node").text().not_null())
        .col(ColumnDef::new("bytes").big_integer().not_null())
        .col(ColumnDef::new("mode").text().not_null())
        .col(ColumnDef::new("duration_ms").big_integer().not_null())
        .col(ColumnDef::new("error").text())
        .col(
            ColumnDef::new("moved_at")
                .timestamp_with_time_zone()
                .not_null()
                .default(Expr::current_timestamp()),
        )
        .to_string(PostgresQueryBuilder)
}
