//! `#[derive(Enum)]`: a unit-only enum stored as its variants' names, as text, or on
//! PostgreSQL as an enum type (`#[model(type_name = "...")]`). Parse → check → expand,
//! every misuse reported at once.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{spanned::Spanned, Data, DeriveInput, Fields, Ident, LitStr};

use crate::parse::Errors;

/// A checked variant: its identifier and the text stored for it.
struct Variant {
    ident: Ident,
    text: String,
}

/// The longest enum label PostgreSQL keeps (`NAMEDATALEN - 1` bytes).
const MAX_LABEL: usize = 63;

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let type_name = type_name(input, &mut errors);
    let variants = variants(input, &mut errors)?;
    if let Some(type_name) = &type_name {
        for variant in variants.iter().filter(|v| v.text.len() > MAX_LABEL) {
            errors.push(syn::Error::new(
                variant.ident.span(),
                format!(
                    "enum type `{}` cannot hold the label {:?}: PostgreSQL keeps at most {MAX_LABEL} bytes",
                    type_name.value(),
                    variant.text
                ),
            ));
        }
    }
    let variants = errors.finish(variants)?;
    Ok(expand(&input.ident, &variants, type_name.as_ref()))
}

/// `#[model(type_name = "...")]` on the enum: the PostgreSQL enum type to store it as.
fn type_name(input: &DeriveInput, errors: &mut Errors) -> Option<LitStr> {
    let mut name = None;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("model")) {
        let result = attr.parse_nested_meta(|meta| {
            if !meta.path.is_ident("type_name") {
                return Err(meta.error("unknown enum attribute; expected `type_name = \"...\"`"));
            }
            let lit: LitStr = meta.value()?.parse()?;
            if let Err(reason) = crate::model::check_identifier(&lit.value()) {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("an enum type name {reason}"),
                ));
            }
            name = Some(lit);
            Ok(())
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    name
}

/// The variants, each misuse pushed to `errors`; `Err` only for an input that is no enum.
fn variants(input: &DeriveInput, errors: &mut Errors) -> syn::Result<Vec<Variant>> {
    let Data::Enum(data) = &input.data else {
        return Err(syn::Error::new(
            input.ident.span(),
            "#[derive(Enum)] needs an enum whose variants have no fields",
        ));
    };
    if !input.generics.params.is_empty() {
        errors.push(syn::Error::new(
            input.generics.span(),
            "#[derive(Enum)] does not take generic parameters",
        ));
    }
    let mut variants: Vec<Variant> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.push(syn::Error::new(
                variant.fields.span(),
                "a stored enum's variants have no fields",
            ));
        }
        let text = rename(variant, errors).unwrap_or_else(|| variant.ident.to_string());
        if variants.iter().any(|v| v.text == text) {
            errors.push(syn::Error::new(
                variant.ident.span(),
                format!("two variants are stored as {text:?}"),
            ));
        }
        variants.push(Variant {
            ident: variant.ident.clone(),
            text,
        });
    }
    if variants.is_empty() {
        errors.push(syn::Error::new(
            input.ident.span(),
            "a stored enum needs at least one variant",
        ));
    }
    Ok(variants)
}

/// `#[model(rename = "text")]` on a variant.
fn rename(variant: &syn::Variant, errors: &mut Errors) -> Option<String> {
    let mut text = None;
    for attr in variant.attrs.iter().filter(|a| a.path().is_ident("model")) {
        let result = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(meta.error("a variant is stored as non-empty text"));
                }
                text = Some(lit.value());
                Ok(())
            } else {
                Err(meta.error("unknown variant attribute; expected `rename = \"...\"`"))
            }
        });
        if let Err(error) = result {
            errors.push(error);
        }
    }
    text
}

fn expand(ident: &Ident, variants: &[Variant], type_name: Option<&LitStr>) -> TokenStream {
    let names = variants.iter().map(|v| {
        let (variant, text) = (&v.ident, &v.text);
        quote!(#ident::#variant => #text)
    });
    let parses = variants.iter().map(|v| {
        let (variant, text) = (&v.ident, &v.text);
        quote!(#text => ::core::result::Result::Ok(#ident::#variant))
    });
    let unknown = format!("stored text is no variant of {ident}");
    let enum_type = type_name.map(|name| {
        let texts = variants.iter().map(|v| &v.text);
        quote! {
            const ENUM_TYPE: ::core::option::Option<&'static ::tenantry::EnumType> =
                ::core::option::Option::Some(&::tenantry::EnumType {
                    name: #name,
                    variants: &[#(#texts),*],
                });
        }
    });
    quote! {
        impl #ident {
            /// The text this variant is stored as.
            fn __tenantry_text(&self) -> &'static str {
                match self {
                    #(#names,)*
                }
            }
        }

        impl ::tenantry::FieldType for #ident {
            const SQL_TYPE: ::tenantry::SqlType = ::tenantry::SqlType::Varchar;
            #enum_type

            fn to_value(&self) -> ::tenantry::__private::Value {
                ::tenantry::__private::Value::String(::core::option::Option::Some(
                    ::std::string::String::from(self.__tenantry_text()),
                ))
            }

            fn null_value() -> ::tenantry::__private::Value {
                ::tenantry::__private::Value::String(::core::option::Option::None)
            }

            fn decode(
                row: &::tenantry::Row,
                index: usize,
            ) -> ::core::result::Result<Self, ::tenantry::__private::sqlx::Error> {
                let text = ::tenantry::__private::decode_enum_text(row, index)?;
                match text.as_str() {
                    #(#parses,)*
                    _ => ::core::result::Result::Err(
                        ::tenantry::__private::sqlx::Error::ColumnDecode {
                            index: index.to_string(),
                            source: ::std::convert::From::from(#unknown),
                        },
                    ),
                }
            }

            fn matches_value(&self, value: &::tenantry::__private::Value) -> bool {
                ::core::matches!(
                    value,
                    ::tenantry::__private::Value::String(::core::option::Option::Some(text))
                        if text == self.__tenantry_text()
                )
            }
        }
    }
}
