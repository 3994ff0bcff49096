//! An experiment's figures as text: the summary's tables in the document's
//! shape ([`render_tables`]), the resource cost with each component's CPU
//! share, OOM kills and worker deaths ([`render_resources`]), the method
//! and machine ([`render_method`]), the claims' verdicts, `report.md`
//! ([`report_markdown`]) and what `quizload experiment` prints
//! ([`terminal_summary`]). Formatting only: it writes no file.

use std::fmt::Write as _;
use std::path::Path;

use super::figures::FigureRecord;
use super::spec::TableShape;
use super::summary::{CellSummary, Estimate, ExperimentSummary};
use crate::analysis::tables::markdown_table;

fn diff_text(base: f64, x: f64, higher_is_worse: bool) -> String {
    if base == 0.0 {
        return "-".into();
    }
    let rel = x / base - 1.0;
    let word = match (rel >= 0.0, higher_is_worse) {
        (true, true) => "slower",
        (false, true) => "faster",
        (true, false) => "higher",
        (false, false) => "lower",
    };
    format!("{:+.0}% {word}", rel * 100.0)
}

fn ms(e: &Estimate) -> String {
    if e.values.len() >= 2 {
        format!("{:.1}ms ±{:.1}", e.mean, e.ci95)
    } else {
        format!("{:.1}ms", e.mean)
    }
}

/// The summary's tables in the experiment's document shape, as Markdown.
pub fn render_tables(s: &ExperimentSummary) -> String {
    let spec = &s.experiment;
    let mut o = String::new();
    let unit = if spec.open() {
        "req/s"
    } else {
        "Concurrent Requests"
    };
    let scenarios: Vec<String> = spec.load.scenarios.iter().map(|k| k.name()).collect();
    match spec.table {
        TableShape::Latency => {
            for sc in &scenarios {
                for level in spec.levels() {
                    let row_cells: Vec<&CellSummary> = spec
                        .configs
                        .iter()
                        .filter_map(|c| {
                            s.cells.iter().find(|x| {
                                x.config == c.name && &x.scenario == sc && x.level == level
                            })
                        })
                        .collect();
                    if row_cells.is_empty() {
                        continue;
                    }
                    let _ = writeln!(o, "\n### {sc}: {level} {unit}\n");
                    let mut rows: Vec<Vec<String>> = row_cells
                        .iter()
                        .map(|c| {
                            vec![
                                format!("**{}**", c.label),
                                ms(&c.mean_ms),
                                ms(&c.p50_ms),
                                ms(&c.min_ms),
                                ms(&c.max_ms),
                                ms(&c.p95_ms),
                                format!("{:.1}%", c.success_rate.mean),
                                format!("{:.0}", c.rps.mean),
                            ]
                        })
                        .collect();
                    if let Some(base) = row_cells.iter().find(|c| c.config == spec.baseline) {
                        for c in row_cells.iter().filter(|c| c.config != spec.baseline) {
                            rows.push(vec![
                                format!("**Difference** ({})", c.label),
                                diff_text(base.mean_ms.mean, c.mean_ms.mean, true),
                                diff_text(base.p50_ms.mean, c.p50_ms.mean, true),
                                diff_text(base.min_ms.mean, c.min_ms.mean, true),
                                diff_text(base.max_ms.mean, c.max_ms.mean, true),
                                diff_text(base.p95_ms.mean, c.p95_ms.mean, true),
                                format!("{:+.1} pt", c.success_rate.mean - base.success_rate.mean),
                                diff_text(base.rps.mean, c.rps.mean, false),
                            ]);
                        }
                    }
                    o.push_str(&markdown_table(
                        &[
                            "Configuration",
                            "Avg Response",
                            "Median",
                            "Min",
                            "Max",
                            "95th %",
                            "Success",
                            "req/s",
                        ],
                        &rows,
                    ));
                }
            }
        }
        TableShape::Sweep => {
            for c in &spec.configs {
                for sc in &scenarios {
                    let rows: Vec<Vec<String>> = s
                        .cells
                        .iter()
                        .filter(|x| x.config == c.name && &x.scenario == sc)
                        .map(|x| {
                            vec![
                                format!("{}", x.level),
                                format!("{:.0} ±{:.0}", x.rps.mean, x.rps.ci95),
                                ms(&x.mean_ms),
                                ms(&x.p99_ms),
                                format!("{:.1}%", x.success_rate.mean),
                            ]
                        })
                        .collect();
                    if rows.is_empty() {
                        continue;
                    }
                    let _ = writeln!(o, "\n### {} ({sc})\n", c.label());
                    let first = if spec.open() {
                        "Target Rate"
                    } else {
                        "Concurrent Connections"
                    };
                    o.push_str(&markdown_table(
                        &[
                            first,
                            "Requests/Second",
                            "Avg Response Time",
                            "p99",
                            "Success Rate",
                        ],
                        &rows,
                    ));
                }
            }
        }
        TableShape::Endpoints => {
            for cell in &s.cells {
                let _ = writeln!(
                    o,
                    "\n### {}: {} {unit} ({})\n",
                    cell.label, cell.level, cell.scenario
                );
                let rows: Vec<Vec<String>> = cell
                    .endpoints
                    .iter()
                    .map(|e| {
                        vec![
                            e.name.clone(),
                            format!("{:.0}", e.requests),
                            format!("{:.0}", e.failures),
                            format!("{:.0}", e.p50_ms),
                            format!("{:.0}", e.mean_ms),
                            format!("{:.0}", e.min_ms),
                            format!("{:.0}", e.max_ms),
                            format!("{:.1}", e.rps),
                        ]
                    })
                    .collect();
                o.push_str(&markdown_table(
                    &[
                        "Name",
                        "# requests",
                        "# fails",
                        "Median (ms)",
                        "Average (ms)",
                        "Min (ms)",
                        "Max (ms)",
                        "req/s",
                    ],
                    &rows,
                ));
            }
        }
    }
    o
}

