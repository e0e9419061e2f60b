use tenantry::Enum;

#[derive(Enum)]
#[model(type_name = "1mood")]
enum BadName {
    Sad,
}

#[derive(Enum)]
#[model(type_name = "mood", colour = "red")]
enum UnknownAttribute {
    Sad,
}

#[derive(Enum)]
#[model(type_name = "mood")]
enum LongLabel {
    #[model(rename = "a label far longer than the sixty-three bytes PostgreSQL keeps for one")]
    Long,
    Fine(u8),
}

fn main() {}
