//! What the figures were measured on: CPUs, memory, compiler, LocalStack and build profile,
//! recorded with every report because the figures mean little without them (the client and
//! LocalStack share the same cores).

use std::process::Command;

use serde::{Deserialize, Serialize};

/// The machine and build of one run. A part that cannot be found out is left empty rather
/// than failing the run: the figures are still worth having.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cpus: Option<usize>,
    /// The CPU's model name, from `/proc/cpuinfo`.
    pub cpu_model: Option<String>,
    /// Total memory in GiB, one decimal, from `/proc/meminfo`.
    pub memory_gib: Option<f64>,
    /// `rustc --version`.
    pub rustc: Option<String>,
    /// The LocalStack version the harness installs.
    pub localstack: String,
    /// The cargo profile the benchmarks were built with.
    pub profile: String,
}

/// Describes this machine, for benchmarks built with `profile`.
pub fn describe(profile: &str) -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    Machine {
        cpus: std::thread::available_parallelism().map(|n| n.get()).ok(),
        cpu_model: cpu_model(&read("/proc/cpuinfo")),
        memory_gib: memory_gib(&read("/proc/meminfo")),
        rustc,
        localstack: kms_eth_harness::localstack::VERSION.to_owned(),
        profile: profile.to_owned(),
    }
}

/// The first `model name` of a `/proc/cpuinfo`.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
}

/// `MemTotal` of a `/proc/meminfo` (in KiB there), in GiB rounded to one decimal.
fn memory_gib(meminfo: &str) -> Option<f64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kib| (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cpu_model_and_the_memory() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        let meminfo = "MemTotal:       24542116 kB\nMemFree:        1000 kB\n";
        assert_eq!(memory_gib(meminfo), Some(23.4));
    }

    #[test]
    fn unknown_parts_are_left_empty() {
        assert_eq!(cpu_model(""), None);
        assert_eq!(memory_gib("MemTotal: lots\n"), None);
    }
}
