//! The terminal summary of a run ([`RunReport::render`]): hey/wrk-style
//! totals, latency percentiles, status codes, errors, the per-endpoint and
//! setup tables, the open model's schedule and the generator's self-check.
//! Formatting only.

use std::fmt::Write as _;

use super::RunReport;
use crate::analysis::tables::endpoint_table;
use crate::generator::schedule::Arrival;
use crate::stats::LatencySummary;

impl RunReport {
    /// A hey/wrk-style human summary.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let s = &self.settings;
        let load = match s.model.as_str() {
            "open" => match (s.rate, &s.stages) {
                (Some(r), _) => format!(
                    "open model, {r} req/s {}, {} connections",
                    arrival_name(s.arrival),
                    s.concurrency
                ),
                _ => format!(
                    "open model, staged rate {}, {} connections",
                    arrival_name(s.arrival),
                    s.concurrency
                ),
            },
            _ => format!("closed model, {} virtual users", s.concurrency),
        };
        let _ = writeln!(o, "\nSummary:");
        let _ = writeln!(o, "  Target:        {}  [{}]", self.target, self.scenario);
        let _ = writeln!(o, "  Load:          {load}, {} threads", s.threads);
        let _ = writeln!(o, "  Total:         {:.4} secs", self.elapsed_s);
        let _ = writeln!(
            o,
            "  Requests:      {} ({} ok, {} failed; {:.2}% success)",
            self.requests, self.successes, self.errors.total, self.success_rate
        );
        let _ = writeln!(o, "  Requests/sec:  {:.2}", self.rps);
        let _ = writeln!(
            o,
            "  Transfer/sec:  {}",
            human_bytes(if self.elapsed_s > 0.0 {
                self.bytes_received as f64 / self.elapsed_s
            } else {
                0.0
            })
        );
        let l = &self.latency_ms;
        let title = if s.model == "open" {
            "Latency from intended send time (ms, coordinated-omission corrected):"
        } else {
            "Latency (ms):"
        };
        let _ = writeln!(o, "\n{title}");
        write_latency(&mut o, l);
        if let Some(st) = &self.service_time_ms {
            let _ = writeln!(o, "Service time from actual send (ms):");
            write_latency(&mut o, st);
        }
        if !self.status_codes.is_empty() {
            let _ = writeln!(o, "\nStatus code distribution:");
            for (code, n) in &self.status_codes {
                let _ = writeln!(o, "  [{code}]\t{n} responses");
            }
        }
        let e = &self.errors;
        let c = &e.connection;
        if c.total() + e.protocol > 0 {
            let _ = writeln!(o, "\nErrors without a response:");
            for (name, n) in [
                ("refused", c.refused),
                ("reset", c.reset),
                ("timeout", c.timeout),
                ("dns", c.dns),
                ("other", c.other),
                ("protocol", e.protocol),
            ] {
                if n > 0 {
                    let _ = writeln!(o, "  {name:<10}{n}");
                }
            }
        }
        if self.endpoints.len() > 1 || self.scenario != "url" {
            let _ = writeln!(o, "\nPer endpoint:");
            o.push_str(&endpoint_table(&self.endpoints));
        }
        if let Some(setup) = &self.setup {
            if !setup.endpoints.is_empty() {
                let _ = writeln!(
                    o,
                    "\nSetup (before the clock, {:.2} s, {} connections):",
                    setup.elapsed_s, setup.connections_opened
                );
                o.push_str(&endpoint_table(&setup.endpoints));
            }
        }
        if let Some(m) = &self.open_model {
            let _ = writeln!(
                o,
                "\nSchedule: {} intended, {} sent, {} late (> {} ms), {} dropped; send lag p50 {:.2} ms, p99 {:.2} ms; wake-up lag p99 {:.2} ms",
                m.intended,
                m.sent,
                m.late,
                m.late_threshold_ms,
                m.dropped,
                m.send_lag_ms.p50,
                m.send_lag_ms.p99,
                m.wake_lag_ms.p99
            );
        }
        let g = &self.generator;
        let _ = writeln!(
            o,
            "\nGenerator: {} threads on {} CPUs, {:.2} cores used ({:.0}% of its threads), loop lag p99 {:.2} ms{}{}",
            g.threads,
            g.cpus,
            g.cpu_cores_used,
            g.thread_utilization * 100.0,
            g.loop_lag_ms.p99,
            g.machine_cpu_busy
                .map(|b| format!(", machine {:.0}% busy", b * 100.0))
                .unwrap_or_default(),
            g.max_rss_mb
                .map(|m| format!(", {m:.0} MB RSS"))
                .unwrap_or_default(),
        );
        if g.saturated {
            let _ = writeln!(
                o,
                "  GENERATOR SATURATED: {}; the figures may measure the generator, not the target.",
                g.saturation_reasons.join("; ")
            );
        } else {
            let _ = writeln!(o, "  generator not saturated");
        }
        for w in &self.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        o
    }
}

fn arrival_name(a: Option<Arrival>) -> &'static str {
    match a {
        Some(Arrival::Poisson) => "Poisson",
        _ => "uniform",
    }
}

fn write_latency(o: &mut String, l: &LatencySummary) {
    let _ = writeln!(
        o,
        "  avg {:.3}  stdev {:.3}  min {:.3}  max {:.3}",
        l.mean, l.stdev, l.min, l.max
    );
    let _ = writeln!(
        o,
        "  p50 {:.3}  p90 {:.3}  p95 {:.3}  p99 {:.3}  p99.9 {:.3}",
        l.p50, l.p90, l.p95, l.p99, l.p999
    );
}

fn human_bytes(b: f64) -> String {
    if b >= 1_048_576.0 {
        format!("{:.2} MB", b / 1_048_576.0)
    } else if b >= 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}
