//! The server under test as a process: run the release binary once (the
//! data reset), start it with a configuration's environment inside its
//! envelope ([`super::limits`]: CPU set, quota, memory), wait until
//! `/readyz` answers, and stop it
//! with its workers. The runner builds nothing: it runs the binary it is
//! given. Measuring the server is the sampler's and the scrape's business.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cgroup::{Group, MemoryEvents};
use super::limits::{confine, AppliedLimit, Limits};
use super::sampler::process_tree;
use crate::generator::http::blocking::http_get;
use crate::subprocess::tie_to_quizload;

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub binary: PathBuf,
    /// `--profile NAME` for the binary, if any.
    pub profile: Option<String>,
    /// Environment on top of the inherited one (includes `BIND`).
    pub env: BTreeMap<String, String>,
    pub limit: Limits,
    /// Run without a limit that cannot be applied (recorded) instead of
    /// refusing.
    pub allow_unconfined: bool,
    /// Where the server's stdout/stderr go.
    pub log: PathBuf,
    /// Working directory (the repository root, where `config/` lives).
    pub workdir: PathBuf,
}

/// A running server.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub pid: u32,
    pub applied: AppliedLimit,
    group: Option<Group>,
    /// The log, and its length before this start: what this start wrote is
    /// shortened when the server is dropped ([`elide_log_middle`]).
    log: PathBuf,
    log_from: u64,
}