/// Resource cost next to the latency figures.
pub fn render_resources(s: &ExperimentSummary) -> String {
    let rows: Vec<Vec<String>> = s
        .cells
        .iter()
        .map(|c| {
            let f = |e: &Option<Estimate>, d: usize| {
                e.as_ref()
                    .map(|e| format!("{:.*}", d, e.mean))
                    .unwrap_or_else(|| "-".into())
            };
            vec![
                c.label.clone(),
                c.scenario.clone(),
                format!("{}", c.level),
                f(&c.server_cpu_cores, 2),
                f(&c.server_cpu_ms_per_response, 3),
                f(&c.bytes_per_response, 0),
                f(&c.server_rss_mb, 0),
                f(&c.db_connections, 0),
                if c.worker_share.is_empty() {
                    "-".into()
                } else {
                    c.worker_share
                        .values()
                        .map(|v| format!("{:.0}%", v * 100.0))
                        .collect::<Vec<_>>()
                        .join(" / ")
                },
                format!("{}/{}", c.generator_saturated_runs, c.trials),
                c.oom_kills.map_or("-".into(), |n| n.to_string()),
                c.worker_deaths.map_or("-".into(), |n| format!("{n:.0}")),
                if c.cpu_share.is_empty() {
                    "-".into()
                } else {
                    c.cpu_share
                        .iter()
                        .map(|(k, e)| format!("{k} {:.2}", e.mean))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                if c.overlaps.is_empty() {
                    "none".into()
                } else {
                    c.overlaps.join("; ")
                },
            ]
        })
        .collect();
    markdown_table(
        &[
            "Configuration",
            "Scenario",
            "Level",
            "Server CPU (cores)",
            "Server CPU per response (ms)",
            "Bytes per response",
            "Server RSS (MB)",
            "DB connections",
            "Worker request share",
            "Generator saturated",
            "OOM kills",
            "Worker deaths",
            "CPU share (cores)",
            "Shared CPUs",
        ],
        &rows,
    )
}

/// How the envelopes were applied and what the machine is.
pub fn render_method(s: &ExperimentSummary) -> String {
    let mut o = String::new();
    if let Some(m) = &s.machine {
        let _ = writeln!(
            o,
            "- Machine: {} ({} CPUs, {} MB), kernel {}, {}; PostgreSQL: {}; Redis: {}",
            m.cpu_model, m.cpus, m.memory_mb, m.kernel, m.cgroup, m.postgres, m.redis
        );
    }
    if let Some(m) = &s.measured {
        let utc = |t: f64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0)),
            )
        };
        let (from, to) = (utc(m.from_unix), utc(m.to_unix));
        let _ = writeln!(o, "- Measured: {from} to {to} (UTC)");
        if let Some(c) = &m.command {
            let _ = writeln!(o, "- Command: `{c}`");
        }
    }
    if let Some(n) = s.method.as_ref().and_then(|m| m.max_connections) {
        let _ = writeln!(o, "- PostgreSQL max_connections: {n} (as it reports it)");
    }
    if let Some(b) = s.builds.first() {
        let _ = writeln!(o, "- Server build: {b}");
        if s.builds.len() > 1 {
            let _ = writeln!(o, "- MIXED BUILDS: {}", s.builds.join("; "));
        }
    }
    let Some(m) = &s.method else {
        return o;
    };
    for (config, a) in &m.server {
        let _ = writeln!(o, "- Server ({config}): {}", applied_text(a));
    }
    if !m.target_limits.is_empty() {
        let limits: Vec<String> = m
            .target_limits
            .iter()
            .map(|(k, v)| format!("`{k}` = {v}"))
            .collect();
        let _ = writeln!(o, "- Target's limits as read: {}", limits.join(", "));
    }
    match &m.services {
        Some(a) => {
            let _ = writeln!(
                o,
                "- Private PostgreSQL and Redis (started by the runner): {}",
                applied_text(a)
            );
        }
        None => {
            let _ = writeln!(
                o,
                "- PostgreSQL and Redis: the server's own (not started or placed by the runner)"
            );
        }
    }
    let _ = writeln!(
        o,
        "- Load generator: {}",
        match &m.generator {
            Some(c) => format!("threads pinned to CPUs {c} (sched_setaffinity)"),
            None => format!(
                "not pinned (CPUs {})",
                s.generator_cpus.as_deref().unwrap_or("all")
            ),
        }
    );
    let shared: Vec<&String> = s.cells.iter().flat_map(|c| &c.overlaps).collect();
    if shared.is_empty() {
        let _ = writeln!(o, "- Components kept apart: the server's CPUs were its own");
    } else {
        let mut uniq: Vec<&String> = Vec::new();
        for x in shared {
            if !uniq.contains(&x) {
                uniq.push(x);
            }
        }
        let _ = writeln!(
            o,
            "- NOT KEPT APART on this machine: {} (each component's CPU share per cell is in the resource table)",
            uniq.iter().map(|x| x.as_str()).collect::<Vec<_>>().join("; ")
        );
    }
    for u in &m.unconfined {
        let _ = writeln!(o, "- UNCONFINED: {u}");
    }
    o
}

