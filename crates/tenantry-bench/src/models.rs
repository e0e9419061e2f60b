//! The two models of the workloads.

use tenantry::{ForeignKey, Model};

/// `users (id bigint auto primary key, name varchar(255))`.
#[derive(Model, Debug, Clone)]
#[model(table = "users")]
pub struct User {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
}

/// `products (id bigint auto primary key, name varchar(255), user_id bigint null
/// references users(id))`.
#[derive(Model, Debug, Clone)]
#[model(table = "products")]
pub struct Product {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    pub user: Option<ForeignKey<User>>,
}
