//! A configuration that is a compose deployment (`[configs.compose]`):
//! the runner brings the project's compose files up in a compose project of
//! its own (`docker compose`, or `docker-compose` v1), with the
//! configuration's `env` as compose's variables and free loopback ports for
//! the variables it names, waits until every replica of the server's
//! services answers `/readyz` through the entry (the balancer), measures
//! that entry as a target it did not start, records each container's
//! limits as Docker applied them (cpuset, CPU quota, memory; the kernel's
//! cgroup files of the server's containers) with its image, samples every
//! container's processes and the server replicas' `/metrics` around each
//! cell, and takes the deployment down with its volumes (`down -v`). It
//! builds nothing (`up --no-build`: build the images first).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use super::cell::CellMeasure;
use super::cgroup::{limits_of_pid, GroupLimits};
use super::limits::AppliedLimit;
use super::metrics::{scrape, MetricsScrape};
use super::placement::{affinity_of, overlaps};
use super::run::{Method, ServerUsage};
use super::sampler::Sampler;
use super::server::free_port;
use super::spec::ConfigSpec;
use crate::generator::sysmon::MachineCpu;
use crate::units::{parse_duration, parse_opt_duration};

/// `[configs.compose]`: how to bring a configuration up with compose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeSpec {
    /// Compose files, relative to the working directory (the checkout).
    pub files: Vec<String>,
    /// Replicas per service (`--scale app=2`).
    #[serde(default)]
    pub scale: BTreeMap<String, usize>,
    /// Variables set to a free loopback port each (`BALANCER_PORT`, …), so
    /// a run never collides with a stack already up.
    #[serde(default)]
    pub free_ports: Vec<String>,
    /// What is measured: `SERVICE:PORT`, a port of the service's (first)
    /// container, reached at the container's address on its compose network
    /// rather than through a published port (Docker's userland proxy would
    /// add a process on no fixed CPU), e.g. `balancer:8080`.
    pub entry: String,
    /// The services that are the server under test: their containers' CPU
    /// and memory are the server's, their `/metrics` its workers'.
    #[serde(default = "default_server")]
    pub server: Vec<String>,
    /// The server containers' port, for their `/metrics` (default 8000).
    #[serde(default = "default_server_port")]
    pub server_port: u16,
    /// `docker compose` or `docker-compose` (default: the plugin when
    /// installed, else v1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// How long `up` and readiness may take (default `300s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_timeout: Option<String>,
}

fn default_server() -> Vec<String> {
    vec!["app".into()]
}

fn default_server_port() -> u16 {
    8000
}

impl ComposeSpec {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.files.is_empty() {
            bail!("compose.files is empty");
        }
        self.entry_parts()?;
        if self.server.is_empty() {
            bail!("compose.server names no service");
        }
        if let Some(t) = &self.ready_timeout {
            parse_duration(t)?;
        }
        if let Some(p) = &self.program {
            if !matches!(p.as_str(), "docker compose" | "docker-compose") {
                bail!("compose.program is \"docker compose\" or \"docker-compose\", not {p:?}");
            }
        }
        Ok(())
    }

    fn entry_parts(&self) -> anyhow::Result<(&str, u16)> {
        let bad = || anyhow::anyhow!("compose.entry {:?} is not SERVICE:PORT", self.entry);
        let (svc, port) = self.entry.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if svc.is_empty() {
            return Err(bad());
        }
        Ok((svc, port))
    }

    /// Replicas of the server's services (1 for a service not scaled).
    fn server_replicas(&self) -> usize {
        self.server
            .iter()
            .map(|s| self.scale.get(s).copied().unwrap_or(1))
            .sum()
    }
}

/// The compose program found on this machine: the plugin first.
fn detect_program() -> Vec<String> {
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if plugin {
        vec!["docker".into(), "compose".into()]
    } else {
        vec!["docker-compose".into()]
    }
}

/// The command lines a deployment runs: `PROGRAM -p PROJECT -f F… ARGS`.
#[derive(Clone, Debug, PartialEq)]
pub struct Commands {
    base: Vec<String>,
}

