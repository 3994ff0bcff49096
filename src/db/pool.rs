//! The PostgreSQL connection pool: deadpool over sqlx connections.
//!
//! sqlx 0.8's own pool tests every connection when it is released: a Sync
//! round trip to Postgres per query, in a spawned task ("a band-aid", in
//! its own comment, for connections left mid-statement). That doubles the
//! round trips, wake-ups and backend work of every query. Here a connection
//! goes back to the pool as it is; the cases the ping was for are handled
//! without it:
//! - a statement interrupted by a dropped future (request timeout): sqlx
//!   drains its pending replies before the connection's next statement;
//! - a transaction dropped without commit: sqlx queues its ROLLBACK in the
//!   write buffer, and [`DbConn`]'s drop flushes it in the background before
//!   the connection can be reused, so no lock outlives the request;
//! - a broken connection (I/O error, server shutdown): every statement run
//!   through [`DbConn`] or [`DbPool`] is watched, and a connection that failed
//!   that way is discarded when it comes back.
//!
//! `&DbPool` and `&mut DbConn` are sqlx executors, so the `db::*` functions
//! run on either. docs/exceptions.md measures this pool against sqlx's
//! (`--features sqlx-pool`, `scripts/measure-exceptions.sh db`).

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

pub use super::{Connect, PoolGauges, PoolSettings};
use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt as _, TryStreamExt as _};
use sqlx::postgres::{PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{
    ConnectOptions as _, Connection as _, Describe, Either, Execute, Executor, PgConnection,
    Postgres,
};

pub struct PgManager {
    /// The session setup runs with the simple protocol.
    connect: Connect,
    max_lifetime: Option<Duration>,
}

/// A pooled connection and whether it failed in a way that leaves it unusable.
pub struct PooledPg {
    conn: PgConnection,
    broken: bool,
}

impl managed::Manager for PgManager {
    type Type = PooledPg;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<PooledPg, sqlx::Error> {
        let mut conn = self.connect.opts.connect().await?;
        if let Some(sql) = &self.connect.session_setup {
            conn.execute(sql.as_str()).await?;
        }
        Ok(PooledPg {
            conn,
            broken: false,
        })
    }

    async fn recycle(&self, c: &mut PooledPg, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if c.broken {
            return Err(RecycleError::message(
                "a statement on this connection failed",
            ));
        }
        if self.max_lifetime.is_some_and(|max| metrics.age() > max) {
            return Err(RecycleError::message("past DB_MAX_LIFETIME_SECS"));
        }
        // Normally flushed by DbConn's drop; covers a runtime that shut
        // down before that task ran.
        if c.conn.should_flush() {
            c.conn.ping().await?;
        }
        Ok(())
    }
}

/// A worker's PostgreSQL pool (cheap to clone).
#[derive(Clone)]
pub struct DbPool {
    inner: managed::Pool<PgManager>,
    settings: Arc<PoolSettings>,
}

impl fmt::Debug for DbPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbPool")
            .field("status", &self.inner.status())
            .finish()
    }
}

impl DbPool {
    /// A lazy pool: no connection is opened here, so a worker starts (not
    /// ready) while Postgres is down. With `min` or `idle_timeout` set it
    /// spawns its upkeep task, so it must be built inside a runtime. The
    /// session setup runs within the acquire timeout.
    pub fn new(connect: impl Into<Connect>, settings: PoolSettings) -> anyhow::Result<DbPool> {
        let t = Some(settings.acquire_timeout);
        let inner = managed::Pool::builder(PgManager {
            connect: connect.into(),
            max_lifetime: settings.max_lifetime,
        })
        .max_size(settings.max)
        .wait_timeout(t)
        .create_timeout(t)
        .recycle_timeout(t)
        // The most recently used connection first: hot connections stay
        // hot, the rest go idle and are closed by the idle timeout.
        .queue_mode(deadpool::managed::QueueMode::Lifo)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| anyhow::anyhow!("database pool: {e}"))?;
        let pool = DbPool {
            inner,
            settings: Arc::new(settings),
        };
        if pool.settings.min > 0 || pool.settings.idle_timeout.is_some() {
            tokio::spawn(upkeep(pool.inner.weak(), pool.settings.clone()));
        }
        Ok(pool)
    }

    /// A connection, waiting at most the acquire timeout.
    pub async fn acquire(&self) -> Result<DbConn, sqlx::Error> {
        match self.inner.get().await {
            Ok(obj) => Ok(DbConn(Some(obj))),
            Err(PoolError::Backend(e)) => Err(e),
            Err(PoolError::Closed) => Err(sqlx::Error::PoolClosed),
            Err(PoolError::Timeout(_)) => Err(sqlx::Error::PoolTimedOut),
            Err(e) => Err(sqlx::Error::Protocol(e.to_string())),
        }
    }

    pub fn gauges(&self) -> PoolGauges {
        let s = self.inner.status();
        PoolGauges {
            size: s.size,
            idle: s.available,
            waiting: s.waiting,
        }
    }

    /// Closes the pool: waiters fail at once, idle connections are dropped.
    pub async fn close(&self) {
        self.inner.close();
    }
}

