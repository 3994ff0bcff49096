//! The envelope a process tree of the experiment runs in ([`Limits`]: a
//! CPU set, a CPU quota, a memory limit) and how it is applied at start
//! ([`confine`]): a cgroup ([`super::cgroup`]) that a tiny shell joins and
//! then `exec`s the program, so the program and every worker it forks
//! start inside. A limit that cannot be applied stops the run with an
//! error naming the limit, the reason and how to get the permission —
//! unless the run is allowed to go unconfined (`--allow-unconfined`), in
//! which case `taskset` pins a CPU set if it can and the record says what
//! was not applied. It builds the launch script and the group; it does not
//! start or watch the program.

use serde::{Deserialize, Serialize};

use super::cgroup::{Group, GroupLimits, ReadBack};
use crate::tools::shell_join;

/// The envelope of the server (`[limits]`, or a configuration's `limits`)
/// or of the private PostgreSQL and Redis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPU list for a cpuset, e.g. `0` or `0-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<String>,
    /// CPUs' worth of time via a CFS quota, e.g. `0.5` or `1.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<f64>,
    /// Memory limit of the whole tree, e.g. `512M`, `1G` (binary units).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.quota.is_none() && self.memory.is_none()
    }

    /// Checks the values parse (the kernel checks the rest when applied).
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(m) = &self.memory {
            parse_size(m)?;
        }
        if let Some(c) = &self.cpus {
            cpu_list(c)?;
        }
        if let Some(q) = self.quota {
            anyhow::ensure!(q > 0.0, "quota must be positive, not {q}");
        }
        Ok(())
    }

    fn group_limits(&self) -> anyhow::Result<GroupLimits> {
        Ok(GroupLimits {
            cpus: self.cpus.clone(),
            quota: self.quota,
            memory_bytes: self.memory.as_deref().map(parse_size).transpose()?,
        })
    }
}

/// Bytes of `512M`, `1G`, `1.5G`, `65536` (K, M, G, T are powers of 1024;
/// a trailing `B` or `iB` is accepted).
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => anyhow::bail!("unknown size unit in {s:?} (K, M, G or T)"),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?} (e.g. 512M, 1G)"))?;
    anyhow::ensure!(n > 0.0 && n.is_finite(), "size {s:?} must be positive");
    Ok((n * mult as f64) as u64)
}

/// The CPUs of a list such as `0-2,5`.
pub fn cpu_list(s: &str) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || anyhow::anyhow!("invalid CPU list {s:?} (e.g. 0, 0-1, 0,2)");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                anyhow::ensure!(a <= b, "invalid CPU range {part:?}");
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    anyhow::ensure!(!out.is_empty(), "empty CPU list {s:?}");
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// What was actually applied to a process tree.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedLimit {
    /// `cgroup-v2`, `cgroup-v1`, `taskset`, or `none`.
    pub method: String,
    pub cpus: Option<String>,
    pub quota: Option<f64>,
    #[serde(default)]
    pub memory: Option<String>,
    /// The cgroup's files as read back after writing them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<ReadBack>,
    /// Set when part of the requested limit was not applied (only with
    /// `--allow-unconfined`).
    pub note: Option<String>,
}

/// How a limit's refusal tells the user to get the permission.
pub const PERMISSION_HINT: &str = "run quizload as root, or inside a delegated cgroup \
(e.g. `systemd-run --user --scope -p Delegate=yes quizload experiment ...`); \
or pass --allow-unconfined to run without it (the report then says so)";

/// A limit that cannot be applied, without `--allow-unconfined`: the
/// experiment stops (it is not a configuration that failed to start).
#[derive(Debug)]
pub struct LimitRefused(String);

impl std::fmt::Display for LimitRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitRefused {}

/// A launch plan: the shell script that starts `args` inside `limits`,
/// what was applied, and the group (kept until the program has exited;
/// removed on drop).
pub struct Launch {
    pub script: String,
    pub applied: AppliedLimit,
    pub group: Option<Group>,
    /// What goes before the command: joining the group, or `taskset`.
    prefix: String,
}

impl Launch {
    /// The script that starts another program in the same envelope.
    pub fn script_for(&self, args: &[String], run_as: Option<&str>) -> String {
        format!("{}{}", self.prefix, command_line(args, run_as))
    }
}

