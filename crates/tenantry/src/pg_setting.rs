//! PostgreSQL settings that hold for one transaction only, never for the pooled session.

use sea_query::{Func, Query, SelectStatement};

/// `SELECT set_config('<name>', '<value>', true)`: `name` set to `value` until the
/// transaction ends (`SET LOCAL` as a statement of the query builder, its values bound).
pub(crate) fn set_local(name: &str, value: &str) -> SelectStatement {
    Query::select()
        .expr(Func::cust("set_config").arg(name).arg(value).arg(true))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::set_local;

    #[test]
    fn renders_set_config_for_the_transaction() {
        assert_eq!(
            set_local("lock_timeout", "100ms").to_string(sea_query::PostgresQueryBuilder),
            "SELECT set_config('lock_timeout', '100ms', TRUE)"
        );
    }
}
