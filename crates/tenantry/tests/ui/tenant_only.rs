use tenantry::{ForeignKey, Model};

// Tenant-only: a table in every tenant schema and none in the shared schema.
#[derive(Model)]
#[model(tenant)]
struct Ledger {
    id: i64,
}

// A model is shared or tenant-only, not both.
#[derive(Model)]
#[model(shared, tenant)]
struct Both {
    id: i64,
}

#[derive(Model)]
#[model(tenant, shared, table = "both_again")]
struct BothAgain {
    id: i64,
}

// A model with a table in the shared schema cannot point at a model without one there.
#[derive(Model)]
struct Entry {
    id: i64,
    ledger: ForeignKey<Ledger>,
}

#[derive(Model)]
#[model(shared)]
struct Summary {
    id: i64,
    ledger: Option<ForeignKey<Ledger>>,
}

// Tenant-only to tenant-only is fine.
#[derive(Model)]
#[model(tenant)]
struct Line {
    id: i64,
    ledger: ForeignKey<Ledger>,
}

fn main() {}
