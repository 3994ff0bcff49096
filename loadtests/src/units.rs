//! Parsing of the human units the CLI accepts: durations (`10s`, `2m`,
//! `500ms`, `1h`, `1.5s`, a bare number of seconds) and duration ranges
//! (`1s..3s`), read by `humantime` (a bare number is seconds). Pure: no
//! I/O, and no knowledge of what the values are for.

use std::time::Duration;

use anyhow::{bail, Context};

/// Parses a duration such as `10s`, `2m`, `500ms`, `250us`, `1h`, `1.5s` or
/// `3` (seconds).
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .with_context(|| format!("duration {s:?} is out of range"));
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        bail!("duration {s:?} has no number (e.g. 10s, 500ms, 2m)");
    }
    humantime::parse_duration(s)
        .with_context(|| format!("bad duration {s:?} (e.g. 10s, 500ms, 2m, 1.5s)"))
}

/// Parses an optional duration setting (`None` when it is not given).
pub fn parse_opt_duration(s: &Option<String>) -> anyhow::Result<Option<Duration>> {
    s.as_deref().map(parse_duration).transpose()
}

/// Parses `1s..3s` (a uniform range) or a single duration (`2s`, a fixed
/// value) into `(min, max)`.
pub fn parse_duration_range(s: &str) -> anyhow::Result<(Duration, Duration)> {
    match s.split_once("..") {
        Some((a, b)) => {
            let (a, b) = (parse_duration(a)?, parse_duration(b)?);
            if b < a {
                bail!("range {s:?} ends before it starts");
            }
            Ok((a, b))
        }
        None => {
            let d = parse_duration(s)?;
            Ok((d, d))
        }
    }
}

/// Formats a duration compactly for terminal output: `1.234s`, `12.3ms`.
pub fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.3}s")
    } else {
        format!("{:.1}ms", s * 1e3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_duration_range("1s..3s").unwrap(),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(
            parse_duration_range("500ms").unwrap(),
            (Duration::from_millis(500), Duration::from_millis(500))
        );
        assert!(parse_duration_range("3s..1s").is_err());
        assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.234s");
        assert_eq!(fmt_duration(Duration::from_micros(12_345)), "12.3ms");
    }
}
