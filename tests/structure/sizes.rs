//! Small files and a short README.

use crate::{read, root, rust_files};

/// Longest source file, tests included: past this, a file holds more than
/// one concern.
const MAX_FILE_LINES: usize = 700;
/// Longest README: past this, depth belongs in `docs/`.
const MAX_README_LINES: usize = 300;

/// The files of `dirs` longer than `max` lines, as `path: lines`.
pub fn too_long(dirs: &[&str], max: usize) -> Vec<String> {
    dirs.iter()
        .flat_map(|d| rust_files(d))
        .filter_map(|p| {
            let n = read(&p).lines().count();
            (n > max).then(|| {
                format!(
                    "{}: {n} lines",
                    p.strip_prefix(root()).unwrap_or(&p).display()
                )
            })
        })
        .collect()
}

/// No Rust source file of the workspace (server, load tests, their tests)
/// is over 700 lines.
#[test]
fn no_source_file_is_over_700_lines() {
    let long = too_long(
        &["src", "tests", "loadtests/src", "loadtests/tests"],
        MAX_FILE_LINES,
    );
    assert!(
        long.is_empty(),
        "split these files along their concerns (at most {MAX_FILE_LINES} lines):\n{}",
        long.join("\n")
    );
}

/// The README stays a newcomer's page.
#[test]
fn readme_is_within_300_lines() {
    let n = read(&root().join("README.md")).lines().count();
    assert!(
        n <= MAX_README_LINES,
        "README.md has {n} lines (at most {MAX_README_LINES}): move depth to docs/"
    );
}
