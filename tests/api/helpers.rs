//! `TestApp`: a real server on 127.0.0.1:0 in the test's runtime, with its
//! own PostgreSQL database (copied from a migrated, seeded template) and its
//! own Redis key prefix; both are removed when the test ends.

use std::sync::Arc;
use std::time::Duration;

use quizbench::config::Config;
use quizbench::metrics::Metrics;
use quizbench::process::worker::{self, RunningWorker};
use quizbench::state::WorkerInfo;

pub use crate::common::{answers_for, Expect, HttpApi};
use crate::common::{
    cleanup_redis, client, redis_prefix, redis_url, scalar, server_env, unique_name, TestDb,
};

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub worker: RunningWorker,
    pub prefix: String,
    pub files_dir: std::path::PathBuf,
    pub db: TestDb,
    /// Set by `stop`: the Redis keys and files outlive this server.
    keep_state: bool,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// A server with extra configuration variables.
    pub async fn spawn_with(vars: &[(&str, &str)]) -> TestApp {
        let db = TestDb::new().await;
        let files_dir = std::env::temp_dir().join(unique_name("qb-files-"));
        Self::start(db, redis_prefix(), files_dir, vars).await
    }

    /// Starts a server on an existing database, prefix and files directory
    /// (used to restart one).
    pub async fn start(
        db: TestDb,
        prefix: String,
        files_dir: std::path::PathBuf,
        vars: &[(&str, &str)],
    ) -> TestApp {
        let defaults = [
            ("CPU_POOL_THREADS", "2"),
            ("DB_POOL_MAX", "5"),
            ("GRACEFUL_TIMEOUT_SECS", "2"),
        ];
        let env = server_env(&db.url, &redis_url(), &prefix, &files_dir, &defaults, vars);
        let cfg = Arc::new(Config::from_lookup(None, |k| env.get(k).map(String::as_str)).unwrap());
        let listener =
            quizbench::process::listeners::bind("127.0.0.1:0".parse().unwrap(), false, 128)
                .unwrap();
        let info = WorkerInfo {
            index: 0,
            model: "test".into(),
            processes: 1,
            threads: 1,
            thread_per_core: false,
            listener: "reuseport",
            started: std::time::Instant::now(),
        };
        let worker = worker::start(cfg.clone(), listener, Metrics::new_shared(), info)
            .await
            .expect("start server");
        let addr = worker.addr;
        TestApp {
            base: format!("http://{addr}"),
            http: client(None),
            worker,
            prefix,
            files_dir,
            db,
            keep_state: false,
        }
    }

    /// Drains the server and returns what a restart needs.
    pub async fn stop(mut self) -> (TestDb, String, std::path::PathBuf) {
        self.worker.lifecycle.drain();
        let _ = tokio::time::timeout(Duration::from_secs(10), &mut self.worker.done).await;
        self.worker.state.db.close().await;
        self.keep_state = true;
        // The database guard moves to the caller; a placeholder stays behind.
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                name: String::new(),
                url: String::new(),
            },
        );
        (db, self.prefix.clone(), self.files_dir.clone())
    }

    /// Runs SQL against the test's database.
    pub async fn count(&self, sql: &str) -> i64 {
        scalar(&self.db.url, sql).await
    }
}

impl HttpApi for TestApp {
    fn endpoint(&self) -> (&str, &reqwest::Client) {
        (&self.base, &self.http)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.worker.lifecycle.drain();
        if self.keep_state {
            return;
        }
        cleanup_redis(&redis_url(), &self.prefix);
        let _ = std::fs::remove_dir_all(&self.files_dir);
    }
}
