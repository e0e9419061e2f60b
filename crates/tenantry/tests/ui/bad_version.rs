use tenantry::Model;

#[derive(Model)]
struct Nullable {
    id: i64,
    #[model(version)]
    version: Option<i64>,
}

#[derive(Model)]
struct Text {
    id: i64,
    #[model(version, max_length = 10)]
    version: String,
}

#[derive(Model)]
struct Two {
    id: i64,
    #[model(version)]
    first: i64,
    #[model(version)]
    second: i64,
}

#[derive(Model)]
struct Key {
    #[model(version)]
    id: i64,
}

fn main() {}
