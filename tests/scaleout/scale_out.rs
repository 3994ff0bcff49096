//! Issue 16's proof of the scale-out, without Docker: three replicas
//! started at the same moment on a database that does not exist yet (each
//! runs `migrate`, `seed --if-empty`, then `serve` through PgBouncer, as the
//! compose deployment's init service and replicas do), students journeying
//! through HAProxy, one replica killed mid-run.

use std::collections::{BTreeMap, HashMap};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection as _, PgConnection};

use crate::common::{
    admin_url, db_url, redis_url, serve_command, server_env, unique_name, TestDb, TEST_SEED,
};
use crate::journey::{self, Tally};
use crate::tools::{free_port, quizbench, seed_args, Balancer, Bouncer, Proc, RedisKeys, TempDir};

const REPLICAS: usize = 3;
const DB_POOL_MAX: usize = 2;
const STUDENTS: usize = 6;
const JOURNEY: Duration = Duration::from_secs(7);
const KILL_AFTER: Duration = Duration::from_secs(2);
/// The balancer has noticed the kill by then (health checks every second,
/// down after two failures; refused connections are retried at once).
const NOTICED_AFTER: Duration = Duration::from_secs(3);

/// One replica: what its start-up commands printed, and its server.
struct Replica {
    name: String,
    port: u16,
    migrate: Output,
    seed: Output,
    server: Proc,
}

