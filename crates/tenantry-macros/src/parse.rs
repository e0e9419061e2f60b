//! Parse: read the struct and its `#[model(...)]` attributes, collecting every error.

use syn::{spanned::Spanned, Data, DeriveInput, Expr, Fields, Ident, LitInt, LitStr, Type};

/// The struct as written.
pub struct Parsed {
    pub ident: Ident,
    pub vis: syn::Visibility,
    pub table: Option<LitStr>,
    /// The `shared` path, where it was written.
    pub shared: Option<syn::Path>,
    /// The `tenant` path, where it was written.
    pub tenant: Option<syn::Path>,
    /// `hooks`: the model implements `tenantry::Hooks`.
    pub hooks: bool,
    /// `unique(a, b)` and `index(a, b)`, in order.
    pub indexes: Vec<ParsedIndex>,
    /// `check(name = "...", condition = ...)`, in order.
    pub checks: Vec<ParsedCheck>,
    /// `many_to_many(name, to = Type, table = "...")`, in order.
    pub many: Vec<ParsedMany>,
    /// `__sharing_of(A, B)`, written by the derive on a junction it generates: shared when
    /// both are, tenant-only when either is.
    pub sharing_of: Option<(syn::Path, syn::Path)>,
    pub fields: Vec<ParsedField>,
}

/// A composite index as written: `unique(a, b)` or `index(a, b, name = "ix")`.
pub struct ParsedIndex {
    /// The `unique` / `index` word.
    pub keyword: syn::Path,
    pub unique: bool,
    pub fields: Vec<Ident>,
    pub name: Option<LitStr>,
}

/// A generated many-to-many relation as written.
pub struct ParsedMany {
    /// The `many_to_many` word.
    pub keyword: syn::Path,
    /// The relation's name (its method on the model).
    pub name: Option<Ident>,
    /// The other model.
    pub to: Option<Type>,
    /// The junction table.
    pub table: Option<LitStr>,
}

/// A check constraint as written.
pub struct ParsedCheck {
    /// The `check` word.
    pub keyword: syn::Path,
    pub name: Option<LitStr>,
    pub condition: Option<Expr>,
}

/// One field as written.
pub struct ParsedField {
    pub ident: Ident,
    pub ty: Type,
    pub primary_key: bool,
    pub max_length: Option<LitInt>,
    pub max_digits: Option<LitInt>,
    pub decimal_places: Option<LitInt>,
    pub text: bool,
    pub default: Option<Expr>,
    pub unique: bool,
    pub index: bool,
    pub column: Option<LitStr>,
    pub on_delete: Option<LitStr>,
    /// `version`: the optimistic-locking counter, where it was written.
    pub version: Option<syn::Path>,
}

/// Collects errors so that all are reported together.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

pub fn parse(input: &DeriveInput) -> syn::Result<Parsed> {
    let mut errors = Errors::default();
    let fields = match &input.data {
        Data::Struct(data) => match &data.fields {
            Fields::Named(named) => named.named.iter().collect::<Vec<_>>(),
            other => {
                errors.push(syn::Error::new(
                    other.span(),
                    "#[derive(Model)] needs a struct with named fields",
                ));
                Vec::new()
            }
        },
        _ => {
            return Err(syn::Error::new(
                input.ident.span(),
                "#[derive(Model)] works on structs only",
            ));
        }
    };
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new(
            input.generics.span(),
            "a model cannot be generic",
        ));
    }
    let mut parsed = Parsed {
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        table: None,
        shared: None,
        tenant: None,
        hooks: false,
        indexes: Vec::new(),
        checks: Vec::new(),
        many: Vec::new(),
        sharing_of: None,
        fields: Vec::new(),
    };
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("model")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table") {
                parsed.table = Some(meta.value()?.parse()?);
            } else if meta.path.is_ident("shared") {
                parsed.shared = Some(meta.path.clone());
            } else if meta.path.is_ident("tenant") {
                parsed.tenant = Some(meta.path.clone());
            } else if meta.path.is_ident("hooks") {
                parsed.hooks = true;
            } else if meta.path.is_ident("unique") || meta.path.is_ident("index") {
                parsed.indexes.push(parse_index(&meta)?);
            } else if meta.path.is_ident("check") {
                parsed.checks.push(parse_check(&meta)?);
            } else if meta.path.is_ident("many_to_many") {
                parsed.many.push(parse_many(&meta)?);
            } else if meta.path.is_ident("__sharing_of") {
                let mut sides = Vec::new();
                meta.parse_nested_meta(|inner| {
                    sides.push(inner.path.clone());
                    Ok(())
                })?;
                if let [a, b] = &sides[..] {
                    parsed.sharing_of = Some((a.clone(), b.clone()));
                }
            } else {
                return Err(meta.error(
                    "unknown model attribute; expected `table = \"...\"`, `shared`, `tenant`, `hooks`, `unique(..)`, `index(..)`, `check(..)` or `many_to_many(..)`",
                ));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    for field in fields {
        parsed.fields.push(parse_field(field, &mut errors));
    }
    errors.finish(parsed)
}

