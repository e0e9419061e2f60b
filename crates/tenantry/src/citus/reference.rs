//! The two DDL steps a Citus deployment adds: distributed tenant schemas and reference
//! tables for the shared models.

use sea_query::{Expr, ExprTrait, Func, Query, SelectStatement};

use crate::{
    database::Database,
    error::Result,
    model::ModelMeta,
    target::{Conn, Target},
};

/// Makes the schema the transaction of `target` creates next a distributed schema:
/// `SELECT set_config('citus.enable_schema_based_sharding', 'on', true)`, the setting
/// holding for this transaction only (never for the pooled session).
pub(crate) async fn distribute_in_transaction(target: &Target) -> Result<()> {
    let select = crate::pg_setting::set_local("citus.enable_schema_based_sharding", "on");
    target.fetch_unchecked(&select).await.map(drop)
}

/// Makes the shared models' tables of the shared schema reference tables (a copy on every
/// node), parents first; a table that is one already is left as it is.
pub(crate) async fn make_reference_tables(
    database: &Database,
    models: &[&'static ModelMeta],
) -> Result<()> {
    let Some(namespace) = database.default_namespace() else {
        return Ok(());
    };
    let target = Target {
        conn: Conn::Database(database.clone()),
        schema: None,
    };
    let models = crate::ddl::with_junctions(models);
    for meta in crate::ddl::creation_order(&models) {
        if meta.shared {
            target
                .fetch_unchecked(&reference_table(namespace, meta.table))
                .await?;
        }
    }
    Ok(())
}

/// ```sql
/// SELECT create_reference_table("c"."oid") FROM "pg_catalog"."pg_class" AS "c"
///   JOIN "pg_catalog"."pg_namespace" AS "n" ON "n"."oid" = "c"."relnamespace"
///   WHERE "n"."nspname" = $1 AND "c"."relname" = $2 AND NOT EXISTS (SELECT 1 FROM
///   "pg_catalog"."pg_dist_partition" AS "p" WHERE "p"."logicalrelid" = "c"."oid"
///   AND "p"."repmodel" = 't')
/// ```
fn reference_table(namespace: &str, table: &str) -> SelectStatement {
    let already = Query::select()
        .expr(Expr::val(1))
        .from_as(("pg_catalog", "pg_dist_partition"), "p")
        .and_where(Expr::col(("p", "logicalrelid")).equals(("c", "oid")))
        .and_where(Expr::col(("p", "repmodel")).eq("t"))
        .to_owned();
    crate::namespace::pg_relations_in(namespace)
        .expr(Func::cust("create_reference_table").arg(Expr::col(("c", "oid"))))
        .and_where(Expr::col(("c", "relname")).eq(table))
        .and_where(Expr::exists(already).not())
        .to_owned()
}
