//! The CPU quota of this process's cgroup, read the way the kernel lays it
//! out: `/proc/self/cgroup` names the cgroup of each hierarchy and
//! `/proc/self/mountinfo` says where (and from which cgroup down) each
//! hierarchy is mounted. Handles cgroup v2, v1 with `cpu` mounted alone or
//! together with `cpuacct`, hybrid hosts, and containers whose
//! `/proc/self/cgroup` names a host path (`/docker/<id>`) while the mount
//! shows only that cgroup's subtree at `/sys/fs/cgroup/cpu`.
//!
//! The effective quota is the smallest one on the way from the process's
//! cgroup up to the top of the mount (a parent's limit binds its children).
//! Only reads files; never writes a cgroup.

use std::path::{Path, PathBuf};

/// The CPU quota in CPUs of the process whose `/proc/<pid>` is `proc_self`,
/// with every absolute path of its mount table resolved under `root` (`/`
/// in production; a fixture tree in tests). `None` when no quota is set.
pub fn cpu_quota_at(proc_self: &Path, root: &Path) -> Option<f64> {
    let memberships = std::fs::read_to_string(proc_self.join("cgroup")).ok()?;
    let mountinfo = std::fs::read_to_string(proc_self.join("mountinfo")).unwrap_or_default();
    let mounts = parse_mountinfo(&mountinfo);
    let mut best: Option<f64> = None;
    for line in memberships.lines() {
        let Some(membership) = Membership::parse(line) else {
            continue;
        };
        let version = match membership.controllers.as_slice() {
            [] => Version::V2,
            list if list.iter().any(|c| c == "cpu") => Version::V1,
            _ => continue,
        };
        let mut candidates: Vec<&Mount> = mounts.iter().filter(|m| m.serves(version)).collect();
        let fallback = [Mount::conventional(version)];
        if candidates.is_empty() {
            // No mount table (or an unusual one): the usual places.
            candidates = fallback.iter().flatten().collect();
        }
        for mount in candidates {
            if let Some(q) = mount.quota_for(&membership.path, root, version) {
                best = Some(best.map_or(q, |b: f64| b.min(q)));
            }
        }
    }
    best
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One line of `/proc/self/cgroup`: `id:controllers:path`.
struct Membership {
    controllers: Vec<String>,
    path: String,
}

impl Membership {
    fn parse(line: &str) -> Option<Membership> {
        let mut parts = line.splitn(3, ':');
        let (_id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        Some(Membership {
            controllers: controllers
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            path: path.to_string(),
        })
    }
}

/// A cgroup filesystem from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq)]
struct Mount {
    /// The cgroup shown at the mount point (`/` unless a subtree is mounted).
    root: String,
    /// Where it is mounted.
    point: PathBuf,
    version: Version,
    /// v1 controllers of the hierarchy (from the super options).
    controllers: Vec<String>,
}

impl Mount {
    /// The places a distribution usually mounts the hierarchy at.
    fn conventional(version: Version) -> Vec<Mount> {
        let at = |point: &str, controllers: &[&str]| Mount {
            root: "/".into(),
            point: point.into(),
            version,
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        };
        match version {
            Version::V2 => vec![at("/sys/fs/cgroup", &[])],
            Version::V1 => vec![
                at("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]),
                at("/sys/fs/cgroup/cpu", &["cpu"]),
            ],
        }
    }

    fn serves(&self, version: Version) -> bool {
        self.version == version
            && (version == Version::V2 || self.controllers.iter().any(|c| c == "cpu"))
    }

    /// The smallest quota from the cgroup `path` up to this mount's top.
    fn quota_for(&self, path: &str, root: &Path, version: Version) -> Option<f64> {
        let top = under(root, &self.point);
        // The cgroup relative to what is mounted: a container sees only its
        // own subtree, mounted with the host path as its root.
        let relative = strip_cgroup_prefix(path, &self.root).unwrap_or_default();
        let mut dir = top.join(relative.trim_start_matches('/'));
        if !dir.is_dir() {
            // A path that is not mounted as such (another namespace's
            // view): the mount's top is this process's cgroup.
            dir = top.clone();
        }
        let mut best: Option<f64> = None;
        loop {
            if let Some(q) = read_quota(&dir, version) {
                best = Some(best.map_or(q, |b: f64| b.min(q)));
            }
            if dir == top || !dir.pop() || !dir.starts_with(&top) {
                break;
            }
        }
        best
    }
}

/// `path` without the cgroup prefix `prefix` (component-wise).
fn strip_cgroup_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// `absolute` re-rooted under `root`.
fn under(root: &Path, absolute: &Path) -> PathBuf {
    root.join(absolute.strip_prefix("/").unwrap_or(absolute))
}

/// The quota set on one cgroup directory, if any.
fn read_quota(dir: &Path, version: Version) -> Option<f64> {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    match version {
        Version::V2 => parse_cpu_max(&read("cpu.max")?),
        Version::V1 => {
            let quota: i64 = read("cpu.cfs_quota_us")?.trim().parse().ok()?;
            let period: i64 = read("cpu.cfs_period_us")?.trim().parse().ok()?;
            (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
        }
    }
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "50000 100000").
pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut parts = text.split_whitespace();
    let quota = parts.next()?;
    let period: f64 = parts.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    Some(quota.parse::<f64>().ok()? / period)
}

/// The cgroup filesystems of a mount table (proc(5), `/proc/pid/mountinfo`:
/// `id parent dev root point options [optional...] - fstype source super`).
fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let (root, point) = (left.get(3)?, left.get(4)?);
            let (fstype, super_options) = (*right.first()?, right.get(2).copied().unwrap_or(""));
            let version = match fstype {
                "cgroup2" => Version::V2,
                "cgroup" => Version::V1,
                _ => return None,
            };
            Some(Mount {
                root: unescape(root),
                point: PathBuf::from(unescape(point)),
                version,
                controllers: super_options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The quota read from a fixture tree in a temporary directory:
    /// `proc/self/cgroup`, `proc/self/mountinfo` (when given) and `files`
    /// (paths relative to the root).
    fn quota_of(cgroup: &str, mountinfo: Option<&str>, files: &[(String, &str)]) -> Option<f64> {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("proc/self/cgroup", cgroup);
        if let Some(text) = mountinfo {
            write("proc/self/mountinfo", text);
        }
        for (path, text) in files {
            write(path, text);
        }
        cpu_quota_at(&root.path().join("proc/self"), root.path())
    }

    /// A cgroup v2 `cpu.max` in `dir`.
    fn v2(dir: &str, cpu_max: &'static str) -> (String, &'static str) {
        (format!("{dir}/cpu.max"), cpu_max)
    }

    /// A cgroup v1 quota of `quota_us` per 100 ms period in `dir`.
    fn v1(dir: &str, quota_us: &'static str) -> [(String, &'static str); 2] {
        [
            (format!("{dir}/cpu.cfs_quota_us"), quota_us),
            (format!("{dir}/cpu.cfs_period_us"), "100000"),
        ]
    }

    const ID: &str = "ec4ccf7a013e5e94d04a2cfe823c34c20f282b8ae6598fbe02cd816a2218909f";

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("200000 100000"), Some(2.0));
        assert_eq!(parse_cpu_max("garbage"), None);
    }

    #[test]
    fn v2_host_takes_the_tightest_ancestor() {
        let mounts = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        let files = [
            v2("sys/fs/cgroup/user.slice/session-1.scope", "max 100000\n"),
            v2("sys/fs/cgroup/user.slice", "150000 100000\n"),
        ];
        let cgroup = "0::/user.slice/session-1.scope\n";
        assert_eq!(quota_of(cgroup, Some(mounts), &files), Some(1.5));
    }

    #[test]
    fn v2_container_with_its_own_namespace() {
        let mounts = "80 79 0:47 / /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n";
        let files = [v2("sys/fs/cgroup", "100000 100000\n")];
        assert_eq!(quota_of("0::/\n", Some(mounts), &files), Some(1.0));
    }

    #[test]
    fn v2_container_seeing_the_host_path() {
        let mounts =
            format!("80 79 0:47 /docker/{ID} /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n");
        let files = [v2("sys/fs/cgroup", "50000 100000\n")];
        let cgroup = format!("0::/docker/{ID}\n");
        assert_eq!(quota_of(&cgroup, Some(&mounts), &files), Some(0.5));
    }

    #[test]
    fn unlimited_v2() {
        let mounts = "35 24 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let files = [v2("sys/fs/cgroup", "max 100000\n")];
        assert_eq!(quota_of("0::/\n", Some(mounts), &files), None);
    }

    /// This machine's layout inside a container: cgroup v1, `cpu` and
    /// `cpuacct` mounted apart, `/proc/self/cgroup` naming `/docker/<id>`
    /// while only that subtree is mounted at /sys/fs/cgroup/cpu.
    #[test]
    fn v1_split_controllers_in_a_container() {
        let cgroup = [9, 8, 4, 3, 2, 1]
            .iter()
            .zip(["name=systemd", "pids", "memory", "cpuset", "cpuacct", "cpu"])
            .map(|(n, c)| format!("{n}:{c}:/docker/{ID}\n"))
            .collect::<String>()
            + &format!("0::/docker/{ID}\n");
        let mounts = format!(
            "80 79 0:47 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755\n\
             81 80 0:29 /docker/{ID} /sys/fs/cgroup/cpu ro,nosuid - cgroup cgroup rw,cpu\n\
             82 80 0:30 /docker/{ID} /sys/fs/cgroup/cpuacct ro,nosuid - cgroup cgroup rw,cpuacct\n\
             83 80 0:31 /docker/{ID} /sys/fs/cgroup/cpuset ro,nosuid - cgroup cgroup rw,cpuset\n"
        );
        let mut files = v1("sys/fs/cgroup/cpu", "100000").to_vec();
        files.push(("sys/fs/cgroup/cpuacct/cpuacct.usage".into(), "1\n"));
        assert_eq!(quota_of(&cgroup, Some(&mounts), &files), Some(1.0));
    }

    #[test]
    fn v1_split_controllers_on_the_host() {
        let mounts = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                      33 31 0:30 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let files = [
            v1("sys/fs/cgroup/cpu/batch", "250000"),
            v1("sys/fs/cgroup/cpu", "-1"),
        ]
        .concat();
        let cgroup = "2:cpuacct:/\n1:cpu:/batch\n0::/\n";
        assert_eq!(quota_of(cgroup, Some(mounts), &files), Some(2.5));
    }

    #[test]
    fn v1_combined_controllers_on_the_host() {
        let mounts = "30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
        let files = v1(
            "sys/fs/cgroup/cpu,cpuacct/system.slice/app.service",
            "200000",
        );
        let cgroup = "4:cpu,cpuacct:/system.slice/app.service\n";
        assert_eq!(quota_of(cgroup, Some(mounts), &files), Some(2.0));
    }

    #[test]
    fn v1_combined_controllers_in_a_container() {
        let mounts = format!(
            "90 80 0:26 /docker/{ID} /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct\n"
        );
        let files = v1("sys/fs/cgroup/cpu,cpuacct", "150000");
        let cgroup = format!("4:cpu,cpuacct:/docker/{ID}\n");
        assert_eq!(quota_of(&cgroup, Some(&mounts), &files), Some(1.5));
    }

    #[test]
    fn hybrid_host_without_a_quota() {
        let mounts = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let files = v1("sys/fs/cgroup/cpu", "-1");
        assert_eq!(quota_of("1:cpu:/\n0::/\n", Some(mounts), &files), None);
    }

    /// Without a readable mount table the usual mount points are tried,
    /// and a host path that is not mounted as such falls back to the top.
    #[test]
    fn without_a_mount_table() {
        let files = v1("sys/fs/cgroup/cpu", "100000");
        assert_eq!(
            quota_of(&format!("1:cpu:/docker/{ID}\n"), None, &files),
            Some(1.0)
        );
    }

    #[test]
    fn mountinfo_escapes_and_other_filesystems() {
        let mounts = parse_mountinfo(
            "1 0 8:1 / / rw - ext4 /dev/vda rw\n\
             2 1 0:29 /a\\040b /sys/fs/cgroup/my\\040cpu rw shared:5 - cgroup cgroup rw,cpu\n",
        );
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].root, "/a b");
        assert_eq!(mounts[0].point, PathBuf::from("/sys/fs/cgroup/my cpu"));
        assert!(mounts[0].serves(Version::V1));
        assert!(!mounts[0].serves(Version::V2));
    }
}
