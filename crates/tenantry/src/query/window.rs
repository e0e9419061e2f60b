//! What a QuerySet's `limit` and `offset` cut outside of reading rows: the rows `count` and
//! `exists` see, and nothing for the operations over every matching row (writes and
//! aggregates), which refuse them rather than silently widen the window to every row.

use super::QuerySet;
use crate::{
    error::{Error, Result},
    model::Model,
};

/// Why `update` and `delete` refuse a window.
pub(super) const WRITE_WINDOW: &str =
    "update and delete change every matching row, which no limit or offset cuts; remove them \
     (to change a window, filter on the keys it holds)";

/// Why aggregates refuse a window.
pub(super) const AGGREGATE_WINDOW: &str =
    "an aggregate covers every matching row, which no limit or offset cuts; remove them";

/// Why keyset pages refuse a window.
pub(super) const PAGES_WINDOW: &str =
    "the pages cut the whole QuerySet, of every matching row; remove its limit and offset";

/// Why `get` refuses a window.
pub(super) const GET_WINDOW: &str =
    "get() looks for the one row matching its filter among every matching row, which a limit \
     or an offset would hide; remove them";

/// Why `last` refuses a window.
pub(super) const LAST_WINDOW: &str =
    "last() reads the ordering backwards, so a limit or an offset would cut the other end; \
     take the last row of all() instead";

impl<M: Model> QuerySet<M> {
    /// How many of `matching` rows the window keeps: those after the offset, at most the
    /// limit (the same rows [`all`](Self::all) would return, whatever their order).
    pub(super) fn windowed(&self, matching: u64) -> u64 {
        let after_offset = matching.saturating_sub(self.offset.unwrap_or(0));
        self.limit
            .map_or(after_offset, |limit| after_offset.min(limit))
    }

    /// [`Error::InvalidArgument`] when a limit or an offset is set, for an operation over
    /// every matching row (`reason` says which and what to do instead).
    pub(super) fn refuse_window(&self, reason: &'static str) -> Result<()> {
        if self.limit.is_none() && self.offset.is_none() {
            return Ok(());
        }
        Err(Error::InvalidArgument {
            argument: if self.limit.is_some() {
                "limit"
            } else {
                "offset"
            },
            reason,
        })
    }
}
