//! One short experiment end to end against the real server: the loadtests
//! runner (`quizload experiment`'s library entry point) starts the
//! `quizbench` binary this package just built (what `--server-bin` gives the
//! CLI) for two configurations, 1 and 2 processes, resets a small data set
//! before each start (`quizbench seed` with the file's `seed_args`), runs the
//! login scenario at two concurrencies with two trials each, samples the
//! server's processes and `/metrics`, stops the server, and writes its
//! results folder.
//!
//! The test owns a fresh PostgreSQL database (created here, dropped at the
//! end) and a Redis key prefix of its own (its keys deleted at the end). It
//! asserts mechanisms and counts — files written, trials per cell, exact
//! request counts, no failures, verdict lines with an interval, processes
//! sampled, DB connections counted, nothing left running — never timings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use loadtests::experiment::{run_experiment, ExperimentSpec, RunOptions, RunRecord};
use serde_json::Value;

#[path = "../common/mod.rs"]
mod common;
mod miniatures;

use common::{redis_url, scalar, TestDb};

/// This binary's databases and Redis keys (see `common::Suite`; it builds
/// no template).
const SUITE: common::Suite = common::Suite {
    db_prefix: "qb_exp_",
    redis_prefix: "qbexp",
    template_suffix: "exp",
    template_lock: 727276,
};

const SERVER_BIN: &str = common::BIN;

/// The experiments of this binary run one at a time: each names its
/// cgroups after this process and checks that no server it started is
/// left among this process's descendants.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The small data set the experiment seeds: 2 x 2 x 5 = 20 students.
const STUDENTS: i64 = 20;
/// Concurrency levels (virtual users, each logging in as its own student).
const LEVELS: [u64; 2] = [2, 4];
const REQUESTS_PER_USER: u64 = 10;
const TRIALS: usize = 2;

/// A quiet run of quizload against `server`, one generator thread, results
/// in `out`, the server started in the repository's folder.
fn quiet_run(server: PathBuf, out: PathBuf, seed: u64) -> RunOptions {
    RunOptions {
        server_bin: Some(server),
        out: Some(out),
        threads: Some(1),
        seed,
        workdir: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        quiet: true,
        ..RunOptions::default()
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A Redis key prefix of its own; its keys are deleted when the guard drops.
struct RedisPrefix(String);

impl RedisPrefix {
    fn new() -> RedisPrefix {
        RedisPrefix(common::redis_prefix())
    }

    fn keys(&self) -> Vec<String> {
        common::redis_keys(&redis_url(), &self.0)
    }
}

impl Drop for RedisPrefix {
    fn drop(&mut self) {
        common::cleanup_redis(&redis_url(), &self.0);
    }
}

/// A temporary directory, removed when the guard drops.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let d = std::env::temp_dir().join(format!("qb-exp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            eprintln!("results kept for inspection: {}", self.0.display());
        }
    }
}

fn experiment_toml(db: &TestDb, prefix: &str, files: &Path) -> String {
    let env = |processes: u32| {
        format!(
            "env = {{ PROCESSES = \"{processes}\", DATABASE_URL = \"{}\", REDIS_URL = \"{}\", \
             REDIS_PREFIX = \"{prefix}\", FILES_DIR = \"{}\", DB_POOL_MIN = \"1\", \
             DB_POOL_MAX = \"4\", ARGON2_MEMORY_KIB = \"64\", ARGON2_ITERATIONS = \"1\", \
             LOG_LEVEL = \"warn\" }}",
            db.url,
            redis_url(),
            files.display()
        )
    };
    format!(
        r#"
id = "ci"
title = "1 vs 2 processes, login, against the real server"
document = "seeds/000-tornado-multiprocess.md"
claim = "2 processes change login latency at 2 and 4 concurrent users"
argon2 = "argon2id m=64 KiB, t=1 (cheap: the test checks mechanisms, not the claim)"
table = "latency"
metric = "mean"
baseline = "single"
trials = {TRIALS}
warmup = "300ms"
pause = "50ms"
reset = true
seed_args = ["--organizations", "2", "--cohorts-per-org", "2", "--students-per-cohort", "5", "--quizzes", "3", "--attempts", "30"]

[cpu]
cpus = "0"

[load]
scenarios = ["login"]
concurrency = [{l0}, {l1}]
requests_per_user = {REQUESTS_PER_USER}
timeout = "30s"

[[configs]]
name = "single"
label = "Single-Process"
profile = "doc000-single"
{single}

[[configs]]
name = "multi"
label = "Multi-Process (2)"
profile = "doc000-multi"
{multi}
"#,
        l0 = LEVELS[0],
        l1 = LEVELS[1],
        single = env(1),
        multi = env(2),
    )
}

