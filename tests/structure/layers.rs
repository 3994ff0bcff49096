//! The layer tables of `docs/architecture.md` hold in the code: a module
//! references only modules of its own layer or lower ones, and no two
//! top-level modules reference each other, directly or around a cycle.
//!
//! A file's module is the first path component below its crate's `src/`
//! (`src/foo.rs` and `src/foo/…` are module `foo`); a reference is any
//! `crate::name` outside a comment, in `use` lines and in code, including
//! grouped imports (`use crate::{a, b::c}`). `main.rs` and `lib.rs` are
//! the crate's roots and exempt.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::{read, root, rust_files};

/// Layer number of each top-level module, from the first Markdown table
/// after the heading that contains `heading`.
pub fn layer_table(doc: &str, heading: &str) -> BTreeMap<String, u32> {
    let mut lines = doc
        .lines()
        .skip_while(|l| !(l.starts_with('#') && l.replace('`', "").contains(heading)));
    assert!(
        lines.next().is_some(),
        "docs/architecture.md has no heading containing {heading:?}"
    );
    let rows = lines
        .skip_while(|l| !l.trim_start().starts_with('|'))
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2); // header and separator
    let mut table = BTreeMap::new();
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (Some(layer), Some(modules)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let layer: u32 = layer
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("layer row without a number: {row}"));
        for name in modules.split('`').skip(1).step_by(2) {
            table.insert(name.to_string(), layer);
        }
    }
    assert!(
        !table.is_empty(),
        "no layer table under the heading containing {heading:?}"
    );
    table
}

/// The top-level modules named by `crate::` references in `source`
/// (comments skipped).
pub fn crate_references(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.find("//").map_or(line, |i| &line[..i]))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        rest = &rest[i + "crate::".len()..];
        // `my_crate::x` is not a reference to this crate.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            out.extend(group_heads(group));
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// The first identifier of each top-level item of a `{a, b::c, d::{e}}`
/// group (the text after the opening brace, across lines).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut at_item_start = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                if !current.is_empty() {
                    heads.push(std::mem::take(&mut current));
                }
                at_item_start = true;
                continue;
            }
            _ => {}
        }
        if depth == 0 && at_item_start {
            if c.is_alphanumeric() || c == '_' {
                current.push(c);
                continue;
            }
            if !current.is_empty() {
                heads.push(std::mem::take(&mut current));
                at_item_start = false;
            }
        }
    }
    if !current.is_empty() {
        heads.push(current);
    }
    heads.retain(|h| h != "self");
    heads
}

/// Module -> modules it references, for the crate whose sources are under
/// `src_dir` (relative to the workspace root).
pub fn module_graph(src_dir: &str) -> BTreeMap<String, BTreeSet<String>> {
    let base = root().join(src_dir);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in rust_files(src_dir) {
        let rel = path.strip_prefix(&base).unwrap();
        let Some(module) = top_module(rel) else {
            continue;
        };
        let refs = crate_references(&read(&path));
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != module));
    }
    graph
}

fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    if rel.components().count() == 1 && (first == "main.rs" || first == "lib.rs") {
        return None;
    }
    Some(first.trim_end_matches(".rs").to_string())
}

/// What is wrong with `graph` against `table`: modules missing from the
/// table, references upwards, and cycles.
pub fn violations(
    graph: &BTreeMap<String, BTreeSet<String>>,
    table: &BTreeMap<String, u32>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (module, refs) in graph {
        let Some(&own) = table.get(module) else {
            out.push(format!("module `{module}` is not in the layer table"));
            continue;
        };
        for r in refs {
            match table.get(r) {
                Some(&theirs) if theirs > own => out.push(format!(
                    "`{module}` (layer {own}) uses `{r}` (layer {theirs}), a layer above its own"
                )),
                Some(_) => {}
                None if graph.contains_key(r) => {
                    out.push(format!("module `{r}` is not in the layer table"))
                }
                None => {} // not a module of this crate (e.g. a macro path)
            }
        }
    }
    out.extend(cycles(graph));
    out.sort();
    out.dedup();
    out
}

/// Each cycle between top-level modules, as `a -> b -> a`.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            out.push(format!("cycle: {}", cycle.join(" -> ")));
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if graph.contains_key(next) {
                visit(next, graph, path, done, out);
            }
        }
        path.pop();
        done.insert(node.to_string());
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

fn check(src_dir: &str, heading: &str) {
    let doc = read(&root().join("docs/architecture.md"));
    let table = layer_table(&doc, heading);
    let problems = violations(&module_graph(src_dir), &table);
    assert!(
        problems.is_empty(),
        "{src_dir} does not hold to the layer table of docs/architecture.md:\n{}",
        problems.join("\n")
    );
}

/// `src/` holds to its layer table.
#[test]
fn server_modules_use_only_their_layer_and_below() {
    check("src", "Layers of src/");
}

/// `loadtests/src/` holds to its layer table.
#[test]
fn loadtests_modules_use_only_their_layer_and_below() {
    check("loadtests/src", "Layers of loadtests/src/");
}

/// The reader of references: plain paths, grouped imports, comments.
#[test]
fn references_are_read_from_paths_groups_and_code() {
    let src = "use crate::config::Config;\n\
               use crate::{db, routes::ops, cache::{Key, Outcome}};\n\
               use crate::{\n    error::ApiError,\n    state,\n};\n\
               // crate::commented_out\n\
               let x = crate::metrics::now(); /* ok */\n\
               use some_crate::other;\n";
    let refs: Vec<String> = crate_references(src).into_iter().collect();
    assert_eq!(
        refs,
        ["cache", "config", "db", "error", "metrics", "routes", "state"]
    );
}

/// A reference upwards and a cycle are both reported.
#[test]
fn upward_references_and_cycles_are_violations() {
    let table: BTreeMap<String, u32> = [("low", 1), ("mid", 2), ("high", 2)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("low", vec!["mid"]),
        ("mid", vec!["high"]),
        ("high", vec!["mid"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let v = violations(&graph, &table);
    assert!(
        v.iter()
            .any(|p| p.contains("`low` (layer 1) uses `mid` (layer 2)")),
        "{v:?}"
    );
    assert!(v.iter().any(|p| p.starts_with("cycle:")), "{v:?}");
}
