//! What the integration-test binaries share: databases copied from a
//! migrated, seeded template on the shared PostgreSQL, Redis key-prefix
//! cleanup, the `quizbench serve` child process and its log, and HTTP
//! helpers over reqwest. Each binary includes this file as
//! `#[path = "../common/mod.rs"] mod common;` and names its `SUITE` (a
//! [`Suite`]) at its root, which keeps its databases, template and Redis
//! keys apart from every other suite's.
//!
//! Every test creates its own database and Redis key prefix and removes
//! them when it ends (guards' `Drop`); nothing here drops or deletes what
//! it did not create.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use quizbench::password::Passwords;
use quizbench::seed::{self, SeedSize};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

mod http;
pub use http::*;

/// The names that keep one suite's state apart from another's (suites, or
/// two checkouts' test runs, may share the PostgreSQL and Redis servers).
pub struct Suite {
    /// Prefix of its database names, e.g. `qb_test_`.
    pub db_prefix: &'static str,
    /// Prefix of its Redis key prefixes, e.g. `qbtest:`.
    pub redis_prefix: &'static str,
    /// Suffix of its template database's name.
    pub template_suffix: &'static str,
    /// The advisory lock that serializes building its template.
    pub template_lock: i64,
}

/// The small data set tests run on: 2 organizations x 2 cohorts x 5
/// students (student1 .. student20), 3 quizzes of 10 questions, 30
/// attempts.
pub const TEST_SEED: SeedSize = SeedSize {
    organizations: 2,
    cohorts_per_org: 2,
    students_per_cohort: 5,
    quizzes: 3,
    questions_per_quiz: 10,
    attempts: 30,
};

/// Cheap argon2 for the seeded hashes and the servers (cases that need the
/// real cost set it themselves).
pub fn cheap_argon2() -> quizbench::config::Argon2Params {
    quizbench::config::Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// `prefix` and a random UUID (32 hex digits): a name no other test, or
/// run, has.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

/// A fresh Redis key prefix of this suite (`qbtest:<uuid>:`).
pub fn redis_prefix() -> String {
    unique_name(crate::SUITE.redis_prefix) + ":"
}

// ---------------------------------------------------------------- PostgreSQL

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The URL of database `name` on the admin URL's server.
pub fn db_url(name: &str) -> String {
    let admin = admin_url();
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.clone(), String::new()),
    };
    let base = base
        .rsplit_once('/')
        .map_or(base.clone(), |(b, _)| b.to_string());
    format!("{base}/{name}{query}")
}

/// A connection to the admin database, waiting (up to a minute) while the
/// server has no free connection slot: another suite or a load test
/// sharing it may hold them all for a while.
pub async fn admin_connect() -> PgConnection {
    try_admin_connect()
        .await
        .unwrap_or_else(|e| panic!("admin connection to TEST_DATABASE_URL: {e}"))
}

async fn try_admin_connect() -> Result<PgConnection, sqlx::Error> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        match PgConnection::connect(&admin_url()).await {
            // 53300: too many connections.
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("53300") && Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Migrates and seeds the small data set into `url` (created if needed).
pub async fn migrate_and_seed(url: &str) {
    seed::migrate(url).await.expect("migrate");
    let passwords = Passwords::new(cheap_argon2()).unwrap();
    seed::seed(url, &passwords, TEST_SEED, false)
        .await
        .expect("seed");
}

/// The suite's template name: a hash of the migrations, so that a schema
/// change builds a new template. Bump the suites' suffixes when the seed
/// changes.
fn template_name() -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        for b in std::fs::read(f).unwrap() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!(
        "qb_tpl_{:012x}_{}",
        h & 0xffff_ffff_ffff,
        crate::SUITE.template_suffix
    )
}