/// `unique(a, b)` / `index(a, b, name = "ix_name")`: field names, and an optional name.
fn parse_index(meta: &syn::meta::ParseNestedMeta) -> syn::Result<ParsedIndex> {
    let mut index = ParsedIndex {
        keyword: meta.path.clone(),
        unique: meta.path.is_ident("unique"),
        fields: Vec::new(),
        name: None,
    };
    meta.parse_nested_meta(|inner| {
        // A field may be called `name`: only `name = "..."` is the index's name.
        if inner.path.is_ident("name") && inner.input.peek(syn::Token![=]) {
            index.name = Some(inner.value()?.parse()?);
        } else if let Some(field) = inner.path.get_ident() {
            index.fields.push(field.clone());
        } else {
            return Err(inner.error("expected a field name or `name = \"...\"`"));
        }
        Ok(())
    })?;
    Ok(index)
}

/// `many_to_many(tags, to = Tag, table = "product_tags")`.
fn parse_many(meta: &syn::meta::ParseNestedMeta) -> syn::Result<ParsedMany> {
    let mut many = ParsedMany {
        keyword: meta.path.clone(),
        name: None,
        to: None,
        table: None,
    };
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("to") {
            many.to = Some(inner.value()?.parse()?);
        } else if inner.path.is_ident("table") {
            many.table = Some(inner.value()?.parse()?);
        } else if let (Some(name), None) = (inner.path.get_ident(), &many.name) {
            many.name = Some(name.clone());
        } else {
            return Err(inner.error(
                "expected the relation's name, then `to = Model` and optionally `table = \"...\"`",
            ));
        }
        Ok(())
    })?;
    Ok(many)
}

/// `check(name = "...", condition = <filter expression>)`.
fn parse_check(meta: &syn::meta::ParseNestedMeta) -> syn::Result<ParsedCheck> {
    let mut check = ParsedCheck {
        keyword: meta.path.clone(),
        name: None,
        condition: None,
    };
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("name") {
            check.name = Some(inner.value()?.parse()?);
        } else if inner.path.is_ident("condition") {
            check.condition = Some(inner.value()?.parse()?);
        } else {
            return Err(inner.error("expected `name = \"...\"` or `condition = <filter>`"));
        }
        Ok(())
    })?;
    Ok(check)
}

fn parse_field(field: &syn::Field, errors: &mut Errors) -> ParsedField {
    let mut parsed = ParsedField {
        ident: field
            .ident
            .clone()
            .unwrap_or_else(|| Ident::new("_", field.span())),
        ty: field.ty.clone(),
        primary_key: false,
        max_length: None,
        max_digits: None,
        decimal_places: None,
        text: false,
        default: None,
        unique: false,
        index: false,
        column: None,
        on_delete: None,
        version: None,
    };
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("model")) {
        let result = attr.parse_nested_meta(|meta| {
            let path = &meta.path;
            if path.is_ident("primary_key") {
                parsed.primary_key = true;
            } else if path.is_ident("max_length") {
                parsed.max_length = Some(meta.value()?.parse()?);
            } else if path.is_ident("max_digits") {
                parsed.max_digits = Some(meta.value()?.parse()?);
            } else if path.is_ident("decimal_places") {
                parsed.decimal_places = Some(meta.value()?.parse()?);
            } else if path.is_ident("text") {
                parsed.text = true;
            } else if path.is_ident("default") {
                parsed.default = Some(meta.value()?.parse()?);
            } else if path.is_ident("unique") {
                parsed.unique = true;
            } else if path.is_ident("index") {
                parsed.index = true;
            } else if path.is_ident("column") {
                parsed.column = Some(meta.value()?.parse()?);
            } else if path.is_ident("on_delete") {
                parsed.on_delete = Some(meta.value()?.parse()?);
            } else if path.is_ident("version") {
                parsed.version = Some(path.clone());
            } else {
                return Err(meta.error(
                    "unknown field attribute; expected one of primary_key, max_length, max_digits, decimal_places, text, default, unique, index, column, on_delete, version",
                ));
            }
            Ok(())
        });
        if let Err(e) = result {
            errors.push(e);
        }
    }
    parsed
}
