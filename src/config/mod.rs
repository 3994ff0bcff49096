//! Typed configuration, read once at start-up from environment variables.
//!
//! Every knob has one env var and one default (`DEFAULTS`).
//! A profile file (`config/NAME.env`, chosen by `PROFILE`) supplies defaults
//! that real environment variables override, so a document's setup can be
//! reproduced with `PROFILE=doc000-single` and tweaked with one more variable.
//! Parsing is pure (it takes a lookup function) so it is unit-tested; errors
//! name the variable and the value that was refused.

mod defaults;
mod profile;
mod reader;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

pub use defaults::known_vars;
pub use profile::{load_profile, parse_profile};
use reader::Reader;

/// A configuration error: which variable, what it held, what was expected.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?}: {expected}")]
pub struct ConfigError {
    pub var: String,
    pub value: String,
    pub expected: String,
}

/// How pre-forked workers share the listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerMode {
    /// One SO_REUSEPORT socket per worker slot (nginx, Fiber prefork).
    ReusePort,
    /// One socket inherited by every worker (Tornado, gunicorn).
    Shared,
}

/// Where CPU-heavy work (password hashing, grading) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpuOffload {
    /// On a bounded pool of hashing threads, off the event loop.
    Pool,
    /// Inline on the event loop thread: the single-threaded Python pathology.
    Inline,
}

/// How the supervisor starts a worker process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerSpawn {
    /// fork, then execute the binary from its path in the child (every
    /// worker runs the same, current build; a SIGHUP picks up a new one).
    Exec,
    /// fork only: the worker runs the supervisor's copy of the code (faster
    /// to boot). A SIGHUP still re-executes the binary.
    Fork,
}

/// What the connection-budget check does when the pools may need more
/// connections than PostgreSQL or Redis accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetMode {
    Off,
    /// Log a warning with the numbers.
    Warn,
    /// Refuse to serve: the server stops with the numbers.
    Strict,
}

/// What DATABASE_URL points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbPooler {
    /// PostgreSQL itself.
    None,
    /// A PgBouncer in session pooling mode: the statement timeout is set with
    /// `SET` on each new connection (PgBouncer refuses startup options), and
    /// the connection budget is checked against PgBouncer's pool.
    PgBouncer,
}

/// Cache mode for content common to all students (quiz list, quiz detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheMode {
    Off,
    /// Serialized responses kept in Redis.
    Redis,
    /// Serialized responses kept in each worker's memory, validated against
    /// a version key in Redis.
    Local,
}

impl CacheMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Off => "off",
            CacheMode::Redis => "redis",
            CacheMode::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Which response compressions are offered (tower-http negotiates by
/// Accept-Encoding among the enabled ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Compression {
    pub gzip: bool,
    pub br: bool,
    pub zstd: bool,
    /// Codec level (gzip 1-9, br 0-11, zstd 1-22).
    pub level: i32,
    /// Responses smaller than this many bytes are sent uncompressed.
    pub min_bytes: u16,
}

impl Compression {
    pub fn enabled(&self) -> bool {
        self.gzip || self.br || self.zstd
    }
}

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Argon2Params {
    /// OWASP's minimum recommendation for argon2id (19 MiB, t=2, p=1).
    pub const OWASP: Argon2Params = Argon2Params {
        memory_kib: 19 * 1024,
        iterations: 2,
        parallelism: 1,
    };

    pub fn below_owasp(&self) -> bool {
        self.memory_kib < Self::OWASP.memory_kib || self.iterations < Self::OWASP.iterations
    }
}

