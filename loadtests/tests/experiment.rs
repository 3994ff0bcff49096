//! The experiment runner end to end with a stand-in server binary: a shell
//! script that runs `quizload target` for `serve` and logs `seed`, its
//! arguments and its environment, so the runner's process handling, CPU
//! limit, repetitions, summaries, report files and `compare` are exercised
//! without PostgreSQL. (The real server is driven the same way with
//! `--server-bin target/release/quizbench`.)

mod common;

use std::path::Path;
use std::process::Command;

use common::quizload::{quoted, scratch, stand_in_server, words, write_script};

/// Runs `quizload LINE` (a shell-quoted command line) in `cwd`, which
/// must succeed: its stdout.
fn quizload(line: &str, cwd: &Path) -> String {
    common::quizload::ok(&words(line), Some(cwd)).0
}

/// Runs [`EXPERIMENT`] (written to `dir/t1.toml`) against the stand-in
/// server, writing to `out`, with `extra` arguments; its stdout.
fn experiment_with_stand_in(dir: &Path, out: &Path, extra: &str) -> String {
    let server = fake_server(dir);
    let file = dir.join("t1.toml");
    std::fs::write(&file, EXPERIMENT).unwrap();
    quizload(
        &format!(
            "experiment {} --server-bin {} --out {} --threads 1 {extra}",
            quoted(&file),
            quoted(&server),
            quoted(out)
        ),
        dir,
    )
}

