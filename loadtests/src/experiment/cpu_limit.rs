//! Where the server under test may run: its CPU limit ([`CpuLimit`]) and
//! how it is applied at start (`confine`), in order of preference a
//! cgroup (v2 `cpu.max`/`cpuset.cpus`, or v1 `cpu.cfs_quota_us` with a short
//! period and `cpuset.cpus`) that a tiny shell joins and then `exec`s the
//! server, so the server and every worker it forks start inside the limit;
//! else `taskset` for a CPU set (a quota cannot be emulated and is reported
//! as not applied). It builds the launch script and the cgroup; it does not
//! start or watch the server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::tools::shell_join;

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
pub(super) struct Cgroup {
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

/// The shell script that starts `args` inside `limit` (`name`: the name of
/// a cgroup made for it), what was applied, and the cgroup, to be kept
/// until the server has exited (it is removed on drop).
pub(super) fn confine(
    limit: &CpuLimit,
    name: &str,
    args: &[String],
) -> (String, AppliedLimit, Option<Cgroup>) {
    let wants_limit = limit.cpus.is_some() || limit.quota.is_some();
    // A cgroup that cannot be set up (read-only hierarchy, missing
    // controller) falls back to taskset below rather than failing.
    let cgroup = if wants_limit {
        make_cgroup(limit, name).unwrap_or(None)
    } else {
        None
    };
    let command = shell_join(args);
    let (script, applied) = match &cgroup {
        Some((cg, method)) => {
            let joins: Vec<String> = cg
                .procs
                .iter()
                .map(|p| format!("echo $$ > {}", shell_join(&[p.display().to_string()])))
                .collect();
            (
                format!("{} && exec {}", joins.join(" && "), command),
                AppliedLimit {
                    method: (*method).into(),
                    cpus: limit.cpus.clone(),
                    quota: limit.quota,
                    note: None,
                },
            )
        }
        None if wants_limit => match &limit.cpus {
            Some(c) if which("taskset") => (
                format!(
                    "exec taskset -c {} {}",
                    shell_join(std::slice::from_ref(c)),
                    command
                ),
                AppliedLimit {
                    method: "taskset".into(),
                    cpus: Some(c.clone()),
                    quota: None,
                    note: limit
                        .quota
                        .map(|q| format!("CPU quota {q} not applied: no writable cgroup")),
                },
            ),
            _ => (
                format!("exec {}", command),
                AppliedLimit {
                    method: "none".into(),
                    cpus: None,
                    quota: None,
                    note: Some("CPU limit not applied: no writable cgroup and no taskset".into()),
                },
            ),
        },
        None => (
            format!("exec {}", command),
            AppliedLimit {
                method: "none".into(),
                cpus: None,
                quota: None,
                note: None,
            },
        ),
    };
    (script, applied, cgroup.map(|(c, _)| c))
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_shell() {
        let args = vec!["/bin/quizbench".to_string(), "a'b c".to_string()];
        let (script, applied, cgroup) = confine(&CpuLimit::default(), "unused", &args);
        assert_eq!(script, r#"exec /bin/quizbench "a'b c""#);
        assert_eq!(shlex::split(&script).unwrap()[1..], args[..]);
        assert_eq!((applied.method.as_str(), cgroup.is_none()), ("none", true));
    }
}
