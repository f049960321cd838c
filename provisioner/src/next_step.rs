//! What `deploy` does about a stack in a given status, as a pure function of that status, so
//! that every CloudFormation status has a tested answer.

use aws_sdk_cloudformation::types::StackStatus;

use crate::stack::DeployOptions;

/// What `deploy` does next, given the stack's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Create the stack through a CREATE change set: there is none, or only an empty one
    /// (REVIEW_IN_PROGRESS, left by a CREATE change set that was never executed), or one whose
    /// deletion `deploy` has just waited for (DELETE_COMPLETE, found by its id).
    Create,
    /// Compare the settled stack with the spec and, if they differ, update it through an
    /// UPDATE change set.
    UpdateViaChangeSet,
    /// Another operation is still running (often an interrupted deploy that CloudFormation
    /// finishes on its own): wait for it, then decide again from where it ended.
    WaitForOperation,
    /// A failed first create left the stack in ROLLBACK_COMPLETE, where it can only be
    /// deleted, and the user confirmed (`recreate_failed`): delete it, then create it.
    RecreateAfterRollbackComplete,
    /// As above without the user's confirmation: refuse
    /// ([`ProvisionError::RollbackComplete`](crate::ProvisionError::RollbackComplete)).
    RefuseRollbackComplete,
    /// Still busy after `deploy` already waited once: refuse
    /// ([`ProvisionError::StackBusy`](crate::ProvisionError::StackBusy)) rather than wait
    /// without end.
    RefuseBusy,
    /// A failed state (`*_FAILED`, or a status this code does not know): refuse
    /// ([`ProvisionError::StackBroken`](crate::ProvisionError::StackBroken)), since deploying
    /// on top would hide the failure (and report "unchanged").
    RefuseBroken,
}

/// What `deploy` does about a stack in `status` (`None`: there is no stack).
/// `already_waited`: `deploy` has already waited for one operation to finish.
pub fn next_step(
    status: Option<&StackStatus>,
    already_waited: bool,
    options: &DeployOptions,
) -> NextStep {
    match status {
        None | Some(StackStatus::ReviewInProgress | StackStatus::DeleteComplete) => {
            NextStep::Create
        }
        Some(StackStatus::RollbackComplete) if options.recreate_failed => {
            NextStep::RecreateAfterRollbackComplete
        }
        Some(StackStatus::RollbackComplete) => NextStep::RefuseRollbackComplete,
        // By suffix rather than variant, so that a status newer than this SDK still gets the
        // answer of its kind.
        Some(status) if status.as_str().ends_with("_IN_PROGRESS") && !already_waited => {
            NextStep::WaitForOperation
        }
        Some(status) if status.as_str().ends_with("_IN_PROGRESS") => NextStep::RefuseBusy,
        // CREATE_COMPLETE, UPDATE_COMPLETE, UPDATE_ROLLBACK_COMPLETE, IMPORT_COMPLETE, ...
        Some(status) if status.as_str().ends_with("_COMPLETE") => NextStep::UpdateViaChangeSet,
        Some(_) => NextStep::RefuseBroken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use NextStep::*;

    /// Every status: what a first look decides, what it decides after having waited once,
    /// and what a first look decides when recreating a failed stack is confirmed.
    const TABLE: [(Option<&str>, NextStep, NextStep, NextStep); 24] = [
        (None, Create, Create, Create),
        (
            Some("CREATE_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("CREATE_FAILED"),
            RefuseBroken,
            RefuseBroken,
            RefuseBroken,
        ),
        (
            Some("CREATE_COMPLETE"),
            UpdateViaChangeSet,
            UpdateViaChangeSet,
            UpdateViaChangeSet,
        ),
        (
            Some("ROLLBACK_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("ROLLBACK_FAILED"),
            RefuseBroken,
            RefuseBroken,
            RefuseBroken,
        ),
        (
            Some("ROLLBACK_COMPLETE"),
            RefuseRollbackComplete,
            RefuseRollbackComplete,
            RecreateAfterRollbackComplete,
        ),
        (
            Some("DELETE_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("DELETE_FAILED"),
            RefuseBroken,
            RefuseBroken,
            RefuseBroken,
        ),
        (Some("DELETE_COMPLETE"), Create, Create, Create),
        (
            Some("UPDATE_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("UPDATE_COMPLETE"),
            UpdateViaChangeSet,
            UpdateViaChangeSet,
            UpdateViaChangeSet,
        ),
        (
            Some("UPDATE_FAILED"),
            RefuseBroken,
            RefuseBroken,
            RefuseBroken,
        ),
        (
            Some("UPDATE_ROLLBACK_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("UPDATE_ROLLBACK_FAILED"),
            RefuseBroken,
            RefuseBroken,
            RefuseBroken,
        ),
        (
            Some("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("UPDATE_ROLLBACK_COMPLETE"),
            UpdateViaChangeSet,
            UpdateViaChangeSet,
            UpdateViaChangeSet,
        ),
        (Some("REVIEW_IN_PROGRESS"), Create, Create, Create),
        (
            Some("IMPORT_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("IMPORT_COMPLETE"),
            UpdateViaChangeSet,
            UpdateViaChangeSet,
            UpdateViaChangeSet,
        ),
        (
            Some("IMPORT_ROLLBACK_IN_PROGRESS"),
            WaitForOperation,
            RefuseBusy,
            WaitForOperation,
        ),
        (
            Some("IMPORT_ROLLBACK_FAILED"),
            RefuseBroken,
            RefuseBroken,
            RefuseBroken,
        ),
        (
            Some("IMPORT_ROLLBACK_COMPLETE"),
            UpdateViaChangeSet,
            UpdateViaChangeSet,
            UpdateViaChangeSet,
        ),
    ];

    #[test]
    fn every_status_has_its_step() {
        let confirmed = DeployOptions {
            recreate_failed: true,
            ..DeployOptions::default()
        };
        for (status, first_look, after_waiting, when_confirmed) in TABLE {
            let status = status.map(StackStatus::from);
            let status = status.as_ref();
            let default = DeployOptions::default();
            assert_eq!(next_step(status, false, &default), first_look, "{status:?}");
            assert_eq!(
                next_step(status, true, &default),
                after_waiting,
                "{status:?}"
            );
            assert_eq!(
                next_step(status, false, &confirmed),
                when_confirmed,
                "{status:?}"
            );
        }
    }

    #[test]
    fn the_table_covers_every_status_the_sdk_knows() {
        let mut covered: Vec<&str> = TABLE.iter().filter_map(|row| row.0).collect();
        let mut known = StackStatus::values().to_vec();
        covered.sort_unstable();
        known.sort_unstable();
        assert_eq!(covered, known);
    }

    #[test]
    fn an_unknown_status_is_judged_by_its_kind() {
        let default = DeployOptions::default();
        let step = |s: &str| next_step(Some(&StackStatus::from(s)), false, &default);
        assert_eq!(step("EXPORT_IN_PROGRESS"), WaitForOperation);
        assert_eq!(step("EXPORT_COMPLETE"), UpdateViaChangeSet);
        assert_eq!(step("EXPORT_FAILED"), RefuseBroken);
        assert_eq!(step("SOMETHING_ELSE"), RefuseBroken);
    }
}
