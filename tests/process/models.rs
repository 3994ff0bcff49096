//! Each process model, checked from outside: the process tree and thread
//! names in /proc, the listening sockets in /proc/net/tcp and who holds
//! them, the X-Worker-Pid/X-Worker-Id headers under concurrent load, and
//! what the start-up line, /runtime and /metrics say.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{self, Options, Server};
use crate::load::{Load, LoadSpec};

/// What a model must look like.
struct Expect {
    /// Worker processes under a supervisor (0: one bare process serves).
    workers: usize,
    /// Threads named `event-loop*` in each serving process (0 when the main
    /// thread is the only event loop).
    event_loop_threads: usize,
    /// Listening sockets on the port.
    listen_sockets: usize,
    /// Of those, how many each serving process holds.
    sockets_per_process: usize,
    /// Event loops (metrics slots) in the whole server.
    event_loops: usize,
}

/// One bare process on its main thread, one socket.
const SINGLE: Expect = Expect {
    workers: 0,
    event_loop_threads: 0,
    listen_sockets: 1,
    sockets_per_process: 1,
    event_loops: 1,
};

/// Starts the model, checks it, and returns the server for more checks.
async fn check_model(vars: &[(&str, &str)], expect: Expect) -> Server {
    check_model_with(
        Options {
            vars,
            ready_workers: expect.workers,
            ..Options::default()
        },
        expect,
    )
    .await
}

