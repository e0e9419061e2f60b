use tenantry::{Enum, Model};

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[model(type_name = "region")]
enum Region {
    North,
    South,
}

#[derive(Model, Debug, Clone)]
#[model(table = "regions")]
struct Office {
    #[model(primary_key)]
    region: Region,
    name: String,
}

fn main() {}
