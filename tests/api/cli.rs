use sqlx::{Connection, PgConnection};

use crate::common::{cleanup_redis, redis_prefix, redis_url, TestDb, BIN};

/// `quizbench seed` on an empty database applies the migrations itself
/// (the experiment runner seeds without migrating first).
#[tokio::test]
async fn seed_migrates_an_empty_database_first() {
    let db = TestDb::empty().await;
    let prefix = redis_prefix();
    let status = std::process::Command::new(BIN)
        .args([
            "seed",
            "--organizations",
            "1",
            "--cohorts-per-org",
            "1",
            "--students-per-cohort",
            "3",
        ])
        .args(["--quizzes", "2", "--attempts", "5"])
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis_url())
        .env("REDIS_PREFIX", &prefix)
        .env("ARGON2_MEMORY_KIB", "64")
        .env("ARGON2_ITERATIONS", "1")
        .env("LOG_LEVEL", "warn")
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
