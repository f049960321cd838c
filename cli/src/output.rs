//! The one place that turns a command's report into output: text for people (`Display`) or
//! JSON for programs (`--json`, `Serialize`), on stdout. The JSON field names are one
//! vocabulary across commands (README, "JSON output"): `address`, `key_id`, `key_arn`,
//! `key_state`, `alias`, `stack_name`, `stack_id`, ...

use std::fmt::Display;
use std::io::Write;

use kms_eth_fleet::Verdict;
use serde::Serialize;

/// What a command returns.
pub trait Report: Serialize + Display {
    /// Answers of the original design's event contract (`--event`) are compact JSON
    /// whatever the flags say: applications parse them.
    fn is_event_answer(&self) -> bool {
        false
    }

    /// What the report says of the work, which main.rs's table turns into the exit code once
    /// the report is printed: clean, except for reports that tell a pipeline something by it
    /// (`fleet plan`: changes pending).
    fn verdict(&self) -> Verdict {
        Verdict::Clean
    }

    /// The report as CSV, when the command was asked for it (`fleet status --csv`).
    fn csv(&self) -> Option<String> {
        None
    }
}

/// Writes `report` to stdout as text, or as JSON with `json`. A closed stdout
/// (`kms-eth ... | head`) is not an error.
pub fn emit<R: Report>(report: &R, json: bool) -> anyhow::Result<()> {
    let text = if let Some(csv) = report.csv() {
        csv
    } else if report.is_event_answer() {
        serde_json::to_string(report)?
    } else if json {
        serde_json::to_string_pretty(report)?
    } else {
        report.to_string()
    };
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{}", text.trim_end()).and_then(|()| stdout.flush()) {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(err.into()),
        _ => Ok(()),
    }
}

/// Text for reports that are a flat list of fields: one `name  value` line per field that
/// has a value, in the order of the JSON.
pub fn field_lines(report: &impl Serialize, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let value = serde_json::to_value(report).map_err(|_| std::fmt::Error)?;
    let Some(fields) = value.as_object() else {
        return write!(f, "{value}");
    };
    let width = fields.keys().map(String::len).max().unwrap_or(0) + 2;
    for (name, value) in fields {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        writeln!(f, "{name:<width$}{text}")?;
    }
    Ok(())
}

/// A JSON answer given as it is (the original design's event answers and error objects).
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct EventAnswer(pub serde_json::Value);

impl Display for EventAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Report for EventAnswer {
    fn is_event_answer(&self) -> bool {
        true
    }
}

/// A command that answers either with its report or, given an `--event`, with the
/// original design's answer.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OrEvent<R> {
    /// The command's own report.
    Report(R),
    /// The event contract's answer.
    Event(EventAnswer),
}

impl<R: Display> Display for OrEvent<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrEvent::Report(report) => report.fmt(f),
            OrEvent::Event(answer) => answer.fmt(f),
        }
    }
}

impl<R: Report> Report for OrEvent<R> {
    fn is_event_answer(&self) -> bool {
        matches!(self, OrEvent::Event(_))
    }
}
