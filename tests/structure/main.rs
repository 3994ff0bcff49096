//! Guard rails on the shape of the tree, so that the structure a newcomer
//! reads in `docs/architecture.md` and the README stays true: file and README
//! sizes, the layer tables of `src/` and `loadtests/src/`, and the
//! configuration variables being documented and passed through by compose,
//! and the tests the docs cite existing.
//!
//! These tests read files; they start nothing.

mod docs;
mod layers;
mod sizes;
mod variables;

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file below `dir` (relative to the workspace root), sorted.
pub fn rust_files(dir: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join(dir)];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}
