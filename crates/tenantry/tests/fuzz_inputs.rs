//! The properties of the cargo-fuzz targets in `crates/tenantry-fuzz`, run on stable Rust
//! with a small xorshift generator over a hostile alphabet (quotes, backslashes, comment and
//! statement separators, LIKE wildcards, NUL, control and non-ASCII characters whose case
//! folding changes their length, reserved names and prefixes), 100,000 inputs per property.
//! The seed is fixed, so a failure reproduces; `TENANTRY_FUZZ_SEED` picks another.

#[path = "../../tenantry-fuzz/src/props.rs"]
mod props;

const ITERATIONS: usize = 100_000;

/// Tokens a hostile input is made of.
const HOSTILE: &[&str] = &[
    "\"",
    "`",
    "'",
    "\\",
    ";",
    "--",
    "/*",
    "*/",
    "%",
    "_",
    "\0",
    "\n",
    "\r",
    "\t",
    " ",
    ".",
    ",",
    "(",
    ")",
    "=",
    "$1",
    "?",
    "@",
    "#",
    "a",
    "z",
    "A",
    "Z",
    "0",
    "9",
    "é",
    "É",
    "ß",
    "İ",
    "ǅ",
    "ﬃ",
    "\u{202e}",
    "\u{200b}",
    "\u{feff}",
    "🦀",
    "pg_",
    "public",
    "main",
    "temp",
    "mysql",
    "sys",
    "default",
    "information_schema",
    "DROP TABLE users",
    "\" OR 1=1 --",
    "`; DROP DATABASE app; --",
    "' OR '1'='1",
    "\\'",
    "\\\"",
    "users",
    "\"public\".\"users\"",
];

/// Tokens of names the rule accepts, so the accepting path is reached often.
const NAME: &[&str] = &[
    "a", "b", "q", "z", "_", "0", "7", "9", "tenant", "pg", "pg_", "main", "public", "temp", "sys",
    "default", "x_",
];

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string of up to `max` tokens, mostly from `alphabet`, sometimes from the other.
    fn text(&mut self, alphabet: &[&str], other: &[&str], max: usize) -> String {
        let len = self.below(max + 1);
        let mut out = String::new();
        for _ in 0..len {
            let from = if self.below(8) == 0 { other } else { alphabet };
            out.push_str(from[self.below(from.len())]);
        }
        out
    }
}

fn seed() -> u64 {
    std::env::var("TENANTRY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
}

#[test]
fn schema_names_never_panic_and_render_quoted_once() {
    let mut rng = XorShift(seed());
    let mut accepted = 0;
    for i in 0..ITERATIONS {
        let input = match i % 4 {
            0 => rng.text(HOSTILE, NAME, 12),
            1 | 2 => rng.text(NAME, HOSTILE, 10),
            // Lengths around the 63-character limit.
            _ => "a".repeat(60 + rng.below(6)),
        };
        if tenantry::SchemaName::parse(&input).is_ok() {
            accepted += 1;
        }
        props::schema_name(&input);
    }
    for reserved in props::RESERVED {
        props::schema_name(reserved);
        assert!(tenantry::SchemaName::parse(reserved).is_err());
    }
    // Both paths were exercised.
    assert!(accepted > ITERATIONS / 10, "{accepted}");
    assert!(accepted < ITERATIONS * 9 / 10, "{accepted}");
}

#[test]
fn lookup_values_are_bound_never_rendered() {
    let mut rng = XorShift(seed() ^ 0xD1B5_4A32_D192_ED03);
    for i in 0..ITERATIONS {
        let value = rng.text(HOSTILE, NAME, 16);
        props::lookup_value_with(&value, Some(i));
    }
    // Every lookup with a few fixed hostile values.
    for value in [
        "",
        "%",
        "_",
        "\\",
        "'",
        "\"",
        "`",
        "\0",
        "İİİ",
        "' OR '1'='1",
    ] {
        props::lookup_value(value);
    }
}
