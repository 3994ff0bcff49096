//! PostgreSQL access: the pool, and one small function per statement.
//!
//! Functions take `impl PgExecutor` so a caller can run them on the pool, a
//! checked-out connection or inside a transaction. sqlx prepares each
//! statement once per connection and reuses it (its statement cache), so no
//! statement is parsed twice.

pub mod attempts;
pub mod cohorts;
pub mod pool;
pub mod progress;
pub mod quizzes;
pub mod users;

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions as _;
use std::str::FromStr as _;

use crate::config::Config;
pub use pool::{DbConn, DbPool};

/// Builds the pool lazily: no connection is opened until the first query,
/// so a worker starts (not ready) while Postgres is down. Must run inside
/// the worker's runtime.
pub fn pool(cfg: &Config) -> anyhow::Result<DbPool> {
    let mut opts = PgConnectOptions::from_str(&cfg.database_url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?
        .application_name("quizbench")
        .log_statements(tracing::log::LevelFilter::Trace);
    if cfg.db_statement_timeout_ms > 0 {
        opts = opts.options([("statement_timeout", cfg.db_statement_timeout_ms.to_string())]);
    }
    DbPool::new(
        opts,
        pool::PoolSettings {
            max: cfg.db_pool_max as usize,
            min: cfg.db_pool_min as usize,
            acquire_timeout: cfg.db_acquire_timeout,
            max_lifetime: cfg.db_max_lifetime,
            idle_timeout: cfg.db_idle_timeout,
        },
    )
}

/// True when `e` is a unique violation of `constraint`.
pub fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
        }
        _ => false,
    }
}
