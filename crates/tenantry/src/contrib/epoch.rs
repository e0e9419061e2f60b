//! The tenants epoch: one row in the shared schema whose value changes with every change to
//! the set of tenants, so that caches in other processes notice it cheaply.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    error::{Error, Result},
    query::QuerySource,
    registry::Registry,
    transaction::Transaction,
    Model,
};

/// The key of the one row.
const KEY: &str = "tenants";

/// The tenants epoch (table `tenant_epoch`, a shared model): one row whose `epoch` takes a
/// new random value in the same transaction as every [`create_tenant`](super::create_tenant),
/// [`drop_tenant`](super::drop_tenant), [`suspend_tenant`](super::suspend_tenant) and
/// [`resume_tenant`](super::resume_tenant). A cache of tenant lookups (such as
/// `tenantry-axum`'s) reads it with [`epoch`] now and then and forgets what it knows when it
/// changed: a change made by another process is seen by the next read.
///
/// A random value rather than a counter: two changes committed at once can never leave the
/// row at a value a reader already saw. Registered by [`register`](super::register).
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[model(shared, table = "tenant_epoch")]
pub struct TenantEpoch {
    /// The row's key (`tenants`).
    #[model(primary_key, max_length = 20)]
    pub name: String,
    /// A new random value at each change.
    pub epoch: Uuid,
    /// When it last changed.
    pub changed_at: DateTime<Utc>,
}

/// The value of the tenants epoch; compare two with `==`. Read it with [`epoch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Epoch(Uuid);

impl Epoch {
    /// The value as a number, as [`TenantStore::epoch`](crate::TenantStore::epoch) reports it.
    pub fn as_u128(&self) -> u128 {
        self.0.as_u128()
    }
}

/// The current tenants epoch (see [`TenantEpoch`]); one primary-key read. Before any
/// tenant change the epoch is a fixed "never changed" value (the nil UUID, also when the
/// row does not exist yet).
pub async fn epoch(source: &impl QuerySource) -> Result<Epoch> {
    let row = TenantEpoch::query(source)
        .filter(TenantEpoch::name().eq(KEY))
        .first()
        .await?;
    Ok(Epoch(row.map_or(Uuid::nil(), |row| row.epoch)))
}

/// Gives the tenants epoch a new value, so that every cache reading it forgets what it
/// knows about tenants. [`create_tenant`](super::create_tenant) and the other contrib
/// functions do this themselves; call it after changing the `tenants` table another way.
pub async fn bump_epoch(registry: &Registry) -> Result<()> {
    ensure(registry).await?;
    let tx = registry.begin().await?;
    match bump(&tx).await {
        Ok(()) => tx.commit().await,
        Err(error) => {
            // The rollback's own failure is moot (the connection is discarded) and must not
            // hide the cause.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// Makes sure the epoch row exists, outside any transaction: inserting it inside one could
/// fail on a concurrent insert, and on PostgreSQL that failure would abort the transaction.
/// The row starts at the nil UUID, the value [`epoch`] reports for a missing row, so this
/// changes no reader's epoch.
pub(crate) async fn ensure(registry: &Registry) -> Result<()> {
    let exists = TenantEpoch::query(registry)
        .filter(TenantEpoch::name().eq(KEY))
        .exists()
        .await?;
    if exists {
        return Ok(());
    }
    let created = TenantEpoch::query(registry)
        .create(TenantEpoch {
            name: KEY.to_owned(),
            epoch: Uuid::nil(),
            changed_at: Utc::now(),
        })
        .await;
    match created {
        Ok(_) | Err(Error::UniqueViolation { .. }) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Gives the epoch a new value inside `tx`, committed (or rolled back) with the change it
/// announces. The row must exist ([`ensure`]).
pub(crate) async fn bump(tx: &Transaction) -> Result<()> {
    let changed = TenantEpoch::query(tx)
        .filter(TenantEpoch::name().eq(KEY))
        .update([
            TenantEpoch::epoch().set(Uuid::new_v4()),
            TenantEpoch::changed_at().set(Utc::now()),
        ])
        .await?;
    if changed == 0 {
        // Deleted since `ensure`: a tenant change must never go unannounced.
        TenantEpoch::query(tx)
            .create(TenantEpoch {
                name: KEY.to_owned(),
                epoch: Uuid::new_v4(),
                changed_at: Utc::now(),
            })
            .await?;
    }
    Ok(())
}