/// The whole effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PROFILE`: name or path of the profile file that supplied defaults.
    pub profile: Option<String>,
    /// `DATABASE_URL` (a secret: it may hold a password, so `Debug` shows
    /// `[REDACTED]`; read it with `expose_secret`).
    pub database_url: SecretString,
    /// `REDIS_URL` (a secret, as `DATABASE_URL`).
    pub redis_url: SecretString,
    /// `REDIS_PREFIX`: prefix of every Redis key this server touches.
    pub redis_prefix: String,
    /// `BIND`: address:port to listen on.
    pub bind: SocketAddr,
    /// `PROCESSES`: 1 = single process; N = supervisor + N workers; 0/auto = one per usable CPU.
    pub processes: Processes,
    /// `THREADS`: 1 = current-thread runtime; N = multi-thread runtime with N workers.
    pub threads: usize,
    /// `THREAD_PER_CORE`: with THREADS=N, run N current-thread runtimes each with its own SO_REUSEPORT listener.
    pub thread_per_core: bool,
    /// `SUPERVISOR`: force a supervisor around a single worker (recycling, respawn).
    pub supervisor: bool,
    /// `LISTENER`: reuseport | shared.
    pub listener: ListenerMode,
    /// `LISTEN_BACKLOG`: listen(2) backlog per socket.
    pub listen_backlog: i32,
    /// `CPU_OFFLOAD`: pool | inline.
    pub cpu_offload: CpuOffload,
    /// `CPU_POOL_THREADS`: hashing/grading threads per process (0 = usable CPUs).
    pub cpu_pool_threads: usize,
    /// `CPU_POOL_QUEUE`: jobs allowed to wait for the CPU pool before 503.
    pub cpu_pool_queue: usize,
    /// `CONCURRENCY_CAP`: requests in flight per worker before it stops reading more (0 = none).
    pub concurrency_cap: usize,
    /// `MAX_IN_FLIGHT`: requests in flight per process beyond which new ones get 503 (0 = none).
    pub max_in_flight: usize,
    /// `MAX_CONNECTIONS`: open connections per process; beyond it, accepting pauses.
    pub max_connections: usize,
    /// `HEADER_READ_TIMEOUT_MS`: time a client has to send a complete request head.
    pub header_read_timeout: Duration,
    /// `KEEPALIVE_TIMEOUT_SECS`: idle time after which a keep-alive connection is closed.
    pub keepalive_timeout: Duration,
    /// `REQUEST_TIMEOUT_SECS`: per-request deadline (503 after it).
    pub request_timeout: Duration,
    /// `GRACEFUL_TIMEOUT_SECS`: drain deadline on SIGTERM.
    pub graceful_timeout: Duration,
    /// `HEARTBEAT_TIMEOUT_SECS`: the supervisor kills a worker whose event loop has not ticked for this long (0 = never; gunicorn's --timeout).
    pub heartbeat_timeout: Option<Duration>,
    /// `MAX_REQUESTS`: recycle a worker after this many requests (0 = never).
    pub max_requests: u64,
    /// `MAX_REQUESTS_JITTER`: random extra requests added to MAX_REQUESTS per worker.
    pub max_requests_jitter: u64,
    /// `MAX_LIFETIME_SECS`: recycle a worker after this long (plus up to 10% jitter; 0 = never).
    pub max_lifetime: Option<Duration>,
    /// `MAX_RSS_MB`: recycle a worker whose resident memory exceeds this (0 = never).
    pub max_rss_mb: u64,
    /// `WORKER_SPAWN`: exec | fork (how the supervisor starts workers).
    pub worker_spawn: WorkerSpawn,
    /// `CONNECTION_BUDGET`: off | warn | strict (pools vs Postgres max_connections and Redis maxclients).
    pub connection_budget: BudgetMode,
    /// `WORKER_HEADERS`: add X-Worker-Id and X-Worker-Pid to responses.
    pub worker_headers: bool,
    /// `DB_POOL_MIN`
    pub db_pool_min: u32,
    /// `DB_POOL_MAX`
    pub db_pool_max: u32,
    /// `DB_ACQUIRE_TIMEOUT_MS`
    pub db_acquire_timeout: Duration,
    /// `DB_MAX_LIFETIME_SECS` (0 = unlimited): document 002's MAX_CONN_AGE.
    pub db_max_lifetime: Option<Duration>,
    /// `DB_IDLE_TIMEOUT_SECS` (0 = unlimited)
    pub db_idle_timeout: Option<Duration>,
    /// `DB_STATEMENT_TIMEOUT_MS`: server-side statement_timeout per connection (0 = none).
    pub db_statement_timeout_ms: u64,
    /// `DB_POOLER`: none | pgbouncer (DATABASE_URL is a PgBouncer in session mode).
    pub db_pooler: DbPooler,
    /// `PUBLISH_IP`: the host address a deployment publishes the port on
    /// (compose's ports); unset = BIND's address. See [`Config::exposed`].
    pub publish_ip: Option<IpAddr>,
    /// `REDIS_POOL_MAX`
    pub redis_pool_max: usize,
    /// `REDIS_TIMEOUT_MS`: wait/create/recycle and command timeout.
    pub redis_timeout: Duration,
    /// `CACHE_MODE`: off | redis | local.
    pub cache_mode: CacheMode,
    /// `CACHE_TTL_SECS`
    pub cache_ttl: Duration,
    /// `COMPRESSION` (off | gzip,br,zstd), `COMPRESSION_LEVEL`, `COMPRESSION_MIN_BYTES`.
    pub compression: Compression,
    /// `LOG_LEVEL`: a tracing filter (info, debug, quizbench=debug,...).
    pub log_level: String,
    /// `LOG_FORMAT`: text | json.
    pub log_format: LogFormat,
    /// `ACCESS_LOG`: one log line per request at info level.
    pub access_log: bool,
    /// `ARGON2_MEMORY_KIB`, `ARGON2_ITERATIONS`, `ARGON2_PARALLELISM`.
    pub argon2: Argon2Params,
    /// `SESSION_IDLE_SECS`: a session unused this long expires.
    pub session_idle: Duration,
    /// `SESSION_ABSOLUTE_SECS`: a session expires this long after login whatever its use.
    pub session_absolute: Duration,
    /// `COOKIE_SECURE`: add `Secure` to the session cookie.
    pub cookie_secure: bool,
    /// `LOGIN_MAX_FAILURES`: failed logins per username (and per address, x5) per window before 429.
    pub login_max_failures: u32,
    /// `LOGIN_WINDOW_SECS`
    pub login_window: Duration,
    /// `GRADE_COST`: ensemble members evaluated per grading request (CPU cost).
    pub grade_cost: u32,
    /// `GRADE_MODEL_MB`: memory footprint of the classifier's weights.
    pub grade_model_mb: u32,
    /// `APP_CPU_COST_US`: CPU time each API request burns on its own thread
    /// (the stand-in for a framework's per-request work; zero = none).
    /// Responses from the content cache pay none (see `routes::all`).
    pub app_cpu_cost: Duration,
    /// `FILES_DIR`: where student code files are stored.
    pub files_dir: PathBuf,
    /// `FILE_MAX_BYTES`: largest code file accepted.
    pub file_max_bytes: usize,
}

