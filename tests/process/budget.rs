//! The connection budget: workers x pool sizes against PostgreSQL's
//! max_connections and Redis's maxclients, checked once by worker 0.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Options, Server};

/// Two workers with pool variable `var` at `size`, and the budget warning
/// worker 0 logs.
async fn budget_warning(var: &str, size: &str) -> (Server, Value) {
    let server = Server::start(&[("PROCESSES", "2"), (var, size)]).await;
    let warning = server
        .log
        .wait_for("connection budget exceeded", 1, Duration::from_secs(10))
        .swap_remove(0);
    (server, warning)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_pool_is_reported_with_the_numbers() {
    let (server, warning) = budget_warning("DB_POOL_MAX", "5000").await;
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["pools"], 2);
    assert_eq!(warning["db_connections"], 10_000);
    let available = warning["db_available"]
        .as_i64()
        .expect("PostgreSQL answered");
    assert!(available > 0 && available < 10_000, "{warning}");
    let text = warning["message"].as_str().unwrap();
    assert!(
        text.contains("2 pools x DB_POOL_MAX 5000 = 10000"),
        "{text}"
    );
    assert!(text.contains("max_connections"), "{text}");
    // Only worker 0 checks, once.
    assert_eq!(server.log.count("connection budget"), 1);
    // Warn mode serves on.
    server.wait_healthy(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_maxclients_counts_too() {
    let (_server, warning) = budget_warning("REDIS_POOL_MAX", "60000").await;
    assert_eq!(warning["redis_connections"], 120_000);
    assert!(warning["redis_available"].as_i64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_refuses_and_the_supervisor_stops() {
    let mut server = Server::spawn(Options {
        vars: &[
            ("PROCESSES", "2"),
            ("DB_POOL_MAX", "5000"),
            ("CONNECTION_BUDGET", "strict"),
        ],
        ..Options::default()
    })
    .await;
    let code = server.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(Some(1)), "log:\n{}", server.log.dump());
    let lines = server.log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("refusing to serve") && l.contains("10000")),
        "the refusal with its numbers; log:\n{}",
        server.log.dump()
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("connection budget check refused") && l.contains("stopping")));
    assert!(harness::children(server.pid).is_empty());
}

/// Under strict, the other workers start once worker 0 is ready (its check
/// passed): with all of them starting at once, their pools could take every
/// connection before the check's own got in, and a check that cannot
/// connect serves (document 004's 16 x 40 idle against 300).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_starts_the_other_workers_after_the_check() {
    let server = Server::start_with(Options {
        vars: &[("PROCESSES", "3"), ("CONNECTION_BUDGET", "strict")],
        ready_workers: 3,
        ..Options::default()
    })
    .await;
    let events: Vec<Value> = server
        .log
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let position = |message: &str, worker: u64| {
        events
            .iter()
            .position(|e| e["message"] == message && e["worker"] == worker)
            .unwrap_or_else(|| {
                panic!(
                    "no {message:?} of worker {worker}; log:\n{}",
                    server.log.dump()
                )
            })
    };
    let checked = position("worker ready", 0);
    for worker in [1, 2] {
        assert!(
            position("worker started", worker) > checked,
            "worker {worker} started before worker 0 was ready; log:\n{}",
            server.log.dump()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_at_start_is_not_a_reason_to_refuse() {
    let server = Server::start_with(Options {
        vars: &[("PROCESSES", "2"), ("CONNECTION_BUDGET", "strict")],
        database_url: Some("postgres://postgres@127.0.0.1:1/nothing"),
        ready_workers: 2,
        ..Options::default()
    })
    .await;
    server
        .log
        .wait_for("could not ask PostgreSQL", 1, Duration::from_secs(10));
    server.log.wait_for(
        "connection budget not fully checked",
        1,
        Duration::from_secs(10),
    );
    assert_eq!(
        harness::http_get(server.addr, "/healthz").unwrap().status,
        200
    );
    assert_eq!(
        harness::http_get(server.addr, "/readyz").unwrap().status,
        503
    );
    assert_eq!(server.workers().len(), 2);
}
