//! A real browser for the tests of the signing service's browser safety: Debian's Chromium,
//! installed with apt-get on first use, driven by Playwright's driver library
//! (playwright-core from npm, pinned in `tests/browser/package-lock.json`, no dependencies)
//! over the DevTools protocol. A test tool's own browser download (`npx playwright install`)
//! cannot reach its servers from the project's machines, so the browser is the
//! distribution's; and apt-get needs root, which CI and the development machines run as.
//! Elsewhere the install fails with what to run instead, and the test fails with it: a
//! browser test that cannot run does not pass.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::process::{self, project_root};
use crate::workspace;

/// Where Debian's chromium package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The flags every start of the browser takes on this machine's closed network: without the
/// background-networking ones, Chromium's own connections to Google's hosts fail, many at
/// a time, at every start. Playwright adds `--headless` and a fresh, empty
/// `--user-data-dir` itself.
pub const CHROMIUM_FLAGS: [&str; 7] = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The folder holding `package.json`, `package-lock.json` and the scripts that drive the
/// browser.
pub fn package_dir() -> PathBuf {
    project_root().join("tests").join("browser")
}

/// Installs Chromium (apt-get, as root) and playwright-core (`npm ci`) unless they are there,
/// under a lock, so that parallel test binaries install once.
pub fn install() -> Result<()> {
    let _lock = process::install_lock("browser")?;
    install_chromium()?;
    install_driver()
}

fn install_chromium() -> Result<()> {
    if fs::metadata(CHROMIUM).is_ok() {
        return Ok(());
    }
    let manual = "install Debian's chromium package yourself (`sudo apt-get install \
                  chromium`) and run the test again";
    // The owner of /proc/self is the process's effective user.
    let root =
        fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if !root {
        bail!(
            "the browser tests need Chromium at {CHROMIUM}, and the harness installs it with \
             apt-get, which needs root: {manual}"
        );
    }
    let started = Instant::now();
    crate::say(
        "browser",
        "installing Debian's chromium with apt-get (first run only)",
    );
    let apt = |args: &[&str]| {
        workspace::run_visible(
            &format!("apt-get {}", args.join(" ")),
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(std::io::stderr()),
        )
    };
    apt(&["update", "-q"]).with_context(|| format!("installing Chromium; or {manual}"))?;
    apt(&["install", "-y", "-q", "--no-install-recommends", "chromium"])
        .with_context(|| format!("installing Chromium; or {manual}"))?;
    if fs::metadata(CHROMIUM).is_err() {
        bail!("apt-get installed chromium, but there is no {CHROMIUM}: {manual}");
    }
    crate::say(
        "browser",
        format!("installed in {:.0} s", started.elapsed().as_secs_f64()),
    );
    Ok(())
}

fn install_driver() -> Result<()> {
    let dir = package_dir();
    let lock = fs::read(dir.join("package-lock.json"))
        .with_context(|| format!("reading {}", dir.join("package-lock.json").display()))?;
    let lock_hash = process::fingerprint(&lock);
    let stamp = dir.join("node_modules").join(".kms-eth-lock.stamp");
    if fs::read_to_string(&stamp).ok().as_deref() == Some(lock_hash.as_str()) {
        return Ok(());
    }
    crate::say(
        "browser",
        "installing playwright-core from npm into tests/browser/node_modules (first run only)",
    );
    workspace::run_visible(
        "installing playwright-core (`npm ci` in tests/browser/; needs Node.js and npm)",
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .stdout(std::io::stderr())
            .current_dir(&dir),
    )?;
    fs::write(&stamp, lock_hash)?;
    Ok(())
}

/// Runs the script `name` of [`package_dir`] with Node.js and `args`, after [`install`];
/// returns what it printed on stdout as JSON. Its stderr is passed through. The script
/// learns where Chromium is and its flags from `KMS_ETH_CHROMIUM` and
/// `KMS_ETH_CHROMIUM_FLAGS` (space-separated).
pub fn run_script(name: &str, args: &[&str]) -> Result<serde_json::Value> {
    install()?;
    let dir = package_dir();
    let output = Command::new("node")
        .arg(dir.join(name))
        .args(args)
        .current_dir(&dir)
        .env("NODE_PATH", dir.join("node_modules"))
        .env("KMS_ETH_CHROMIUM", CHROMIUM)
        .env("KMS_ETH_CHROMIUM_FLAGS", CHROMIUM_FLAGS.join(" "))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {name} with node"))?;
    if !output.status.success() {
        bail!("{name} failed ({})", output.status);
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "{name} printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
