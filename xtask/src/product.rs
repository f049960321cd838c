//! `cargo xtask deploy|destroy|status|...`: every command that is not one of xtask's own
//! tasks is the product's, run by the `kms-eth` binary. It is built first (cargo's progress
//! shows), then this process becomes it, so its exit code, terminal prompts and signals are
//! the binary's own. There is no list of the product's commands here to go stale: the
//! binary's own command line is the list, and it refuses a typo (exit 2) with its
//! suggestions.
//!
//! `deploy --with-lambda --target aws` without `--lambda-zip` gets the function's zip built
//! here (release, by cargo-lambda) and passed as `--lambda-zip`: the binary itself never needs
//! the clone. Against LocalStack nothing is built: the binary refuses there unless a Docker
//! engine runs, and building for minutes to be refused would waste them.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::{Context, Result};
use kms_eth_harness::cargo_lambda::Arch;
use kms_eth_harness::workspace;

pub fn run(args: &[OsString]) -> Result<()> {
    let binary = workspace::build_binary("kms-eth", "kms-eth")?;
    let mut args = args.to_vec();
    if let Some(arch) = lambda_zip_to_build(&args) {
        let zip = kms_eth_harness::cargo_lambda::build(arch)?;
        args.push("--lambda-zip".into());
        args.push(zip.path.into_os_string());
    }
    let err = Command::new(&binary).args(&args).exec();
    Err(err).with_context(|| format!("running {}", binary.display()))
}

/// The architecture of the zip to build for `deploy --with-lambda --target aws` without
/// `--lambda-zip`; `None` when nothing is to be built.
fn lambda_zip_to_build(args: &[OsString]) -> Option<Arch> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let has = |flag: &str| {
        args.iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    };
    let value = |flag: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix(&format!("{flag}="))
                .map(str::to_owned)
                .or_else(|| (a == flag).then(|| args.get(i + 1).cloned()).flatten())
        })
    };
    let wanted = args.first().is_some_and(|c| c == "deploy")
        && has("--with-lambda")
        && !has("--lambda-zip")
        && value("--target").as_deref() == Some("aws");
    wanted.then(|| match value("--lambda-arch").as_deref() {
        Some("arm64") => Arch::Arm64,
        _ => Arch::X86_64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zip_for(args: &[&str]) -> Option<Arch> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        lambda_zip_to_build(&args)
    }

    #[test]
    fn the_zip_is_built_only_for_a_lambda_deploy_to_aws_without_one() {
        let aws = ["deploy", "--with-lambda", "--target", "aws"];
        assert_eq!(zip_for(&aws), Some(Arch::X86_64));
        assert_eq!(
            zip_for(&[&aws[..], &["--lambda-arch=arm64"]].concat()),
            Some(Arch::Arm64)
        );
        assert_eq!(zip_for(&[&aws[..], &["--lambda-zip", "z"]].concat()), None);
        assert_eq!(zip_for(&["deploy", "--with-lambda"]), None);
        assert_eq!(zip_for(&["deploy", "--target", "aws"]), None);
    }
}
