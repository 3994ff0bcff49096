//! Cache of content common to all students (quiz list, quiz detail), kept
//! as serialized JSON so a hit costs no serialization.
//!
//! - `off`: every request builds from Postgres.
//! - `redis`: serialized responses live in Redis under a versioned key with
//!   a TTL; every worker shares them.
//! - `local`: serialized responses live in each worker's memory. A content
//!   version kept in Redis is polled once a second, so a change (a re-seed
//!   bumps the version) is seen by every worker within that second.
//!
//! Misses are single-flight per worker: while one request rebuilds a key,
//! the others wait for it instead of all querying Postgres. When Redis fails,
//! content is built from Postgres and marked as a bypass; a corrupt cached
//! value (not valid JSON) is treated as a miss.

use bytes::Bytes;
use redis::AsyncCommands as _;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::CacheMode;
use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    QuizList,
    Quiz(i64),
}

impl Key {
    fn name(self) -> String {
        match self {
            Key::QuizList => "quizzes".to_string(),
            Key::Quiz(id) => format!("quiz:{id}"),
        }
    }
}

/// How a response was produced, sent as `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Miss,
    /// Redis failed; built from Postgres.
    Bypass,
    Off,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
            Outcome::Off => "off",
        }
    }
}

struct Entry {
    version: u64,
    expires: Instant,
    body: Bytes,
}

pub struct ContentCache {
    mode: CacheMode,
    ttl: Duration,
    redis: crate::redis_pool::RedisPool,
    prefix: String,
    timeout: Duration,
    /// Last content version read from Redis.
    version: AtomicU64,
    local: RwLock<HashMap<Key, Entry>>,
    /// Per-key rebuild locks (single flight).
    flights: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<()>>>>,
}

impl ContentCache {
    pub fn new(
        mode: CacheMode,
        ttl: Duration,
        redis: crate::redis_pool::RedisPool,
        prefix: String,
        timeout: Duration,
    ) -> Self {
        ContentCache {
            mode,
            ttl,
            redis,
            prefix,
            timeout,
            version: AtomicU64::new(0),
            local: RwLock::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    pub fn mode(&self) -> CacheMode {
        self.mode
    }

    fn version_key(&self) -> String {
        format!("{}content:version", self.prefix)
    }

    fn redis_key(&self, key: Key, version: u64) -> String {
        format!("{}content:v{version}:{}", self.prefix, key.name())
    }

    /// Reads the content version from Redis (the poller calls this).
    pub async fn refresh_version(&self) -> Result<u64, ApiError> {
        let mut conn = self.redis.get().await?;
        let v: Option<u64> = tokio::time::timeout(self.timeout, conn.get(self.version_key()))
            .await
            .map_err(|_| ApiError::unavailable("cache"))??;
        let v = v.unwrap_or(0);
        self.version.store(v, Relaxed);
        Ok(v)
    }

    /// The serialized content for `key`, from the cache or from `build`
    /// (None: the content does not exist, e.g. an unknown quiz id).
    pub async fn get_or_build<F, Fut>(
        &self,
        key: Key,
        build: F,
    ) -> Result<(Option<Bytes>, Outcome), ApiError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Bytes>, ApiError>>,
    {
        match self.mode {
            CacheMode::Off => Ok((build().await?, Outcome::Off)),
            CacheMode::Local => {
                if let Some(body) = self.local_get(key) {
                    return Ok((body, Outcome::Hit));
                }
                let flight = self.flight(key);
                let _guard = flight.lock().await;
                if let Some(body) = self.local_get(key) {
                    return Ok((body, Outcome::Hit));
                }
                let body = build().await;
                // Unknown ids are not cached: that would let anyone fill
                // the worker's memory.
                if let Ok(Some(b)) = &body {
                    self.local_put(key, b.clone());
                }
                // Landed only once the entry is in place: a request that
                // missed just before would otherwise start a second flight
                // and rebuild again.
                self.land(key);
                Ok((body?, Outcome::Miss))
            }
            CacheMode::Redis => {
                let version = self.version.load(Relaxed);
                match self.redis_get(key, version).await {
                    Ok(Some(body)) => return Ok((Some(body), Outcome::Hit)),
                    Ok(None) => {}
                    Err(_) => return Ok((build().await?, Outcome::Bypass)),
                }
                let flight = self.flight(key);
                let _guard = flight.lock().await;
                if let Ok(Some(body)) = self.redis_get(key, version).await {
                    return Ok((Some(body), Outcome::Hit));
                }
                let body = build().await;
                let outcome = match &body {
                    Ok(Some(b)) => match self.redis_put(key, version, b).await {
                        Ok(()) => Outcome::Miss,
                        Err(_) => Outcome::Bypass,
                    },
                    _ => Outcome::Miss,
                };
                // Landed only once the value is in Redis (see above).
                self.land(key);
                Ok((body?, outcome))
            }
        }
    }

    /// The cached body for `key` when the mode is `local` and the entry is
    /// current: no await, no I/O (the server answers such hits before the
    /// router).
    pub fn fresh_local(&self, key: Key) -> Option<Bytes> {
        if self.mode != CacheMode::Local {
            return None;
        }
        self.local_get(key).flatten()
    }

    fn flight(&self, key: Key) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().expect("flight lock");
        flights.entry(key).or_default().clone()
    }

    /// Forgets the key's flight once its rebuild is over, so the map stays
    /// as small as the set of keys being rebuilt right now.
    fn land(&self, key: Key) {
        self.flights.lock().expect("flight lock").remove(&key);
    }

    fn local_get(&self, key: Key) -> Option<Option<Bytes>> {
        let version = self.version.load(Relaxed);
        let map = self.local.read().expect("cache lock");
        let e = map.get(&key)?;
        (e.version == version && e.expires > Instant::now()).then(|| Some(e.body.clone()))
    }

    fn local_put(&self, key: Key, body: Bytes) {
        let entry = Entry {
            version: self.version.load(Relaxed),
            expires: Instant::now() + self.ttl,
            body,
        };
        self.local.write().expect("cache lock").insert(key, entry);
    }

    async fn redis_get(&self, key: Key, version: u64) -> Result<Option<Bytes>, ApiError> {
        let mut conn = self.redis.get().await?;
        let raw: Option<Vec<u8>> =
            tokio::time::timeout(self.timeout, conn.get(self.redis_key(key, version)))
                .await
                .map_err(|_| ApiError::unavailable("cache"))??;
        // A value that is not JSON was corrupted: treat it as a miss.
        Ok(raw
            .filter(|v| serde_json::from_slice::<serde::de::IgnoredAny>(v).is_ok())
            .map(Bytes::from))
    }

    async fn redis_put(&self, key: Key, version: u64, body: &Bytes) -> Result<(), ApiError> {
        let mut conn = self.redis.get().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis_key(key, version))
            .arg(body.as_ref())
            .arg("EX")
            .arg(self.ttl.as_secs().max(1));
        tokio::time::timeout(self.timeout, cmd.query_async::<()>(&mut *conn))
            .await
            .map_err(|_| ApiError::unavailable("cache"))??;
        Ok(())
    }
}