async fn check_model_with(opts: Options<'_>, expect: Expect) -> Server {
    let vars: Vec<(String, String)> = opts
        .vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let server = Server::start_with(opts).await;
    let ctx = format!("model {vars:?}; log:\n{}", server.log.dump());

    // The process tree.
    let serving: Vec<u32> = if expect.workers == 0 {
        assert!(
            server.workers().is_empty(),
            "no child process expected; {ctx}"
        );
        vec![server.pid]
    } else {
        let w = server.workers();
        assert_eq!(w.len(), expect.workers, "worker processes; {ctx}");
        let sup_threads = harness::thread_names(server.pid);
        assert_eq!(
            sup_threads.len(),
            1,
            "the supervisor must stay single-threaded: {sup_threads:?}"
        );
        w
    };

    // Threads: the event loops are named; nothing else runs but the CPU
    // pool (CPU_POOL_THREADS=1, started on first use).
    for pid in &serving {
        let names = harness::thread_names(*pid);
        let loops = names.iter().filter(|n| n.starts_with("event-loop")).count();
        assert_eq!(
            loops, expect.event_loop_threads,
            "event-loop threads of {pid}: {names:?}"
        );
        assert!(
            names.len() <= expect.event_loop_threads.max(1) + 2,
            "unexpected threads in {pid}: {names:?}"
        );
    }

    // Listening sockets and who holds them.
    let listening = harness::listening_inodes(server.addr.port());
    assert_eq!(
        listening.len(),
        expect.listen_sockets,
        "listening sockets on port {}; {ctx}",
        server.addr.port()
    );
    let mut held_union = BTreeSet::new();
    let mut held_total = 0;
    for pid in &serving {
        let held: BTreeSet<u64> = harness::socket_inodes(*pid)
            .intersection(&listening)
            .copied()
            .collect();
        assert_eq!(
            held.len(),
            expect.sockets_per_process,
            "listening sockets held by {pid}"
        );
        held_total += held.len();
        held_union.extend(held);
    }
    if expect.workers > 0 {
        // The supervisor keeps every socket open (respawns take them over).
        let sup: BTreeSet<u64> = harness::socket_inodes(server.pid)
            .intersection(&listening)
            .copied()
            .collect();
        assert_eq!(
            sup, listening,
            "the supervisor holds every listening socket"
        );
        if expect.listen_sockets > 1 {
            // reuseport: each worker its own sockets, together all of them.
            assert_eq!(
                held_total,
                held_union.len(),
                "workers share no reuseport socket"
            );
            assert_eq!(held_union, listening);
        }
    }

    // Under concurrent load, every event loop serves.
    let load = Load::start(LoadSpec {
        keep_body: true,
        ..LoadSpec::get(server.addr, 16, false, "/runtime")
    });
    load.wait_requests(600, Duration::from_secs(10)).await;
    let report = load.stop().await;
    assert!(report.failed().is_empty(), "failures: {}", report.summary());
    let pids = report.pids();
    assert_eq!(
        pids,
        serving.iter().copied().collect::<BTreeSet<u32>>(),
        "every worker process serves: {}",
        report.summary()
    );
    let ids = report.worker_ids();
    let expected_ids: BTreeSet<u32> = (0..expect.event_loops as u32).collect();
    assert_eq!(ids, expected_ids, "X-Worker-Id of the event loops served");
    let bodies: Vec<Value> = report
        .outcomes
        .iter()
        .filter_map(|o| serde_json::from_str(o.body.as_deref()?).ok())
        .collect();
    let threads: BTreeSet<String> = bodies
        .iter()
        .map(|b| format!("{}/{}", b["pid"], b["thread_id"]))
        .collect();
    let min_threads = expect.event_loops.max(expect.event_loop_threads.min(2));
    assert!(
        threads.len() >= min_threads,
        "requests served on {} distinct threads, expected at least {min_threads}: {threads:?}",
        threads.len()
    );

    // What the server says about itself.
    let rt = server.runtime();
    let starting = &server.log.events("quizbench starting")[0];
    assert_eq!(rt["processes"], starting["processes"]);
    assert_eq!(rt["threads"], starting["threads"]);
    assert_eq!(
        starting["listen_sockets"], expect.listen_sockets,
        "start-up line"
    );
    assert_eq!(starting["event_loops"], expect.event_loops);
    assert_eq!(
        starting["db_connections_total"],
        4 * expect.event_loops as u64,
        "DB_POOL_MAX=4 x event loops"
    );
    assert_eq!(
        starting["redis_connections_total"],
        4 * expect.event_loops as u64
    );
    let somaxconn: i64 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(starting["somaxconn"], somaxconn);
    assert!(starting["cgroup_cpu_quota"].is_string());
    assert_eq!(rt["workers"].as_array().unwrap().len(), expect.event_loops);
    let metrics = server.metrics();
    for pid in &serving {
        assert!(
            metrics
                .sum_by("quizbench_worker_pid", "worker")
                .values()
                .any(|v| *v == f64::from(*pid)),
            "/metrics labels worker pid {pid}"
        );
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_process_single_event_loop_1x1() {
    let server = check_model(&[("PROCESSES", "1"), ("THREADS", "1")], SINGLE).await;
    let rt = server.runtime();
    assert_eq!(rt["model"], "single process, 1 event loop");
    assert_eq!(rt["pid"], server.pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_pool_1x4() {
    let server = check_model(
        &[("PROCESSES", "1"), ("THREADS", "4")],
        Expect {
            event_loop_threads: 4,
            ..SINGLE
        },
    )
    .await;
    assert_eq!(server.runtime()["model"], "single process, 4 threads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefork_2x1_reuseport() {
    let server = check_model(
        &[
            ("PROCESSES", "2"),
            ("THREADS", "1"),
            ("LISTENER", "reuseport"),
        ],
        Expect {
            workers: 2,
            event_loop_threads: 0,
            listen_sockets: 2,
            sockets_per_process: 1,
            event_loops: 2,
        },
    )
    .await;
    assert_eq!(
        server.runtime()["model"],
        "prefork 2 workers (reuseport), 1 event loop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefork_2x1_shared_socket_forked_workers() {
    // Also the WORKER_SPAWN=fork path (no exec).
    let server = check_model(
        &[
            ("PROCESSES", "2"),
            ("LISTENER", "shared"),
            ("WORKER_SPAWN", "fork"),
        ],
        Expect {
            workers: 2,
            event_loop_threads: 0,
            listen_sockets: 1,
            sockets_per_process: 1,
            event_loops: 2,
        },
    )
    .await;
    assert!(server
        .log
        .events("worker started")
        .iter()
        .all(|e| e["exec"] == false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefork_2x2() {
    check_model(
        &[("PROCESSES", "2"), ("THREADS", "2")],
        Expect {
            workers: 2,
            event_loop_threads: 2,
            listen_sockets: 2,
            sockets_per_process: 1,
            event_loops: 2,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_per_core_single_process() {
    check_model(
        &[("THREAD_PER_CORE", "true"), ("THREADS", "2")],
        Expect {
            workers: 0,
            event_loop_threads: 2,
            listen_sockets: 2,
            sockets_per_process: 2,
            event_loops: 2,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_per_core_under_a_supervisor() {
    // 2 processes x 2 event loops: 4 sockets, 4 metrics slots.
    check_model(
        &[
            ("PROCESSES", "2"),
            ("THREAD_PER_CORE", "true"),
            ("THREADS", "2"),
        ],
        Expect {
            workers: 2,
            event_loop_threads: 2,
            listen_sockets: 4,
            sockets_per_process: 2,
            event_loops: 4,
        },
    )
    .await;
}

/// CPUs this process may use, computed here independently of the server:
/// the affinity mask, capped by a cgroup v2 quota.
fn usable_cpus_here() -> usize {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let affinity = (0..nix::sched::CpuSet::count())
        .filter(|i| set.is_set(*i).unwrap_or(false))
        .count();
    let quota = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| {
            let path = c.lines().find_map(|l| l.strip_prefix("0::"))?.to_string();
            std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cpu.max")).ok()
        })
        .and_then(|m| {
            let mut p = m.split_whitespace();
            let q: f64 = p.next()?.parse().ok()?;
            let period: f64 = p.next()?.parse().ok()?;
            Some((q / period).ceil() as usize)
        });
    quota.map_or(affinity, |q| affinity.min(q.max(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_is_one_worker_per_usable_cpu() {
    let cpus = usable_cpus_here();
    let server = check_model(
        &[("PROCESSES", "auto")],
        Expect {
            workers: cpus,
            event_loop_threads: 0,
            listen_sockets: cpus,
            sockets_per_process: 1,
            event_loops: cpus,
        },
    )
    .await;
    let decision = &server.log.events("PROCESSES=auto")[0];
    assert_eq!(decision["workers"], cpus);
    assert!(decision["reason"].as_str().unwrap().contains("affinity"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_respects_the_affinity_mask() {
    // Pinned to one CPU, auto means one worker whatever the host has.
    let server = check_model_with(
        Options {
            vars: &[("PROCESSES", "auto")],
            cpus: Some(&[0]),
            ready_workers: 1,
            ..Options::default()
        },
        Expect {
            workers: 1,
            ..SINGLE
        },
    )
    .await;
    let decision = &server.log.events("PROCESSES=auto")[0];
    assert_eq!(decision["workers"], 1);
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .starts_with("1 CPUs in the affinity mask"),
        "{decision}"
    );
}
