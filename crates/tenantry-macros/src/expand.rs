//! Expand: generate the `Model` impl and the column handles.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::model::{Column, Many, Model, OnDelete};

pub fn expand(model: &Model) -> TokenStream {
    let ident = &model.ident;
    let name = ident.to_string();
    let table = &model.table;
    // A generated junction is shared when both its sides are, tenant-only when either is.
    let (shared, tenant_only) = match &model.sharing_of {
        Some((a, b)) => (
            quote!(<#a as ::tenantry::Model>::META.shared && <#b as ::tenantry::Model>::META.shared),
            quote!(<#a as ::tenantry::Model>::META.tenant_only || <#b as ::tenantry::Model>::META.tenant_only),
        ),
        None => {
            let (shared, tenant_only) = (model.shared, model.tenant_only);
            (quote!(#shared), quote!(#tenant_only))
        }
    };
    let version_meta = match model.version {
        Some(index) => quote!(::core::option::Option::Some(#index)),
        None => quote!(::core::option::Option::None),
    };
    let hooks = model.hooks.then(|| {
        quote! {
            fn hooks() -> ::core::option::Option<::tenantry::__private::HookFns<Self>> {
                ::core::option::Option::Some(::tenantry::__private::HookFns {
                    pre_save: |m, h| ::std::boxed::Box::pin(<Self as ::tenantry::Hooks>::pre_save(m, h)),
                    post_save: |m, h| ::std::boxed::Box::pin(<Self as ::tenantry::Hooks>::post_save(m, h)),
                    pre_delete: |m, h| ::std::boxed::Box::pin(<Self as ::tenantry::Hooks>::pre_delete(m, h)),
                    post_delete: |m, h| ::std::boxed::Box::pin(<Self as ::tenantry::Hooks>::post_delete(m, h)),
                })
            }
        }
    });
    let bump_version = model.version.map(|index| {
        let field = &model.columns[index].field;
        quote! {
            fn bump_version(&mut self) {
                self.#field = self.#field.wrapping_add(1);
            }

            fn copy_version(&mut self, from: &Self) {
                self.#field = from.#field;
            }
        }
    });
    let pk = model.primary_key;
    let pk_column = &model.columns[pk];
    let pk_field = &pk_column.field;
    let pk_ty = &pk_column.ty;
    let column_metas = model.columns.iter().map(column_meta);
    let column_names = model.columns.iter().map(|c| &c.name);
    let decodes = model.columns.iter().enumerate().map(|(i, c)| {
        let field = &c.field;
        let ty = &c.ty;
        let column = &c.name;
        quote! {
            #field: <#ty as ::tenantry::FieldType>::decode(row, #i).map_err(|source| ::tenantry::Error::Decode {
                model: #table,
                column: #column,
                source,
            })?
        }
    });
    let values = model.columns.iter().enumerate().map(|(i, c)| {
        let field = &c.field;
        quote!(#i => ::tenantry::FieldType::to_value(&self.#field))
    });
    let matches = model.columns.iter().enumerate().map(|(i, c)| {
        let field = &c.field;
        quote!(#i => ::tenantry::FieldType::matches_value(&self.#field, value))
    });
    let foreign_keys = model
        .columns
        .iter()
        .enumerate()
        .filter(|(_, c)| c.relation.is_some())
        .map(|(i, c)| {
            let field = &c.field;
            quote!(#i => ::core::option::Option::Some(&mut self.#field))
        });
    let handles = model.columns.iter().map(|c| handle(ident, c));
    let junctions = model.many.iter().map(|many| junction(model, many));
    let junction_metas = model.many.iter().map(|many| {
        let junction = &many.junction;
        quote!(|| <#junction as ::tenantry::Model>::META)
    });
    let index_metas = model.indexes.iter().map(|ix| {
        let (name, columns, unique) = (&ix.name, &ix.columns, ix.unique);
        quote!(::tenantry::IndexMeta { name: #name, columns: &[#(#columns),*], unique: #unique })
    });
    let check_metas = model.checks.iter().map(|check| {
        let (name, condition) = (&check.name, &check.condition);
        quote_spanned! {condition.span()=>
            ::tenantry::CheckMeta {
                name: #name,
                condition: || ::core::convert::Into::<::tenantry::Filter>::into(#condition),
            }
        }
    });
    let numeric_checks = model.columns.iter().map(numeric_check);
    let enum_key_check = enum_key_check(pk_column);
    let tenant_checks = model
        .columns
        .iter()
        .filter(|_| !model.tenant_only)
        .map(|column| tenant_only_check(ident, column));
    quote! {
        impl ::tenantry::Model for #ident {
            const META: &'static ::tenantry::ModelMeta = &::tenantry::ModelMeta {
                name: #name,
                table: #table,
                columns: &[#(#column_metas),*],
                column_names: &[#(#column_names),*],
                primary_key: #pk,
                shared: #shared,
                tenant_only: #tenant_only,
                version: #version_meta,
                indexes: &[#(#index_metas),*],
                checks: &[#(#check_metas),*],
                junctions: &[#(#junction_metas),*],
            };

            type PrimaryKey = #pk_ty;

            fn from_row(row: &::tenantry::Row) -> ::tenantry::Result<Self> {
                ::core::result::Result::Ok(Self { #(#decodes),* })
            }

            fn column_value(&self, index: usize) -> ::tenantry::__private::Value {
                match index {
                    #(#values,)*
                    _ => ::tenantry::__private::Value::Bool(::core::option::Option::None),
                }
            }

            fn column_matches(&self, index: usize, value: &::tenantry::__private::Value) -> bool {
                match index {
                    #(#matches,)*
                    _ => false,
                }
            }

            fn primary_key(&self) -> &Self::PrimaryKey {
                &self.#pk_field
            }

            fn set_primary_key(&mut self, key: Self::PrimaryKey) {
                self.#pk_field = key;
            }

            #bump_version

            #hooks

            fn foreign_key_mut(&mut self, index: usize) -> ::core::option::Option<&mut dyn ::tenantry::AnyForeignKey> {
                match index {
                    #(#foreign_keys,)*
                    _ => ::core::option::Option::None,
                }
            }
        }

        // A field named like its model (`code` of `Code`) has a handle named like it.
        #[allow(clippy::self_named_constructors)]
        impl #ident {
            /// Starts a query over this model's table, from a registry or a transaction.
            #[allow(dead_code)]
            pub fn query(source: &impl ::tenantry::QuerySource) -> ::tenantry::QuerySet<Self> {
                ::tenantry::QuerySet::new(::tenantry::QuerySource::query_source(source))
            }

            #(#handles)*
        }

        #(#numeric_checks)*
        #(#tenant_checks)*
        #enum_key_check
        #(#junctions)*
    }
}

/// The junction model of a generated many-to-many relation and the model's method for it.
fn junction(model: &Model, many: &Many) -> TokenStream {
    let (ident, vis) = (&model.ident, &model.vis);
    let (name, to, junction, table) = (&many.name, &many.to, &many.junction, &many.table);
    let (left, right) = (&many.left, &many.right);
    let unique_name = format!("uq_{table}");
    let junction_doc = format!(
        "The junction of [`{ident}::{name}`]: one row per related pair, unique, deleted with either side (but for a link to a shared row on MySQL and SQLite, whose cross-schema keys are left out). Shared when both sides are, tenant-only when either is. Generated by `many_to_many({name}, ..)`; registered and built with `{ident}`."
    );
    let relation_doc = format!(
        "The many-to-many relation `{name}` through the generated junction [`{junction}`] (table `{table}`)."
    );
    quote! {
        #[doc = #junction_doc]
        #[derive(::tenantry::Model, ::core::fmt::Debug, ::core::cmp::PartialEq)]
        #[model(table = #table, unique(#left, #right, name = #unique_name), __sharing_of(#ident, #to))]
        #vis struct #junction {
            /// The row's key.
            pub id: i64,
            /// The link's end in this relation's model.
            #[model(on_delete = "cascade")]
            pub #left: ::tenantry::ForeignKey<#ident>,
            /// The link's other end.
            #[model(on_delete = "cascade")]
            pub #right: ::tenantry::ForeignKey<#to>,
        }

        impl #ident {
            #[doc = #relation_doc]
            #[allow(dead_code)]
            pub const fn #name() -> ::tenantry::ManyToMany<#junction, #ident, #to> {
                ::tenantry::ManyToMany::new(#junction::#left(), #junction::#right())
            }
        }
    }
}

/// A compile-time check that a model which has a table in the shared schema (a shared or a
/// tenant-capable one) has no foreign key to a tenant-only model, which has none there: the
/// key would reference a missing table. The target is another type, so only the compiler
/// can see its attributes.
fn tenant_only_check(model: &syn::Ident, column: &Column) -> TokenStream {
    let Some(relation) = &column.relation else {
        return TokenStream::new();
    };
    let target = &relation.target;
    let message = format!(
        "field `{}`: a foreign key to a tenant-only model (#[model(tenant)]) is allowed only on a tenant-only model, since the target has no table in the shared schema; mark this model #[model(tenant)]",
        column.field
    );
    // `Self`'s flag, which a generated junction computes from its two sides.
    quote::quote_spanned! {target.span()=>
        const _: () = {
            if !<#model as ::tenantry::Model>::META.tenant_only
                && <#target as ::tenantry::Model>::META.tenant_only
            {
                ::core::panic!(#message);
            }
        };
    }
}

/// A compile-time check that the primary key is no PostgreSQL enum type: each schema has its
/// own copy of the type, so a key of one could not be referenced from another schema, and
/// keys are compared untyped where rows are found by key.
fn enum_key_check(column: &Column) -> TokenStream {
    let ty = &column.ty;
    let message = format!(
        "field `{}`: a primary key cannot be a PostgreSQL enum type (a #[derive(Enum)] with type_name); key the model by an integer, or store the enum as text (no type_name)",
        column.field
    );
    quote::quote_spanned! {ty.span()=>
        const _: () = {
            if <#ty as ::tenantry::FieldType>::ENUM_TYPE.is_some() {
                ::core::panic!(#message);
            }
        };
    }
}

/// A compile-time check that a column has precision and scale exactly when its type is a
/// decimal, for the types the derive cannot recognise by name (`type Money = Decimal;`).
/// A foreign key takes its target's; it is not checked here.
fn numeric_check(column: &Column) -> TokenStream {
    if column.relation.is_some() || column.text {
        return TokenStream::new();
    }
    let ty = &column.ty;
    let has_bounds = column.numeric.is_some();
    let field = column.field.to_string();
    let missing = format!(
        "field `{field}` is a Decimal: give it #[model(max_digits = P, decimal_places = S)]"
    );
    let extra =
        format!("field `{field}`: max_digits and decimal_places apply to Decimal fields only");
    quote::quote_spanned! {ty.span()=>
        const _: () = {
            let decimal = ::core::matches!(
                <#ty as ::tenantry::FieldType>::SQL_TYPE,
                ::tenantry::SqlType::Decimal
            );
            if decimal && !#has_bounds {
                ::core::panic!(#missing);
            }
            if !decimal && #has_bounds {
                ::core::panic!(#extra);
            }
        };
    }
}

fn handle(model: &syn::Ident, column: &Column) -> TokenStream {
    let field = &column.field;
    let name = &column.name;
    let lookup = &column.lookup;
    // A raw field (`r#type`) keeps its raw handle: `type` alone is a keyword.
    let fn_name = format_ident!("{}", field.to_string(), span = field.span());
    let doc = format!("The `{name}` column, for lookups, ordering and updates.");
    quote! {
        #[doc = #doc]
        #[allow(dead_code)]
        pub const fn #fn_name() -> ::tenantry::Column<#model, #lookup> {
            ::tenantry::Column::new(#name)
        }
    }
}

fn column_meta(column: &Column) -> TokenStream {
    let field = column.field.to_string();
    let name = &column.name;
    let ty = &column.ty;
    let nullable = column.nullable;
    let primary_key = column.primary_key;
    let auto_increment = column.auto_increment;
    let unique = column.unique;
    let index = column.index;
    let sql_type = if column.text {
        quote!(::tenantry::SqlType::Text)
    } else {
        quote!(<#ty as ::tenantry::FieldType>::SQL_TYPE)
    };
    let max_length = match column.max_length {
        Some(n) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let (precision, scale) = match column.numeric {
        Some((p, s)) => (
            quote!(::core::option::Option::Some(#p)),
            quote!(::core::option::Option::Some(#s)),
        ),
        None => (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        ),
    };
    let default = match &column.default {
        Some((inner, expr)) => quote! {
            ::core::option::Option::Some({
                fn default_value() -> ::tenantry::__private::Value {
                    let value: #inner = ::core::convert::Into::into(#expr);
                    ::tenantry::FieldType::to_value(&value)
                }
                default_value
            })
        },
        None => quote!(::core::option::Option::None),
    };
    let foreign_key = match &column.relation {
        Some(relation) => {
            let target = &relation.target;
            let on_delete = match relation.on_delete {
                OnDelete::Cascade => quote!(::tenantry::OnDelete::Cascade),
                OnDelete::SetNull => quote!(::tenantry::OnDelete::SetNull),
                OnDelete::Restrict => quote!(::tenantry::OnDelete::Restrict),
            };
            quote! {
                ::core::option::Option::Some(::tenantry::ForeignKeyMeta {
                    target: {
                        fn target() -> &'static ::tenantry::ModelMeta {
                            <#target as ::tenantry::Model>::META
                        }
                        target
                    },
                    on_delete: #on_delete,
                })
            }
        }
        None => quote!(::core::option::Option::None),
    };
    quote! {
        ::tenantry::ColumnMeta {
            field: #field,
            name: #name,
            sql_type: #sql_type,
            enum_type: <#ty as ::tenantry::FieldType>::ENUM_TYPE,
            nullable: #nullable,
            primary_key: #primary_key,
            auto_increment: #auto_increment,
            max_length: #max_length,
            precision: #precision,
            scale: #scale,
            unique: #unique,
            index: #index,
            default: #default,
            foreign_key: #foreign_key,
        }
    }
}
