//! The foreign key field type.

use super::Model;
use crate::{field::FieldType, row::Row, Instance};

/// A field that points at a row of `M`: stored as `M`'s primary key in a `<field>_id` column.
///
/// It holds the key and, after [`select_related`](crate::QuerySet::select_related), the
/// loaded row. Load it on demand with [`Instance::fetch`](crate::Instance::fetch), which
/// reads from the schema the owning instance came from (or the shared schema when `M` is a
/// shared model). Serializes as the bare key.
pub struct ForeignKey<M: Model> {
    key: M::PrimaryKey,
    loaded: Option<Box<Instance<M>>>,
}

impl<M: Model> ForeignKey<M> {
    /// A reference to the row whose primary key is `key`.
    pub fn new(key: M::PrimaryKey) -> Self {
        ForeignKey { key, loaded: None }
    }

    /// The referenced primary key.
    pub fn key(&self) -> &M::PrimaryKey {
        &self.key
    }

    /// The referenced row, when it was loaded with `select_related`.
    pub fn get(&self) -> Option<&Instance<M>> {
        self.loaded.as_deref()
    }

    pub(crate) fn set_loaded(&mut self, instance: Instance<M>) {
        self.loaded = Some(Box::new(instance));
    }
}

impl<M: Model> From<&Instance<M>> for ForeignKey<M> {
    fn from(instance: &Instance<M>) -> Self {
        ForeignKey::new(instance.primary_key().clone())
    }
}

impl<M: Model> From<&Instance<M>> for Option<ForeignKey<M>> {
    fn from(instance: &Instance<M>) -> Self {
        Some(ForeignKey::from(instance))
    }
}

impl<M: Model> Clone for ForeignKey<M>
where
    M: Clone,
{
    fn clone(&self) -> Self {
        ForeignKey {
            key: self.key.clone(),
            loaded: self.loaded.clone(),
        }
    }
}

impl<M: Model> std::fmt::Debug for ForeignKey<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ForeignKey<{}>({:?})", M::META.name, self.key)
    }
}

impl<M: Model> PartialEq for ForeignKey<M> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<M: Model> FieldType for ForeignKey<M> {
    const SQL_TYPE: crate::SqlType = <M::PrimaryKey as FieldType>::SQL_TYPE;
    fn to_value(&self) -> sea_query::Value {
        self.key.to_value()
    }
    fn null_value() -> sea_query::Value {
        <M::PrimaryKey as FieldType>::null_value()
    }
    fn decode(row: &Row, index: usize) -> Result<Self, sqlx::Error> {
        <M::PrimaryKey as FieldType>::decode(row, index).map(ForeignKey::new)
    }
    fn decode_nullable(row: &Row, index: usize) -> Result<Option<Self>, sqlx::Error> {
        <M::PrimaryKey as FieldType>::decode_nullable(row, index)
            .map(|key| key.map(ForeignKey::new))
    }
}

impl<M: Model> serde::Serialize for ForeignKey<M>
where
    M::PrimaryKey: serde::Serialize,
{
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.key.serialize(s)
    }
}

impl<'de, M: Model> serde::Deserialize<'de> for ForeignKey<M>
where
    M::PrimaryKey: serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        M::PrimaryKey::deserialize(d).map(ForeignKey::new)
    }
}
