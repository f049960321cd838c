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

/// One audit line (a JSON object) of the signing service: what was signed for whom, under
/// which policy decision. One line each, so log shippers can read them as they come.
///
/// The line is formatted first and written with one `write` call: stderr is unbuffered, and
/// `eprintln!` of a JSON value makes a system call per token (dozens a line, on the path of
/// every signature), which a pipe's reader could also see as a line in pieces. A line up to
/// `PIPE_BUF` (4 KiB on Linux; these are about 300 bytes) reaches a pipe whole.
pub fn audit(line: &serde_json::Value) {
    use std::io::Write as _;
    let mut text = line.to_string();
    text.push('\n');
    // As `eprintln!` does, a stderr that cannot be written is not the request's failure.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}
