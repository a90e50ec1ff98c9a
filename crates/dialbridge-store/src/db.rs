//! The two databases behind one small API shaped like sqlx's (`query(sql).bind(v).execute(conn)`,
//! `fetch_optional`, `fetch_all`, `query_as` into tuples, `row.try_get("column")`), so every
//! operation of the store is written once, with the same portable SQL and `$N` parameters.
//!
//! - **SQLite** (rusqlite) runs on the calling task, inline: a transaction holds one connection
//!   (the writer, or one of a few readers) behind an async mutex, and each statement is a
//!   cached prepared statement executed there and then. sqlx's SQLite driver instead runs each
//!   connection on its own thread and sends it every statement over a channel (two thread
//!   hand-offs per statement); here a transaction costs at most the one wake-up of waiting for
//!   its connection. A statement on the hot path is an indexed lookup of a few microseconds, so
//!   running it on a runtime thread is cheaper than handing it off; the one wait that could be
//!   long, for the write lock another process holds, is made asynchronously (`begin_immediate`).
//! - **PostgreSQL** runs through sqlx's typed `PgPool`, each statement prepared once per
//!   connection.
//!
//! Written by hand because no crate offers one query API over rusqlite and sqlx; it is only as
//! much as the store uses.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::Value as SqliteValue;
use sqlx::postgres::PgRow;
use sqlx::Row as _;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// An error of either database, or a stored value of an unexpected type.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Postgres(#[from] sqlx::Error),
    #[error("column {column}: {reason}")]
    Decode { column: String, reason: String },
}

/// What a constraint violation was, for the store's `AlreadyExists` and `Conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    Unique,
    ForeignKey,
}

impl DbError {
    pub(crate) fn violation(&self) -> Option<Violation> {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => match e.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    Some(Violation::Unique)
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Some(Violation::ForeignKey),
                _ => None,
            },
            DbError::Postgres(sqlx::Error::Database(db)) => match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => Some(Violation::Unique),
                sqlx::error::ErrorKind::ForeignKeyViolation => Some(Violation::ForeignKey),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A bound parameter. NULLs carry their type: PostgreSQL infers a parameter's type from it.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

pub(crate) trait Bind {
    fn param(self) -> Param;
}

impl Bind for i64 {
    fn param(self) -> Param {
        Param::Int(Some(self))
    }
}
impl Bind for Option<i64> {
    fn param(self) -> Param {
        Param::Int(self)
    }
}
impl Bind for &str {
    fn param(self) -> Param {
        Param::Text(Some(self.to_owned()))
    }
}
impl Bind for String {
    fn param(self) -> Param {
        Param::Text(Some(self))
    }
}
impl Bind for &String {
    fn param(self) -> Param {
        Param::Text(Some(self.clone()))
    }
}
impl Bind for Option<&str> {
    fn param(self) -> Param {
        Param::Text(self.map(str::to_owned))
    }
}
impl Bind for Option<String> {
    fn param(self) -> Param {
        Param::Text(self)
    }
}

/// One connection in a transaction: SQLite's, held for the transaction, or PostgreSQL's.
pub(crate) enum Conn {
    Sqlite(SqliteTx),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

/// What a statement changed.
pub(crate) struct Done {
    rows: u64,
}

impl Done {
    pub(crate) fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A statement and its parameters, run with [`Query::execute`] or a `fetch_*`.
pub(crate) struct Query<'q> {
    sql: &'q str,
    params: Vec<Param>,
}

pub(crate) fn query(sql: &str) -> Query<'_> {
    Query {
        sql,
        params: Vec::new(),
    }
}

impl Query<'_> {
    pub(crate) fn bind(mut self, value: impl Bind) -> Self {
        self.params.push(value.param());
        self
    }

    pub(crate) async fn execute(self, conn: &mut Conn) -> Result<Done, DbError> {
        match conn {
            Conn::Sqlite(tx) => {
                let mut statement = tx.connection().prepare_cached(self.sql)?;
                bind_sqlite(&mut statement, &self.params)?;
                let rows = statement.raw_execute()?;
                Ok(Done { rows: rows as u64 })
            }
            Conn::Postgres(tx) => {
                let done = bind_postgres(sqlx::query(self.sql), self.params)
                    .execute(&mut **tx)
                    .await?;
                Ok(Done {
                    rows: done.rows_affected(),
                })
            }
        }
    }

