//! The same statements through bare sqlx on tenantry's own pool: hand-written SQL, each text
//! prepared once per connection by sqlx's statement cache.

use sqlx::{mysql::MySqlRow, postgres::PgRow, sqlite::SqliteRow, MySql, Postgres, Row as _};
use tenantry::{Database, PooledConnection, SchemaName};

use crate::{BoxError, Result};

/// A product decoded by hand.
pub struct RawProduct {
    pub id: i64,
    #[allow(dead_code)]
    pub name: String,
    #[allow(dead_code)]
    pub user_id: Option<i64>,
}

impl RawProduct {
    fn pg(row: &PgRow) -> sqlx::Result<RawProduct> {
        Ok(RawProduct {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            user_id: row.try_get(2)?,
        })
    }

    fn mysql(row: &MySqlRow) -> sqlx::Result<RawProduct> {
        Ok(RawProduct {
            id: row.try_get(0)?,
            // `utf8mb4_bin` columns are flagged BINARY; the bytes are UTF-8 text.
            name: row.try_get_unchecked(1)?,
            user_id: row.try_get(2)?,
        })
    }

    fn sqlite(row: &SqliteRow) -> sqlx::Result<RawProduct> {
        Ok(RawProduct {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            user_id: row.try_get(2)?,
        })
    }
}

/// Bare sqlx on connections borrowed from tenantry's own pool, one borrow per statement
/// (as tenantry checks one out per statement), so the two differ by the ORM alone.
pub enum Raw {
    Postgres(Database),
    MySql(Database),
    /// Each SQLite schema is its own file with its own pool.
    Sqlite(Database),
}

impl Raw {
    pub fn new(database: &Database) -> Raw {
        match database.backend() {
            tenantry::Backend::Postgres => Raw::Postgres(database.clone()),
            tenantry::Backend::MySql => Raw::MySql(database.clone()),
            _ => Raw::Sqlite(database.clone()),
        }
    }

    async fn sqlite_conn(
        database: &Database,
        schema: &SchemaName,
    ) -> Result<PooledConnection<sqlx::Sqlite>> {
        Ok(database.acquire_sqlite(Some(schema)).await?)
    }

    /// `"schema"."products"` (PostgreSQL), `` `namespace$schema`.`products` `` (MySQL: the
    /// tenant namespace, see `Database::tenant_namespace`), `"products"` in the schema's own
    /// file (SQLite).
    fn table(&self, schema: &SchemaName) -> String {
        match self {
            Raw::Postgres(_) => format!("\"{schema}\".\"products\""),
            Raw::MySql(db) => format!(
                "`{}`.`products`",
                db.server_schema_name(schema)
                    .expect("the bench's tenants were created, so their names fit")
            ),
            Raw::Sqlite(_) => "\"products\"".to_owned(),
        }
    }

    pub fn insert_sql(&self, schema: &SchemaName) -> String {
        let table = self.table(schema);
        match self {
            Raw::Postgres(_) => {
                format!(
                    "INSERT INTO {table} (\"name\", \"user_id\") VALUES ($1, $2) RETURNING \"id\""
                )
            }
            Raw::MySql(..) => format!("INSERT INTO {table} (`name`, `user_id`) VALUES (?, ?)"),
            Raw::Sqlite(_) => {
                format!(
                    "INSERT INTO {table} (\"name\", \"user_id\") VALUES (?, ?) RETURNING \"id\""
                )
            }
        }
    }

