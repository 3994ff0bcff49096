//! The private PostgreSQL and Redis an experiment runs against
//! ([`PrivateServices`]): a throwaway cluster (`initdb` into a temporary
//! directory, as the `postgres` system user when the runner is root) and a
//! Redis without persistence, each on a free port, started with the
//! experiment's settings (`max_connections`, `shared_buffers`, `work_mem`)
//! inside the services' envelope (one cgroup for both: CPU set and memory
//! limit), and stopped and removed at the end. Never the machine's shared
//! instances.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::cgroup::Group;
use super::limits::{confine, AppliedLimit, Limits};
use super::server::free_port;
use crate::subprocess::tie_to_quizload;

/// `[services]` of an experiment file: the runner starts a private
/// PostgreSQL and Redis with these settings inside this envelope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicesSpec {
    /// The envelope of both together: `cpus` (e.g. `1`), `quota`,
    /// `memory` (`1G`), as in `[limits]`.
    #[serde(flatten)]
    limits: Limits,
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    #[serde(default = "default_shared_buffers")]
    pub shared_buffers: String,
    #[serde(default = "default_work_mem")]
    pub work_mem: String,
}

impl ServicesSpec {
    /// Their envelope.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

fn default_max_connections() -> u32 {
    100
}
fn default_shared_buffers() -> String {
    "128MB".into()
}
fn default_work_mem() -> String {
    "4MB".into()
}

/// Running private services.
pub struct PrivateServices {
    dir: PathBuf,
    pub pg_port: u16,
    pub redis_port: u16,
    pg: Child,
    redis: Child,
    pub applied: AppliedLimit,
    /// `postgres --version` and `redis-server --version`.
    pub versions: (String, String),
    _group: Option<Group>,
}

pub(super) fn pg_bin_dir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    dirs.sort();
    dirs.reverse();
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    dirs.into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("postgres").is_file())
        .context(
            "initdb and postgres not found (install PostgreSQL, e.g. apt-get install postgresql)",
        )
}

fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// uid and gid of a system user, from /etc/passwd.
fn system_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

fn version_of(bin: &Path) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Starts `script`; `on_orphan`: the signal the service gets if the runner
/// dies without stopping it.
fn spawn_script(script: &str, log: &Path, on_orphan: Signal) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    tie_to_quizload(&mut cmd, on_orphan);
    cmd.spawn().context("cannot start /bin/sh")
}

impl PrivateServices {
    /// Initialises and starts both services inside `spec`'s envelope;
    /// logs go to `log_dir`. Refuses (see [`confine`]) when the envelope
    /// cannot be applied and `allow_unconfined` is not set.
    pub fn start(
        spec: &ServicesSpec,
        log_dir: &Path,
        allow_unconfined: bool,
    ) -> anyhow::Result<Self> {
        let bin = pg_bin_dir()?;
        let dir = tempfile::Builder::new()
            .prefix("quizload-services-")
            .tempdir()?
            .keep();
        let run_as = if running_as_root() {
            let (uid, gid) = system_user("postgres")
                .context("running as root: a `postgres` system user is needed to run PostgreSQL")?;
            nix::unistd::chown(
                &dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )?;
            Some("postgres")
        } else {
            None
        };
        let data = dir.join("data");
        let initdb = Launchable::new(&[
            bin.join("initdb").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--auth=trust".into(),
            "-E".into(),
            "UTF8".into(),
            "--no-sync".into(),
        ]);
        let out = initdb.output(run_as)?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let pg_port = free_port()?;
        let name = format!("quizload-{}-services", std::process::id());
        let pg_args: Vec<String> = vec![
            bin.join("postgres").display().to_string(),
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            pg_port.to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            format!("unix_socket_directories={}", dir.display()),
            "-c".into(),
            format!("max_connections={}", spec.max_connections),
            "-c".into(),
            format!("shared_buffers={}", spec.shared_buffers),
            "-c".into(),
            format!("work_mem={}", spec.work_mem),
            "-c".into(),
            "fsync=off".into(),
            "-c".into(),
            "logging_collector=off".into(),
        ];
        let launch = confine(
            spec.limits(),
            &name,
            "private PostgreSQL and Redis",
            &pg_args,
            run_as,
            allow_unconfined,
        )?;
        // SIGQUIT: PostgreSQL's immediate shutdown (no checkpoint: the
        // data is thrown away).
        let pg = spawn_script(
            &launch.script,
            &log_dir.join("postgres.log"),
            Signal::SIGQUIT,
        )?;
        let redis_port = free_port()?;
        let redis_bin = find_bin("redis-server")
            .context("redis-server not found (install Redis, e.g. apt-get install redis-server)")?;
        let redis_args: Vec<String> = vec![
            redis_bin.display().to_string(),
            "--port".into(),
            redis_port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.display().to_string(),
        ];
        let redis = spawn_script(
            &launch.script_for(&redis_args, run_as),
            &log_dir.join("redis.log"),
            Signal::SIGTERM,
        )?;
        let mut s = Self {
            versions: (version_of(&bin.join("postgres")), version_of(&redis_bin)),
            dir,
            pg_port,
            redis_port,
            pg,
            redis,
            applied: launch.applied,
            _group: launch.group,
        };
        s.wait_ready(&bin, run_as)?;
        Ok(s)
    }

