//! `tenants nodes`, `tenants move` and `tenants rebalance`: a Citus cluster's placement.

use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tenantry::{Citus, Registry, SchemaName};

use crate::tenants::{failed, write_failed, CommandError};

/// A worker's address, `HOST:PORT` (the host as the coordinator knows it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddress {
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl std::str::FromStr for NodeAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?} is not HOST:PORT"))?;
        let port = port
            .parse()
            .map_err(|_| format!("{port:?} is not a port number"))?;
        if host.is_empty() {
            return Err(format!("{text:?} has no host"));
        }
        Ok(NodeAddress {
            host: host.to_owned(),
            port,
        })
    }
}

async fn citus(registry: &Registry) -> Result<Citus, CommandError> {
    registry
        .database()
        .citus()
        .await
        .map_err(|error| failed("this command needs a Citus coordinator", error))
}

/// `nodes`: one line per worker, `host:port<TAB>N tenants<TAB>B bytes` (and `<TAB>drained`
/// for a worker that takes no new tenants), then one indented line per tenant on it,
/// largest first: `  name<TAB>B bytes`.
pub(crate) async fn nodes(registry: &Registry, out: &mut dyn Write) -> Result<(), CommandError> {
    let nodes = citus(registry)
        .await?
        .nodes()
        .await
        .map_err(|error| failed("could not read the cluster's workers", error))?;
    for node in nodes {
        let drained = if node.accepts_tenants {
            ""
        } else {
            "\tdrained"
        };
        writeln!(
            out,
            "{}:{}\t{} tenants\t{} bytes{drained}",
            node.host,
            node.port,
            node.tenants.len(),
            node.bytes
        )
        .map_err(write_failed)?;
        for tenant in &node.tenants {
            writeln!(out, "  {}\t{} bytes", tenant.schema, tenant.bytes).map_err(write_failed)?;
        }
    }
    out.flush().map_err(write_failed)
}

/// `move NAME --to HOST:PORT`: the copy's progress on stderr, then `moved tenant NAME from
/// A to B (N bytes, MODE, S s)`.
pub(crate) async fn move_one(
    registry: &Registry,
    name: &SchemaName,
    to: &NodeAddress,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let citus = citus(registry).await?;
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let shown = bar.clone();
    let moved = citus
        .move_tenant_with(name, &to.host, to.port, move |p| {
            shown.set_message(format!(
                "{}: {} of {} bytes",
                p.phase, p.copied_bytes, p.total_bytes
            ));
            shown.tick();
        })
        .await;
    bar.finish_and_clear();
    let moved = moved.map_err(|error| failed(&format!("could not move tenant {name}"), error))?;
    writeln!(
        out,
        "moved tenant {name} from {} to {} ({} bytes, {}, {:.1} s)",
        moved.from,
        moved.to,
        moved.bytes,
        moved.mode,
        moved.duration.as_secs_f64()
    )
    .map_err(write_failed)
}

/// `rebalance`: one line per move, `moved tenant NAME from A to B`, then the workers as
/// `nodes` prints them.
pub(crate) async fn rebalance(
    registry: &Registry,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let done = citus(registry)
        .await?
        .rebalance()
        .await
        .map_err(|error| failed("could not rebalance the tenants", error))?;
    for moved in &done.moves {
        writeln!(
            out,
            "moved tenant {} from {} to {}",
            moved.schema, moved.from, moved.to
        )
        .map_err(write_failed)?;
    }
    if done.moves.is_empty() {
        writeln!(out, "the tenants are spread already").map_err(write_failed)?;
    }
    nodes(registry, out).await
}
