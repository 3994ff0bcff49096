//! Starts the real `quizbench` binary as a child process, with its own
//! database (copied from a migrated, seeded template) and Redis prefix,
//! reads its JSON log, and inspects its processes, threads and sockets
//! from outside through /proc. The server is killed when the guard drops.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

pub use crate::common::BIN;
use crate::common::{
    cleanup_redis, redis_prefix, redis_url, serve_command, server_env, spawn_logged, unique_name,
    wait_listening, wait_until, Log, TestDb,
};

/// A temporary file or directory, removed when the guard drops (also when
/// the test fails).
pub struct TempPath(pub std::path::PathBuf);

impl TempPath {
    pub fn new(kind: &str) -> TempPath {
        TempPath(std::env::temp_dir().join(unique_name(&format!("qb-{kind}-"))))
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

/// Orphans of the servers (workers whose supervisor was killed) are
/// re-parented to this test process, which reaps them, instead of to an
/// init that might not.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = nix::sys::prctl::set_child_subreaper(true);
    });
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

/// Variables every test server of this suite gets (small pools, a short
/// graceful timeout); the test's own override them.
const DEFAULTS: &[(&str, &str)] = &[
    ("CPU_POOL_THREADS", "1"),
    ("DB_POOL_MAX", "4"),
    ("REDIS_POOL_MAX", "4"),
    ("GRACEFUL_TIMEOUT_SECS", "5"),
];

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
        let prefix = redis_prefix();
        let files_dir = std::env::temp_dir().join(unique_name("qb-proc-files-"));
        let env = server_env(
            &db_url,
            &redis_url(),
            &prefix,
            &files_dir,
            DEFAULTS,
            opts.vars,
        );
        let mut cmd = serve_command(opts.binary.map_or(BIN.as_ref(), |p| p.as_os_str()), &env);
        if let Some(cpus) = opts.cpus {
            set_affinity_on_exec(&mut cmd, cpus.to_vec());
        }
        let (mut child, log) = spawn_logged(&mut cmd, usize::MAX);
        // The address, unless the server exits first.
        let addr = wait_listening(&mut child, &log, Duration::from_secs(15))
            .unwrap_or_else(|| "0.0.0.0:0".parse().unwrap());
        Server {
            pid: child.id(),
            child,
            addr,
            log,
            prefix,
            files_dir,
            _db: db,
        }
    }

    pub fn wait_healthy(&self, limit: Duration) {
        let every = Duration::from_millis(20);
        let failure = || "server never answered /healthz".to_string();
        wait_until(limit, every, &self.log, failure, || {
            let r = http_get(self.addr, "/healthz").ok()?;
            (r.status == 200).then_some(())
        });
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
        let every = Duration::from_millis(20);
        let failure = || {
            format!(
                "expected {n} workers not in {not:?}, found {:?}",
                self.workers()
            )
        };
        wait_until(limit, every, &self.log, failure, || {
            let w = self.workers();
            (w.len() == n && w.iter().all(|p| !not.contains(p))).then_some(w)
        })
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

    pub fn metrics(&self) -> Scrape {
        Scrape::parse(&http_get(self.addr, "/metrics").expect("GET /metrics").body)
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
            HTTP_TIMEOUT,
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
        cleanup_redis(&redis_url(), &self.prefix);
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

pub use loadtests::generator::http::blocking::{http_request, Response};
pub use loadtests::prometheus::Scrape;

/// Bound on one blocking request of these tests.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A GET on a new connection (blocking, 30 s timeout).
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<Response> {
    loadtests::generator::http::blocking::http_get(addr, path, HTTP_TIMEOUT)
}
