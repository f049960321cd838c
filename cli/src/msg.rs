//! Every message the command line writes to stderr goes through here, so that stdout holds
//! only results (`--json` stays machine-readable) and every message has the same shape:
//! `kms-eth: ...` for progress, `warning: ...`, `error: ...`.

use std::fmt::Display;

/// Progress or context for the user: what is about to happen, what is being waited for.
pub fn note(text: impl Display) {
    eprintln!("kms-eth: {text}");
}

/// Something the user should know that does not stop the command.
pub fn warn(text: impl Display) {
    eprintln!("warning: {text}");
}

/// The error that ended the command, with its causes.
pub fn error(err: &anyhow::Error) {
    eprintln!("error: {err:#}");
}

/// A line of detail under a note (a change set's rows, a stack event), indented.
pub fn detail(text: impl Display) {
    eprintln!("    {text}");
}

/// A question before a confirmation prompt, without a line break.
pub fn ask(text: impl Display) {
    eprint!("{text} [y/N] ");
}
