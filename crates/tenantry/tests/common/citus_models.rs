//! The models of the Citus tests (`tests/citus.rs`, `tests/attack_citus.rs`): a shared plan,
//! tenant accounts referencing it, notes of tenant-only, labels through a junction, and two
//! models that break Citus's rules.

use tenantry::{Database, ForeignKey, ManyToMany, Model, Registry, SchemaName};

/// Shared: a reference table on Citus.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared)]
pub struct Plan {
    pub id: i64,
    #[model(max_length = 50)]
    pub title: String,
}

/// In every schema, referencing the shared plan.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Account {
    pub id: i64,
    #[model(max_length = 80)]
    pub name: String,
    pub plan: ForeignKey<Plan>,
}

/// Tenant-only.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(tenant)]
pub struct Note {
    pub id: i64,
    #[model(max_length = 600)]
    pub body: String,
    #[model(on_delete = "cascade")]
    pub account: ForeignKey<Account>,
}

#[derive(Model, Debug, Clone, PartialEq)]
pub struct Label {
    pub id: i64,
    #[model(max_length = 40)]
    pub name: String,
}

#[derive(Model, Debug, Clone, PartialEq)]
pub struct AccountLabel {
    pub id: i64,
    #[model(on_delete = "cascade")]
    pub account: ForeignKey<Account>,
    #[model(on_delete = "cascade")]
    pub label: ForeignKey<Label>,
}

pub const LABELS: ManyToMany<AccountLabel, Account, Label> =
    ManyToMany::new(AccountLabel::account(), AccountLabel::label());

/// Breaks the key rule: a database-assigned 32-bit key.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct SmallKey {
    pub id: i32,
    #[model(max_length = 10)]
    pub code: String,
}

/// Breaks the reference rule: a shared model pointing at a tenant model.
#[derive(Model, Debug, Clone, PartialEq)]
#[model(shared)]
pub struct SharedToTenant {
    pub id: i64,
    pub account: ForeignKey<Account>,
}

/// A registry over `db` with the plan, accounts, notes and labels.
pub fn registry(db: Database) -> Registry {
    Registry::new(db)
        .register::<Plan>()
        .register::<Account>()
        .register::<Note>()
        .register::<Label>()
        .register::<AccountLabel>()
}

pub fn schema(name: &str) -> SchemaName {
    SchemaName::parse(name).unwrap()
}