    pub(crate) async fn fetch_all(self, conn: &mut Conn) -> Result<Vec<Row>, DbError> {
        match conn {
            Conn::Sqlite(tx) => {
                let mut statement = tx.connection().prepare_cached(self.sql)?;
                bind_sqlite(&mut statement, &self.params)?;
                let columns: Arc<[String]> = statement.column_names().into_iter().map(str::to_owned).collect();
                let mut rows = statement.raw_query();
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    let values = (0..columns.len())
                        .map(|i| row.get_ref(i).map(SqliteValue::from))
                        .collect::<Result<Vec<_>, _>>()?;
                    out.push(Row::Sqlite {
                        columns: columns.clone(),
                        values,
                    });
                }
                Ok(out)
            }
            Conn::Postgres(tx) => Ok(bind_postgres(sqlx::query(self.sql), self.params)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect()),
        }
    }

    pub(crate) async fn fetch_optional(self, conn: &mut Conn) -> Result<Option<Row>, DbError> {
        Ok(self.fetch_all(conn).await?.into_iter().next())
    }

    pub(crate) async fn fetch_one(self, conn: &mut Conn) -> Result<Row, DbError> {
        let sql = self.sql;
        self.fetch_optional(conn).await?.ok_or_else(|| DbError::Decode {
            column: String::new(),
            reason: format!("no row from {sql}"),
        })
    }
}

/// [`Query`] whose rows become `T` (a tuple of columns, in order).
pub(crate) struct QueryAs<'q, T> {
    query: Query<'q>,
    row: std::marker::PhantomData<T>,
}

pub(crate) fn query_as<T: FromRow>(sql: &str) -> QueryAs<'_, T> {
    QueryAs {
        query: query(sql),
        row: std::marker::PhantomData,
    }
}

impl<T: FromRow> QueryAs<'_, T> {
    pub(crate) fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub(crate) async fn fetch_all(self, conn: &mut Conn) -> Result<Vec<T>, DbError> {
        self.query.fetch_all(conn).await?.iter().map(T::from_row).collect()
    }

    pub(crate) async fn fetch_optional(self, conn: &mut Conn) -> Result<Option<T>, DbError> {
        self.query
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(T::from_row)
            .transpose()
    }

    pub(crate) async fn fetch_one(self, conn: &mut Conn) -> Result<T, DbError> {
        T::from_row(&self.query.fetch_one(conn).await?)
    }
}

/// Binds `$N` parameters by their number, wherever they appear (SQLite would otherwise number
/// them in the order they first appear).
fn bind_sqlite(statement: &mut rusqlite::Statement<'_>, params: &[Param]) -> Result<(), DbError> {
    for index in 1..=statement.parameter_count() {
        let number = statement
            .parameter_name(index)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        let value = match params.get(number - 1) {
            Some(Param::Int(Some(v))) => SqliteValue::Integer(*v),
            Some(Param::Text(Some(v))) => SqliteValue::Text(v.clone()),
            Some(Param::Int(None) | Param::Text(None)) | None => SqliteValue::Null,
        };
        statement.raw_bind_parameter(index, value)?;
    }
    Ok(())
}

fn bind_postgres(
    mut q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    params: Vec<Param>,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for param in params {
        q = match param {
            Param::Int(v) => q.bind(v),
            Param::Text(v) => q.bind(v),
        };
    }
    q
}

/// A row of either database.
pub(crate) enum Row {
    Sqlite {
        columns: Arc<[String]>,
        values: Vec<SqliteValue>,
    },
    Postgres(PgRow),
}

impl Row {
    pub(crate) fn try_get<T: Decode>(&self, column: &str) -> Result<T, DbError> {
        match self {
            Row::Sqlite { columns, values } => {
                let index = columns
                    .iter()
                    .position(|c| c == column)
                    .ok_or_else(|| decode_error(column, "no such column"))?;
                T::from_sqlite(&values[index]).map_err(|reason| decode_error(column, &reason))
            }
            Row::Postgres(row) => T::from_postgres(row, column),
        }
    }

    fn try_get_index<T: Decode>(&self, index: usize) -> Result<T, DbError> {
        match self {
            Row::Sqlite { values, .. } => values
                .get(index)
                .ok_or_else(|| decode_error(&index.to_string(), "no such column"))
                .and_then(|v| T::from_sqlite(v).map_err(|reason| decode_error(&index.to_string(), &reason))),
            Row::Postgres(row) => T::from_postgres(row, index),
        }
    }
}

