use tenantry::Enum;

#[derive(Enum)]
enum WithFields {
    Open(u8),
    #[model(rename = "Open")]
    Other,
}

#[derive(Enum)]
enum Empty {}

#[derive(Enum)]
struct NotAnEnum;

fn main() {}
