//! `rust_decimal::Decimal` fields: the bounds of a `NUMERIC(p, s)` column, the check every
//! written value passes, and SQLite's storage and ordering of decimals.
//!
//! **Bounds.** A decimal column has a precision `p` (digits in all, `max_digits`) and a scale
//! `s` (digits after the point, `decimal_places`), `1 <= p <= 28` and `s <= p`. 28 is the
//! most digits every value of which `rust_decimal::Decimal` holds exactly (its mantissa is
//! 96 bits, its scale at most 28), so whatever a column holds decodes without loss; it is
//! also within MySQL's and MariaDB's limits (65 digits, scale 30) and PostgreSQL's.
//!
//! **Writes.** Every value written to a decimal column (an insert, a save, a bulk `update`'s
//! `set`) is checked in Rust before it is bound, on every backend: more integer digits than
//! `p - s`, or more significant decimal places than `s`, is [`Error::ValueOutOfRange`]
//! (nothing is sent). PostgreSQL would round the extra places silently, MySQL would round
//! them or, outside strict mode, clip an overflow to the largest value, and SQLite would keep
//! anything; the check makes all three refuse alike. Trailing zeros do not count (`1.500`
//! fits two places), and an accepted value is bound rescaled to `s` places, so every backend
//! stores and returns `1.50` for `1.5` in a column of scale 2. A column's DDL `default` is
//! rendered as given, unchecked: tenantry's own inserts bind every column, so it only applies
//! to rows written by other SQL, where the server's rules (or SQLite's none) apply.
//!
//! **SQLite.** SQLite has no exact decimal type: a `NUMERIC` column would turn `0.1` into a
//! float. A decimal column is therefore `TEXT COLLATE tenantry_decimal`: the value's exact
//! text, compared by tenantry's `tenantry_decimal` collation, which every connection of a
//! tenantry SQLite database registers. The collation orders by numeric value (`9.00` before
//! `10.00`, `1.5` equal to `1.50`), so `=`, `<>`, `<`, `>`, `IN`, `ORDER BY` and unique
//! indexes on the column give the same answers as on PostgreSQL and MySQL; text that is not
//! a decimal (written by other means) sorts after every decimal, byte by byte. A connection
//! that has not registered the collation (the `sqlite3` shell) can read the column but gets
//! an error ("no such collation sequence"), never a wrong answer, when it compares or sorts
//! by it.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use crate::error::{Error, Result};

/// The most digits a decimal column may have (`max_digits`).
pub(crate) const MAX_PRECISION: u32 = 28;

/// The name of the SQLite collation of decimal columns, as a literal for `concat!`.
macro_rules! sqlite_collation {
    () => {
        "tenantry_decimal"
    };
}

/// The SQLite collation of decimal columns, registered on every connection.
pub(crate) const SQLITE_COLLATION: &str = sqlite_collation!();

/// The collation clause of a SQLite decimal column's definition.
pub(crate) const SQLITE_COLLATE: &str = concat!("COLLATE ", sqlite_collation!());

/// The longest text the collation parses: a `Decimal` is at most 28 digits, a sign and a
/// point (30 characters); anything longer is not one of tenantry's values.
const MAX_TEXT: usize = 64;

/// `value` checked against `NUMERIC(precision, scale)` and rescaled to `scale` places, or
/// why it does not fit.
pub(crate) fn fit(
    value: Decimal,
    precision: u32,
    scale: u32,
) -> std::result::Result<Decimal, String> {
    if precision == 0 || precision > MAX_PRECISION || scale > precision {
        return Err(format!(
            "NUMERIC({precision}, {scale}) is not a column tenantry supports (1 <= p <= {MAX_PRECISION}, s <= p)"
        ));
    }
    let normalized = value.normalize();
    let places = normalized.scale();
    if places > scale {
        return Err(format!(
            "{places} decimal places; NUMERIC({precision}, {scale}) keeps {scale} and would round it"
        ));
    }
    let digits = digit_count(normalized.mantissa().unsigned_abs());
    let integer_digits = digits.saturating_sub(places);
    let allowed = precision.saturating_sub(scale);
    if integer_digits > allowed {
        return Err(format!(
            "{integer_digits} integer digits; NUMERIC({precision}, {scale}) holds at most {allowed}"
        ));
    }
    let mut rescaled = normalized;
    rescaled.rescale(scale);
    // `-0` is zero: stored as `0.00` everywhere (PostgreSQL and MySQL drop the sign anyway).
    if rescaled.is_zero() {
        rescaled.set_sign_positive(true);
    }
    Ok(rescaled)
}

