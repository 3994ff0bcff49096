//! The experiment runner's envelopes, windows and long runs, end to end
//! with a stand-in server (a shell script that execs `quizload target`
//! for `serve`) that writes down, from inside, what it sees: its CPU
//! affinity, its cgroup's CPU set and memory limit, and the CPU affinity
//! of the PostgreSQL and Redis it was pointed at. The private PostgreSQL
//! and Redis are real (`initdb`, `redis-server`), started by the runner.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::quizload::{scratch, stand_in_server};
use loadtests::experiment::sampler::process_tree;
use serde_json::Value;
use tempfile::TempDir;

/// The stand-in: `seed` is logged; `serve` writes what it sees into
/// `DIR/seen-N.log` and execs the trivial target on `$BIND`.
fn stand_in(dir: &Path) -> PathBuf {
    let on_serve = format!(
        r#"      log="{dir}/seen-$$.log"
      grep Cpus_allowed_list /proc/self/status | sed 's/.*:\s*/server_affinity=/' >> "$log"
      v2=$(grep '^0::' /proc/self/cgroup | cut -d: -f3)
      cs=$(grep ':cpuset:' /proc/self/cgroup | cut -d: -f3)
      mem=$(grep ':memory:' /proc/self/cgroup | cut -d: -f3)
      if [ -n "$cs" ]; then
        echo "cgroup_cpuset=$(cat /sys/fs/cgroup/cpuset$cs/cpuset.cpus)" >> "$log"
        echo "cgroup_memory=$(cat /sys/fs/cgroup/memory$mem/memory.limit_in_bytes)" >> "$log"
      else
        echo "cgroup_cpuset=$(cat /sys/fs/cgroup$v2/cpuset.cpus)" >> "$log"
        echo "cgroup_memory=$(cat /sys/fs/cgroup$v2/memory.max)" >> "$log"
      fi
      if [ -n "$DATABASE_URL" ]; then
        port=$(echo "$DATABASE_URL" | sed 's/.*:\([0-9]*\)\/.*/\1/')
        data=$(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'show data_directory')
        pid=$(head -1 "$data/postmaster.pid")
        grep Cpus_allowed_list /proc/$pid/status | sed 's/.*:\s*/postgres_affinity=/' >> "$log"
        echo "postgres_max_connections=$(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atc 'show max_connections')" >> "$log"
      fi"#,
        dir = dir.display(),
    );
    stand_in_server(dir, "", &on_serve)
}

/// What the stand-in saw, key by key, over all its starts.
fn seen(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("seen-") {
            for l in std::fs::read_to_string(e.path()).unwrap().lines() {
                if let Some((k, v)) = l.split_once('=') {
                    out.push((k.to_string(), v.trim().to_string()));
                }
            }
        }
    }
    out
}

fn experiment(body: &str) -> String {
    format!(
        r#"
id = "t"
title = "stand-in"
document = "seeds/000-tornado-multiprocess.md"
claim = "none"
argon2 = "not used"
table = "latency"
baseline = "one"
trials = 1
pause = "0s"
{body}
"#
    )
}

const ONE_CONFIG: &str = r#"
[load]
scenarios = ["healthz"]
concurrency = [2]
requests_per_user = 20

[[configs]]
name = "one"
"#;

/// A scratch folder with the stand-in server and the experiment file
/// `t.toml` ([`experiment`] of a body), whose results go to `out`.
struct Case {
    _scratch: TempDir,
    dir: PathBuf,
    server: PathBuf,
    file: PathBuf,
    out: PathBuf,
}

impl Case {
    fn new(name: &str, body: &str) -> Self {
        let scratch = scratch(name);
        let dir = scratch.path().to_path_buf();
        let server = stand_in(&dir);
        let file = dir.join("t.toml");
        std::fs::write(&file, experiment(body)).unwrap();
        Self {
            out: dir.join("out"),
            _scratch: scratch,
            dir,
            server,
            file,
        }
    }

    /// `quizload experiment` on the file with the stand-in, then `extra`,
    /// run in the scratch folder (not yet started).
    fn command(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quizload"));
        cmd.arg("experiment")
            .arg(&self.file)
            .arg("--server-bin")
            .arg(&self.server)
            .arg("--out")
            .arg(&self.out)
            .args(["--threads", "1", "-q"])
            .args(extra)
            .current_dir(&self.dir);
        cmd
    }

    /// Runs the experiment, whatever its exit status.
    fn run(&self, extra: &[&str]) -> Output {
        self.command(extra).output().expect("quizload runs")
    }

