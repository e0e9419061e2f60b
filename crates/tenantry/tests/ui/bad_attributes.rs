use tenantry::{ForeignKey, Model};

#[derive(Model)]
struct User {
    id: i64,
}

// Every misuse is reported at once, each at its own span.
#[derive(Model)]
#[model(tablename = "x")]
struct Note {
    id: i64,
    #[model(max_length = 10)]
    count: i64,
    #[model(max_length = 0)]
    title: String,
    #[model(on_delete = "set_null")]
    owner: ForeignKey<User>,
    #[model(on_delete = "explode")]
    editor: Option<ForeignKey<User>>,
    #[model(colour = "red")]
    body: String,
}

fn main() {}
