//! Models: the trait `#[derive(Model)]` implements, its static metadata, and typed columns.

mod column;
mod expression;
mod filter;
mod foreign_key;
mod meta;
pub(crate) mod path;

pub(crate) use column::meta;
pub(crate) use column::Assigned;
pub use column::{Assignment, Column, Ordering};
pub use expression::Expression;
pub(crate) use expression::{Comparison, Proposed, Scope, Term};
pub use filter::Filter;
pub(crate) use filter::{Node, Test, TypedTest};
pub use foreign_key::ForeignKey;
pub use meta::{CheckMeta, ColumnMeta, ForeignKeyMeta, IndexMeta, ModelMeta, OnDelete};
pub use path::MAX_HOPS;

use crate::{error::Result, field::FieldType, row::Row};

/// A struct mapped to a table. Implement it with `#[derive(Model)]`, not by hand.
///
/// The metadata is one `static` per model: creating a thousand tenants copies none of it;
/// the schema is chosen when a statement is rendered.
pub trait Model: Sized + Send + Sync + Unpin + 'static {
    /// The model's table, columns and relations.
    const META: &'static ModelMeta;

    /// The Rust type of the primary key. `Eq + Hash`: related rows are matched to their
    /// referencing rows by key in a hash map (`select_related`), so a float or JSON field
    /// cannot be a primary key.
    type PrimaryKey: FieldType + Clone + Eq + std::hash::Hash + std::fmt::Debug;

    /// Decodes a row whose columns are this model's, in [`ModelMeta::columns`] order.
    fn from_row(row: &Row) -> Result<Self>;

    /// The bound value of column `index` (in [`ModelMeta::columns`] order).
    fn column_value(&self, index: usize) -> sea_query::Value;

    /// Whether column `index` binds as `value` (`column_value(index) == value`, compared
    /// in place where the field's type can).
    fn column_matches(&self, index: usize, value: &sea_query::Value) -> bool {
        self.column_value(index) == *value
    }

    /// The model's hooks, for a model declared `#[model(hooks)]`.
    #[doc(hidden)]
    fn hooks() -> Option<crate::hooks::HookFns<Self>> {
        None
    }

    /// Adds one to the `#[model(version)]` field (after a save that bumped the stored one).
    fn bump_version(&mut self) {}

    /// Sets the `#[model(version)]` field to `from`'s.
    fn copy_version(&mut self, _from: &Self) {}

    /// The primary key.
    fn primary_key(&self) -> &Self::PrimaryKey;

    /// Sets the primary key (after the database assigned one).
    fn set_primary_key(&mut self, key: Self::PrimaryKey);

    /// The foreign key field stored in column `index`, for `select_related`.
    fn foreign_key_mut(&mut self, _index: usize) -> Option<&mut dyn crate::query::AnyForeignKey> {
        None
    }

    /// Starts a query over this model's table.
    ///
    /// `source` is a [`Registry`](crate::Registry) or a [`Transaction`](crate::Transaction).
    fn query(source: &impl crate::QuerySource) -> crate::QuerySet<Self> {
        crate::QuerySet::new(source.query_source())
    }
}
