use tenantry::Model;

#[derive(Model)]
struct Note {
    id: i64,
    weights: Vec<f32>,
}

fn main() {}