impl Commands {
    pub fn new(program: &[String], project: &str, files: &[PathBuf]) -> Self {
        let mut base = program.to_vec();
        base.extend(["-p".into(), project.into()]);
        for f in files {
            base.extend(["-f".into(), f.display().to_string()]);
        }
        Commands { base }
    }

    fn with(&self, args: &[&str]) -> Vec<String> {
        let mut v = self.base.clone();
        v.extend(args.iter().map(|a| a.to_string()));
        v
    }

    /// `up -d --no-build [--scale S=N]…`: the images are built beforehand.
    pub fn up(&self, scale: &BTreeMap<String, usize>) -> Vec<String> {
        let mut v = self.with(&["up", "-d", "--no-build"]);
        for (s, n) in scale {
            v.extend(["--scale".into(), format!("{s}={n}")]);
        }
        v
    }

    pub fn ps(&self) -> Vec<String> {
        self.with(&["ps", "-q"])
    }

    pub fn logs(&self) -> Vec<String> {
        self.with(&["logs", "--no-color", "--tail", "60"])
    }

    /// `down -v --remove-orphans`: nothing of the run is left.
    pub fn down(&self) -> Vec<String> {
        self.with(&["down", "-v", "--remove-orphans", "-t", "20"])
    }
}

/// The environment compose runs with: only what reaches Docker (`PATH`,
/// `HOME`, `DOCKER_*`) from the runner's, so a variable of the calling
/// shell that compose passes through to the app (`PROCESSES`, …) never
/// changes what is measured; then the configuration's variables.
pub fn compose_env(
    inherited: impl Iterator<Item = (String, String)>,
    vars: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .filter(|(k, _)| k == "PATH" || k == "HOME" || k.starts_with("DOCKER_"))
        .collect();
    env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// A running container of the deployment, as `docker inspect` shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    pub service: String,
    /// Replica number within the service (`1`, `2`, …).
    pub number: String,
    pub pid: u32,
    /// The image as named and its ID.
    pub image: String,
    /// Its envelope as Docker set it (`None`: all CPUs, no quota, no
    /// memory limit).
    pub limits: GroupLimits,
    /// Its address on its (first) compose network.
    pub ip: Option<IpAddr>,
}

impl Container {
    fn key(&self) -> String {
        format!("{}-{}", self.service, self.number)
    }

    /// `cpuset 1, quota 1 CPU, memory unlimited, image quizbench:latest (sha256:0123…)`.
    fn limits_text(&self) -> String {
        let l = &self.limits;
        let cpuset = l
            .cpus
            .as_ref()
            .map_or("all CPUs".into(), |c| format!("cpuset {c}"));
        let quota = l
            .quota
            .map_or("no quota".into(), |q| format!("quota {q} CPU"));
        let memory = l.memory_bytes.map_or("memory unlimited".into(), |m| {
            format!("memory {} MiB", m >> 20)
        });
        format!("{cpuset}, {quota}, {memory}, image {}", self.image)
    }
}

