//! The connection budget: do this server's pools fit in what PostgreSQL and
//! Redis accept? Document 004's prefork collapse came from 8 workers x a
//! pool of 80 against `max_connections = 100`.
//!
//! Worker 0 of the first generation runs the check once, after it starts
//! (the supervisor runs no queries): the pools of every worker (x event
//! loops with thread-per-core) against PostgreSQL's `max_connections` minus
//! the reserved slots minus the connections other clients hold now, and
//! against Redis's `maxclients` minus its other clients. `CONNECTION_BUDGET`
//! says what happens when they do not fit: `warn` logs the numbers,
//! `strict` refuses (the worker exits with [`EXIT_BUDGET_REFUSED`] and the
//! supervisor stops), `off` skips the check. A server that cannot reach
//! PostgreSQL or Redis at that moment logs that it could not check and
//! serves: a dependency down at start is not a reason to refuse.
//!
//! During a rolling restart or a recycle, a replacement overlaps the worker
//! it replaces, so one more worker's pool may be open for a moment; the
//! report states that headroom but does not count it against the budget.

use std::time::Duration;

use secrecy::ExposeSecret as _;

use crate::config::{BudgetMode, Config};

/// Exit code of a worker that refused to serve under `CONNECTION_BUDGET=strict`.
pub const EXIT_BUDGET_REFUSED: i32 = 4;

/// The strict check refused: the error carries the report.
#[derive(Debug, thiserror::Error)]
#[error("connection budget exceeded (CONNECTION_BUDGET=strict): {0}")]
pub struct BudgetRefused(pub String);

/// What PostgreSQL reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgLimits {
    pub max_connections: i64,
    /// superuser_reserved_connections + reserved_connections (PostgreSQL 16+).
    pub reserved: i64,
    /// Client connections open now that are not this server's.
    pub others: i64,
}

/// What Redis reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisLimits {
    pub maxclients: i64,
    /// Clients connected now, other than the one asking.
    pub others: i64,
}

/// The verdict with every number, for the log line.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub pools: usize,
    pub db_needed: i64,
    pub db_available: Option<i64>,
    pub redis_needed: i64,
    pub redis_available: Option<i64>,
    pub text: String,
}

impl Report {
    pub fn exceeded(&self) -> bool {
        self.db_available.is_some_and(|a| self.db_needed > a)
            || self.redis_available.is_some_and(|a| self.redis_needed > a)
    }
}

/// Pure arithmetic of the check (unit-tested).
pub fn evaluate(
    pools: usize,
    db_pool_max: u32,
    redis_pool_max: usize,
    pg: Option<PgLimits>,
    redis: Option<RedisLimits>,
) -> Report {
    let db_needed = pools as i64 * db_pool_max as i64;
    let redis_needed = pools as i64 * redis_pool_max as i64;
    let db_available = pg.map(|l| l.max_connections - l.reserved - l.others);
    let redis_available = redis.map(|l| l.maxclients - l.others);
    let mut text =
        format!("PostgreSQL: {pools} pools x DB_POOL_MAX {db_pool_max} = {db_needed} connections");
    match pg {
        Some(l) => text.push_str(&format!(
            ", available {} (max_connections {} - reserved {} - {} held by other clients)",
            l.max_connections - l.reserved - l.others,
            l.max_connections,
            l.reserved,
            l.others
        )),
        None => text.push_str(", limit unknown (PostgreSQL unreachable)"),
    }
    text.push_str(&format!(
        "; Redis: {pools} pools x REDIS_POOL_MAX {redis_pool_max} = {redis_needed} clients"
    ));
    match redis {
        Some(l) => text.push_str(&format!(
            ", available {} (maxclients {} - {} other clients)",
            l.maxclients - l.others,
            l.maxclients,
            l.others
        )),
        None => text.push_str(", limit unknown (Redis unreachable)"),
    }
    text.push_str(&format!(
        "; a rolling restart or recycle briefly adds one worker ({db_pool_max} + {redis_pool_max})"
    ));
    Report {
        pools,
        db_needed,
        db_available,
        redis_needed,
        redis_available,
        text,
    }
}

