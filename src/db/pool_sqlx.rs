//! sqlx's own pool behind [`DbPool`]'s interface: built only with the
//! `sqlx-pool` feature, to measure it against ours side by side
//! (docs/exceptions.md). sqlx pings every connection when it is released;
//! `test_before_acquire` is off, so that is the only extra round trip.

use std::ops::{Deref, DerefMut};

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{
    PgConnectOptions, PgPool, PgPoolOptions, PgQueryResult, PgRow, PgStatement, PgTypeInfo,
};
use sqlx::{Connection as _, Describe, Either, Execute, Executor, PgConnection, Postgres};

pub use super::{PoolGauges, PoolSettings};

/// A worker's PostgreSQL pool (cheap to clone).
#[derive(Clone, Debug)]
pub struct DbPool(PgPool);

impl DbPool {
    /// A lazy pool, as ours: no connection is opened here.
    pub fn new(opts: PgConnectOptions, settings: PoolSettings) -> anyhow::Result<DbPool> {
        Ok(DbPool(
            PgPoolOptions::new()
                .max_connections(settings.max as u32)
                .min_connections(settings.min as u32)
                .acquire_timeout(settings.acquire_timeout)
                .max_lifetime(settings.max_lifetime)
                .idle_timeout(settings.idle_timeout)
                .test_before_acquire(false)
                .connect_lazy_with(opts),
        ))
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

/// Delegates every method of `Executor` to `$inner`.
macro_rules! delegate_executor {
    ($lt:lifetime, $self_ty:ty, |$s:ident| $inner:expr) => {
        impl<$lt> Executor<$lt> for $self_ty {
            type Database = Postgres;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
            where
                $lt: 'e,
                E: 'q + Execute<'q, Postgres>,
            {
                let $s = self;
                $inner.fetch_many(query)
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
            where
                $lt: 'e,
                E: 'q + Execute<'q, Postgres>,
            {
                let $s = self;
                $inner.fetch_optional(query)
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [PgTypeInfo],
            ) -> BoxFuture<'e, Result<PgStatement<'q>, sqlx::Error>>
            where
                $lt: 'e,
            {
                let $s = self;
                $inner.prepare_with(sql, parameters)
            }

            fn describe<'e, 'q: 'e>(
                self,
                sql: &'q str,
            ) -> BoxFuture<'e, Result<Describe<Postgres>, sqlx::Error>>
            where
                $lt: 'e,
            {
                let $s = self;
                $inner.describe(sql)
            }
        }
    };
}

delegate_executor!('c, &'c mut DbConn, |s| &mut *s.0);
delegate_executor!('p, &'p DbPool, |s| &s.0);