    /// Runs the experiment, which must succeed.
    fn ok(&self, extra: &[&str]) {
        let r = self.run(extra);
        assert!(
            r.status.success(),
            "quizload experiment {extra:?} failed:\n{}",
            String::from_utf8_lossy(&r.stderr)
        );
    }

    /// The JSON file `rel` of the results.
    fn json(&self, rel: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.out.join(rel)).unwrap()).unwrap()
    }

    /// The results' report.md.
    fn report(&self) -> String {
        std::fs::read_to_string(self.out.join("report.md")).unwrap()
    }
}

fn cpus_of(list: &str) -> Vec<usize> {
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => out.extend(a.parse::<usize>().unwrap()..=b.parse().unwrap()),
            None => out.push(part.parse().unwrap()),
        }
    }
    out
}

/// One CPU for the server, the other for the generator and the private
/// PostgreSQL and Redis: the server's cgroup carries the CPU set and the
/// memory limit (read from inside), the generator's and PostgreSQL's
/// affinity exclude the server's CPU, PostgreSQL runs with the file's
/// settings, and the report names the method and the machine.
#[test]
fn one_cpu_miniature_keeps_components_apart() {
    let case = Case::new(
        "envelope",
        &format!(
            r#"
[limits]
cpus = "1"
memory = "256M"

[placement]
generator = "0"

[services]
cpus = "0"
memory = "512M"
max_connections = 37
shared_buffers = "16MB"
{ONE_CONFIG}"#
        ),
    );
    case.ok(&[]);
    let seen = seen(&case.dir);
    let get = |k: &str| {
        seen.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{k} not seen: {seen:?}"))
    };
    assert_eq!(get("server_affinity"), "1");
    assert_eq!(get("cgroup_cpuset"), "1");
    assert_eq!(get("cgroup_memory"), (256u64 << 20).to_string());
    assert!(!cpus_of(&get("postgres_affinity")).contains(&1), "{seen:?}");
    assert_eq!(get("postgres_max_connections"), "37");
    assert_eq!(
        std::fs::read_to_string(case.dir.join("seed.log")).unwrap(),
        "seeded\n",
        "private services are seeded once"
    );

    let summary = case.json("summary.json");
    let gen = summary["generator_cpus"].as_str().unwrap();
    assert!(!cpus_of(gen).contains(&1), "generator on {gen}");
    let run = case.json("runs/one-healthz-2-t0.json");
    let aff = &run["placement"]["affinity"]["cpus"];
    assert_eq!(aff["server"], "1");
    for c in ["generator", "postgres", "redis"] {
        assert!(
            !cpus_of(aff[c].as_str().unwrap()).contains(&1),
            "{c}: {aff}"
        );
    }
    assert_eq!(run["placement"]["overlaps"].as_array().unwrap().len(), 0);
    let shares = run["placement"]["cpu_cores"].as_object().unwrap();
    for c in ["server", "generator", "postgres", "redis"] {
        assert!(shares.contains_key(c), "{shares:?}");
    }
    assert_eq!(run["server"]["memory_events"]["oom_kills"], 0);
    assert!(run["build"]["binary_sha256"].as_str().unwrap().len() == 64);
    let method = &summary["method"]["server"]["one"];
    assert!(method["method"].as_str().unwrap().starts_with("cgroup-v"));
    assert_eq!(method["cgroup"]["memory_bytes"], 256u64 << 20);
    let md = case.report();
    for needle in [
        "## Method and machine",
        "cpuset 1",
        "memory 256M",
        "Private PostgreSQL and Redis (started by the runner): cgroup-v",
        "threads pinned to CPUs 0",
        "Components kept apart",
        "PostgreSQL: postgres (PostgreSQL)",
        "Redis: Redis server",
        "kernel ",
        "OOM kills",
    ] {
        assert!(md.contains(needle), "{needle:?} not in\n{md}");
    }
}

/// Two CPUs for the server on a box whose generator must share them: the
/// overlap is recorded and reported, with each component's CPU share.
#[test]
fn two_cpu_miniature_records_the_overlap() {
    let case = Case::new(
        "overlap",
        &format!("[limits]\ncpus = \"0-1\"\n{ONE_CONFIG}"),
    );
    case.ok(&[]);
    let summary = case.json("summary.json");
    let cell = &summary["cells"][0];
    let overlaps = cell["overlaps"].as_array().unwrap();
    assert!(
        overlaps.iter().any(|o| o
            .as_str()
            .unwrap()
            .contains("the server and the generator share CPU 0,1")),
        "{cell}"
    );
    assert!(cell["cpu_share"]["generator"]["mean"].as_f64().is_some());
    let md = case.report();
    assert!(md.contains("NOT KEPT APART on this machine"), "{md}");
}

