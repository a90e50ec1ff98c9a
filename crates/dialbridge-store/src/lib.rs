//! The persistent store of dialbridge.
//!
//! Architecture invariant: this is the only crate that speaks SQL. It runs the same portable
//! migrations on SQLite (the embedded default: one file, WAL, one writer) and PostgreSQL, through
//! sqlx's `Any` driver, so a deployment can move from one to the other by changing a URL.
//! API boundary: [`Store`] opens and migrates; [`Tx`] is one transaction with a method per
//! operation, so that a caller (admin CLI, provisioning, later the call engine) composes several
//! changes atomically.

mod calls;
mod config;
mod feed;
mod outbox;
pub mod secrets;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor};

pub use calls::*;
pub use config::*;
pub use feed::{EventFeed, LocalEventFeed, OutboxEvent};
pub use outbox::*;
pub use secrets::{md5_hex, PasswordHashCost, PasswordHashing, Sealer, SecretKey};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
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

struct Inner {
    read: AnyPool,
    write: AnyPool,
    sealer: Sealer,
    hashing: PasswordHashing,
    backend: Backend,
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
        sqlx::any::install_default_drivers();
        let url = options.database_url.as_str();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_owned()));
        };
        let connect = AnyConnectOptions::from_str(url)?.disable_statement_logging();
        let (read, write) = match backend {
            Backend::Sqlite => {
                // SQLite allows one writer at a time: a single write connection queues writers in
                // the pool instead of failing them with SQLITE_BUSY, and readers run beside it on WAL.
                let write = sqlite_pool(1).connect_with(connect.clone()).await?;
                let read = sqlite_pool(4).connect_with(connect).await?;
                (read, write)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(connect)
                    .await?;
                (pool.clone(), pool)
            }
        };
        MIGRATOR.run(&write).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                read,
                write,
                sealer: Sealer::new(key),
                hashing: PasswordHashing::new(options.password_hash_cost)?,
                backend,
                feed: Arc::new(LocalEventFeed::default()),
            }),
        })
    }

    pub fn backend(&self) -> Backend {
        self.inner.backend
    }

    /// A transaction that may write. On SQLite, writers wait for each other here.
    pub async fn begin(&self) -> Result<Tx<'_>, StoreError> {
        let conn = match self.inner.backend {
            // IMMEDIATE takes the write lock at BEGIN (waiting up to busy_timeout for it). A
            // deferred transaction that read first and then writes fails at once with
            // SQLITE_BUSY when another process (an operator's `dialbridge admin` beside the
            // server) wrote in between, and SQLite does not wait for that case.
            Backend::Sqlite => self.inner.write.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.inner.write.begin().await?,
        };
        Ok(Tx {
            conn,
            store: self,
            written_events: Vec::new(),
        })
    }

    /// A transaction for consistent reads; dropping it ends it.
    pub async fn begin_read(&self) -> Result<Tx<'_>, StoreError> {
        Ok(Tx {
            conn: self.inner.read.begin().await?,
            store: self,
            written_events: Vec::new(),
        })
    }

    /// A cheap query that proves the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.inner.read.acquire().await?.ping().await?;
        Ok(())
    }

    /// Names of the migrations applied, oldest first.
    pub async fn applied_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let rows: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = TRUE ORDER BY version")
                .fetch_all(&self.inner.read)
                .await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    pub async fn close(&self) {
        self.inner.write.close().await;
        self.inner.read.close().await;
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

fn sqlite_pool(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                    .await?;
                Ok(())
            })
        })
}

/// One database transaction. Every operation of the store is a method here, so several of
/// them commit or roll back together. After an operation fails, drop the transaction: on
/// PostgreSQL a failed statement aborts it, so validate before writing rather than catching.
pub struct Tx<'s> {
    conn: sqlx::Transaction<'static, Any>,
    store: &'s Store,
    /// Outbox events written here, published to the store's feed once the transaction commits.
    written_events: Vec<Arc<OutboxEvent>>,
}

impl Tx<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.conn.commit().await?;
        if !self.written_events.is_empty() {
            self.store.inner.feed.publish(self.written_events);
        }
        Ok(())
    }

    /// Takes the next value of a named sequence (ids, uniqueId sequence numbers), starting at 1.
    /// Sequences live in the database, so they never repeat across restarts.
    pub async fn next_id(&mut self, sequence: &str) -> Result<i64, StoreError> {
        let updated: Option<(i64,)> = sqlx::query_as(
            "UPDATE id_sequences SET next_value = next_value + 1 WHERE name = $1 RETURNING next_value - 1",
        )
        .bind(sequence)
        .fetch_optional(&mut *self.conn)
        .await?;
        if let Some((value,)) = updated {
            return Ok(value);
        }
        sqlx::query("INSERT INTO id_sequences (name, next_value) VALUES ($1, 2)")
            .bind(sequence)
            .execute(&mut *self.conn)
            .await?;
        Ok(1)
    }
}

/// Turns a unique-constraint violation into `AlreadyExists(what)`, a foreign-key violation
/// into `Conflict`, and leaves other errors as they are.
fn classify_constraint(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => return StoreError::AlreadyExists(what()),
            sqlx::error::ErrorKind::ForeignKeyViolation => {
                return StoreError::Conflict(format!("{} is still referenced or refers to something missing", what()))
            }
            _ => {}
        }
    }
    StoreError::Database(e)
}
