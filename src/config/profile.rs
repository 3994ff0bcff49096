//! Profile files (`config/NAME.env`): defaults for a document's setup that
//! real environment variables override.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{known_vars, ConfigError};

/// Reads `config/NAME.env` (or a path) as KEY=VALUE lines; `#` starts a comment.
pub fn load_profile(name: &str) -> Result<HashMap<String, String>, ConfigError> {
    let path = profile_path(name);
    let text = std::fs::read_to_string(&path).map_err(|e| ConfigError {
        var: "PROFILE".into(),
        value: name.into(),
        expected: format!("a readable profile file ({}: {e})", path.display()),
    })?;
    parse_profile(&text).map_err(|line| ConfigError {
        var: "PROFILE".into(),
        value: name.into(),
        expected: format!("KEY=VALUE lines naming known variables; bad line: {line:?}"),
    })
}

fn profile_path(name: &str) -> PathBuf {
    if name.contains('/') || name.ends_with(".env") {
        return PathBuf::from(name);
    }
    // Look beside the working directory first, then beside the executable
    // (the container image keeps config/ next to the binary).
    let local = Path::new("config").join(format!("{name}.env"));
    if local.exists() {
        return local;
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            let candidate = dir.join("config").join(format!("{name}.env"));
            if candidate.exists() {
                return candidate;
            }
        }
    }
    local
}

/// Parses profile text; returns the first bad line on error.
pub fn parse_profile(text: &str) -> Result<HashMap<String, String>, String> {
    let known: Vec<&str> = known_vars().collect();
    let mut vars = HashMap::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(raw.to_string());
        };
        let key = key.trim();
        if !known.contains(&key) || key == "PROFILE" {
            return Err(raw.to_string());
        }
        let value = value.split(" #").next().unwrap_or("").trim();
        vars.insert(key.to_string(), value.trim_matches('"').to_string());
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn profile_files_parse_and_reject_unknown_keys() {
        let vars = parse_profile("# doc 000\nPROCESSES=2\nDB_POOL_MAX = 25 # pool\n\n").unwrap();
        assert_eq!(vars["PROCESSES"], "2");
        assert_eq!(vars["DB_POOL_MAX"], "25");
        assert!(parse_profile("PROCESES=2").is_err());
        assert!(parse_profile("just words").is_err());
    }

    #[test]
    fn every_shipped_profile_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "env") {
                let text = std::fs::read_to_string(&path).unwrap();
                let vars = parse_profile(&text)
                    .unwrap_or_else(|l| panic!("{}: bad line {l}", path.display()));
                Config::from_lookup(None, |k| vars.get(k).map(String::as_str))
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(seen >= 5, "expected the document profiles in config/");
    }

    /// `--profile` is passed as a value (no environment variable set for
    /// `Config::from_env` to read back).
    #[test]
    fn a_profile_given_as_a_value_supplies_defaults() {
        let path = std::env::temp_dir().join(format!("qb-profile-{}.env", std::process::id()));
        std::fs::write(&path, "GRADE_MODEL_MB=77\n").unwrap();
        let name = path.to_str().unwrap();
        let cfg = Config::from_env(Some(name));
        std::fs::remove_file(&path).unwrap();
        let cfg = cfg.unwrap();
        assert_eq!(cfg.profile.as_deref(), Some(name));
        assert_eq!(cfg.grade_model_mb, 77);
    }
}
