//! The JSON API's cookie clients after the pages' form rules: Locust's
//! journey (`loadtests/locustfile.py`, unchanged) and quizload's
//! `--scenario journey`, each a few seconds against the real binary, with
//! no failed request.

use std::path::Path;
use std::process::Command;

use crate::site::{tools, Site, COHORT};

/// Locust logs five students in by their cookie and runs document 002's
/// tasks (submitting attempts included) without one failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_locust_journey_runs_without_failures() {
    let Some(locust) = tools::required(tools::locust(), "Locust", "QB_SKIP_LOCUST") else {
        return;
    };
    let site = Site::start().await;
    let out = tools::artifacts("locust");
    let csv = out.join("run");
    let stats_file = out.join("run_stats.csv");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let site_base = site.base.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(locust)
            .arg("-f")
            .arg(root.join("loadtests/locustfile.py"))
            .args([
                "--headless",
                "-u",
                "5",
                "-r",
                "5",
                "-t",
                "4s",
                "--only-summary",
            ])
            .args(["--host", &site_base])
            .arg("--csv")
            .arg(&csv)
            .env("QUIZLOAD_THINK_MIN", "0.05")
            .env("QUIZLOAD_THINK_MAX", "0.2")
            .current_dir(&out)
            .output()
            .expect("run locust")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "locust failed:\n{text}");
    let stats = std::fs::read_to_string(&stats_file)
        .unwrap_or_else(|e| panic!("locust's CSV: {e}\n{text}"));
    let rows: Vec<Vec<&str>> = stats
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let total = rows
        .iter()
        .find(|r| r[1] == "Aggregated")
        .unwrap_or_else(|| panic!("no Aggregated row:\n{stats}"));
    assert_eq!(total[3], "0", "failures:\n{text}");
    assert!(total[2].parse::<u64>().unwrap() > 20, "{stats}");
    assert!(
        rows.iter()
            .any(|r| r[1] == "POST /api/v1/quizzes/{id}/attempts"),
        "no attempt was submitted:\n{stats}"
    );
}

/// `quizload run --scenario journey` (cookie sessions, as by default) for
/// a few seconds: every request answered 2xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quizload_journey_runs_without_failures() {
    let site = Site::start().await;
    let out = tools::artifacts("quizload");
    let json = out.join("journey.json");
    let args = [
        "quizload",
        "run",
        site.base.as_str(),
        "--scenario",
        "journey",
        "-c",
        "5",
        "-d",
        "3s",
        "--think",
        "20ms..100ms",
        "--threads",
        "1",
        "-q",
        "--json",
        json.to_str().unwrap(),
    ];
    let cli = <loadtests::cli::Cli as clap::Parser>::try_parse_from(args).unwrap();
    let status = tokio::task::spawn_blocking(move || loadtests::cli::main(cli))
        .await
        .unwrap();
    assert_eq!(status, std::process::ExitCode::SUCCESS, "quizload run");
    let report: loadtests::analysis::report::RunReport =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(report.requests > 20, "{report:?}");
    assert_eq!(
        report.successes, report.requests,
        "{:?}",
        report.status_codes
    );
    assert!(
        report.status_codes.keys().all(|s| matches!(s, 200 | 201)),
        "{:?}",
        report.status_codes
    );
    let submitted = site
        .count(&format!(
            "select count(*) from attempts where id > {}",
            COHORT.attempts
        ))
        .await;
    assert!(submitted > 0, "the journey submitted no attempt");
}
