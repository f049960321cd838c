//! Talking to the person at the terminal: confirmations before anything irreversible, and
//! provisioning progress as it happens.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use kms_eth_core::UsageError;
use kms_eth_provisioner::Progress;

use crate::msg;

/// Asks `question` on the terminal. `--yes` answers it; without a terminal the question
/// cannot be asked, and the answer is never assumed. Reading the terminal blocks, so it
/// runs off the async runtime.
pub async fn confirm(question: String, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    tokio::task::spawn_blocking(move || ask(&question)).await?
}

fn ask(question: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(format!(
            "{question} This needs confirmation, and there is no terminal to ask on; pass --yes to confirm"
        ))
        .into());
    }
    msg::ask(question);
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed; nothing was changed")
    }
}

/// Progress of one of several stacks worked on at once (`fleet`): each line names its stack;
/// change sets are left out, their events say the same.
pub fn show_progress_of(label: &str, progress: Progress) {
    match progress {
        Progress::Note(note) => msg::note(format!("{label}: {note}")),
        Progress::Warning(warning) => msg::warn(format!("{label}: {warning}")),
        Progress::ChangeSet(_) => {}
        Progress::Event(event) => msg::detail(format!(
            "{label}: {:<16} {}{}",
            event.logical_id,
            event.status,
            event.reason.map(|r| format!("  {r}")).unwrap_or_default()
        )),
    }
}

/// Shows provisioning progress on stderr, so stdout stays clean for `--json`.
pub fn show_progress(progress: Progress) {
    match progress {
        Progress::Note(note) => msg::note(note),
        Progress::Warning(warning) => msg::warn(warning),
        Progress::ChangeSet(changes) => {
            msg::note("change set:");
            for change in changes {
                let replacement = match change.replacement.as_deref() {
                    Some("True") => " (REPLACES the resource)",
                    Some("Conditional") => " (may replace the resource)",
                    _ => "",
                };
                msg::detail(format!(
                    "{:<8} {:<24} {}{replacement}",
                    change.action, change.resource_type, change.logical_id
                ));
            }
        }
        Progress::Event(event) => msg::detail(format!(
            "{}  {:<16} {:<22} {}{}",
            event.timestamp,
            event.logical_id,
            event.resource_type,
            event.status,
            event.reason.map(|r| format!("  {r}")).unwrap_or_default()
        )),
    }
}
