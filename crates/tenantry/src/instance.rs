//! A model value that knows where it lives.

use sea_query::{Expr, ExprTrait, Query};

use crate::{
    error::{Error, Result},
    field::FieldType,
    model::{Column, ForeignKey, Model},
    query::{insert_chunk, QuerySet, Source},
    target::{Origin, Target},
};

/// A row of `M` together with its origin: the database and schema it was read from or will
/// be written to. Dereferences to `M`; serializes as `M`.
///
/// [`save`](Self::save), [`delete`](Self::delete), [`refresh`](Self::refresh),
/// [`fetch`](Self::fetch) and [`related`](Self::related) all go back to the origin,
/// whatever the current tenant context says. An instance read or written in a transaction
/// works inside that transaction while it is open, and on its database afterwards.
#[derive(Clone)]
pub struct Instance<M> {
    model: M,
    origin: Origin,
    stored: bool,
}

impl<M: Model> Instance<M> {
    pub(crate) fn stored(model: M, origin: Origin) -> Self {
        Instance {
            model,
            origin,
            stored: true,
        }
    }

    pub(crate) fn unsaved(model: M, origin: Origin) -> Self {
        Instance {
            model,
            origin,
            stored: false,
        }
    }

    /// Where this instance lives.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Whether the row exists in the database (it was loaded, created or saved).
    pub fn is_stored(&self) -> bool {
        self.stored
    }

    /// The model value, without its origin.
    pub fn into_inner(self) -> M {
        self.model
    }

    fn target(&self) -> Target {
        Target {
            conn: self.origin.conn(),
            schema: self.origin.schema.clone(),
        }
    }

    fn pk_filter(&self) -> sea_query::Condition {
        let pk = M::META.primary_key_column().name;
        Expr::col(pk).eq(self.model.primary_key().to_value()).into()
    }

    /// [`Error::NotSaved`] for an instance whose row was never inserted.
    fn require_stored(&self) -> Result<()> {
        if self.stored {
            Ok(())
        } else {
            Err(Error::NotSaved {
                model: M::META.table,
            })
        }
    }

    /// Inserts the row if it is not stored yet (the database assigns an auto-increment key),
    /// else updates every non-key column of it. An update that finds no row is
    /// [`Error::NotFound`].
    pub async fn save(&mut self) -> Result<()> {
        let target = self.target();
        if !self.stored {
            insert_chunk(&target, std::slice::from_mut(&mut self.model)).await?;
            self.stored = true;
            return Ok(());
        }
        let meta = M::META;
        let mut update = Query::update();
        update
            .table(target.table(meta))
            .values(
                meta.columns
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| !c.primary_key)
                    .map(|(i, c)| (c.name, Expr::val(self.model.column_value(i)))),
            )
            .cond_where(self.pk_filter());
        if target.execute(&update).await?.rows_affected == 0 && !self.exists().await? {
            return Err(Error::NotFound { model: meta.table });
        }
        Ok(())
    }

    async fn exists(&self) -> Result<bool> {
        let key = self.model.primary_key().clone();
        self.same_place::<M>()
            .filter(pk_column::<M>().eq(key))
            .exists()
            .await
    }

    /// Deletes the row; returns the model value. Deleting a row that is already gone is
    /// [`Error::NotFound`]; an instance that was never saved is [`Error::NotSaved`].
    pub async fn delete(self) -> Result<M> {
        self.require_stored()?;
        let target = self.target();
        let mut delete = Query::delete();
        delete
            .from_table(target.table(M::META))
            .cond_where(self.pk_filter());
        if target.execute(&delete).await?.rows_affected == 0 {
            return Err(Error::NotFound {
                model: M::META.table,
            });
        }
        Ok(self.model)
    }

    /// Reloads every field from the database; [`Error::NotFound`] if the row is gone,
    /// [`Error::NotSaved`] if it was never saved.
    pub async fn refresh(&mut self) -> Result<()> {
        self.require_stored()?;
        let key = self.model.primary_key().clone();
        let fresh = self.same_place().get_pk(key).await?;
        self.model = fresh.model;
        Ok(())
    }

    /// A QuerySet on this instance's database and schema.
    fn same_place<R: Model>(&self) -> QuerySet<R> {
        let mut origin = self.origin.clone();
        if R::META.shared {
            origin.schema = None;
        }
        QuerySet::new(Source::Origin(origin))
    }

    /// Loads the row `key` points to, from this instance's database and schema (the shared
    /// schema when `R` is a shared model). [`Error::NotFound`] if it is gone.
    pub async fn fetch<R: Model>(&self, key: &ForeignKey<R>) -> Result<Instance<R>> {
        self.same_place::<R>().get_pk(key.key().clone()).await
    }

    /// The rows of `C` whose foreign key `column` points to this instance (a user's
    /// products), in this instance's database and schema.
    pub fn related<C: Model>(&self, column: Column<C, M::PrimaryKey>) -> QuerySet<C> {
        self.same_place::<C>()
            .filter(column.eq(self.model.primary_key().clone()))
    }
}

fn pk_column<M: Model>() -> Column<M, M::PrimaryKey> {
    Column::new(M::META.primary_key_column().name)
}

impl<M> std::ops::Deref for Instance<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M> std::ops::DerefMut for Instance<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.model
    }
}

impl<M: std::fmt::Debug> std::fmt::Debug for Instance<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.model.fmt(f)
    }
}

impl<M: serde::Serialize> serde::Serialize for Instance<M> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.model.serialize(s)
    }
}

impl<M: PartialEq> PartialEq for Instance<M> {
    fn eq(&self, other: &Self) -> bool {
        self.model == other.model
    }
}
