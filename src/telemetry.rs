//! Logging: tracing to stdout, text or JSON, filtered by `LOG_LEVEL`.
//!
//! The writer is synchronous (no background thread), so the supervisor
//! stays single-threaded and can fork. Nothing we log contains a password,
//! a token or a cookie: handlers never log request bodies or headers.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(level)
        .or_else(|_| EnvFilter::try_new(format!("quizbench={level}")))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        // Colours for a terminal only: a log file or `docker logs` gets
        // plain text.
        .with_ansi(std::io::stdout().is_terminal())
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
