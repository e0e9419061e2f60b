//! A task's tenant as data, for background jobs that run in another task or process.

use std::future::Future;

use super::context::{context_schema, with_tenant};
use crate::{error::Result, schema_name::SchemaName};

/// The tenant of the current task, captured where a background job is queued, stored with
/// the job (JSON in a queue message or a jobs table) and restored where the job runs: in
/// another task or another process, whose queries then go to the same tenant.
///
/// Its JSON form is `{"tenant":"acme"}` (`{"tenant":null}` for no tenant, the shared
/// schema). Reading it back validates the name ([`SchemaName`]'s rules): a tampered context
/// fails to deserialize rather than reaching the database. Unknown fields are refused.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use tenantry::{with_tenant, SchemaName, TenantContext};
///
/// let acme = SchemaName::parse("acme").unwrap();
/// // Where the job is queued, inside the request's tenant:
/// let queued = with_tenant(Some(acme.clone()), async {
///     serde_json::to_string(&TenantContext::current().unwrap()).unwrap()
/// })
/// .await;
/// assert_eq!(queued, r#"{"tenant":"acme"}"#);
///
/// // Where it runs (another process):
/// let context: TenantContext = serde_json::from_str(&queued).unwrap();
/// let seen = context.run(async { tenantry::get_tenant() }).await;
/// assert_eq!(seen, Some(acme));
///
/// assert!(serde_json::from_str::<TenantContext>(r#"{"tenant":"Robert'); DROP"}"#).is_err());
/// assert!(serde_json::from_str::<TenantContext>("{}").is_err());
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantContext {
    /// Required when read back: a context without it (`{}`) is refused, not taken for "no
    /// tenant".
    #[serde(deserialize_with = "required")]
    tenant: Option<SchemaName>,
}

/// An `Option` field that must be present (`null` for `None`).
fn required<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<SchemaName>, D::Error> {
    <Option<SchemaName> as serde::Deserialize>::deserialize(deserializer)
}

impl TenantContext {
    /// Where the current task's queries go: its tenant, else its activated schema
    /// ([`activate_schema`](crate::activate_schema)); no tenant outside any scope.
    /// [`Error::TenantConflict`](crate::Error::TenantConflict) inside a scope refused for a conflict, as its queries are.
    pub fn current() -> Result<Self> {
        Ok(TenantContext {
            tenant: context_schema()?,
        })
    }

    /// A context for `tenant` (`None`: the shared schema).
    pub fn new(tenant: Option<SchemaName>) -> Self {
        TenantContext { tenant }
    }

    /// The tenant.
    pub fn tenant(&self) -> Option<&SchemaName> {
        self.tenant.as_ref()
    }

    /// Runs `future` in this context's tenant, as [`with_tenant`] does.
    pub async fn run<F: Future>(&self, future: F) -> F::Output {
        with_tenant(self.tenant.clone(), future).await
    }
}
