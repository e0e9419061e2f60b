//! The shared test harness of crates/tenantry/tests/common, with a registry that starts
//! with no models.
#![allow(dead_code)]

#[path = "../../../tenantry/tests/common/harness.rs"]
mod harness;
/// The hostile corpus shared with crates/tenantry/tests.
#[path = "../../../tenantry/tests/common/hostile.rs"]
pub mod hostile;
pub mod http;

pub use harness::*;

use tenantry::Registry;

/// The registry as given: these tests register their own models.
pub async fn prepare(registry: Registry) -> Registry {
    registry
}
