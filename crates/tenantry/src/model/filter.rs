//! Conditions built from column lookups, combined with `&`, `|` and `!`.

use sea_query::{Condition, IntoCondition};

/// A WHERE condition. Build one from a column lookup such as `User::email().icontains("x")`,
/// combine with `&` (and), `|` (or) and `!` (not), or the methods of the same names.
///
/// ```
/// # use tenantry::Filter;
/// # fn demo(a: Filter, b: Filter, c: Filter) -> Filter {
/// (a | b) & !c
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Filter(pub(crate) Condition);

impl Filter {
    pub(crate) fn new(expr: sea_query::Expr) -> Filter {
        Filter(expr.into_condition())
    }

    /// Both conditions.
    pub fn and(self, other: Filter) -> Filter {
        Filter(Condition::all().add(self.0).add(other.0))
    }

    /// Either condition.
    pub fn or(self, other: Filter) -> Filter {
        Filter(Condition::any().add(self.0).add(other.0))
    }

    /// Every filter of `filters` (true when there is none).
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(
            filters
                .into_iter()
                .fold(Condition::all(), |c, f| c.add(f.0)),
        )
    }

    /// Any filter of `filters` (false when there is none).
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Filter {
        Filter(
            filters
                .into_iter()
                .fold(Condition::any(), |c, f| c.add(f.0)),
        )
    }

    pub(crate) fn into_condition(self) -> Condition {
        self.0
    }
}

impl std::ops::BitAnd for Filter {
    type Output = Filter;
    fn bitand(self, rhs: Filter) -> Filter {
        self.and(rhs)
    }
}

impl std::ops::BitOr for Filter {
    type Output = Filter;
    fn bitor(self, rhs: Filter) -> Filter {
        self.or(rhs)
    }
}

impl std::ops::Not for Filter {
    type Output = Filter;
    fn not(self) -> Filter {
        Filter(self.0.not())
    }
}
