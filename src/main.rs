//! The `quizbench` binary: `serve`, `migrate`, `seed`.
//!
//! Not `#[tokio::main]`: `serve` may fork workers, which is only safe while
//! the process has one thread and no runtime. Each worker builds its own
//! runtime after the fork (see `process`).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

use quizbench::config::Config;
use quizbench::seed::SeedSize;
use quizbench::{password, process, seed, telemetry};
use secrecy::ExposeSecret as _;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "quizbench",
    version,
    about = "A quiz/login API server built to be load tested"
)]
struct Cli {
    /// Profile from config/NAME.env (defaults that environment variables override).
    #[arg(long, global = true)]
    profile: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API in the process model chosen by PROCESSES and THREADS (the default).
    Serve,
    /// Create the database if needed and apply the migrations.
    Migrate,
    /// Measure argon2id hashes per second with the configured parameters on
    /// every usable CPU (the ceiling for login throughput).
    Hashrate {
        /// How long to hash.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Hashing threads (default: usable CPUs).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Apply the migrations, then load the reference data set (resets the tables to it).
    Seed {
        /// Only seed when there are no users yet.
        #[arg(long)]
        if_empty: bool,
        #[arg(long, default_value_t = SeedSize::REFERENCE.organizations)]
        organizations: u32,
        #[arg(long, default_value_t = SeedSize::REFERENCE.cohorts_per_org)]
        cohorts_per_org: u32,
        #[arg(long, default_value_t = SeedSize::REFERENCE.students_per_cohort)]
        students_per_cohort: u32,
        #[arg(long, default_value_t = SeedSize::REFERENCE.quizzes)]
        quizzes: u32,
        #[arg(long, default_value_t = SeedSize::REFERENCE.attempts)]
        attempts: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match Config::from_env(cli.profile.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("quizbench: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&cfg.log_level, cfg.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => process::run(cfg),
        Command::Migrate => block_on(seed::migrate(cfg.database_url.expose_secret())),
        Command::Hashrate { seconds, threads } => hashrate(&cfg, seconds, threads),
        Command::Seed {
            if_empty,
            organizations,
            cohorts_per_org,
            students_per_cohort,
            quizzes,
            attempts,
        } => {
            let size = SeedSize {
                organizations,
                cohorts_per_org,
                students_per_cohort,
                quizzes,
                questions_per_quiz: SeedSize::REFERENCE.questions_per_quiz,
                attempts,
            };
            run_seed(&cfg, size, if_empty)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "quizbench failed");
            eprintln!("quizbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn hashrate(cfg: &Config, seconds: f64, threads: Option<usize>) -> anyhow::Result<()> {
    let passwords = password::Passwords::new(cfg.argon2)?;
    let threads = threads.unwrap_or_else(|| quizbench::cpu::usable_cpus().0);
    let duration = std::time::Duration::from_secs_f64(seconds.max(0.1));
    let rate = password::hashrate(&passwords, threads, duration);
    println!(
        "{{\"hashes_per_sec\": {rate:.1}, \"threads\": {threads}, \"memory_kib\": {}, \"iterations\": {}, \"parallelism\": {}}}",
        cfg.argon2.memory_kib, cfg.argon2.iterations, cfg.argon2.parallelism
    );
    Ok(())
}

fn run_seed(cfg: &Config, size: SeedSize, if_empty: bool) -> anyhow::Result<()> {
    let passwords = password::Passwords::new(cfg.argon2)?;
    block_on(async {
        // Seeding an unmigrated (or older) schema would fail half-way:
        // bring it up to date first (a no-op when it is).
        let url = cfg.database_url.expose_secret();
        seed::migrate(url).await?;
        let report = seed::seed(url, &passwords, size, if_empty).await?;
        if report.skipped {
            tracing::info!("database already has users; seed skipped (--if-empty)");
            return Ok(());
        }
        tracing::info!(
            students = report.students,
            attempts = report.attempts,
            seconds = format!("{:.2}", report.seconds),
            "seeded the reference data set"
        );
        seed::invalidate_caches(cfg).await;
        Ok(())
    })
}