fn applied_text(a: &super::limits::AppliedLimit) -> String {
    let mut parts = vec![a.method.clone()];
    if let Some(c) = &a.cpus {
        parts.push(format!("cpuset {c}"));
    }
    if let Some(q) = a.quota {
        parts.push(format!("quota {q} CPU"));
    }
    if let Some(m) = &a.memory {
        parts.push(format!("memory {m}"));
    }
    if let Some(cg) = &a.cgroup {
        parts.push(format!("cgroup {}", cg.paths.join(", ")));
    }
    if let Some(n) = &a.note {
        parts.push(n.clone());
    }
    parts.join(", ")
}

/// The calibration's steps and the value kept.
pub fn render_calibration(c: &super::calibrate::Calibration) -> String {
    let rows: Vec<Vec<String>> = c
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            vec![
                (i + 1).to_string(),
                format!("{}", s.value),
                format!("{:.1}", s.measured),
                format!("{:+.1}%", (s.measured / c.target - 1.0) * 100.0),
            ]
        })
        .collect();
    format!(
        "`{}` calibrated on {} ({} @ {}) so that its {} is the document's {}: \
         {} = **{}** ({:+.1}% off the target{}), used by every configuration.\n\n{}",
        c.var,
        c.config,
        c.scenario,
        c.level,
        c.metric,
        c.target,
        c.var,
        c.value,
        c.error() * 100.0,
        if c.converged {
            ""
        } else {
            ", NOT within the tolerance"
        },
        markdown_table(&["Step", &c.var, &c.metric, "vs target"], &rows)
    )
}

