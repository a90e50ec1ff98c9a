//! Runs the embedded migrations on SQLite, keeping sqlx's bookkeeping table `_sqlx_migrations`
//! exactly as sqlx's own runner does (PostgreSQL still uses sqlx's): a database created by an
//! earlier dialbridge, whose SQLite side ran on sqlx, opens and takes only the migrations it
//! lacks, and the table stays readable by sqlx. Written by hand because sqlx's runner works only
//! on sqlx's own SQLite driver, which runs each statement on a thread of its own.

use std::time::Instant;

use sqlx::migrate::Migrator;

use crate::db::DbError;
use crate::StoreError;

const BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// Applies what `connection` lacks of `migrator`, each migration in a transaction of its own.
/// Refuses a database with a failed migration, or one whose applied migration was changed.
pub(crate) fn run_sqlite(migrator: &Migrator, connection: &mut rusqlite::Connection) -> Result<(), StoreError> {
    connection.execute_batch(BOOKKEEPING).map_err(DbError::from)?;
    let applied: Vec<(i64, bool, Vec<u8>)> = {
        let mut statement = connection
            .prepare("SELECT version, success, checksum FROM _sqlx_migrations ORDER BY version")
            .map_err(DbError::from)?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .map_err(DbError::from)?;
        rows.collect::<Result<_, _>>().map_err(DbError::from)?
    };
    if let Some((version, ..)) = applied.iter().find(|(_, success, _)| !success) {
        return Err(StoreError::Migration(sqlx::migrate::MigrateError::Dirty(*version)));
    }
    for migration in migrator.iter().filter(|m| !m.migration_type.is_down_migration()) {
        if let Some((_, _, checksum)) = applied.iter().find(|(v, ..)| *v == migration.version) {
            if *checksum != *migration.checksum {
                return Err(StoreError::Migration(sqlx::migrate::MigrateError::VersionMismatch(
                    migration.version,
                )));
            }
            continue;
        }
        let started = Instant::now();
        let tx = connection.transaction().map_err(DbError::from)?;
        tx.execute_batch(&migration.sql).map_err(DbError::from)?;
        tx.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (?1, ?2, TRUE, ?3, ?4)",
            rusqlite::params![
                migration.version,
                migration.description.as_ref(),
                migration.checksum.as_ref(),
                i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
            ],
        )
        .map_err(DbError::from)?;
        tx.commit().map_err(DbError::from)?;
    }
    Ok(())
}
