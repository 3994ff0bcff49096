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
//! supervisor stops), `off` skips the check. Under `strict` the supervisor
//! starts the other workers only once worker 0 is ready: otherwise their
//! pools can fill `max_connections` before the check's own connection gets
//! in (16 workers x 40 idle against 300), and a check that cannot connect
//! serves, as below. A server that cannot reach
//! PostgreSQL or Redis at that moment logs that it could not check and
//! serves: a dependency down at start is not a reason to refuse.
//!
//! With `DB_POOLER=pgbouncer`, DATABASE_URL is a PgBouncer in session
//! pooling mode: each client connection holds a server connection while it
//! is open, so the pools are checked against PgBouncer's pool for that
//! database (`SHOW DATABASES`, `SHOW CLIENTS` on its admin console) instead
//! of PostgreSQL's `max_connections`, which PgBouncer's pool is sized to
//! fit; a pool mode other than session is reported as a misfit.
//!
//! During a rolling restart or a recycle, a replacement overlaps the worker
//! it replaces, so one more worker's pool may be open for a moment; the
//! report states that headroom but does not count it against the budget.

use std::time::Duration;

use secrecy::ExposeSecret as _;

use crate::config::{BudgetMode, Config, DbPooler};

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

/// What PgBouncer reported for the database DATABASE_URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolerLimits {
    /// Server connections the pool may open: pool_size + reserve_pool
    /// (capped by max_db_connections when that is set).
    pub pool: i64,
    /// The pool mode that applies (session, transaction or statement).
    pub pool_mode: String,
    /// Clients connected to this database through PgBouncer now.
    pub others: i64,
}

/// The database side's limits: PostgreSQL's, or a pooler's in front of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbLimits {
    Postgres(PgLimits),
    PgBouncer(PoolerLimits),
}

impl DbLimits {
    fn available(&self) -> i64 {
        match self {
            DbLimits::Postgres(l) => l.max_connections - l.reserved - l.others,
            DbLimits::PgBouncer(l) => l.pool - l.others,
        }
    }

    fn describe(&self) -> String {
        match self {
            DbLimits::Postgres(l) => format!(
                "max_connections {} - reserved {} - {} held by other clients",
                l.max_connections, l.reserved, l.others
            ),
            DbLimits::PgBouncer(l) => format!(
                "PgBouncer pool {} ({} pooling) - {} other clients",
                l.pool, l.pool_mode, l.others
            ),
        }
    }

    /// Why the pools cannot work through this pooler at all.
    fn misfit(&self) -> Option<String> {
        match self {
            DbLimits::PgBouncer(l) if l.pool_mode != "session" => Some(format!(
                "PgBouncer's pool_mode is {}: sqlx's named prepared statements and the \
                 session-level statement_timeout need pool_mode = session",
                l.pool_mode
            )),
            _ => None,
        }
    }
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
    /// The pools cannot work through the database side as configured.
    pub misfit: Option<String>,
    pub text: String,
}

impl Report {
    pub fn exceeded(&self) -> bool {
        self.misfit.is_some()
            || self.db_available.is_some_and(|a| self.db_needed > a)
            || self.redis_available.is_some_and(|a| self.redis_needed > a)
    }
}

/// Pure arithmetic of the check (unit-tested).
pub fn evaluate(
    pools: usize,
    db_pool_max: u32,
    redis_pool_max: usize,
    db: Option<DbLimits>,
    redis: Option<RedisLimits>,
) -> Report {
    let db_needed = pools as i64 * db_pool_max as i64;
    let redis_needed = pools as i64 * redis_pool_max as i64;
    let db_available = db.as_ref().map(DbLimits::available);
    let redis_available = redis.map(|l| l.maxclients - l.others);
    let misfit = db.as_ref().and_then(DbLimits::misfit);
    let mut text =
        format!("PostgreSQL: {pools} pools x DB_POOL_MAX {db_pool_max} = {db_needed} connections");
    match &db {
        Some(l) => text.push_str(&format!(", available {} ({})", l.available(), l.describe())),
        None => text.push_str(", limit unknown (PostgreSQL unreachable)"),
    }
    if let Some(m) = &misfit {
        text.push_str(&format!(" ({m})"));
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
        misfit,
        text,
    }
}

/// Asks PostgreSQL and Redis for their limits, using a single connection of
/// each (not the worker's pools, so the check leaves no connection behind).
pub async fn check(cfg: &Config, pools: usize) -> Report {
    let timeout = cfg.db_acquire_timeout.max(Duration::from_secs(1));
    let pg = ask("PostgreSQL", timeout, db_limits(cfg)).await;
    let redis = ask(
        "Redis",
        timeout,
        redis_limits(cfg.redis_url.expose_secret()),
    )
    .await;
    evaluate(pools, cfg.db_pool_max, cfg.redis_pool_max, pg, redis)
}

