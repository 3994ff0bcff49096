//! Control groups as the runner uses them: where the hierarchy is
//! ([`Hierarchy`]: v2 unified, or v1 with one mount per controller; its
//! root is `/sys/fs/cgroup` unless `QUIZLOAD_CGROUP_ROOT` says otherwise),
//! a group made for one process tree below the runner's own cgroup (so a
//! delegated cgroup, e.g. `systemd-run --user --scope -p Delegate=yes`,
//! works without root), its CPU set, CPU quota and memory limit written and
//! read back, and its counters (OOM kills, memory limit hits). Filesystem
//! only: it starts no process; the caller's launcher joins the group
//! before it `exec`s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Period of the CPU quota: short, so a fractional CPU is smooth at the
/// time scale of requests instead of 100 ms bursts.
pub const QUOTA_PERIOD_US: u64 = 10_000;

/// Environment variable that moves the cgroup root (default
/// `/sys/fs/cgroup`), e.g. to a delegated hierarchy mounted elsewhere.
pub const ROOT_ENV: &str = "QUIZLOAD_CGROUP_ROOT";

/// Which cgroup hierarchy the machine has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hierarchy {
    /// One unified hierarchy at `root`.
    V2 { root: PathBuf },
    /// One mount per controller under `root` (`cpu`, `cpuset`, `memory`).
    V1 { root: PathBuf },
}

/// What the limit asks of a group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupLimits {
    pub cpus: Option<String>,
    pub quota: Option<f64>,
    pub memory_bytes: Option<u64>,
}

/// The limit as read back from the group's files after writing it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReadBack {
    /// `cgroup-v1` or `cgroup-v2`.
    pub version: String,
    /// The group's directories, one per v1 controller.
    pub paths: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// `quota period` in µs, as the kernel holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// A limit that could not be applied: which, where and why.
#[derive(Debug)]
pub struct Refusal {
    pub limit: String,
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot apply the {} ({}: {})",
            self.limit,
            self.path.display(),
            self.reason
        )
    }
}

fn refuse(limit: &str, path: &Path, e: impl std::fmt::Display) -> Refusal {
    Refusal {
        limit: limit.to_string(),
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

impl Hierarchy {
    /// The machine's hierarchy (or the one `QUIZLOAD_CGROUP_ROOT` names).
    pub fn detect() -> Self {
        let root = std::env::var_os(ROOT_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup"));
        if root.join("cgroup.controllers").exists() {
            Hierarchy::V2 { root }
        } else {
            Hierarchy::V1 { root }
        }
    }

    pub fn version(&self) -> &'static str {
        match self {
            Hierarchy::V2 { .. } => "cgroup-v2",
            Hierarchy::V1 { .. } => "cgroup-v1",
        }
    }

    /// The directory of `pid`'s cgroup for `controller` (v1) or its unified
    /// cgroup (v2), from `/proc/PID/cgroup`.
    pub fn cgroup_of(&self, pid: &str, controller: &str) -> Option<PathBuf> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        match self {
            Hierarchy::V2 { root } => text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .map(|p| root.join(p.trim_start_matches('/'))),
            Hierarchy::V1 { root } => {
                let mount = v1_mount(root, controller)?;
                text.lines().find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                    ctrls
                        .split(',')
                        .any(|c| c == controller)
                        .then(|| mount.join(path.trim_start_matches('/')))
                })
            }
        }
    }
}

/// The v1 mount holding `controller` (`cpu` may be mounted as `cpu,cpuacct`).
fn v1_mount(root: &Path, controller: &str) -> Option<PathBuf> {
    let direct = root.join(controller);
    if direct.is_dir() {
        return Some(direct);
    }
    std::fs::read_dir(root).ok()?.flatten().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name.split(',')
            .any(|c| c == controller)
            .then(|| e.path())
            .filter(|p| p.is_dir())
    })
}

fn write(limit: &str, path: &Path, value: &str) -> Result<(), Refusal> {
    std::fs::write(path, value).map_err(|e| refuse(limit, path, format!("writing {value:?}: {e}")))
}

