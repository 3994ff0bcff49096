use sqlx::{Connection, PgConnection};

use crate::helpers::{admin_url, cleanup_redis, db_url, redis_url};

/// `quizbench seed` on an empty database applies the migrations itself
/// (the experiment runner seeds without migrating first).
#[tokio::test]
async fn seed_migrates_an_empty_database_first() {
    let name = format!("qb_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
    sqlx::query(&format!("create database {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let prefix = format!("qbtest:{}:", uuid::Uuid::new_v4().simple());
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_quizbench"))
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
        .env("DATABASE_URL", db_url(&name))
        .env("REDIS_URL", redis_url())
        .env("REDIS_PREFIX", &prefix)
        .env("ARGON2_MEMORY_KIB", "64")
        .env("ARGON2_ITERATIONS", "1")
        .env("LOG_LEVEL", "warn")
        .status()
        .unwrap();
    let mut db = PgConnection::connect(&db_url(&name)).await.unwrap();
    let students: i64 = sqlx::query_scalar("select count(*) from users where role = 'student'")
        .fetch_one(&mut db)
        .await
        .unwrap_or(-1);
    let _ = db.close().await;
    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&mut admin)
        .await;
    cleanup_redis(&prefix);
    assert!(status.success(), "seed failed on an empty database");
    assert_eq!(students, 3);
}
