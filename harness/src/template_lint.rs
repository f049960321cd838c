//! The static checks of the CloudFormation templates `cargo xtask test` runs: cfn-lint (valid
//! CloudFormation, with AWS's resource schemas) and cfripper (a static security checker),
//! installed pinned from `templates/lint/requirements.lock` into `template-lint-venv` under
//! the tools folder on first use, like LocalStack's venv. cfripper's suppressions are
//! `templates/lint/cfripper_filters.py`, each with its reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::venv::{self, Pinned};

/// The hash-pinned cfn-lint and cfripper.
pub const LOCK: &str = include_str!("../../templates/lint/requirements.lock");
/// cfripper's filters: every finding accepted, and why.
const CFRIPPER_FILTERS: &str = include_str!("../../templates/lint/cfripper_filters.py");

const PINNED: Pinned<'static> = Pinned {
    tool: "template-lint",
    what: "cfn-lint 1.58.0 and cfripper 1.22.1",
    folder: "template-lint-venv",
    lock: LOCK,
};

/// Runs cfn-lint and cfripper on `templates`; an error lists every finding.
pub fn check(templates: &[PathBuf]) -> Result<()> {
    let venv = venv::ensure(&PINNED, crate::localstack::find_python)?;
    let bin = venv.join("bin");
    // cfripper reads every .py file of the folder it is given, so the filters get one of
    // their own, written from the copy built in (the checks match the binary's own files).
    let filters = venv.join("cfripper-filters");
    std::fs::create_dir_all(&filters)?;
    std::fs::write(filters.join("kms_eth.py"), CFRIPPER_FILTERS)?;
    run(
        "cfn-lint",
        Command::new(bin.join("cfn-lint")).args(templates),
    )?;
    run(
        "cfripper",
        Command::new(bin.join("cfripper"))
            .args(templates)
            .arg("--rules-filters-folder")
            .arg(&filters)
            .args(["--format", "txt"]),
    )?;
    crate::say(
        "test",
        format!(
            "cfn-lint and cfripper found nothing in {} (cfripper's accepted findings, with \
             reasons: templates/lint/cfripper_filters.py)",
            names(templates)
        ),
    );
    Ok(())
}

/// Runs one linter; a non-zero exit fails with what it printed.
fn run(name: &str, command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {name}"))?;
    if !output.status.success() {
        bail!(
            "{name} found problems in the rendered templates ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .filter_map(|p| Path::new(p).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(", ")
}
