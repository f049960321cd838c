//! The flags of `kms-eth fleet plan|apply|status|destroy`.

use clap::{Args, Subcommand};

use super::FundsCheckArgs;

/// `kms-eth fleet ...`. Exit codes besides 0, 1 and 2: `plan` exits 4 when changes are
/// pending and 5 when something needs a person (drift, a refused stack); `apply` exits 5
/// when it left drifted stacks alone and nothing failed.
#[derive(Debug, Subcommand)]
pub enum FleetCmd {
    /// For every target, region and account: create, update (with the difference), no
    /// change, busy, refused, or drift (key disabled or pending deletion, alias moved, key
    /// policy or signer-role trust changed outside kms-eth); kms-eth keys the manifest does
    /// not name are listed as unmanaged. Changes nothing. Exit 0: nothing to do; 4: changes
    /// pending; 5: drift or a refused stack, which apply will not fix.
    Plan(FleetPlanArgs),
    /// Show the plan, then create and update the stacks, several targets at once. One failing
    /// stack does not stop the others; drifted and refused stacks are left alone. Running it
    /// again after a crash or a kill converges. Exit 1 if any stack failed or was refused, 5
    /// if drift was left alone.
    Apply(FleetApplyArgs),
    /// The address book: target, account id, region, name, alias, key ARN, key state and
    /// address of every account of the manifest (and balance and nonce with --rpc-url), in
    /// the manifest's order.
    Status(FleetStatusArgs),
    /// Delete the manifest's stacks (or one target's), after listing what becomes of every
    /// key and checking the funds at the addresses whose keys are scheduled for deletion.
    Destroy(FleetDestroyArgs),
}

/// The manifest flag every fleet command takes.
#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// The fleet manifest (TOML; README, "Fleets", documents every field).
    #[arg(long, value_name = "FILE")]
    pub manifest: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct FleetPlanArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
}

#[derive(Debug, Args)]
pub struct FleetApplyArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Apply the plan without asking (needed without a terminal). Changes of who may sign
    /// (signer principals) or of what happens to a key (removal policy) need
    /// --allow-trust-change as well.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow the plan's changes of signer principals and removal policies, which are shown
    /// in a section of their own; without it, apply refuses a plan that has any.
    #[arg(long)]
    pub allow_trust_change: bool,
    /// How many targets are worked on at once (each target's stacks go together, key
    /// creation paced under KMS's CreateKey quota of 5 per second per account and region).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}

#[derive(Debug, Args)]
pub struct FleetStatusArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Print the address book as CSV (with a header line) instead of a table.
    #[arg(long)]
    pub csv: bool,
    /// A node to read each address's balance and nonce from.
    #[arg(long, value_name = "URL")]
    pub rpc_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct FleetDestroyArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Only this target's stacks (its name in the manifest).
    #[arg(long, value_name = "TARGET")]
    pub only: Option<String>,
    /// What is checked at the addresses of keys scheduled for deletion (removal policy
    /// DESTROY); one is needed when the fleet has such keys.
    #[command(flatten)]
    pub funds: FundsCheckArgs,
    /// Answer yes to the confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// How many targets are worked on at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
}
