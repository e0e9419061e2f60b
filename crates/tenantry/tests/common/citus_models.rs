//! The models of the Citus tests (`tests/citus.rs`, `tests/attack_citus.rs`): a shared plan,
//! tenant accounts referencing it, notes of tenant-only, labels through a junction, and two
//! models that break Citus's rules.

use futures_util::{stream, StreamExt};
use tenantry::{create_schema, Database, ForeignKey, ManyToMany, Model, Registry, SchemaName};

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

/// Creates `n` tenants `t0..` with one account each, named after its tenant, on plan
/// `gold`, with `notes` notes.
pub async fn tenants(r: &Registry, n: usize, notes: usize) -> Vec<SchemaName> {
    let gold = Plan::query(r)
        .create(Plan {
            id: 0,
            title: "gold".into(),
        })
        .await
        .unwrap();
    let names: Vec<SchemaName> = (0..n).map(|i| schema(&format!("t{i}"))).collect();
    stream::iter(names.clone())
        .for_each_concurrent(4, |s| {
            let (r, gold) = (r.clone(), gold.clone());
            async move {
                create_schema(&r, &s, None, false, true).await.unwrap();
                let account = Account::query(&r)
                    .using(&s)
                    .create(Account {
                        id: 0,
                        name: s.to_string(),
                        plan: ForeignKey::from(&gold),
                    })
                    .await
                    .unwrap();
                Note::query(&r)
                    .using(&s)
                    .bulk_create((0..notes).map(|i| Note {
                        id: 0,
                        body: format!("{s}-{i}"),
                        account: ForeignKey::from(&account),
                    }))
                    .await
                    .unwrap();
            }
        })
        .await;
    names
}

/// The accounts and notes `s` reads: every name must carry its own tag.
pub async fn assert_reads_its_own(r: &Registry, s: &SchemaName, notes: usize) {
    // Across the foreign key into the reference table, in the tenant's schema.
    let accounts = Account::query(r)
        .using(s)
        .filter(Account::plan().to(Plan::title()).eq("gold"))
        .all()
        .await
        .unwrap();
    let names: Vec<_> = accounts.iter().map(|a| a.name.clone()).collect();
    assert_eq!(
        names,
        vec![s.to_string()],
        "tenant {s} read another's accounts"
    );
    let bodies = Note::query(r).using(s).all().await.unwrap();
    assert_eq!(bodies.len(), notes, "tenant {s}");
    assert!(
        bodies.iter().all(|n| n.body.starts_with(&format!("{s}-"))),
        "tenant {s} read another's notes"
    );
}
