//! Model: check what was parsed and decide every column's properties.

use syn::{spanned::Spanned, Expr, GenericArgument, Ident, PathArguments, Type};

use crate::parse::{Errors, Parsed, ParsedCheck, ParsedField, ParsedIndex};

/// The checked model.
pub struct Model {
    pub ident: Ident,
    pub table: String,
    pub shared: bool,
    /// `#[model(tenant)]`: the model lives only in tenant schemas.
    pub tenant_only: bool,
    pub columns: Vec<Column>,
    pub primary_key: usize,
    /// The `#[model(version)]` column, if any.
    pub version: Option<usize>,
    /// `#[model(hooks)]`: the model implements `tenantry::Hooks`.
    pub hooks: bool,
    /// The composite indexes and unique constraints.
    pub indexes: Vec<Index>,
    /// The check constraints.
    pub checks: Vec<Check>,
    /// The generated many-to-many relations.
    pub many: Vec<Many>,
    pub vis: syn::Visibility,
    /// A generated junction's two sides, whose flags decide its own.
    pub sharing_of: Option<(syn::Path, syn::Path)>,
}

/// A generated many-to-many relation: its junction model and the method that returns it.
pub struct Many {
    /// The method on the model.
    pub name: Ident,
    /// The other model.
    pub to: Type,
    /// The junction model's type and table.
    pub junction: Ident,
    pub table: String,
    /// The junction's foreign keys to this model and to `to`.
    pub left: Ident,
    pub right: Ident,
}

/// A checked composite index.
pub struct Index {
    pub name: String,
    /// Where the name was written (or the `unique` / `index` word), for errors.
    pub span: proc_macro2::Span,
    /// Column names, in index order.
    pub columns: Vec<String>,
    pub unique: bool,
}

/// A checked check constraint.
pub struct Check {
    pub name: String,
    pub condition: Expr,
}

/// What a foreign key field points at.
pub struct Relation {
    pub target: Type,
    pub on_delete: OnDelete,
}

#[derive(Clone, Copy)]
pub enum OnDelete {
    Cascade,
    SetNull,
    Restrict,
}

/// A checked column.
pub struct Column {
    pub field: Ident,
    pub name: String,
    /// The field's full type.
    pub ty: Type,
    /// The type lookups compare with: the field type without `Option`, and a foreign key's
    /// target primary key.
    pub lookup: proc_macro2::TokenStream,
    pub nullable: bool,
    pub primary_key: bool,
    pub auto_increment: bool,
    pub max_length: Option<u32>,
    /// A decimal's `(precision, scale)`, from `max_digits` and `decimal_places`.
    pub numeric: Option<(u32, u32)>,
    pub text: bool,
    pub unique: bool,
    pub index: bool,
    pub default: Option<(Type, Expr)>,
    pub relation: Option<Relation>,
}

