//! Calibration: the generator's maximum request rate on this machine,
//! measured against a trivial in-process target ([`target`]) or a given
//! URL, its efficiency per generator core, and optionally quizload against
//! wrk in alternating trials ([`calibrate`]). It runs through `load` and
//! `tools` and holds no engine logic of its own; it returns a report (and
//! its text) and prints only progress.

pub mod target;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::analysis::tables::text_table;
use crate::generator::scenarios::AuthMode;
use crate::generator::schedule::Arrival;
use crate::generator::sysmon::available_cpus;
use crate::load::{execute, prepare, run_config, LoadArgs, TargetArgs};
use crate::tools::run_wrk;
use crate::units::parse_duration;
use target::TrivialTarget;

#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    /// Calibrate against this URL instead of the in-process trivial target.
    #[arg(long)]
    pub url: Option<String>,
    /// Concurrencies to try; the best one is the generator's maximum.
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "16,64,256")]
    pub concurrency: Vec<usize>,
    /// Duration of each try.
    #[arg(short = 'd', long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Generator worker threads (default: one per available CPU).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Threads of the in-process target.
    #[arg(long, default_value_t = 1)]
    pub target_threads: usize,
    /// Also run wrk and quizload alternately against the same target with
    /// the same connections and threads (the first -c value) and report the
    /// median throughput ratio.
    #[arg(long)]
    pub vs_wrk: bool,
    /// Alternating trials of each tool for --vs-wrk.
    #[arg(long, default_value_t = 5)]
    pub trials: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// One try of a calibration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationTry {
    pub concurrency: usize,
    pub rps: f64,
    pub generator_cores_used: f64,
    /// Requests per second per core of generator CPU time.
    pub rps_per_generator_core: f64,
    pub machine_cpu_busy: Option<f64>,
    pub generator_saturated: bool,
    pub success_rate: f64,
    pub latency_p99_ms: f64,
}

/// Result of `quizload calibrate`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub tool: String,
    pub version: String,
    /// The highest request rate reached (the generator's measured maximum
    /// against this target on this machine).
    pub rps: f64,
    /// Concurrency of the best try.
    pub best_concurrency: usize,
    /// Efficiency at the best try: requests per generator CPU-second.
    pub rps_per_generator_core: f64,
    /// The generator's ceiling if it had every CPU to itself:
    /// `rps_per_generator_core × cpus` (an extrapolation, labelled so).
    pub extrapolated_rps_all_cpus: f64,
    pub cpus: usize,
    pub threads: usize,
    /// `in-process` or the URL given.
    pub target: String,
    pub tries: Vec<CalibrationTry>,
    /// `--vs-wrk`: alternating trials against wrk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_wrk: Option<WrkComparison>,
}

