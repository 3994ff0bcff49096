//! What a replica does when it starts beside others or behind PgBouncer:
//! a second `seed --if-empty` waits for the first and keeps what was
//! written since; the statement timeout holds through PgBouncer and does
//! not outlive the session; the strict budget counts PgBouncer's pool; an
//! exposed server warns while the seeded accounts exist.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use quizbench::config::Config;
use quizbench::seed::{self, SEED_LOCK_KEY};
use sqlx::{Connection as _, PgConnection};

use crate::common::{redis_url, serve_command, server_env, spawn_logged, TestDb};
use crate::tools::{quizbench, seed_args, Bouncer, Proc, RedisKeys, TempDir};

/// A server's (or command's) variables: this test's database, Redis keys
/// and files directory.
fn env_for(
    url: &str,
    keys: &RedisKeys,
    files: &TempDir,
    vars: &[(&str, &str)],
) -> HashMap<String, String> {
    server_env(url, &redis_url(), &keys.0, &files.0, &[], vars)
}

/// The first seeder holds the seed lock while it loads; a second one
/// started meanwhile waits, finds users, and truncates nothing, so rows
/// written after the first seed (by replicas already serving) stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_seeder_waits_for_the_first_and_keeps_what_was_written_since() {
    let db = TestDb::empty().await;
    seed::migrate(&db.url).await.unwrap();
    let mut first = PgConnection::connect(&db.url).await.unwrap();
    let mut tx = first.begin().await.unwrap();
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(SEED_LOCK_KEY)
        .execute(&mut *tx)
        .await
        .unwrap();

    let (keys, files) = (RedisKeys::new(), TempDir::new("scale-seed"));
    let env = env_for(&db.url, &keys, &files, &[]);
    let second = std::thread::spawn(move || {
        let mut args = vec!["seed".to_string(), "--if-empty".to_string()];
        args.extend(seed_args());
        quizbench(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env)
    });
    // It checked (no users yet), hashed, and now waits for the lock.
    let mut watcher = PgConnection::connect(&db.url).await.unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted
                and database = (select oid from pg_database where datname = current_database())",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        // (Without the lock it would not wait: it would seed at once.)
        if waiting == 1 || second.is_finished() {
            break;
        }
        assert!(
            Instant::now() < until,
            "the second seeder neither waited nor finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The first seeder's load, and a row a serving replica wrote after it.
    sqlx::query(
        "insert into users (username, password_hash, display_name) values ('early', 'x', 'Early')",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let out = second.join().unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("seed skipped"), "{text}");
    let users: Vec<String> = sqlx::query_scalar("select username from users")
        .fetch_all(&mut watcher)
        .await
        .unwrap();
    assert_eq!(users, ["early"], "the second seeder truncated");
}

/// DB_POOLER=pgbouncer: the statement timeout is a session SET (PgBouncer
/// refuses the startup option), and session pooling's reset keeps it, and
/// sqlx's named statements, from leaking to the next client of the same
/// server connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_timeout_holds_through_pgbouncer_and_ends_with_the_session() {
    // One server connection: every client below gets the same one.
    let Some(bouncer) = Bouncer::start(1) else {
        return;
    };
    let db = TestDb::empty().await;
    let pooled = bouncer.url(&db.name);
    let config = |pooler: &str| {
        let vars: HashMap<&str, &str> = [
            ("DATABASE_URL", pooled.as_str()),
            ("DB_POOLER", pooler),
            ("DB_STATEMENT_TIMEOUT_MS", "200"),
            ("DB_ACQUIRE_TIMEOUT_MS", "5000"),
        ]
        .into();
        Config::from_lookup(None, |k| vars.get(k).copied()).unwrap()
    };
    let pool = quizbench::db::pool(&config("pgbouncer")).unwrap();
    let started = Instant::now();
    let err = sqlx::query("select pg_sleep(3)")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, sqlx::Error::Database(e) if e.code().as_deref() == Some("57014")),
        "expected a statement timeout: {err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let n: i32 = sqlx::query_scalar("select $1::int")
        .bind(7)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 7);
    pool.close().await;
    drop(pool);

    // The next client of that server connection: no timeout, no statements.
    let mut next = PgConnection::connect(&pooled).await.unwrap();
    let timeout: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&mut next)
        .await
        .unwrap();
    assert_eq!(timeout, "0", "the session SET leaked to another client");
    let n: i32 = sqlx::query_scalar("select $1::int")
        .bind(8)
        .fetch_one(&mut next)
        .await
        .unwrap();
    assert_eq!(n, 8);
    let _ = next.close().await;

    // Without the knob, PgBouncer refuses the connection outright.
    let plain = quizbench::db::pool(&config("none")).unwrap();
    let err = sqlx::query("select 1").execute(&plain).await.unwrap_err();
    assert!(
        err.to_string().contains("unsupported startup parameter"),
        "{err}\n{}",
        bouncer.log()
    );
}

/// With PgBouncer in front, CONNECTION_BUDGET=strict counts its pool, not
/// PostgreSQL's max_connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_budget_refuses_pools_beyond_pgbouncers() {
    let Some(bouncer) = Bouncer::start(2) else {
        return;
    };
    let db = TestDb::new().await;
    let (keys, files) = (RedisKeys::new(), TempDir::new("scale-strict"));
    let mut env = env_for(
        &bouncer.url(&db.name),
        &keys,
        &files,
        &[
            ("DB_POOLER", "pgbouncer"),
            ("DB_POOL_MAX", "3"),
            ("CONNECTION_BUDGET", "strict"),
        ],
    );
    env.insert("BIND".into(), "127.0.0.1:0".into());
    let mut server = Proc::spawn(&mut serve_command(crate::common::BIN.as_ref(), &env));
    let status = server.wait_exit(Duration::from_secs(15));
    let log = server.log.dump();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("refusing to serve") && log.contains("PgBouncer pool 2"),
        "{log}"
    );
}

/// PUBLISH_IP says where the deployment publishes the port: not loopback
/// while the seeded accounts exist gives a warning, loopback none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_server_warns_while_the_seeded_accounts_exist() {
    let db = TestDb::new().await;
    let (keys, files) = (RedisKeys::new(), TempDir::new("scale-exposed"));
    let start = |publish: &str| {
        let mut env = env_for(&db.url, &keys, &files, &[]);
        env.insert("PUBLISH_IP".into(), publish.into());
        let (child, log) = spawn_logged(
            &mut serve_command(crate::common::BIN.as_ref(), &env),
            10_000,
        );
        Proc { child, log }
    };
    let exposed = start("0.0.0.0");
    let warning = &exposed
        .log
        .wait_for("seeded accounts", 1, Duration::from_secs(15))[0];
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["published"], "0.0.0.0");
    assert!(warning["accounts"].as_i64().unwrap() > 20, "{warning}");

    let private = start("127.0.0.1");
    private
        .log
        .wait_for("connection budget", 1, Duration::from_secs(15));
    // The exposure check would follow the budget's line at once.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        private.log.count("seeded accounts"),
        0,
        "{}",
        private.log.dump()
    );
}
