//! The server under test as a process: start the release binary with a
//! configuration's environment inside a CPU limit, wait for readiness, sample
//! CPU and memory of it and its forked workers, scrape its `/metrics`, and
//! stop it.
//!
//! CPU limits, in order of preference: a cgroup (v2 `cpu.max`/`cpuset.cpus`,
//! or v1 `cpu.cfs_quota_us` with a short period and `cpuset.cpus`) that a
//! tiny shell joins and then `exec`s the server, so the server and every
//! worker it forks start inside the limit; else `taskset` for a CPU set (a
//! quota cannot be emulated and is reported as not applied). The runner
//! builds nothing: it runs the binary it is given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::generator::http::blocking::http_get;

/// How the server's CPU is limited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuLimit {
    /// CPU list for a cpuset, e.g. `0` or `0-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// CPUs' worth of time via a CFS quota, e.g. `0.5` or `1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<f64>,
}

/// Period of the CPU quota: short, so a fractional CPU is smooth at the
/// time scale of requests instead of 100 ms bursts.
pub const QUOTA_PERIOD_US: u64 = 10_000;

/// What was actually applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedLimit {
    /// `cgroup-v2`, `cgroup-v1`, `taskset`, or `none`.
    pub method: String,
    pub cpus: Option<String>,
    pub quota: Option<f64>,
    /// Set when part of the requested limit could not be applied.
    pub note: Option<String>,
}

