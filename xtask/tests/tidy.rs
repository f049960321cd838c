//! Tidy tests: ARCHITECTURE.md's code map stays true of the tree (as rust-analyzer's tidy
//! tests keep its docs true). A source file that the map leaves out, a file it names that
//! does not exist, or a file described twice fails here, with the fix in the message.

// A test's helpers may stop it with a message: a missing ARCHITECTURE.md is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One `### ...` section of the code map: the folders its heading names, and its text.
#[derive(Debug)]
struct Section {
    heading: String,
    folders: Vec<String>,
    body: String,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the project's root folder")
        .to_path_buf()
}

/// The code map: the `### ` sections between `## Code map` and the next `## ` heading.
fn code_map(text: &str) -> Vec<Section> {
    let start = text
        .find("\n## Code map")
        .expect("ARCHITECTURE.md has a `## Code map` section");
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    let mut sections = Vec::new();
    for chunk in rest[..end].split("\n### ").skip(1) {
        let (heading, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let folders = backticked(heading)
            .into_iter()
            .filter(|t| t.ends_with('/'))
            .collect();
        sections.push(Section {
            heading: heading.to_owned(),
            folders,
            body: body.to_owned(),
        });
    }
    sections
}

/// Every `backticked` token of `text`.
fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The project's Rust source files, relative to the root, outside build output, state
/// folders and installed packages.
fn source_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "target" || name == "node_modules" {
                continue;
            }
            if path.is_dir() {
                walk(root, &path, out);
            } else if name.ends_with(".rs") {
                let relative = path.strip_prefix(root).expect("walked from the root");
                out.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// The section whose heading names the longest folder that holds `file`.
fn section_of<'a>(sections: &'a [Section], file: &str) -> Option<(&'a Section, &'a str)> {
    sections
        .iter()
        .flat_map(|s| s.folders.iter().map(move |f| (s, f.as_str())))
        .filter(|(_, folder)| file.starts_with(folder))
        .max_by_key(|(_, folder)| folder.len())
}

/// Whether `token` names `file` (a path relative to the root): the file's name, or a
/// trailing part of its path that starts at a folder boundary.
fn names(token: &str, file: &str) -> bool {
    token.ends_with(".rs") && (file == token || file.ends_with(&format!("/{token}")))
}

#[test]
fn every_source_file_is_in_the_code_map() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let sections = code_map(&text);
    let mut missing = Vec::new();
    for file in source_files(&root) {
        let covered = section_of(&sections, &file).is_some_and(|(section, _)| {
            backticked(&section.body)
                .iter()
                .any(|token| names(token, &file))
        });
        if !covered {
            missing.push(file);
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map leaves out these source files; describe each in the \
         section of its crate (### `folder/`), by name, in backticks:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn every_file_the_code_map_names_exists() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let sections = code_map(&text);
    let files = source_files(&root);
    let mut wrong = Vec::new();
    for section in &sections {
        assert!(
            !section.folders.is_empty(),
            "the code map's section `### {}` names no folder in backticks (`crate/`)",
            section.heading
        );
        for folder in &section.folders {
            if !root.join(folder).is_dir() {
                wrong.push(format!("{folder} (heading `### {}`)", section.heading));
            }
        }
        let own: Vec<&String> = files
            .iter()
            .filter(|f| section.folders.iter().any(|folder| f.starts_with(folder)))
            .collect();
        // A file is named relative to its section's folders, or from the root when it
        // belongs to another section (`tests/tests/cli_contract.rs` in `cli/`'s).
        for token in backticked(&section.body) {
            if token.ends_with(".rs")
                && !token.contains(char::is_whitespace)
                && !own.iter().any(|file| names(&token, file))
                && !files.contains(&token)
            {
                wrong.push(format!("{token} (in `### {}`)", section.heading));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md's code map names files or folders that do not exist (moved or \
         renamed? update the map):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn no_file_is_described_twice() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut described: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut twice = Vec::new();
    for section in code_map(&text) {
        let seen = described.entry(section.heading.clone()).or_default();
        // A description is a list item that starts with the file's name.
        for line in section.body.lines() {
            let Some(item) = line.strip_prefix("- `") else {
                continue;
            };
            let Some((name, _)) = item.split_once('`') else {
                continue;
            };
            if name.ends_with(".rs") && !seen.insert(name.to_owned()) {
                twice.push(format!("{name} (in `### {}`)", section.heading));
            }
        }
    }
    assert!(
        twice.is_empty(),
        "ARCHITECTURE.md's code map describes these files twice; keep one entry:\n  {}",
        twice.join("\n  ")
    );
}

#[test]
fn the_tidy_rules_catch_what_they_are_for() {
    // The rules above on a small map, so that a rule that stopped matching anything would
    // be seen here rather than pass silently.
    let map = "# A\n\n## Code map\n\n### `signer/`\n\n- `kms.rs`: one.\n- `kms.rs`: again.\n\
               \n### `bench/`, `signer/benches/`\n\n`local_overhead.rs`\n\n## Invariants\n";
    let sections = code_map(map);
    assert_eq!(sections.len(), 2);
    assert_eq!(sections[1].folders, ["bench/", "signer/benches/"]);
    let (section, folder) = section_of(&sections, "signer/benches/local_overhead.rs").unwrap();
    assert_eq!(folder, "signer/benches/");
    assert!(backticked(&section.body)
        .iter()
        .any(|t| names(t, "signer/benches/local_overhead.rs")));
    assert!(names("kms.rs", "signer/src/kms.rs"));
    assert!(names("src/kms.rs", "signer/src/kms.rs"));
    assert!(!names("ms.rs", "signer/src/kms.rs"));
    assert!(!names("kms.rs", "signer/src/kms/mod.rs"));
}

/// The code map's dependency block: `folder/ ──► dep, dep` per crate, by package name
/// without its `kms-eth-` prefix (`kms-eth` for the CLI's package).
fn dependency_block(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let map = &text[text.find("\n## Code map").expect("a code map")..];
    let block = map
        .split("```")
        .nth(1)
        .expect("the code map starts with a fenced dependency block");
    block
        .lines()
        .filter_map(|line| line.split_once("──►"))
        .map(|(folder, deps)| {
            let deps = deps
                .split(',')
                .map(str::trim)
                .filter(|d| !d.is_empty() && *d != "(none)")
                .map(str::to_owned)
                .collect();
            (folder.trim().to_owned(), deps)
        })
        .collect()
}

/// The kms-eth crates in a Cargo.toml's `[dependencies]` table, as the block names them.
fn kms_eth_dependencies(manifest: &str) -> BTreeSet<String> {
    let Some(start) = manifest.find("\n[dependencies]\n") else {
        return BTreeSet::new();
    };
    let table = &manifest[start + 16..];
    let table = table.find("\n[").map_or(table, |end| &table[..end]);
    table
        .lines()
        .filter_map(|line| line.split(['.', ' ', '=']).next())
        .filter(|name| name.starts_with("kms-eth"))
        .map(|name| name.strip_prefix("kms-eth-").unwrap_or(name).to_owned())
        .collect()
}

#[test]
fn the_code_maps_dependencies_are_the_manifests() {
    let root = root();
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let block = dependency_block(&text);
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members = workspace
        .lines()
        .find_map(|line| line.strip_prefix("members = ["))
        .expect("the workspace's members on one line");
    let members: BTreeSet<String> = members
        .trim_end_matches(']')
        .split(',')
        .map(|m| format!("{}/", m.trim().trim_matches('"')))
        .collect();
    let listed: BTreeSet<String> = block.keys().cloned().collect();
    assert_eq!(
        listed, members,
        "the code map's dependency block must have one line per workspace member"
    );
    let mut wrong = Vec::new();
    for (folder, deps) in &block {
        let manifest = std::fs::read_to_string(root.join(folder).join("Cargo.toml"))
            .unwrap_or_else(|err| panic!("{folder}Cargo.toml: {err}"));
        let actual = kms_eth_dependencies(&manifest);
        if &actual != deps {
            wrong.push(format!(
                "{folder} ──► {}",
                Vec::from_iter(actual).join(", ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md's dependency block differs from the manifests; their lines are:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn the_dependency_rule_reads_manifests_as_cargo_does() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\nanyhow.workspace = true\n\
                    kms-eth-core.workspace = true\nkms-eth = { workspace = true }\n\
                    kms-eth-signer = { workspace = true, features = [\"kms\"] }\n\n\
                    [dev-dependencies]\nkms-eth-harness.workspace = true\n";
    assert_eq!(
        Vec::from_iter(kms_eth_dependencies(manifest)),
        ["core", "kms-eth", "signer"]
    );
    let block =
        dependency_block("\n## Code map\n\n```\ncli/ ──► core, signer\nsigner/ ──► (none)\n```\n");
    assert_eq!(block["signer/"].len(), 0);
    assert_eq!(Vec::from_iter(block["cli/"].clone()), ["core", "signer"]);
}