impl Model {
    pub fn build(parsed: Parsed) -> syn::Result<Model> {
        let mut errors = Errors::default();
        let table = parsed
            .table
            .as_ref()
            .map(|t| t.value())
            .unwrap_or_else(|| default_table(&parsed.ident.to_string()));
        let columns: Vec<Column> = parsed
            .fields
            .iter()
            .map(|f| column(f, &mut errors))
            .collect();
        let explicit: Vec<usize> = columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.primary_key)
            .map(|(i, _)| i)
            .collect();
        let primary_key = match explicit.as_slice() {
            [one] => *one,
            [] => match columns.iter().position(|c| c.field == "id") {
                Some(i) => i,
                None => {
                    errors.push(syn::Error::new(
                        parsed.ident.span(),
                        "a model needs a primary key: mark a field #[model(primary_key)] or name it `id`",
                    ));
                    0
                }
            },
            [_, second, ..] => {
                errors.push(syn::Error::new(
                    columns[*second].field.span(),
                    "only one field can be the primary key",
                ));
                explicit[0]
            }
        };
        if let (Some(_), Some(tenant)) = (&parsed.shared, &parsed.tenant) {
            errors.push(syn::Error::new(
                tenant.span(),
                "a model is either `shared` (only in the shared schema) or `tenant` (only in tenant schemas), not both",
            ));
        }
        let mut columns = columns;
        if let Some(pk) = columns.get_mut(primary_key) {
            pk.primary_key = true;
            pk.auto_increment = is_integer(&pk.ty) && pk.relation.is_none();
            if pk.nullable {
                errors.push(syn::Error::new(
                    pk.ty.span(),
                    "the primary key cannot be an Option",
                ));
            }
        }
        let version = version_column(&parsed, &columns, primary_key, &mut errors);
        if let Some(column) = version.and_then(|v| columns.get_mut(v)) {
            // Rows that predate the column (a migration adding it) start at version 0.
            if column.default.is_none() {
                column.default = Some((column.ty.clone(), syn::parse_quote!(0)));
            }
        }
        let indexes = parsed
            .indexes
            .iter()
            .filter_map(|ix| index(ix, &table, &parsed.fields, &columns, &mut errors))
            .collect();
        let indexes = distinct_indexes(indexes, &table, &columns, &mut errors);
        let checks = checks(&parsed.checks, &mut errors);
        let many = many(&parsed, &table, &mut errors);
        errors.finish(Model {
            ident: parsed.ident,
            table,
            shared: parsed.shared.is_some(),
            tenant_only: parsed.tenant.is_some(),
            columns,
            primary_key,
            version,
            hooks: parsed.hooks,
            indexes,
            checks,
            many,
            vis: parsed.vis,
            sharing_of: parsed.sharing_of,
        })
    }
}

