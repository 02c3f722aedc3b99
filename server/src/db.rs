//! Connecting and migrating.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// `pool`: connections to PostgreSQL (default: four per core).
pub async fn connect(url: &str, pool: Option<u32>) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's rule; a small pool avoids "database is locked".
        options.max_connections(4);
    } else {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u32);
        options.max_connections(pool.unwrap_or(4 * cores));
    }
    let db = Database::connect(options).await?;
    if url.starts_with("sqlite:") {
        // sqlx already turns on foreign keys and a busy timeout for every connection.
        db.execute_unprepared("PRAGMA journal_mode=WAL;").await?;
    }
    Ok(db)
}

pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(db, None).await?;
    Ok(())
}
