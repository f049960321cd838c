//! The service's files (a leaf): written whole through a temporary file and a rename,
//! readable by their owner only; and the clock their records use.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Writes `bytes` to `path` through a temporary file and a rename (never half a file),
/// readable by its owner only; `sync`: on disk before the rename (the ledger, which must
/// survive a power cut; the tracker's files are written too often for that).
pub fn write_private(path: &std::path::Path, bytes: &[u8], sync: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    std::fs::rename(&temporary, path)?;
    Ok(())
}