/// What `limits` answers within `timeout`; None (with a warning naming
/// `server`) when it fails or is late.
async fn ask<T, E: std::fmt::Display>(
    server: &str,
    timeout: Duration,
    limits: impl std::future::Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(timeout, limits).await {
        Ok(Ok(l)) => Some(l),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "connection budget: could not ask {server}");
            None
        }
        Err(_) => {
            tracing::warn!("connection budget: {server} did not answer in time");
            None
        }
    }
}

async fn db_limits(cfg: &Config) -> anyhow::Result<DbLimits> {
    Ok(match cfg.db_pooler {
        DbPooler::None => DbLimits::Postgres(pg_limits(cfg.database_url.expose_secret()).await?),
        DbPooler::PgBouncer => {
            DbLimits::PgBouncer(pgbouncer_limits(cfg.database_url.expose_secret()).await?)
        }
    })
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

/// Asks PgBouncer's admin console (database `pgbouncer`, same host, port and
/// user as DATABASE_URL; the user must be in its admin_users or stats_users).
async fn pgbouncer_limits(url: &str) -> anyhow::Result<PoolerLimits> {
    use crate::db::server::PgBouncerShow;
    use sqlx::postgres::PgConnectOptions;
    use sqlx::{ConnectOptions as _, Connection as _};
    let opts: PgConnectOptions = url.parse()?;
    let database = opts
        .get_database()
        .unwrap_or(opts.get_username())
        .to_string();
    // Named so that this check finds its own row in SHOW CLIENTS.
    let me = format!("quizbench-budget-{}", std::process::id());
    let mut conn = opts
        .database("pgbouncer")
        .application_name(&me)
        .connect()
        .await?;
    // The admin console speaks only the simple query protocol.
    let databases = AdminRow::show(&mut conn, PgBouncerShow::Databases).await?;
    let config = AdminRow::show(&mut conn, PgBouncerShow::Config).await?;
    let clients = AdminRow::show(&mut conn, PgBouncerShow::Clients).await?;
    let _ = conn.close().await;
    Ok(pooler_limits(&database, &databases, &config, &clients, &me))
}

/// PgBouncer's pool for `database` and the clients that count against it:
/// every client of that database except this server's own workers, taken
/// as the `quizbench` clients from the address this check (`me`) connects
/// from. (Replicas on other hosts or containers count; replicas sharing
/// this one's address are taken for its own workers.)
fn pooler_limits(
    database: &str,
    databases: &[AdminRow],
    config: &[AdminRow],
    clients: &[AdminRow],
    me: &str,
) -> PoolerLimits {
    let setting = |key: &str| {
        config
            .iter()
            .find(|r| r.text("key") == key)
            .map(|r| r.text("value"))
            .unwrap_or_default()
    };
    let number = |key: &str| setting(key).trim().parse::<i64>().unwrap_or(0);
    // A database served through the `*` entry is listed only once a client
    // has used it: until then the defaults of SHOW CONFIG apply.
    let entry = databases.iter().find(|r| r.text("name") == database);
    let (mut pool, cap, pool_mode) = match entry {
        Some(e) => (
            e.number("pool_size") + e.number("reserve_pool"),
            e.number("max_connections"),
            e.text("pool_mode"),
        ),
        None => (
            number("default_pool_size") + number("reserve_pool_size"),
            0,
            String::new(),
        ),
    };
    let cap = if cap > 0 {
        cap
    } else {
        number("max_db_connections")
    };
    if cap > 0 {
        pool = pool.min(cap);
    }
    let pool_mode = match pool_mode {
        mode if mode.is_empty() => setting("pool_mode"),
        mode => mode,
    };
    let my_addr = clients
        .iter()
        .find(|r| r.text("application_name") == me)
        .map(|r| r.text("addr"));
    let others = clients
        .iter()
        .filter(|r| r.text("database") == database)
        .filter(|r| !(r.text("application_name") == "quizbench" && Some(r.text("addr")) == my_addr))
        .count() as i64;
    PoolerLimits {
        pool,
        pool_mode,
        others,
    }
}

/// A row of PgBouncer's admin console, every column read as text.
struct AdminRow(Vec<(String, Option<String>)>);

impl From<&sqlx::postgres::PgRow> for AdminRow {
    fn from(row: &sqlx::postgres::PgRow) -> AdminRow {
        use sqlx::{Column as _, Row as _};
        AdminRow(
            row.columns()
                .iter()
                .map(|c| {
                    // Text-format values decode as strings whatever their type.
                    let value = row.try_get_unchecked::<Option<String>, _>(c.ordinal());
                    (c.name().to_string(), value.ok().flatten())
                })
                .collect(),
        )
    }
}

impl AdminRow {
    async fn show(
        conn: &mut sqlx::PgConnection,
        command: crate::db::server::PgBouncerShow,
    ) -> sqlx::Result<Vec<AdminRow>> {
        let rows = crate::db::server::pgbouncer_show(conn, command).await?;
        Ok(rows.iter().map(AdminRow::from).collect())
    }

    fn text(&self, column: &str) -> String {
        self.0
            .iter()
            .find(|(name, _)| name == column)
            .and_then(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn number(&self, column: &str) -> i64 {
        self.text(column).trim().parse().unwrap_or(0)
    }
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
    // Each outcome is logged with the figures it was judged on.
    macro_rules! log {
        ($level:ident, $message:expr) => {
            tracing::event!(
                tracing::Level::$level,
                pools,
                db_connections = report.db_needed,
                db_available = report.db_available,
                redis_connections = report.redis_needed,
                redis_available = report.redis_available,
                "{}: {}",
                $message,
                report.text
            )
        };
    }
    if !report.exceeded() && (report.db_available.is_none() || report.redis_available.is_none()) {
        log!(WARN, "connection budget not fully checked (serving anyway)");
        return Ok(());
    }
    if !report.exceeded() {
        log!(INFO, "connection budget ok");
        return Ok(());
    }
    if cfg.connection_budget == BudgetMode::Strict {
        log!(
            ERROR,
            "connection budget exceeded, refusing to serve (CONNECTION_BUDGET=strict)"
        );
        return Err(BudgetRefused(report.text));
    }
    log!(
        WARN,
        "connection budget exceeded: under load the pools will wait or fail to connect \
         (lower DB_POOL_MAX/REDIS_POOL_MAX or PROCESSES; CONNECTION_BUDGET=strict refuses)"
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
        let r = evaluate(8, 80, 200, Some(DbLimits::Postgres(pg)), Some(redis));
        assert!(r.exceeded());
        assert_eq!(r.db_needed, 640);
        assert_eq!(r.db_available, Some(95));
        assert!(
            r.text.contains("8 pools x DB_POOL_MAX 80 = 640"),
            "{}",
            r.text
        );
        let ok = evaluate(2, 40, 200, Some(DbLimits::Postgres(pg)), Some(redis));
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
    fn pgbouncer_pool_is_the_limit_in_session_mode() {
        let bouncer = |pool_mode: &str, others| {
            Some(DbLimits::PgBouncer(PoolerLimits {
                pool: 20,
                pool_mode: pool_mode.into(),
                others,
            }))
        };
        // Three replicas x 4 fit a pool of 20 that other clients use 5 of.
        let fits = evaluate(3, 4, 16, bouncer("session", 5), None);
        assert!(!fits.exceeded(), "{}", fits.text);
        assert_eq!(fits.db_available, Some(15));
        assert!(fits.text.contains("PgBouncer pool 20 (session pooling)"));
        // A fourth replica's pool does not.
        assert!(evaluate(1, 4, 16, bouncer("session", 17), None).exceeded());
        // Transaction pooling breaks named statements whatever the numbers.
        let misfit = evaluate(1, 1, 1, bouncer("transaction", 0), None);
        assert!(misfit.exceeded());
        assert!(
            misfit.text.contains("pool_mode = session"),
            "{}",
            misfit.text
        );
    }

    fn row(pairs: &[(&str, &str)]) -> AdminRow {
        AdminRow(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        )
    }

    #[test]
    fn pgbouncer_answers_give_the_pool_and_the_other_clients() {
        let databases = [
            row(&[("name", "pgbouncer"), ("pool_size", "2")]),
            row(&[
                ("name", "quizbench"),
                ("pool_size", "20"),
                ("reserve_pool", "2"),
                ("max_connections", "0"),
                ("pool_mode", ""),
            ]),
        ];
        let config = [
            row(&[("key", "pool_mode"), ("value", "session")]),
            row(&[("key", "default_pool_size"), ("value", "10")]),
            row(&[("key", "max_db_connections"), ("value", "0")]),
        ];
        let client = |db: &str, app: &str, addr: &str| {
            row(&[("database", db), ("application_name", app), ("addr", addr)])
        };
        let clients = [
            client("pgbouncer", "quizbench-budget-7", "172.18.0.5"),
            // This server's own workers, another replica's, another program's.
            client("quizbench", "quizbench", "172.18.0.5"),
            client("quizbench", "quizbench", "172.18.0.6"),
            client("quizbench", "psql", "172.18.0.5"),
            client("other", "quizbench", "172.18.0.6"),
        ];
        let l = pooler_limits(
            "quizbench",
            &databases,
            &config,
            &clients,
            "quizbench-budget-7",
        );
        assert_eq!(
            l,
            PoolerLimits {
                pool: 22,
                pool_mode: "session".into(),
                others: 2
            }
        );
        // Not listed yet (served by `*`): the configured defaults.
        let unlisted = pooler_limits("fresh", &databases, &config, &[], "x");
        assert_eq!((unlisted.pool, unlisted.others), (10, 0));
    }

    #[test]
    fn unknown_limits_never_refuse() {
        assert!(!evaluate(100, 1000, 1000, None, None).exceeded());
    }
}
