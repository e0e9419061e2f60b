use tenantry::Model;

#[derive(Model)]
struct Note {
    id: i64,
    #[model(max_length = 20)]
    title: String,
}

fn main() {
    // A text lookup on an integer column does not exist.
    let _ = Note::id().icontains("1");
}