/// A limit that cannot be applied stops the run, naming the limit and how
/// to get the permission; with --allow-unconfined the run goes on and the
/// report says what was not applied.
#[test]
fn an_unappliable_limit_refuses_unless_allowed() {
    // A CPU the machine does not have.
    let case = Case::new(
        "refuse",
        &format!("[limits]\ncpus = \"4095\"\n{ONE_CONFIG}"),
    );
    let r = case.run(&[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "{err}");
    assert!(
        err.contains("server under test: cannot apply the CPU set")
            && err.contains("systemd-run --user --scope")
            && err.contains("--allow-unconfined"),
        "{err}"
    );
    assert!(
        !case.dir.join("seed.log").exists() && seen(&case.dir).is_empty(),
        "no server started"
    );

    // No cgroup hierarchy at all (a hook for machines without one): a
    // memory limit refuses too, and runs unconfined when allowed.
    std::fs::write(
        &case.file,
        experiment(&format!("[limits]\nmemory = \"256M\"\n{ONE_CONFIG}")),
    )
    .unwrap();
    let no_cgroups = |extra: &[&str]| {
        case.command(extra)
            .env("QUIZLOAD_CGROUP_ROOT", case.dir.join("no-cgroups"))
            .output()
            .unwrap()
    };
    let r = no_cgroups(&[]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("cannot apply the memory limit"),
        "{err}"
    );
    let r = no_cgroups(&["--allow-unconfined"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let md = case.report();
    assert!(
        md.contains("UNCONFINED") && md.contains("memory limit"),
        "{md}"
    );
    let summary = case.json("summary.json");
    assert_eq!(summary["method"]["server"]["one"]["method"], "none");
}

/// The journey with a spawn rate: the measured window opens after the last
/// user has started, so every login (made at each user's start) falls in
/// the ramp, none in the window.
#[test]
fn ramped_journey_window_opens_after_the_last_user() {
    let case = Case::new("window", include_str!("fixtures/window.toml"));
    case.ok(&[]);
    let out = &case.out;
    let run = case.json("runs/one-journey-6-t0.json");
    let w = &run["window"];
    // 6 users at 4/s: the last starts 1.25 s in; the window opens 0.5 s later.
    assert_eq!(w["last_user_started_s"], 1.25);
    assert_eq!(w["opens_s"], 1.75);
    let logins = |part: &Value| {
        part["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "POST /api/v1/auth/login")
            .map_or(0, |e| e["requests"].as_u64().unwrap())
    };
    assert_eq!(logins(&run["report"]), 0, "no login in the window");
    assert_eq!(
        logins(&run["report"]["setup"]),
        6,
        "every login in the ramp"
    );
    assert!(run["report"]["requests"].as_u64().unwrap() > 0);
    let secs = run["report"]["timeseries"].as_array().unwrap();
    assert!(
        (2..=3).contains(&secs.len()),
        "the series covers the 2 s window: {}",
        secs.len()
    );
    // Kept per cell as CSV and charted.
    let csv = std::fs::read_to_string(out.join("series/one-journey-6.csv")).unwrap();
    assert!(csv.starts_with("trial,second,responses,errors,mean_ms,p50_ms,p99_ms,max_ms\n"));
    assert_eq!(csv.lines().count(), secs.len() + 1);
    let md = case.report();
    assert!(
        md.contains("![series/one-journey-6.svg](series/one-journey-6.svg)"),
        "{md}"
    );
    assert!(out.join("series/one-journey-6.svg").is_file());
}

/// A run stopped after some cells resumes and runs only the missing ones;
/// a folder of another build is refused; --only runs a subset.
#[test]
fn a_stopped_run_resumes_with_the_missing_cells() {
    let case = Case::new("resume", include_str!("fixtures/resume.toml"));
    let out = &case.out;
    case.ok(&["--max-cells", "3"]);
    let runs = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d.join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = runs(out);
    assert_eq!(before.len(), 3);
    let stamp = |name: &str| {
        std::fs::metadata(out.join("runs").join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let stamps: Vec<_> = before.iter().map(|n| stamp(n)).collect();

    // Without --resume the folder is not overwritten.
    let r = case.run(&[]);
    assert!(!r.status.success());
    assert!(String::from_utf8_lossy(&r.stderr).contains("--resume"));

    case.ok(&["--resume"]);
    let after = runs(out);
    assert_eq!(after.len(), 4, "{after:?}");
    for (n, t) in before.iter().zip(&stamps) {
        assert_eq!(stamp(n), *t, "{n} was not run again");
    }
    let summary = case.json("summary.json");
    assert_eq!(summary["runs"], 4);
    assert_eq!(summary["builds"].as_array().unwrap().len(), 1);

    // Another build of the server: refused, unless mixing is asked for.
    std::fs::write(
        &case.server,
        std::fs::read_to_string(&case.server).unwrap() + "# another build\n",
    )
    .unwrap();
    let more = ["--resume", "--trials", "2", "--only", "two@2"];
    let r = case.run(&more);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("another server build"),
        "{err}"
    );
    case.ok(&[&more[..], &["--mix-builds"]].concat());
    let last = runs(out);
    assert_eq!(last.len(), 5, "--only ran one cell of trial 2: {last:?}");
    assert!(last.contains(&"two-healthz-2-t1.json".to_string()));
    let md = case.report();
    assert!(md.contains("MIXED BUILDS"), "{md}");
}

/// The processes below `pid` (zombies included: [`survivors`] skips them).
fn descendants(pid: u32) -> Vec<u32> {
    process_tree(pid).split_off(1)
}

/// Waits up to `limit` until none of `pids` is alive; the survivors.
fn survivors(pids: &[u32], limit: std::time::Duration) -> Vec<u32> {
    let alive = |p: u32| {
        procfs::process::Process::new(p as i32)
            .and_then(|p| p.stat())
            .is_ok_and(|s| s.state != 'Z')
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || std::time::Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Starts the runner and waits until it has written `runs` run files and
/// has a server and its private services running; its child process.
fn started_runner(case: &Case, extra: &[&str], runs: usize) -> std::process::Child {
    let mut child = case
        .command(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let written = || {
        std::fs::read_dir(case.out.join("runs"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // PostgreSQL (with its helpers), Redis and the server.
    while written() < runs || descendants(child.id()).len() < 3 {
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the runner did not get going");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child
}

/// The cgroups (any controller) named after the runner `pid`.
fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("quizload-{pid}-");
    let mut found = Vec::new();
    let mut dirs = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    found.push(e.path());
                } else if depth < 4 {
                    dirs.push((e.path(), depth + 1));
                }
            }
        }
    }
    found
}

/// SIGTERM stops the runner after the cell in progress: it exits 143
/// naming --resume, and the server, PostgreSQL and Redis it started are
/// gone. Killed outright (SIGKILL), it leaves none of them either (the
/// kernel signals them), and the next run removes the cgroup it left. The
/// resumed run then completes the matrix.
#[test]
fn a_signalled_run_stops_cleanly_and_resumes() {
    let case = Case::new(
        "signal",
        r#"
[limits]
memory = "256M"

[services]
max_connections = 20
shared_buffers = "16MB"

[load]
scenarios = ["healthz"]
concurrency = [1, 2]
duration = "1s"

[[configs]]
name = "one"

[[configs]]
name = "two"
"#,
    );
    let trials = ["--trials", "3"];
    let runner = started_runner(&case, &trials, 1);
    let pids = descendants(runner.id());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(runner.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = runner.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{err}");
    assert!(
        err.contains("stopped by SIGTERM") && err.contains("--resume"),
        "{err}"
    );
    let left = survivors(&pids, std::time::Duration::from_secs(10));
    assert!(left.is_empty(), "left running: {left:?} of {pids:?}");
    let runs = |case: &Case| std::fs::read_dir(case.out.join("runs")).unwrap().count();
    let kept = runs(&case);
    assert!((1..12).contains(&kept), "{kept} runs kept");

    let resume = [&trials[..], &["--resume"]].concat();
    let mut runner = started_runner(&case, &resume, kept + 1);
    let pids = descendants(runner.id());
    let killed = runner.id();
    runner.kill().unwrap();
    runner.wait().unwrap();
    let left = survivors(&pids, std::time::Duration::from_secs(10));
    assert!(
        left.is_empty(),
        "left running after SIGKILL: {left:?} of {pids:?}"
    );
    assert!(
        !cgroups_of(killed).is_empty(),
        "the killed runner's server cgroup"
    );

    case.ok(&resume);
    assert_eq!(cgroups_of(killed), Vec::<PathBuf>::new());
    assert_eq!(runs(&case), 12, "2 configs x 2 levels x 3 trials");
    assert_eq!(case.json("summary.json")["runs"], 12);
}
