use tenantry::Model;

#[derive(Model)]
struct Note {
    #[model(primary_key)]
    id: i64,
    #[model(primary_key)]
    other: i64,
}

fn main() {}
