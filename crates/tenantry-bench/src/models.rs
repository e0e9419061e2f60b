//! The two models of the workloads.

use tenantry::{Decimal, ForeignKey, Model};

/// `users (id bigint auto primary key, name varchar(255))`.
#[derive(Model, Debug, Clone)]
#[model(table = "users")]
pub struct User {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
}

/// `products (id bigint auto primary key, name varchar(255), user_id bigint null
/// references users(id), price numeric(12, 2), stock integer)`: `price` and `stock` are
/// those of W10 and W14.
#[derive(Model, Debug, Clone)]
#[model(table = "products")]
pub struct Product {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    pub user: Option<ForeignKey<User>>,
    #[model(max_digits = 12, decimal_places = 2)]
    pub price: Decimal,
    pub stock: i32,
}

impl Product {
    /// The `i`-th product of a workload: `name`, owned by the user with key `owner`, with
    /// the [`price`] and [`stock`] of `i`.
    pub fn sample(name: String, owner: Option<i64>, i: usize) -> Product {
        Product {
            id: 0,
            name,
            user: owner.map(ForeignKey::new),
            price: price(i),
            stock: stock(i),
        }
    }
}

/// `w13_stock (id bigint auto primary key, sku varchar(64) unique, stock integer)`: W13's
/// upserted rows, in `tenant_w13` only.
#[derive(Model, Debug, Clone)]
#[model(table = "w13_stock")]
pub struct StockItem {
    pub id: i64,
    #[model(max_length = 64, unique)]
    pub sku: String,
    pub stock: i32,
}

impl StockItem {
    /// A row to upsert (its key is the database's).
    pub fn new(sku: String, stock: i32) -> StockItem {
        StockItem { id: 0, sku, stock }
    }
}

/// The price of the `i`-th product of a workload: 1.00 to 99.99, two decimal places (the
/// column's scale, so the value is bound as the ORM binds it).
pub fn price(i: usize) -> Decimal {
    Decimal::new(100 + (i as i64 * 37) % 9_900, 2)
}

/// The stock of the `i`-th product of a workload: 0 to 99.
pub fn stock(i: usize) -> i32 {
    (i % 100) as i32
}