/// Asks PostgreSQL and Redis for their limits, using a single connection of
/// each (not the worker's pools, so the check leaves no connection behind).
pub async fn check(cfg: &Config, pools: usize) -> Report {
    let timeout = cfg.db_acquire_timeout.max(Duration::from_secs(1));
    let pg = match tokio::time::timeout(timeout, pg_limits(cfg.database_url.expose_secret())).await
    {
        Ok(Ok(l)) => Some(l),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "connection budget: could not ask PostgreSQL");
            None
        }
        Err(_) => {
            tracing::warn!("connection budget: PostgreSQL did not answer in time");
            None
        }
    };
    let redis =
        match tokio::time::timeout(timeout, redis_limits(cfg.redis_url.expose_secret())).await {
            Ok(Ok(l)) => Some(l),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "connection budget: could not ask Redis");
                None
            }
            Err(_) => {
                tracing::warn!("connection budget: Redis did not answer in time");
                None
            }
        };
    evaluate(pools, cfg.db_pool_max, cfg.redis_pool_max, pg, redis)
}

async fn pg_limits(url: &str) -> anyhow::Result<PgLimits> {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let limits = crate::db::server::connection_limits(&mut conn).await?;
    let _ = conn.close().await;
    Ok(PgLimits {
        max_connections: limits.max_connections,
        reserved: limits.superuser_reserved + limits.reserved,
        others: limits.other_clients,
    })
}

async fn redis_limits(url: &str) -> anyhow::Result<RedisLimits> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query_async(&mut conn)
        .await?;
    let field = |name: &str| -> Option<i64> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
    };
    let connected = field("connected_clients").unwrap_or(1);
    let maxclients = match field("maxclients") {
        Some(m) => m,
        // Older servers: INFO has no maxclients; CONFIG may be renamed away.
        None => {
            let pair: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxclients")
                .query_async(&mut conn)
                .await?;
            pair.get(1)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow::anyhow!("Redis did not report maxclients"))?
        }
    };
    Ok(RedisLimits {
        maxclients,
        others: (connected - 1).max(0),
    })
}

/// Runs the check per `CONNECTION_BUDGET` and logs it; `Err` only when the
/// strict mode refuses.
pub async fn enforce(cfg: &Config, pools: usize) -> Result<(), BudgetRefused> {
    if cfg.connection_budget == BudgetMode::Off {
        return Ok(());
    }
    let report = check(cfg, pools).await;
    if !report.exceeded() && (report.db_available.is_none() || report.redis_available.is_none()) {
        tracing::warn!(
            pools,
            db_connections = report.db_needed,
            redis_connections = report.redis_needed,
            "connection budget not fully checked (serving anyway): {}",
            report.text
        );
        return Ok(());
    }
    if !report.exceeded() {
        tracing::info!(
            pools,
            db_connections = report.db_needed,
            redis_connections = report.redis_needed,
            "connection budget ok: {}",
            report.text
        );
        return Ok(());
    }
    if cfg.connection_budget == BudgetMode::Strict {
        tracing::error!(
            pools,
            db_connections = report.db_needed,
            db_available = report.db_available,
            redis_connections = report.redis_needed,
            redis_available = report.redis_available,
            "connection budget exceeded, refusing to serve (CONNECTION_BUDGET=strict): {}",
            report.text
        );
        return Err(BudgetRefused(report.text));
    }
    tracing::warn!(
        pools,
        db_connections = report.db_needed,
        db_available = report.db_available,
        redis_connections = report.redis_needed,
        redis_available = report.redis_available,
        "connection budget exceeded: under load the pools will wait or fail to connect \
         (lower DB_POOL_MAX/REDIS_POOL_MAX or PROCESSES; CONNECTION_BUDGET=strict refuses): {}",
        report.text
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_004_collapse_is_flagged() {
        // 8 workers x 80 against max_connections 100 (3 reserved, 2 others).
        let pg = PgLimits {
            max_connections: 100,
            reserved: 3,
            others: 2,
        };
        let redis = RedisLimits {
            maxclients: 10_000,
            others: 1,
        };
        let r = evaluate(8, 80, 200, Some(pg), Some(redis));
        assert!(r.exceeded());
        assert_eq!(r.db_needed, 640);
        assert_eq!(r.db_available, Some(95));
        assert!(
            r.text.contains("8 pools x DB_POOL_MAX 80 = 640"),
            "{}",
            r.text
        );
        let ok = evaluate(2, 40, 200, Some(pg), Some(redis));
        assert!(!ok.exceeded());
    }

    #[test]
    fn redis_alone_can_exceed() {
        let r = evaluate(
            4,
            5,
            3000,
            None,
            Some(RedisLimits {
                maxclients: 10_000,
                others: 0,
            }),
        );
        assert!(r.exceeded());
        assert!(r.text.contains("PostgreSQL unreachable"));
    }

    #[test]
    fn unknown_limits_never_refuse() {
        assert!(!evaluate(100, 1000, 1000, None, None).exceeded());
    }
}
