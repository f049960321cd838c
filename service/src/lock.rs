//! Advisory locks that one process holds while it works on something two must not work on
//! at once (a spend file, a fleet's stacks): an owner-only `.lock` file beside the thing,
//! locked with `flock`, holding the holder's pid for the next one's message. The lock goes
//! with the process, however it ends. The service locks its spend file with it; public,
//! since the CLI's `fleet` locks a manifest's stacks with it too.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};

/// Locks `path` (made owner-only, in a folder made owner-only if missing): `Ok(file)` to hold
/// while working, or `Err(pid)` of the process that holds it (`None` if it did not say).
pub fn hold(path: &Path) -> Result<std::result::Result<File, Option<u32>>> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Ok(Err(holder.trim().parse().ok()));
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("locking {}", path.display()))
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(Ok(file))
}

/// A holder's pid as a message shows it.
pub fn shown(pid: Option<u32>) -> String {
    pid.map_or_else(|| "unknown".to_owned(), |p| p.to_string())
}
