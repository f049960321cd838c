//! Ethereum clients that the end-to-end tests drive against the signing service, installed
//! from their registries at pinned versions on first use: web3.py (PyPI, hash-pinned in
//! `tests/clients/web3.lock`). cast and ethers come with the chain tools (`chain/`, npm).

use std::path::PathBuf;

use anyhow::Result;

use crate::venv::{self, Pinned};

const WEB3: Pinned<'static> = Pinned {
    tool: "web3",
    what: "web3.py 7.14.0",
    folder: "web3-venv",
    lock: include_str!("../../tests/clients/web3.lock"),
};

/// The Python of a virtual environment with web3.py, installed on first use.
pub fn web3_python() -> Result<PathBuf> {
    Ok(venv::ensure(&WEB3, crate::localstack::find_python)?
        .join("bin")
        .join("python"))
}
