//! What `#[derive(Model)]` must refuse to compile, with the errors it must give.

#[test]
fn derive_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
