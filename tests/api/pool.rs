//! The PostgreSQL pool (`db::pool`): connections go back without sqlx's
//! per-release ping, so the cases that ping covered are checked here.

use std::time::Duration;

use quizbench::db::pool::{DbPool, PoolSettings};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::common::TestDb;

fn pool(url: &str, max: usize) -> DbPool {
    let opts: PgConnectOptions = url.parse().unwrap();
    DbPool::new(
        opts,
        PoolSettings {
            max,
            min: 0,
            acquire_timeout: Duration::from_secs(5),
            max_lifetime: None,
            idle_timeout: None,
        },
    )
    .unwrap()
}

/// A transaction dropped without commit (a request cut off mid-way) must not
/// keep its row locks while its connection sits idle in the pool.
#[tokio::test]
async fn an_abandoned_transaction_releases_its_locks_without_the_connection_being_reused() {
    let db = TestDb::new().await;
    let pool = pool(&db.url, 1);
    {
        let mut conn = pool.acquire().await.unwrap();
        let mut tx = conn.begin().await.unwrap();
        sqlx::query("select id from users where id = 1 for update")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        // Dropped here: no commit, no rollback awaited.
    }
    let mut other = PgConnection::connect(&db.url).await.unwrap();
    other.execute("set lock_timeout = '3s'").await.unwrap();
    // Blocks (then fails) while the abandoned transaction holds the lock.
    sqlx::query("select id from users where id = 1 for update")
        .fetch_one(&mut other)
        .await
        .expect("the lock was released");
    // And the pooled connection is usable, outside any transaction.
    let mut conn = pool.acquire().await.unwrap();
    let depth: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks where pid = pg_backend_pid() and locktype = 'transactionid'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        depth, 0,
        "no transaction left open on the pooled connection"
    );
}

/// A connection the server closed (terminated backend) fails once and is
/// replaced; the next statement on the pool succeeds.
#[tokio::test]
async fn a_connection_killed_by_the_server_is_discarded() {
    let db = TestDb::new().await;
    let pool = pool(&db.url, 1);
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("select pg_terminate_backend($1)")
        .bind(pid)
        .execute(&mut admin)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let failed = sqlx::query_scalar::<_, i32>("select 1")
        .fetch_one(&pool)
        .await;
    assert!(failed.is_err(), "the dead connection's statement fails");
    let new_pid: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&pool)
        .await
        .expect("a new connection replaces the dead one");
    assert_ne!(new_pid, pid);
    assert_eq!(pool.gauges().size, 1);
}