/// Bytes kept at each end of one server start's log: a run at debug level
/// or with `ACCESS_LOG` writes a line per request, gigabytes over a sweep,
/// and the results folder is meant to be committed.
const LOG_KEEP_EACH_END: u64 = 512 * 1024;

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl ServerProcess {
    /// Runs `binary [--profile P] ARGS` to completion with the spec's
    /// environment (used for `seed`).
    pub fn run_once(spec: &ServerSpec, args: &[&str]) -> anyhow::Result<()> {
        let mut cmd = Command::new(&spec.binary);
        if let Some(p) = &spec.profile {
            cmd.arg("--profile").arg(p);
        }
        cmd.args(args).envs(&spec.env).current_dir(&spec.workdir);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)?;
        cmd.stdout(log.try_clone()?).stderr(log);
        tie_to_quizload(&mut cmd, Signal::SIGTERM);
        let status = cmd
            .status()
            .with_context(|| format!("cannot run {}", spec.binary.display()))?;
        if !status.success() {
            bail!(
                "`{} {}` failed ({status}); see {}",
                spec.binary.display(),
                args.join(" "),
                spec.log.display()
            );
        }
        Ok(())
    }

    /// Starts `binary [--profile P] serve` inside the CPU limit and waits
    /// until `GET /readyz` answers 200 (up to `ready_timeout`).
    pub fn start(
        spec: &ServerSpec,
        addr: SocketAddr,
        ready_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let name = format!("quizload-{}-{}", std::process::id(), addr.port());
        let mut server_args = vec![spec.binary.display().to_string()];
        if let Some(p) = &spec.profile {
            server_args.push("--profile".into());
            server_args.push(p.clone());
        }
        server_args.push("serve".into());
        let launch = confine(
            &spec.limit,
            &name,
            "server under test",
            &server_args,
            None,
            spec.allow_unconfined,
        )?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("cannot open {}", spec.log.display()))?;
        let log_from = log.metadata()?.len();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&launch.script)
            .envs(&spec.env)
            .current_dir(&spec.workdir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        // Its own process group; a runner killed outright stops it as a
        // deployment would.
        tie_to_quizload(&mut cmd, Signal::SIGTERM);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", spec.binary.display()))?;
        let pid = child.id();
        let mut server = Self {
            child,
            pid,
            applied: launch.applied,
            group: launch.group,
            log: spec.log.clone(),
            log_from,
        };
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "server exited during start-up ({status}); see {}",
                    spec.log.display()
                );
            }
            if http_get(addr, "/readyz", Duration::from_secs(2)).is_ok_and(|r| r.status == 200) {
                return Ok(server);
            }
            if Instant::now() >= deadline {
                server.stop(Duration::from_secs(5));
                bail!(
                    "server not ready on {addr} within {ready_timeout:?}; see {}",
                    spec.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The memory counters of the server's cgroup (none without one).
    pub fn memory_events(&self) -> MemoryEvents {
        self.group
            .as_ref()
            .map(Group::memory_events)
            .unwrap_or_default()
    }

    /// SIGTERM, then SIGKILL after `grace`; waits for the exit.
    pub fn stop(&mut self, grace: Duration) {
        let pid = Pid::from_raw(self.pid as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in process_tree(self.pid) {
            let _ = kill(Pid::from_raw(p as i32), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(Duration::from_secs(5));
        }
        if let Err(e) = elide_log_middle(&self.log, self.log_from, LOG_KEEP_EACH_END) {
            eprintln!("quizload: cannot shorten {}: {e}", self.log.display());
        }
    }
}

/// Shortens what `path` holds after byte `from` to its first and last
/// `keep` bytes, cut at line ends, with a line saying how much was left
/// out; a shorter part is left as it is.
fn elide_log_middle(path: &Path, from: u64, keep: u64) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len.saturating_sub(from) <= 2 * keep + 200 {
        return Ok(());
    }
    let mut head = vec![0; keep as usize];
    file.seek(SeekFrom::Start(from))?;
    file.read_exact(&mut head)?;
    let head_line_end = head.iter().rposition(|&b| b == b'\n');
    let head_end = from + head_line_end.map_or(keep, |i| i as u64 + 1);
    let mut tail = Vec::with_capacity(keep as usize);
    file.seek(SeekFrom::Start(len - keep))?;
    file.read_to_end(&mut tail)?;
    let skip = tail.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
    let left_out = len - keep + skip as u64 - head_end;
    file.set_len(head_end)?;
    file.seek(SeekFrom::Start(head_end))?;
    // A head that is one unbroken line is cut where it is: the marker
    // still gets a line of its own.
    let newline = if head_line_end.is_none() { "\n" } else { "" };
    writeln!(
        file,
        "{newline}[quizload: {left_out} bytes of this start's log left out; its first and last {keep} bytes are kept]"
    )?;
    file.write_all(&tail[skip..])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(from: usize, to: usize) -> String {
        (from..to).map(|i| format!("line {i:06}\n")).collect()
    }

    #[test]
    fn a_long_start_keeps_its_ends_at_line_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        // An earlier start's lines stay whole; this start's 10,000 lines
        // of 12 bytes keep about 1,000 bytes at each end.
        let earlier = lines(0, 5);
        std::fs::write(&path, format!("{earlier}{}", lines(100, 10_100))).unwrap();
        elide_log_middle(&path, earlier.len() as u64, 1000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(&kept[..5], earlier.lines().collect::<Vec<_>>());
        assert_eq!(kept[5], "line 000100");
        let marker = kept
            .iter()
            .position(|l| l.starts_with("[quizload:"))
            .unwrap();
        assert_eq!(
            kept[marker - 1],
            "line 000182",
            "83 whole lines of the head"
        );
        assert_eq!(kept[marker + 1], "line 010017");
        assert_eq!(*kept.last().unwrap(), "line 010099");
        let left_out = 120_000 - 83 * 12 - 83 * 12;
        assert!(
            kept[marker].contains(&format!(" {left_out} bytes")),
            "{}",
            kept[marker]
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn an_unbroken_line_is_cut_and_the_marker_has_its_own_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        std::fs::write(&path, "x".repeat(10_000)).unwrap();
        elide_log_middle(&path, 0, 1000).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let kept: Vec<&str> = text.lines().collect();
        assert_eq!(kept.len(), 3, "{text}");
        assert_eq!(kept[0], "x".repeat(1000));
        assert!(kept[1].starts_with("[quizload: 8000 bytes"), "{}", kept[1]);
        assert_eq!(kept[2], "x".repeat(1000));
    }

    #[test]
    fn a_short_start_is_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.log");
        let text = lines(0, 150);
        std::fs::write(&path, &text).unwrap();
        elide_log_middle(&path, 0, 1000).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