/// quizload vs wrk on the same target, same connections and threads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrkComparison {
    pub connections: usize,
    pub threads: usize,
    pub seconds: f64,
    /// Per trial, in the order run (they alternate which tool goes first).
    pub wrk_rps: Vec<f64>,
    pub quizload_rps: Vec<f64>,
    pub wrk_median: f64,
    pub quizload_median: f64,
    /// The median of the per-trial ratios `quizload / wrk`: each compares
    /// two runs made back to back, so drift of a shared machine between
    /// trials cancels out (the ratio of the two medians does not).
    pub ratio: f64,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The median of `num[i] / den[i]` over paired trials (0 for a zero
/// denominator).
fn median_of_ratios(num: &[f64], den: &[f64]) -> f64 {
    let ratios: Vec<f64> = num
        .iter()
        .zip(den)
        .map(|(n, d)| if *d > 0.0 { n / d } else { 0.0 })
        .collect();
    median(&ratios)
}

/// `quizload calibrate`: runs each concurrency against the target (the
/// in-process trivial one unless `--url`), keeps the best, and with
/// `--vs-wrk` alternates wrk and quizload. Progress goes to stderr unless
/// quiet; the report is the caller's to print or write.
pub fn calibrate(a: &CalibrateArgs) -> anyhow::Result<CalibrationReport> {
    if a.concurrency.is_empty() || a.concurrency.contains(&0) {
        bail!("--concurrency needs positive values");
    }
    let (_server, url, label) = match &a.url {
        Some(u) => (None, u.clone(), u.clone()),
        None => {
            let s = TrivialTarget::start(a.target_threads)?;
            let u = format!("http://{}/", s.addr());
            (Some(s), u, "in-process".to_string())
        }
    };
    let target = TargetArgs {
        url: Some(url),
        scenario: None,
        base: None,
        method: "GET".into(),
        headers: vec![],
        body: None,
        body_file: None,
        auth: AuthMode::Cookie,
        think: "0s".into(),
        weights: None,
        static_path: String::new(),
        student_offset: 0,
    };
    let prepared = prepare(&target, false)?;
    let load = LoadArgs {
        duration: Some(a.duration),
        requests: None,
        threads: a.threads,
        timeout: Duration::from_secs(10),
        ramp: None,
        spawn_rate: None,
        arrival: Arrival::Uniform,
        max_lag: Duration::from_secs(1),
        stages: None,
        seed: 1,
        json: None,
        quiet: a.quiet,
    };
    let mut tries = Vec::new();
    let mut threads = 0;
    for &c in &a.concurrency {
        let cfg = run_config(&load, prepared.addr, c, None)?;
        threads = cfg.effective_threads();
        if !a.quiet {
            eprintln!("calibrate: {c} connections for {:?}", a.duration);
        }
        let r = execute(&cfg, &prepared)?;
        let cores = r.generator.cpu_cores_used;
        tries.push(CalibrationTry {
            concurrency: c,
            rps: r.rps,
            generator_cores_used: cores,
            rps_per_generator_core: if cores > 0.0 { r.rps / cores } else { 0.0 },
            machine_cpu_busy: r.generator.machine_cpu_busy,
            generator_saturated: r.generator.saturated,
            success_rate: r.success_rate,
            latency_p99_ms: r.latency_ms.p99,
        });
    }
    let best = tries
        .iter()
        .max_by(|x, y| x.rps.total_cmp(&y.rps))
        .cloned()
        .expect("at least one try");
    let cpus = available_cpus();
    let vs_wrk = if a.vs_wrk {
        let c = a.concurrency[0];
        let cfg = run_config(&load, prepared.addr, c, None)?;
        let threads = cfg.effective_threads();
        let url = target.url.clone().expect("calibration URL");
        let (mut w, mut q) = (Vec::new(), Vec::new());
        for i in 0..a.trials.max(1) {
            // alternate which tool goes first
            for tool in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
                if tool == 0 {
                    w.push(run_wrk(&url, c, threads, a.duration)?.rps);
                } else {
                    q.push(execute(&cfg, &prepared)?.rps);
                }
            }
            if !a.quiet {
                eprintln!(
                    "vs wrk, trial {}: wrk {:.0} req/s, quizload {:.0} req/s",
                    i + 1,
                    w[i],
                    q[i]
                );
            }
        }
        let (wm, qm, ratio) = (median(&w), median(&q), median_of_ratios(&q, &w));
        Some(WrkComparison {
            connections: c,
            threads,
            seconds: a.duration.as_secs_f64(),
            wrk_rps: w,
            quizload_rps: q,
            wrk_median: wm,
            quizload_median: qm,
            ratio,
        })
    } else {
        None
    };
    Ok(CalibrationReport {
        tool: "quizload".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        rps: best.rps,
        best_concurrency: best.concurrency,
        rps_per_generator_core: best.rps_per_generator_core,
        extrapolated_rps_all_cpus: best.rps_per_generator_core * cpus as f64,
        cpus,
        threads,
        target: label,
        tries,
        vs_wrk,
    })
}

impl CalibrationReport {
    /// The tries as a table, the maximum, and the comparison with wrk if
    /// there was one: what `quizload calibrate` prints.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let mut rows = vec![vec![
            "Connections".to_string(),
            "Requests/Second".into(),
            "Generator cores".into(),
            "req/s per core".into(),
            "Machine busy".into(),
            "p99".into(),
            "Success".into(),
        ]];
        for t in &self.tries {
            rows.push(vec![
                t.concurrency.to_string(),
                format!("{:.0}", t.rps),
                format!("{:.2}", t.generator_cores_used),
                format!("{:.0}", t.rps_per_generator_core),
                t.machine_cpu_busy
                    .map(|b| format!("{:.0}%", b * 100.0))
                    .unwrap_or_else(|| "-".into()),
                format!("{:.2}ms", t.latency_p99_ms),
                format!("{:.1}%", t.success_rate),
            ]);
        }
        let _ = writeln!(
            o,
            "\nCalibration against {} ({} CPUs, {} generator threads):",
            self.target, self.cpus, self.threads
        );
        o.push_str(&text_table(&rows));
        let _ = writeln!(
            o,
            "\nMaximum measured: {:.0} req/s at {} connections ({:.0} req/s per generator core; about {:.0} req/s if the generator had all {} CPUs to itself).",
            self.rps,
            self.best_concurrency,
            self.rps_per_generator_core,
            self.extrapolated_rps_all_cpus,
            self.cpus
        );
        if let Some(v) = &self.vs_wrk {
            let _ = writeln!(
                o,
                "\nvs wrk ({} connections, {} threads, {} trials of {:.0} s, alternating): wrk median {:.0} req/s, quizload median {:.0} req/s, median of per-trial ratios {:.3}",
                v.connections,
                v.threads,
                v.wrk_rps.len(),
                v.seconds,
                v.wrk_median,
                v.quizload_median,
                v.ratio
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trials judged pairwise: a slow phase of the machine that hits both
    /// tools of one trial does not move the ratio, as it moves the ratio of
    /// the medians (here 100/120 = 0.83).
    #[test]
    fn the_wrk_ratio_is_the_median_of_per_trial_ratios() {
        let wrk = [100.0, 120.0, 140.0, 60.0, 200.0];
        let quizload = [98.0, 60.0, 137.0, 59.0, 100.0];
        let per_trial = median_of_ratios(&quizload, &wrk);
        assert!((per_trial - 137.0 / 140.0).abs() < 1e-9, "{per_trial}");
        assert!((median(&quizload) / median(&wrk) - 98.0 / 120.0).abs() < 1e-9);
        assert_eq!(median_of_ratios(&[1.0], &[0.0]), 0.0);
    }
}