/// The stand-in server, logging its arguments to `dir/args.log` and, at
/// each `serve`, its `PROCESSES` to `dir/env.log`.
fn fake_server(dir: &Path) -> std::path::PathBuf {
    let d = dir.display();
    stand_in_server(
        dir,
        &format!(r#"echo "$@" >> "{d}/args.log""#),
        &format!(r#"echo "PROCESSES=$PROCESSES" >> "{d}/env.log""#),
    )
}

const EXPERIMENT: &str = include_str!("fixtures/matrix.toml");

/// Two configurations x two levels x two trials: eight runs, reset before
/// each server start, env and profile passed, summary with verdicts,
/// Markdown report and charts written; `compare` works on two folders.
#[test]
fn runs_matrix_and_compares() {
    let scratch = scratch("matrix");
    let dir = scratch.path();
    let file = dir.join("t1.toml");
    let out_a = dir.join("a");
    let stdout = experiment_with_stand_in(dir, &out_a, "");
    assert!(
        stdout.contains("| Configuration | Avg Response | Median | Min | Max | 95th % |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("**Difference** (Multi-Process (2))"),
        "{stdout}"
    );
    assert!(stdout.contains("Verdicts"), "{stdout}");

    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_a.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["runs"], 8);
    assert!(summary["rps"].as_f64().unwrap() > 0.0);
    assert_eq!(summary["cells"].as_array().unwrap().len(), 4);
    let verdicts = summary["verdicts"].as_array().unwrap();
    assert_eq!(verdicts.len(), 2);
    assert!(verdicts[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("Multi-Process (2):"));
    for cell in summary["cells"].as_array().unwrap() {
        assert_eq!(cell["trials"], 2);
        assert_eq!(cell["mean_ms"]["values"].as_array().unwrap().len(), 2);
        assert!(
            cell["server_rss_mb"]["mean"].as_f64().unwrap() > 0.0,
            "{cell}"
        );
    }
    let runs: Vec<_> = std::fs::read_dir(out_a.join("runs")).unwrap().collect();
    assert_eq!(runs.len(), 8);
    let one: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_a.join("runs/one-healthz-4-t1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(one["report"]["requests"], 100, "requests_per_user x level");
    assert!(!one["server"]["processes"].as_array().unwrap().is_empty());
    let method = one["server"]["limit"]["method"].as_str().unwrap();
    // The CPU set was applied by a cgroup (a limit that cannot be applied
    // stops the run instead).
    assert!(["cgroup-v1", "cgroup-v2"].contains(&method), "{method}");
    assert_eq!(one["server"]["limit"]["cgroup"]["cpus"], "0");
    for f in ["report.md", "latency-healthz.svg", "throughput-healthz.svg"] {
        assert!(out_a.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(out_a.join("report.md")).unwrap();
    assert!(md.contains("Claim tested: two processes are slower"));
    assert!(md.contains("## Resource cost"));

    let log = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(
        log("seed.log").lines().count(),
        4,
        "seed before each of 4 starts"
    );
    let env = log("env.log");
    assert_eq!(env.lines().filter(|l| *l == "PROCESSES=1").count(), 2);
    assert_eq!(env.lines().filter(|l| *l == "PROCESSES=2").count(), 2);
    assert!(log("args.log").contains("--profile doc000-multi serve"));
    assert_eq!(
        log("args.log")
            .lines()
            .filter(|l| l.ends_with("seed --attempts 7"))
            .count(),
        4,
        "seed_args reach every reset"
    );

    // One configuration against a running server (--target), then compare.
    let out_b = dir.join("b");
    let target = Command::new(env!("CARGO_BIN_EXE_quizload"))
        .args(["target", "--bind", "127.0.0.1:0", "--duration", "60s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut target = KillOnDrop(target);
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .trim_start_matches("quizload target: ")
        .to_string();
    quizload(
        &format!(
            "experiment {} --target {url} --config two --out {} --trials 2 -q",
            quoted(&file),
            quoted(&out_b)
        ),
        dir,
    );
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_b.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(b["runs"], 4);
    assert_eq!(b["server"], url);
    // The target's own limits, read from the cgroups of the process that
    // listens on its address.
    let limits = b["method"]["target_limits"].as_array().unwrap();
    assert!(
        limits
            .iter()
            .any(|l| l[0].as_str().unwrap().ends_with("cpuset.cpus")
                && !l[1].as_str().unwrap().is_empty()),
        "{limits:?}"
    );
    assert!(std::fs::read_to_string(out_b.join("report.md"))
        .unwrap()
        .contains("Target's limits as read"));
    let cmp_json = dir.join("cmp.json");
    let stdout = quizload(
        &format!(
            "compare {} {} --json {}",
            quoted(&out_a),
            quoted(&out_b),
            quoted(&cmp_json)
        ),
        dir,
    );
    assert!(stdout.contains("mean latency"), "{stdout}");
    let cmp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cmp_json).unwrap()).unwrap();
    assert_eq!(cmp["verdicts"].as_array().unwrap().len(), 2);
    assert!(cmp["rps"].as_f64().unwrap() > 0.0);
    drop(target);
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The experiment files shipped in loadtests/experiments/ all parse and
/// validate, one per seed document.
#[test]
fn shipped_experiments_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let spec = loadtests::experiment::ExperimentSpec::load(&p)
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            ids.push(spec.id.clone());
        }
    }
    ids.sort();
    assert_eq!(
        ids,
        [
            "000",
            "001",
            "002",
            "003",
            "004",
            "004-logging",
            "004-sustained",
            "005",
            "005-app-bound"
        ]
    );
}

/// `--tool hey`: every cell's load is sent by the tool (here a stand-in
/// that logs its command line and prints a canned hey report) and read
/// into the same runs, summary and report; the server is still started,
/// sampled and stopped by the runner.
#[test]
fn cells_run_with_an_external_tool() {
    let scratch = scratch("tool");
    let dir = scratch.path();
    let hey = write_script(
        &dir.join("fake-hey"),
        &format!(
            "#!/bin/sh\necho \"$@\" >> '{log}'\necho \"$$ $(ps -o pgid= -p $$)\" >> '{log}.groups'\ni=0; while [ $i -lt 200000 ]; do i=$((i+1)); done\nprintf 'Summary:\\n  Total:\\t0.1 secs\\n  Average:\\t0.0020 secs\\n  Requests/sec:\\t500.0\\n\\nStatus code distribution:\\n  [200]\\t50 responses\\n'\n",
            log = dir.join("hey.log").display()
        ),
    );
    let out = dir.join("out");
    let extra = format!("--trials 1 --tool hey --tool-bin {}", quoted(&hey));
    let stdout = experiment_with_stand_in(dir, &out, &extra);
    assert!(stdout.contains("Verdicts"), "{stdout}");
    let log = std::fs::read_to_string(dir.join("hey.log")).unwrap();
    let calls: Vec<&str> = log.lines().collect();
    assert_eq!(calls.len(), 4, "2 configs x 2 levels x 1 trial: {log}");
    // requests_per_user 25 at 2 and 4 users
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("-c 2 -n 50 "))
            .count(),
        2
    );
    assert_eq!(
        calls
            .iter()
            .filter(|c| c.starts_with("-c 4 -n 100 "))
            .count(),
        2
    );
    assert!(calls.iter().all(|c| c.ends_with("/healthz")), "{log}");
    // Each tool ran in a process group of its own (a terminal's Ctrl-C
    // reaches quizload alone, which lets the cell finish).
    let groups = std::fs::read_to_string(dir.join("hey.log.groups")).unwrap();
    for line in groups.lines() {
        let ids: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(ids.len(), 2, "{groups}");
        assert_eq!(ids[0], ids[1], "pid and process group: {groups}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["load_tool"], "hey");
    assert_eq!(summary["runs"], 4);
    assert_eq!(summary["rps"], 500.0);
    let run: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("runs/two-healthz-4-t0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(run["report"]["tool"], "hey");
    assert_eq!(run["report"]["requests"], 50);
    // The stand-in spends its cell on the CPU: the generator's share is the
    // tool's, not only quizload's own (which waits for it).
    let generator = run["placement"]["cpu_cores"]["generator"].as_f64().unwrap();
    assert!(generator > 0.5, "generator cores {generator}");
    assert!(!run["server"]["processes"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("Load sent by hey"), "{md}");
}
