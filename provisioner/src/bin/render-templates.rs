//! `render-templates DIR`: writes the account template as kms-eth deploys it, once per
//! removal policy (`account-retain.yaml`, `account-destroy.yaml`), so that `cargo xtask test`
//! lints exactly what is deployed.

use std::path::PathBuf;
use std::process::ExitCode;

use kms_eth_provisioner::{render, RemovalPolicy};

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: render-templates DIR");
        return ExitCode::from(2);
    };
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        for policy in [RemovalPolicy::Retain, RemovalPolicy::Destroy] {
            let path = dir.join(format!(
                "account-{}.yaml",
                policy.as_str().to_ascii_lowercase()
            ));
            std::fs::write(&path, render(policy))?;
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
