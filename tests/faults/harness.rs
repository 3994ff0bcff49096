//! What the fault suite needs around the real binary: a server child
//! process (its JSON log drained and kept), databases copied from a seeded
//! template on the shared PostgreSQL, private PostgreSQL and Redis
//! instances that a case may stop, restart or pause, a fault-injecting TCP
//! proxy, raw-socket requests and a Prometheus text reader.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use quizbench::password::Passwords;
use quizbench::seed::{self, SeedSize};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub const BIN: &str = env!("CARGO_BIN_EXE_quizbench");

/// The small data set: 2 organizations x 2 cohorts x 5 students (student1
/// .. student20), 3 quizzes of 10 questions, 30 attempts.
pub const SEED: SeedSize = SeedSize {
    organizations: 2,
    cohorts_per_org: 2,
    students_per_cohort: 5,
    quizzes: 3,
    questions_per_quiz: 10,
    attempts: 30,
};

/// Cheap argon2 for the seeded hash and the servers (cases that need the
/// real cost set it themselves).
pub fn cheap_argon2() -> quizbench::config::Argon2Params {
    quizbench::config::Argon2Params {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
}

/// Fault cases run one at a time: they measure mechanisms on 2 shared
/// cores and some of them stop dependencies.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

// ---------------------------------------------------------------- shared PG

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn shared_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The URL of database `name` on the server of `admin`.
pub fn db_url_on(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b.to_string(), format!("?{q}")),
        None => (admin.to_string(), String::new()),
    };
    let base = base
        .rsplit_once('/')
        .map_or(base.clone(), |(b, _)| b.to_string());
    format!("{base}/{name}{query}")
}

/// A connection to the shared server, waiting (bounded) while it has no
/// free connection slot (another suite's load test may hold them all).
async fn admin_connection() -> PgConnection {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match PgConnection::connect(&admin_url()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline && e.to_string().contains("too many clients") => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("admin connection to TEST_DATABASE_URL: {e}"),
        }
    }
}

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
    format!("qb_tpl_{:012x}_fault1", h & 0xffff_ffff_ffff)
}

/// Migrates and seeds the small data set into `url` (created if needed).
pub async fn migrate_and_seed(url: &str) {
    seed::migrate(url).await.expect("migrate");
    let passwords = Passwords::new(cheap_argon2()).unwrap();
    seed::seed(url, &passwords, SEED, false)
        .await
        .expect("seed");
}

async fn ensure_template() -> String {
    let name = template_name();
    let mut admin = admin_connection().await;
    sqlx::query("select pg_advisory_lock(727274)")
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
        migrate_and_seed(&db_url_on(&admin_url(), &building)).await;
        sqlx::query(&format!("alter database {building} rename to {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    sqlx::query("select pg_advisory_unlock(727274)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    name
}

/// A database on the shared PostgreSQL copied from the seeded template;
/// dropped with the guard.
pub struct SharedDb {
    pub name: String,
    pub url: String,
}

impl SharedDb {
    pub async fn new() -> SharedDb {
        let template = ensure_template().await;
        let name = unique("qb_fault_");
        let mut admin = admin_connection().await;
        let mut tries = 0;
        loop {
            match sqlx::query(&format!("create database {name} template {template}"))
                .execute(&mut admin)
                .await
            {
                Ok(_) => break,
                // Another test binary is copying the template right now.
                Err(_) if tries < 60 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50 + tries * 10)).await;
                }
                Err(e) => panic!("create test database: {e}"),
            }
        }
        let _ = admin.close().await;
        SharedDb {
            url: db_url_on(&admin_url(), &name),
            name,
        }
    }
}

