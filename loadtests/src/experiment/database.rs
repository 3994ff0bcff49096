//! What a configuration changes in the database and what the database
//! plans, around the configuration's server start: indexes it runs without
//! ([`IndexChange`]: each index's definition read, the index dropped, and
//! recreated from that definition after the configuration's cells) and
//! the plan of the experiment's statement in that state ([`explain`],
//! `EXPLAIN`), and the server's `max_connections` as it runs
//! ([`max_connections`]). Statements go through `psql` (installed with
//! PostgreSQL) against the database the server uses.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};

use super::services::pg_bin_dir;

fn psql_bin() -> PathBuf {
    pg_bin_dir()
        .map(|d| d.join("psql"))
        .ok()
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("psql"))
}

/// Runs `sql` with `psql` against `url` and returns its unaligned,
/// tuples-only output.
pub fn psql(url: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new(psql_bin())
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!(
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

/// Indexes dropped for a configuration, with the definitions that restore
/// them.
#[derive(Debug, Default)]
pub struct IndexChange {
    url: String,
    definitions: Vec<String>,
}

/// A plain SQL identifier (the index names of the experiment file go into
/// statements).
fn identifier(name: &str) -> anyhow::Result<&str> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        bail!("{name:?} is not a plain index name");
    }
    Ok(name)
}

impl IndexChange {
    /// Reads each index's definition and drops it. An index that does not
    /// exist is an error: the experiment would measure a state it did not
    /// mean to.
    pub fn drop(url: &str, names: &[String]) -> anyhow::Result<Self> {
        let mut change = IndexChange {
            url: url.to_string(),
            definitions: Vec::new(),
        };
        for name in names {
            let name = identifier(name)?;
            let def = psql(url, &format!("select pg_get_indexdef('{name}'::regclass)"))
                .with_context(|| format!("index {name} to drop"))?;
            psql(url, &format!("drop index {name}"))?;
            change.definitions.push(def);
        }
        Ok(change)
    }

    /// Recreates the dropped indexes (and refreshes the statistics).
    pub fn restore(mut self) -> anyhow::Result<()> {
        self.recreate()
    }

    fn recreate(&mut self) -> anyhow::Result<()> {
        if self.definitions.is_empty() {
            return Ok(());
        }
        while let Some(def) = self.definitions.first() {
            psql(&self.url, def)?;
            self.definitions.remove(0);
        }
        psql(&self.url, "analyze")?;
        Ok(())
    }
}

/// An error or a signal that stops the runner mid-configuration still puts
/// the indexes back (best effort): a database the runner does not throw
/// away must not keep the experiment's changes.
impl Drop for IndexChange {
    fn drop(&mut self) {
        if let Err(e) = self.recreate() {
            eprintln!("warning: could not restore the dropped indexes: {e:#}");
        }
    }
}

/// The plan PostgreSQL chooses for `statement` (`EXPLAIN (COSTS OFF)`),
/// one line per node.
pub fn explain(url: &str, statement: &str) -> anyhow::Result<String> {
    psql(url, &format!("explain (costs off) {statement}"))
}

/// `SHOW max_connections` of the server at `url` (asked in its `postgres`
/// database: the server's own may not exist before the first seed).
pub fn max_connections(url: &str) -> anyhow::Result<u32> {
    let admin = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/postgres"),
        None => url.to_string(),
    };
    let v = psql(&admin, "show max_connections")?;
    v.trim()
        .parse()
        .with_context(|| format!("max_connections is {v:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_plain_identifiers() {
        assert_eq!(
            identifier("users_select_options_idx").unwrap(),
            "users_select_options_idx"
        );
        for bad in ["", "a; drop table users", "x'y", "a b"] {
            assert!(identifier(bad).is_err(), "{bad:?}");
        }
    }
}