fn read_json(p: &Path) -> Value {
    let text =
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The executable of a process, if it is still there.
fn exe_of(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

fn is_server(pid: u32, server: &Path) -> bool {
    exe_of(pid).is_some_and(|e| e == server)
}

/// This process's descendants (from `/proc/*/stat`).
fn descendants() -> Vec<u32> {
    loadtests::experiment::sampler::process_tree(std::process::id())
        .into_iter()
        .filter(|p| *p != std::process::id())
        .collect()
}

#[test]
fn short_experiment_against_the_real_server() {
    let _serial = one_at_a_time();
    let server = std::fs::canonicalize(SERVER_BIN).expect("server binary");
    let db = block_on(TestDb::empty());
    let prefix = RedisPrefix::new();
    let dir = TempDir::new();
    let files = dir.0.join("files");
    let out = dir.0.join("results");
    let file = dir.0.join("ci.toml");
    std::fs::write(&file, experiment_toml(&db, &prefix.0, &files)).unwrap();
    let spec = ExperimentSpec::load(&file).expect("experiment file");
    let opts = quiet_run(server.clone(), out.clone(), 7);

    let (summary, folder) = run_experiment(&spec, &opts).expect("experiment runs");
    assert_eq!(folder, out);

    // --- nothing left running: every sampled server process is gone, no
    // descendant of this test runs the server binary, the cgroups are gone.
    let records: Vec<RunRecord> = loadtests::experiment::load_runs(&out).expect("runs/");
    let mut sampled: BTreeSet<u32> = BTreeSet::new();
    for r in &records {
        for p in &r.server.as_ref().expect("server usage").processes {
            sampled.insert(p.pid);
        }
    }
    assert!(!sampled.is_empty());
    for pid in &sampled {
        assert!(
            !is_server(*pid, &server),
            "server process {pid} still running after the experiment"
        );
    }
    let left: Vec<u32> = descendants()
        .into_iter()
        .filter(|p| is_server(*p, &server))
        .collect();
    assert!(left.is_empty(), "server processes left running: {left:?}");
    let cgroup_prefix = format!("quizload-{}-", std::process::id());
    for hierarchy in [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/cpuset",
        "/sys/fs/cgroup/cpu",
    ] {
        if let Ok(rd) = std::fs::read_dir(hierarchy) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    !name.starts_with(&cgroup_prefix),
                    "cgroup {hierarchy}/{name} left behind"
                );
            }
        }
    }

    // --- the results folder: summary, report, charts, one JSON per run.
    for f in [
        "summary.json",
        "report.md",
        "experiment.toml",
        "latency-login.svg",
        "throughput-login.svg",
        "worker-share.svg",
        "server-single.log",
        "server-multi.log",
    ] {
        assert!(out.join(f).is_file(), "{f} missing from the results folder");
    }
    for svg in [
        "latency-login.svg",
        "throughput-login.svg",
        "worker-share.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
            "{svg}"
        );
    }
    let configs = ["single", "multi"];
    let runs = configs.len() * LEVELS.len() * TRIALS;
    assert_eq!(records.len(), runs);
    assert_eq!(summary.runs, runs);
    let run_files = std::fs::read_dir(out.join("runs")).unwrap().count();
    assert_eq!(run_files, runs, "one JSON per run");

    // --- every run: the declared request count, all logins succeeded, the
    // raw histogram holds every request, the server was sampled.
    let mut server_cpu_s = 0.0;
    for r in &records {
        let rep = &r.report;
        let expected = REQUESTS_PER_USER * r.level as u64;
        assert_eq!(rep.requests, expected, "{} @ {}", r.config, r.level);
        assert_eq!(
            rep.successes, expected,
            "{} @ {}: {:?}",
            r.config, r.level, rep.errors
        );
        assert_eq!(rep.errors.total, 0, "{:?}", rep.errors);
        assert_eq!(rep.success_rate, 100.0);
        assert_eq!(rep.status_codes.get(&200), Some(&expected));
        let in_histogram: u64 = rep.histogram_us.iter().map(|b| b[1]).sum();
        assert_eq!(in_histogram, expected, "raw histogram of {}", r.config);
        assert_eq!(rep.endpoints.len(), 1);
        assert_eq!(rep.endpoints[0].name, "POST /api/v1/auth/login");
        let u = r.server.as_ref().unwrap();
        let names: Vec<&str> = u.processes.iter().map(|p| p.name.as_str()).collect();
        match r.config.as_str() {
            // supervisor + 2 workers
            "multi" => assert!(u.processes.len() >= 3, "multi: {names:?}"),
            _ => assert!(!u.processes.is_empty(), "single: {names:?}"),
        }
        assert!(u.rss_mb > 0.0, "RSS sampled");
        assert!(u
            .processes
            .iter()
            .all(|p| p.max_rss_mb > 0.0 && p.cpu_s >= 0.0));
        server_cpu_s += u.processes.iter().map(|p| p.cpu_s).sum::<f64>();
        let db_conns = u.db_connections.expect("DB connections from /metrics");
        assert!(db_conns >= 1.0, "DB connections counted: {db_conns}");
        let workers = if r.config == "multi" { 2 } else { 1 };
        assert_eq!(u.worker_requests.len(), workers, "{:?}", u.worker_requests);
        // Every login reached a worker, plus the runner's own /metrics
        // scrape before the run (the one after is counted after the read).
        let served: f64 = u.worker_requests.values().sum();
        assert!(served >= expected as f64, "{served} < {expected}");
        let method = u.limit.method.as_str();
        assert!(
            // applied by a cgroup: a limit that cannot be applied stops the run
            ["cgroup-v1", "cgroup-v2"].contains(&method),
            "{method}"
        );
        assert_eq!(u.worker_deaths, Some(0.0), "no worker died");
        assert_eq!(
            u.memory_events.oom_kills, None,
            "no memory limit, no counter"
        );
    }
    // 160 argon2 logins and 4 server starts cost some CPU time.
    assert!(server_cpu_s > 0.0, "server CPU time sampled");

    // --- summary: every cell ran the declared trials, resources present.
    assert_eq!(summary.cells.len(), configs.len() * LEVELS.len());
    for c in &summary.cells {
        assert_eq!(c.trials, TRIALS, "{} @ {}", c.config, c.level);
        assert_eq!(c.mean_ms.values.len(), TRIALS);
        assert!(c.rps.mean > 0.0);
        assert_eq!(c.success_rate.mean, 100.0);
        assert!(c.mean_ms.mean > 0.0 && c.mean_ms.ci95.is_finite());
        assert!(c.server_rss_mb.as_ref().is_some_and(|e| e.mean > 0.0));
        assert!(c.server_cpu_cores.is_some());
        assert!(c.db_connections.as_ref().is_some_and(|e| e.mean >= 1.0));
        let share: f64 = c.worker_share.values().sum();
        assert!((share - 1.0).abs() < 1e-9, "worker shares add up: {share}");
    }
    for trial in 0..TRIALS {
        let n = records.iter().filter(|r| r.trial == trial).count();
        assert_eq!(n, configs.len() * LEVELS.len(), "trial {trial}");
    }

    // --- verdicts: one per non-baseline cell, each with a 95% interval.
    assert_eq!(summary.verdicts.len(), LEVELS.len());
    for v in &summary.verdicts {
        assert_eq!(
            (v.config.as_str(), v.baseline.as_str()),
            ("multi", "single")
        );
        assert!(v.text.starts_with("Multi-Process (2):"), "{}", v.text);
        assert!(v.text.contains("95% CI ["), "{}", v.text);
        let (lo, hi) = (
            v.comparison.relative_low.expect("interval"),
            v.comparison.relative_high.expect("interval"),
        );
        assert!(lo <= v.comparison.relative && v.comparison.relative <= hi);
        assert_eq!((v.comparison.n_a, v.comparison.n_b), (TRIALS, TRIALS));
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| Configuration | Avg Response | Median | Min | Max | 95th % |"));
    assert!(md.contains("**Difference** (Multi-Process (2))"));
    assert!(md.contains("## Verdicts (95% CI over trials)"));
    assert_eq!(md.matches("95% CI [").count(), LEVELS.len(), "{md}");
    assert!(md.contains("## Resource cost"));
    assert!(md.contains("![worker-share.svg](worker-share.svg)"));
    let json = read_json(&out.join("summary.json"));
    assert_eq!(json["runs"], runs);
    assert!(json["rps"].as_f64().unwrap() > 0.0);
    let one = read_json(&out.join("runs/multi-login-4-t1.json"));
    assert!(!one["report"]["histogram_us"].as_array().unwrap().is_empty());

    // --- the reset ran before each of the 4 server starts, with seed_args:
    // the small data set is what is in the database.
    assert_eq!(
        block_on(scalar(
            &db.url,
            "select count(*) from users where role = 'student'"
        )),
        STUDENTS
    );
    assert!(
        !prefix.keys().is_empty(),
        "the server used its own key prefix"
    );
}
