//! `migrate` and `seed`: the schema, and SPEC's reference data set loaded
//! with COPY in one transaction.
//!
//! The rows come from [`data`] (deterministic, so seeding twice gives the
//! same rows); this module loads them: `seed` resets the tables to the
//! reference set, `seed --if-empty` loads it only into an empty database
//! (several replicas may run it at once: one loads, the others find users
//! and skip), in one transaction either way. Every user shares
//! one password hash (`quizbench`), made once with the configured argon2
//! parameters.

mod data;

use std::time::Instant;

use sqlx::migrate::MigrateDatabase as _;
use sqlx::{Connection as _, PgConnection, Postgres};

use secrecy::ExposeSecret as _;

use crate::db::{self, bulk};
use crate::password::Passwords;
pub use data::student_home;
use data::{attempts, cohorts, fortunes, organizations, questions, quizzes, users, world};

/// The shared password of every seeded account.
pub const SEED_PASSWORD: &str = "quizbench";

/// The transaction-level advisory lock every seeder of a database holds
/// while it checks and loads ("qbseed").
pub const SEED_LOCK_KEY: i64 = 0x7162_7365_6564;

/// Sizes of the generated data set.
#[derive(Debug, Clone, Copy)]
pub struct SeedSize {
    pub organizations: u32,
    pub cohorts_per_org: u32,
    pub students_per_cohort: u32,
    pub quizzes: u32,
    pub questions_per_quiz: u32,
    pub attempts: u32,
}

impl SeedSize {
    /// SPEC's reference set: 10,000 students in 10 x 10 cohorts, 50 quizzes
    /// of 10 questions, 100,000 attempts.
    pub const REFERENCE: SeedSize = SeedSize {
        organizations: 10,
        cohorts_per_org: 10,
        students_per_cohort: 100,
        quizzes: 50,
        questions_per_quiz: 10,
        attempts: 100_000,
    };

    pub fn students(&self) -> u32 {
        self.organizations * self.cohorts_per_org * self.students_per_cohort
    }

    pub fn cohorts(&self) -> u32 {
        self.organizations * self.cohorts_per_org
    }
}

/// Creates the database if needed and applies the embedded migrations.
pub async fn migrate(database_url: &str) -> anyhow::Result<()> {
    if !Postgres::database_exists(database_url).await? {
        match Postgres::create_database(database_url).await {
            Ok(()) => tracing::info!("created the database"),
            // Another replica created it since the check: fine.
            Err(_) if Postgres::database_exists(database_url).await? => {}
            Err(e) => return Err(e.into()),
        }
    }
    // sqlx's migrator holds an advisory lock while it applies migrations,
    // so replicas migrating at once apply each migration once.
    let mut conn = connect(database_url).await?;
    sqlx::migrate!("./migrations").run(&mut conn).await?;
    conn.close().await?;
    Ok(())
}

/// A connection for bulk work: slow statements are expected, not logged.
async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    use sqlx::ConnectOptions as _;
    let opts: sqlx::postgres::PgConnectOptions = url.parse()?;
    Ok(opts
        .log_slow_statements(tracing::log::LevelFilter::Off, std::time::Duration::ZERO)
        .connect()
        .await?)
}

/// What `seed` did.
#[derive(Debug)]
pub struct SeedReport {
    pub skipped: bool,
    pub students: u32,
    pub attempts: u32,
    pub seconds: f64,
}

