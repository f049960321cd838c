//! The check that no secret reached a file: after a test run, `cargo xtask test` searches
//! the run's output and the harness's logs and state folders for the private keys the tests
//! know and for the canary credentials it gave them. Any hit fails the run.

use std::path::{Path, PathBuf};

/// One secret found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// What was found there (the secret's name, never the secret).
    pub secret: String,
}

/// What a scan looked at, for the report.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
}

/// A secret to look for: a name to report and the text itself.
#[derive(Debug, Clone)]
pub struct Secret {
    /// How the report names it.
    pub name: String,
    /// The text; hex keys are matched without regard to case.
    pub text: String,
}

/// Searches every file under `roots` (folders are walked; symbolic links are not followed,
/// and `skip` folder names such as a Python venv are left out) for every secret. Secrets
/// are matched case-insensitively, so a key printed in upper-case hex is found too.
pub fn scan(roots: &[PathBuf], skip: &[&str], secrets: &[Secret]) -> (Vec<Finding>, Scanned) {
    let needles: Vec<(String, Vec<u8>)> = secrets
        .iter()
        .filter(|s| !s.text.is_empty())
        .map(|s| (s.name.clone(), s.text.to_ascii_lowercase().into_bytes()))
        .collect();
    let mut findings = Vec::new();
    let mut scanned = Scanned::default();
    let mut pending: Vec<PathBuf> = roots.to_vec();
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            let skipped = path
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| skip.contains(&name));
            if !skipped {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    pending.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
                }
            }
        } else if metadata.is_file() {
            let Ok(mut content) = std::fs::read(&path) else {
                continue;
            };
            scanned.files += 1;
            scanned.bytes += content.len() as u64;
            content.make_ascii_lowercase();
            for (name, needle) in &needles {
                if contains(&content, needle) {
                    findings.push(Finding {
                        path: path.clone(),
                        secret: name.clone(),
                    });
                }
            }
        }
    }
    (findings, scanned)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// The secrets `cargo xtask test` looks for: every private key that appears in the test
/// code (the signer's known-answer and cross-check keys, the benchmark's key, and the
/// well-known keys anvil would create, which the harness tells it not to) and the canary
/// credentials.
pub fn test_secrets() -> Vec<Secret> {
    let mut secrets: Vec<Secret> = crate::test_env::LOCAL_TEST_KEYS
        .iter()
        .map(|(name, hex)| Secret {
            name: format!("private key {name}"),
            text: (*hex).to_owned(),
        })
        .collect();
    secrets.push(Secret {
        name: "the canary AWS secret access key".into(),
        text: crate::test_env::CANARY_SECRET_ACCESS_KEY.into(),
    });
    secrets.push(Secret {
        name: "the canary AWS session token".into(),
        text: crate::test_env::CANARY_SESSION_TOKEN.into(),
    });
    secrets
}

/// Whether `path` exists; scanning a folder that a run never made is not an error.
pub fn existing(paths: impl IntoIterator<Item = PathBuf>) -> Vec<PathBuf> {
    paths
        .into_iter()
        .filter(|p| Path::new(p).exists())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_secret_in_a_nested_file_is_found_in_any_case_and_skipped_folders_are_not_read() {
        let root = std::env::temp_dir().join(format!("kms-eth-leak-scan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("logs/deep")).unwrap();
        std::fs::create_dir_all(root.join("venv")).unwrap();
        std::fs::write(root.join("logs/deep/run.log"), "key 0xABCDEF0123 here").unwrap();
        std::fs::write(root.join("venv/lib.py"), "abcdef0123").unwrap();
        std::fs::write(root.join("clean.log"), "nothing to see").unwrap();
        let secrets = [Secret {
            name: "k".into(),
            text: "abcdef0123".into(),
        }];
        let (findings, scanned) = scan(std::slice::from_ref(&root), &["venv"], &secrets);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(scanned.files, 2);
        assert_eq!(
            findings,
            [Finding {
                path: root.join("logs/deep/run.log"),
                secret: "k".into()
            }]
        );
    }

    /// The private keys the project's code builds from a repeated byte (`[0x46; 32]`), the
    /// form every fixed test key takes, with where each was found.
    fn fixed_keys_in_sources() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let constructors = ["from_private_key(&[", "SigningKey::from_slice(&["];
        let mut found = Vec::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap().map(Result::unwrap) {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    // Build output, installed tools and other people's code.
                    if !name.starts_with('.') && !["target", "node_modules"].contains(&&*name) {
                        folders.push(path);
                    }
                    continue;
                }
                if !name.ends_with(".rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (line_no, line) in text.lines().enumerate() {
                    for constructor in constructors {
                        let Some(at) = line.find(constructor) else {
                            continue;
                        };
                        let rest = &line[at + constructor.len()..];
                        let Some((byte, after)) = rest.split_once("; ") else {
                            continue;
                        };
                        if !after.starts_with("32]") {
                            continue;
                        }
                        let value = match byte.strip_prefix("0x") {
                            Some(hex) => u8::from_str_radix(hex, 16),
                            None => byte.parse::<u8>(),
                        }
                        .unwrap_or_else(|err| {
                            panic!("{}:{}: {byte}: {err}", path.display(), line_no + 1)
                        });
                        found.push((
                            format!("{value:02x}").repeat(32),
                            format!("{}:{}", path.display(), line_no + 1),
                        ));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_fixed_private_key_in_the_code_and_both_canaries_are_scanned_for() {
        let secrets: Vec<String> = test_secrets().into_iter().map(|s| s.text).collect();
        let keys = fixed_keys_in_sources();
        // The search itself must see the keys it is known to find, or it proves nothing.
        assert!(
            keys.iter().any(|(hex, _)| hex == &"46".repeat(32)),
            "the known-answer test's key was not found in the sources: {keys:?}"
        );
        for (hex, place) in &keys {
            assert!(
                secrets.contains(hex),
                "the private key at {place} is not in test_env::LOCAL_TEST_KEYS, so a leak of \
                 it would go unnoticed"
            );
        }
        assert!(secrets
            .iter()
            .any(|s| s == crate::test_env::CANARY_SECRET_ACCESS_KEY));
        assert!(secrets
            .iter()
            .any(|s| s == crate::test_env::CANARY_SESSION_TOKEN));
    }
}
