//! A Redis connection pool (deadpool) that costs no round trip per checkout.
//!
//! deadpool-redis checks every connection on checkout with `UNWATCH` +
//! `PING`, doubling the round trips of a session lookup. Here a connection
//! is recycled as long as no command on it failed with an I/O, timeout or
//! dropped-connection error; a broken one is discarded and replaced. Pool
//! size, wait/create/recycle timeouts and `status()` are deadpool's.
//!
//! With the `deadpool-redis` feature, deadpool-redis's pool is built in its
//! place, for the side-by-side measurement in docs/exceptions.md.

#[cfg(feature = "deadpool-redis")]
pub use crate_pool::{pool, PooledRedis, RedisPool, RedisPoolError};
#[cfg(not(feature = "deadpool-redis"))]
pub use own::{pool, PooledRedis, RedisPool, RedisPoolError};

#[cfg(feature = "deadpool-redis")]
mod crate_pool {
    use std::time::Duration;

    pub type RedisPool = deadpool_redis::Pool;
    pub type RedisPoolError = deadpool_redis::PoolError;
    pub type PooledRedis = deadpool_redis::Connection;

    /// deadpool-redis with the same size and timeouts as ours.
    pub fn pool(url: &str, max_size: usize, timeout: Duration) -> anyhow::Result<RedisPool> {
        let mut cfg = deadpool_redis::Config::from_url(url);
        let mut pool = deadpool_redis::PoolConfig::new(max_size);
        pool.timeouts = deadpool_redis::Timeouts {
            wait: Some(timeout),
            create: Some(timeout),
            recycle: Some(timeout),
        };
        cfg.pool = Some(pool);
        cfg.create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| anyhow::anyhow!("redis pool: {e}"))
    }
}

#[cfg(not(feature = "deadpool-redis"))]
mod own {
    use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
    use redis::aio::{ConnectionLike, MultiplexedConnection};
    use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, Value};
    use std::time::Duration;

    pub type RedisPool = managed::Pool<RedisManager>;
    pub type RedisPoolError = managed::PoolError<RedisError>;
    /// A checked-out connection.
    pub type PooledRedis = managed::Object<RedisManager>;

    pub struct RedisManager {
        client: redis::Client,
        config: AsyncConnectionConfig,
    }

    /// A pooled connection that remembers whether it failed.
    pub struct RedisConn {
        inner: MultiplexedConnection,
        broken: bool,
    }

    impl RedisConn {
        fn note(&mut self, e: &RedisError) {
            if e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
            {
                self.broken = true;
            }
        }
    }

    impl managed::Manager for RedisManager {
        type Type = RedisConn;
        type Error = RedisError;

        async fn create(&self) -> Result<RedisConn, RedisError> {
            let inner = self
                .client
                .get_multiplexed_async_connection_with_config(&self.config)
                .await?;
            Ok(RedisConn {
                inner,
                broken: false,
            })
        }

        async fn recycle(&self, conn: &mut RedisConn, _: &Metrics) -> RecycleResult<RedisError> {
            if conn.broken {
                return Err(RecycleError::message("a command on this connection failed"));
            }
            Ok(())
        }
    }

    impl ConnectionLike for RedisConn {
        fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
            Box::pin(async move {
                let result = self.inner.send_packed_command(cmd).await;
                if let Err(e) = &result {
                    self.note(e);
                }
                result
            })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            cmd: &'a Pipeline,
            offset: usize,
            count: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            Box::pin(async move {
                let result = self.inner.send_packed_commands(cmd, offset, count).await;
                if let Err(e) = &result {
                    self.note(e);
                }
                result
            })
        }

        fn get_db(&self) -> i64 {
            self.inner.get_db()
        }
    }

    /// Builds a pool of at most `max_size` connections; `timeout` bounds the
    /// wait for a connection, connecting, and each command's response.
    pub fn pool(url: &str, max_size: usize, timeout: Duration) -> anyhow::Result<RedisPool> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        managed::Pool::builder(RedisManager { client, config })
            .max_size(max_size)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| anyhow::anyhow!("redis pool: {e}"))
    }
}
