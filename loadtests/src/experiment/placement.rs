//! Where each component of an experiment runs and what the machine is:
//! pinning the load generator (every thread of this process, so the
//! engine's workers and any tool it runs inherit it), reading a process's
//! CPU affinity back from `/proc`, saying where components share CPUs
//! ([`overlaps`]), finding the process behind a `--target` address and its
//! limits, and the machine's facts ([`Machine`]: CPU model, kernel,
//! PostgreSQL and Redis versions, cgroup version). It reads `/proc` and
//! sets this process's affinity; it starts nothing.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::Command;

use anyhow::Context;
use nix::sched::{sched_setaffinity, CpuSet};
use nix::unistd::Pid;
use procfs::Current as _;
use serde::{Deserialize, Serialize};

use super::cgroup::Hierarchy;
use super::limits::cpu_list;

/// Pins every thread of this process (and so every thread and process it
/// starts later) to `cpus`.
pub fn pin_generator(cpus: &str) -> anyhow::Result<()> {
    let mut set = CpuSet::new();
    for c in cpu_list(cpus)? {
        set.set(c)
            .with_context(|| format!("generator CPU {c} is beyond the CPU set's size"))?;
    }
    let tasks = std::fs::read_dir("/proc/self/task").context("cannot list /proc/self/task")?;
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        sched_setaffinity(Pid::from_raw(tid), &set).with_context(|| {
            format!("cannot apply the generator's CPU set {cpus:?} (sched_setaffinity)")
        })?;
    }
    Ok(())
}

/// `Cpus_allowed_list` of a process or thread (`self`, `123`, `self/task/124`).
pub fn affinity_of(proc_path: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{proc_path}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|s| s.trim().to_string())
}

/// The CPUs any thread of this process may run on, as a list.
pub fn generator_affinity() -> String {
    let mut cpus = BTreeSet::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = format!("self/task/{}", t.file_name().to_string_lossy());
        if let Some(list) = affinity_of(&path).and_then(|l| cpu_list(&l).ok()) {
            cpus.extend(list);
        }
    }
    join_cpus(&cpus)
}

fn join_cpus(cpus: &BTreeSet<usize>) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The measured CPU affinity of each component during a cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Affinities {
    /// `server`, `generator`, `postgres`, `redis` → CPU list.
    pub cpus: std::collections::BTreeMap<String, String>,
}

/// Where the server shares CPUs with another component: one sentence per
/// pair, empty when every component has CPUs of its own.
pub fn overlaps(a: &Affinities) -> Vec<String> {
    let server = match a.cpus.get("server").and_then(|s| cpu_list(s).ok()) {
        Some(s) => s.into_iter().collect::<BTreeSet<_>>(),
        None => return vec![],
    };
    let mut out = Vec::new();
    for (name, list) in a.cpus.iter().filter(|(n, _)| n.as_str() != "server") {
        let Ok(other) = cpu_list(list) else { continue };
        let shared: BTreeSet<usize> = other.into_iter().filter(|c| server.contains(c)).collect();
        if !shared.is_empty() {
            out.push(format!(
                "the server and the {name} share CPU {}",
                join_cpus(&shared)
            ));
        }
    }
    out
}

/// The pid listening on a local TCP address (a `--target` the runner did
/// not start), found through `/proc/net/tcp*` and the processes' sockets.
pub fn listener_pid(addr: SocketAddr) -> Option<u32> {
    let mut inodes = BTreeSet::new();
    let entries = procfs::net::tcp()
        .into_iter()
        .flatten()
        .chain(procfs::net::tcp6().into_iter().flatten());
    for e in entries {
        let port_matches = e.local_address.port() == addr.port();
        let ip_matches = e.local_address.ip() == addr.ip() || e.local_address.ip().is_unspecified();
        if e.state == procfs::net::TcpState::Listen && port_matches && ip_matches {
            inodes.insert(e.inode);
        }
    }
    if inodes.is_empty() {
        return None;
    }
    procfs::process::all_processes().ok()?.flatten().find_map(|p| {
        let fds = p.fd().ok()?;
        fds.flatten()
            .any(|fd| matches!(fd.target, procfs::process::FDTarget::Socket(i) if inodes.contains(&i)))
            .then_some(p.pid as u32)
    })
}

/// The machine an experiment ran on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub kernel: String,
    pub memory_mb: u64,
    /// `cgroup-v1` or `cgroup-v2`.
    pub cgroup: String,
    pub postgres: String,
    pub redis: String,
}

impl Machine {
    /// Reads the machine's facts; `versions` are the private services'
    /// (else the installed binaries' are asked).
    pub fn read(versions: Option<&(String, String)>) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let memory_mb = procfs::Meminfo::current()
            .map(|m| m.mem_total / 1_048_576)
            .unwrap_or(0);
        let (postgres, redis) = match versions {
            Some((p, r)) => (p.clone(), r.clone()),
            None => (
                installed_version(&["postgres", "psql"]),
                installed_version(&["redis-server"]),
            ),
        };
        Machine {
            cpu_model,
            cpus: online_cpus(),
            kernel,
            memory_mb,
            cgroup: Hierarchy::detect().version().into(),
            postgres,
            redis,
        }
    }
}

/// The machine's online CPUs (not this process's affinity, which the
/// generator's placement narrows).
pub fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| cpu_list(s.trim()).ok())
        .map_or_else(crate::generator::sysmon::available_cpus, |l| l.len())
}

fn installed_version(bins: &[&str]) -> String {
    for b in bins {
        let path = super::services::find_bin(b);
        if let Some(p) = path {
            if let Ok(o) = Command::new(&p).arg("--version").output() {
                let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if !v.is_empty() {
                    return format!("{v} (installed)");
                }
            }
        }
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlaps_are_named() {
        let mut a = Affinities::default();
        a.cpus.insert("server".into(), "0".into());
        a.cpus.insert("generator".into(), "1".into());
        a.cpus.insert("postgres".into(), "1".into());
        assert!(overlaps(&a).is_empty());
        a.cpus.insert("redis".into(), "0-1".into());
        assert_eq!(overlaps(&a), vec!["the server and the redis share CPU 0"]);
        assert!(affinity_of("self").is_some());
        assert!(!generator_affinity().is_empty());
    }
}