/// Each `many_to_many(name, to = Model, table = "...")`: a name no field or other relation
/// of the model has, and the junction `<Model><Name>` with foreign keys named after the
/// two models (`from_<m>` / `to_<m>` when they are one).
fn many(parsed: &Parsed, table: &str, errors: &mut Errors) -> Vec<Many> {
    let mut out: Vec<Many> = Vec::new();
    let ident_of_model = &parsed.ident;
    let own = snake(&parsed.ident.to_string());
    for written in &parsed.many {
        let (Some(name), Some(to)) = (&written.name, &written.to) else {
            errors.push(syn::Error::new(
                written.keyword.span(),
                "many_to_many needs the relation's name and `to = Model`: many_to_many(tags, to = Tag)",
            ));
            continue;
        };
        let taken = parsed.fields.iter().any(|f| unraw(&f.ident) == unraw(name))
            || out.iter().any(|m| m.name == *name)
            || unraw(name) == "query";
        if taken {
            errors.push(syn::Error::new(
                name.span(),
                format!("`{name}` is already a field or relation of this model"),
            ));
        }
        // `to = Self` is this model.
        let to: Type = match last_segment(to) {
            Some(s) if s == "Self" => syn::parse_quote!(#ident_of_model),
            _ => to.clone(),
        };
        let other = last_segment(&to)
            .map(|s| snake(&s.to_string()))
            .unwrap_or_default();
        let (left, right) = if other == own {
            (format!("from_{own}"), format!("to_{own}"))
        } else {
            (own.clone(), other)
        };
        let junction_table = written
            .table
            .as_ref()
            .map_or_else(|| format!("{table}_{}", unraw(name)), |t| t.value());
        // The junction's unique key is `uq_<table>`: the table's name leaves room for it.
        if let Err(reason) = check_identifier(&format!("uq_{junction_table}")) {
            let span = written.table.as_ref().map_or(name.span(), |t| t.span());
            errors.push(syn::Error::new(
                span,
                format!("junction table `{junction_table}` (with its unique key `uq_{junction_table}`) {reason}: give a shorter table = \"...\" (at most 60 characters)"),
            ));
        }
        out.push(Many {
            name: name.clone(),
            to,
            junction: quote::format_ident!("{}{}", parsed.ident, camel(&unraw(name))),
            table: junction_table,
            left: field_ident(&left, name.span()),
            right: field_ident(&right, name.span()),
        });
    }
    out
}

/// A junction's field named `name`: a raw identifier for a keyword (`r#type`), `name_`
/// for the ones that cannot be raw (`self`, `super`, `crate`).
fn field_ident(name: &str, span: proc_macro2::Span) -> Ident {
    if syn::parse_str::<Ident>(name).is_ok() {
        Ident::new(name, span)
    } else if matches!(name, "self" | "super" | "crate") {
        Ident::new(&format!("{name}_"), span)
    } else {
        Ident::new_raw(name, span)
    }
}

/// `TenantUser` → `tenant_user`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(ch.to_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `best_tags` → `BestTags`.
fn camel(name: &str) -> String {
    name.split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// A composite index's columns and name: at least two distinct fields of the model.
fn index(
    written: &ParsedIndex,
    table: &str,
    fields: &[ParsedField],
    columns: &[Column],
    errors: &mut Errors,
) -> Option<Index> {
    let mut names: Vec<String> = Vec::new();
    for field in &written.fields {
        match fields.iter().position(|f| unraw(&f.ident) == unraw(field)) {
            Some(i) if names.contains(&columns[i].name) => errors.push(syn::Error::new(
                field.span(),
                format!("field `{field}` is named twice in this index"),
            )),
            Some(i) => names.push(columns[i].name.clone()),
            None => errors.push(syn::Error::new(
                field.span(),
                format!("the model has no field `{field}`"),
            )),
        }
    }
    let kind = if written.unique { "unique" } else { "index" };
    if written.fields.len() < 2 {
        errors.push(syn::Error::new(
            written.keyword.span(),
            format!("a composite {kind} names two fields or more; for one field write #[model({kind})] on the field"),
        ));
        return None;
    }
    let prefix = if written.unique { "uq" } else { "ix" };
    let name = match &written.name {
        Some(lit) => lit.value(),
        None => [prefix, table]
            .into_iter()
            .chain(names.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("_"),
    };
    let span = written
        .name
        .as_ref()
        .map_or(written.keyword.span(), |lit| lit.span());
    if let Err(reason) = check_identifier(&name) {
        errors.push(syn::Error::new(
            span,
            format!("index name `{name}` {reason}; give a shorter one with name = \"...\""),
        ));
    }
    Some(Index {
        name,
        span,
        columns: names,
        unique: written.unique,
    })
}

/// Refuses two indexes with one name, or one name shared with a field's own index
/// (`ix_<table>_<column>`), which the schema could not hold both of.
fn distinct_indexes(
    indexes: Vec<Index>,
    table: &str,
    columns: &[Column],
    errors: &mut Errors,
) -> Vec<Index> {
    let own: Vec<String> = columns
        .iter()
        .filter(|c| c.index)
        .map(|c| format!("ix_{table}_{}", c.name))
        .collect();
    let mut seen: Vec<&str> = Vec::new();
    for index in &indexes {
        if seen.contains(&index.name.as_str()) || own.contains(&index.name) {
            errors.push(syn::Error::new(
                index.span,
                format!("two indexes of this model are named `{}`: give one another name with name = \"...\"", index.name),
            ));
        }
        seen.push(&index.name);
    }
    indexes
}

/// Each check's name (an identifier) and condition, both required.
fn checks(written: &[ParsedCheck], errors: &mut Errors) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    for check in written {
        let (Some(name), Some(condition)) = (&check.name, &check.condition) else {
            errors.push(syn::Error::new(
                check.keyword.span(),
                "a check needs both `name = \"...\"` and `condition = <filter>`",
            ));
            continue;
        };
        let text = name.value();
        if let Err(reason) = check_identifier(&text) {
            errors.push(syn::Error::new(
                name.span(),
                format!("check name `{text}` {reason}"),
            ));
        }
        if out.iter().any(|c| c.name == text) {
            errors.push(syn::Error::new(
                name.span(),
                format!("two checks are named `{text}`"),
            ));
        }
        out.push(Check {
            name: text,
            condition: condition.clone(),
        });
    }
    out
}

/// The rule migrations hold names to (`tenantry::migrate`): a letter or `_`, then letters,
/// digits and `_`, at most 63 characters (PostgreSQL's limit).
pub(crate) fn check_identifier(name: &str) -> Result<(), &'static str> {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || b == b'_' => {}
        _ => return Err("must start with a letter or '_'"),
    }
    if name.len() > 63 {
        return Err("is longer than 63 characters");
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("may hold only ASCII letters, digits and '_'");
    }
    Ok(())
}

