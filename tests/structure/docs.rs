//! The tests that `docs/reliability.md` cites as proof of a promise exist.

use crate::{read, root, rust_files};

/// The test functions named in a document: backticked paths such as
/// `` `faults::deps::hot_key_expiry_is_single_flight` `` (last segment; `*`
/// for "every test of the module" is skipped).
pub fn cited_tests(doc: &str) -> Vec<String> {
    doc.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains("::") && !s.contains(' '))
        .filter_map(|s| s.rsplit("::").next())
        .filter(|name| *name != "*" && !name.is_empty())
        .map(String::from)
        .collect()
}

/// Every test cited by docs/reliability.md is defined somewhere in the tree.
#[test]
fn every_cited_test_exists() {
    let sources: String = ["src", "tests", "loadtests/src", "loadtests/tests"]
        .iter()
        .flat_map(|d| rust_files(d))
        .map(|p| read(&p))
        .collect();
    let missing: Vec<String> = cited_tests(&read(&root().join("docs/reliability.md")))
        .into_iter()
        .filter(|name| !sources.contains(&format!("fn {name}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reliability.md cites tests that do not exist: {missing:?}"
    );
}

#[test]
fn citations_are_read_from_backticked_paths() {
    let doc = "| x | `api::auth::*`, `faults::deps::retry_once` and `not a path` |";
    assert_eq!(cited_tests(doc), ["retry_once"]);
}
