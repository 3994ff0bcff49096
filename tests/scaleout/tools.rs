//! The processes a scale-out test runs besides quizbench: a private
//! PgBouncer and HAProxy, configured from the project's deploy/ files, and
//! the `quizbench` commands themselves. Every process is killed, and every
//! temporary directory removed, when its guard drops.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions as _, Executor as _, PgConnection};

use crate::common::{
    admin_url, cleanup_redis, redis_prefix, redis_url, spawn_logged, unique_name, wait_until, Log,
    BIN,
};

const INSTALL: &str = "install them (Debian: apt-get install haproxy pgbouncer; scripts/test.sh \
     does when it runs as root), or set QB_SKIP_SCALEOUT=1 to skip the scale-out tests";

/// The path of `name` (PATH, then /usr/sbin), or None when the scale-out
/// tests are skipped; panics when it is missing and not skipped.
pub fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    match found {
        Some(p) => Some(p),
        None if std::env::var("QB_SKIP_SCALEOUT").as_deref() == Ok("1") => {
            eprintln!("{name} not found; skipped (QB_SKIP_SCALEOUT=1)");
            None
        }
        None => panic!("{name} not found: {INSTALL}"),
    }
}

/// A free TCP port on 127.0.0.1 (released before use: a short race).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// This process's owner is root (the owner of its /proc entry).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The repository's deploy/ directory.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// A temporary directory, removed with the guard; readable by everyone
/// (PgBouncer drops root privileges before it reads its files again).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(kind: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique_name(&format!("qb-{kind}-")));
        std::fs::create_dir_all(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Redis key prefix of this suite; its keys are deleted when the guard drops.
pub struct RedisKeys(pub String);

impl RedisKeys {
    pub fn new() -> RedisKeys {
        RedisKeys(redis_prefix())
    }
}

impl Drop for RedisKeys {
    fn drop(&mut self) {
        cleanup_redis(&redis_url(), &self.0);
    }
}

/// A child process killed (SIGKILL) and reaped when the guard drops.
pub struct Proc {
    pub child: Child,
    pub log: Arc<Log>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let (child, log) = spawn_logged(cmd, 10_000);
        Proc { child, log }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (up to `limit`) for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let every = Duration::from_millis(50);
        let child = &mut self.child;
        wait_until(
            limit,
            every,
            &self.log,
            || "still running".into(),
            || child.try_wait().unwrap(),
        )
    }

    /// Waits (up to `limit`) until `port` on 127.0.0.1 accepts connections.
    pub fn wait_port(&mut self, port: u16, limit: Duration) {
        let until = Instant::now() + limit;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "exited ({status}) before listening; log:\n{}",
                    self.log.dump()
                );
            }
            assert!(
                Instant::now() < until,
                "not listening on {port} after {limit:?}; log:\n{}",
                self.log.dump()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private PgBouncer in front of the test PostgreSQL, configured by
/// deploy/pgbouncer/render-config.sh (session pooling, `*` database).
pub struct Bouncer {
    pub port: u16,
    pub pool_size: usize,
    pub user: String,
    proc: Proc,
    _dir: TempDir,
}

impl Bouncer {
    pub fn start(pool_size: usize) -> Option<Bouncer> {
        let binary = tool("pgbouncer")?;
        let upstream: PgConnectOptions = admin_url().parse().unwrap();
        let user = upstream.get_username().to_string();
        let dir = TempDir::new("pgbouncer");
        let port = free_port();
        let rendered = Command::new("sh")
            .arg(deploy_dir().join("pgbouncer/render-config.sh"))
            .arg(&dir.0)
            .envs([
                ("PGBOUNCER_LISTEN_ADDR", "127.0.0.1".to_string()),
                ("PGBOUNCER_LISTEN_PORT", port.to_string()),
                ("PGBOUNCER_UPSTREAM_HOST", upstream.get_host().to_string()),
                ("PGBOUNCER_UPSTREAM_PORT", upstream.get_port().to_string()),
                ("PGBOUNCER_POOL_SIZE", pool_size.to_string()),
                ("PGBOUNCER_USERS", user.clone()),
            ])
            .status()
            .unwrap();
        assert!(rendered.success(), "render-config.sh failed");
        let mut cmd = Command::new(binary);
        // PgBouncer refuses to run as root: it drops to `nobody` then.
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        cmd.arg(dir.0.join("pgbouncer.ini"));
        let mut proc = Proc::spawn(&mut cmd);
        proc.wait_port(port, Duration::from_secs(10));
        Some(Bouncer {
            port,
            pool_size,
            user,
            proc,
            _dir: dir,
        })
    }

    /// DATABASE_URL of `database` through this PgBouncer.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    /// A connection to the admin console (database `pgbouncer`).
    pub async fn admin(&self) -> PgConnection {
        let opts: PgConnectOptions = self.url("pgbouncer").parse().unwrap();
        opts.connect().await.unwrap()
    }

    /// Server connections PgBouncer holds for `database` (SHOW SERVERS)
    /// and clients waiting for one (SHOW POOLS cl_waiting).
    pub async fn usage(admin: &mut PgConnection, database: &str) -> (usize, usize) {
        let servers = show(admin, "SHOW SERVERS")
            .await
            .iter()
            .filter(|r| r["database"] == database)
            .count();
        let waiting = show(admin, "SHOW POOLS")
            .await
            .iter()
            .filter(|r| r["database"] == database)
            .map(|r| r["cl_waiting"].parse::<usize>().unwrap_or(0))
            .sum();
        (servers, waiting)
    }

    pub fn log(&self) -> String {
        self.proc.log.dump()
    }
}

/// The rows of an admin-console command, every column as text.
pub async fn show(admin: &mut PgConnection, command: &str) -> Vec<HashMap<String, String>> {
    use sqlx::{Column as _, Row as _};
    let rows = admin.fetch_all(command).await.unwrap();
    rows.iter()
        .map(|row| {
            row.columns()
                .iter()
                .map(|c| {
                    let v: Option<String> = row.try_get_unchecked(c.ordinal()).unwrap_or(None);
                    (c.name().to_string(), v.unwrap_or_default())
                })
                .collect()
        })
        .collect()
}

/// HAProxy with deploy/haproxy/haproxy.cfg and a backend of `servers`
/// (name, port) on 127.0.0.1.
pub struct Balancer {
    pub port: u16,
    _proc: Proc,
    _dir: TempDir,
}

impl Balancer {
    pub fn start(servers: &[(String, u16)]) -> Option<Balancer> {
        let binary = tool("haproxy")?;
        let dir = TempDir::new("haproxy");
        let backend: String = servers
            .iter()
            .map(|(name, port)| format!("\tserver {name} 127.0.0.1:{port}\n"))
            .collect();
        let servers_cfg = dir.0.join("servers.cfg");
        std::fs::write(&servers_cfg, format!("backend app\n{backend}")).unwrap();
        let port = free_port();
        let mut cmd = Command::new(binary);
        cmd.arg("-db")
            .arg("-f")
            .arg(deploy_dir().join("haproxy/haproxy.cfg"))
            .arg("-f")
            .arg(&servers_cfg)
            .env("HAPROXY_BIND", format!("127.0.0.1:{port}"));
        let mut proc = Proc::spawn(&mut cmd);
        proc.wait_port(port, Duration::from_secs(10));
        Some(Balancer {
            port,
            _proc: proc,
            _dir: dir,
        })
    }
}

/// `quizbench ARGS` with `env` (and PATH, HOME) only, run to completion.
pub fn quizbench(args: &[&str], env: &HashMap<String, String>) -> Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "HOME"))
        .env("LOG_FORMAT", "json")
        .envs(env)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The seed size of the tests, as `quizbench seed` arguments.
pub fn seed_args() -> Vec<String> {
    let s = crate::common::TEST_SEED;
    [
        ("--organizations", s.organizations),
        ("--cohorts-per-org", s.cohorts_per_org),
        ("--students-per-cohort", s.students_per_cohort),
        ("--quizzes", s.quizzes),
        ("--attempts", s.attempts),
    ]
    .iter()
    .flat_map(|(flag, n)| [flag.to_string(), n.to_string()])
    .collect()
}
