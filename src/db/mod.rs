//! PostgreSQL access: the pool, and one small function per statement.
//! Every statement of the server is here, and every one is a `query!`-family
//! macro checked against the schema at compile time (offline, from the
//! committed `.sqlx/`), except the seed's COPY and its catalog-written DDL
//! ([`bulk`] says why).
//!
//! Functions take `impl PgExecutor` so a caller can run them on the pool, a
//! checked-out connection or inside a transaction (the seed's take `&mut
//! PgConnection`: they only ever run on its one connection). sqlx prepares
//! each statement once per connection and reuses it (its statement cache),
//! so no statement is parsed twice.

pub mod attempts;
pub mod bulk;
pub mod cohorts;

/// `impl Executor<$lt> for $ty`: each method passes the receiver and its
/// call (`method(args)`) to one of three macros of the calling module:
/// `$stream!` for `fetch_many`, `$run!` for the other statements
/// (`fetch_optional`, `fetch_all`, `execute`), `$prepare!` for
/// `prepare_with` and `describe`. The names the methods use (`Executor`,
/// `Postgres`, `BoxStream`, ...) are the calling module's imports.
macro_rules! executor_via {
    ($lt:lifetime, $ty:ty, $stream:ident, $run:ident, $prepare:ident) => {
        impl<$lt> Executor<$lt> for $ty {
            type Database = Postgres;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
            where
                $lt: 'e,
                E: 'q + Execute<'q, Postgres>,
            {
                $stream!(self, fetch_many(query))
            }

            executor_via!(@run $lt, $run, fetch_optional -> Option<PgRow>);
            executor_via!(@run $lt, $run, fetch_all -> Vec<PgRow>);
            executor_via!(@run $lt, $run, execute -> PgQueryResult);

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [PgTypeInfo],
            ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
            where
                $lt: 'e,
            {
                $prepare!(self, prepare_with(sql, parameters))
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
            where
                $lt: 'e,
            {
                $prepare!(self, describe(sql))
            }
        }
    };
    (@run $lt:lifetime, $run:ident, $m:ident -> $out:ty) => {
        fn $m<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, Result<$out, sqlx::Error>>
        where
            $lt: 'e,
            E: 'q + Execute<'q, Postgres>,
        {
            $run!(self, $m(query))
        }
    };
}

// The pool: ours (deadpool over sqlx connections, no round trip on release)
// or, with the `sqlx-pool` feature, sqlx's own, for the side-by-side
// measurement in docs/exceptions.md.
#[cfg(not(feature = "sqlx-pool"))]
pub mod pool;
#[cfg(feature = "sqlx-pool")]
#[path = "pool_sqlx.rs"]
pub mod pool;
pub mod progress;
pub mod quizzes;
pub mod server;
pub mod techempower;
pub mod users;

use secrecy::ExposeSecret as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions as _;
use std::str::FromStr as _;
use std::time::Duration;

use crate::config::{Config, DbPooler};
pub use pool::{DbConn, DbPool};

/// How a [`DbPool`] opens a connection: the connect options, then the SQL
/// (if any) run on each new connection before it is used. Not `Debug`:
/// sqlx's `PgConnectOptions` prints its password.
#[derive(Clone)]
pub struct Connect {
    pub opts: PgConnectOptions,
    pub session_setup: Option<String>,
}

impl From<PgConnectOptions> for Connect {
    fn from(opts: PgConnectOptions) -> Connect {
        Connect {
            opts,
            session_setup: None,
        }
    }
}

/// Limits of a [`DbPool`] (from `DB_POOL_*` and `DB_*_TIMEOUT*`).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max: usize,
    /// Connections kept open while idle (opened at start, in the background).
    pub min: usize,
    /// How long a request waits for a connection (and for one to open).
    pub acquire_timeout: Duration,
    /// Connections older than this are replaced when next checked out.
    pub max_lifetime: Option<Duration>,
    /// Connections idle longer than this are closed (down to `min`).
    pub idle_timeout: Option<Duration>,
}

/// What the pool's gauges show.
#[derive(Debug, Clone, Copy)]
pub struct PoolGauges {
    pub size: usize,
    pub idle: usize,
    pub waiting: usize,
}

/// Builds the pool lazily: no connection is opened until the first query,
/// so a worker starts (not ready) while Postgres is down. Must run inside
/// the worker's runtime.
pub fn pool(cfg: &Config) -> anyhow::Result<DbPool> {
    let mut opts = PgConnectOptions::from_str(cfg.database_url.expose_secret())
        .map_err(|e| anyhow::anyhow!("DATABASE_URL: {e}"))?
        .application_name("quizbench")
        .log_statements(tracing::log::LevelFilter::Trace);
    let timeout = cfg.db_statement_timeout_ms;
    let mut session_setup = None;
    match cfg.db_pooler {
        _ if timeout == 0 => {}
        DbPooler::None => opts = opts.options([("statement_timeout", timeout.to_string())]),
        // PgBouncer refuses the `options` startup parameter; in session
        // pooling a session-level SET lasts as long as the client connection
        // (PgBouncer resets the server connection when it is released).
        DbPooler::PgBouncer => session_setup = Some(format!("set statement_timeout = {timeout}")),
    }
    DbPool::new(
        Connect {
            opts,
            session_setup,
        },
        PoolSettings {
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
