use tenantry::Model;

#[derive(Model)]
struct Note(i64, String);

fn main() {}