/// Writes `(file, value)` pairs into `dir` in order, stopping at the
/// first the kernel refuses.
fn write_files(limit: &str, dir: &Path, files: &[(&str, &str)]) -> Result<(), Refusal> {
    files
        .iter()
        .try_for_each(|(file, value)| write(limit, &dir.join(file), value))
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// Removes the groups that a runner killed outright left below `parent`:
/// `quizload-PID-…` whose runner PID no longer runs. `rmdir` refuses a
/// group that still holds a process, so nothing running is touched.
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let runner = name
            .to_str()
            .and_then(|n| n.strip_prefix("quizload-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = runner {
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// A group made for one process tree, removed on drop.
#[derive(Debug)]
pub struct Group {
    pub hierarchy: Hierarchy,
    /// `(controller, directory)`; one entry (`""`) on v2.
    dirs: Vec<(&'static str, PathBuf)>,
}

impl Group {
    /// Makes a group named `name` below the runner's own cgroup carrying
    /// `limits`; the error names the limit that could not be applied.
    pub fn create(limits: &GroupLimits, name: &str) -> Result<Self, Refusal> {
        let hierarchy = Hierarchy::detect();
        let mut g = Group {
            hierarchy: hierarchy.clone(),
            dirs: Vec::new(),
        };
        match &hierarchy {
            Hierarchy::V2 { root } => {
                let parent = hierarchy
                    .cgroup_of("self", "")
                    .unwrap_or_else(|| root.clone());
                let mut enable = Vec::new();
                if limits.quota.is_some() {
                    enable.push(("cpu", "CPU quota"));
                }
                if limits.cpus.is_some() {
                    enable.push(("cpuset", "CPU set"));
                }
                if limits.memory_bytes.is_some() {
                    enable.push(("memory", "memory limit"));
                }
                let available = read(&parent.join("cgroup.controllers")).unwrap_or_default();
                for (c, what) in &enable {
                    if !available.split_whitespace().any(|x| x == *c) {
                        return Err(refuse(
                            what,
                            &parent,
                            format!("the {c} controller is not delegated here"),
                        ));
                    }
                }
                let line: Vec<String> = enable.iter().map(|(c, _)| format!("+{c}")).collect();
                if !line.is_empty() {
                    let control = parent.join("cgroup.subtree_control");
                    if std::fs::write(&control, line.join(" ")).is_err() {
                        // A cgroup with processes cannot hand controllers to
                        // its children: move the runner into a leaf first.
                        let leaf = parent.join("quizload-runner");
                        let _ = std::fs::create_dir(&leaf);
                        write(
                            enable[0].1,
                            &leaf.join("cgroup.procs"),
                            &std::process::id().to_string(),
                        )?;
                        write(enable[0].1, &control, &line.join(" "))?;
                    }
                }
                remove_stale(&parent);
                let dir = parent.join(name);
                std::fs::create_dir(&dir).map_err(|e| refuse("cgroup", &dir, e))?;
                g.dirs.push(("", dir.clone()));
                if let Some(q) = limits.quota {
                    let quota = quota_us(q);
                    write(
                        "CPU quota",
                        &dir.join("cpu.max"),
                        &format!("{quota} {QUOTA_PERIOD_US}"),
                    )?;
                }
                if let Some(c) = &limits.cpus {
                    write("CPU set", &dir.join("cpuset.cpus"), c)?;
                }
                if let Some(m) = limits.memory_bytes {
                    write("memory limit", &dir.join("memory.max"), &m.to_string())?;
                    // No swap: the limit is the memory the process has.
                    let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                }
            }
            Hierarchy::V1 { root } => {
                let mut make = |controller: &'static str, what: &str| -> Result<PathBuf, Refusal> {
                    let mount = v1_mount(root, controller).ok_or_else(|| {
                        refuse(
                            what,
                            &root.join(controller),
                            "no such cgroup v1 controller mounted",
                        )
                    })?;
                    let parent = hierarchy
                        .cgroup_of("self", controller)
                        .filter(|p| p.is_dir())
                        .unwrap_or(mount);
                    remove_stale(&parent);
                    let dir = parent.join(name);
                    std::fs::create_dir(&dir).map_err(|e| refuse(what, &dir, e))?;
                    g.dirs.push((controller, dir.clone()));
                    Ok(dir)
                };
                if let Some(q) = limits.quota {
                    let dir = make("cpu", "CPU quota")?;
                    let (period, quota) = (QUOTA_PERIOD_US.to_string(), quota_us(q).to_string());
                    write_files(
                        "CPU quota",
                        &dir,
                        &[("cpu.cfs_period_us", &period), ("cpu.cfs_quota_us", &quota)],
                    )?;
                }
                if let Some(c) = &limits.cpus {
                    let dir = make("cpuset", "CPU set")?;
                    let mems = dir
                        .parent()
                        .and_then(|p| read(&p.join("cpuset.mems")))
                        .unwrap_or_else(|| "0".into());
                    write_files(
                        "CPU set",
                        &dir,
                        &[("cpuset.mems", &mems), ("cpuset.cpus", c)],
                    )?;
                }
                if let Some(m) = limits.memory_bytes {
                    let dir = make("memory", "memory limit")?;
                    write(
                        "memory limit",
                        &dir.join("memory.limit_in_bytes"),
                        &m.to_string(),
                    )?;
                    // Swap counts too where the kernel accounts it.
                    let _ = std::fs::write(dir.join("memory.memsw.limit_in_bytes"), m.to_string());
                }
            }
        }
        Ok(g)
    }

    /// The files a launcher writes its pid to (`echo $$ > FILE`).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .map(|(_, d)| match self.hierarchy {
                Hierarchy::V2 { .. } => d.join("cgroup.procs"),
                Hierarchy::V1 { .. } => d.join("tasks"),
            })
            .collect()
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.is_empty() || *c == controller)
            .map(|(_, d)| d.as_path())
    }

    /// The limits as the kernel holds them now.
    pub fn read_back(&self) -> ReadBack {
        let v2 = matches!(self.hierarchy, Hierarchy::V2 { .. });
        let file = |c: &str, v1: &str, v2f: &str| {
            self.dir(c)
                .and_then(|d| read(&d.join(if v2 { v2f } else { v1 })))
        };
        let quota = if v2 {
            file("cpu", "", "cpu.max")
        } else {
            match (
                file("cpu", "cpu.cfs_quota_us", ""),
                file("cpu", "cpu.cfs_period_us", ""),
            ) {
                (Some(q), Some(p)) => Some(format!("{q} {p}")),
                _ => None,
            }
        };
        ReadBack {
            version: self.hierarchy.version().into(),
            paths: self
                .dirs
                .iter()
                .map(|(_, d)| d.display().to_string())
                .collect(),
            cpus: self
                .dirs
                .iter()
                .any(|(c, _)| c.is_empty() || *c == "cpuset")
                .then(|| file("cpuset", "cpuset.cpus", "cpuset.cpus"))
                .flatten()
                .filter(|s| !s.is_empty()),
            quota: quota.filter(|q| !q.starts_with("max") && !q.starts_with("-1")),
            memory_bytes: file("memory", "memory.limit_in_bytes", "memory.max")
                .and_then(|s| s.parse().ok()),
        }
    }

    /// Memory counters now: OOM kills and times the limit was hit.
    pub fn memory_events(&self) -> MemoryEvents {
        let Some(d) = self.dir("memory") else {
            return MemoryEvents::default();
        };
        match self.hierarchy {
            Hierarchy::V2 { .. } => {
                let events = read(&d.join("memory.events")).unwrap_or_default();
                MemoryEvents {
                    oom_kills: keyed(&events, "oom_kill"),
                    limit_hits: keyed(&events, "max"),
                }
            }
            Hierarchy::V1 { .. } => MemoryEvents {
                oom_kills: keyed(
                    &read(&d.join("memory.oom_control")).unwrap_or_default(),
                    "oom_kill",
                ),
                limit_hits: read(&d.join("memory.failcnt")).and_then(|s| s.parse().ok()),
            },
        }
    }
}