    pub async fn insert(
        &self,
        schema: &SchemaName,
        sql: &str,
        name: String,
        owner: i64,
    ) -> Result<i64> {
        Ok(match self {
            Raw::Postgres(db) => {
                let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                let pool = &mut *conn;
                sqlx::query_scalar(sql)
                    .bind(name)
                    .bind(Some(owner))
                    .fetch_one(pool)
                    .await?
            }
            Raw::MySql(db) => {
                let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                let pool = &mut *conn;
                let done = sqlx::query(sql)
                    .bind(name)
                    .bind(Some(owner))
                    .execute(pool)
                    .await?;
                done.last_insert_id() as i64
            }
            Raw::Sqlite(db) => {
                let mut conn = Borrowed(Some(Self::sqlite_conn(db, schema).await?));
                let pool = &mut *conn;
                sqlx::query_scalar(sql)
                    .bind(name)
                    .bind(Some(owner))
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// The point read, spelled as tenantry's `get` spells it (`LIMIT 2` to detect duplicates).
    pub fn get_sql(&self, schema: &SchemaName) -> String {
        let table = self.table(schema);
        match self {
            Raw::Postgres(_) => format!(
                "SELECT \"id\", \"name\", \"user_id\" FROM {table} WHERE \"id\" = $1 LIMIT $2"
            ),
            Raw::MySql(..) => {
                format!("SELECT `id`, `name`, `user_id` FROM {table} WHERE `id` = ? LIMIT ?")
            }
            Raw::Sqlite(_) => {
                format!(
                    "SELECT \"id\", \"name\", \"user_id\" FROM {table} WHERE \"id\" = ? LIMIT ?"
                )
            }
        }
    }

    pub async fn get(&self, schema: &SchemaName, sql: &str, key: i64) -> Result<RawProduct> {
        let mut rows = match self {
            Raw::Postgres(db) => {
                let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                let pool = &mut *conn;
                let rows = sqlx::query(sql)
                    .bind(key)
                    .bind(2i64)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(RawProduct::pg)
                    .collect::<sqlx::Result<Vec<_>>>()?
            }
            Raw::MySql(db) => {
                let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                let pool = &mut *conn;
                let rows = sqlx::query(sql)
                    .bind(key)
                    .bind(2u64)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(RawProduct::mysql)
                    .collect::<sqlx::Result<Vec<_>>>()?
            }
            Raw::Sqlite(db) => {
                let mut conn = Borrowed(Some(Self::sqlite_conn(db, schema).await?));
                let pool = &mut *conn;
                let rows = sqlx::query(sql)
                    .bind(key)
                    .bind(2i64)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(RawProduct::sqlite)
                    .collect::<sqlx::Result<Vec<_>>>()?
            }
        };
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(format!("expected one row, got {n}").into()),
        }
    }

    /// One connection of the pool, held until dropped; `None` on SQLite, whose schemas are
    /// files with pools of their own.
    pub async fn hold(&self) -> Result<Option<Held>> {
        Ok(match self {
            Raw::Postgres(db) => Some(Held::Postgres(db.acquire_postgres().await?)),
            Raw::MySql(db) => Some(Held::MySql(db.acquire_mysql().await?)),
            Raw::Sqlite(_) => None,
        })
    }

    pub fn filter_sql(&self, schema: &SchemaName) -> String {
        let table = self.table(schema);
        match self {
            Raw::Postgres(_) => format!(
                "SELECT \"id\", \"name\", \"user_id\" FROM {table} WHERE LOWER(\"name\") LIKE $1 ESCAPE E'\\\\'"
            ),
            Raw::MySql(..) => format!(
                "SELECT `id`, `name`, `user_id` FROM {table} WHERE LOWER(`name`) LIKE ? ESCAPE '\\\\'"
            ),
            Raw::Sqlite(_) => format!(
                "SELECT \"id\", \"name\", \"user_id\" FROM {table} WHERE LOWER(\"name\") LIKE ? ESCAPE '\\'"
            ),
        }
    }

    pub async fn filter(
        &self,
        schema: &SchemaName,
        sql: &str,
        pattern: &str,
    ) -> Result<Vec<RawProduct>> {
        Ok(match self {
            Raw::Postgres(db) => {
                let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                let pool = &mut *conn;
                let rows = sqlx::query(sql).bind(pattern).fetch_all(pool).await?;
                rows.iter()
                    .map(RawProduct::pg)
                    .collect::<sqlx::Result<_>>()?
            }
            Raw::MySql(db) => {
                let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                let pool = &mut *conn;
                let rows = sqlx::query(sql).bind(pattern).fetch_all(pool).await?;
                rows.iter()
                    .map(RawProduct::mysql)
                    .collect::<sqlx::Result<_>>()?
            }
            Raw::Sqlite(db) => {
                let mut conn = Borrowed(Some(Self::sqlite_conn(db, schema).await?));
                let pool = &mut *conn;
                let rows = sqlx::query(sql).bind(pattern).fetch_all(pool).await?;
                rows.iter()
                    .map(RawProduct::sqlite)
                    .collect::<sqlx::Result<_>>()?
            }
        })
    }

    /// Multi-row INSERTs of `names` (no owner), batched as `bulk_create` batches them (the
    /// backend's bind-parameter limit), returning the keys where the backend can. Returns the
    /// number of rows inserted.
    pub async fn bulk_insert(&self, schema: &SchemaName, names: &[String]) -> Result<usize> {
        let backend = match self {
            Raw::Postgres(_) => tenantry::Backend::Postgres,
            Raw::MySql(..) => tenantry::Backend::MySql,
            Raw::Sqlite(_) => tenantry::Backend::Sqlite,
        };
        let per_batch = backend.capabilities().max_bind_params / 2;
        let table = self.table(schema);
        let mut inserted = 0;
        for chunk in names.chunks(per_batch) {
            let mut sql = match self {
                Raw::MySql(..) => format!("INSERT INTO {table} (`name`, `user_id`) VALUES "),
                _ => format!("INSERT INTO {table} (\"name\", \"user_id\") VALUES "),
            };
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Raw::Postgres(_) => sql.push_str(&format!("(${}, ${})", 2 * i + 1, 2 * i + 2)),
                    _ => sql.push_str("(?, ?)"),
                }
            }
            inserted += match self {
                Raw::Postgres(db) => {
                    let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                    let pool = &mut *conn;
                    sql.push_str(" RETURNING \"id\"");
                    let mut query = sqlx::query_scalar::<_, i64>(&sql);
                    for name in chunk {
                        query = query.bind(name).bind(None::<i64>);
                    }
                    query.fetch_all(pool).await?.len()
                }
                Raw::MySql(db) => {
                    let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                    let pool = &mut *conn;
                    let mut query = sqlx::query(&sql);
                    for name in chunk {
                        query = query.bind(name).bind(None::<i64>);
                    }
                    query.execute(pool).await?.rows_affected() as usize
                }
                Raw::Sqlite(db) => {
                    sql.push_str(" RETURNING \"id\"");
                    let mut conn = Borrowed(Some(Self::sqlite_conn(db, schema).await?));
                    let pool = &mut *conn;
                    let mut query = sqlx::query_scalar::<_, i64>(&sql);
                    for name in chunk {
                        query = query.bind(name).bind(None::<i64>);
                    }
                    query.fetch_all(pool).await?.len()
                }
            };
        }
        Ok(inserted)
    }
}

/// A connection borrowed for one statement and handed back after it, as tenantry hands
/// its own back (the bench's statements leave no session state behind).
struct Borrowed<DB: sqlx::Database>(Option<PooledConnection<DB>>);

impl<DB: sqlx::Database> std::ops::Deref for Borrowed<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        self.0.as_deref().expect("borrowed until dropped")
    }
}

