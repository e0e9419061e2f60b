//! The same statements through bare sqlx on tenantry's own pool: hand-written SQL, each text
//! prepared once per connection by sqlx's statement cache.

use sqlx::{mysql::MySqlRow, postgres::PgRow, sqlite::SqliteRow, MySql, Postgres, Row as _};
use tenantry::{Database, Decimal, PooledConnection, SchemaName};

use crate::{BoxError, Result};

/// A product decoded by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct RawProduct {
    pub id: i64,
    pub name: String,
    pub user_id: Option<i64>,
    pub price: Decimal,
    pub stock: i32,
}

impl RawProduct {
    pub(crate) fn pg(row: &PgRow) -> sqlx::Result<RawProduct> {
        Ok(RawProduct {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            user_id: row.try_get(2)?,
            price: row.try_get(3)?,
            stock: row.try_get(4)?,
        })
    }

    pub(crate) fn mysql(row: &MySqlRow) -> sqlx::Result<RawProduct> {
        Ok(RawProduct {
            id: row.try_get(0)?,
            // `utf8mb4_bin` columns are flagged BINARY; the bytes are UTF-8 text.
            name: row.try_get_unchecked(1)?,
            user_id: row.try_get(2)?,
            price: row.try_get(3)?,
            stock: row.try_get(4)?,
        })
    }

    pub(crate) fn sqlite(row: &SqliteRow) -> sqlx::Result<RawProduct> {
        Ok(RawProduct {
            id: row.try_get(0)?,
            name: row.try_get(1)?,
            user_id: row.try_get(2)?,
            price: sqlite_decimal(row, 3)?,
            stock: row.try_get(4)?,
        })
    }
}

