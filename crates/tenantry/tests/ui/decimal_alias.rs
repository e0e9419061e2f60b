use tenantry::{Decimal, Model};

type Money = Decimal;

// A Decimal the derive cannot recognise by name is still checked, by the field's SQL type.
#[derive(Model)]
struct Invoice {
    id: i64,
    total: Money,
    #[model(max_digits = 5, decimal_places = 2)]
    count: i64,
}

fn main() {}
