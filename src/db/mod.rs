//! PostgreSQL access: the pool, and one small function per statement.
//!
//! Functions take `impl PgExecutor` so a caller can run them on the pool or
//! inside a transaction. sqlx prepares each statement once per connection
//! and reuses it (its statement cache), so no statement is parsed twice.

pub mod attempts;
pub mod progress;
pub mod quizzes;
pub mod users;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, PgPool};
use std::str::FromStr as _;

use crate::config::Config;

/// Builds the pool lazily: no connection is opened until the first query,
/// so a worker starts (not ready) while Postgres is down.
pub fn pool(cfg: &Config) -> anyhow::Result<PgPool> {
    let mut opts = PgConnectOptions::from_str(&cfg.database_url)
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?
        .application_name("quizbench")
        .log_statements(tracing::log::LevelFilter::Trace);
    if cfg.db_statement_timeout_ms > 0 {
        opts = opts.options([("statement_timeout", cfg.db_statement_timeout_ms.to_string())]);
    }
    Ok(PgPoolOptions::new()
        .max_connections(cfg.db_pool_max)
        .min_connections(cfg.db_pool_min)
        .acquire_timeout(cfg.db_acquire_timeout)
        .max_lifetime(cfg.db_max_lifetime)
        .idle_timeout(cfg.db_idle_timeout)
        // A connection checked on every acquire costs a round trip; sqlx
        // re-establishes broken ones when a query fails instead.
        .test_before_acquire(false)
        .connect_lazy_with(opts))
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