/// A cgroup made for one server start, removed on drop.
#[derive(Debug)]
struct Cgroup {
    /// `cgroup.procs` files the launcher shell writes its pid to.
    procs: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Empty once the server has exited; retry briefly.
            for _ in 0..20 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn write(path: &Path, value: &str) -> anyhow::Result<()> {
    std::fs::write(path, value)
        .with_context(|| format!("cannot write {value:?} to {}", path.display()))
}

/// Creates cgroups for `limit` named `name`; `None` when no cgroup
/// hierarchy is writable.
fn make_cgroup(limit: &CpuLimit, name: &str) -> anyhow::Result<Option<(Cgroup, &'static str)>> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        // v2: one group with the cpu and cpuset controllers enabled.
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let mut enable = Vec::new();
        if limit.quota.is_some() {
            enable.push("+cpu");
        }
        if limit.cpus.is_some() {
            enable.push("+cpuset");
        }
        for c in &enable {
            if !controllers.split_whitespace().any(|x| x == &c[1..]) {
                return Ok(None);
            }
        }
        if write(&root.join("cgroup.subtree_control"), &enable.join(" ")).is_err() {
            return Ok(None);
        }
        let dir = root.join(name);
        if std::fs::create_dir(&dir).is_err() {
            return Ok(None);
        }
        let cg = Cgroup {
            procs: vec![dir.join("cgroup.procs")],
            dirs: vec![dir.clone()],
        };
        if let Some(q) = limit.quota {
            let quota = (q * QUOTA_PERIOD_US as f64).round().max(1000.0) as u64;
            write(&dir.join("cpu.max"), &format!("{quota} {QUOTA_PERIOD_US}"))?;
        }
        if let Some(c) = &limit.cpus {
            write(&dir.join("cpuset.cpus"), c)?;
        }
        return Ok(Some((cg, "cgroup-v2")));
    }
    // v1: separate cpu and cpuset hierarchies.
    let cpu_root = root.join("cpu");
    let cpuset_root = root.join("cpuset");
    let mut cg = Cgroup {
        procs: vec![],
        dirs: vec![],
    };
    if let Some(q) = limit.quota {
        let dir = cpu_root.join(name);
        if std::fs::create_dir(&dir).is_err() {
            return Ok(None);
        }
        cg.dirs.push(dir.clone());
        let quota = (q * QUOTA_PERIOD_US as f64).round().max(1000.0) as u64;
        write(&dir.join("cpu.cfs_period_us"), &QUOTA_PERIOD_US.to_string())?;
        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
        cg.procs.push(dir.join("tasks"));
    }
    if let Some(c) = &limit.cpus {
        let dir = cpuset_root.join(name);
        if std::fs::create_dir(&dir).is_err() {
            return Ok(if cg.dirs.is_empty() {
                None
            } else {
                Some((cg, "cgroup-v1"))
            });
        }
        cg.dirs.push(dir.clone());
        let mems =
            std::fs::read_to_string(cpuset_root.join("cpuset.mems")).unwrap_or_else(|_| "0".into());
        write(&dir.join("cpuset.mems"), mems.trim())?;
        write(&dir.join("cpuset.cpus"), c)?;
        cg.procs.push(dir.join("tasks"));
    }
    if cg.dirs.is_empty() {
        return Ok(None);
    }
    Ok(Some((cg, "cgroup-v1")))
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    pub binary: PathBuf,
    /// `--profile NAME` for the binary, if any.
    pub profile: Option<String>,
    /// Environment on top of the inherited one (includes `BIND`).
    pub env: BTreeMap<String, String>,
    pub limit: CpuLimit,
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
    pub addr: SocketAddr,
    pub applied: AppliedLimit,
    _cgroup: Option<Cgroup>,
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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
        let wants_limit = spec.limit.cpus.is_some() || spec.limit.quota.is_some();
        // A cgroup that cannot be set up (read-only hierarchy, missing
        // controller) falls back to taskset below rather than failing.
        let cgroup = if wants_limit {
            make_cgroup(&spec.limit, &name).unwrap_or(None)
        } else {
            None
        };
        let mut server_args = vec![spec.binary.display().to_string()];
        if let Some(p) = &spec.profile {
            server_args.push("--profile".into());
            server_args.push(p.clone());
        }
        server_args.push("serve".into());
        let quoted: Vec<String> = server_args.iter().map(|a| shell_quote(a)).collect();
        let (script, applied) = match &cgroup {
            Some((cg, method)) => {
                let joins: Vec<String> = cg
                    .procs
                    .iter()
                    .map(|p| format!("echo $$ > {}", shell_quote(&p.display().to_string())))
                    .collect();
                (
                    format!("{} && exec {}", joins.join(" && "), quoted.join(" ")),
                    AppliedLimit {
                        method: (*method).into(),
                        cpus: spec.limit.cpus.clone(),
                        quota: spec.limit.quota,
                        note: None,
                    },
                )
            }
            None if wants_limit => match &spec.limit.cpus {
                Some(c) if which("taskset") => (
                    format!("exec taskset -c {} {}", shell_quote(c), quoted.join(" ")),
                    AppliedLimit {
                        method: "taskset".into(),
                        cpus: Some(c.clone()),
                        quota: None,
                        note: spec
                            .limit
                            .quota
                            .map(|q| format!("CPU quota {q} not applied: no writable cgroup")),
                    },
                ),
                _ => (
                    format!("exec {}", quoted.join(" ")),
                    AppliedLimit {
                        method: "none".into(),
                        cpus: None,
                        quota: None,
                        note: Some(
                            "CPU limit not applied: no writable cgroup and no taskset".into(),
                        ),
                    },
                ),
            },
            None => (
                format!("exec {}", quoted.join(" ")),
                AppliedLimit {
                    method: "none".into(),
                    cpus: None,
                    quota: None,
                    note: None,
                },
            ),
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("cannot open {}", spec.log.display()))?;
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .envs(&spec.env)
            .current_dir(&spec.workdir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", spec.binary.display()))?;
        let pid = child.id();
        let mut server = Self {
            child,
            pid,
            addr,
            applied,
            _cgroup: cgroup.map(|(c, _)| c),
        };
        let deadline = Instant::now() + ready_timeout;
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "server exited during start-up ({status}); see {}",
                    spec.log.display()
                );
            }
            if matches!(
                http_get(addr, "/readyz", Duration::from_secs(2)),
                Ok((200, _))
            ) {
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

    /// The server and the processes it forked (its workers).
    pub fn pids(&self) -> Vec<u32> {
        process_tree(self.pid)
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
    }
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

/// `pid` and all its descendants, from `/proc/*/stat`.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Some(st) = ProcStat::read(p) {
                parent_of.push((p, st.ppid));
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let cur = out[i];
        for (p, pp) in &parent_of {
            if *pp == cur && !out.contains(p) {
                out.push(*p);
            }
        }
        i += 1;
    }
    out
}

/// The fields of `/proc/PID/stat` and `/proc/PID/status` the sampler uses.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcStat {
    pub ppid: u32,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// cutime + cstime: CPU of the children this process has reaped (a
    /// supervisor's recycled workers), clock ticks.
    pub child_cpu_ticks: u64,
    pub rss_bytes: u64,
    pub comm: String,
}

impl ProcStat {
    /// Reads a process's stat; `None` if it is gone.
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let mut st = Self::parse_stat(&stat)?;
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            st.rss_bytes = parse_vmrss(&status).unwrap_or(0);
        }
        Some(st)
    }

    /// Parses `/proc/PID/stat` (the command name may contain spaces and
    /// parentheses, so fields are counted after the last `)`).
    pub fn parse_stat(s: &str) -> Option<Self> {
        let open = s.find('(')?;
        let close = s.rfind(')')?;
        let comm = s[open + 1..close].to_string();
        let rest: Vec<&str> = s[close + 1..].split_whitespace().collect();
        // rest[0] = state (field 3); ppid is field 4; utime 14; stime 15.
        let ppid = rest.get(1)?.parse().ok()?;
        let utime: u64 = rest.get(11)?.parse().ok()?;
        let stime: u64 = rest.get(12)?.parse().ok()?;
        let cutime: u64 = rest.get(13)?.parse().ok()?;
        let cstime: u64 = rest.get(14)?.parse().ok()?;
        Some(Self {
            ppid,
            cpu_ticks: utime + stime,
            child_cpu_ticks: cutime + cstime,
            rss_bytes: 0,
            comm,
        })
    }
}

