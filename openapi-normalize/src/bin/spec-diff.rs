//! `spec-diff [--types TABLE.rs] OLD.json NEW.json`: compares two versions of an API document.
//!
//! Prints one line per change, classified `breaking` or `additive` for the generated crate
//! (see `openapi_normalize::diff`), the release it calls for, then the diff of the generated
//! Rust surface (with the type table `TABLE.rs`, the SDK's `openapi/rust_types.rs`). Changes no
//! file. Exit status: 0 when both describe the same API, 1 on any difference, 2 when a
//! document cannot be read.

use std::process::ExitCode;

use openapi_normalize::diff::{Class, classify, release};
use serde_json::Value;

fn read(path: &str) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))
}

fn run() -> Result<bool, String> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut table = None;
    if let Some(i) = args.iter().position(|a| a == "--types") {
        if i + 1 >= args.len() {
            return Err("--types needs a file".into());
        }
        let path = args.remove(i + 1);
        args.remove(i);
        let source =
            std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
        table = Some(
            openapi_normalize::rust::parse_type_table(&source)
                .map_err(|e| format!("{path}: {e}"))?,
        );
    }
    let [old_path, new_path] = args.as_slice() else {
        return Err("usage: spec-diff [--types openapi/rust_types.rs] OLD.json NEW.json".into());
    };
    let (old, new) = (read(old_path)?, read(new_path)?);
    let changes = classify(old.clone(), new.clone()).map_err(|e| e.to_string())?;
    if changes.is_empty() {
        println!("same API: {old_path} and {new_path} describe the same operations and types");
        return Ok(false);
    }
    println!("# changes ({new_path} against {old_path})");
    for c in &changes {
        println!("{c}");
    }
    let breaking = changes
        .iter()
        .filter(|c| c.class == Class::Breaking)
        .count();
    println!(
        "\n{breaking} breaking, {} additive: a {} release of the generated crate",
        changes.len() - breaking,
        release(&changes)
    );
    if let Some(table) = table {
        println!("\n# generated Rust surface (- {old_path}, + {new_path})");
        let surface = |doc: Value| {
            table.with(|types| openapi_normalize::rust::generate(doc, types).map(|g| g.surface))
        };
        let before = surface(old).map_err(|e| format!("{old_path}: {e}"))?;
        match surface(new) {
            Ok(after) => {
                let (b, a): (Vec<&str>, Vec<&str>) =
                    (before.lines().collect(), after.lines().collect());
                let mut any = false;
                for l in b.iter().filter(|l| !a.contains(l)) {
                    println!("-{l}");
                    any = true;
                }
                for l in a.iter().filter(|l| !b.contains(l)) {
                    println!("+{l}");
                    any = true;
                }
                if !any {
                    println!("(unchanged)");
                }
            }
            Err(e) => println!("the generator cannot read {new_path}: {e}"),
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    match run() {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(1),
        Err(e) => {
            eprintln!("spec-diff: {e}");
            ExitCode::from(2)
        }
    }
}