/// `PROCESSES`: a count or "auto".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Processes {
    Count(usize),
    /// One worker per CPU this process may use.
    Auto,
}

impl Config {
    /// Reads the process environment, plus a profile file: `profile` (the
    /// `--profile` option) when given, else the one named by `PROFILE`.
    pub fn from_env(profile: Option<&str>) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let profile = profile
            .map(str::to_string)
            .or_else(|| env.get("PROFILE").cloned())
            .filter(|p| !p.is_empty());
        let profile_vars = match &profile {
            Some(name) => load_profile(name)?,
            None => HashMap::new(),
        };
        // An empty variable counts as unset, so it does not hide the
        // profile's value (compose passes unset variables as empty).
        Config::from_lookup(profile, |key| {
            env.get(key)
                .filter(|v| !v.trim().is_empty())
                .or_else(|| profile_vars.get(key))
                .map(String::as_str)
        })
    }

    /// Builds the configuration from a lookup function (env, then profile).
    pub fn from_lookup<'a>(
        profile: Option<String>,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Config, ConfigError> {
        let r = Reader { lookup: &lookup };
        let compression = r.compression()?;
        let cfg = Config {
            profile,
            database_url: r.string("DATABASE_URL").into(),
            redis_url: r.string("REDIS_URL").into(),
            redis_prefix: r.string("REDIS_PREFIX"),
            bind: r.parse("BIND", "an address:port such as 127.0.0.1:8000")?,
            processes: r.processes()?,
            threads: r.ranged("THREADS", 1, 1024)?,
            thread_per_core: r.bool("THREAD_PER_CORE")?,
            supervisor: r.bool("SUPERVISOR")?,
            listener: r.choice(
                "LISTENER",
                &[
                    ("reuseport", ListenerMode::ReusePort),
                    ("shared", ListenerMode::Shared),
                ],
            )?,
            listen_backlog: r.ranged("LISTEN_BACKLOG", 1, 1 << 20)? as i32,
            cpu_offload: r.choice(
                "CPU_OFFLOAD",
                &[("pool", CpuOffload::Pool), ("inline", CpuOffload::Inline)],
            )?,
            cpu_pool_threads: r.ranged("CPU_POOL_THREADS", 0, 1024)?,
            cpu_pool_queue: r.ranged("CPU_POOL_QUEUE", 0, 1 << 20)?,
            concurrency_cap: r.ranged("CONCURRENCY_CAP", 0, 1 << 20)?,
            max_in_flight: r.ranged("MAX_IN_FLIGHT", 0, 1 << 24)?,
            max_connections: r.ranged("MAX_CONNECTIONS", 1, 1 << 24)?,
            header_read_timeout: Duration::from_millis(r.ranged(
                "HEADER_READ_TIMEOUT_MS",
                1,
                3_600_000,
            )? as u64),
            keepalive_timeout: r.secs("KEEPALIVE_TIMEOUT_SECS", 1)?,
            request_timeout: r.secs("REQUEST_TIMEOUT_SECS", 1)?,
            graceful_timeout: r.secs("GRACEFUL_TIMEOUT_SECS", 0)?,
            heartbeat_timeout: r.optional_secs("HEARTBEAT_TIMEOUT_SECS")?,
            max_requests: r.ranged("MAX_REQUESTS", 0, usize::MAX)? as u64,
            max_requests_jitter: r.ranged("MAX_REQUESTS_JITTER", 0, usize::MAX)? as u64,
            max_lifetime: r.optional_secs("MAX_LIFETIME_SECS")?,
            max_rss_mb: r.ranged("MAX_RSS_MB", 0, 1 << 30)? as u64,
            worker_spawn: r.choice(
                "WORKER_SPAWN",
                &[("exec", WorkerSpawn::Exec), ("fork", WorkerSpawn::Fork)],
            )?,
            connection_budget: r.choice(
                "CONNECTION_BUDGET",
                &[
                    ("off", BudgetMode::Off),
                    ("warn", BudgetMode::Warn),
                    ("strict", BudgetMode::Strict),
                ],
            )?,
            worker_headers: r.bool("WORKER_HEADERS")?,
            db_pool_min: r.ranged("DB_POOL_MIN", 0, 10_000)? as u32,
            db_pool_max: r.ranged("DB_POOL_MAX", 1, 10_000)? as u32,
            db_acquire_timeout: Duration::from_millis(r.ranged(
                "DB_ACQUIRE_TIMEOUT_MS",
                1,
                600_000,
            )? as u64),
            db_max_lifetime: r.optional_secs("DB_MAX_LIFETIME_SECS")?,
            db_idle_timeout: r.optional_secs("DB_IDLE_TIMEOUT_SECS")?,
            db_statement_timeout_ms: r.ranged("DB_STATEMENT_TIMEOUT_MS", 0, 3_600_000)? as u64,
            db_pooler: r.choice(
                "DB_POOLER",
                &[("none", DbPooler::None), ("pgbouncer", DbPooler::PgBouncer)],
            )?,
            publish_ip: match r.raw("PUBLISH_IP") {
                "" => None,
                _ => Some(r.parse("PUBLISH_IP", "an IP address such as 127.0.0.1")?),
            },
            redis_pool_max: r.ranged("REDIS_POOL_MAX", 1, 100_000)?,
            redis_timeout: Duration::from_millis(r.ranged("REDIS_TIMEOUT_MS", 1, 600_000)? as u64),
            cache_mode: r.choice(
                "CACHE_MODE",
                &[
                    ("off", CacheMode::Off),
                    ("redis", CacheMode::Redis),
                    ("local", CacheMode::Local),
                ],
            )?,
            cache_ttl: r.secs("CACHE_TTL_SECS", 1)?,
            compression,
            log_level: r.string("LOG_LEVEL"),
            log_format: r.choice(
                "LOG_FORMAT",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
            access_log: r.bool("ACCESS_LOG")?,
            argon2: Argon2Params {
                memory_kib: r.ranged("ARGON2_MEMORY_KIB", 8, 4 * 1024 * 1024)? as u32,
                iterations: r.ranged("ARGON2_ITERATIONS", 1, 1000)? as u32,
                parallelism: r.ranged("ARGON2_PARALLELISM", 1, 64)? as u32,
            },
            session_idle: r.secs("SESSION_IDLE_SECS", 1)?,
            session_absolute: r.secs("SESSION_ABSOLUTE_SECS", 1)?,
            cookie_secure: r.bool("COOKIE_SECURE")?,
            login_max_failures: r.ranged("LOGIN_MAX_FAILURES", 0, 1_000_000)? as u32,
            login_window: r.secs("LOGIN_WINDOW_SECS", 1)?,
            grade_cost: r.ranged("GRADE_COST", 1, 10_000_000)? as u32,
            grade_model_mb: r.ranged("GRADE_MODEL_MB", 1, 64 * 1024)? as u32,
            app_cpu_cost: Duration::from_micros(r.ranged("APP_CPU_COST_US", 0, 10_000_000)? as u64),
            files_dir: PathBuf::from(r.string("FILES_DIR")),
            file_max_bytes: r.ranged("FILE_MAX_BYTES", 1, 64 << 20)?,
        };
        if cfg.db_pool_min > cfg.db_pool_max {
            return Err(ConfigError {
                var: "DB_POOL_MIN".into(),
                value: cfg.db_pool_min.to_string(),
                expected: format!("at most DB_POOL_MAX ({})", cfg.db_pool_max),
            });
        }
        if cfg.argon2.memory_kib < 8 * cfg.argon2.parallelism {
            return Err(ConfigError {
                var: "ARGON2_MEMORY_KIB".into(),
                value: cfg.argon2.memory_kib.to_string(),
                expected: "at least 8 x ARGON2_PARALLELISM".into(),
            });
        }
        Ok(cfg)
    }

    /// Whether clients beyond this machine can reach the server: the
    /// published address (`PUBLISH_IP`), else the bound one, is not a
    /// loopback address.
    pub fn exposed(&self) -> bool {
        !self.publish_ip.unwrap_or(self.bind.ip()).is_loopback()
    }

    /// The usual "PxT" name of the process model, e.g. "2x1 prefork reuseport".
    pub fn model_name(&self, processes: usize) -> String {
        let threads = if self.thread_per_core {
            format!("{} thread-per-core", self.threads)
        } else if self.threads == 1 {
            "1 event loop".to_string()
        } else {
            format!("{} threads", self.threads)
        };
        match processes {
            1 if !self.supervisor && self.processes != Processes::Auto => {
                format!("single process, {threads}")
            }
            1 => format!("supervised single worker, {threads}"),
            n => format!(
                "prefork {n} workers ({}), {threads}",
                match self.listener {
                    ListenerMode::ReusePort => "reuseport",
                    ListenerMode::Shared => "shared socket",
                }
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(None, |k| map.get(k).map(String::as_str))
    }

    #[test]
    fn defaults_are_valid_and_owasp_strength() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(c.processes, Processes::Count(1));
        assert_eq!(c.threads, 1);
        assert_eq!(c.listener, ListenerMode::ReusePort);
        assert_eq!(c.cache_mode, CacheMode::Local);
        assert!(!c.argon2.below_owasp());
        assert!(!c.compression.enabled());
        assert_eq!(c.db_acquire_timeout, Duration::from_secs(1));
    }

    #[test]
    fn processes_auto_and_counts() {
        assert_eq!(
            cfg(&[("PROCESSES", "auto")]).unwrap().processes,
            Processes::Auto
        );
        assert_eq!(
            cfg(&[("PROCESSES", "0")]).unwrap().processes,
            Processes::Auto
        );
        assert_eq!(
            cfg(&[("PROCESSES", "8")]).unwrap().processes,
            Processes::Count(8)
        );
        let e = cfg(&[("PROCESSES", "many")]).unwrap_err();
        assert_eq!(e.var, "PROCESSES");
        assert!(e.to_string().contains("many"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = cfg(&[("THREADS", "0")]).unwrap_err();
        assert_eq!(e.var, "THREADS");
        let e = cfg(&[("CACHE_MODE", "memcached")]).unwrap_err();
        assert!(e.expected.contains("off, redis, local"), "{e}");
        let e = cfg(&[("BIND", "nowhere")]).unwrap_err();
        assert_eq!(e.var, "BIND");
        let e = cfg(&[("DB_POOL_MIN", "20"), ("DB_POOL_MAX", "10")]).unwrap_err();
        assert_eq!(e.var, "DB_POOL_MIN");
    }

    #[test]
    fn exposure_follows_the_published_address_then_the_bound_one() {
        assert!(!cfg(&[]).unwrap().exposed());
        assert!(cfg(&[("BIND", "0.0.0.0:8000")]).unwrap().exposed());
        // In a container BIND is 0.0.0.0 while compose publishes on loopback.
        let c = cfg(&[("BIND", "0.0.0.0:8000"), ("PUBLISH_IP", "127.0.0.1")]).unwrap();
        assert!(!c.exposed());
        assert!(cfg(&[("PUBLISH_IP", "0.0.0.0")]).unwrap().exposed());
        assert_eq!(
            cfg(&[("PUBLISH_IP", "here")]).unwrap_err().var,
            "PUBLISH_IP"
        );
        let pooled = cfg(&[("DB_POOLER", "pgbouncer")]).unwrap();
        assert_eq!(pooled.db_pooler, DbPooler::PgBouncer);
        assert_eq!(
            cfg(&[("DB_POOLER", "pgpool")]).unwrap_err().var,
            "DB_POOLER"
        );
    }

    #[test]
    fn compression_lists() {
        let c = cfg(&[("COMPRESSION", "gzip, zstd"), ("COMPRESSION_LEVEL", "9")])
            .unwrap()
            .compression;
        assert!(c.gzip && c.zstd && !c.br);
        assert_eq!(c.level, 9);
        assert!(cfg(&[("COMPRESSION", "all")]).unwrap().compression.br);
        assert!(cfg(&[("COMPRESSION", "lz4")]).is_err());
    }

    #[test]
    fn debug_never_shows_the_connection_strings() {
        use secrecy::ExposeSecret as _;
        let database = "postgres://quiz:pg-s3cret@db:5432/quizbench";
        let redis = "redis://:redis-s3cret@cache:6379/0";
        let c = cfg(&[("DATABASE_URL", database), ("REDIS_URL", redis)]).unwrap();
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("database_url"), "{shown}");
        assert_eq!(c.database_url.expose_secret(), database);
        assert_eq!(c.redis_url.expose_secret(), redis);
    }

    #[test]
    fn app_cpu_cost_is_microseconds_off_by_default_and_range_checked() {
        assert_eq!(cfg(&[]).unwrap().app_cpu_cost, Duration::ZERO);
        let c = cfg(&[("APP_CPU_COST_US", "25000")]).unwrap();
        assert_eq!(c.app_cpu_cost, Duration::from_millis(25));
        for bad in ["-1", "10000001", "25ms", "1.5"] {
            let e = cfg(&[("APP_CPU_COST_US", bad)]).unwrap_err();
            assert_eq!(e.var, "APP_CPU_COST_US", "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    /// Experiment 001 calibrates GRADE_COST to about 1.5 CPU-seconds per
    /// request: well over a million rounds.
    #[test]
    fn grade_cost_reaches_seconds_of_cpu() {
        assert_eq!(
            cfg(&[("GRADE_COST", "2000000")]).unwrap().grade_cost,
            2_000_000
        );
        let e = cfg(&[("GRADE_COST", "10000001")]).unwrap_err();
        assert_eq!(e.var, "GRADE_COST");
    }

    #[test]
    fn empty_values_fall_back_to_defaults() {
        let c = cfg(&[("THREADS", ""), ("DB_MAX_LIFETIME_SECS", "0")]).unwrap();
        assert_eq!(c.threads, 1);
        assert_eq!(c.db_max_lifetime, None);
    }
}
