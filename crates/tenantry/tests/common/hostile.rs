//! A shared corpus of hostile tenant names / `tenant` header values. Every entry of
//! [`corpus`] is an INVALID schema name: it must be refused before any SQL is sent.
//!
//! Valid names that merely look like a real tenant (a case-folded or padded variant) are a
//! different thing: they are well-formed, name no tenant, and must be treated as unknown.
//! They live apart, in [`valid_lookalikes`].
//!
//! Included by path from crates/tenantry-axum/tests and crates/tenantry-demo/tests.
#![allow(dead_code)]

/// Hostile names by category, deduplicated, in a stable order (at least 200).
pub fn corpus() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };

    // SQL fragments, quotes and comments.
    for s in [
        "a;drop schema public",
        "a; DROP SCHEMA public CASCADE",
        "x' OR '1'='1",
        "x\" OR \"1\"=\"1",
        "x` OR `1`=`1",
        "x'; DROP TABLE users; --",
        "Robert'); DROP SCHEMA public CASCADE;--",
        "a;b",
        "--",
        "a--",
        "a -- b",
        "/* */",
        "a/**/b",
        "a/*",
        "*/",
        "#",
        "a#b",
        "a'b",
        "'",
        "''",
        "a\"b",
        "\"",
        "\"\"",
        "a`b",
        "`",
        "a\\b",
        "\\",
        "a\\'b",
        "a\\\"b",
        "a\\0b",
        "a\\nb",
        "a%b",
        "a*",
        "a?",
        "$1",
        "$tenant",
        "@var",
        "a:b",
        "a::text",
        "a,b",
        "a(b)",
        "a=b",
        "a|b",
        "a&b",
        "a+b",
        "a[b]",
        "a{b}",
        "a<b>",
        "1; SELECT pg_sleep(10)",
        "a UNION SELECT * FROM tenants",
        "sleep(5)",
        "edgy;",
        "edgy' --",
        "edgy\" --",
    ] {
        add(s.into());
    }

    // Unicode look-alikes of an ordinary name.
    for s in [
        "\u{0430}bc",         // Cyrillic а
        "t\u{0435}nant",      // Cyrillic е
        "t\u{043e}p",         // Cyrillic о
        "\u{0442}enant",      // Cyrillic т
        "\u{0435}dgy",        // Cyrillic е in edgy
        "edg\u{0443}",        // Cyrillic у in edgy
        "t\u{03bf}p",         // Greek ο
        "\u{03b1}lpha",       // Greek α
        "\u{ff41}bc",         // fullwidth ａ
        "\u{ff54}enant",      // fullwidth ｔ
        "\u{ff45}\u{ff44}gy", // fullwidth ｅｄ
        "\u{0131}d",          // Turkish dotless ı
        "\u{0130}d",          // Turkish dotted İ
        "edg\u{0131}",        // ı
        "stra\u{df}e",        // ß
        "\u{fb01}le",         // ligature ﬁ
        "\u{fb02}ow",         // ligature ﬂ
        "caf\u{e9}",          // é precomposed
        "cafe\u{301}",        // e + combining acute
        "\u{2170}v",          // small roman numeral ⅰ
        "\u{1d41a}bc",        // mathematical bold a
        "日本",
        "😀",
        "edgy\u{1f600}",
        "\u{212a}elvin", // Kelvin sign K
        "edgy\u{00a0}",  // no-break space
        "\u{2003}edgy",  // em space
    ] {
        add(s.into());
    }

    // Invisible and bidi characters.
    for s in [
        "tenant\u{200b}",
        "\u{200b}tenant",
        "ten\u{200b}ant",
        "ten\u{200c}ant",
        "ten\u{200d}ant",
        "\u{feff}tenant",
        "tenant\u{202e}",
        "\u{202e}tnanet",
        "ten\u{2066}ant\u{2069}",
        "ten\u{00ad}ant", // soft hyphen
        "\u{200b}",
        "\u{feff}",
    ] {
        add(s.into());
    }

    // Control characters, alone and inside an ordinary name.
    for c in [
        '\0', '\n', '\r', '\t', '\u{1b}', '\u{7f}', '\u{7}', '\u{8}', '\u{b}', '\u{c}', '\u{85}',
    ] {
        add(c.to_string());
        add(format!("a{c}b"));
        add(format!("tenant{c}"));
        add(format!("{c}tenant"));
    }
    add("a\r\nb".into());
    add("tenant\r\nX-Injected: 1".into());
    add("\u{1b}[31mred".into());

    // Path traversal and path-like names.
    for s in [
        "../x",
        "..\\x",
        "../../etc/passwd",
        "..",
        ".",
        "./x",
        "/etc/passwd",
        "/x",
        "a/b",
        "a\\b\\c",
        "x.y",
        "x.sqlite",
        "main.x",
        "%2e%2e",
        "%2e%2e%2fx",
        "..%2fx",
        "%00",
        "a%00b",
        "~",
        "~root",
        "c:\\x",
        "file:x",
        "x?mode=rwc",
        "x#y",
        "\\\\server\\share",
    ] {
        add(s.into());
    }

    // Case variants of a tenant called "edgy" (uppercase is never valid).
    for s in [
        "Edgy", "EDGY", "eDgy", "edgY", "EdGy", "Tenant", "TENANT", "tenAnt", "A", "Z_1",
    ] {
        add(s.into());
    }

    // Empty and whitespace.
    for s in [
        "", " ", "  ", "\t\t", "a b", " tenant", "tenant ", " edgy ", "\u{3000}",
    ] {
        add(s.into());
    }

    // Reserved names.
    for s in [
        "public",
        "information_schema",
        "performance_schema",
        "mysql",
        "sys",
        "main",
        "temp",
        "default",
        "pg_catalog",
        "pg_toast",
        "pg_temp",
        "pg_x",
        "pg_",
        "pg_tenant",
    ] {
        add(s.into());
    }

    // Leading digits and punctuation.
    for s in [
        "1abc", "9", "0", "1_", "2edgy", "-a", "a-b", ".a", "$a", "!a",
    ] {
        add(s.into());
    }

    // Overlong names (63 is the limit).
    add("a".repeat(64));
    add("a".repeat(100));
    add("a".repeat(1000));
    add(format!("_{}", "x".repeat(63)));
    add(format!("{}é", "a".repeat(62)));
    add(format!("edgy{}", "_".repeat(60)));

    out
}

/// Valid schema names that resemble `tenant` without being it: a lookup must find no
/// tenant (shared data, or 404 in strict mode), never `tenant`'s data.
pub fn valid_lookalikes(tenant: &str) -> Vec<String> {
    let mut out = vec![
        format!("{tenant}_"),
        format!("_{tenant}"),
        format!("{tenant}0"),
        format!("{tenant}x"),
        tenant[..tenant.len() - 1].to_owned(),
    ];
    if tenant.len() * 2 <= 63 {
        out.push(format!("{tenant}{tenant}"));
    }
    out.push("edgy".into());
    out.push("nobody_here".into());
    out.push("_".into());
    out.retain(|n| n != tenant);
    out
}
