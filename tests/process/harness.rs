//! Starts the real `quizbench` binary as a child process, with its own
//! database (copied from a migrated, seeded template) and Redis prefix,
//! reads its JSON log, and inspects its processes, threads and sockets
//! from outside through /proc. The server is killed when the guard drops.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use quizbench::password::Passwords;
use quizbench::seed::{self, SeedSize};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

pub const BIN: &str = env!("CARGO_BIN_EXE_quizbench");

/// The small data set: 2 organizations x 2 cohorts x 5 students, 3 quizzes.
const TEST_SEED: SeedSize = SeedSize {
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

fn db_url(name: &str) -> String {
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

/// Template name: a hash of the migrations (as the API suite does; the
/// suffix keeps this suite's template independent of that one's seed).
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
    format!("qb_tpl_{:012x}_proc1", h & 0xffff_ffff_ffff)
}

pub const ARGON2_MEMORY_KIB: u32 = 64;

/// A connection to the admin database, waiting a little while the server
/// has no free connection slot (other suites sharing it may hold them all).
async fn admin_connect() -> PgConnection {
    try_admin_connect()
        .await
        .unwrap_or_else(|e| panic!("admin connection to TEST_DATABASE_URL: {e}"))
}

async fn try_admin_connect() -> Result<PgConnection, sqlx::Error> {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match PgConnection::connect(&admin_url()).await {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("53300") && std::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// A temporary file or directory, removed when the guard drops (also when
/// the test fails).
pub struct TempPath(pub std::path::PathBuf);

impl TempPath {
    pub fn new(kind: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(format!("qb-{kind}-{}", uuid::Uuid::new_v4().simple())))
    }

    pub fn text(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn ensure_template() -> String {
    let name = template_name();
    let mut admin = admin_connect().await;
    sqlx::query("select pg_advisory_lock(727273)")
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
        let passwords = Passwords::new(quizbench::config::Argon2Params {
            memory_kib: ARGON2_MEMORY_KIB,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        seed::seed(&url, &passwords, TEST_SEED, false)
            .await
            .expect("seed template");
        sqlx::query(&format!("alter database {building} rename to {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
    }
    sqlx::query("select pg_advisory_unlock(727273)")
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    name
}

/// A database copied from the template; dropped with the guard.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let template = ensure_template().await;
        let name = format!("qb_proc_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connect().await;
        let mut tries = 0;
        loop {
            match sqlx::query(&format!("create database {name} template {template}"))
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
        let name = self.name.clone();
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

fn cleanup_redis(prefix: &str) {
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

/// Orphans of the servers (workers whose supervisor was killed) are
/// re-parented to this test process, which reaps them, instead of to an
/// init that might not.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    });
}

/// The server's log: every line of stdout and stderr, parsed when JSON.
#[derive(Default)]
pub struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

impl Log {
    fn push(&self, line: String) {
        self.lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
        self.grew.notify_all();
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// JSON events whose message contains `needle`.
    pub fn events(&self, needle: &str) -> Vec<Value> {
        self.lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
            .collect()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.events(needle).len()
    }

    /// Waits until `count(needle) >= n`; panics with the log after `limit`.
    pub fn wait_for(&self, needle: &str, n: usize, limit: Duration) -> Vec<Value> {
        let until = Instant::now() + limit;
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let found: Vec<Value> = guard
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
                .collect();
            if found.len() >= n {
                return found;
            }
            let now = Instant::now();
            if now >= until {
                let tail = guard
                    .iter()
                    .rev()
                    .take(60)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>();
                drop(guard);
                panic!(
                    "no {n} log lines with {needle:?} after {limit:?}; log tail:\n{}",
                    tail.join("\n")
                );
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

/// A running `quizbench serve` and what it needs.
pub struct Server {
    pub child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: Arc<Log>,
    pub prefix: String,
    files_dir: std::path::PathBuf,
    _db: Option<TestDb>,
}

/// Variables every test server gets (cheap argon2, small pools, short
/// graceful timeout); the test's own override them.
fn base_env(db_url: &str, prefix: &str, files_dir: &std::path::Path) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db_url.to_string()),
        ("REDIS_URL", redis_url()),
        ("REDIS_PREFIX", prefix.to_string()),
        ("BIND", "127.0.0.1:0".into()),
        ("LOG_FORMAT", "json".into()),
        ("LOG_LEVEL", "info".into()),
        ("ARGON2_MEMORY_KIB", ARGON2_MEMORY_KIB.to_string()),
        ("ARGON2_ITERATIONS", "1".into()),
        ("FILES_DIR", files_dir.display().to_string()),
        ("CPU_POOL_THREADS", "1".into()),
        ("DB_POOL_MAX", "4".into()),
        ("REDIS_POOL_MAX", "4".into()),
        ("GRADE_MODEL_MB", "1".into()),
        ("GRACEFUL_TIMEOUT_SECS", "5".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[derive(Default)]
pub struct Options<'a> {
    pub vars: &'a [(&'a str, &'a str)],
    /// Start from this path instead of the built binary.
    pub binary: Option<&'a std::path::Path>,
    /// Restrict the server's CPU affinity to these CPUs.
    pub cpus: Option<&'a [usize]>,
    /// Wait for this many "worker ready" lines (supervised) before returning.
    pub ready_workers: usize,
    /// Use this database URL instead of a fresh copy of the template.
    pub database_url: Option<&'a str>,
}

impl Server {
    /// Starts a server and waits until it listens and answers /healthz.
    pub async fn start(vars: &[(&str, &str)]) -> Server {
        let processes = vars
            .iter()
            .find(|(k, _)| *k == "PROCESSES")
            .and_then(|(_, v)| v.parse::<usize>().ok())
            .unwrap_or(1);
        let supervised = processes > 1 || vars.contains(&("SUPERVISOR", "true"));
        Server::start_with(Options {
            vars,
            ready_workers: if supervised { processes } else { 0 },
            ..Options::default()
        })
        .await
    }

    pub async fn start_with(opts: Options<'_>) -> Server {
        let server = Server::spawn(opts.clone_for_spawn()).await;
        server
            .log
            .wait_for("listening on http://", 1, Duration::from_secs(15));
        if opts.ready_workers > 0 {
            server
                .log
                .wait_for("worker ready", opts.ready_workers, Duration::from_secs(15));
        }
        server.wait_healthy(Duration::from_secs(10));
        server
    }

    /// Starts the binary without waiting for anything but its address (or
    /// its exit: `addr` is then 0.0.0.0:0).
    pub async fn spawn(opts: Options<'_>) -> Server {
        become_subreaper();
        let (db, db_url) = match opts.database_url {
            Some(url) => (None, url.to_string()),
            None => {
                let db = TestDb::new().await;
                let url = db.url.clone();
                (Some(db), url)
            }
        };
        let prefix = format!("qbproc:{}:", uuid::Uuid::new_v4().simple());
        let files_dir =
            std::env::temp_dir().join(format!("qb-proc-files-{}", uuid::Uuid::new_v4().simple()));
        let mut env: HashMap<String, String> =
            base_env(&db_url, &prefix, &files_dir).into_iter().collect();
        for (k, v) in opts.vars {
            env.insert(k.to_string(), v.to_string());
        }
        let mut cmd = Command::new(opts.binary.map_or(BIN.as_ref(), |p| p.as_os_str()));
        cmd.arg("serve")
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cpus) = opts.cpus {
            set_affinity_on_exec(&mut cmd, cpus.to_vec());
        }
        let mut child = cmd.spawn().expect("start the quizbench binary");
        let pid = child.id();
        let log = Arc::new(Log::default());
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
        let mut server = Server {
            child,
            pid,
            addr: "0.0.0.0:0".parse().unwrap(),
            log,
            prefix,
            files_dir,
            _db: db,
        };
        // The address, unless the server exits first.
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            if let Some(ev) = server.log.events("listening on http://").first() {
                server.addr = ev["addr"].as_str().unwrap().parse().unwrap();
                break;
            }
            if server.exited() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn wait_healthy(&self, limit: Duration) {
        let until = Instant::now() + limit;
        loop {
            if let Ok(r) = http_get(self.addr, "/healthz") {
                if r.status == 200 {
                    return;
                }
            }
            assert!(
                Instant::now() < until,
                "server never answered /healthz; log:\n{}",
                self.log.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid as i32), signal).unwrap();
    }

    /// Live (non-zombie) child processes of the server process.
    pub fn workers(&self) -> Vec<u32> {
        children(self.pid)
    }

    /// Waits until the server has exactly `n` live workers, none of them in
    /// `not`; returns them.
    pub fn wait_workers(&self, n: usize, not: &[u32], limit: Duration) -> Vec<u32> {
        let until = Instant::now() + limit;
        loop {
            let w = self.workers();
            if w.len() == n && w.iter().all(|p| !not.contains(p)) {
                return w;
            }
            assert!(
                Instant::now() < until,
                "expected {n} workers not in {not:?}, found {w:?}; log:\n{}",
                self.log.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the server to exit; returns its exit code (None: signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<Option<i32>> {
        let until = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn metrics(&self) -> String {
        http_get(self.addr, "/metrics").expect("GET /metrics").body
    }

    pub fn runtime(&self) -> Value {
        serde_json::from_str(&http_get(self.addr, "/runtime").expect("GET /runtime").body)
            .expect("runtime JSON")
    }

    /// Logs in a seeded student; returns a bearer token.
    pub fn login(&self) -> String {
        let res = http_request(
            self.addr,
            "POST",
            "/api/v1/auth/login",
            &[("content-type", "application/json")],
            br#"{"username":"student1","password":"quizbench"}"#,
        )
        .expect("login");
        assert_eq!(res.status, 200, "login: {}", res.body);
        let v: Value = serde_json::from_str(&res.body).unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

impl Options<'_> {
    fn clone_for_spawn(&self) -> Options<'_> {
        Options {
            vars: self.vars,
            binary: self.binary,
            cpus: self.cpus,
            ready_workers: self.ready_workers,
            database_url: self.database_url,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Kill the whole tree: the workers first (their supervisor would
        // respawn them otherwise... it is killed right after), then reap.
        let mut tree = descendants(self.pid);
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGKILL);
        for pid in &tree {
            let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
        }
        let _ = self.child.wait();
        // Orphans come to this (subreaper) process: reap them.
        tree.retain(|p| *p != self.pid);
        reap(&tree, Duration::from_secs(2));
        if std::thread::panicking() {
            let lines = self.log.lines();
            let tail = lines
                .iter()
                .rev()
                .take(80)
                .rev()
                .cloned()
                .collect::<Vec<_>>();
            eprintln!("---- server log tail ----\n{}\n----", tail.join("\n"));
        }
        cleanup_redis(&self.prefix);
        let _ = std::fs::remove_dir_all(&self.files_dir);
    }
}

/// Reaps these pids if they are (or become) our children, within `limit`.
pub fn reap(pids: &[u32], limit: Duration) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let until = Instant::now() + limit;
    let mut left: Vec<u32> = pids.to_vec();
    while !left.is_empty() && Instant::now() < until {
        left.retain(|pid| {
            match waitpid(Pid::from_raw(*pid as i32), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => true,
                Ok(_) => false,
                // Not our child (or already reaped): done once it is gone.
                Err(_) => proc_state(*pid).is_some_and(|s| s != 'Z'),
            }
        });
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[allow(unsafe_code)]
fn set_affinity_on_exec(cmd: &mut Command, cpus: Vec<usize>) {
    use std::os::unix::process::CommandExt as _;
    let mut set = nix::sched::CpuSet::new();
    for c in cpus {
        set.set(c).unwrap();
    }
    // SAFETY: the closure runs in the forked child before exec and only
    // makes the sched_setaffinity system call (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
}

// ---------------------------------------------------------------- /proc

/// The state letter of a process (R, S, Z, ...), None when it is gone.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// CPU time (user + system, own + reaped children) of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let f = stat_fields(pid)?;
    // After ')': state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let ticks: u64 = (11..=14)
        .filter_map(|i| f.get(i)?.parse::<u64>().ok())
        .sum();
    Some(ticks as f64 / 100.0)
}

/// Live (non-zombie) children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(f) = stat_fields(child) {
            if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(pid) && f[0] != "Z" {
                out.push(child);
            }
        }
    }
    out.sort_unstable();
    out
}

/// The process and all its live descendants.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        all.extend(children(all[i]));
        i += 1;
    }
    all
}

/// Names of the threads of a process (/proc/PID/task/*/comm).
pub fn thread_names(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Ok(comm) = std::fs::read_to_string(t.path().join("comm")) {
                names.push(comm.trim().to_string());
            }
        }
    }
    names
}

/// Inodes of the sockets a process holds.
pub fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in dir.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                    out.insert(inode.parse().unwrap());
                }
            }
        }
    }
    out
}

/// Inodes of the sockets listening on `port` (from /proc/net/tcp).
pub fn listening_inodes(port: u16) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let local_port = f[1]
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                out.insert(f[9].parse().unwrap());
            }
        }
    }
    out
}

/// The inode of the file a process executes (/proc/PID/exe).
pub fn exe_inode(pid: u32) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/{pid}/exe"))
        .ok()
        .map(|m| m.ino())
}

// ---------------------------------------------------------------- HTTP

/// A response read by the blocking client.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Response> {
    http_request(addr, "GET", path, &[], b"")
}

/// One request on a new connection (blocking, 30 s timeout).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("incomplete response ({} bytes)", raw.len()),
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = String::from_utf8_lossy(&raw[end + 4..]).to_string();
    Some(Response { status, body })
}

/// Sum of a Prometheus series over its labels, filtered by label text.
pub fn metric_sum(text: &str, name: &str, label_filter: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
        .filter(|l| l.contains(label_filter))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
