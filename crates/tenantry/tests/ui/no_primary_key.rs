use tenantry::Model;

#[derive(Model)]
struct Note {
    title: String,
}

fn main() {}