/// Creates the template once per schema version (serialized across test
/// processes by an advisory lock; built under another name and renamed, so
/// that a half-built one is never copied).
async fn ensure_template() -> String {
    let name = template_name();
    let lock = crate::SUITE.template_lock;
    let mut admin = admin_connect().await;
    sqlx::query("select pg_advisory_lock($1)")
        .bind(lock)
        .execute(&mut admin)
        .await
        .unwrap();
    let exists = sqlx::query("select 1 from pg_database where datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .unwrap()
        .is_some();
    if !exists {
        let building = format!("{name}_building");
        sqlx::query(&format!("drop database if exists {building} with (force)"))
            .execute(&mut admin)
            .await
            .unwrap();
        migrate_and_seed(&db_url(&building)).await;
        sqlx::query(&format!("alter database {building} rename to {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    sqlx::query("select pg_advisory_unlock($1)")
        .bind(lock)
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    name
}

/// A database of this test's own on the shared PostgreSQL; dropped with
/// the guard. A guard with an empty name (a placeholder left where one was
/// moved out) drops nothing.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A database copied from the suite's seeded template.
    pub async fn new() -> TestDb {
        let template = ensure_template().await;
        TestDb::create(&format!("template {template}")).await
    }

    /// An empty database (no schema, no data).
    pub async fn empty() -> TestDb {
        TestDb::create("").await
    }

    async fn create(options: &str) -> TestDb {
        let name = unique_name(crate::SUITE.db_prefix);
        let mut admin = admin_connect().await;
        let mut tries = 0;
        loop {
            match sqlx::query(&format!("create database {name} {options}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                // Another test is copying the template at this instant.
                Err(_) if tries < 60 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 + tries * 10)).await;
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        let _ = admin.close().await;
        TestDb {
            url: db_url(&name),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let name = self.name.clone();
        // Drop runs outside async: use a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = try_admin_connect().await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// One query's single value.
pub async fn scalar(url: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    let _ = conn.close().await;
    n
}

// --------------------------------------------------------------------- Redis

/// A connection to the Redis at `url`, or None when it does not answer
/// within a second.
fn redis_connection(url: &str) -> Option<redis::Connection> {
    let client = redis::Client::open(url).ok()?;
    client
        .get_connection_with_timeout(Duration::from_secs(1))
        .ok()
}

/// The keys under `prefix` in the Redis at `url` (none when it is down).
pub fn redis_keys(url: &str, prefix: &str) -> Vec<String> {
    let Some(mut conn) = redis_connection(url) else {
        return Vec::new();
    };
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap_or_default()
}

/// Removes every key under `prefix` from the Redis at `url` (bounded: a
/// dead or hung Redis is given up on after a second).
pub fn cleanup_redis(url: &str, prefix: &str) {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    // A thread: this runs in `Drop`, maybe inside a runtime.
    let _ = std::thread::spawn(move || {
        let keys = redis_keys(&url, &prefix);
        if let (false, Some(mut conn)) = (keys.is_empty(), redis_connection(&url)) {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
        }
    })
    .join();
}

// -------------------------------------------------------- the server binary

pub const BIN: &str = env!("CARGO_BIN_EXE_quizbench");

/// A test server's variables: its database, Redis and key prefix, files
/// directory and cheap argon2, then the suite's `defaults`, then the
/// test's `vars` (later ones win).
pub fn server_env(
    database_url: &str,
    redis_url: &str,
    prefix: &str,
    files_dir: &Path,
    defaults: &[(&str, &str)],
    vars: &[(&str, &str)],
) -> HashMap<String, String> {
    let a = cheap_argon2();
    let mut env: HashMap<String, String> = [
        ("DATABASE_URL", database_url.to_string()),
        ("REDIS_URL", redis_url.to_string()),
        ("REDIS_PREFIX", prefix.to_string()),
        ("FILES_DIR", files_dir.display().to_string()),
        ("ARGON2_MEMORY_KIB", a.memory_kib.to_string()),
        ("ARGON2_ITERATIONS", a.iterations.to_string()),
        ("GRADE_MODEL_MB", "1".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for (k, v) in defaults.iter().chain(vars) {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// Variables written as in a shell, `"NAME=value NAME=value"`, as pairs.
pub fn vars(assignments: &str) -> Vec<(&str, &str)> {
    assignments
        .split_whitespace()
        .map(|a| {
            a.split_once('=')
                .unwrap_or_else(|| panic!("{a:?} is not NAME=value"))
        })
        .collect()
}

/// Calls `probe` every `every` until it gives a value; after `limit`,
/// panics with what `failure` says and the log.
pub fn wait_until<T>(
    limit: Duration,
    every: Duration,
    log: &Log,
    failure: impl Fn() -> String,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    let until = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            Instant::now() < until,
            "{} after {limit:?}; log:\n{}",
            failure(),
            log.dump()
        );
        std::thread::sleep(every);
    }
}

/// `binary serve` on 127.0.0.1:0 with a JSON log, and in its environment
/// only PATH, HOME and `env` (which wins).
pub fn serve_command(binary: &OsStr, env: &HashMap<String, String>) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("serve")
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
        .envs([
            ("BIND", "127.0.0.1:0"),
            ("LOG_FORMAT", "json"),
            ("LOG_LEVEL", "info"),
        ])
        .envs(env);
    cmd
}

/// Starts `cmd` with its stdout and stderr read, line by line, into a
/// [`Log`] of at most `cap` lines (past that the oldest half goes).
pub fn spawn_logged(cmd: &mut Command, cap: usize) -> (Child, Arc<Log>) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the quizbench binary");
    let log = Arc::new(Log {
        lines: Mutex::default(),
        grew: Condvar::new(),
        cap,
    });
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                match line {
                    Ok(l) => log.push(l),
                    Err(_) => break,
                }
            }
        });
    }
    (child, log)
}

/// Waits for the server's "listening on http://ADDR" line; None when the
/// process exits first or `limit` passes.
pub fn wait_listening(child: &mut Child, log: &Log, limit: Duration) -> Option<SocketAddr> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(addr) = log.lines().iter().find_map(|l| listening_addr(l)) {
            return Some(addr);
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// The real binary as a child process: `quizbench serve` with
/// [`server_env`]'s variables, its log kept. Killed (SIGKILL) when
/// dropped; its Redis prefix and files directory are removed.
pub struct Served {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub log: Arc<Log>,
    /// REDIS_PREFIX of this server.
    pub prefix: String,
    redis_url: String,
    files_dir: PathBuf,
}

/// How to start a [`Served`]: the suite's defaults, the test's variables
/// (which win), how many log lines to keep and the client's bound.
pub struct ServeOptions<'a> {
    pub defaults: &'a [(&'a str, &'a str)],
    pub vars: &'a [(&'a str, &'a str)],
    pub log_cap: usize,
    pub timeout: Option<Duration>,
}

impl Served {
    /// Starts the server on a fresh Redis prefix and files directory and
    /// waits (20 s at most) for its "listening on" line.
    pub fn start(database_url: &str, redis_url: &str, o: ServeOptions) -> Served {
        let prefix = redis_prefix();
        let files_dir = std::env::temp_dir().join(unique_name("qb-files-"));
        let env = server_env(
            database_url,
            redis_url,
            &prefix,
            &files_dir,
            o.defaults,
            o.vars,
        );
        let (mut child, log) = spawn_logged(&mut serve_command(BIN.as_ref(), &env), o.log_cap);
        let Some(addr) = wait_listening(&mut child, &log, Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!("the server did not print its address; log:\n{}", log.dump());
        };
        Served {
            child,
            addr,
            base: format!("http://{addr}"),
            http: client(o.timeout),
            log,
            prefix,
            redis_url: redis_url.to_string(),
            files_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The server's log, for failure messages.
    pub fn log_text(&self) -> String {
        self.log.dump()
    }

    /// Log lines at ERROR level (JSON log).
    pub fn error_lines(&self) -> Vec<String> {
        self.log
            .lines()
            .into_iter()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .collect()
    }
}

impl HttpApi for Served {
    fn endpoint(&self) -> (&str, &reqwest::Client) {
        (&self.base, &self.http)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        cleanup_redis(&self.redis_url, &self.prefix);
        let _ = std::fs::remove_dir_all(&self.files_dir);
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    addr.parse().ok()
}

/// A child server's log: every line of its stdout and stderr, parsed when
/// JSON.
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    cap: usize,
}

impl Log {
    fn push(&self, line: String) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() > self.cap {
            lines.drain(..self.cap / 2);
        }
        lines.push(line);
        drop(lines);
        self.grew.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// JSON events whose message contains `needle`.
    pub fn events(&self, needle: &str) -> Vec<Value> {
        events(&self.lines(), needle)
    }

    pub fn count(&self, needle: &str) -> usize {
        self.events(needle).len()
    }

    /// Waits until `count(needle) >= n`; panics with the log after `limit`.
    pub fn wait_for(&self, needle: &str, n: usize, limit: Duration) -> Vec<Value> {
        let until = Instant::now() + limit;
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let found = events(&guard, needle);
            if found.len() >= n {
                return found;
            }
            let now = Instant::now();
            if now >= until {
                let tail = guard[guard.len().saturating_sub(60)..].join("\n");
                drop(guard);
                panic!("no {n} log lines with {needle:?} after {limit:?}; log tail:\n{tail}");
            }
            guard = self
                .grew
                .wait_timeout(guard, until - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The log text, for failure messages.
    pub fn dump(&self) -> String {
        self.lines().join("\n")
    }
}

fn events(lines: &[String], needle: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
        .collect()
}

/// Answers for a quiz, built from its public detail: the first choice of
/// every choice question, `select` for text questions.
pub fn answers_for(quiz: &Value) -> Value {
    let answers: Vec<Value> = quiz["questions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| {
            let choices = q["choices"].as_array().unwrap();
            if choices.is_empty() {
                json!({"question_id": q["id"], "text": "select"})
            } else {
                json!({"question_id": q["id"], "choice_ids": [choices[0]["id"]]})
            }
        })
        .collect();
    json!({ "answers": answers })
}
