//! The foreign keys a column handle is reached through: `Product::user().to(User::name())`
//! is the `name` column at the end of the path `[user_id → User]`.

use super::ModelMeta;

/// The most foreign keys one lookup follows.
pub const MAX_HOPS: usize = 4;

/// One foreign key followed: its column, and the model its author said it leads to (checked
/// against the metadata when the query is rendered).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hop {
    pub(crate) column: &'static str,
    pub(crate) target: fn() -> &'static ModelMeta,
}

/// A sequence of at most [`MAX_HOPS`] hops. `Copy` and const-constructible, so a column
/// handle stays a `const fn` value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Path {
    hops: [Option<Hop>; MAX_HOPS],
    len: u8,
    /// More hops were asked for than fit: rendering refuses the lookup.
    overflow: bool,
}

impl Path {
    pub(crate) const EMPTY: Path = Path {
        hops: [None; MAX_HOPS],
        len: 0,
        overflow: false,
    };

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0 && !self.overflow
    }

    pub(crate) fn overflowed(&self) -> bool {
        self.overflow
    }

    pub(crate) fn push(&mut self, hop: Hop) {
        match self.hops.get_mut(usize::from(self.len)) {
            Some(slot) => {
                *slot = Some(hop);
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// This path followed by `rest`.
    pub(crate) fn then(mut self, rest: &Path) -> Path {
        for hop in rest.hops() {
            self.push(*hop);
        }
        self.overflow |= rest.overflow;
        self
    }

    /// The model the path ends at, `None` for an empty path.
    pub(crate) fn last_target(&self) -> Option<fn() -> &'static ModelMeta> {
        self.hops().last().map(|hop| hop.target)
    }

    pub(crate) fn hops(&self) -> impl DoubleEndedIterator<Item = &Hop> {
        self.hops.iter().flatten()
    }
}
