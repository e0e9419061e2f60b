//! `SchemaName::parse` on arbitrary text, and the SQL a valid name renders into.
#![no_main]

#[path = "../src/props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    props::schema_name(&String::from_utf8_lossy(data));
});
