//! Tables for people: aligned plain-text columns ([`text_table`]), Markdown
//! ([`markdown_table`]) and the per-endpoint table every run prints
//! ([`endpoint_table`]). Formatting only.

use std::fmt::Write as _;

use crate::stats::EndpointSummary;

/// A plain-text table of endpoints (Locust's columns plus percentiles).
pub fn endpoint_table(eps: &[EndpointSummary]) -> String {
    let mut rows = vec![[
        "Endpoint", "Requests", "Fails", "req/s", "avg ms", "p50", "p95", "p99", "max",
    ]
    .map(String::from)
    .to_vec()];
    for e in eps {
        rows.push(vec![
            e.name.clone(),
            e.requests.to_string(),
            format!("{} ({:.1}%)", e.errors.total, 100.0 - e.success_rate),
            format!("{:.1}", e.rps),
            format!("{:.2}", e.latency_ms.mean),
            format!("{:.2}", e.latency_ms.p50),
            format!("{:.2}", e.latency_ms.p95),
            format!("{:.2}", e.latency_ms.p99),
            format!("{:.2}", e.latency_ms.max),
        ]);
    }
    text_table(&rows)
}

/// Aligns rows of cells into columns (first column left-aligned).
pub fn text_table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut o = String::new();
    for r in rows {
        o.push_str("  ");
        for (c, cell) in r.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                o.push_str(cell);
                o.push_str(&" ".repeat(pad));
            } else {
                o.push_str("  ");
                o.push_str(&" ".repeat(pad));
                o.push_str(cell);
            }
        }
        o.push('\n');
    }
    o
}

/// A Markdown table (header row, separator, rows).
pub fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "| {} |", header.join(" | "));
    let _ = writeln!(
        o,
        "|{}|",
        header.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for r in rows {
        let _ = writeln!(o, "| {} |", r.join(" | "));
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = text_table(&[
            vec!["a".into(), "1".into()],
            vec!["long".into(), "22".into()],
        ]);
        assert_eq!(t, "  a      1\n  long  22\n");
        let m = markdown_table(&["A", "B"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(m, "| A | B |\n|---|---|\n| 1 | 2 |\n");
    }
}
