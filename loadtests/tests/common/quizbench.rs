//! The real quizbench server, for the tests that load it over HTTP: its
//! binary (built by cargo when the workspace has not built it yet, or
//! `QUIZBENCH_BIN`), a database of its own seeded with a small data set,
//! and a Redis key prefix of its own. Dropping it stops the server, drops
//! the database and deletes the prefix's keys, also when a test fails.
//! The database is created by `quizbench seed` and dropped with `psql`;
//! the keys are deleted with `redis-cli`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadtests::generator::http::blocking::http_get;

/// Students in the seeded data set (one organization, one cohort).
pub const STUDENTS: u32 = 5;

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The admin URL with its database name replaced by `name`.
fn db_url(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("TEST_DATABASE_URL is a URL");
    url.set_path(name);
    url.into()
}

/// The `quizbench` binary: `QUIZBENCH_BIN`, else the workspace's debug
/// build next to `quizload`, built first (a no-op when it is fresh).
fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("QUIZBENCH_BIN") {
        return PathBuf::from(p);
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "quizbench", "--bin", "quizbench"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build -p quizbench failed");
    let quizload = PathBuf::from(env!("CARGO_BIN_EXE_quizload"));
    quizload.with_file_name("quizbench")
}

/// What a test server leaves behind, removed when dropped: its database
/// and its Redis keys.
struct Leftovers {
    db: String,
    prefix: String,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let dropped = Command::new("psql")
            .arg(admin_url())
            .args(["-q", "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.db
            ))
            .status();
        if !matches!(dropped, Ok(s) if s.success()) {
            eprintln!("could not drop the test database {}", self.db);
        }
        let keys = Command::new("redis-cli")
            .args(["-u", &redis_url(), "--scan", "--pattern"])
            .arg(format!("{}*", self.prefix))
            .output();
        if let Ok(out) = keys {
            let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|k| k.starts_with(&self.prefix))
                .map(str::to_string)
                .collect();
            for chunk in keys.chunks(100) {
                let _ = Command::new("redis-cli")
                    .args(["-u", &redis_url(), "DEL"])
                    .args(chunk)
                    .output();
            }
        }
    }
}

/// A running quizbench server with its own database and key prefix.
pub struct Quizbench {
    pub addr: SocketAddr,
    child: Child,
    _files: tempfile::TempDir,
    // Dropped after the server has stopped (fields drop after `drop`).
    _leftovers: Leftovers,
}

impl Quizbench {
    /// Seeds a fresh database and starts the server on a free port, with
    /// cheap argon2 (the seeded password is still `quizbench`).
    pub fn start() -> Self {
        let bin = binary();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("quizload_test_{}_{nanos}", std::process::id());
        let leftovers = Leftovers {
            db: name.clone(),
            prefix: format!("{name}:"),
        };
        let files = tempfile::tempdir().unwrap();
        let env = [
            ("DATABASE_URL", db_url(&name)),
            ("REDIS_URL", redis_url()),
            ("REDIS_PREFIX", leftovers.prefix.clone()),
            ("FILES_DIR", files.path().display().to_string()),
            ("ARGON2_MEMORY_KIB", "64".into()),
            ("ARGON2_ITERATIONS", "1".into()),
            ("GRADE_MODEL_MB", "1".into()),
            ("BIND", "127.0.0.1:0".into()),
            ("LOG_FORMAT", "text".into()),
        ];
        let seeded = Command::new(&bin)
            .args(["seed", "--organizations", "1", "--cohorts-per-org", "1"])
            .args(["--students-per-cohort", &STUDENTS.to_string()])
            .args(["--quizzes", "2", "--attempts", "0"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("quizbench seed runs");
        assert!(
            seeded.status.success(),
            "quizbench seed failed: {}",
            String::from_utf8_lossy(&seeded.stderr)
        );
        let mut child = Command::new(&bin)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("quizbench serve starts");
        let (tx, rx) = mpsc::channel::<String>();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Quizbench {
            addr: "127.0.0.1:0".parse().unwrap(),
            child,
            _files: files,
            _leftovers: leftovers,
        };
        let until = Instant::now() + Duration::from_secs(60);
        let mut log = Vec::new();
        server.addr = loop {
            let left = until.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("quizbench did not listen:\n{}", log.join("\n")));
            if let Some(addr) = line
                .split("listening on http://")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.trim_end_matches(['"', ',']).parse().ok())
            {
                break addr;
            }
            log.push(line);
        };
        while !matches!(
            http_get(server.addr, "/readyz", Duration::from_secs(2)).map(|r| r.status),
            Ok(200)
        ) {
            assert!(Instant::now() < until, "quizbench never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// The server's base URL, `http://ADDR`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Quizbench {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let until = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
