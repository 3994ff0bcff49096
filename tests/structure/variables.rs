//! Every configuration variable the server reads is documented in
//! `docs/configuration.md`'s table and passed through by
//! `docker-compose.yml`.

use std::collections::BTreeSet;

use crate::{read, root};

/// The variables named in the first column of the tables of a Markdown
/// document (backticked, upper case: `` `DB_POOL_MIN` / `DB_POOL_MAX` ``
/// names two).
pub fn documented(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter(|name| is_variable(name))
        .map(String::from)
        .collect()
}

/// The keys set in a compose file (`    NAME:` or `    NAME: value` lines).
pub fn compose_keys(compose: &str) -> BTreeSet<String> {
    compose
        .lines()
        .filter_map(|l| l.trim_start().split_once(':').map(|(k, _)| k.trim()))
        .filter(|k| is_variable(k))
        .map(String::from)
        .collect()
}

fn is_variable(s: &str) -> bool {
    s.len() > 1
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Asserts that `reader` finds every variable of `quizbench::config` in
/// `file`; `fix` says what to do about the missing ones.
fn every_variable_in(file: &str, reader: fn(&str) -> BTreeSet<String>, fix: &str) {
    let found = reader(&read(&root().join(file)));
    let missing: Vec<&str> = quizbench::config::known_vars()
        .filter(|v| !found.contains(*v))
        .collect();
    assert!(missing.is_empty(), "{fix} in {file}: {missing:?}");
}

/// Each variable of `quizbench::config` has a row in docs/configuration.md.
#[test]
fn every_variable_is_in_the_configuration_table() {
    every_variable_in(
        "docs/configuration.md",
        documented,
        "add these to the table",
    );
}

/// Each variable of `quizbench::config` is passed through to the app by
/// docker-compose.yml.
#[test]
fn every_variable_is_passed_through_by_compose() {
    every_variable_in("docker-compose.yml", compose_keys, "pass these through");
}

/// The readers find names in table cells and compose keys, and nothing else.
#[test]
fn readers_find_variables_in_cells_and_keys() {
    let doc = "| `DB_POOL_MIN` / `DB_POOL_MAX` | `0` / `4` | pools |\n\
               | `off` | x |\ntext `NOT_IN_A_TABLE`\n";
    assert_eq!(
        documented(doc).into_iter().collect::<Vec<_>>(),
        ["DB_POOL_MAX", "DB_POOL_MIN"]
    );
    let compose = "services:\n  app:\n    environment:\n      PROCESSES:  # (1)\n      BIND: \"0.0.0.0:8000\"\n    image: x\n";
    assert_eq!(
        compose_keys(compose).into_iter().collect::<Vec<_>>(),
        ["BIND", "PROCESSES"]
    );
}