/// `report.md`: the experiment's facts, the tables, the verdicts, the
/// resource cost and links to `charts`.
pub fn report_markdown(s: &ExperimentSummary, charts: &[String]) -> String {
    let spec = &s.experiment;
    let mut md = String::new();
    let _ = writeln!(md, "# Experiment {}: {}\n", spec.id, spec.title);
    let _ = writeln!(md, "- Document: `{}`", spec.document);
    let _ = writeln!(md, "- Claim tested: {}", spec.claim);
    let _ = writeln!(md, "- argon2: {}", spec.argon2);
    let _ = writeln!(
        md,
        "- Runs: {} ({} trials per cell, randomised order), server: {}, machine: {} CPUs",
        s.runs,
        // As run (--trials overrides the file's count).
        s.cells
            .iter()
            .map(|c| c.trials)
            .max()
            .unwrap_or(spec.trials),
        s.server,
        s.cpus
    );
    if s.load_tool != "quizload" {
        let _ = writeln!(
            md,
            "- Load sent by {} (`--tool`) and read into these tables: no raw histograms, time series or generator self-check (see each run's `warnings`)",
            s.load_tool
        );
    }
    if let Some(n) = &spec.notes {
        let _ = writeln!(md, "- Notes: {n}");
    }
    let _ = writeln!(md, "\n## Method and machine\n\n{}", render_method(s));
    if let Some(c) = &s.calibration {
        let _ = writeln!(md, "## Calibration\n\n{}", render_calibration(c));
    }
    if !s.figures.is_empty() {
        let _ = writeln!(
            md,
            "## The document's figures beside ours\n\nThe document's own table, figure by figure, against the mean of our trials (difference: ours / document - 1).\n\n{}",
            figure_table(&s.figures, "Difference")
        );
    }
    if !s.checks.is_empty() {
        let _ = writeln!(
            md,
            "## Out-of-sample checks\n\nThe document's figures the calibration did not use, against our trials (error: ours / document - 1).\n\n{}",
            figure_table(&s.checks, "Error")
        );
    }
    if let Some(d) = &spec.differences {
        let _ = writeln!(
            md,
            "## What differs from the document, and why\n\n{}\n",
            d.trim()
        );
    }
    let _ = writeln!(
        md,
        "\nValues are means over trials; ± is the 95% confidence half-width.\n"
    );
    let _ = writeln!(md, "## Results\n{}", render_tables(s));
    let _ = writeln!(md, "\n## Verdicts (95% CI over trials)\n");
    if s.verdicts.is_empty() {
        let _ = writeln!(md, "No comparison (one configuration).");
    }
    for v in &s.verdicts {
        let _ = writeln!(md, "- {} [{}]", v.text, v.scenario);
    }
    let _ = writeln!(md, "\n## The document's claims\n");
    if s.claims.is_empty() {
        let _ = writeln!(
            md,
            "No claim is stated per comparison in the experiment file."
        );
    }
    for c in &s.claims {
        let _ = writeln!(md, "- {} — \"{}\"", c.text, c.claim);
    }
    if !s.start_failures.is_empty() {
        let rows: Vec<Vec<String>> = s
            .start_failures
            .iter()
            .map(|f| {
                vec![
                    f.config.clone(),
                    (f.trial + 1).to_string(),
                    f.error.replace('|', "\\|"),
                    f.log_tail.replace('\n', " / ").replace('|', "\\|"),
                ]
            })
            .collect();
        let _ = writeln!(
            md,
            "\n## Configurations that did not start\n\n{}",
            markdown_table(
                &["Configuration", "Trial", "Error", "Server log (end)"],
                &rows
            )
        );
    }
    let mut plans: Vec<(&str, &str)> = s
        .cells
        .iter()
        .filter_map(|c| Some((c.label.as_str(), c.plan.as_deref()?)))
        .collect();
    plans.dedup();
    if let (Some(statement), false) = (&spec.explain, plans.is_empty()) {
        let _ = writeln!(md, "\n## Plans (EXPLAIN)\n\n`{statement}`\n");
        for (label, plan) in plans {
            let _ = writeln!(md, "{label}:\n\n```\n{plan}\n```\n");
        }
    }
    let _ = writeln!(md, "\n## Resource cost\n\n{}", render_resources(s));
    let _ = writeln!(md, "\n## Charts\n");
    for c in charts {
        let _ = writeln!(md, "![{c}]({c})");
    }
    md
}