impl Drop for SharedDb {
    fn drop(&mut self) {
        let name = self.name.clone();
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

/// One query's single value.
pub async fn scalar(url: &str, sql: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
    let _ = conn.close().await;
    n
}

/// Removes the keys of a prefix from the shared Redis.
pub fn cleanup_redis(url: &str, prefix: &str) {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    let _ = std::thread::spawn(move || {
        let Ok(client) = redis::Client::open(url) else {
            return;
        };
        if let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(1)) {
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

// ------------------------------------------------------------------ server

/// The real binary as a child process. Killed (SIGKILL) when dropped; its
/// Redis prefix and files directory are removed.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    log: Arc<Mutex<Vec<String>>>,
    /// REDIS_PREFIX of this server.
    pub prefix: String,
    redis_url: String,
    files_dir: PathBuf,
}

impl Server {
    /// Starts `quizbench serve` on 127.0.0.1:0 with the suite's defaults,
    /// then `vars` (which win). Waits for its "listening on" line.
    pub fn start(database_url: &str, redis_url: &str, vars: &[(&str, &str)]) -> Server {
        let prefix = unique("qbfault:") + ":";
        let files_dir = std::env::temp_dir().join(unique("qb-fault-files-"));
        let a = cheap_argon2();
        let mut env: Vec<(String, String)> = [
            ("BIND", "127.0.0.1:0".to_string()),
            ("DATABASE_URL", database_url.to_string()),
            ("REDIS_URL", redis_url.to_string()),
            ("REDIS_PREFIX", prefix.clone()),
            ("LOG_FORMAT", "json".into()),
            ("LOG_LEVEL", "info".into()),
            ("PROCESSES", "1".into()),
            ("THREADS", "1".into()),
            ("ARGON2_MEMORY_KIB", a.memory_kib.to_string()),
            ("ARGON2_ITERATIONS", a.iterations.to_string()),
            ("ARGON2_PARALLELISM", a.parallelism.to_string()),
            ("CPU_POOL_THREADS", "1".into()),
            ("GRADE_MODEL_MB", "1".into()),
            ("GRACEFUL_TIMEOUT_SECS", "1".into()),
            ("CONNECTION_BUDGET", "off".into()),
            ("FILES_DIR", files_dir.display().to_string()),
            ("QUIZBENCH_TEST_HOOKS", "1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in vars {
            env.retain(|(name, _)| name != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn quizbench");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_addr(&line) {
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().unwrap();
                    // Keep the tail only: a flood case logs a lot.
                    if log.len() > 20_000 {
                        log.drain(..10_000);
                    }
                    log.push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "the server did not print its address; log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        Server {
            child,
            addr,
            base: format!("http://{addr}"),
            http: client(),
            log,
            prefix,
            redis_url: redis_url.to_string(),
            files_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// True while the process has not exited.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Log lines at ERROR level (JSON log).
    pub fn error_lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .cloned()
            .collect()
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

    /// Logs in and returns the token.
    pub async fn token(&self, username: &str) -> String {
        let res = self
            .post_json(
                "/api/v1/auth/login",
                None,
                &json!({"username": username, "password": seed::SEED_PASSWORD}),
            )
            .await;
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "login of {username}: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// This server's Prometheus text.
    pub async fn metrics(&self) -> Metrics {
        let text = self.get("/metrics", None).await.text().await.unwrap();
        Metrics(text)
    }

    /// Waits until `/readyz` answers `status` (bounded).
    pub async fn wait_ready(&self, status: u16, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = self
                .http
                .get(self.url("/readyz"))
                .timeout(Duration::from_secs(3))
                .send()
                .await
                .map(|r| r.status().as_u16());
            if got.as_ref().ok() == Some(&status) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not become {status} within {within:?} (last: {got:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Server {
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

/// A client with a bound on every request (a hung case fails, not hangs).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Prometheus text with sums over every worker's series.
pub struct Metrics(pub String);

impl Metrics {
    /// Sum of every series of `name` whose labels contain all of `labels`
    /// (`key="value"` strings).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn count(&self, name: &str) -> u64 {
        self.sum(name, &[]) as u64
    }

    /// Requests answered with `status` (all routes).
    pub fn status(&self, status: u16) -> u64 {
        self.sum(
            "quizbench_http_requests_total",
            &[&format!("status=\"{status}\"")],
        ) as u64
    }
}

/// Asserts a JSON error envelope with this status and code; returns the body.
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
        "content type {ct:?} of {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(v["error"]["code"], code, "body {text}");
    assert!(v["error"]["message"].is_string(), "body {text}");
    v
}

/// Answers for a quiz from its public detail (first choice of each choice
/// question, `select` for text questions).
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

// --------------------------------------------------------------- raw TCP

/// What a raw exchange saw: the bytes the server sent and whether it
/// closed the connection (EOF or reset) before `wait` ran out.
#[derive(Debug)]
pub struct Raw {
    pub bytes: Vec<u8>,
    pub closed: bool,
}

impl Raw {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The status code of the first response, if any.
    pub fn status(&self) -> Option<u16> {
        let text = self.text();
        let line = text.lines().next()?;
        line.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
    }

    /// How many responses the server wrote.
    pub fn responses(&self) -> usize {
        self.text().matches("HTTP/1.1 ").count()
    }
}

/// Sends `request` on a new connection and reads until the server closes
/// it or `wait` passes.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> Raw {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it has read everything.
    let _ = s.write_all(request).await;
    read_until_close(&mut s, wait).await
}

pub async fn read_until_close(s: &mut TcpStream, wait: Duration) -> Raw {
    let mut bytes = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Raw {
                    bytes,
                    closed: true,
                }
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Raw {
                    bytes,
                    closed: false,
                }
            }
        }
    }
}

// ------------------------------------------------------------ free ports

/// A port that was free a moment ago (bind to 0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ------------------------------------------------------- private Postgres

/// A throwaway PostgreSQL cluster (initdb into a temporary directory, run
/// as the `postgres` system user when we are root) on a random port, which
/// a case may stop and start. Never the machine's shared instance.
pub struct PrivatePg {
    dir: PathBuf,
    pub port: u16,
    bin: PathBuf,
    child: Option<Child>,
    as_postgres: Option<(u32, u32)>,
}

fn pg_bin_dir() -> PathBuf {
    for dir in ["/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin"] {
        if Path::new(dir).join("initdb").exists() {
            return PathBuf::from(dir);
        }
    }
    // On PATH.
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':') {
        if Path::new(dir).join("initdb").exists() {
            return PathBuf::from(dir);
        }
    }
    panic!("initdb not found (install PostgreSQL: apt-get install postgresql)");
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

impl PrivatePg {
    pub fn init() -> PrivatePg {
        let bin = pg_bin_dir();
        let dir = std::env::temp_dir().join(unique("qb-fault-pg-"));
        std::fs::create_dir_all(&dir).unwrap();
        // PostgreSQL refuses to run as root: as root, run it as the
        // `postgres` system user (what `runuser -u postgres` does).
        let as_postgres = if running_as_root() {
            let (uid, gid) = system_user("postgres")
                .expect("running as root: a `postgres` system user is needed to run initdb");
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            Some((uid, gid))
        } else {
            None
        };
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-D"])
            .arg(dir.join("data"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some((uid, gid)) = as_postgres {
            initdb.uid(uid).gid(gid);
        }
        let out = initdb.output().expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PrivatePg {
            dir,
            port: free_port(),
            bin,
            child: None,
            as_postgres,
        }
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Starts the postmaster and waits until it accepts connections.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "fsync=off", "-c", "max_connections=60"])
            .args(["-c", "shared_buffers=16MB", "-c", "logging_collector=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = self.as_postgres {
            cmd.uid(uid).gid(gid);
        }
        self.child = Some(cmd.spawn().expect("start postgres"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = PgConnection::connect(&self.admin_url()).await {
                let _ = c.close().await;
                return;
            }
            assert!(Instant::now() < deadline, "private postgres did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fast shutdown (SIGINT: sessions are terminated), waited for.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: this is the end of a test.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGQUIT);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------- private Redis

/// A throwaway redis-server (no persistence) on a random port.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let mut r = PrivateRedis {
            port: free_port(),
            child: None,
        };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port, empty.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("redis-server (install it: apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.ping().await {
                return;
            }
            assert!(Instant::now() < deadline, "private redis did not start");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    async fn ping(&self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(Ok(mut conn)) = tokio::time::timeout(
            Duration::from_millis(500),
            client.get_multiplexed_async_connection(),
        )
        .await
        else {
            return false;
        };
        matches!(
            tokio::time::timeout(
                Duration::from_millis(500),
                redis::cmd("PING").query_async::<String>(&mut conn),
            )
            .await,
            Ok(Ok(_))
        )
    }

    /// `CLIENT PAUSE ms ALL`: every client's commands hang for `ms`.
    pub async fn pause(&self, ms: u64) {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query_async(&mut conn)
            .await
            .unwrap();
    }

    /// SIGKILL: the server is gone, its data with it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

// ------------------------------------------------------------------ proxy

/// Forward bytes both ways.
pub const FORWARD: u8 = 0;
/// Accept and never answer: new connections are held without reaching the
/// upstream, and bytes on existing ones stop moving (a hung dependency).
pub const HANG: u8 = 1;
/// Forward the request, but close the client's connection instead of
/// relaying the response (a connection dropped after the work was done).
pub const DROP_RESPONSES: u8 = 2;

/// A TCP proxy inside the test process whose behavior can be switched.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(FORWARD));
        let m = mode.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy_connection(client, upstream, m.clone()));
            }
        });
        Proxy { addr, mode, task }
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_unhung(mode: &AtomicU8) {
    while mode.load(Ordering::SeqCst) == HANG {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn proxy_connection(client: TcpStream, upstream: SocketAddr, mode: Arc<AtomicU8>) {
    wait_unhung(&mode).await;
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up_mode = mode.clone();
    let up = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            wait_unhung(&up_mode).await;
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = sw.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            wait_unhung(&mode).await;
            if mode.load(Ordering::SeqCst) == DROP_RESPONSES {
                // The work is done upstream; the client never hears of it.
                break;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = cw.shutdown().await;
    };
    // Either side ending ends the connection (a dropped response closes
    // the client at once).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Every status seen, counted.
#[derive(Debug, Default, Clone)]
pub struct Statuses(pub HashMap<String, u64>);

impl Statuses {
    pub fn add(&mut self, what: impl Into<String>) {
        *self.0.entry(what.into()).or_default() += 1;
    }

    pub fn get(&self, what: &str) -> u64 {
        self.0.get(what).copied().unwrap_or(0)
    }
}
