//! `#[derive(Model)]` for tenantry: a thin entry point over parse → model → expand.
//!
//! Every misuse is reported at once, each error at the span it concerns.

mod expand;
mod model;
mod parse;

use proc_macro::TokenStream;

/// Derives `tenantry::Model` for a struct with named fields.
///
/// Struct attributes, in `#[model(...)]`:
/// - `table = "name"`: the table (default: the snake_case struct name plus `s`);
/// - `shared`: the model lives only in the shared schema and ignores the tenant context.
///
/// Field attributes, in `#[model(...)]`:
/// - `primary_key` (default: the field named `id`); an `i32` / `i64` key is auto-increment;
/// - `max_length = N` (a `String` becomes `VARCHAR(N)`, 255 when not given) or `text`;
/// - `default = <expr>`: the column's DDL default;
/// - `unique`, `index`;
/// - `column = "name"`: the column name (a `ForeignKey` field `user` defaults to `user_id`);
/// - `on_delete = "cascade" | "set_null" | "restrict"` on a `ForeignKey` (default cascade;
///   `set_null` needs an `Option<ForeignKey<_>>`).
#[proc_macro_derive(Model, attributes(model))]
pub fn derive_model(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    match parse::parse(&input).and_then(model::Model::build) {
        Ok(model) => expand::expand(&model).into(),
        Err(error) => error.to_compile_error().into(),
    }
}
