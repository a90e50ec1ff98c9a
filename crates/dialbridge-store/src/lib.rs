//! The persistent store of dialbridge.
//!
//! Architecture invariant: this is the only crate that speaks SQL. It runs the same portable
//! migrations and statements on SQLite (the embedded default: one file, WAL, one writer, run
//! inline through rusqlite) and PostgreSQL (sqlx's `PgPool`), behind one query API of its own
//! (`db.rs`), so a deployment can move from one to the other by changing a URL.
//! API boundary: [`Store`] opens and migrates; [`Tx`] is one transaction with a method per
//! operation, so that a caller (admin CLI, provisioning, later the call engine) composes several
//! changes atomically.

mod calls;
mod config;
mod credit;
mod db;
mod endings;
mod feed;
mod migrate;
mod outbox;
mod recordings;
mod registrations;
mod retention;
pub mod secrets;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

pub use db::DbError;
use db::{query, query_as, Conn, SqliteDb, Violation};

pub use calls::*;
pub use config::*;
pub use credit::{Extension, LedgerEntry, LedgerKind};
pub use endings::KeptLegEnding;
pub use feed::{EventFeed, LocalEventFeed, OutboxEvent};
pub use outbox::*;
pub use recordings::{RecordingAccess, RecordingRow, RecordingState};
pub use registrations::SipRegistration;
pub use secrets::{md5_hex, PasswordHashCost, PasswordHashing, Sealer, SecretKey};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] DbError),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?} (use sqlite://… or postgres://…)")]
    UnsupportedUrl(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("the secret key must be 64 hex characters (32 bytes)")]
    BadSecretKey,
    #[error("a stored secret cannot be decrypted: was the server's secret key changed?")]
    SealedSecretUnreadable,
    #[error("password hash cost: {0}")]
    BadPasswordHashCost(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("{0}")]
    Conflict(String),
    /// A value given to store (an operator's or a request's) breaks a rule; it names the field.
    #[error("{0}")]
    Invalid(#[from] dialbridge_core::ValidationError),
    /// A row already stored does not parse: the database was changed outside dialbridge.
    #[error("stored row is invalid: {0}")]
    Corrupt(String),
}

/// For values read back from the database: a stored value that breaks a rule is corruption, not
/// bad input.
pub(crate) fn corrupt(e: dialbridge_core::ValidationError) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub database_url: String,
    pub password_hash_cost: PasswordHashCost,
}

impl StoreOptions {
    /// The embedded default: `dialbridge.db` in the data directory, created when missing.
    pub fn sqlite_in(data_dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("dialbridge.db").display())
    }
}

