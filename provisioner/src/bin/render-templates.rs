//! `render-templates DIR`: writes the account template as kms-eth deploys it, once per
//! removal policy (`account-retain.yaml`, `account-destroy.yaml`) and, with the signing
//! function of `deploy --with-lambda`, once per way of saying what it may sign
//! (`account-retain-function-policy.yaml`, `account-destroy-function-unrestricted.yaml`), and
//! with a multi-Region key (`account-retain-multi-region.yaml`, `deploy --replica-region`), so
//! that `cargo xtask test` lints exactly what is deployed.

use std::path::PathBuf;
use std::process::ExitCode;

use kms_eth_provisioner::{render_with_replicas, FunctionMode, RemovalPolicy};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: render-templates DIR");
        return ExitCode::from(2);
    };
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        // Each removal policy alone, and each with one of the function's two modes: every
        // line of every fragment is linted at least once.
        let variants = [
            (RemovalPolicy::Retain, None, false, ""),
            (RemovalPolicy::Destroy, None, false, ""),
            (
                RemovalPolicy::Retain,
                Some(FunctionMode::Policy),
                false,
                "-function-policy",
            ),
            (
                RemovalPolicy::Destroy,
                Some(FunctionMode::Unrestricted),
                false,
                "-function-unrestricted",
            ),
            (RemovalPolicy::Retain, None, true, "-multi-region"),
        ];
        for (policy, function, multi_region, suffix) in variants {
            let path = dir.join(format!(
                "account-{}{suffix}.yaml",
                policy.as_str().to_ascii_lowercase()
            ));
            std::fs::write(&path, render_with_replicas(policy, function, multi_region))?;
            println!("{}", path.display());
        }
        Ok(())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: writing the templates into {}: {err}", dir.display());
            ExitCode::FAILURE
        }
    }
}
