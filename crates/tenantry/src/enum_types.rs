//! PostgreSQL enum types ([`EnumType`]): one per schema that holds a table using it, made
//! before the tables, and the casts that type a bound value where it meets such a column.
//!
//! sqlx binds text as `text`, and PostgreSQL compares an enum only with its own type, so a
//! value for an enum column is written `CAST($1 AS "schema"."type")`. The schema is the one
//! holding the column's table, known only when the statement is rendered; nothing is kept
//! per tenant. MySQL and SQLite keep the variant's text in a `VARCHAR` column and bind it
//! as it is.

use sea_query::{
    extension::postgres::Type, Expr, Func, IntoIden, PostgresQueryBuilder, QueryBuilder, TypeRef,
    Value,
};

use crate::{
    backend::Backend,
    database::Database,
    error::{Error, Result},
    field::EnumType,
    model::{ColumnMeta, ModelMeta},
    naming::namespace,
    schema_name::SchemaName,
    target::Target,
};

/// `ty` as named in `schema` (`None`: the shared schema) on `database`.
pub(crate) fn type_ref(
    database: &Database,
    schema: Option<&SchemaName>,
    ty: impl IntoIden,
) -> TypeRef {
    TypeRef(namespace(database, schema), ty.into_iden())
}

/// The column type of an enum column in `schema`, quoted by sea-query: `"schema"."type"`.
pub(crate) fn column_type(
    database: &Database,
    schema: Option<&SchemaName>,
    ty: impl IntoIden,
) -> String {
    quoted(&type_ref(database, schema, ty))
}

/// `ty` as PostgreSQL names it, quoted by sea-query: `"schema"."type"`.
pub(crate) fn quoted(ty: &TypeRef) -> String {
    let mut sql = String::new();
    PostgresQueryBuilder.prepare_type_ref(ty, &mut sql);
    sql
}

/// `ty` in the schema of `model`'s table at `target`: the shared schema for a shared model,
/// else the target's.
pub(crate) fn of_model_at(target: &Target, model: &'static ModelMeta, ty: &EnumType) -> TypeRef {
    let schema = if model.shared {
        None
    } else {
        target.schema.as_ref()
    };
    type_ref(target.database(), schema, ty.name)
}

/// `value` bound for `column` of `model` at `target`: on PostgreSQL, cast to the column's
/// enum type in the schema of the model's table; elsewhere (and for every other column)
/// the bare parameter.
pub(crate) fn typed(
    target: &Target,
    model: &'static ModelMeta,
    ty: Option<&'static EnumType>,
    value: Value,
) -> Expr {
    match ty {
        Some(ty) if target.backend() == Backend::Postgres => {
            Func::cast_as_quoted(Expr::val(value), of_model_at(target, model, ty)).into()
        }
        _ => Expr::val(value),
    }
}

/// `value` as a write places it in `column` of `model` at `target`: checked as
/// [`ColumnMeta::bind`] checks it, and typed as [`typed`] types it.
pub(crate) fn bind(
    target: &Target,
    model: &'static ModelMeta,
    column: &ColumnMeta,
    value: Value,
) -> Result<Expr> {
    let value = column.bind(model, value)?;
    Ok(typed(target, model, column.enum_type, value))
}

/// The enum types of the columns of `models`, each once. Two types of one name with
/// different variants, or a type named like a table of `models` (PostgreSQL gives every
/// table a type of its name), are [`Error::InvalidArgument`].
pub(crate) fn of_models(models: &[&'static ModelMeta]) -> Result<Vec<&'static EnumType>> {
    let mut types: Vec<&'static EnumType> = Vec::new();
    let columns = models.iter().flat_map(|meta| meta.columns.iter());
    for ty in columns.filter_map(|column| column.enum_type) {
        match types.iter().find(|known| known.name == ty.name) {
            Some(known) if known.variants != ty.variants => {
                return Err(clash(
                    ty,
                    "two Rust enums declare this type_name with different variants",
                ));
            }
            Some(_) => {}
            None if models.iter().any(|meta| meta.table == ty.name) => {
                return Err(clash(ty, "a table of the models has this name, and PostgreSQL names each table's row type after it: give the enum another type_name"));
            }
            None => types.push(ty),
        }
    }
    Ok(types)
}

fn clash(ty: &EnumType, reason: &'static str) -> Error {
    Error::InvalidArgument {
        argument: ty.name,
        reason,
    }
}

/// The `CREATE TYPE` of `ty` in `schema`.
pub(crate) fn create_statement(
    database: &Database,
    schema: Option<&SchemaName>,
    ty: &EnumType,
) -> String {
    Type::create()
        .as_enum(type_ref(database, schema, ty.name))
        .values(ty.variants.iter().copied())
        .to_string(PostgresQueryBuilder)
}

/// The enum types `schema` already holds, read at `target`: `(name, label)` by type and
/// label order.
async fn present(target: &Target, schema: Option<&SchemaName>) -> Result<Vec<(String, String)>> {
    let namespace = namespace(target.database(), schema)
        .map_or_else(|| "public".to_owned(), |ns| ns.1.to_string());
    let select = crate::migrate::pg_enums(&namespace);
    let rows = target.fetch_all(&select).await?;
    rows.iter()
        .map(|row| Ok((row.get::<String>(0)?, row.get::<String>(1)?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Error::from)
}

/// Creates, at `target` (PostgreSQL only), the enum types of `models` that `schema` lacks.
pub(crate) async fn ensure(
    target: &Target,
    schema: Option<&SchemaName>,
    models: &[&'static ModelMeta],
) -> Result<()> {
    if target.backend() != Backend::Postgres {
        return Ok(());
    }
    let models: Vec<&'static ModelMeta> = crate::ddl::with_junctions(models)
        .into_iter()
        .filter(|meta| meta.lives_in(schema))
        .collect();
    let types = of_models(&models)?;
    if types.is_empty() {
        return Ok(());
    }
    let present = present(target, schema).await?;
    for ty in types {
        let labels: Vec<&str> = present
            .iter()
            .filter(|(name, _)| name == ty.name)
            .map(|(_, label)| label.as_str())
            .collect();
        if labels.is_empty() {
            target
                .execute_ddl(&create_statement(target.database(), schema, ty))
                .await?;
        } else if ty.variants.iter().any(|v| !labels.contains(v)) {
            // A type made by another release or registry: writing that variant would fail.
            return Err(Error::InvalidArgument {
                argument: ty.name,
                reason: "the schema's enum type of this name lacks a variant of the Rust enum (made by another registry or release): add the label with a migration (add_enum_value)",
            });
        }
    }
    Ok(())
}