/// Loads the data set. With `if_empty`, does nothing when users exist.
pub async fn seed(
    database_url: &str,
    passwords: &Passwords,
    size: SeedSize,
    if_empty: bool,
) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let skipped = || SeedReport {
        skipped: true,
        students: 0,
        attempts: 0,
        seconds: started.elapsed().as_secs_f64(),
    };
    let mut conn = connect(database_url).await?;
    if if_empty && db::users::any(&mut conn).await? {
        return Ok(skipped());
    }
    let hash = passwords.hash(SEED_PASSWORD);
    let mut tx = conn.begin().await?;
    // One seeder at a time per database (replicas starting together): the
    // lock is held until this transaction ends, and the check is made again
    // under it, so a second `--if-empty` never truncates what the first one
    // loaded (and what replicas serving since then have written).
    bulk::advisory_xact_lock(&mut tx, SEED_LOCK_KEY).await?;
    if if_empty && db::users::any(&mut *tx).await? {
        return Ok(skipped());
    }
    bulk::truncate_all(&mut tx).await?;
    bulk::copy_in(&mut tx, "organizations (id, name)", &organizations(size)).await?;
    bulk::copy_in(
        &mut tx,
        "cohorts (id, organization_id, name)",
        &cohorts(size),
    )
    .await?;
    bulk::copy_in(
        &mut tx,
        "users (id, username, password_hash, display_name, role, organization_id, cohort_id)",
        &users(size, &hash),
    )
    .await?;
    bulk::copy_in(&mut tx, "quizzes (id, title, description)", &quizzes(size)).await?;
    let (questions_text, keys) = questions(size);
    bulk::copy_in(
        &mut tx,
        "questions (id, quiz_id, position, kind, prompt, choices, answer_key, points)",
        &questions_text,
    )
    .await?;
    bulk::copy_in(&mut tx, "world (id, randomnumber)", &world()).await?;
    bulk::copy_in(&mut tx, "fortune (id, message)", &fortunes()).await?;
    // Bulk-load the big tables without their foreign keys and secondary
    // indexes, then rebuild them in one pass each (PostgreSQL's "populating
    // a database" advice); all inside this transaction, so it is atomic.
    let deferred = defer_constraints(&mut tx, &["attempts", "progress"]).await?;
    let (attempts_text, progress_text) = attempts(size, &keys);
    bulk::copy_in(
        &mut tx,
        "attempts (id, user_id, quiz_id, answers, score, max_score, submitted_at)",
        &attempts_text,
    )
    .await?;
    bulk::copy_in(
        &mut tx,
        "progress (user_id, quiz_id, best_score, max_score, attempt_count, last_attempt_at)",
        &progress_text,
    )
    .await?;
    for item in deferred {
        bulk::run_catalog_ddl(&mut tx, &item.create).await?;
    }
    bulk::reset_sequences(&mut tx).await?;
    tx.commit().await?;
    bulk::analyze(&mut conn).await?;
    conn.close().await?;
    Ok(SeedReport {
        skipped: false,
        students: size.students(),
        attempts: size.attempts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Drops the foreign keys and non-primary indexes of `tables` and returns
/// them, with the statements that re-create them read from the catalog (so
/// they stay exactly what the migrations made).
async fn defer_constraints(
    conn: &mut PgConnection,
    tables: &[&str],
) -> anyhow::Result<Vec<bulk::Deferrable>> {
    let mut deferred = Vec::new();
    for table in tables {
        for item in bulk::deferrable(conn, table).await? {
            bulk::run_catalog_ddl(conn, &item.drop).await?;
            deferred.push(item);
        }
    }
    Ok(deferred)
}

/// After a re-seed: bump the content version (every worker drops its cached
/// quiz content) and end the sessions of our key prefix, whose user ids
/// may no longer exist. A Redis that is down only earns a warning.
pub async fn invalidate_caches(cfg: &crate::config::Config) {
    let result: anyhow::Result<()> = async {
        let client = redis::Client::open(cfg.redis_url.expose_secret())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let prefix = &cfg.redis_prefix;
        redis::cmd("INCR")
            .arg(format!("{prefix}content:version"))
            .query_async::<()>(&mut conn)
            .await?;
        for pattern in ["sess:*", "user-sessions:*", "login-fail:*"] {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}{pattern}"))
                .query_async(&mut conn)
                .await?;
            for chunk in keys.chunks(1000) {
                redis::cmd("DEL")
                    .arg(chunk)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not reset Redis state after seeding");
    }
}
