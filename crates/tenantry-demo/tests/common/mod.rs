//! The shared test harness of crates/tenantry/tests/common, with a registry that starts
//! with no models.
#![allow(dead_code)]

/// A database of its own on the Citus cluster, shared with crates/tenantry/tests.
#[path = "../../../tenantry/tests/common/citus.rs"]
pub mod citus;
#[path = "../../../tenantry/tests/common/harness.rs"]
mod harness;
/// The hostile corpus shared with crates/tenantry/tests.
#[path = "../../../tenantry/tests/common/hostile.rs"]
pub mod hostile;
pub mod http;

// A test file on Citus only (tests/citus.rs) uses none of the harness.
#[allow(unused_imports)]
pub use harness::*;

use tenantry::Registry;

/// The registry as given: these tests register their own models.
pub async fn prepare(registry: Registry) -> Registry {
    registry
}