/// The running containers in `docker inspect`'s JSON.
pub fn parse_inspect(json: &str) -> anyhow::Result<Vec<Container>> {
    let v: serde_json::Value = serde_json::from_str(json).context("docker inspect output")?;
    let mut out = Vec::new();
    for c in v.as_array().context("docker inspect: not a list")? {
        if !c["State"]["Running"].as_bool().unwrap_or(false) {
            continue;
        }
        let label = |k: &str| {
            c["Config"]["Labels"][k]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        let hc = &c["HostConfig"];
        let nano = hc["NanoCpus"].as_i64().unwrap_or(0);
        let (cq, cp) = (
            hc["CpuQuota"].as_i64().unwrap_or(0),
            hc["CpuPeriod"].as_i64().unwrap_or(0),
        );
        let quota = if nano > 0 {
            Some(nano as f64 / 1e9)
        } else if cq > 0 && cp > 0 {
            Some(cq as f64 / cp as f64)
        } else {
            None
        };
        let id = c["Image"].as_str().unwrap_or("?");
        let short = id.strip_prefix("sha256:").unwrap_or(id);
        let ip = c["NetworkSettings"]["Networks"].as_object().and_then(|n| {
            n.values()
                .find_map(|net| net["IPAddress"].as_str()?.parse().ok())
        });
        out.push(Container {
            service: label("com.docker.compose.service"),
            number: label("com.docker.compose.container-number"),
            pid: c["State"]["Pid"].as_u64().unwrap_or(0) as u32,
            image: format!(
                "{} ({})",
                c["Config"]["Image"].as_str().unwrap_or("?"),
                &short[..short.len().min(12)]
            ),
            limits: GroupLimits {
                cpus: hc["CpusetCpus"]
                    .as_str()
                    .filter(|c| !c.is_empty())
                    .map(String::from),
                quota,
                memory_bytes: hc["Memory"].as_u64().filter(|m| *m > 0),
            },
            ip,
        });
    }
    out.sort_by(|a, b| (&a.service, &a.number).cmp(&(&b.service, &b.number)));
    Ok(out)
}

/// A deployment the runner brought up; taken down (`down -v`) on drop.
pub struct Deployment {
    spec: ComposeSpec,
    commands: Commands,
    env: BTreeMap<String, String>,
    workdir: PathBuf,
    log: PathBuf,
    /// The entry's host address (what is measured).
    pub addr: SocketAddr,
    pub containers: Vec<Container>,
    /// The server's envelope as Docker applied it.
    pub applied: AppliedLimit,
    up: bool,
}

impl Deployment {
    /// Brings the deployment up as compose project `project` and waits
    /// until every server replica answers `/readyz` through the entry.
    pub fn up(
        spec: &ComposeSpec,
        vars: &BTreeMap<String, String>,
        project: &str,
        workdir: &Path,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let program = match &spec.program {
            Some(p) => p.split_whitespace().map(str::to_string).collect(),
            None => detect_program(),
        };
        let files: Vec<PathBuf> = spec.files.iter().map(|f| workdir.join(f)).collect();
        let mut vars = vars.clone();
        for v in &spec.free_ports {
            vars.insert(v.clone(), free_port()?.to_string());
        }
        let mut d = Deployment {
            spec: spec.clone(),
            commands: Commands::new(&program, project, &files),
            env: compose_env(std::env::vars(), &vars),
            workdir: workdir.to_path_buf(),
            log,
            addr: ([127, 0, 0, 1], 0).into(),
            containers: vec![],
            applied: AppliedLimit::default(),
            up: true,
        };
        let timeout = parse_opt_duration(&spec.ready_timeout)?.unwrap_or(Duration::from_secs(300));
        let deadline = Instant::now() + timeout;
        if let Err(e) = d.run(&d.commands.up(&spec.scale)) {
            d.save_logs();
            return Err(e);
        }
        let (svc, port) = spec.entry_parts()?;
        d.containers = d.inspect()?;
        let ip = d
            .containers
            .iter()
            .find(|c| c.service == svc)
            .and_then(|c| c.ip)
            .with_context(|| format!("no running container of {svc} with an address"))?;
        d.addr = SocketAddr::new(ip, port);
        if let Err(e) = d.wait_ready(deadline) {
            d.save_logs();
            return Err(e.context(format!("deployment not ready within {timeout:?}")));
        }
        d.applied = d.applied_limit();
        Ok(d)
    }

    /// Brings configuration `cfg` up for a round of its cells as compose
    /// project `quizload<pid>-<config>` (its log: `compose-<config>.log` in
    /// `out`), and records its envelope in `method`: the server's limits,
    /// and every container's limits and image.
    pub(super) fn start(
        cfg: &ConfigSpec,
        out: &Path,
        workdir: &Path,
        method: &mut Method,
    ) -> anyhow::Result<Self> {
        let spec = cfg
            .compose
            .as_ref()
            .context("not a compose configuration")?;
        let project = format!("quizload{}-{}", std::process::id(), cfg.name).to_lowercase();
        let log = out.join(format!("compose-{}.log", cfg.name));
        let d = Self::up(spec, &cfg.env, &project, workdir, log)?;
        method.server.insert(cfg.name.clone(), d.applied.clone());
        let prefix = format!("{}: ", cfg.name);
        if !method
            .target_limits
            .iter()
            .any(|(k, _)| k.starts_with(&prefix))
        {
            method.target_limits.extend(d.limits_table(&cfg.name));
        }
        Ok(d)
    }

    /// Runs a compose command in the workdir, its output appended to the
    /// log; returns its stdout.
    fn run(&self, argv: &[String]) -> anyhow::Result<String> {
        use std::io::Write as _;
        let out = Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(&self.env)
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", argv[0]))?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("cannot open {}", self.log.display()))?;
        let _ = writeln!(f, "$ {}", argv.join(" "));
        let _ = f.write_all(&out.stdout);
        let _ = f.write_all(&out.stderr);
        if !out.status.success() {
            bail!(
                "`{}` failed ({}); see {}",
                argv.join(" "),
                out.status,
                self.log.display()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn save_logs(&self) {
        let _ = self.run(&self.commands.logs());
    }

    /// Every server replica answers `/readyz` through the entry (its
    /// `X-Served-By`), so the balancer has them all in rotation.
    fn wait_ready(&self, deadline: Instant) -> anyhow::Result<()> {
        let want = self.spec.server_replicas();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections(0)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        let url = format!("http://{}/readyz", self.addr);
        let mut seen = std::collections::BTreeSet::new();
        loop {
            for _ in 0..(4 * want) {
                if let Ok(r) = agent.get(&url).call() {
                    if r.status() == 200 {
                        seen.insert(
                            r.headers()
                                .get("x-served-by")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string(),
                        );
                    }
                }
            }
            if seen.len() >= want {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {want} replicas answered /readyz through {url}",
                    seen.len()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn inspect(&self) -> anyhow::Result<Vec<Container>> {
        let ids: Vec<String> = self
            .run(&self.commands.ps())?
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if ids.is_empty() {
            bail!("the deployment has no containers");
        }
        let out = Command::new("docker")
            .arg("inspect")
            .args(&ids)
            .output()
            .context("cannot run docker inspect")?;
        if !out.status.success() {
            bail!(
                "docker inspect failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        parse_inspect(&String::from_utf8_lossy(&out.stdout))
    }

    fn servers(&self) -> impl Iterator<Item = &Container> {
        self.containers
            .iter()
            .filter(|c| self.spec.server.contains(&c.service))
    }

    /// The server's envelope: each server container's limits as Docker set
    /// them, the cpuset as the kernel reads it back.
    fn applied_limit(&self) -> AppliedLimit {
        let servers: Vec<&Container> = self.servers().collect();
        let first = servers.first();
        let read_back = first.map(|c| limits_of_pid(c.pid)).unwrap_or_default();
        let cpus = read_back
            .iter()
            .find(|(k, _)| k.ends_with("cpuset.cpus") || k.ends_with("cpuset.cpus.effective"))
            .map(|(_, v)| v.clone())
            .or_else(|| first.and_then(|c| c.limits.cpus.clone()));
        AppliedLimit {
            method: format!(
                "docker compose ({} {} container(s), limits per container)",
                servers.len(),
                self.spec.server.join("+")
            ),
            cpus,
            quota: first.and_then(|c| c.limits.quota),
            memory: first
                .and_then(|c| c.limits.memory_bytes)
                .map(|m| format!("{}M", m >> 20)),
            cgroup: None,
            note: None,
        }
    }

    /// Every running container's limits and image, by `service-N`.
    pub fn limits_table(&self, config: &str) -> Vec<(String, String)> {
        self.containers
            .iter()
            .map(|c| (format!("{config}: {}", c.key()), c.limits_text()))
            .collect()
    }

    /// Starts sampling the containers for one cell.
    pub fn probe(&self) -> Probe {
        let period = Duration::from_millis(250);
        Probe {
            samplers: self
                .containers
                .iter()
                .map(|c| (c.clone(), Sampler::start(c.pid, period)))
                .collect(),
            before: self.scrapes(),
            machine: MachineCpu::read(),
            applied: self.applied.clone(),
            server: self.spec.server.clone(),
        }
    }

    fn scrapes(&self) -> BTreeMap<String, MetricsScrape> {
        let port = self.spec.server_port;
        self.servers()
            .filter_map(|c| Some((c.key(), scrape(SocketAddr::new(c.ip?, port))?)))
            .collect()
    }

    /// `down -v`: containers, networks and volumes of the project removed.
    pub fn down(&mut self) -> anyhow::Result<()> {
        if !self.up {
            return Ok(());
        }
        self.up = false;
        self.run(&self.commands.down()).map(|_| ())
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

/// The containers' usage during one cell, started by [`Deployment::probe`].
pub struct Probe {
    samplers: Vec<(Container, Sampler)>,
    before: BTreeMap<String, MetricsScrape>,
    machine: Option<MachineCpu>,
    applied: AppliedLimit,
    server: Vec<String>,
}

impl Probe {
    /// Puts the cell's usage into its measure: the server's (the server
    /// containers' processes, the replicas' `/metrics`: DB connections,
    /// requests per replica and worker), each service's cores and CPUs, and
    /// the cores the rest of the machine kept busy (other work).
    pub(super) fn finish(self, d: &Deployment, m: &mut CellMeasure) {
        let machine_cores = match (self.machine, MachineCpu::read()) {
            (Some(a), Some(b)) if b.total > a.total => {
                let cpus = super::placement::online_cpus() as f64;
                Some((b.busy - a.busy) as f64 / (b.total - a.total) as f64 * cpus)
            }
            _ => None,
        };
        let mut by_service: BTreeMap<String, f64> = BTreeMap::new();
        let mut server_processes = Vec::new();
        let (mut server_cores, mut server_rss) = (0.0, 0.0);
        for (c, s) in self.samplers {
            let used = s.finish(c.pid);
            let is_server = self.server.contains(&c.service);
            let name = if is_server { "server" } else { &c.service };
            *by_service.entry(name.to_string()).or_default() += used.cpu_cores;
            if let Some(a) = affinity_of(&c.pid.to_string()) {
                m.placement.affinity.cpus.insert(name.to_string(), a);
            }
            if is_server {
                server_cores += used.cpu_cores;
                server_rss += used.peak_rss_mb;
                server_processes.extend(used.processes);
            }
        }
        let ours: f64 = by_service.values().sum::<f64>()
            + m.placement
                .cpu_cores
                .get("generator")
                .copied()
                .unwrap_or(0.0);
        m.placement.cpu_cores.extend(by_service);
        if let Some(total) = machine_cores {
            m.placement
                .cpu_cores
                .insert("other work".into(), (total - ours).max(0.0));
        }
        m.placement.overlaps = overlaps(&m.placement.affinity);
        let after = d.scrapes();
        let mut worker_requests = BTreeMap::new();
        let (mut db, mut deaths) = (None::<f64>, 0.0);
        for (key, a) in &after {
            let b = self.before.get(key).cloned().unwrap_or_default();
            for (w, n) in &a.worker_requests {
                let prev = b.worker_requests.get(w).copied().unwrap_or(0.0);
                worker_requests.insert(format!("{key}/{w}"), n - prev);
            }
            if let Some(n) = a.db_connections {
                db = Some(db.unwrap_or(0.0) + n);
            }
            deaths += a.deaths_since(&b);
        }
        m.server = Some(ServerUsage {
            processes: server_processes,
            cpu_cores: server_cores,
            rss_mb: server_rss,
            db_connections: db,
            worker_requests,
            limit: self.applied,
            memory_events: Default::default(),
            worker_deaths: (!after.is_empty()).then_some(deaths),
        });
    }
}

#[cfg(test)]
mod tests;
