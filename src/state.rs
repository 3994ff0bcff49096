//! The application state every handler receives: cheap handles only.

use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::cache::ContentCache;
use crate::classifier::Classifier;
use crate::config::Config;
use crate::cpu::CpuPool;
use crate::metrics::{Metrics, Slot};
use crate::password::Passwords;
use crate::server::Lifecycle;
use crate::sessions::SessionStore;

/// Who is serving: shown by `/runtime` and in metrics labels.
#[derive(Debug, Clone)]
pub struct WorkerInfo {
    /// Worker slot index (0 for a single process).
    pub index: usize,
    /// Human name of the process model, e.g. "prefork 2 workers (reuseport), 1 event loop".
    pub model: String,
    pub processes: usize,
    pub threads: usize,
    pub thread_per_core: bool,
    pub listener: &'static str,
    pub started: Instant,
}

pub struct Inner {
    pub cfg: Arc<Config>,
    pub db: crate::db::DbPool,
    pub redis: crate::redis_pool::RedisPool,
    pub sessions: SessionStore,
    pub cache: ContentCache,
    pub cpu: CpuPool,
    pub passwords: Passwords,
    pub classifier: OnceLock<Arc<Classifier>>,
    pub worker: WorkerInfo,
    pub metrics: &'static Metrics,
    pub slot: &'static Slot,
    pub lifecycle: Lifecycle,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The process's classifier, trained on first use (on the CPU pool).
    pub fn classifier(&self) -> Arc<Classifier> {
        self.classifier
            .get_or_init(|| {
                Arc::new(Classifier::train(
                    self.cfg.grade_model_mb,
                    self.cfg.grade_cost,
                ))
            })
            .clone()
    }

    /// Publishes this event loop's pool gauges and the process's resident
    /// memory into its shared slot (every second, and before a scrape).
    pub fn publish_gauges(&self) {
        let g = self.db.gauges();
        let db = (g.size as u64, g.idle as u64, g.waiting as u64);
        let r = self.redis.status();
        let redis = (r.size as u64, r.available as u64, r.waiting as u64);
        self.slot.set_pools(db, redis);
        self.slot.set_rss(crate::procfs::rss_bytes().unwrap_or(0));
    }
}