/// Keeps `min` connections open and closes those idle past the timeout.
async fn upkeep(pool: managed::WeakPool<PgManager>, settings: Arc<PoolSettings>) {
    let period = settings.idle_timeout.map_or(Duration::from_secs(30), |t| {
        (t / 2).clamp(Duration::from_millis(100), Duration::from_secs(30))
    });
    loop {
        let Some(pool) = pool.upgrade() else { return };
        if pool.is_closed() {
            return;
        }
        if let Some(idle) = settings.idle_timeout {
            let status = pool.status();
            let busy = status.size - status.available;
            let mut kept = 0;
            pool.retain(|_, m| {
                let keep = m.last_used() < idle || busy + kept < settings.min;
                kept += usize::from(keep);
                keep
            });
        }
        // Top up to `min`: check out that many at once, then return them.
        let missing = settings.min.saturating_sub(pool.status().size);
        if missing > 0 {
            let held: Vec<_> =
                futures_util::future::join_all((0..missing).map(|_| pool.get())).await;
            drop(held);
        }
        drop(pool);
        tokio::time::sleep(period).await;
    }
}

/// A checked-out connection. Derefs to the sqlx connection (for `begin`);
/// statements run through `&mut DbConn` mark it broken when they fail in a
/// way that leaves it unusable.
pub struct DbConn(Option<Object<PgManager>>);

impl DbConn {
    fn parts(&mut self) -> (&mut PgConnection, &mut bool) {
        let pooled = &mut **self.0.as_mut().expect("present until drop");
        (&mut pooled.conn, &mut pooled.broken)
    }

    /// Runs `body` in a transaction on this connection: committed when it
    /// returns `Ok`, rolled back when it fails. Statements inside run on the
    /// bare connection, so a failure that leaves the connection unusable is
    /// recorded here (the pool then discards it).
    pub async fn transaction<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error>,
    ) -> Result<T, sqlx::Error> {
        let (conn, broken) = self.parts();
        let outcome = async {
            let mut tx = conn.begin().await?;
            let value = body(&mut tx).await?;
            tx.commit().await?;
            Ok(value)
        }
        .await;
        noted(broken, outcome)
    }
}

impl Deref for DbConn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.0.as_ref().expect("present until drop").conn
    }
}

impl DerefMut for DbConn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.parts().0
    }
}

impl fmt::Debug for DbConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DbConn")
    }
}

impl Drop for DbConn {
    /// A connection with unsent bytes (a dropped transaction's ROLLBACK, a
    /// statement cut off mid-write) is flushed before it is returned, so an
    /// abandoned transaction does not keep its locks while the connection
    /// sits idle.
    fn drop(&mut self) {
        let Some(mut obj) = self.0.take() else { return };
        if !obj.conn.should_flush() {
            return; // back to the pool as it is
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if obj.conn.ping().await.is_err() {
                        obj.broken = true;
                    }
                });
            }
            Err(_) => obj.broken = true,
        }
    }
}

/// Marks the connection broken when `res` failed in a way that leaves it
/// unusable; passes `res` on.
fn noted<T>(broken: &mut bool, res: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
    if let Err(e) = &res {
        *broken |= leaves_connection_unusable(e);
    }
    res
}

/// Errors after which a connection must not be reused.
fn leaves_connection_unusable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::WorkerCrashed => true,
        // Connection exceptions (08xxx), admin/crash shutdown, cannot connect now.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// A statement on `&mut DbConn` runs on its connection and marks the
/// connection broken when it fails in a way that leaves it unusable.
macro_rules! conn_stream {
    ($s:ident, $m:ident($($a:expr),*)) => {{
        let (conn, broken) = $s.parts();
        Box::pin(conn.$m($($a),*).inspect_err(move |e| {
            if leaves_connection_unusable(e) {
                *broken = true;
            }
        }))
    }};
}
macro_rules! conn_run {
    ($s:ident, $m:ident($($a:expr),*)) => {
        Box::pin(async move {
            let (conn, broken) = $s.parts();
            let res = conn.$m($($a),*).await;
            noted(broken, res)
        })
    };
}
macro_rules! conn_prepare {
    ($s:ident, $m:ident($($a:expr),*)) => {
        $s.parts().0.$m($($a),*)
    };
}
// `fetch_all` and `execute` are overridden (the defaults go through
// `fetch_many`) to keep the per-row path as short as sqlx's own.
executor_via!('c, &'c mut DbConn, conn_stream, conn_run, conn_prepare);

/// Each statement on `&DbPool` checks a connection out and returns it.
/// `fetch_many` buffers the results (the connection cannot outlive this
/// call otherwise); the code base streams no query on the pool.
macro_rules! pool_stream {
    ($s:ident, $m:ident($($a:expr),*)) => {{
        let all = async move {
            let mut conn = $s.acquire().await?;
            (&mut conn).$m($($a),*).try_collect::<Vec<_>>().await
        };
        Box::pin(
            futures_util::stream::once(all)
                .map(|res| match res {
                    Ok(items) => {
                        futures_util::stream::iter(items.into_iter().map(Ok)).left_stream()
                    }
                    Err(e) => futures_util::stream::once(async move { Err(e) }).right_stream(),
                })
                .flatten(),
        )
    }};
}
macro_rules! pool_run {
    ($s:ident, $m:ident($($a:expr),*)) => {
        Box::pin(async move { (&mut $s.acquire().await?).$m($($a),*).await })
    };
}
executor_via!('p, &'p DbPool, pool_stream, pool_run, pool_run);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_and_shutdown_errors_break_a_connection_others_do_not() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(leaves_connection_unusable(&io));
        assert!(leaves_connection_unusable(&sqlx::Error::Protocol(
            "x".into()
        )));
        assert!(!leaves_connection_unusable(&sqlx::Error::RowNotFound));
        assert!(!leaves_connection_unusable(&sqlx::Error::PoolTimedOut));
    }
}
