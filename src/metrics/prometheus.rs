//! The table in Prometheus' text exposition format, and the stats view of
//! `/runtime`. Reads the table; writes nothing.

use std::fmt::Write as _;
use std::sync::atomic::Ordering::Relaxed;

use super::{unix_ms, Metrics, RestartReason, RouteLabels, Slot, BUCKETS_US, STATUSES};

/// A metric family read from each slot: name, help, getter.
type Series = (&'static str, &'static str, fn(&Slot) -> u64);

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

impl Metrics {
    /// Prometheus text exposition of every worker slot that was ever used.
    pub fn render(&self, model: &str, labels: &RouteLabels) -> String {
        let mut out = String::with_capacity(64 * 1024);
        family(
            &mut out,
            "quizbench_info",
            "Process model of this server.",
            "gauge",
        );
        let _ = writeln!(out, "quizbench_info{{model=\"{model}\"}} 1");
        let used: Vec<(usize, &Slot)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.started_unix_ms.load(Relaxed) != 0)
            .collect();
        let gauges: &[Series] = &[
            ("quizbench_worker_pid", "Process id of the worker.", |s| {
                s.pid.load(Relaxed)
            }),
            (
                "quizbench_worker_state",
                "0 empty, 1 starting, 2 ready, 3 draining.",
                |s| s.state.load(Relaxed),
            ),
            (
                "quizbench_worker_start_time_seconds",
                "Unix time the worker started.",
                |s| s.started_unix_ms.load(Relaxed) / 1000,
            ),
            (
                "quizbench_requests_in_flight",
                "Requests being handled now.",
                |s| s.in_flight.load(Relaxed),
            ),
            (
                "quizbench_open_connections",
                "Open client connections.",
                |s| s.connections.load(Relaxed),
            ),
            (
                "quizbench_worker_boot_milliseconds",
                "Time from spawn to ready of the current worker (supervised).",
                |s| s.boot_ms.load(Relaxed),
            ),
            (
                "quizbench_worker_resident_memory_bytes",
                "Resident set size of the worker process.",
                |s| s.rss_bytes.load(Relaxed),
            ),
            (
                "quizbench_db_pool_size",
                "Database connections open in the pool.",
                |s| s.db_size.load(Relaxed),
            ),
            (
                "quizbench_db_pool_idle",
                "Idle database connections.",
                |s| s.db_idle.load(Relaxed),
            ),
            (
                "quizbench_db_pool_waiters",
                "Tasks waiting for a database connection.",
                |s| s.db_waiters.load(Relaxed),
            ),
            (
                "quizbench_redis_pool_size",
                "Redis connections open in the pool.",
                |s| s.redis_size.load(Relaxed),
            ),
            (
                "quizbench_redis_pool_idle",
                "Idle Redis connections.",
                |s| s.redis_idle.load(Relaxed),
            ),
            (
                "quizbench_redis_pool_waiters",
                "Tasks waiting for a Redis connection.",
                |s| s.redis_waiters.load(Relaxed),
            ),
        ];
        let counters: &[Series] = &[
            (
                "quizbench_worker_requests_total",
                "Requests served by the worker.",
                |s| s.requests.load(Relaxed),
            ),
            (
                "quizbench_shed_total",
                "Requests refused with 503 by the in-flight limit.",
                |s| s.shed.load(Relaxed),
            ),
            (
                "quizbench_request_timeouts_total",
                "Requests that hit the request deadline.",
                |s| s.timeouts.load(Relaxed),
            ),
            (
                "quizbench_cache_hits_total",
                "Common-content cache hits.",
                |s| s.cache_hits.load(Relaxed),
            ),
            (
                "quizbench_cache_misses_total",
                "Common-content cache misses (rebuilt from Postgres).",
                |s| s.cache_misses.load(Relaxed),
            ),
            (
                "quizbench_cache_bypass_total",
                "Common content served from Postgres because Redis failed.",
                |s| s.cache_bypass.load(Relaxed),
            ),
            (
                "quizbench_dummy_hash_verifications_total",
                "Password verifications against the dummy hash (unknown users).",
                |s| s.dummy_hashes.load(Relaxed),
            ),
        ];
        for (kind, families) in [("gauge", gauges), ("counter", counters)] {
            for (name, help, get) in families {
                family(&mut out, name, help, kind);
                for (i, s) in &used {
                    let _ = writeln!(out, "{name}{{worker=\"{i}\"}} {}", get(s));
                }
            }
        }
        family(
            &mut out,
            "quizbench_worker_restarts_total",
            "Worker restarts by reason.",
            "counter",
        );
        for (i, s) in &used {
            for reason in RestartReason::ALL {
                let n = s.restarts[reason as usize].load(Relaxed);
                if n > 0 {
                    let _ = writeln!(
                        out,
                        "quizbench_worker_restarts_total{{worker=\"{i}\",reason=\"{}\"}} {n}",
                        reason.name()
                    );
                }
            }
        }
        family(
            &mut out,
            "quizbench_http_requests_total",
            "Requests by route and status.",
            "counter",
        );
        // Each used slot's routes, slot by slot.
        let routes = || {
            used.iter().flat_map(|(i, s)| {
                let names = labels.names().iter();
                names
                    .zip(&s.routes)
                    .map(move |(route, stats)| (i, route, stats))
            })
        };
        for (i, route, stats) in routes() {
            for (k, count) in stats.status.iter().enumerate() {
                let n = count.load(Relaxed);
                if n > 0 {
                    let status = STATUSES.get(k).map_or("other".to_string(), u16::to_string);
                    let _ = writeln!(
                        out,
                        "quizbench_http_requests_total{{worker=\"{i}\",route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        family(
            &mut out,
            "quizbench_http_request_duration_seconds",
            "Request latency by route.",
            "histogram",
        );
        for (i, route, stats) in routes() {
            let total: u64 = stats.buckets.iter().map(|b| b.load(Relaxed)).sum();
            if total == 0 {
                continue;
            }
            let mut cumulative = 0;
            for (b, bucket) in stats.buckets.iter().enumerate() {
                cumulative += bucket.load(Relaxed);
                let le = BUCKETS_US
                    .get(b)
                    .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
                let _ = writeln!(
                    out,
                    "quizbench_http_request_duration_seconds_bucket{{worker=\"{i}\",route=\"{route}\",le=\"{le}\"}} {cumulative}"
                );
            }
            let sum = stats.sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "quizbench_http_request_duration_seconds_sum{{worker=\"{i}\",route=\"{route}\"}} {sum}\nquizbench_http_request_duration_seconds_count{{worker=\"{i}\",route=\"{route}\"}} {total}"
            );
        }
        out
    }

    /// The supervisor's stats view: one entry per used slot.
    pub fn workers_json(&self) -> serde_json::Value {
        let now = unix_ms();
        let workers: Vec<serde_json::Value> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.started_unix_ms.load(Relaxed) != 0)
            .map(|(i, s)| {
                let state = match s.state.load(Relaxed) {
                    1 => "starting",
                    2 if s.in_flight.load(Relaxed) > 0 => "busy",
                    2 => "idle",
                    3 => "draining",
                    _ => "stopped",
                };
                serde_json::json!({
                    "worker": i,
                    "pid": s.pid.load(Relaxed),
                    "state": state,
                    "requests": s.requests.load(Relaxed),
                    "in_flight": s.in_flight.load(Relaxed),
                    "connections": s.connections.load(Relaxed),
                    "rss_bytes": s.rss_bytes.load(Relaxed),
                    "age_secs": now.saturating_sub(s.started_unix_ms.load(Relaxed)) / 1000,
                    "restarts": s.restarts.iter().map(|r| r.load(Relaxed)).sum::<u64>(),
                    "restarts_by_reason": RestartReason::ALL
                        .into_iter()
                        .zip(&s.restarts)
                        .map(|(reason, n)| (reason.name().to_string(), n.load(Relaxed).into()))
                        .collect::<serde_json::Map<String, serde_json::Value>>(),
                    "boot_ms": s.boot_ms.load(Relaxed),
                })
            })
            .collect();
        serde_json::Value::Array(workers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn records_show_up_in_the_exposition() {
        let labels = RouteLabels::new(["/api/v1/quizzes", "/healthz"]);
        let m = Metrics::new_shared();
        let slot = m.slot(3);
        slot.begin(4242);
        slot.record(
            labels.of_path("/api/v1/quizzes"),
            200,
            Duration::from_millis(3),
        );
        slot.record(labels.of_path("/nope"), 418, Duration::from_secs(20));
        let text = m.render("test", &labels);
        assert!(text.contains(
            "quizbench_http_requests_total{worker=\"3\",route=\"/api/v1/quizzes\",status=\"200\"} 1"
        ));
        assert!(text.contains("route=\"other\",status=\"other\"} 1"));
        assert!(text.contains(
            "quizbench_http_request_duration_seconds_bucket{worker=\"3\",route=\"/api/v1/quizzes\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("quizbench_worker_pid{worker=\"3\"} 4242"));
        assert!(!text.contains("worker=\"0\""));
    }
}
