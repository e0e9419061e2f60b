//! What changed through an instance since its row was read or written: what
//! [`save`](super::Instance::save) writes.
//!
//! The stored values are copied at the first change made through the instance (reading
//! costs nothing). A save inside a transaction cannot know whether its write will stay (the
//! transaction, or a savepoint around the save, may be rolled back unseen): the fields it
//! wrote are then *unsure*, written by every later save until one outside a transaction
//! writes them.

use sea_query::Value;

use crate::model::Model;

/// The stored values of an instance's columns, and which fields a save inside a
/// transaction wrote.
#[derive(Clone)]
pub(crate) struct Tracked {
    values: Box<[Value]>,
    unsure: Box<[bool]>,
}

/// What a save of the stored row writes.
pub(crate) enum Changes {
    /// Nothing was changed through the instance: every field is written.
    Untracked,
    /// Every change was set back (and no field is unsure): none is written.
    None,
    /// These fields.
    Fields(Vec<&'static str>),
}

impl Tracked {
    /// The values `model` holds now, taken as stored.
    pub(crate) fn of<M: Model>(model: &M) -> Tracked {
        let columns = 0..M::META.columns.len();
        Tracked {
            values: columns.clone().map(|i| model.column_value(i)).collect(),
            unsure: columns.map(|_| false).collect(),
        }
    }

    /// The fields of `model` to write: those that differ from the stored values or are
    /// unsure (the key and the version column left out).
    pub(crate) fn changes<M: Model>(&self, model: &M) -> Changes {
        let meta = M::META;
        let changed: Vec<&'static str> = meta
            .columns
            .iter()
            .enumerate()
            .filter(|(i, c)| !c.primary_key && Some(*i) != meta.version)
            .filter(|(i, _)| {
                self.unsure.get(*i).copied().unwrap_or(true)
                    || self.values.get(*i) != Some(&model.column_value(*i))
            })
            .map(|(_, c)| c.name)
            .collect();
        if changed.is_empty() {
            Changes::None
        } else {
            Changes::Fields(changed)
        }
    }

    /// After a save inside a transaction wrote `only` (every field for `None`).
    pub(crate) fn written_in_transaction<M: Model>(&mut self, only: Option<&[&'static str]>) {
        for (i, column) in M::META.columns.iter().enumerate() {
            if only.is_none_or(|names| names.contains(&column.name)) {
                self.unsure[i] = true;
            }
        }
    }

    /// After a save outside a transaction wrote `names` of `model`: they are stored.
    pub(crate) fn written<M: Model>(&mut self, model: &M, names: &[&'static str]) {
        for (i, column) in M::META.columns.iter().enumerate() {
            if names.contains(&column.name) {
                self.values[i] = model.column_value(i);
                self.unsure[i] = false;
            }
        }
    }
}