enum Database {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

struct Inner {
    database: Database,
    sealer: Sealer,
    hashing: PasswordHashing,
    feed: Arc<dyn EventFeed>,
}

/// A handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Connects, applies pending migrations and returns the store.
    pub async fn open(options: &StoreOptions, key: &SecretKey) -> Result<Self, StoreError> {
        let url = options.database_url.as_str();
        let database = if url.starts_with("sqlite:") {
            let db = SqliteDb::open(url)?;
            db.with_writer(|connection| Ok(migrate::run_sqlite(&MIGRATOR, connection)))
                .await??;
            Database::Sqlite(db)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url)
                .map_err(DbError::from)?
                .disable_statement_logging();
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(connect)
                .await
                .map_err(DbError::from)?;
            MIGRATOR.run(&pool).await?;
            Database::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        Ok(Self {
            inner: Arc::new(Inner {
                database,
                sealer: Sealer::new(key),
                hashing: PasswordHashing::new(options.password_hash_cost)?,
                feed: Arc::new(LocalEventFeed::default()),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner.database {
            Database::Sqlite(_) => Backend::Sqlite,
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// A transaction that may write. On SQLite, writers wait for each other here.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let conn = match &self.inner.database {
            Database::Sqlite(db) => Conn::Sqlite(db.begin_write().await?),
            Database::Postgres(pool) => Conn::Postgres(pool.begin().await.map_err(DbError::from)?),
        };
        Ok(self.tx(conn))
    }

    /// A transaction for consistent reads; dropping it ends it.
    pub async fn begin_read(&self) -> Result<Tx<'_>, StoreError> {
        let conn = match &self.inner.database {
            Database::Sqlite(db) => Conn::Sqlite(db.begin_read().await?),
            Database::Postgres(pool) => Conn::Postgres(pool.begin().await.map_err(DbError::from)?),
        };
        Ok(self.tx(conn))
    }

    fn tx(&self, conn: Conn) -> Tx<'_> {
        Tx {
            conn,
            store: self,
            written_events: Vec::new(),
            config_changed: false,
        }
    }

    /// A cheap query that proves the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_read().await?;
        query("SELECT 1").fetch_one(&mut tx.conn).await?;
        Ok(())
    }

    /// Names of the migrations applied, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let mut tx = self.begin_read().await?;
        let rows: Vec<(i64,)> = query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
            .fetch_all(&mut tx.conn)
            .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    pub async fn close(&self) {
        if let Database::Postgres(pool) = &self.inner.database {
            pool.close().await;
        }
    }

    pub fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    pub fn hashing(&self) -> &PasswordHashing {
        &self.inner.hashing
    }

    /// Outbox events as their transactions commit, from now on (see [`EventFeed`]).
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<Arc<OutboxEvent>> {
        self.inner.feed.subscribe()
    }
}

/// One database transaction. Every operation of the store is a method here, so several of
/// them commit or roll back together. After an operation fails, drop the transaction: on
/// PostgreSQL a failed statement aborts it, so validate before writing rather than catching.
pub struct Tx<'s> {
    conn: Conn,
    store: &'s Store,
    /// Outbox events written here, published to the store's feed once the transaction commits.
    written_events: Vec<Arc<OutboxEvent>>,
    /// A configuration write happened: the commit raises the configuration generation.
    config_changed: bool,
}

impl Tx<'_> {
    pub async fn commit(mut self) -> Result<(), StoreError> {
        if self.config_changed {
            query("UPDATE config_generation SET generation = generation + 1 WHERE id = 1")
                .execute(&mut self.conn)
                .await?;
        }
        match self.conn {
            Conn::Sqlite(tx) => tx.commit()?,
            Conn::Postgres(tx) => tx.commit().await.map_err(DbError::from)?,
        }
        if !self.written_events.is_empty() {
            self.store.inner.feed.publish(self.written_events);
        }
        Ok(())
    }

    /// Takes the next value of a named sequence (ids, uniqueId sequence numbers), starting at 1.
    /// Sequences live in the database, so they never repeat across restarts.
    pub async fn next_id(&mut self, sequence: &str) -> Result<i64, StoreError> {
        let updated: Option<(i64,)> =
            query_as("UPDATE id_sequences SET next_value = next_value + 1 WHERE name = $1 RETURNING next_value - 1")
                .bind(sequence)
                .fetch_optional(&mut self.conn)
                .await?;
        if let Some((value,)) = updated {
            return Ok(value);
        }
        query("INSERT INTO id_sequences (name, next_value) VALUES ($1, 2)")
            .bind(sequence)
            .execute(&mut self.conn)
            .await?;
        Ok(1)
    }
}

/// Turns a unique-constraint violation into `AlreadyExists(what)`, a foreign-key violation
/// into `Conflict`, and leaves other errors as they are.
fn classify_constraint(e: DbError, what: impl FnOnce() -> String) -> StoreError {
    match e.violation() {
        Some(Violation::Unique) => StoreError::AlreadyExists(what()),
        Some(Violation::ForeignKey) => {
            StoreError::Conflict(format!("{} is still referenced or refers to something missing", what()))
        }
        None => StoreError::Database(e),
    }
}
