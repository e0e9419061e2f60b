use tenantry::{Decimal, ForeignKey, Model};

#[derive(Model)]
struct User {
    id: i64,
}

// A Decimal needs its precision and scale, within what Decimal holds exactly.
#[derive(Model)]
struct Invoice {
    id: i64,
    total: Decimal,
    refund: Option<rust_decimal::Decimal>,
    #[model(max_digits = 12)]
    tax: Decimal,
    #[model(decimal_places = 2)]
    fee: Decimal,
    #[model(max_digits = 29, decimal_places = 2)]
    huge: Decimal,
    #[model(max_digits = 0, decimal_places = 0)]
    empty: Decimal,
    #[model(max_digits = 5, decimal_places = 6)]
    inverted: Decimal,
    #[model(max_digits = 5, decimal_places = 2)]
    title: String,
    #[model(max_digits = 5, decimal_places = 2)]
    owner: ForeignKey<User>,
}

fn main() {}
