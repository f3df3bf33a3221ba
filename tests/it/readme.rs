//! The README's code blocks keep their promises.
//!
//! Doctests compile every ```rust block, but rustdoc wraps a block without `fn main` in one, so
//! a `#[tokio::test]` in a block is compiled out and never runs, and a block written with
//! `#[tokio::main] async fn main` runs nothing under `cargo test` once pasted into `tests/`.
//! So a block that declares a test (a `#[test]` or `#[tokio::test]`, or any block under a
//! "Testing" heading) must be, byte for byte, a module of this suite, and that module must run
//! at least as many tests as the block declares. And every crate the examples use has its
//! `cargo add` line under "Installation".

use std::path::{Path, PathBuf};

const README: &str = include_str!("../../README.md");

/// One fenced code block of a Markdown document.
struct Block {
    /// The nearest heading above it.
    heading: String,
    /// The info string (`rust`, `rust,no_run`, `sh`, …).
    info: String,
    code: String,
    /// 1-based line of the opening fence.
    line: usize,
}

impl Block {
    fn is_rust(&self) -> bool {
        self.info == "rust" || self.info.starts_with("rust,")
    }

    /// How many test functions the block declares.
    fn tests_declared(&self) -> usize {
        self.code
            .lines()
            .map(str::trim)
            .filter(|l| *l == "#[test]" || l.starts_with("#[tokio::test"))
            .count()
    }
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut heading = String::new();
    let mut open: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (Some(_), Some(_)) => out.extend(open.take()),
            (Some(block), None) => {
                block.code.push_str(line);
                block.code.push('\n');
            }
            (None, Some(info)) => {
                open = Some(Block {
                    heading: heading.clone(),
                    info: info.trim().to_owned(),
                    code: String::new(),
                    line: i + 1,
                })
            }
            (None, None) if line.starts_with('#') => heading = line.to_owned(),
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed code block in the README");
    out
}

/// The modules of this suite, with their code below the leading `//` header.
fn suite_modules() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path: PathBuf = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let body: String = {
            let mut lines = text.lines().peekable();
            while lines
                .next_if(|l| l.starts_with("//") || l.trim().is_empty())
                .is_some()
            {}
            lines.flat_map(|l| [l, "\n"]).collect()
        };
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        modules.push((stem, body));
    }
    modules
}

