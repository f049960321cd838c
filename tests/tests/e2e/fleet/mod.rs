//! `kms-eth fleet` end to end against real LocalStack, which separates AWS accounts by
//! access key id and lets a management account assume roles in the others: three member
//! accounts, each with a bootstrap role trusted by the management account, and a manifest of
//! 3 targets x 2 regions x 2 accounts = 12 stacks. An apply killed half-way and run again
//! converges with one key per stack; a re-apply changes nothing; a changed tag updates only
//! its account's stacks; a key disabled out of band is drift that apply leaves alone; the
//! address book matches what `status` derives for every key; destroy reports every key's
//! fate. Always on LocalStack, also under `--target aws` (these accounts exist only there).
//!
//! One file per job: `helpers` (what the tests share), `lifecycle` (the twelve stacks),
//! `forgery` (a forged stack, a moved alias), `unreachable` (one target down), `manifests`
//! (bad manifests).

mod forgery;
mod helpers;
mod lifecycle;
mod manifests;
mod ownership;
mod unreachable;
mod widening;
