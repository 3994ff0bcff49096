//! Server-side sessions in Redis.
//!
//! A token is 256 random bits sent to the client (cookie and bearer token);
//! Redis only ever sees its SHA-256, so a leaked Redis dump holds no usable
//! token. Lookups use `GETEX ... EX idle`, one round trip that both reads the
//! session and slides its idle expiry; the absolute expiry is checked
//! against the creation time stored in the value. A per-user set of token
//! hashes lets a password change revoke every other session.

use base64::Engine as _;
use rand::RngCore as _;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::time::Duration;

use crate::error::ApiError;

/// What a session remembers about its user (enough for select-options
/// without a database round trip).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Session {
    #[serde(rename = "u")]
    pub user_id: i64,
    #[serde(rename = "n")]
    pub username: String,
    #[serde(rename = "r")]
    pub role: String,
    #[serde(rename = "o")]
    pub organization_id: Option<i64>,
    #[serde(rename = "c")]
    pub cohort_id: Option<i64>,
    /// Unix seconds at login.
    #[serde(rename = "t")]
    pub created: i64,
}

#[derive(Clone)]
pub struct SessionStore {
    pool: crate::redis_pool::RedisPool,
    prefix: String,
    idle: Duration,
    absolute: Duration,
    timeout: Duration,
}

/// A fresh random token (43 URL-safe characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Hex SHA-256 of a token: the only form Redis stores.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Tokens we issue are exactly 43 base64url characters; anything else is
/// rejected before touching Redis.
pub fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl SessionStore {
    pub fn new(
        pool: crate::redis_pool::RedisPool,
        prefix: String,
        idle: Duration,
        absolute: Duration,
        timeout: Duration,
    ) -> Self {
        SessionStore {
            pool,
            prefix,
            idle,
            absolute,
            timeout,
        }
    }

    fn key(&self, hash: &str) -> String {
        format!("{}sess:{hash}", self.prefix)
    }

    fn user_key(&self, user_id: i64) -> String {
        format!("{}user-sessions:{user_id}", self.prefix)
    }

    async fn conn(&self) -> Result<crate::redis_pool::PooledRedis, ApiError> {
        Ok(self.pool.get().await?)
    }

    /// Runs a Redis operation under the command timeout.
    async fn timed<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ApiError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(ApiError::unavailable("session store")),
        }
    }

    /// Stores a new session and returns its token.
    pub async fn create(&self, session: &Session) -> Result<String, ApiError> {
        let token = new_token();
        let hash = token_hash(&token);
        let value = serde_json::to_string(session).expect("session serializes");
        let mut conn = self.conn().await?;
        let user_key = self.user_key(session.user_id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(self.key(&hash), value, self.idle.as_secs())
            .ignore()
            .sadd(&user_key, &hash)
            .ignore()
            .expire(&user_key, self.absolute.as_secs() as i64)
            .ignore();
        self.timed(pipe.query_async::<()>(&mut *conn)).await?;
        Ok(token)
    }

    /// The live session for a token, sliding its idle expiry.
    pub async fn lookup(&self, token: &str) -> Result<Option<Session>, ApiError> {
        if !plausible_token(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let mut conn = self.conn().await?;
        let raw: Option<String> = self
            .timed(
                redis::cmd("GETEX")
                    .arg(self.key(&hash))
                    .arg("EX")
                    .arg(self.idle.as_secs())
                    .query_async(&mut *conn),
            )
            .await?;
        let Some(raw) = raw else { return Ok(None) };
        let Ok(session) = serde_json::from_str::<Session>(&raw) else {
            // A corrupt value is no session.
            return Ok(None);
        };
        let age = chrono::Utc::now().timestamp() - session.created;
        if age < 0 || age as u64 >= self.absolute.as_secs() {
            let _: Result<(), _> = self.timed(conn.del(self.key(&hash))).await;
            return Ok(None);
        }
        Ok(Some(session))
    }

    /// Ends one session.
    pub async fn revoke(&self, token: &str, user_id: i64) -> Result<(), ApiError> {
        let hash = token_hash(token);
        let mut conn = self.conn().await?;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.key(&hash))
            .ignore()
            .srem(self.user_key(user_id), &hash)
            .ignore();
        self.timed(pipe.query_async::<()>(&mut *conn)).await
    }

    /// Ends every session of a user except `keep` (a token), e.g. after a
    /// password change.
    pub async fn revoke_others(&self, user_id: i64, keep: Option<&str>) -> Result<(), ApiError> {
        let keep = keep.map(token_hash);
        let user_key = self.user_key(user_id);
        let mut conn = self.conn().await?;
        let hashes: Vec<String> = self.timed(conn.smembers(&user_key)).await?;
        let doomed: Vec<String> = hashes
            .into_iter()
            .filter(|h| Some(h) != keep.as_ref())
            .collect();
        if doomed.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> = doomed.iter().map(|h| self.key(h)).collect();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(keys)
            .ignore()
            .srem(&user_key, doomed)
            .ignore();
        self.timed(pipe.query_async::<()>(&mut *conn)).await
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_plausible() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert!(plausible_token(&a));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&format!("{}!", &a[..42])));
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn session_round_trips_compactly() {
        let s = Session {
            user_id: 7,
            username: "student7".into(),
            role: "student".into(),
            organization_id: Some(1),
            cohort_id: None,
            created: 1,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.len() < 80, "{json}");
        assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
    }
}
