//! Citus: PostgreSQL scaled out over several servers, tenant schemas distributed.
//!
//! A Citus coordinator is detected at connect (the `citus` extension in the database) and
//! becomes the [`Deployment`] of its [`Database`](crate::Database). From then on:
//!
//! - each tenant schema is created as a **distributed schema** (inside its creating
//!   transaction, `citus.enable_schema_based_sharding` is set for that transaction only):
//!   the coordinator places it on one worker, and its tables follow it;
//! - [`Registry::create_all`](crate::Registry::create_all) makes the shared models' tables
//!   **reference tables** (a copy on every node), so that tenant tables may reference and
//!   join them;
//! - the rules Citus imposes are checked before any SQL is sent, each refusal an
//!   [`Error::Distribution`](crate::Error::Distribution) naming the model and the
//!   [`DistributionRule`];
//! - [`Database::citus`](crate::Database::citus) lists the workers and where each tenant is,
//!   moves a tenant to another worker and spreads tenants by size.
//!
//! The same registry runs unchanged on plain PostgreSQL, where none of this applies.

mod detect;
mod placement;
mod reference;
mod rules;

pub(crate) use detect::detect;
pub use detect::Deployment;
pub use placement::{Citus, MoveProgress, Node, Placement, Rebalance, TenantMove};
pub(crate) use reference::{distribute_in_transaction, make_reference_tables};
pub use rules::DistributionRule;
pub(crate) use rules::{check_migrations, check_models, refuse_across_tenants};
