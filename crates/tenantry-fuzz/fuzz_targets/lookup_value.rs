//! Arbitrary text as the value of every text lookup: it is bound, never rendered.
#![no_main]

#[path = "../src/props.rs"]
mod props;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    props::lookup_value(&String::from_utf8_lossy(data));
});
