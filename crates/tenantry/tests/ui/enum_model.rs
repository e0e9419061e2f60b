use tenantry::Model;

#[derive(Model)]
enum Note {
    A,
}

fn main() {}