/// JSON log lines of a command's output whose message contains `needle`.
fn messages(out: &Output, needle: &str) -> usize {
    [&out.stdout, &out.stderr]
        .iter()
        .flat_map(|b| {
            String::from_utf8_lossy(b)
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
        .filter(|v| v["message"].as_str().unwrap_or_default().contains(needle))
        .count()
}

/// Starts the replicas at the same instant (a barrier), each running
/// migrate and seed --if-empty straight to PostgreSQL, then serve through
/// PgBouncer.
fn start_replicas(direct: &str, pooled: &str, prefix: &str, files: &TempDir) -> Vec<Replica> {
    let barrier = Arc::new(Barrier::new(REPLICAS));
    let threads: Vec<_> = (1..=REPLICAS)
        .map(|i| {
            let barrier = barrier.clone();
            let port = free_port();
            let base = server_env(direct, &redis_url(), prefix, &files.0, &[], &[]);
            let mut serving = server_env(
                pooled,
                &redis_url(),
                prefix,
                &files.0,
                &[],
                &[("DB_POOLER", "pgbouncer"), ("PROCESSES", "1")],
            );
            serving.insert("BIND".into(), format!("127.0.0.1:{port}"));
            serving.insert("DB_POOL_MAX".into(), DB_POOL_MAX.to_string());
            std::thread::spawn(move || {
                barrier.wait();
                let migrate = quizbench(&["migrate"], &base);
                let mut seed = vec!["seed".to_string(), "--if-empty".to_string()];
                seed.extend(seed_args());
                let seed_refs: Vec<&str> = seed.iter().map(String::as_str).collect();
                let seed = quizbench(&seed_refs, &base);
                let mut server =
                    Proc::spawn(&mut serve_command(crate::common::BIN.as_ref(), &serving));
                server.wait_port(port, Duration::from_secs(20));
                Replica {
                    name: format!("r{i}"),
                    port,
                    migrate,
                    seed,
                    server,
                }
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// The most PgBouncer and PostgreSQL connections seen while it runs.
#[derive(Debug, Default, Clone, Copy)]
struct Peak {
    bouncer_servers: usize,
    bouncer_waiting: usize,
    postgres_backends: i64,
    samples: usize,
}

async fn sample(bouncer: &Bouncer, database: String, stop: Arc<AtomicBool>) -> Peak {
    let mut admin = bouncer.admin().await;
    let mut pg = PgConnection::connect(&admin_url()).await.unwrap();
    let mut peak = Peak::default();
    while !stop.load(Ordering::Relaxed) {
        let (servers, waiting) = Bouncer::usage(&mut admin, &database).await;
        let backends: i64 =
            sqlx::query_scalar("select count(*) from pg_stat_activity where datname = $1")
                .bind(&database)
                .fetch_one(&mut pg)
                .await
                .unwrap();
        peak.bouncer_servers = peak.bouncer_servers.max(servers);
        peak.bouncer_waiting = peak.bouncer_waiting.max(waiting);
        peak.postgres_backends = peak.postgres_backends.max(backends);
        peak.samples += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peak
}

/// Waits until responses through the balancer have come from every replica.
async fn wait_all_serving(base: &str, names: &[String]) {
    let http = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(20);
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < names.len() {
        assert!(
            Instant::now() < until,
            "only {seen:?} of {names:?} answered through HAProxy"
        );
        if let Ok(res) = http.get(format!("{base}/api/v1/quizzes")).send().await {
            if let Some(by) = res.headers().get("x-served-by") {
                seen.insert(by.to_str().unwrap().to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_seed_and_survive_losing_one_behind_haproxy_and_pgbouncer() {
    let Some(bouncer) = Bouncer::start(REPLICAS * DB_POOL_MAX) else {
        return;
    };
    // A database name nobody has created: the replicas create it.
    let name = unique_name(crate::SUITE.db_prefix);
    let db = TestDb {
        url: db_url(&name),
        name,
    };
    let keys = RedisKeys::new();
    let files = TempDir::new("scale-files");
    let mut replicas = start_replicas(&db.url, &bouncer.url(&db.name), &keys.0, &files);

    // Created and migrated by whichever came first, seeded exactly once.
    for r in &replicas {
        assert!(
            r.migrate.status.success(),
            "{} migrate: {:?}",
            r.name,
            r.migrate
        );
        assert!(r.seed.status.success(), "{} seed: {:?}", r.name, r.seed);
    }
    let seeded = replicas
        .iter()
        .filter(|r| messages(&r.seed, "seeded the reference data set") == 1)
        .count();
    let skipped = replicas
        .iter()
        .filter(|r| messages(&r.seed, "seed skipped") == 1)
        .count();
    assert_eq!(
        (seeded, skipped),
        (1, REPLICAS - 1),
        "one seeder, the others skip"
    );

    let servers: Vec<(String, u16)> = replicas.iter().map(|r| (r.name.clone(), r.port)).collect();
    let Some(balancer) = Balancer::start(&servers) else {
        return;
    };
    let base = format!("http://127.0.0.1:{}", balancer.port);
    let names: Vec<String> = servers.iter().map(|(n, _)| n.clone()).collect();
    wait_all_serving(&base, &names).await;
    for r in &replicas {
        let budget = r
            .server
            .log
            .wait_for("connection budget", 1, Duration::from_secs(10));
        let text = budget[0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            text.contains(&format!("PgBouncer pool {}", bouncer.pool_size)) && text.contains("ok"),
            "{}: {text}",
            r.name
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, database) = (stop.clone(), db.name.clone());
        let bouncer = &bouncer;
        async move { sample(bouncer, database, stop).await }
    };
    let started = Instant::now();
    let until = started + JOURNEY;
    let students: Vec<_> = (1..=STUDENTS)
        .map(|i| tokio::spawn(journey::run(base.clone(), format!("student{i}"), until)))
        .collect();
    let killer = async {
        tokio::time::sleep(KILL_AFTER).await;
        let victim = &mut replicas[1];
        victim.server.kill();
        (victim.name.clone(), Instant::now())
    };
    let run = async {
        let mut tallies = Vec::new();
        for s in students {
            tallies.push(s.await.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        tallies
    };
    let (peak, (victim, killed_at), tallies) = tokio::join!(sampler, killer, run);
    check(&db, &bouncer, &victim, killed_at, started, peak, tallies).await;
    drop(balancer);
    drop(replicas);
    drop(bouncer);
}

/// The verdict, with every count printed.
async fn check(
    db: &TestDb,
    bouncer: &Bouncer,
    victim: &str,
    killed_at: Instant,
    started: Instant,
    peak: Peak,
    tallies: Vec<Tally>,
) {
    let events: Vec<&journey::Event> = tallies.iter().flat_map(|t| &t.events).collect();
    let mut before = BTreeMap::<String, usize>::new();
    let mut after = BTreeMap::<String, usize>::new();
    for e in events.iter().filter(|e| e.ok()) {
        let side = if e.at < killed_at {
            &mut before
        } else {
            &mut after
        };
        *side
            .entry(e.served_by.clone().unwrap_or_default())
            .or_default() += 1;
    }
    let failed: Vec<_> = events.iter().filter(|e| !e.ok()).collect();
    let noticed = killed_at + NOTICED_AFTER;
    let late_failures: Vec<_> = failed.iter().filter(|e| e.at > noticed).collect();
    let acknowledged: Vec<&String> = tallies.iter().flat_map(|t| &t.acknowledged).collect();
    let gave_up: Vec<&String> = tallies.iter().flat_map(|t| &t.gave_up).collect();

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let stored: HashMap<String, i64> = sqlx::query_as(
        "select idempotency_key, count(*) from attempts
          where idempotency_key like 'scale-%' group by idempotency_key",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let seeded_attempts: i64 =
        sqlx::query_scalar("select count(*) from attempts where idempotency_key is null")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let _ = conn.close().await;

    eprintln!(
        "scale-out: {} replicas, {} students for {:?}, {victim} killed at +{:.1} s\n  \
         responses per replica before the kill {before:?}, after {after:?}\n  \
         failed tries {} (during the kill window), {} after +{:.1} s: {:?}\n  \
         attempts acknowledged {}, keys stored {}, rows stored {}, given up {}\n  \
         PgBouncer pool {}: at most {} server connections, {} clients waiting; \
         PostgreSQL backends on the database at most {} ({} samples)",
        REPLICAS,
        STUDENTS,
        JOURNEY,
        (killed_at - started).as_secs_f64(),
        failed.len(),
        late_failures.len(),
        (noticed - started).as_secs_f64(),
        failed
            .iter()
            .map(|e| (e.what, e.outcome.clone()))
            .collect::<Vec<_>>(),
        acknowledged.len(),
        stored.len(),
        stored.values().sum::<i64>(),
        gave_up.len(),
        bouncer.pool_size,
        peak.bouncer_servers,
        peak.bouncer_waiting,
        peak.postgres_backends,
        peak.samples,
    );
    // The seed's rows survived: nobody truncated after the first seeder.
    assert_eq!(seeded_attempts, TEST_SEED.attempts as i64);
    // Every replica served; after the kill, only the two left.
    assert_eq!(before.len(), REPLICAS, "before the kill: {before:?}");
    assert!(
        !after.contains_key(victim) || after[victim] <= STUDENTS,
        "{after:?}"
    );
    assert_eq!(
        after.keys().filter(|k| *k != victim).count(),
        REPLICAS - 1,
        "{after:?}"
    );
    // Errors bounded: at most two failed tries per student, none once the
    // balancer has noticed.
    assert!(
        failed.len() <= 2 * STUDENTS,
        "{} failed tries",
        failed.len()
    );
    assert!(
        late_failures.is_empty(),
        "failures after the balancer noticed: {late_failures:?}"
    );
    // No acknowledged attempt lost or duplicated, nothing stored unacknowledged.
    assert!(gave_up.is_empty(), "given up: {gave_up:?}");
    assert!(
        acknowledged.len() >= STUDENTS * 3,
        "only {} attempts",
        acknowledged.len()
    );
    for key in &acknowledged {
        assert_eq!(
            stored.get(*key),
            Some(&1),
            "attempt {key}: rows {:?}",
            stored.get(*key)
        );
    }
    assert_eq!(
        stored.len(),
        acknowledged.len(),
        "stored keys that were never acknowledged"
    );
    // PgBouncer kept PostgreSQL within its pool.
    assert!(peak.samples >= 10, "{peak:?}");
    assert!(peak.bouncer_servers <= bouncer.pool_size, "{peak:?}");
    assert!(
        peak.postgres_backends <= bouncer.pool_size as i64,
        "{peak:?}"
    );
    assert!(peak.bouncer_servers >= 1, "{peak:?}");
}
