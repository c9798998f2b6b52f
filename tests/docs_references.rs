//! Every `INV-n`, `HAZ-n` and `NEM-name` cited anywhere in the repository (code, READMEs,
//! scenarios, scripts, the contract) resolves to a heading of `docs/`: a reader who meets an id
//! can look it up inside the repository.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const PREFIXES: [&str; 3] = ["INV-", "HAZ-", "NEM-"];
const SCANNED: [&str; 8] = ["rs", "md", "toml", "sql", "lua", "sh", "json", "run"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The ids defined by `docs/*.md`: the first word of every `## ` heading.
fn defined_ids(root: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for entry in std::fs::read_dir(root.join("docs")).expect("docs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(heading) = line.strip_prefix("## ") {
                    ids.insert(heading.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        }
    }
    ids
}

/// The ids cited in `text`: a prefix, then digits (INV, HAZ) or a lower-case name with hyphens
/// (NEM). A NEM citation is resolved to the longest defined id it starts with, so
/// "NEM-pg-down's" and "NEM-blackhole (replies only)" both resolve.
fn cited_ids(text: &str, defined: &BTreeSet<String>) -> Vec<String> {
    let mut cited = Vec::new();
    for prefix in PREFIXES {
        for (at, _) in text.match_indices(prefix) {
            if at > 0 && text[..at].ends_with(|c: char| c.is_ascii_alphanumeric()) {
                continue;
            }
            let rest = &text[at + prefix.len()..];
            let id = if prefix == "NEM-" {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                let full = format!("{prefix}{}", name.trim_end_matches('-'));
                defined
                    .iter()
                    .filter(|d| d.starts_with("NEM-") && full.starts_with(d.as_str()))
                    .max_by_key(|d| d.len())
                    .cloned()
                    .unwrap_or(full)
            } else {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if digits.is_empty() {
                    continue; // "INV-n", "HAZ-…": a pattern, not a citation
                }
                format!("{prefix}{digits}")
            };
            if id.len() > prefix.len() {
                cited.push(id);
            }
        }
    }
    cited
}

fn scanned_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // This file cites unresolvable ids on purpose, to test the scan.
        let skipped = name == "target" || name == "results" || name == "docs_references.rs";
        if name.starts_with('.') && name != ".ci" || skipped {
            continue;
        }
        if path.is_dir() {
            scanned_files(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SCANNED.contains(&e))
            || name == "run"
        {
            out.push(path);
        }
    }
}

#[test]
fn every_invariant_hazard_and_fault_reference_resolves_to_a_heading_in_docs() {
    let root = repo_root();
    let defined = defined_ids(&root);
    assert!(
        defined.contains("INV-1") && defined.contains("HAZ-1"),
        "{defined:?}"
    );
    let mut files = Vec::new();
    scanned_files(&root, &mut files);
    let mut unresolved = Vec::new();
    let mut cited_count = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for id in cited_ids(&text, &defined) {
            cited_count += 1;
            if !defined.contains(&id) {
                unresolved.push(format!("{}: {id}", file.display()));
            }
        }
    }
    assert!(
        cited_count > 50,
        "only {cited_count} citations found: is the scan broken?"
    );
    assert!(
        unresolved.is_empty(),
        "references with no `## <id>` heading in docs/:\n{}",
        unresolved.join("\n")
    );
}

#[test]
fn the_scan_sees_a_citation_that_resolves_nowhere() {
    let defined: BTreeSet<String> = ["INV-1", "NEM-pg-down", "NEM-pause"]
        .map(str::to_owned)
        .into();
    assert_eq!(
        cited_ids(
            "INV-1, INV-12, NEM-pg-down's, NEM-pauses, XHAZ-3, HAZ-…",
            &defined
        ),
        ["INV-1", "INV-12", "NEM-pg-down", "NEM-pause"]
    );
}