fn decode_error(column: &str, reason: &str) -> DbError {
    DbError::Decode {
        column: column.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A Rust value read from a column: the one row-mapping trait, implemented per backend.
pub(crate) trait Decode: Sized {
    /// The type sqlx decodes from PostgreSQL for it.
    type Postgres: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>;
    fn from_sqlite(value: &SqliteValue) -> Result<Self, String>;
    fn from_postgres_value(value: Self::Postgres) -> Self;

    fn from_postgres<I: sqlx::ColumnIndex<PgRow>>(row: &PgRow, index: I) -> Result<Self, DbError> {
        Ok(Self::from_postgres_value(row.try_get::<Self::Postgres, _>(index)?))
    }
}

impl Decode for i64 {
    type Postgres = i64;
    fn from_sqlite(value: &SqliteValue) -> Result<Self, String> {
        match value {
            SqliteValue::Integer(v) => Ok(*v),
            other => Err(format!("expected an integer, found {:?}", other.data_type())),
        }
    }
    fn from_postgres_value(value: i64) -> Self {
        value
    }
}

impl Decode for String {
    type Postgres = String;
    fn from_sqlite(value: &SqliteValue) -> Result<Self, String> {
        match value {
            SqliteValue::Text(v) => Ok(v.clone()),
            other => Err(format!("expected text, found {:?}", other.data_type())),
        }
    }
    fn from_postgres_value(value: String) -> Self {
        value
    }
}

impl<T: Decode> Decode for Option<T> {
    type Postgres = Option<T::Postgres>;
    fn from_sqlite(value: &SqliteValue) -> Result<Self, String> {
        match value {
            SqliteValue::Null => Ok(None),
            other => T::from_sqlite(other).map(Some),
        }
    }
    fn from_postgres_value(value: Option<T::Postgres>) -> Self {
        value.map(T::from_postgres_value)
    }
}

/// A row read into a tuple of columns, in order.
pub(crate) trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, DbError>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Decode),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> Result<Self, DbError> {
                Ok(($(row.try_get_index::<$t>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);

// ---- SQLite connections ----

/// The SQLite database: one writer connection (SQLite has one writer at a time, so writers
/// queue on it instead of failing with SQLITE_BUSY) and a few readers beside it (WAL).
pub(crate) struct SqliteDb {
    writer: Arc<Mutex<rusqlite::Connection>>,
    readers: Vec<Arc<Mutex<rusqlite::Connection>>>,
}

/// How long a write waits for the lock another process (an operator's `dialbridge admin`)
/// holds before it fails.
const WRITE_LOCK_WAIT: Duration = Duration::from_secs(5);
const READERS: usize = 4;

impl SqliteDb {
    /// Opens `sqlite://PATH[?mode=rwc]` (`mode=rwc` creates a missing file).
    pub(crate) fn open(url: &str) -> Result<Self, DbError> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let create = query.split('&').any(|p| p == "mode=rwc");
        let open = || open_sqlite(Path::new(path), create);
        let writer = open()?;
        // The writer never sleeps in SQLite's busy handler (that would block a runtime
        // thread): `begin_write` waits for the lock itself, on the runtime's timer. Once it
        // holds the write lock no statement of the transaction waits for another.
        writer.busy_timeout(Duration::ZERO)?;
        let readers = (0..READERS).map(|_| open()).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            writer: Arc::new(Mutex::new(writer)),
            readers: readers.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(),
        })
    }

    /// A write transaction (`BEGIN IMMEDIATE`: the write lock is taken at once, so a
    /// transaction that reads first never fails when another process wrote in between). While
    /// another process holds the lock, this waits on the runtime's timer, not a thread.
    pub(crate) async fn begin_write(&self) -> Result<SqliteTx, DbError> {
        let connection = self.writer.clone().lock_owned().await;
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match connection.execute_batch("BEGIN IMMEDIATE") {
                Ok(()) => return Ok(SqliteTx::new(connection)),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && started.elapsed() < WRITE_LOCK_WAIT =>
                {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A read transaction on a free reader (or the first to become free).
    pub(crate) async fn begin_read(&self) -> Result<SqliteTx, DbError> {
        let connection = match self.readers.iter().find_map(|r| r.clone().try_lock_owned().ok()) {
            Some(free) => free,
            None => {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % self.readers.len();
                self.readers[i].clone().lock_owned().await
            }
        };
        connection.execute_batch("BEGIN")?;
        Ok(SqliteTx::new(connection))
    }

    /// Runs `work` on the writer outside any transaction (migrations, which manage their own;
    /// at start, so waiting in SQLite's busy handler for another process's lock is fine).
    pub(crate) async fn with_writer<T>(
        &self,
        work: impl FnOnce(&mut rusqlite::Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut connection = self.writer.lock().await;
        connection.busy_timeout(WRITE_LOCK_WAIT)?;
        let result = work(&mut connection);
        connection.busy_timeout(Duration::ZERO)?;
        result
    }
}

fn open_sqlite(path: &Path, create: bool) -> Result<rusqlite::Connection, DbError> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let connection = rusqlite::Connection::open_with_flags(path, flags)?;
    connection.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )?;
    connection.set_prepared_statement_cache_capacity(256);
    Ok(connection)
}

/// A transaction on one SQLite connection, held until it ends; rolled back when dropped
/// without [`SqliteTx::commit`].
pub(crate) struct SqliteTx {
    connection: OwnedMutexGuard<rusqlite::Connection>,
    open: bool,
}

impl SqliteTx {
    fn new(connection: OwnedMutexGuard<rusqlite::Connection>) -> Self {
        Self { connection, open: true }
    }

    fn connection(&mut self) -> &rusqlite::Connection {
        &self.connection
    }

    pub(crate) fn commit(mut self) -> Result<(), DbError> {
        self.open = false;
        if let Err(e) = self.connection.execute_batch("COMMIT") {
            let _ = self.connection.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if self.open && !self.connection.is_autocommit() {
            let _ = self.connection.execute_batch("ROLLBACK");
        }
    }
}