/// Every test of this binary, as the harness lists them (`module::name`).
fn listed_tests() -> Vec<String> {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_block_that_declares_a_test_is_a_test_the_suite_runs() {
    let modules = suite_modules();
    let listed = listed_tests();
    let mut checked = 0;
    for block in blocks(README).iter().filter(|b| b.is_rust()) {
        let declared = block.tests_declared();
        let testing_section = block.heading.contains("Testing");
        if declared == 0 {
            assert!(
                !testing_section,
                "README line {}: the block under {:?} is shown as a test but declares none: \
                 pasted into tests/ it would compile and run nothing; write it with #[tokio::test]",
                block.line, block.heading
            );
            continue;
        }
        let Some((module, _)) = modules.iter().find(|(_, body)| *body == block.code) else {
            panic!(
                "README line {}: a block that declares a test must be, byte for byte, a module \
                 of tests/it (below its `//!` header, declared in main.rs), so that the suite \
                 runs it: rustdoc compiles a test inside a block out. Copy the block into \
                 tests/it/readme_testing.rs (or another module) and run `cargo fmt`",
                block.line
            )
        };
        let prefix = format!("{module}::");
        let runs = listed.iter().filter(|t| t.starts_with(&prefix)).count();
        assert!(
            runs >= declared,
            "README line {}: the block declares {declared} test(s), but tests/it/{module}.rs runs \
             {runs}: declare it in tests/it/main.rs (`mod {module};`)",
            block.line
        );
        checked += 1;
    }
    assert!(checked >= 1, "the README's testing example was not found");
}

/// What a block names at the root of a path: `use futures::StreamExt` → `futures`,
/// `#[tokio::main]` → `tokio`, `ralio::Error::Config` → `ralio`.
fn crates_used(code: &str) -> Vec<String> {
    let mut crates = Vec::new();
    for line in code.lines().map(str::trim) {
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("::") {
            let before = &line[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            let prefix = &before[..start];
            // Not a path root: `a::b` (b), a method's turbofish (`.parse::<T>`).
            let inner = prefix.ends_with("::") || prefix.ends_with('.');
            if !name.is_empty()
                && !inner
                && !line[at + 2..].starts_with('<')
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && !crates.iter().any(|c| c == name)
            {
                crates.push(name.to_owned());
            }
        }
    }
    crates
}

/// The crates every Rust program has, and path roots that are not crates.
const NOT_DEPENDENCIES: &[&str] = &["std", "core", "alloc", "crate", "self", "super"];

#[test]
fn every_crate_the_examples_use_has_its_cargo_add_line() {
    let install = README
        .split_once("## Installation")
        .and_then(|(_, rest)| rest.split_once("\n## "))
        .expect("an Installation section")
        .0;
    let added = |name: &str| {
        install.lines().any(|l| {
            let words: Vec<&str> = l.split('#').next().unwrap().split_whitespace().collect();
            words.starts_with(&["cargo", "add"]) && words.contains(&name)
        })
    };
    let mut seen = Vec::new();
    for block in blocks(README).iter().filter(|b| b.is_rust()) {
        for name in crates_used(&block.code) {
            if NOT_DEPENDENCIES.contains(&name.as_str()) || seen.contains(&name) {
                continue;
            }
            let package = name.replace('_', "-");
            assert!(
                added(&package),
                "README line {}: the example uses `{name}`, but Installation has no \
                 `cargo add {package}` line",
                block.line
            );
            seen.push(name);
        }
    }
    for needed in ["ralio", "ralio-sandbox", "tokio", "futures"] {
        assert!(
            seen.contains(&needed.replace('-', "_")),
            "the examples no longer use {needed}"
        );
    }
    // `#[tokio::main]` and `#[tokio::test]` need these features.
    let tokio = install
        .lines()
        .find(|l| l.starts_with("cargo add tokio"))
        .unwrap();
    assert!(
        tokio.contains("macros") && tokio.contains("rt-multi-thread"),
        "{tokio}"
    );
    // Before the first release: the path dependencies a reader can paste.
    assert!(
        install.contains("cargo add ralio --path") && install.contains("ralio-sandbox --path"),
        "{install}"
    );
}

/// The repository's files, as git tracks them (untracked work in a checkout is not the
/// project's); a walk of the tree when git is not there.
fn repository_files(root: &Path) -> Vec<PathBuf> {
    let listed = std::process::Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|out| out.status.success());
    if let Some(out) = listed {
        return String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|p| !p.is_empty())
            .map(|p| root.join(p))
            .collect();
    }
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() {
                if name != "target" && name != ".git" {
                    dirs.push(path);
                }
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The project's documentation stands alone: no file names the protocol notes kept outside the
/// repository, and every relative Markdown link resolves to a file inside it.
#[test]
fn no_file_refers_to_a_path_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Spelled in pieces, so this file does not match itself.
    let outside = [
        concat!("PROTOCOL", ".md"),
        concat!("shared", "/seeds"),
        concat!("`shared", "/"),
    ];
    let mut problems = Vec::new();
    for path in repository_files(root) {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // binary, or gone from the working tree
        };
        let shown = path.strip_prefix(root).unwrap().display().to_string();
        for needle in outside {
            if text.contains(needle) {
                problems.push(format!("{shown}: refers to {needle}"));
            }
        }
        if path.extension().is_some_and(|e| e == "md") {
            for (at, _) in text.match_indices("](") {
                let target = &text[at + 2..];
                let Some(end) = target.find(')') else {
                    continue;
                };
                let target = target[..end].split('#').next().unwrap();
                if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                let resolved = path.parent().unwrap().join(target);
                let inside = resolved
                    .canonicalize()
                    .is_ok_and(|p| p.starts_with(root.canonicalize().unwrap()));
                if !inside {
                    problems.push(format!(
                        "{shown}: a link to {target} outside the repository or missing"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(root.join("docs/protocol.md").is_file());
}
