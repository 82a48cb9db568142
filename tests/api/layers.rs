//! Dependencies point one way: the domain modules never import the edges (`api`, `cli`, `startup`)
//! or the job runner (`jobs`). `crate::state::AppState` is still taken by some domain jobs; narrowing
//! those to the handles they use is issue 13's work, so it is not checked here yet.

use std::path::Path;

use crate::helpers::ROOT;

const DOMAIN: &[&str] = &[
    "admin",
    "billing",
    "chain",
    "checkout",
    "providers",
    "officex",
    "notify",
    "domain",
];
const UPWARD: &[&str] = &["crate::api", "crate::cli", "crate::startup", "crate::jobs"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn domain_modules_never_import_the_edges_or_the_job_runner() {
    let mut files = Vec::new();
    for module in DOMAIN {
        rust_files(&Path::new(ROOT).join("src").join(module), &mut files);
    }
    for extra in ["catalog.rs", "db.rs", "config.rs"] {
        files.push(Path::new(ROOT).join("src").join(extra));
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let mut offenders = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if UPWARD.iter().any(|u| line.contains(u)) {
                offenders.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "upward imports:\n{}",
        offenders.join("\n")
    );
}