/// The `#[model(version)]` column: at most one, an `i32` or `i64` that is not the primary
/// key, not an `Option` and not a foreign key.
fn version_column(
    parsed: &Parsed,
    columns: &[Column],
    primary_key: usize,
    errors: &mut Errors,
) -> Option<usize> {
    let marked: Vec<usize> = parsed
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.version.is_some())
        .map(|(i, _)| i)
        .collect();
    for &extra in marked.iter().skip(1) {
        errors.push(syn::Error::new(
            parsed.fields[extra].ident.span(),
            "only one field can be the version",
        ));
    }
    let index = *marked.first()?;
    let column = &columns[index];
    if index == primary_key
        || column.nullable
        || column.relation.is_some()
        || !is_integer(&column.ty)
    {
        errors.push(syn::Error::new(
            column.ty.span(),
            "the version field is an i32 or i64 that is not the primary key, not an Option and not a foreign key",
        ));
    }
    Some(index)
}

fn column(field: &ParsedField, errors: &mut Errors) -> Column {
    let (nullable, inner) = match option_inner(&field.ty) {
        Some(inner) => (true, inner.clone()),
        None => (false, field.ty.clone()),
    };
    let relation_target = foreign_key_target(&inner).cloned();
    let is_string = last_segment(&inner).is_some_and(|s| s == "String");
    if (field.max_length.is_some() || field.text) && !is_string {
        errors.push(syn::Error::new(
            field.ty.span(),
            "max_length and text apply to String fields only",
        ));
    }
    if field.max_length.is_some() && field.text {
        errors.push(syn::Error::new(
            field.ident.span(),
            "a field is either max_length or text, not both",
        ));
    }
    let max_length = field
        .max_length
        .as_ref()
        .and_then(|lit| match lit.base10_parse::<u32>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                errors.push(syn::Error::new(
                    lit.span(),
                    "max_length must be a positive integer",
                ));
                None
            }
        });
    let numeric = numeric(field, &inner, relation_target.is_some(), is_string, errors);
    let on_delete = field
        .on_delete
        .as_ref()
        .map(|lit| match lit.value().as_str() {
            "cascade" => OnDelete::Cascade,
            "set_null" => {
                if !nullable {
                    errors.push(syn::Error::new(
                        lit.span(),
                        "on_delete = \"set_null\" needs an Option<ForeignKey<_>> field",
                    ));
                }
                OnDelete::SetNull
            }
            "restrict" => OnDelete::Restrict,
            _ => {
                errors.push(syn::Error::new(
                    lit.span(),
                    "on_delete must be \"cascade\", \"set_null\" or \"restrict\"",
                ));
                OnDelete::Cascade
            }
        });
    if on_delete.is_some() && relation_target.is_none() {
        errors.push(syn::Error::new(
            field.ident.span(),
            "on_delete applies to ForeignKey fields only",
        ));
    }
    let name = match (&field.column, &relation_target) {
        (Some(lit), _) => lit.value(),
        (None, Some(_)) => format!("{}_id", unraw(&field.ident)),
        (None, None) => unraw(&field.ident),
    };
    let lookup = match &relation_target {
        Some(target) => quote::quote!(<#target as ::tenantry::Model>::PrimaryKey),
        None => quote::quote!(#inner),
    };
    Column {
        field: field.ident.clone(),
        name,
        ty: field.ty.clone(),
        lookup,
        nullable,
        primary_key: field.primary_key,
        auto_increment: false,
        max_length,
        numeric,
        text: field.text,
        unique: field.unique,
        index: field.index,
        default: field.default.clone().map(|e| (inner.clone(), e)),
        relation: relation_target.map(|target| Relation {
            target,
            on_delete: on_delete.unwrap_or(OnDelete::Cascade),
        }),
    }
}

/// The most digits of a decimal column: what `rust_decimal::Decimal` holds exactly (the
/// same bound as `tenantry::decimal::MAX_PRECISION`).
const MAX_PRECISION: u32 = 28;

/// A decimal field's `(max_digits, decimal_places)`. Both are required on a field whose type
/// is spelled `Decimal` (`Option<Decimal>`, `rust_decimal::Decimal`, …); a `Decimal` behind
/// another name without them, or the attributes on a field that is not a decimal, is caught
/// by the expansion's compile-time check of the field type's `SQL_TYPE`.
fn numeric(
    field: &ParsedField,
    inner: &Type,
    is_relation: bool,
    is_string: bool,
    errors: &mut Errors,
) -> Option<(u32, u32)> {
    let is_decimal = last_segment(inner).is_some_and(|s| s == "Decimal");
    let given = field.max_digits.as_ref().or(field.decimal_places.as_ref());
    if let Some(lit) = given {
        if is_relation || is_string {
            errors.push(syn::Error::new(
                lit.span(),
                "max_digits and decimal_places apply to Decimal fields only (a foreign key takes its target's primary key's)",
            ));
            return None;
        }
    }
    let (digits, places) = match (&field.max_digits, &field.decimal_places) {
        (Some(digits), Some(places)) => (digits, places),
        (None, None) => {
            if is_decimal && !is_relation {
                errors.push(syn::Error::new(
                    inner.span(),
                    "a Decimal field needs its precision and scale: #[model(max_digits = P, decimal_places = S)], for example max_digits = 12, decimal_places = 2 for NUMERIC(12, 2)",
                ));
            }
            return None;
        }
        (Some(lit), None) | (None, Some(lit)) => {
            errors.push(syn::Error::new(
                lit.span(),
                "max_digits and decimal_places go together: give both",
            ));
            return None;
        }
    };
    let precision = match digits.base10_parse::<u32>() {
        Ok(p) if (1..=MAX_PRECISION).contains(&p) => Some(p),
        _ => {
            errors.push(syn::Error::new(
                digits.span(),
                format!("max_digits must be from 1 to {MAX_PRECISION}, the digits rust_decimal::Decimal holds exactly"),
            ));
            None
        }
    };
    let scale = match (places.base10_parse::<u32>(), precision) {
        (Ok(s), Some(p)) if s <= p => Some(s),
        (Ok(_), None) => None,
        _ => {
            let bound = precision.map_or("max_digits".to_owned(), |p| p.to_string());
            errors.push(syn::Error::new(
                places.span(),
                format!("decimal_places must be from 0 to max_digits ({bound})"),
            ));
            None
        }
    };
    precision.zip(scale)
}

fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

fn last_segment(ty: &Type) -> Option<&Ident> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last().map(|s| &s.ident),
        _ => None,
    }
}

fn single_generic<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = ty else { return None };
    let segment = p.path.segments.last()?;
    if segment.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first() {
        Some(GenericArgument::Type(inner)) if args.args.len() == 1 => Some(inner),
        _ => None,
    }
}

fn option_inner(ty: &Type) -> Option<&Type> {
    single_generic(ty, "Option")
}

fn foreign_key_target(ty: &Type) -> Option<&Type> {
    single_generic(ty, "ForeignKey")
}

fn is_integer(ty: &Type) -> bool {
    last_segment(ty).is_some_and(|s| s == "i32" || s == "i64")
}

/// `TenantUser` → `tenant_users`.
fn default_table(name: &str) -> String {
    snake(name) + "s"
}