    fn wait_ready(&mut self, bin: &Path, run_as: Option<&str>) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let redis: SocketAddr = ([127, 0, 0, 1], self.redis_port).into();
        loop {
            if let Some(st) = self.pg.try_wait()? {
                bail!("private PostgreSQL exited during start-up ({st}); see postgres.log");
            }
            if let Some(st) = self.redis.try_wait()? {
                bail!("private Redis exited during start-up ({st}); see redis.log");
            }
            let ready = Launchable::new(&[
                bin.join("pg_isready").display().to_string(),
                "-q".into(),
                "-h".into(),
                "127.0.0.1".into(),
                "-p".into(),
                self.pg_port.to_string(),
            ])
            .output(run_as)
            .is_ok_and(|o| o.status.success());
            if ready && TcpStream::connect_timeout(&redis, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("private PostgreSQL or Redis not ready within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `DATABASE_URL` and `REDIS_URL` of the services.
    pub fn env(&self) -> [(String, String); 2] {
        [
            (
                "DATABASE_URL".into(),
                format!("postgres://postgres@127.0.0.1:{}/quizbench", self.pg_port),
            ),
            (
                "REDIS_URL".into(),
                format!("redis://127.0.0.1:{}", self.redis_port),
            ),
        ]
    }

    /// The postmaster's and Redis's pids (for sampling and affinity).
    pub fn pids(&self) -> (u32, u32) {
        (self.pg.id(), self.redis.id())
    }
}

/// An executable on PATH, or among PostgreSQL's binaries.
pub fn find_bin(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).find(|d| d.join(name).is_file()))
        .map(|d| d.join(name))
        .or_else(|| {
            pg_bin_dir()
                .ok()
                .map(|d| d.join(name))
                .filter(|p| p.is_file())
        })
}

/// A command run to completion, as another user when asked.
struct Launchable(Vec<String>);

impl Launchable {
    fn new(args: &[String]) -> Self {
        Self(args.to_vec())
    }

    fn output(&self, run_as: Option<&str>) -> anyhow::Result<std::process::Output> {
        let mut cmd = Command::new(&self.0[0]);
        cmd.args(&self.0[1..]).stdin(Stdio::null());
        if let Some(user) = run_as {
            use std::os::unix::process::CommandExt as _;
            let (uid, gid) = system_user(user).context("no such user")?;
            cmd.uid(uid).gid(gid);
        }
        cmd.output()
            .with_context(|| format!("cannot run {}", self.0[0]))
    }
}

/// Sends `signal` to `child` and waits up to `grace` for it to exit, then
/// kills it (SIGKILL) and reaps it. Also the fault suite's way to stop its
/// private PostgreSQL.
pub fn stop_child(child: &mut Child, signal: Signal, grace: Duration) {
    let _ = kill(Pid::from_raw(child.id() as i32), signal);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        // Fast shutdown: sessions are terminated.
        let grace = Duration::from_secs(15);
        stop_child(&mut self.pg, Signal::SIGINT, grace);
        stop_child(&mut self.redis, Signal::SIGTERM, grace);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[services]` takes the envelope's keys beside its own, and still
    /// refuses a key it does not know.
    #[test]
    fn services_take_the_envelope_and_refuse_unknown_keys() {
        let s: ServicesSpec =
            toml::from_str("cpus = \"1\"\nquota = 1\nmemory = \"1G\"\nmax_connections = 300")
                .unwrap();
        let want = Limits {
            cpus: Some("1".into()),
            quota: Some(1.0),
            memory: Some("1G".into()),
        };
        assert_eq!((s.limits(), s.max_connections), (&want, 300));
        assert_eq!(s.work_mem, "4MB");
        let echo: ServicesSpec = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(echo, s);
        let err = toml::from_str::<ServicesSpec>("cpu = \"1\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `cpu`"), "{err}");
    }
}