impl<DB: sqlx::Database> std::ops::DerefMut for Borrowed<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.0.as_deref_mut().expect("borrowed until dropped")
    }
}

impl<DB: sqlx::Database> Drop for Borrowed<DB> {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            conn.release();
        }
    }
}

/// A connection held for a whole loop.
pub enum Held {
    Postgres(PooledConnection<Postgres>),
    MySql(PooledConnection<MySql>),
}

impl Held {
    /// The point read of [`Raw::get`] on this connection.
    pub async fn get(&mut self, sql: &str, key: i64) -> Result<RawProduct> {
        let product = match self {
            Held::Postgres(conn) => {
                let rows = sqlx::query(sql)
                    .bind(key)
                    .bind(2i64)
                    .fetch_all(&mut **conn)
                    .await?;
                RawProduct::pg(rows.first().ok_or("no row")?)?
            }
            Held::MySql(conn) => {
                let rows = sqlx::query(sql)
                    .bind(key)
                    .bind(2u64)
                    .fetch_all(&mut **conn)
                    .await?;
                RawProduct::mysql(rows.first().ok_or("no row")?)?
            }
        };
        check(product.id, key)?;
        Ok(product)
    }
}

fn check(got: i64, want: i64) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(BoxError::from(format!("read key {got}, wanted {want}")))
    }
}