/// The document's figures and ours, a row each.
fn figure_table(figures: &[FigureRecord], difference: &str) -> String {
    let rows: Vec<Vec<String>> = figures
        .iter()
        .map(|k| {
            vec![
                format!("{} {} @ {}", k.config, k.scenario, k.level),
                match &k.endpoint {
                    Some(e) => format!("{} of {e}", k.metric),
                    None => k.metric.clone(),
                },
                format!("{:.1}", k.document),
                format!("{:.1} ±{:.1}", k.ours, k.ci95),
                format!("{:+.1}%", k.error * 100.0),
            ]
        })
        .collect();
    markdown_table(&["Cell", "Metric", "Document", "Ours", difference], &rows)
}

/// What `quizload experiment` prints: the claim, the tables, the verdicts
/// (over `trials` per cell), the resource cost and where the results are.
pub fn terminal_summary(s: &ExperimentSummary, trials: usize, out: &Path) -> String {
    let spec = &s.experiment;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\n# {} {}\n\nClaim: {}\nargon2: {}",
        spec.id, spec.title, spec.claim, spec.argon2
    );
    o.push_str(&render_tables(s));
    let _ = writeln!(o, "\nVerdicts (95% CI over {trials} trials per cell):");
    if s.verdicts.is_empty() {
        let _ = writeln!(
            o,
            "  (one configuration: nothing to compare; use `quizload compare`)"
        );
    }
    for v in &s.verdicts {
        let _ = writeln!(o, "  {} [{}]", v.text, v.scenario);
    }
    if !s.claims.is_empty() {
        let _ = writeln!(o, "\nClaims:");
        for c in &s.claims {
            let _ = writeln!(o, "  {}", c.text.replace("**", ""));
        }
    }
    let _ = writeln!(o, "\nMethod and machine:\n{}", render_method(s));
    let _ = writeln!(o, "Resource cost:\n{}", render_resources(s));
    let _ = writeln!(o, "Results: {}", out.display());
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_read_like_the_document() {
        assert_eq!(diff_text(37.0, 46.0, true), "+24% slower");
        assert_eq!(diff_text(100.0, 90.0, true), "-10% faster");
        assert_eq!(diff_text(100.0, 110.0, false), "+10% higher");
    }
}
