//! `migrate` and `seed`: the schema, and SPEC's reference data set loaded
//! with COPY in one transaction.
//!
//! The data is deterministic (a fixed-seed SplitMix64), so seeding twice
//! gives the same rows: `seed` resets the tables to the reference set,
//! `seed --if-empty` loads it only into an empty database (several replicas
//! may run it at once: one loads, the others find users and skip). Every
//! user shares one password hash (`quizbench`), made once with the
//! configured argon2 parameters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use sqlx::migrate::MigrateDatabase as _;
use sqlx::{Connection as _, PgConnection, Postgres};

use crate::domain::grading::{self, Answer, Kind, QuestionKey};
use crate::password::Passwords;

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
    if if_empty && has_users(&mut conn).await? {
        return Ok(skipped());
    }
    let hash = passwords.hash(SEED_PASSWORD);
    let mut tx = conn.begin().await?;
    // One seeder at a time per database (replicas starting together): the
    // lock is held until this transaction ends, and the check is made again
    // under it, so a second `--if-empty` never truncates what the first one
    // loaded (and what replicas serving since then have written).
    sqlx::query("select pg_advisory_xact_lock($1)")
        .bind(SEED_LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    if if_empty && has_users(&mut tx).await? {
        return Ok(skipped());
    }
    sqlx::query(
        "truncate attempts, progress, questions, quizzes, users, cohorts, organizations,
                  world, fortune
         restart identity cascade",
    )
    .execute(&mut *tx)
    .await?;
    copy(&mut tx, "organizations (id, name)", &organizations(size)).await?;
    copy(
        &mut tx,
        "cohorts (id, organization_id, name)",
        &cohorts(size),
    )
    .await?;
    copy(
        &mut tx,
        "users (id, username, password_hash, display_name, role, organization_id, cohort_id)",
        &users(size, &hash),
    )
    .await?;
    copy(&mut tx, "quizzes (id, title, description)", &quizzes(size)).await?;
    let (questions_text, keys) = questions(size);
    copy(
        &mut tx,
        "questions (id, quiz_id, position, kind, prompt, choices, answer_key, points)",
        &questions_text,
    )
    .await?;
    copy(&mut tx, "world (id, randomnumber)", &world()).await?;
    copy(&mut tx, "fortune (id, message)", &fortunes()).await?;
    // Bulk-load the big tables without their foreign keys and secondary
    // indexes, then rebuild them in one pass each (PostgreSQL's "populating
    // a database" advice); all inside this transaction, so it is atomic.
    let deferred = defer_constraints(&mut tx, &["attempts", "progress"]).await?;
    let (attempts_text, progress_text) = attempts(size, &keys);
    copy(
        &mut tx,
        "attempts (id, user_id, quiz_id, answers, score, max_score, submitted_at)",
        &attempts_text,
    )
    .await?;
    copy(
        &mut tx,
        "progress (user_id, quiz_id, best_score, max_score, attempt_count, last_attempt_at)",
        &progress_text,
    )
    .await?;
    for ddl in deferred {
        sqlx::query(&ddl).execute(&mut *tx).await?;
    }
    for table in [
        "organizations",
        "cohorts",
        "users",
        "quizzes",
        "questions",
        "attempts",
    ] {
        sqlx::query(&format!(
            "select setval(pg_get_serial_sequence('{table}', 'id'), greatest(1, (select max(id) from {table})))"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    sqlx::query("analyze users, attempts, progress, questions, quizzes")
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(SeedReport {
        skipped: false,
        students: size.students(),
        attempts: size.attempts,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn has_users(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("select exists (select 1 from users)")
        .fetch_one(conn)
        .await
}

/// Drops the foreign keys and non-primary indexes of `tables` and returns
/// the statements that re-create them, read from the catalog (so they stay
/// exactly what the migrations made).
async fn defer_constraints(
    conn: &mut PgConnection,
    tables: &[&str],
) -> anyhow::Result<Vec<String>> {
    let mut recreate = Vec::new();
    for table in tables {
        let fks: Vec<(String, String)> = sqlx::query_as(
            "select conname::text, pg_get_constraintdef(oid)
               from pg_constraint
              where conrelid = $1::regclass and contype = 'f'",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for (name, def) in fks {
            sqlx::query(&format!("alter table {table} drop constraint {name}"))
                .execute(&mut *conn)
                .await?;
            recreate.push(format!("alter table {table} add constraint {name} {def}"));
        }
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "select i.relname::text, pg_get_indexdef(x.indexrelid)
               from pg_index x join pg_class i on i.oid = x.indexrelid
              where x.indrelid = $1::regclass and not x.indisprimary",
        )
        .bind(table)
        .fetch_all(&mut *conn)
        .await?;
        for (name, def) in indexes {
            sqlx::query(&format!("drop index {name}"))
                .execute(&mut *conn)
                .await?;
            recreate.push(def);
        }
    }
    Ok(recreate)
}

async fn copy(conn: &mut PgConnection, target: &str, data: &str) -> anyhow::Result<()> {
    let mut sink = conn
        .copy_in_raw(&format!("copy {target} from stdin"))
        .await?;
    sink.send(data.as_bytes()).await?;
    sink.finish().await?;
    Ok(())
}

/// Escapes a value for COPY's text format.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn organizations(size: SeedSize) -> String {
    let mut s = String::new();
    for o in 1..=size.organizations {
        let _ = writeln!(s, "{o}\tOrganization {o}");
    }
    s
}

fn cohorts(size: SeedSize) -> String {
    let mut s = String::new();
    for o in 1..=size.organizations {
        for c in 1..=size.cohorts_per_org {
            let id = (o - 1) * size.cohorts_per_org + c;
            let _ = writeln!(s, "{id}\t{o}\tCohort {c}");
        }
    }
    s
}

/// The cohort (and its organization) of student `i` (1-based): students
/// fill cohort 1 of organization 1 first, then cohort 2, and so on.
pub fn student_home(size: SeedSize, i: u32) -> (u32, u32) {
    let cohort = (i - 1) / size.students_per_cohort + 1;
    let org = (cohort - 1) / size.cohorts_per_org + 1;
    (org, cohort)
}

fn users(size: SeedSize, hash: &str) -> String {
    let mut s = String::with_capacity(size.students() as usize * 160);
    let hash = esc(hash);
    for i in 1..=size.students() {
        let (org, cohort) = student_home(size, i);
        let _ = writeln!(
            s,
            "{i}\tstudent{i}\t{hash}\tStudent {i}\tstudent\t{org}\t{cohort}"
        );
    }
    // One teacher per cohort.
    for t in 1..=size.cohorts() {
        let id = size.students() + t;
        let org = (t - 1) / size.cohorts_per_org + 1;
        let _ = writeln!(
            s,
            "{id}\tteacher{t}\t{hash}\tTeacher {t}\tteacher\t{org}\t{t}"
        );
    }
    s
}

const TOPICS: &[&str] = &[
    "SQL basics",
    "HTTP and REST",
    "Concurrency",
    "Algorithms",
    "Python",
];

fn quizzes(size: SeedSize) -> String {
    let mut s = String::new();
    for q in 1..=size.quizzes {
        let topic = TOPICS[(q as usize - 1) % TOPICS.len()];
        let _ = writeln!(
            s,
            "{q}\tQuiz {q}: {topic}\t{} questions on {}, part {}",
            size.questions_per_quiz,
            topic.to_lowercase(),
            (q - 1) / TOPICS.len() as u32 + 1
        );
    }
    s
}

/// Question rows and the grading keys per quiz (index quiz-1). The last
/// question of a quiz is short text, the one before it multiple choice,
/// the rest single choice with 4 choices.
fn questions(size: SeedSize) -> (String, Vec<Vec<QuestionKey>>) {
    let mut rng = SplitMix(0x5EED_0001);
    let mut s = String::new();
    let mut keys = Vec::with_capacity(size.quizzes as usize);
    let n = size.questions_per_quiz;
    for quiz in 1..=size.quizzes {
        let mut quiz_keys = Vec::with_capacity(n as usize);
        for pos in 1..=n {
            let id = ((quiz - 1) * n + pos) as i64;
            let kind = if pos == n && n >= 3 {
                Kind::Text
            } else if pos == n - 1 && n >= 3 {
                Kind::Multiple
            } else {
                Kind::Single
            };
            let (kind_name, choices, answer_key, key) = match kind {
                Kind::Text => (
                    "text",
                    "[]".to_string(),
                    r#"{"accepted": ["select", "select statement"]}"#.to_string(),
                    QuestionKey {
                        id,
                        kind,
                        points: 1,
                        choice_ids: vec![],
                        correct: vec![],
                        accepted: vec!["select".into(), "select statement".into()],
                    },
                ),
                _ => {
                    let choices: Vec<String> = (1..=4)
                        .map(|c| {
                            format!(r#"{{"id": {c}, "text": "Option {c} of question {pos}"}}"#)
                        })
                        .collect();
                    let correct: Vec<i64> = if kind == Kind::Multiple {
                        let a = rng.below(4) as i64 + 1;
                        let b = (a % 4) + 1;
                        let mut v = vec![a, b];
                        v.sort_unstable();
                        v
                    } else {
                        vec![rng.below(4) as i64 + 1]
                    };
                    (
                        if kind == Kind::Multiple {
                            "multiple"
                        } else {
                            "single"
                        },
                        format!("[{}]", choices.join(", ")),
                        format!(r#"{{"choice_ids": {correct:?}}}"#),
                        QuestionKey {
                            id,
                            kind,
                            points: 1,
                            choice_ids: vec![1, 2, 3, 4],
                            correct,
                            accepted: vec![],
                        },
                    )
                }
            };
            let prompt = match kind {
                Kind::Text => "Which SQL statement reads rows from a table?".to_string(),
                _ => format!("Question {pos} of quiz {quiz}: pick the right option"),
            };
            let _ = writeln!(
                s,
                "{id}\t{quiz}\t{pos}\t{kind_name}\t{}\t{}\t{}\t1",
                esc(&prompt),
                esc(&choices),
                esc(&answer_key)
            );
            quiz_keys.push(key);
        }
        keys.push(quiz_keys);
    }
    (s, keys)
}

/// Attempt rows and the progress rows they add up to (best score, count
/// and last time per student and quiz).
fn attempts(size: SeedSize, keys: &[Vec<QuestionKey>]) -> (String, String) {
    let mut rng = SplitMix(0x5EED_0002);
    let mut s = String::with_capacity(size.attempts as usize * 400);
    let mut progress: BTreeMap<(u32, usize), ProgressRow> = BTreeMap::new();
    let now = chrono::Utc::now();
    for id in 1..=size.attempts {
        let user = rng.below(size.students() as u64) as u32 + 1;
        let quiz = rng.below(size.quizzes as u64) as usize;
        let answers: Vec<Answer> = keys[quiz]
            .iter()
            .map(|q| match q.kind {
                Kind::Text => Answer {
                    question_id: q.id,
                    choice_ids: None,
                    text: Some(
                        if rng.below(2) == 0 {
                            "select"
                        } else {
                            "insert"
                        }
                        .into(),
                    ),
                },
                Kind::Multiple => Answer {
                    question_id: q.id,
                    choice_ids: Some(vec![rng.below(4) as i64 + 1]),
                    text: None,
                },
                Kind::Single => Answer {
                    question_id: q.id,
                    choice_ids: Some(vec![rng.below(4) as i64 + 1]),
                    text: None,
                },
            })
            .collect();
        let score = grading::grade(&keys[quiz], &answers).expect("generated answers are valid");
        let at = now - chrono::Duration::seconds(rng.below(30 * 86400) as i64);
        let p = progress.entry((user, quiz)).or_insert(ProgressRow {
            best: score.score,
            max: score.max_score,
            count: 0,
            last: at,
        });
        p.best = p.best.max(score.score);
        p.count += 1;
        p.last = p.last.max(at);
        let _ = writeln!(
            s,
            "{id}\t{user}\t{}\t{}\t{}\t{}\t{}",
            quiz + 1,
            esc(&serde_json::to_string(&answers).expect("answers serialize")),
            score.score,
            score.max_score,
            at.to_rfc3339()
        );
    }
    let mut p = String::with_capacity(progress.len() * 48);
    for ((user, quiz), row) in progress {
        let _ = writeln!(
            p,
            "{user}\t{}\t{}\t{}\t{}\t{}",
            quiz + 1,
            row.best,
            row.max,
            row.count,
            row.last.to_rfc3339()
        );
    }
    (s, p)
}

struct ProgressRow {
    best: i32,
    max: i32,
    count: u32,
    last: chrono::DateTime<chrono::Utc>,
}

/// TechEmpower's `world` table: ids 1..=10000, random numbers 1..=10000.
fn world() -> String {
    let mut rng = SplitMix(0x5EED_0003);
    let rows = crate::routes::techempower::WORLD_ROWS;
    let mut s = String::with_capacity(rows as usize * 12);
    for id in 1..=rows {
        let _ = writeln!(s, "{id}\t{}", rng.below(rows as u64) + 1);
    }
    s
}

/// TechEmpower's 12 fortunes.
fn fortunes() -> String {
    let mut s = String::new();
    for (i, message) in crate::routes::techempower::FORTUNES.iter().enumerate() {
        let _ = writeln!(s, "{}\t{}", i + 1, esc(message));
    }
    s
}

/// SplitMix64: a tiny deterministic generator (stable across versions,
/// unlike `rand`'s StdRng).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// After a re-seed: bump the content version (every worker drops its cached
/// quiz content) and end the sessions of our key prefix, whose user ids
/// may no longer exist. A Redis that is down only earns a warning.
pub async fn invalidate_caches(cfg: &crate::config::Config) {
    let result: anyhow::Result<()> = async {
        let client = redis::Client::open(cfg.redis_url.as_str())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_sizes() {
        let s = SeedSize::REFERENCE;
        assert_eq!(s.students(), 10_000);
        assert_eq!(s.cohorts(), 100);
        assert_eq!(student_home(s, 1), (1, 1));
        assert_eq!(student_home(s, 100), (1, 1));
        assert_eq!(student_home(s, 101), (1, 2));
        assert_eq!(student_home(s, 1000), (1, 10));
        assert_eq!(student_home(s, 1001), (2, 11));
        assert_eq!(student_home(s, 10_000), (10, 100));
    }

    #[test]
    fn generated_data_is_deterministic_and_gradable() {
        let size = SeedSize {
            attempts: 50,
            ..SeedSize::REFERENCE
        };
        let (q1, k1) = questions(size);
        let (q2, _) = questions(size);
        assert_eq!(q1, q2);
        assert_eq!(k1.len(), 50);
        assert_eq!(k1[0].len(), 10);
        assert_eq!(k1[0][9].kind, Kind::Text);
        assert_eq!(k1[0][8].kind, Kind::Multiple);
        assert_eq!(q1.lines().count(), 500);
        let (a, p) = attempts(size, &k1);
        assert_eq!(a.lines().count(), 50);
        assert!(a.lines().all(|l| l.split('\t').count() == 7));
        // Progress adds up to the attempts.
        let total: u32 = p
            .lines()
            .map(|l| l.split('\t').nth(4).unwrap().parse::<u32>().unwrap())
            .sum();
        assert_eq!(total, 50);
    }

    #[test]
    fn copy_escaping() {
        assert_eq!(esc("a\tb\\c\nd"), "a\\tb\\\\c\\nd");
    }
}