fn command_line(args: &[String], run_as: Option<&str>) -> String {
    let command = shell_join(args);
    match run_as {
        // The change of user clears the parent-death signal
        // (`subprocess::tie_to_quizload`) unless setpriv keeps it.
        Some(user) => format!(
            "setpriv --reuid={u} --regid={u} --init-groups --pdeathsig keep {command}",
            u = shell_join(&[user.to_string()])
        ),
        None => command,
    }
}

/// Plans `args`' start inside `limits` (`name`: the cgroup's name; `who`:
/// what the limit is for, in errors). `run_as`: a user to become after
/// joining the group (`setpriv`), e.g. `postgres` when running as root.
pub fn confine(
    limits: &Limits,
    name: &str,
    who: &str,
    args: &[String],
    run_as: Option<&str>,
    allow_unconfined: bool,
) -> anyhow::Result<Launch> {
    let plan = |prefix: String, applied: AppliedLimit, group: Option<Group>| Launch {
        script: format!("{prefix}{}", command_line(args, run_as)),
        applied,
        group,
        prefix,
    };
    if limits.is_empty() {
        let applied = AppliedLimit {
            method: "none".into(),
            ..AppliedLimit::default()
        };
        return Ok(plan("exec ".into(), applied, None));
    }
    match Group::create(&limits.group_limits()?, name) {
        Ok(group) => {
            let joins: Vec<String> = group
                .procs_files()
                .iter()
                .map(|p| format!("echo $$ > {}", shell_join(&[p.display().to_string()])))
                .collect();
            let read_back = group.read_back();
            let applied = AppliedLimit {
                method: group.hierarchy.version().into(),
                cpus: read_back.cpus.clone(),
                quota: limits.quota,
                memory: limits.memory.clone(),
                cgroup: Some(read_back),
                note: None,
            };
            Ok(plan(
                format!("{} && exec ", joins.join(" && ")),
                applied,
                Some(group),
            ))
        }
        Err(refusal) if !allow_unconfined => Err(LimitRefused(format!(
            "{who}: {refusal}. To run with it, {PERMISSION_HINT}"
        ))
        .into()),
        Err(refusal) => {
            let note = format!("UNCONFINED (--allow-unconfined): {refusal}");
            Ok(match &limits.cpus {
                Some(c) if which("taskset") => plan(
                    format!("exec taskset -c {} ", shell_join(std::slice::from_ref(c))),
                    AppliedLimit {
                        method: "taskset".into(),
                        cpus: Some(c.clone()),
                        note: Some(format!(
                            "{note}; CPU set pinned with taskset, no quota or memory limit"
                        )),
                        ..AppliedLimit::default()
                    },
                    None,
                ),
                _ => plan(
                    "exec ".into(),
                    AppliedLimit {
                        method: "none".into(),
                        note: Some(note),
                        ..AppliedLimit::default()
                    },
                    None,
                ),
            })
        }
    }
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
        let l = confine(&Limits::default(), "unused", "server", &args, None, false).unwrap();
        assert_eq!(l.script, r#"exec /bin/quizbench "a'b c""#);
        assert_eq!(shlex::split(&l.script).unwrap()[1..], args[..]);
        assert_eq!(
            (l.applied.method.as_str(), l.group.is_none()),
            ("none", true)
        );
        let l = confine(
            &Limits::default(),
            "u",
            "pg",
            &args,
            Some("postgres"),
            false,
        )
        .unwrap();
        assert!(l
            .script
            .starts_with("exec setpriv --reuid=postgres --regid=postgres"));
    }

    #[test]
    fn sizes_and_cpu_lists_parse() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("440MB").unwrap(), 440 << 20);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert!(
            parse_size("12X").is_err() && parse_size("-1G").is_err() && parse_size("").is_err()
        );
        assert_eq!(cpu_list("0-2,5").unwrap(), vec![0, 1, 2, 5]);
        assert_eq!(cpu_list("1").unwrap(), vec![1]);
        assert!(cpu_list("2-1").is_err() && cpu_list("a").is_err() && cpu_list("").is_err());
    }
}
