use sqlx::{Connection, PgConnection};

use crate::common::{cleanup_redis, redis_prefix, redis_url, TestDb, BIN};

/// `quizbench seed`'s arguments for 3 students, 2 quizzes and 5 attempts.
fn small_seed() -> Vec<&'static str> {
    "seed --organizations 1 --cohorts-per-org 1 --students-per-cohort 3 --quizzes 2 --attempts 5"
        .split(' ')
        .collect()
}

/// `quizbench ARGS` on `database` and `redis` (keys under `prefix`), with
/// cheap argon2 and this log level.
fn quizbench(
    args: &[&str],
    database: &str,
    redis: &str,
    prefix: &str,
    log_level: &str,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .env("DATABASE_URL", database)
        .env("REDIS_URL", redis)
        .env("REDIS_PREFIX", prefix)
        .env("ARGON2_MEMORY_KIB", "64")
        .env("ARGON2_ITERATIONS", "1")
        .env("LOG_LEVEL", log_level);
    cmd
}

/// `quizbench seed` on an empty database applies the migrations itself
/// (the experiment runner seeds without migrating first).
#[tokio::test]
async fn seed_migrates_an_empty_database_first() {
    let db = TestDb::empty().await;
    let prefix = redis_prefix();
    let status = quizbench(&small_seed(), &db.url, &redis_url(), &prefix, "warn")
        .status()
        .unwrap();
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let students: i64 = sqlx::query_scalar("select count(*) from users where role = 'student'")
        .fetch_one(&mut conn)
        .await
        .unwrap_or(-1);
    let _ = conn.close().await;
    cleanup_redis(&redis_url(), &prefix);
    assert!(status.success(), "seed failed on an empty database");
    assert_eq!(students, 3);
}

/// Text logs written to a file or a pipe carry no terminal colour codes
/// (the experiment runner keeps the server's log as a file).
#[tokio::test]
async fn a_log_that_is_not_a_terminal_has_no_colour_codes() {
    let db = TestDb::empty().await;
    let prefix = redis_prefix();
    let out = quizbench(&small_seed(), &db.url, &redis_url(), &prefix, "debug")
        .env("LOG_FORMAT", "text")
        .output()
        .unwrap();
    cleanup_redis(&redis_url(), &prefix);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "seed failed:\n{text}");
    assert!(text.contains("DEBUG"), "no debug line:\n{text}");
    assert!(
        !text.contains('\x1b'),
        "colour codes in a piped log:\n{text}"
    );
}

/// A password in `DATABASE_URL` or `REDIS_URL` reaches no log line and no
/// error message: not at trace level, not when Redis refuses it, not when
/// PostgreSQL cannot be reached.
#[tokio::test]
async fn connection_passwords_reach_no_output() {
    let db = TestDb::empty().await;
    let prefix = redis_prefix();
    // The server's own password when the test URL has one, else one that a
    // trust-auth PostgreSQL ignores (and a password-less Redis refuses).
    let mut pg = reqwest::Url::parse(&db.url).unwrap();
    if pg.password().is_none() {
        pg.set_password(Some("pg-s3cret")).unwrap();
    }
    let pg_secret = pg.password().unwrap().to_string();
    let mut redis = reqwest::Url::parse(&redis_url()).unwrap();
    if redis.password().is_none() {
        redis.set_password(Some("redis-s3cret")).unwrap();
    }
    let redis_secret = redis.password().unwrap().to_string();
    let mut unreachable = pg.clone();
    unreachable.set_port(Some(1)).unwrap();

    let run = |args: &[&str], database: &str| {
        let mut cmd = quizbench(args, database, redis.as_str(), &prefix, "trace");
        cmd.output().unwrap()
    };
    let seeded = run(&small_seed(), pg.as_str());
    let refused = run(&["migrate"], unreachable.as_str());
    cleanup_redis(&redis_url(), &prefix);
    assert!(seeded.status.success(), "seed failed");
    assert!(!refused.status.success(), "migrate reached port 1");
    for out in [&seeded, &refused] {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.is_empty());
        for secret in [&pg_secret, &redis_secret] {
            assert!(!text.contains(secret.as_str()), "{secret} printed:\n{text}");
        }
    }
}