/// `VmRSS` from `/proc/PID/status`, in bytes.
pub fn parse_vmrss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map(|t| t as f64)
        .unwrap_or(100.0)
}

/// CPU and memory of one server process over a measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessUsage {
    pub pid: u32,
    pub name: String,
    /// CPU seconds used during the run.
    pub cpu_s: f64,
    /// `cpu_s / run seconds`: cores kept busy.
    pub cpu_cores: f64,
    pub max_rss_mb: f64,
}

/// Samples a process tree's CPU and RSS in the background.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Arc<Mutex<SamplerState>>,
    started: Instant,
}

#[derive(Default)]
struct SamplerState {
    first: BTreeMap<u32, ProcStat>,
    last: BTreeMap<u32, ProcStat>,
    max_rss: BTreeMap<u32, u64>,
    /// The tree as read by the first and by the latest sample.
    first_sample: BTreeMap<u32, ProcStat>,
    latest_sample: BTreeMap<u32, ProcStat>,
    /// Largest sum of RSS over the processes alive in one sample.
    peak_total_rss: u64,
}

impl SamplerState {
    fn sample(&mut self, root: u32) {
        let mut now = BTreeMap::new();
        for p in process_tree(root) {
            if let Some(st) = ProcStat::read(p) {
                let rss = st.rss_bytes;
                self.first.entry(p).or_insert_with(|| st.clone());
                let m = self.max_rss.entry(p).or_insert(0);
                *m = (*m).max(rss);
                self.last.insert(p, st.clone());
                now.insert(p, st);
            }
        }
        self.peak_total_rss = self
            .peak_total_rss
            .max(now.values().map(|s| s.rss_bytes).sum());
        if self.first_sample.is_empty() {
            self.first_sample = now.clone();
        }
        self.latest_sample = now;
    }

    /// CPU ticks the whole tree used between the first and latest samples,
    /// including processes that started and ended in between (recycled
    /// workers): each live process's own and reaped children's time, now
    /// minus then.
    fn tree_cpu_ticks(&self) -> u64 {
        let total = |m: &BTreeMap<u32, ProcStat>| -> u64 {
            m.values().map(|s| s.cpu_ticks + s.child_cpu_ticks).sum()
        };
        total(&self.latest_sample).saturating_sub(total(&self.first_sample))
    }
}

/// What a [`Sampler`] measured over a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledUsage {
    /// Per process seen (processes that came and went included).
    pub processes: Vec<ProcessUsage>,
    /// CPU seconds of the whole tree, recycled workers included.
    pub cpu_s: f64,
    /// `cpu_s / run seconds`.
    pub cpu_cores: f64,
    /// The largest total RSS of the processes alive at one time.
    pub peak_rss_mb: f64,
}

impl Sampler {
    /// Starts sampling `root` and its descendants every `period`.
    pub fn start(root: u32, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(SamplerState::default()));
        state.lock().expect("fresh mutex").sample(root);
        let (s2, st2) = (stop.clone(), state.clone());
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(period);
                st2.lock().expect("sampler mutex").sample(root);
            }
        });
        Self {
            stop,
            thread: Some(thread),
            state,
            started: Instant::now(),
        }
    }

    /// Stops and returns the usage of the tree and of each process
    /// (processes that came and went during the run included).
    pub fn finish(mut self, root: u32) -> SampledUsage {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-9);
        let mut st = self.state.lock().expect("sampler mutex");
        st.sample(root);
        let hz = clock_ticks_per_second();
        let processes = st
            .last
            .iter()
            .map(|(pid, last)| {
                let first = st.first.get(pid).map(|f| f.cpu_ticks).unwrap_or(0);
                let cpu_s = last.cpu_ticks.saturating_sub(first) as f64 / hz;
                ProcessUsage {
                    pid: *pid,
                    name: last.comm.clone(),
                    cpu_s,
                    cpu_cores: cpu_s / elapsed,
                    max_rss_mb: st.max_rss.get(pid).copied().unwrap_or(0) as f64 / 1_048_576.0,
                }
            })
            .collect();
        let cpu_s = st.tree_cpu_ticks() as f64 / hz;
        SampledUsage {
            processes,
            cpu_s,
            cpu_cores: cpu_s / elapsed,
            peak_rss_mb: st.peak_total_rss as f64 / 1_048_576.0,
        }
    }
}

