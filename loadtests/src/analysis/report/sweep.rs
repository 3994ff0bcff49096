//! The report of a sweep ([`SweepReport`]: one run report per concurrency or
//! rate, and the peak) and its table in document 004's shape. It holds the
//! rows a sweep made; running them is `load`'s business.

use serde::{Deserialize, Serialize};

use super::RunReport;
use crate::analysis::tables::markdown_table;
use crate::stats::LatencySummary;

/// One row of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// Concurrency (closed sweep) or target rate (open sweep).
    pub level: f64,
    pub rps: f64,
    pub success_rate: f64,
    pub latency_ms: LatencySummary,
    pub generator_saturated: bool,
    /// The full report of the row.
    pub report: RunReport,
}

/// The JSON report of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    pub tool: String,
    pub version: String,
    /// `concurrency` or `rate`.
    pub over: String,
    /// The highest request rate of any row (each row has its own `rps`).
    pub rps: f64,
    /// The level at which `rps` was reached.
    pub peak_level: f64,
    pub target: String,
    pub scenario: String,
    pub rows: Vec<SweepRow>,
}

impl SweepReport {
    /// The sweep table: document 004's columns for a concurrency sweep,
    /// with the schedule's late/dropped counts for a rate sweep.
    pub fn table_rows(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let closed = self.over == "concurrency";
        let header = if closed {
            vec![
                "Concurrent Connections",
                "Requests/Second",
                "Avg Response Time",
                "p99",
                "Success Rate",
            ]
        } else {
            vec![
                "Target Rate",
                "Requests/Second",
                "Avg Response Time",
                "p99",
                "Success Rate",
                "Late",
                "Dropped",
            ]
        };
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut v = vec![
                    if closed {
                        format!("{}", r.level as u64)
                    } else {
                        format!("{}", r.level)
                    },
                    format!("{:.0}", r.rps),
                    format!("{:.1}ms", r.latency_ms.mean),
                    format!("{:.1}ms", r.latency_ms.p99),
                    format!("{:.1}%", r.success_rate),
                ];
                if !closed {
                    let (late, dropped) = r
                        .report
                        .open_model
                        .as_ref()
                        .map(|m| (m.late, m.dropped))
                        .unwrap_or((0, 0));
                    v.push(late.to_string());
                    v.push(dropped.to_string());
                }
                if r.generator_saturated {
                    v[1].push_str(" (generator saturated)");
                }
                v
            })
            .collect();
        (header, rows)
    }

    /// The sweep as a Markdown table.
    pub fn render(&self) -> String {
        let (header, rows) = self.table_rows();
        markdown_table(&header, &rows)
    }
}
