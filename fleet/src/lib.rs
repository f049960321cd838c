//! kms-eth fleets: many Ethereum accounts across AWS accounts and regions from one manifest.
//! `manifest` reads and checks the manifest; [`Fleet::connect`] reaches each target (its role
//! assumed, or its profile, and its account id checked) from the SDK configuration the caller
//! hands in ([`Base`]); `inspect` reads one stack and what drifted around it (`drift`);
//! `plan`, `apply`, `status` and `destroy` build on that and return typed reports: outcomes
//! are enums serialised in the JSON vocabulary of `kms-eth fleet --json`, the text is each
//! report's `Display`, and each report's [`Verdict`] is what the command line turns into its
//! exit code.
//!
//! Prints nothing and asks nothing: notes, warnings and each stack's provisioning progress go
//! to the caller's callback ([`Event`]); confirmations, the manifest lock and the funds check
//! before a key's deletion are the caller's (`destroy` hands back what it would delete for
//! the caller to check and confirm before anything is deleted).

pub mod apply;
pub mod destroy;
pub mod drift;
pub mod inspect;
pub mod manifest;
pub mod plan;
mod roles;
pub mod status;
mod table;
mod targets;

pub use apply::{apply, ApplyOutcome, ApplyReport, ApplyRow};
pub use destroy::{
    destroy, prepare_destroy, DestroyOutcome, DestroyPlan, DestroyReport, DestroyRow, ToDelete,
};
pub use manifest::{Manifest, ManifestError};
pub use plan::{plan, PlanAction, PlanReport, PlanRow, Unmanaged, UnmanagedStack};
pub use status::{status, StatusReport, StatusRow};
pub use targets::{Base, Fleet, Inspected, Profiles, Reached};

use kms_eth_provisioner::Progress;

/// What a fleet report says of the fleet. The command line decides its exit code from it, in
/// one table with its errors' codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is left to do or to look at (and every report of a command that is not a
    /// fleet's).
    Clean,
    /// `plan`: apply would create or update stacks.
    ChangesPending,
    /// Something needs a person and nothing failed: drift, a refused stack (`plan`), drift
    /// left alone (`apply`), a drifted row of the address book (`status`).
    NeedsAttention,
    /// Something failed: a target or stack that could not be read (`plan`, `status`), a
    /// stack that failed or was refused (`apply`), a stack that was not deleted (`destroy`).
    Failed,
}

/// What the fleet says as it works. The caller shows it (the command line on stderr); the
/// stacks worked on at once share the callback, so each event names its stack.
#[derive(Debug)]
pub enum Event<'a> {
    /// Provisioning progress of one stack; `label` is `target/region/account`.
    Stack {
        /// The stack, as `target/region/account`.
        label: &'a str,
        /// What happened.
        progress: Progress,
    },
    /// A step done.
    Note(String),
    /// Something that does not stop the command but should be known.
    Warning(String),
}

/// The callback that takes the fleet's [`Event`]s.
pub type OnEvent<'a> = &'a (dyn Fn(Event<'_>) + Sync);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// The JSON vocabulary of `kms-eth fleet` (tests/tests/fleet.rs and cli_contract.rs read
    /// it): each enum serialises to exactly the word its table shows.
    #[test]
    fn actions_and_outcomes_are_spelt_in_the_json_as_in_the_tables() {
        fn check<T: serde::Serialize + Copy>(all: &[(T, &str)], as_str: fn(T) -> &'static str) {
            for &(value, spelt) in all {
                assert_eq!(as_str(value), spelt);
                assert_eq!(serde_json::to_value(value).unwrap(), spelt);
            }
        }
        check(
            &[
                (PlanAction::Create, "create"),
                (PlanAction::Update, "update"),
                (PlanAction::NoChange, "no-change"),
                (PlanAction::Busy, "busy"),
                (PlanAction::Refused, "refused"),
                (PlanAction::Drift, "drift"),
                (PlanAction::Error, "error"),
            ],
            PlanAction::as_str,
        );
        check(
            &[
                (ApplyOutcome::Created, "created"),
                (ApplyOutcome::Updated, "updated"),
                (ApplyOutcome::Unchanged, "unchanged"),
                (ApplyOutcome::Drift, "drift"),
                (ApplyOutcome::Refused, "refused"),
                (ApplyOutcome::Failed, "failed"),
            ],
            ApplyOutcome::as_str,
        );
        check(
            &[
                (DestroyOutcome::Deleted, "deleted"),
                (DestroyOutcome::Absent, "absent"),
                (DestroyOutcome::Failed, "failed"),
            ],
            DestroyOutcome::as_str,
        );
    }
}
