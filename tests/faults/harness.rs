//! What the fault suite needs around the real binary: a server child
//! process (its JSON log drained and kept), databases copied from a seeded
//! template on the shared PostgreSQL, private PostgreSQL and Redis
//! instances that a case may stop, restart or pause, a fault-injecting TCP
//! proxy, raw-socket requests and a Prometheus text reader.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loadtests::experiment::services::stop_child;
use loadtests::prometheus::Scrape;
use nix::sys::signal::Signal;
use serde_json::Value;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::common::ServeOptions;
pub use crate::common::{
    answers_for, assert_error, migrate_and_seed, redis_url, scalar, vars, Expect, HttpApi, Served,
    TestDb,
};
pub use reqwest::Method;

/// Fault cases run one at a time: they measure mechanisms on 2 shared
/// cores and some of them stop dependencies.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// `prefix` and 12 random hex digits (short: a username has at most 32
/// characters).
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

// ------------------------------------------------------------------ server

/// A case's start: the suite's turn ([`serial`]), a database copied from
/// the seeded template, and a server on it with `vars`. Bind all three
/// (`let (_serial, db, server) = …`): they are released in reverse.
pub async fn serial_server(
    vars: &[(&str, &str)],
) -> (tokio::sync::MutexGuard<'static, ()>, TestDb, Server) {
    let turn = serial().await;
    let db = TestDb::new().await;
    let server = Server::start(&db.url, &redis_url(), vars);
    (turn, db, server)
}

/// Variables every server of this suite gets: one process, one thread, no
/// connection budget, a short graceful timeout and the test hooks.
const DEFAULTS: &[(&str, &str)] = &[
    ("PROCESSES", "1"),
    ("THREADS", "1"),
    ("ARGON2_PARALLELISM", "1"),
    ("CPU_POOL_THREADS", "1"),
    ("GRACEFUL_TIMEOUT_SECS", "1"),
    ("CONNECTION_BUDGET", "off"),
    ("QUIZBENCH_TEST_HOOKS", "1"),
];

/// The real binary as a child process (see [`Served`]).
pub struct Server(Served);

impl std::ops::Deref for Server {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.0
    }
}

impl std::ops::DerefMut for Server {
    fn deref_mut(&mut self) -> &mut Served {
        &mut self.0
    }
}

impl Server {
    /// Starts `quizbench serve` on 127.0.0.1:0 with the suite's defaults,
    /// then `vars` (which win). Waits for its "listening on" line.
    pub fn start(database_url: &str, redis_url: &str, vars: &[(&str, &str)]) -> Server {
        Server(Served::start(
            database_url,
            redis_url,
            ServeOptions {
                defaults: DEFAULTS,
                vars,
                // Keep the tail only: a flood case logs a lot.
                log_cap: 20_000,
                timeout: Some(CLIENT_TIMEOUT),
            },
        ))
    }

    /// This server's Prometheus text.
    pub async fn metrics(&self) -> Metrics {
        let text = self.get_text("/metrics", None).await;
        Metrics(Scrape::parse(&text))
    }

    /// Asserts that nothing so far was answered with a 500.
    pub async fn assert_no_500s(&self) {
        let errors = self.error_lines().join("\n");
        assert_eq!(self.metrics().await.status(500), 0, "500s: log {errors}");
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

/// What a request sent in a task of its own saw.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: bool,
    /// Whether it carried `Idempotent-Replayed`.
    pub replayed: bool,
    pub body: String,
    /// When the response head arrived.
    pub at: Instant,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// Sends `req` in a task of its own (requests that must be in flight at
/// once).
pub fn spawn_request(req: reqwest::RequestBuilder) -> tokio::task::JoinHandle<Answer> {
    tokio::spawn(async move {
        let res = req.send().await.unwrap();
        let at = Instant::now();
        let has = |h: &str| res.headers().contains_key(h);
        let (retry_after, replayed) = (has("retry-after"), has("idempotent-replayed"));
        Answer {
            status: res.status().as_u16(),
            retry_after,
            replayed,
            body: res.text().await.unwrap(),
            at,
        }
    })
}

/// Every request's bound (a hung case fails, not hangs).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A client with a bound on every request (a hung case fails, not hangs).
pub fn client() -> reqwest::Client {
    crate::common::client(Some(CLIENT_TIMEOUT))
}

/// A `/metrics` scrape, summed over every worker's series.
pub struct Metrics(pub Scrape);

impl std::ops::Deref for Metrics {
    type Target = Scrape;

    fn deref(&self) -> &Scrape {
        &self.0
    }
}

impl Metrics {
    /// Requests answered with `status` (all routes).
    pub fn status(&self, status: u16) -> u64 {
        self.sum(
            "quizbench_http_requests_total",
            &[("status", &status.to_string())],
        ) as u64
    }
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
            stop_child(&mut child, Signal::SIGINT, Duration::from_secs(15));
        }
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Immediate shutdown: this is the end of a test.
            stop_child(&mut child, Signal::SIGQUIT, Duration::from_secs(5));
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

/// Copies bytes from `from` to `to` while the proxy is not hung; with
/// `responses`, stops at the first bytes while responses are dropped.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mode: &AtomicU8,
    responses: bool,
) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_unhung(mode).await;
        if responses && mode.load(Ordering::SeqCst) == DROP_RESPONSES {
            // The work is done upstream; the client never hears of it.
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
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
    let up = pump(&mut cr, &mut sw, &mode, false);
    let down = pump(&mut sr, &mut cw, &mode, true);
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
