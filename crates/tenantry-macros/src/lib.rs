//! `#[derive(Model)]` for tenantry: a thin entry point over parse → model → expand.
//!
//! Every misuse is reported at once, each error at the span it concerns.

mod enumeration;
mod expand;
mod model;
mod parse;

use proc_macro::TokenStream;

mod migrations;

/// Derives `tenantry::Model` for a struct with named fields.
///
/// Struct attributes, in `#[model(...)]`:
/// - `table = "name"`: the table (default: the snake_case struct name plus `s`);
/// - `shared`: the model lives only in the shared schema and ignores the tenant context.
/// - `tenant`: the model is tenant-only: it lives only in tenant schemas. Every operation on
///   it (and every lookup, subquery, `select_related` or prefetch reaching it) with no
///   tenant schema chosen (no `using(schema)`, no instance origin, no `with_tenant` /
///   `set_tenant`, no `activate_schema`) returns `Error::TenantRequired` before any SQL is
///   sent, and `Registry::create_all` and the shared migration scope leave its table out of
///   the shared schema. Not together with `shared`; a foreign key to a tenant-only model is
///   allowed only on another tenant-only model. Without either attribute a model is
///   tenant-capable: it has a table in the shared schema and in every tenant schema.
/// - `hooks`: the model implements `tenantry::Hooks`.
/// - `unique(a, b, ..)` / `index(a, b, ..)`: a composite unique constraint or index over two
///   fields or more, named `uq_<table>_<columns>` / `ix_<table>_<columns>` unless
///   `name = "..."` is in the list (at most 63 characters). A composite unique key is an
///   upsert's conflict key. Repeatable.
/// - `many_to_many(labels, to = Label, table = "...")`: a many-to-many relation whose
///   junction the derive writes: a model `<Model><Name>` (`ArticleLabels`) in table
///   `<table>_<name>` unless given (at most 60 characters), with `id`, a cascading foreign
///   key to each side (named after the two models; `from_<m>` / `to_<m>` for a model
///   related to itself, `to = Self` included) and a unique key `uq_<table>` over the pair.
///   The junction is shared when both sides are, tenant-only when either is, and
///   otherwise in the shared schema and every tenant schema like any model: a shared
///   model's links to tenant rows are each tenant's own. It is registered with this
///   model, and built with it by `create_all`, `create_schema` (a list naming the model
///   builds its junctions) and `makemigrations`; `Model::labels()` returns the
///   `tenantry::ManyToMany` relation. A link to a shared row is not deleted with that row
///   on MySQL and SQLite, which leave out cross-schema foreign keys. Repeatable.
/// - `check(name = "...", condition = <filter>)`: a check constraint; the condition is a
///   `tenantry::Filter` on the model's own columns (`Seat::price().gte(0)`), rendered in the
///   table's DDL. Repeatable.
///
/// Field attributes, in `#[model(...)]`:
/// - `primary_key` (default: the field named `id`); an `i32` / `i64` key is auto-increment;
/// - `max_length = N` (a `String` becomes `VARCHAR(N)`, 255 when not given) or `text`;
/// - `max_digits = P, decimal_places = S` (Edgy's `DecimalField`): required on a
///   `Decimal` / `Option<Decimal>` field, which becomes `NUMERIC(P, S)`; `1 <= P <= 28`,
///   `S <= P`;
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

/// Derives `tenantry::FieldType` for an enum whose variants have no fields: a model field
/// of that type is stored as the variant's name, as text (`VARCHAR(255)`), so a new variant
/// needs no migration. `#[model(rename = "text")]` on a variant stores it as `text`
/// instead. A stored text that is no variant's is `Error::Decode` when read, never a
/// default. Filters compare with a variant: `Ticket::status().eq(Status::Open)`.
///
/// `#[model(type_name = "ticket_status")]` on the enum stores it on PostgreSQL as an enum
/// type of that name in each schema holding a table that uses it (see
/// `tenantry::EnumType`); MySQL and SQLite keep the text. A label is at most 63 bytes.
///
/// ```text
/// #[derive(tenantry::Enum, Debug, Clone, Copy, PartialEq)]
/// #[model(type_name = "ticket_status")]
/// enum Status { Open, #[model(rename = "in-progress")] InProgress, Closed }
/// ```
#[proc_macro_derive(Enum, attributes(model))]
pub fn derive_enum(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    enumeration::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Embeds the migration files (`*.json`) of a directory, relative to the crate's
/// `Cargo.toml`, sorted by name; evaluates to `tenantry::Result<tenantry::migrate::Migrations>`
/// (an invalid file is an error naming it). Add `println!("cargo:rerun-if-changed=<dir>")`
/// to a build script so that a new file rebuilds the crate.
///
/// ```text
/// let migrations = tenantry::migrations!("migrations")?;
/// ```
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    let dir = syn::parse_macro_input!(input as syn::LitStr);
    migrations::expand(dir)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
