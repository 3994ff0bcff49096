//! `TestApp`: a real server on 127.0.0.1:0 in the test's runtime, with its
//! own PostgreSQL database (copied from a migrated, seeded template) and its
//! own Redis key prefix; both are removed when the test ends.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use quizbench::config::Config;
use quizbench::metrics::Metrics;
use quizbench::password::Passwords;
use quizbench::process::worker::{self, RunningWorker};
use quizbench::seed::{self, SeedSize};
use quizbench::state::WorkerInfo;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

/// The small data set tests run on: 2 organizations x 2 cohorts x 5
/// students, 3 quizzes of 10 questions, 30 attempts.
pub const TEST_SEED: SeedSize = SeedSize {
    organizations: 2,
    cohorts_per_org: 2,
    students_per_cohort: 5,
    quizzes: 3,
    questions_per_quiz: 10,
    attempts: 30,
};

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The URL of database `name` on the admin server.
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

/// Name of the template database for the current migrations and seed.
fn template_name() -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
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
    // Bump when the test seed changes.
    format!("qb_tpl_{:012x}_v1", h & 0xffff_ffff_ffff)
}

/// Creates the template once per schema version (serialized across test
/// processes by an advisory lock).
async fn ensure_template() -> String {
    let name = template_name();
    let mut admin = PgConnection::connect(&admin_url())
        .await
        .expect("admin connection");
    sqlx::query("select pg_advisory_lock(727272)")
        .execute(&mut admin)
        .await
        .unwrap();
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    if !exists {
        let building = format!("{name}_building");
        sqlx::query(&format!("drop database if exists {building} with (force)"))
            .execute(&mut admin)
            .await
            .unwrap();
        let url = db_url(&building);
        seed::migrate(&url).await.expect("migrate template");
        let passwords = Passwords::new(test_argon2()).unwrap();
        seed::seed(&url, &passwords, TEST_SEED, false)
            .await
            .expect("seed template");
        sqlx::query(&format!("alter database {building} rename to {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    sqlx::query("select pg_advisory_unlock(727272)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    name
}

pub fn test_argon2() -> quizbench::config::Argon2Params {
    quizbench::config::Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// A fresh database copied from the template; dropped with the guard.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let template = ensure_template().await;
        let name = format!("qb_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url()).await.unwrap();
        let mut tries = 0;
        loop {
            match sqlx::query(&format!("create database {name} template {template}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                // Another test is copying the template at this instant.
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
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
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("drop database if exists {name} with (force)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Removes every Redis key under the test's prefix.
pub fn cleanup_redis(prefix: &str) {
    let prefix = prefix.to_string();
    let _ = std::thread::spawn(move || {
        let client = redis::Client::open(redis_url()).unwrap();
        if let Ok(mut conn) = client.get_connection() {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        }
    })
    .join();
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub worker: RunningWorker,
    pub prefix: String,
    pub files_dir: std::path::PathBuf,
    pub db: TestDb,
    /// Set by `stop`: the Redis keys and files outlive this server.
    keep_state: bool,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A server with extra configuration variables.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
        let db = TestDb::new().await;
        let prefix = format!("qbtest:{}:", uuid::Uuid::new_v4().simple());
        let files_dir =
            std::env::temp_dir().join(format!("qb-files-{}", uuid::Uuid::new_v4().simple()));
        Self::start(db, prefix, files_dir, vars).await
    }

    /// Starts a server on an existing database, prefix and files directory
    /// (used to restart one).
    pub async fn start(
        db: TestDb,
        prefix: String,
        files_dir: std::path::PathBuf,
        vars: &[(&str, &str)],
    ) -> TestApp {
        let mut env: HashMap<String, String> = HashMap::new();
        let a = test_argon2();
        for (k, v) in [
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", redis_url()),
            ("REDIS_PREFIX", prefix.clone()),
            ("ARGON2_MEMORY_KIB", a.memory_kib.to_string()),
            ("ARGON2_ITERATIONS", a.iterations.to_string()),
            ("FILES_DIR", files_dir.display().to_string()),
            ("CPU_POOL_THREADS", "2".into()),
            ("DB_POOL_MAX", "5".into()),
            ("GRADE_MODEL_MB", "1".into()),
            ("GRACEFUL_TIMEOUT_SECS", "2".into()),
        ] {
            env.insert(k.into(), v);
        }
        for (k, v) in vars {
            env.insert(k.to_string(), v.to_string());
        }
        let cfg = Arc::new(Config::from_lookup(None, |k| env.get(k).map(String::as_str)).unwrap());
        let listener =
            quizbench::process::listeners::bind("127.0.0.1:0".parse().unwrap(), false, 128)
                .unwrap();
        let info = WorkerInfo {
            index: 0,
            model: "test".into(),
            processes: 1,
            threads: 1,
            thread_per_core: false,
            listener: "reuseport",
            started: std::time::Instant::now(),
        };
        let worker = worker::start(cfg.clone(), listener, Metrics::new_shared(), info)
            .await
            .expect("start server");
        let addr = worker.addr;
        TestApp {
            base: format!("http://{addr}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            worker,
            prefix,
            files_dir,
            db,
            keep_state: false,
        }
    }

    /// Drains the server and returns what a restart needs.
    pub async fn stop(mut self) -> (TestDb, String, std::path::PathBuf) {
        self.worker.lifecycle.drain();
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.worker.done).await;
        self.worker.state.db.close().await;
        self.keep_state = true;
        // The database guard moves to the caller; a placeholder stays behind.
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                name: String::new(),
                url: String::new(),
            },
        );
        (db, self.prefix.clone(), self.files_dir.clone())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Logs in and returns (token, set-cookie header).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let res = self
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(res.status(), 200, "login of {username}");
        let cookie = res
            .headers()
            .get("set-cookie")
            .expect("session cookie")
            .to_str()
            .unwrap()
            .to_string();
        let body: Value = res.json().await.unwrap();
        (body["token"].as_str().unwrap().to_string(), cookie)
    }

    pub async fn token(&self, username: &str) -> String {
        self.login(username, seed::SEED_PASSWORD).await.0
    }

    /// Runs SQL against the test's database.
    pub async fn count(&self, sql: &str) -> i64 {
        let mut conn = PgConnection::connect(&self.db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        let _ = conn.close().await;
        n
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.worker.lifecycle.drain();
        if self.keep_state {
            return;
        }
        cleanup_redis(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.files_dir);
    }
}

/// Asserts a JSON error response with the given status and code.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "status; body {text}");
    assert!(
        ct.starts_with("application/json"),
        "content type {ct} for {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"]["code"], code, "body {text}");
    assert!(v["error"]["message"].is_string());
    v
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
