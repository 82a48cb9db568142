//! Dependencies point one way: the domain modules never import the edges (`api`, `cli`, `startup`),
//! the job wiring (`jobs`) or the application state (`state`): each domain service and job takes the
//! narrow handles it uses (a pool, its chains, its providers, a config section). The ground never
//! imports the domain, and the domain modules import each other without a cycle.

use std::path::Path;

use crate::helpers::ROOT;

/// The domain: business services and their jobs.
const DOMAIN: &[&str] = &[
    "admin",
    "billing",
    "chain",
    "checkout",
    "providers",
    "officex",
    "notify",
    "refunds",
];
/// The ground: types, configuration and infrastructure every layer may use.
const GROUND: &[&str] = &[
    "domain",
    "config",
    "catalog.rs",
    "db.rs",
    "aws.rs",
    "telemetry.rs",
];
const UPWARD: &[&str] = &[
    "crate::api",
    "crate::cli",
    "crate::startup",
    "crate::jobs",
    "crate::state",
    "AppState",
];

/// Every `.rs` file of the given modules (a folder or a file under `src/`).
fn files_of(modules: &[&str]) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for module in modules {
        let path = Path::new(ROOT).join("src").join(module);
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            assert!(
                path.is_file(),
                "{} is gone: update this test",
                path.display()
            );
            files.push(path);
        }
    }
    files
}

/// Lines of `files` that name any of `forbidden`.
fn offenders(files: Vec<std::path::PathBuf>, forbidden: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if forbidden.iter().any(|u| line.contains(u.as_str())) {
                out.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    out
}

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
fn domain_modules_never_import_the_edges_the_jobs_or_the_app_state() {
    let files = files_of(&[DOMAIN, GROUND].concat());
    assert!(files.len() > 40, "found only {} files", files.len());
    let upward: Vec<String> = UPWARD.iter().map(|u| (*u).to_owned()).collect();
    let found = offenders(files, &upward);
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn ground_modules_never_import_the_domain() {
    let domain: Vec<String> = DOMAIN.iter().map(|m| format!("crate::{m}")).collect();
    let found = offenders(files_of(GROUND), &domain);
    assert!(
        found.is_empty(),
        "ground imports the domain:\n{}",
        found.join("\n")
    );
}

#[test]
fn domain_modules_depend_on_each_other_without_a_cycle() {
    use std::collections::BTreeMap;
    let mut uses: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for module in DOMAIN {
        let text: String = files_of(&[module])
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect();
        let deps = DOMAIN
            .iter()
            .copied()
            .filter(|other| other != module && text.contains(&format!("crate::{other}")))
            .collect();
        uses.insert(module, deps);
    }
    // Depth-first search; a module met again on the current path closes a cycle.
    fn visit<'a>(
        m: &'a str,
        uses: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut Vec<&'a str>,
    ) {
        if done.contains(&m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("cycle: {} -> {m}\n{uses:#?}", path[at..].join(" -> "));
        }
        path.push(m);
        for dep in &uses[m] {
            visit(dep, uses, path, done);
        }
        path.pop();
        done.push(m);
    }
    let mut done = Vec::new();
    for module in DOMAIN {
        visit(module, &uses, &mut Vec::new(), &mut done);
    }
}