/// Sums of the quizbench gauges and counters in a `/metrics` scrape that
/// the experiment reports: DB pool size (connections), and requests served
/// per worker.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsScrape {
    /// Sum of `quizbench_db_pool_size` over workers.
    pub db_connections: Option<f64>,
    /// `quizbench_worker_requests_total` by worker label.
    pub worker_requests: BTreeMap<String, f64>,
}

/// Parses the lines of a Prometheus text scrape that quizload uses.
pub fn parse_metrics(text: &str) -> MetricsScrape {
    let mut m = MetricsScrape::default();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name_labels, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match name_labels.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (name_labels, ""),
        };
        let label = |key: &str| {
            labels.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        match name {
            "quizbench_db_pool_size" => *m.db_connections.get_or_insert(0.0) += v,
            "quizbench_worker_requests_total" => {
                let w = label("worker").unwrap_or_default();
                *m.worker_requests.entry(w).or_insert(0.0) += v;
            }
            _ => {}
        }
    }
    m
}

/// Scrapes `/metrics` of a server; `None` when it has none.
pub fn scrape(addr: SocketAddr) -> Option<MetricsScrape> {
    match http_get(addr, "/metrics", Duration::from_secs(5)) {
        Ok((200, body)) => Some(parse_metrics(&body)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_names() {
        let s = "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 123 1000 50 18446744073709551615";
        let st = ProcStat::parse_stat(s).unwrap();
        assert_eq!(st.comm, "my (odd) prog");
        assert_eq!(st.ppid, 1);
        assert_eq!(st.cpu_ticks, 300);
        assert_eq!(
            parse_vmrss("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2048 * 1024)
        );
        // this process is in its own tree and readable
        let me = std::process::id();
        assert!(process_tree(me).contains(&me));
        assert!(ProcStat::read(me).unwrap().rss_bytes > 0);
    }

    #[test]
    fn parses_metrics() {
        let text = "# HELP quizbench_db_pool_size x\n# TYPE quizbench_db_pool_size gauge\n\
            quizbench_db_pool_size{worker=\"0\"} 5\nquizbench_db_pool_size{worker=\"1\"} 7\n\
            quizbench_worker_requests_total{worker=\"0\"} 100\nquizbench_worker_requests_total{worker=\"1\"} 300\n\
            quizbench_other 1\n";
        let m = parse_metrics(text);
        assert_eq!(m.db_connections, Some(12.0));
        assert_eq!(m.worker_requests.get("1"), Some(&300.0));
        assert_eq!(parse_metrics("nothing here").db_connections, None);
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }

    /// The sampler sees CPU burnt by a child process.
    #[test]
    fn samples_a_child() {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
            .spawn()
            .unwrap();
        let s = Sampler::start(child.id(), Duration::from_millis(20));
        let _ = child.wait();
        let usage = s.finish(child.id());
        // the shell's own entry was sampled before it exited
        assert!(usage.processes.iter().any(|u| u.pid == child.id()));
    }

    /// Workers that start and end between two samples (a supervisor
    /// recycling them) still count: their CPU arrives in the parent's reaped
    /// children's time, and RSS is the peak of what was alive at once, not a
    /// sum over every process ever seen.
    #[test]
    fn short_lived_children_count_toward_cpu_but_not_twice_toward_rss() {
        // A parent that runs 20 short CPU-burning children one after another.
        let script = "for n in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
             sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; done";
        let mut parent = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .spawn()
            .unwrap();
        let s = Sampler::start(parent.id(), Duration::from_millis(500));
        // Finish while the parent (which reaps the children) is still alive.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && ProcStat::read(parent.id()).is_some_and(|p| p.child_cpu_ticks < 20)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let reaped = ProcStat::read(parent.id()).map_or(0, |p| p.child_cpu_ticks) as f64
            / clock_ticks_per_second();
        let usage = s.finish(parent.id());
        let _ = parent.kill();
        let _ = parent.wait();
        // Per-process sampling misses the children that lived between two
        // samples; the tree total does not.
        let seen: f64 = usage.processes.iter().map(|p| p.cpu_s).sum();
        assert!(reaped >= 0.2, "the children burnt CPU: {reaped}");
        assert!(
            usage.cpu_s >= reaped * 0.9 && usage.cpu_s >= seen,
            "tree {} s, reaped children {reaped} s, per-process sum {seen} s",
            usage.cpu_s
        );
        let sum_of_maxima: f64 = usage.processes.iter().map(|p| p.max_rss_mb).sum();
        assert!(usage.peak_rss_mb > 0.0 && usage.peak_rss_mb <= sum_of_maxima + 1e-9);
    }
}