/// The number of decimal digits of `n` (0 for 0).
fn digit_count(mut n: u128) -> u32 {
    let mut digits = 0;
    while n > 0 {
        n /= 10;
        digits += 1;
    }
    digits
}

/// Checks a value bound to the decimal column `column` of `model`, whose bounds are
/// `numeric` (`None`: a column declared without them, which the derive never makes).
pub(crate) fn check(
    model: &'static str,
    column: &'static str,
    numeric: Option<(u32, u32)>,
    value: Decimal,
) -> Result<Decimal> {
    let Some((precision, scale)) = numeric else {
        return Err(Error::ValueOutOfRange {
            model,
            column,
            reason: "the column was declared without max_digits and decimal_places".into(),
        });
    };
    fit(value, precision, scale).map_err(|reason| Error::ValueOutOfRange {
        model,
        column,
        reason,
    })
}

/// A decimal stored as SQLite text, parsed exactly.
pub(crate) fn parse_stored(text: &str) -> std::result::Result<Decimal, sqlx::error::BoxDynError> {
    parse(text).ok_or_else(|| "the stored text is not a decimal of at most 28 digits".into())
}

/// `text` as an exact decimal, or `None`: too long, not a decimal, or more digits than a
/// `Decimal` holds (never rounded).
fn parse(text: &str) -> Option<Decimal> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return None;
    }
    // The collation runs inside SQLite's C code, where an unwinding panic aborts the
    // process; whatever the parser does with stray text, it only ever means "not a decimal".
    std::panic::catch_unwind(|| Decimal::from_str_exact(text).ok())
        .ok()
        .flatten()
}

/// SQLite's `tenantry_decimal` collation: decimals by value, then every other text after
/// them, byte by byte. A total order (SQLite's requirement for a collation): equal values
/// written differently (`1.5`, `1.50`) are equal.
pub(crate) fn collate(a: &str, b: &str) -> Ordering {
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.as_bytes().cmp(b.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn fit_checks_integer_digits_and_places() {
        assert_eq!(fit(d("1.5"), 12, 2).unwrap().to_string(), "1.50");
        assert_eq!(fit(d("1.500"), 12, 2).unwrap().to_string(), "1.50");
        assert_eq!(fit(d("0"), 12, 2).unwrap().to_string(), "0.00");
        assert_eq!(fit(d("-0.000"), 12, 2).unwrap().to_string(), "0.00");
        assert_eq!(fit(d("-0.05"), 3, 2).unwrap().to_string(), "-0.05");
        assert_eq!(
            fit(d("9999999999.99"), 12, 2).unwrap().to_string(),
            "9999999999.99"
        );
        assert!(fit(d("10000000000"), 12, 2).is_err());
        assert!(fit(d("-10000000000.00"), 12, 2).is_err());
        assert!(fit(d("1.005"), 12, 2).is_err());
        assert!(fit(d("1"), 2, 2).is_err());
        assert_eq!(fit(d("0.99"), 2, 2).unwrap().to_string(), "0.99");
        assert!(fit(d("1"), 29, 0).is_err());
        assert!(fit(d("1"), 2, 3).is_err());
        assert_eq!(fit(d("100"), 3, 0).unwrap().to_string(), "100");
        assert!(fit(d("1000"), 3, 0).is_err());
        let max = "9999999999999999999999999999";
        assert_eq!(fit(d(max), 28, 0).unwrap().to_string(), max);
        let small = "0.0000000000000000000000000001";
        assert_eq!(fit(d(small), 28, 28).unwrap().to_string(), small);
    }

    #[test]
    fn collation_orders_by_value() {
        let mut values = vec![
            "10.00", "9.00", "-1.5", "-10", "0", "abc", "1.50", "", "0.001",
        ];
        values.sort_by(|a, b| collate(a, b));
        assert_eq!(
            values,
            ["-10", "-1.5", "0", "0.001", "1.50", "9.00", "10.00", "", "abc"]
        );
        assert_eq!(collate("1.5", "1.50"), Ordering::Equal);
        assert_eq!(collate("+1.5", "1.5"), Ordering::Equal);
        assert_eq!(collate(&"9".repeat(100), "1"), Ordering::Greater);
        assert_eq!(collate("1e5", "2"), Ordering::Greater);
        assert_eq!(
            collate("99999999999999999999999999999999", "1"),
            Ordering::Greater
        );
    }

    #[test]
    fn parse_stored_refuses_what_it_cannot_hold_exactly() {
        assert_eq!(parse_stored("1.50").unwrap().to_string(), "1.50");
        assert!(parse_stored("0.12345678901234567890123456789").is_err());
        assert!(parse_stored("1.0e-05").is_err());
        assert!(parse_stored("").is_err());
        assert!(parse_stored("NaN").is_err());
    }
}
