//! sqlx's own pool behind [`DbPool`]'s interface: built only with the
//! `sqlx-pool` feature, to measure it against ours side by side
//! (docs/exceptions.md). sqlx pings every connection when it is released;
//! `test_before_acquire` is off, so that is the only extra round trip.

use std::ops::{Deref, DerefMut};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, PgPoolOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Connection as _, Describe, Either, Execute, Executor, PgConnection, Postgres};

pub use super::{Connect, PoolGauges, PoolSettings};

/// A worker's PostgreSQL pool (cheap to clone).
#[derive(Clone, Debug)]
pub struct DbPool(PgPool);

impl DbPool {
    /// A lazy pool, as ours: no connection is opened here. The session
    /// setup runs as sqlx's `after_connect`.
    pub fn new(connect: impl Into<Connect>, settings: PoolSettings) -> anyhow::Result<DbPool> {
        let Connect {
            opts,
            session_setup,
        } = connect.into();
        let mut options = PgPoolOptions::new()
            .max_connections(settings.max as u32)
            .min_connections(settings.min as u32)
            .acquire_timeout(settings.acquire_timeout)
            .max_lifetime(settings.max_lifetime)
            .idle_timeout(settings.idle_timeout)
            .test_before_acquire(false);
        if let Some(sql) = session_setup {
            let sql: std::sync::Arc<str> = sql.into();
            options = options.after_connect(move |conn, _| {
                let sql = sql.clone();
                Box::pin(async move { conn.execute(&*sql).await.map(|_| ()) })
            });
        }
        Ok(DbPool(options.connect_lazy_with(opts)))
    }

    pub async fn acquire(&self) -> Result<DbConn, sqlx::Error> {
        Ok(DbConn(self.0.acquire().await?))
    }

    /// sqlx does not count waiters.
    pub fn gauges(&self) -> PoolGauges {
        PoolGauges {
            size: self.0.size() as usize,
            idle: self.0.num_idle(),
            waiting: 0,
        }
    }

    pub async fn close(&self) {
        self.0.close().await;
    }
}

/// A checked-out connection.
#[derive(Debug)]
pub struct DbConn(PoolConnection<Postgres>);

impl DbConn {
    /// Runs `body` in a transaction: committed when it returns `Ok`.
    pub async fn transaction<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let mut tx = self.0.begin().await?;
        let value = body(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

impl Deref for DbConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.0
    }
}

impl DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.0
    }
}

/// Every statement on `&mut DbConn` runs on its pooled connection, and
/// on `&DbPool` on sqlx's pool.
macro_rules! on_conn {
    ($s:ident, $m:ident($($a:expr),*)) => {
        (&mut *$s.0).$m($($a),*)
    };
}
macro_rules! on_pool {
    ($s:ident, $m:ident($($a:expr),*)) => {
        (&$s.0).$m($($a),*)
    };
}
executor_via!('c, &'c mut DbConn, on_conn, on_conn, on_conn);
executor_via!('p, &'p DbPool, on_pool, on_pool, on_pool);
