//! Writing results to files: any serialisable result as pretty JSON (every
//! subcommand's `--json FILE`, an experiment's results folder). It decides
//! nothing about what is written.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// Writes any serialisable result as pretty JSON.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