/// A SQLite decimal column: the value's text (tenantry stores decimals as `TEXT`).
pub(crate) fn sqlite_decimal(row: &SqliteRow, index: usize) -> sqlx::Result<Decimal> {
    let text: String = row.try_get_unchecked(index)?;
    text.parse().map_err(|error| sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: Box::new(error),
    })
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
    /// tenant namespace, see `Database::tenant_namespace`), `"main"."products"` in the schema's own
    /// file (SQLite).
    fn table(&self, schema: &SchemaName) -> String {
        self.table_named(schema, "products")
    }

    /// Table `name` of `schema`, spelled as [`table`](Self::table) spells `products`.
    pub(crate) fn table_named(&self, schema: &SchemaName, name: &str) -> String {
        match self {
            Raw::Postgres(_) => format!("\"{schema}\".\"{name}\""),
            Raw::MySql(db) => format!(
                "`{}`.`{name}`",
                db.server_schema_name(schema)
                    .expect("the bench's tenants were created, so their names fit")
            ),
            // The schema's own file, named as the ORM names it (`main`: never an attached file).
            Raw::Sqlite(_) => format!("\"main\".\"{name}\""),
        }
    }

    /// The backend's quote character for identifiers.
    pub(crate) fn quote(&self) -> char {
        match self {
            Raw::MySql(_) => '`',
            _ => '"',
        }
    }

    /// The `n`-th placeholder (from 1).
    pub(crate) fn placeholder(&self, n: usize) -> String {
        match self {
            Raw::Postgres(_) => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// The product columns, quoted, as every SELECT of a product lists them.
    pub(crate) fn product_columns(&self) -> String {
        let q = self.quote();
        ["id", "name", "user_id", "price", "stock"]
            .map(|c| format!("{q}{c}{q}"))
            .join(", ")
    }

    pub fn insert_sql(&self, schema: &SchemaName) -> String {
        let table = self.table(schema);
        match self {
            Raw::Postgres(_) => format!(
                "INSERT INTO {table} (\"name\", \"user_id\", \"price\", \"stock\") VALUES ($1, $2, $3, $4) RETURNING \"id\""
            ),
            Raw::MySql(..) => format!(
                "INSERT INTO {table} (`name`, `user_id`, `price`, `stock`) VALUES (?, ?, ?, ?)"
            ),
            Raw::Sqlite(_) => format!(
                "INSERT INTO {table} (\"name\", \"user_id\", \"price\", \"stock\") VALUES (?, ?, ?, ?) RETURNING \"id\""
            ),
        }
    }

    /// One product insert: `name`, owned by `owner`, with the price and stock of the
    /// workload's `i`-th product (bound as tenantry binds them: the decimal at its column's
    /// scale, as text on SQLite).
    pub async fn insert(
        &self,
        schema: &SchemaName,
        sql: &str,
        name: String,
        owner: i64,
        i: usize,
    ) -> Result<i64> {
        let (price, stock) = (crate::models::price(i), crate::models::stock(i));
        Ok(match self {
            Raw::Postgres(db) => {
                let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                let pool = &mut *conn;
                sqlx::query_scalar(sql)
                    .bind(name)
                    .bind(Some(owner))
                    .bind(price)
                    .bind(stock)
                    .fetch_one(pool)
                    .await?
            }
            Raw::MySql(db) => {
                let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                let pool = &mut *conn;
                let done = sqlx::query(sql)
                    .bind(name)
                    .bind(Some(owner))
                    .bind(price)
                    .bind(stock)
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
                    .bind(price.to_string())
                    .bind(stock)
                    .fetch_one(pool)
                    .await?
            }
        })
    }

    /// The point read, spelled as tenantry's `get` spells it (`LIMIT 2` to detect duplicates).
    pub fn get_sql(&self, schema: &SchemaName) -> String {
        let (table, columns) = (self.table(schema), self.product_columns());
        match self {
            Raw::Postgres(_) => {
                format!("SELECT {columns} FROM {table} WHERE \"id\" = $1 LIMIT $2")
            }
            Raw::MySql(..) => format!("SELECT {columns} FROM {table} WHERE `id` = ? LIMIT ?"),
            Raw::Sqlite(_) => format!("SELECT {columns} FROM {table} WHERE \"id\" = ? LIMIT ?"),
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
        let (table, columns) = (self.table(schema), self.product_columns());
        match self {
            Raw::Postgres(_) => format!(
                "SELECT {columns} FROM {table} WHERE LOWER(\"name\") LIKE $1 ESCAPE E'\\\\'"
            ),
            Raw::MySql(..) => {
                format!("SELECT {columns} FROM {table} WHERE LOWER(`name`) LIKE ? ESCAPE '\\\\'")
            }
            Raw::Sqlite(_) => {
                format!("SELECT {columns} FROM {table} WHERE LOWER(\"name\") LIKE ? ESCAPE '\\'")
            }
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

    /// Multi-row INSERTs of `names` (no owner; the price and stock of each name's
    /// position), batched as `bulk_create` batches them (the backend's bind-parameter limit
    /// over the four columns), returning the keys where the backend can. Returns the number
    /// of rows inserted.
    pub async fn bulk_insert(&self, schema: &SchemaName, names: &[String]) -> Result<usize> {
        const WIDTH: usize = 4;
        let backend = match self {
            Raw::Postgres(_) => tenantry::Backend::Postgres,
            Raw::MySql(..) => tenantry::Backend::MySql,
            Raw::Sqlite(_) => tenantry::Backend::Sqlite,
        };
        let per_batch = (backend.capabilities().max_bind_params / WIDTH).max(1);
        let table = self.table(schema);
        let mut inserted = 0;
        for (c, chunk) in names.chunks(per_batch).enumerate() {
            let first = c * per_batch;
            let mut sql = match self {
                Raw::MySql(..) => {
                    format!("INSERT INTO {table} (`name`, `user_id`, `price`, `stock`) VALUES ")
                }
                _ => format!(
                    "INSERT INTO {table} (\"name\", \"user_id\", \"price\", \"stock\") VALUES "
                ),
            };
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                match self {
                    Raw::Postgres(_) => {
                        let n = WIDTH * i;
                        sql.push_str(&format!("(${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4))
                    }
                    _ => sql.push_str("(?, ?, ?, ?)"),
                }
            }
            let rows = chunk.iter().enumerate().map(|(i, name)| {
                let i = first + i;
                (name, crate::models::price(i), crate::models::stock(i))
            });
            inserted += match self {
                Raw::Postgres(db) => {
                    let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                    let pool = &mut *conn;
                    sql.push_str(" RETURNING \"id\"");
                    let mut query = sqlx::query_scalar::<_, i64>(&sql);
                    for (name, price, stock) in rows {
                        query = query.bind(name).bind(None::<i64>).bind(price).bind(stock);
                    }
                    query.fetch_all(pool).await?.len()
                }
                Raw::MySql(db) => {
                    let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                    let pool = &mut *conn;
                    let mut query = sqlx::query(&sql);
                    for (name, price, stock) in rows {
                        query = query.bind(name).bind(None::<i64>).bind(price).bind(stock);
                    }
                    query.execute(pool).await?.rows_affected() as usize
                }
                Raw::Sqlite(db) => {
                    sql.push_str(" RETURNING \"id\"");
                    let mut conn = Borrowed(Some(Self::sqlite_conn(db, schema).await?));
                    let pool = &mut *conn;
                    let mut query = sqlx::query_scalar::<_, i64>(&sql);
                    for (name, price, stock) in rows {
                        query = query
                            .bind(name)
                            .bind(None::<i64>)
                            .bind(price.to_string())
                            .bind(stock);
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
    /// Hands the connection back to the pool (dropped, it would be closed).
    pub fn release(self) {
        match self {
            Held::Postgres(conn) => conn.release(),
            Held::MySql(conn) => conn.release(),
        }
    }

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

// ---------------------------------------------------------------------------------------
// The statements of W9..W12: a thin layer over bare sqlx (bind values and rows per driver),
// so that each workload's counterpart is written once for a connection borrowed per
// statement and for one held connection.
// ---------------------------------------------------------------------------------------

/// A user decoded by hand.
#[derive(Debug, Clone, PartialEq)]
pub struct RawUser {
    pub id: i64,
    pub name: String,
}

/// One owner's group of W10, shaped as tenantry's `group_by(..).aggregate(..)` returns it:
/// the owner (NULL for products of nobody), the count and the sum of `price`.
pub type Group = (Option<i64>, (i64, Option<Decimal>));

/// The scale of the bench's `price` column (SQLite sums it in these units).
pub const PRICE_SCALE: u32 = 2;

/// A bind value, bound on each driver as tenantry binds it.
#[derive(Clone, Copy, Debug)]
pub enum Arg<'a> {
    /// A bigint: a key, SQLite's decimal-sum multiplier.
    Int(i64),
    /// A LIMIT: unsigned on MySQL, a bigint elsewhere.
    Limit(u64),
    Text(&'a str),
    /// An integer column's value (`stock`).
    Int32(i32),
}

/// `query` with `args` bound; `limit` turns a LIMIT into the driver's type.
macro_rules! bind_all {
    ($query:expr, $args:expr, $limit:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                Arg::Int(v) => query.bind(v),
                Arg::Limit(v) => query.bind($limit(v)),
                Arg::Text(v) => query.bind(v),
                Arg::Int32(v) => query.bind(v),
            };
        }
        query
    }};
}

/// `query` with `args` bound, on MySQL.
pub(crate) fn bind_mysql<'q>(
    query: sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments>,
    args: &[Arg<'q>],
) -> sqlx::query::Query<'q, MySql, sqlx::mysql::MySqlArguments> {
    bind_all!(query, args, std::convert::identity)
}

/// A LIMIT as PostgreSQL and SQLite take it.
fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The rows of one statement.
pub enum Rows {
    Postgres(Vec<PgRow>),
    MySql(Vec<MySqlRow>),
    Sqlite(Vec<SqliteRow>),
}

/// Decoding by hand, per driver.
pub trait RawRow {
    fn product(&self) -> sqlx::Result<RawProduct>;
    fn user(&self) -> sqlx::Result<RawUser>;
    fn group(&self) -> sqlx::Result<Group>;
    /// W13's row: key, sku, stock.
    fn sku(&self) -> sqlx::Result<(i64, String, i32)>;
}

impl RawRow for PgRow {
    fn product(&self) -> sqlx::Result<RawProduct> {
        RawProduct::pg(self)
    }
    fn sku(&self) -> sqlx::Result<(i64, String, i32)> {
        Ok((self.try_get(0)?, self.try_get(1)?, self.try_get(2)?))
    }
    fn user(&self) -> sqlx::Result<RawUser> {
        Ok(RawUser {
            id: self.try_get(0)?,
            name: self.try_get(1)?,
        })
    }
    fn group(&self) -> sqlx::Result<Group> {
        Ok((
            self.try_get(0)?,
            (self.try_get(1)?, self.try_get::<Option<Decimal>, _>(2)?),
        ))
    }
}

impl RawRow for MySqlRow {
    fn product(&self) -> sqlx::Result<RawProduct> {
        RawProduct::mysql(self)
    }
    fn sku(&self) -> sqlx::Result<(i64, String, i32)> {
        Ok((
            self.try_get(0)?,
            self.try_get_unchecked(1)?,
            self.try_get(2)?,
        ))
    }
    fn user(&self) -> sqlx::Result<RawUser> {
        Ok(RawUser {
            id: self.try_get(0)?,
            name: self.try_get_unchecked(1)?,
        })
    }
    fn group(&self) -> sqlx::Result<Group> {
        Ok((
            self.try_get(0)?,
            (self.try_get(1)?, self.try_get::<Option<Decimal>, _>(2)?),
        ))
    }
}

impl RawRow for SqliteRow {
    fn product(&self) -> sqlx::Result<RawProduct> {
        RawProduct::sqlite(self)
    }
    fn sku(&self) -> sqlx::Result<(i64, String, i32)> {
        Ok((self.try_get(0)?, self.try_get(1)?, self.try_get(2)?))
    }
    fn user(&self) -> sqlx::Result<RawUser> {
        Ok(RawUser {
            id: self.try_get(0)?,
            name: self.try_get(1)?,
        })
    }
    /// SQLite sums the decimal as an integer count of cents.
    fn group(&self) -> sqlx::Result<Group> {
        let units: Option<i64> = self.try_get(2)?;
        Ok((
            self.try_get(0)?,
            (
                self.try_get(1)?,
                units.map(|u| Decimal::new(u, PRICE_SCALE)),
            ),
        ))
    }
}

impl Rows {
    fn each<T>(&self, decode: impl Fn(&dyn RawRow) -> sqlx::Result<T>) -> Result<Vec<T>> {
        Ok(match self {
            Rows::Postgres(rows) => rows
                .iter()
                .map(|r| decode(r))
                .collect::<sqlx::Result<_>>()?,
            Rows::MySql(rows) => rows
                .iter()
                .map(|r| decode(r))
                .collect::<sqlx::Result<_>>()?,
            Rows::Sqlite(rows) => rows
                .iter()
                .map(|r| decode(r))
                .collect::<sqlx::Result<_>>()?,
        })
    }

    pub fn products(&self) -> Result<Vec<RawProduct>> {
        self.each(|r| r.product())
    }

    pub fn users(&self) -> Result<Vec<RawUser>> {
        self.each(|r| r.user())
    }

    pub fn groups(&self) -> Result<Vec<Group>> {
        self.each(|r| r.group())
    }

    pub fn skus(&self) -> Result<Vec<(i64, String, i32)>> {
        self.each(|r| r.sku())
    }
}

/// Where a counterpart's statements run.
pub(crate) trait Exec {
    /// Runs `sql` with `args` and returns every row.
    async fn fetch(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Rows>;

    /// Runs `sql` and decodes its rows into products, read the way tenantry reads them on
    /// this backend: on PostgreSQL each row decoded as it arrives (overridden), elsewhere
    /// the result read to the end first. So W12's ratio compares the ORM's own cost, not
    /// two ways of reading.
    async fn fetch_products(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<RawProduct>> {
        self.fetch(sql, args).await?.products()
    }
}

/// `sql` with `args` on a PostgreSQL connection, each row decoded into a product as it
/// arrives.
async fn pg_products(
    conn: &mut sqlx::PgConnection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<RawProduct>> {
    use futures_util::TryStreamExt as _;
    let query = bind_all!(sqlx::query(sql), args, signed);
    let mut rows = query.fetch(conn);
    // Room for the LIMIT's rows, as tenantry makes.
    let limit = args.iter().find_map(|arg| match arg {
        Arg::Limit(n) => Some(*n as usize),
        _ => None,
    });
    let mut products = Vec::with_capacity(limit.unwrap_or(0).min(10_000));
    while let Some(row) = rows.try_next().await? {
        products.push(RawProduct::pg(&row)?);
    }
    Ok(products)
}

/// A connection borrowed from the pool for each statement (SQLite: the schema's file), as
/// tenantry borrows one.
pub struct PerStatement<'a> {
    raw: &'a Raw,
    schema: &'a SchemaName,
}

impl Raw {
    /// Statements of `schema`, each on a connection borrowed for it.
    pub fn per_statement<'a>(&'a self, schema: &'a SchemaName) -> PerStatement<'a> {
        PerStatement { raw: self, schema }
    }
}

impl Exec for PerStatement<'_> {
    async fn fetch_products(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<RawProduct>> {
        match self.raw {
            Raw::Postgres(db) => {
                let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                pg_products(&mut conn, sql, args).await
            }
            _ => self.fetch(sql, args).await?.products(),
        }
    }

    async fn fetch(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Rows> {
        Ok(match self.raw {
            Raw::Postgres(db) => {
                let mut conn = Borrowed(Some(db.acquire_postgres().await?));
                let query = bind_all!(sqlx::query(sql), args, signed);
                Rows::Postgres(query.fetch_all(&mut *conn).await?)
            }
            Raw::MySql(db) => {
                let mut conn = Borrowed(Some(db.acquire_mysql().await?));
                let query = bind_all!(sqlx::query(sql), args, std::convert::identity);
                Rows::MySql(query.fetch_all(&mut *conn).await?)
            }
            Raw::Sqlite(db) => {
                let mut conn = Borrowed(Some(Raw::sqlite_conn(db, self.schema).await?));
                let query = bind_all!(sqlx::query(sql), args, signed);
                Rows::Sqlite(query.fetch_all(&mut *conn).await?)
            }
        })
    }
}

impl Exec for Held {
    async fn fetch_products(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<RawProduct>> {
        match self {
            Held::Postgres(conn) => pg_products(conn, sql, args).await,
            Held::MySql(_) => self.fetch(sql, args).await?.products(),
        }
    }

    async fn fetch(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Rows> {
        Ok(match self {
            Held::Postgres(conn) => {
                let query = bind_all!(sqlx::query(sql), args, signed);
                Rows::Postgres(query.fetch_all(&mut **conn).await?)
            }
            Held::MySql(conn) => {
                let query = bind_all!(sqlx::query(sql), args, std::convert::identity);
                Rows::MySql(query.fetch_all(&mut **conn).await?)
            }
        })
    }
}

impl Raw {
    /// `n` placeholders from the `first`-th, comma-separated.
    fn placeholders(&self, first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| self.placeholder(i))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// W9: the product with a key whose owner has a name, a join across the foreign key to
    /// a derived table of the matching owners, as the ORM writes it (binds: the name, the
    /// key, the LIMIT of `get`).
    pub fn join_sql(&self, schema: &SchemaName) -> String {
        let q = self.quote();
        let j = format!("{q}tenantry_j1{q}");
        format!(
            "SELECT {} FROM {} INNER JOIN (SELECT {q}users{q}.{q}id{q} AS {j} FROM {} \
             WHERE {q}name{q} = {}) AS {j} ON {j}.{j} = {q}products{q}.{q}user_id{q} \
             WHERE {q}id{q} = {} LIMIT {}",
            self.product_columns(),
            self.table(schema),
            self.table_named(schema, "users"),
            self.placeholder(1),
            self.placeholder(2),
            self.placeholder(3),
        )
    }

    /// `select_related`'s statement: the users with `n` keys.
    pub fn users_in_sql(&self, schema: &SchemaName, n: usize) -> String {
        let q = self.quote();
        format!(
            "SELECT {q}id{q}, {q}name{q} FROM {} WHERE {q}id{q} IN ({})",
            self.table_named(schema, "users"),
            self.placeholders(1, n)
        )
    }

    /// W10: count and sum of `price` per owner, NULL first (SQLite binds the multiplier
    /// that turns a price into cents: [`Raw::group_args`]).
    pub fn group_sql(&self, schema: &SchemaName) -> String {
        let table = self.table(schema);
        match self {
            Raw::Postgres(_) => format!(
                "SELECT \"user_id\", COUNT(\"id\"), SUM(\"price\") FROM {table} GROUP BY \
                 \"user_id\" ORDER BY \"user_id\" ASC NULLS FIRST"
            ),
            Raw::MySql(_) => format!(
                "SELECT `user_id`, COUNT(`id`), SUM(`price`) FROM {table} GROUP BY `user_id` \
                 ORDER BY `user_id` IS NULL DESC, `user_id` ASC"
            ),
            Raw::Sqlite(_) => format!(
                "SELECT \"user_id\", COUNT(\"id\"), SUM(CAST(ROUND(CAST(\"price\" AS REAL) * ?) \
                 AS INTEGER)) FROM {table} GROUP BY \"user_id\" ORDER BY \"user_id\" ASC NULLS \
                 FIRST"
            ),
        }
    }

    /// The binds of [`group_sql`](Self::group_sql).
    pub fn group_args(&self) -> Vec<Arg<'static>> {
        match self {
            Raw::Sqlite(_) => vec![Arg::Int(10i64.pow(PRICE_SCALE))],
            _ => Vec::new(),
        }
    }

    /// W11: every user of the schema.
    pub fn users_sql(&self, schema: &SchemaName) -> String {
        let q = self.quote();
        format!(
            "SELECT {q}id{q}, {q}name{q} FROM {}",
            self.table_named(schema, "users")
        )
    }

    /// `prefetch_related`'s statement: the products of `n` users, by key.
    pub fn children_sql(&self, schema: &SchemaName, n: usize) -> String {
        let q = self.quote();
        format!(
            "SELECT {} FROM {} WHERE {q}user_id{q} IN ({}) ORDER BY {q}id{q} ASC",
            self.product_columns(),
            self.table(schema),
            self.placeholders(1, n)
        )
    }

    /// W12: every product, by key, in one statement.
    pub fn stream_sql(&self, schema: &SchemaName) -> String {
        let q = self.quote();
        format!(
            "SELECT {} FROM {} ORDER BY {q}id{q} ASC",
            self.product_columns(),
            self.table(schema)
        )
    }

    /// W12, batched as `stream()` batches: the first batch (bind: the LIMIT), and the
    /// next ones (binds: the last key read, the LIMIT).
    pub fn batch_sql(&self, schema: &SchemaName) -> (String, String) {
        let q = self.quote();
        let (columns, table) = (self.product_columns(), self.table(schema));
        (
            format!(
                "SELECT {columns} FROM {table} ORDER BY {q}id{q} ASC LIMIT {}",
                self.placeholder(1)
            ),
            format!(
                "SELECT {columns} FROM {table} WHERE {q}id{q} > {} ORDER BY {q}id{q} ASC LIMIT {}",
                self.placeholder(1),
                self.placeholder(2)
            ),
        )
    }

    /// W12: streams [`stream_sql`](Self::stream_sql) with sqlx's `fetch` on one
    /// connection, decoding every row; returns the number of rows.
    pub async fn stream_count(&self, schema: &SchemaName, sql: &str) -> Result<u64> {
        use futures_util::TryStreamExt as _;
        let mut count = 0u64;
        let mut last = i64::MIN;
        let mut take = |product: RawProduct| -> Result<()> {
            if product.id <= last {
                return Err(format!("key {} after {last}", product.id).into());
            }
            last = product.id;
            count += 1;
            Ok(())
        };
        match self {
            Raw::Postgres(db) => {
                let mut conn = db.acquire_postgres().await?;
                let mut rows = sqlx::query(sql).fetch(&mut *conn);
                while let Some(row) = rows.try_next().await? {
                    take(RawProduct::pg(&row)?)?;
                }
            }
            Raw::MySql(db) => {
                let mut conn = db.acquire_mysql().await?;
                let mut rows = sqlx::query(sql).fetch(&mut *conn);
                while let Some(row) = rows.try_next().await? {
                    take(RawProduct::mysql(&row)?)?;
                }
            }
            Raw::Sqlite(db) => {
                let mut conn = Self::sqlite_conn(db, schema).await?;
                let mut rows = sqlx::query(sql).fetch(&mut *conn);
                while let Some(row) = rows.try_next().await? {
                    take(RawProduct::sqlite(&row)?)?;
                }
            }
        }
        Ok(count)
    }
}

/// W9's counterpart: the products `sql` (from [`Raw::join_sql`]) returns for `owner` and
/// `key`, each with its owner loaded by one `WHERE id IN (..)` statement, attached through
/// a hash map, as `select_related` does.
pub async fn join(
    raw: &Raw,
    exec: &mut impl Exec,
    schema: &SchemaName,
    sql: &str,
    owner: &str,
    key: i64,
) -> Result<Vec<(RawProduct, Option<RawUser>)>> {
    let products = exec
        .fetch(sql, &[Arg::Text(owner), Arg::Int(key), Arg::Limit(2)])
        .await?
        .products()?;
    let mut owners: std::collections::HashMap<i64, Option<RawUser>> =
        std::collections::HashMap::new();
    for product in &products {
        if let Some(user) = product.user_id {
            owners.entry(user).or_insert(None);
        }
    }
    if !owners.is_empty() {
        let keys: Vec<Arg<'_>> = owners.keys().map(|&k| Arg::Int(k)).collect();
        let users = exec
            .fetch(&raw.users_in_sql(schema, keys.len()), &keys)
            .await?
            .users()?;
        for user in users {
            if let Some(slot) = owners.get_mut(&user.id) {
                *slot = Some(user);
            }
        }
    }
    Ok(products
        .into_iter()
        .map(|product| {
            let owner = product
                .user_id
                .and_then(|k| owners.get(&k).cloned().flatten());
            (product, owner)
        })
        .collect())
}

/// W10's counterpart.
pub async fn groups(exec: &mut impl Exec, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Group>> {
    exec.fetch(sql, args).await?.groups()
}

/// W11's counterpart: every user of the schema, then the products of all of them in one
/// statement, attached to their owners through a hash map, as `prefetch_related` does.
pub async fn prefetch(
    raw: &Raw,
    exec: &mut impl Exec,
    schema: &SchemaName,
    users_sql: &str,
) -> Result<Vec<(RawUser, Vec<RawProduct>)>> {
    let users = exec.fetch(users_sql, &[]).await?.users()?;
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<Arg<'_>> = users.iter().map(|u| Arg::Int(u.id)).collect();
    let products = exec
        .fetch(&raw.children_sql(schema, keys.len()), &keys)
        .await?
        .products()?;
    let mut children: std::collections::HashMap<i64, Vec<RawProduct>> =
        std::collections::HashMap::new();
    for product in products {
        if let Some(owner) = product.user_id {
            children.entry(owner).or_default().push(product);
        }
    }
    Ok(users
        .into_iter()
        .map(|user| {
            let mine = children.remove(&user.id).unwrap_or_default();
            (user, mine)
        })
        .collect())
}

/// W12's batched counterpart: the statements `stream()` sends (`first`, then `next` from
/// the last key read), `batch` rows each, every row decoded; returns the number of rows.
pub async fn stream_batched(
    exec: &mut impl Exec,
    (first, next): (&str, &str),
    batch: u64,
) -> Result<u64> {
    let mut count = 0u64;
    let mut last: Option<i64> = None;
    loop {
        let products = match last {
            None => exec.fetch_products(first, &[Arg::Limit(batch)]).await?,
            Some(key) => {
                exec.fetch_products(next, &[Arg::Int(key), Arg::Limit(batch)])
                    .await?
            }
        };
        count += products.len() as u64;
        match products.last() {
            Some(product) if products.len() as u64 == batch => last = Some(product.id),
            _ => return Ok(count),
        }
    }
}