/// A cgroup's memory counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryEvents {
    /// Processes the kernel's OOM killer killed in the group.
    pub oom_kills: Option<u64>,
    /// Times usage hit the limit (v1 `memory.failcnt`, v2 `max` events).
    pub limit_hits: Option<u64>,
}

impl MemoryEvents {
    /// Counts between `before` and `self`.
    pub fn since(&self, before: &MemoryEvents) -> MemoryEvents {
        let d = |a: Option<u64>, b: Option<u64>| Some(a?.saturating_sub(b.unwrap_or(0)));
        MemoryEvents {
            oom_kills: d(self.oom_kills, before.oom_kills),
            limit_hits: d(self.limit_hits, before.limit_hits),
        }
    }
}

/// `key N` in a flat-keyed cgroup file.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == key).then(|| f.next()?.parse().ok())?
    })
}

fn quota_us(cpus: f64) -> u64 {
    (cpus * QUOTA_PERIOD_US as f64).round().max(1000.0) as u64
}

impl Drop for Group {
    fn drop(&mut self) {
        for (_, d) in &self.dirs {
            // Empty once the processes have exited; retry briefly.
            for _ in 0..40 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The limits of the cgroups `pid` is in, read from the files (for a
/// server the runner did not start). Each entry is `file = value`.
pub fn limits_of_pid(pid: u32) -> Vec<(String, String)> {
    let h = Hierarchy::detect();
    let p = pid.to_string();
    let files: &[(&str, &[&str])] = match h {
        Hierarchy::V2 { .. } => &[("", &["cpuset.cpus.effective", "cpu.max", "memory.max"])],
        Hierarchy::V1 { .. } => &[
            ("cpuset", &["cpuset.cpus"]),
            ("cpu", &["cpu.cfs_quota_us", "cpu.cfs_period_us"]),
            ("memory", &["memory.limit_in_bytes"]),
        ],
    };
    let mut out = Vec::new();
    for (controller, names) in files {
        if let Some(dir) = h.cgroup_of(&p, controller) {
            for n in *names {
                if let Some(v) = read(&dir.join(n)) {
                    out.push((dir.join(n).display().to_string(), v));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keyed_files_and_counts_since() {
        let oom = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(oom, "oom_kill"), Some(3));
        assert_eq!(keyed(oom, "missing"), None);
        let a = MemoryEvents {
            oom_kills: Some(1),
            limit_hits: Some(10),
        };
        let b = MemoryEvents {
            oom_kills: Some(3),
            limit_hits: Some(10),
        };
        assert_eq!(
            b.since(&a),
            MemoryEvents {
                oom_kills: Some(2),
                limit_hits: Some(0)
            }
        );
        assert_eq!(quota_us(0.5), 5000);
        assert_eq!(quota_us(0.01), 1000);
    }
}
