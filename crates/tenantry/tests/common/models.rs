//! The models the tests share.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use tenantry::{ForeignKey, Model, Registry};

#[derive(Model, Debug, Clone, PartialEq, Serialize, Default)]
pub struct User {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    #[model(max_length = 255, index)]
    pub email: String,
    #[model(default = false)]
    pub is_active: bool,
}

#[derive(Model, Debug, Clone, PartialEq, Serialize)]
pub struct Product {
    pub id: i64,
    #[model(max_length = 255)]
    pub name: String,
    #[model(on_delete = "set_null")]
    pub user: Option<ForeignKey<User>>,
}

/// One field of every supported type.
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[model(table = "every_type")]
pub struct EveryType {
    #[model(primary_key)]
    pub key: i32,
    #[model(text)]
    pub body: String,
    #[model(max_length = 20, unique)]
    pub code: String,
    pub flag: bool,
    pub ratio: f64,
    pub at: DateTime<Utc>,
    pub day: NaiveDate,
    pub token: uuid::Uuid,
    pub doc: serde_json::Value,
    pub maybe: Option<String>,
    pub maybe_number: Option<i64>,
}

/// A model whose key is not auto-assigned.
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    #[model(primary_key)]
    pub token: uuid::Uuid,
    #[model(max_length = 50, unique)]
    pub label: String,
}

/// A shared model: it lives only in the shared schema.
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
#[model(shared)]
pub struct Plan {
    pub id: i64,
    #[model(max_length = 50, unique)]
    pub title: String,
}

/// A tenant model pointing at a shared one.
#[derive(Model, Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    pub id: i64,
    #[model(on_delete = "restrict")]
    pub plan: ForeignKey<Plan>,
    #[model(max_length = 50)]
    pub note: String,
}

pub fn register(registry: Registry) -> Registry {
    registry
        .register::<User>()
        .register::<Product>()
        .register::<EveryType>()
        .register::<Tag>()
        .register::<Plan>()
        .register::<Subscription>()
}

pub fn user(name: &str) -> User {
    User {
        id: 0,
        name: name.into(),
        email: format!("{}@example.com", name.to_lowercase()),
        is_active: false,
    }
}

pub fn product(name: &str, user: Option<&tenantry::Instance<User>>) -> Product {
    Product {
        id: 0,
        name: name.into(),
        user: user.map(ForeignKey::from),
    }
}

/// A QuerySet in `schema`, or in its default place for `None`.
pub trait UsingOpt {
    fn using_opt(self, schema: Option<&tenantry::SchemaName>) -> Self;
}

impl<M: Model> UsingOpt for tenantry::QuerySet<M> {
    fn using_opt(self, schema: Option<&tenantry::SchemaName>) -> Self {
        match schema {
            Some(schema) => self.using(schema),
            None => self,
        }
    }
}

/// The names of the products `query` reads through `all()`, in its order.
pub async fn names(query: tenantry::QuerySet<Product>) -> Vec<String> {
    query
        .all()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.into_inner().name)
        .collect()
}
