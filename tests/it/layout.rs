//! The layout rules of the crate, checked on its source: no cycle between the modules of
//! `src/` (a module that uses another never is used by it, even through others), and no
//! source file over 1,000 lines in `src/`, `cli/src/` or `sandbox/src/`.
//!
//! A module's uses are the `crate::<module>` paths in its files, outside comments and outside
//! its unit tests (`mod tests` blocks and `tests.rs` files).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and unit tests.
fn code(path: &Path) -> String {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => &text[..],
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The module of `src/` each file belongs to (`src/store/file.rs` → `store`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

fn module_graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        let code = code(file);
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if name != from && modules.contains(&name) {
                let shown = file.strip_prefix(root()).unwrap().display().to_string();
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(name)
                    .or_default()
                    .insert(shown);
            }
        }
    }
    graph
}

/// A cycle through `start`, as the modules on it and the files that make each step.
fn cycle_from(
    graph: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    let here = path.last().unwrap().clone();
    for next in graph.get(&here).into_iter().flat_map(|m| m.keys()) {
        if *next == path[0] {
            let mut cycle = path.clone();
            cycle.push(next.clone());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(graph, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_cycle_between_the_modules_of_src() {
    let graph = module_graph();
    // The check sees the graph: the client uses the resources, which use the error module.
    assert!(graph["client"].contains_key("resources"), "{graph:#?}");
    assert!(graph["resources"].contains_key("error"), "{graph:#?}");
    for start in graph.keys() {
        let mut path = vec![start.clone()];
        if let Some(cycle) = cycle_from(&graph, &mut path, &mut BTreeSet::new()) {
            let steps: Vec<String> = cycle
                .windows(2)
                .map(|w| format!("{} -> {}: {:?}", w[0], w[1], graph[&w[0]][&w[1]]))
                .collect();
            panic!("a cycle between modules of src/:\n{}", steps.join("\n"));
        }
    }
}

#[test]
fn no_source_file_is_over_1000_lines() {
    let mut long = Vec::new();
    let mut count = 0;
    for dir in ["src", "cli/src", "sandbox/src"] {
        let mut files = Vec::new();
        rust_files(&root().join(dir), &mut files);
        for file in files {
            count += 1;
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > 1000 {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(count > 50, "read only {count} files");
    assert!(long.is_empty(), "split by concept: {long:#?}");
}
