//! `deploy`, `destroy` and `key` end to end against real CloudFormation, KMS and IAM
//! (LocalStack by default): the stack, the key, the address, idempotent re-deploys, both
//! removal policies, cancelling a deletion, the guard against a change that would replace the
//! key (on a real change set), and bad input, kms-eth's own tag prefix included. What stands
//! between a key and its deletion is `deletion_guards`; who may sign is `access`.

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    as_strs, assert_usage_error, cancel_deletion_and_enable, cloudformation, deploy_args,
    destroy_unfunded, independent_address, json_output, key_state, kms, kms_eth, kms_eth_binary,
    kms_eth_command, kms_eth_through, localstack_endpoint, stack_exists, stack_key_id, stack_name,
    stderr, test_tag, TestCommand, TestStack,
};
use kms_eth_provisioner::KEY_LOGICAL_ID;
use kms_eth_signer::{keccak256, recover_signer, Error, KeyState, KmsErrorKind, KmsSigner};
use serde_json::Value;

/// An endpoint where nothing answers: a command that gets as far as calling it fails with
/// "cannot reach", so a usage error there proves that nothing was called.
const NOWHERE: &str = "http://127.0.0.1:9";

fn deploy(stack: &str, extra: &[&str]) -> Value {
    let tag = test_tag();
    let mut args = vec!["deploy", "--stack-name", stack, "--tag", &tag, "--json"];
    args.extend_from_slice(extra);
    json_output(&kms_eth(&args))
}

/// Deploys a test account and returns its guard (which tears it down) and the deploy JSON.
fn deploy_account(test: &str, extra: &[&str]) -> (TestStack, Value) {
    let mut guard = TestStack::new(stack_name(test));
    let created = deploy(&guard.name, extra);
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    (guard, created)
}

const DESTROY_7_DAYS: [&str; 4] = ["--removal-policy", "destroy", "--pending-window-days", "7"];

/// The stack as CloudFormation describes it.
async fn described(stack: &str) -> aws_sdk_cloudformation::types::Stack {
    cloudformation()
        .await
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .stacks()[0]
        .clone()
}

/// The stack's status, for example `CREATE_COMPLETE`.
async fn stack_status(stack: &str) -> String {
    described(stack)
        .await
        .stack_status()
        .unwrap()
        .as_str()
        .to_owned()
}

#[tokio::test]
async fn deploy_creates_the_account_and_redeploys_converge() {
    let (guard, created) = deploy_account("create", &DESTROY_7_DAYS);
    let stack = guard.name.clone();
    assert_eq!(created["action"], "created");
    let key_id = created["key_id"].as_str().unwrap().to_owned();

    // The stack and the key are what the template promises.
    assert_eq!(stack_status(&stack).await, "CREATE_COMPLETE");
    let kms = kms().await;
    let metadata = kms.describe_key().key_id(&key_id).send().await.unwrap();
    let metadata = metadata.key_metadata().unwrap();
    assert_eq!(metadata.key_spec(), Some(&KeySpec::EccSecgP256K1));
    assert_eq!(metadata.key_usage(), Some(&KeyUsageType::SignVerify));
    assert_eq!(created["removal_policy"], "DESTROY");
    assert_eq!(created["alias"], format!("alias/{stack}"));

    // The signer role's policy is checked in access.rs.

    // The printed address is the one the public key gives, derived independently here.
    let spki = kms.get_public_key().key_id(&key_id).send().await.unwrap();
    let expected = independent_address(spki.public_key().unwrap().as_ref());
    assert_eq!(
        created["address"].as_str().unwrap().to_lowercase(),
        expected
    );

    // Unchanged inputs: a no-op that says so, exit 0.
    let again = deploy(&stack, &DESTROY_7_DAYS);
    assert_eq!(again["action"], "unchanged");
    assert_eq!(again["key_id"], created["key_id"]);

    // A changed parameter and tag: an update that keeps the key and the address.
    let updated = deploy(
        &stack,
        &[
            "--removal-policy",
            "destroy",
            "--pending-window-days",
            "8",
            "--tag",
            "team=ops",
        ],
    );
    assert_eq!(updated["action"], "updated");
    assert_eq!(updated["key_id"], created["key_id"]);
    assert_eq!(updated["address"], created["address"]);
    assert_eq!(updated["pending_window_days"], 8);
}

#[tokio::test]
async fn destroy_schedules_a_destroy_key_and_cancel_deletion_brings_it_back() {
    let (guard, created) = deploy_account("destroy", &DESTROY_7_DAYS);
    let stack = guard.name.clone();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    let signer = KmsSigner::new(kms().await, key_id.clone()).await.unwrap();

    let destroyed = destroy_unfunded(&stack);
    assert_eq!(destroyed["key_state"], "PendingDeletion");
    assert!(destroyed["deletion_date"]
        .as_str()
        .is_some_and(|d| d.starts_with("20")));
    assert!(!stack_exists(&stack).await, "the stack is gone");
    assert_eq!(key_state(&key_id).await, KeyState::PendingDeletion);

    // Signing is refused, with the state named.
    let err = signer
        .sign_digest(&keccak256(b"after destroy"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Kms(err) if matches!(
                err.kind(),
                KmsErrorKind::KeyState {
                    state: KeyState::PendingDeletion,
                    ..
                }
            )
        ),
        "{err:?}"
    );

    // Cancelling the deletion makes the same account usable again.
    let restored = cancel_deletion_and_enable(&key_id);
    assert_eq!(restored["key_state"], "Enabled");
    assert_eq!(restored["address"], created["address"]);
    let digest = keccak256(b"after cancel");
    let signature = signer.sign_digest(&digest).await.unwrap();
    assert_eq!(
        recover_signer(&digest, &signature).unwrap().to_string(),
        created["address"]
    );
}

#[tokio::test]
async fn destroy_keeps_a_retained_key_usable() {
    let (guard, created) = deploy_account("retain", &[]);
    let stack = guard.name.clone();
    assert_eq!(created["removal_policy"], "RETAIN", "RETAIN is the default");
    let key_id = created["key_id"].as_str().unwrap().to_owned();

    let destroyed = kms_eth(&["destroy", "--stack-name", &stack, "--yes"]);
    assert!(destroyed.status.success(), "{}", stderr(&destroyed));
    assert!(
        stderr(&destroyed).contains("keeps KMS key"),
        "{}",
        stderr(&destroyed)
    );
    assert!(!stack_exists(&stack).await);
    assert_eq!(key_state(&key_id).await, KeyState::Enabled);

    let signer = KmsSigner::new(kms().await, key_id.clone()).await.unwrap();
    assert_eq!(signer.address().to_string(), created["address"]);
    let digest = keccak256(b"retained");
    let signature = signer.sign_digest(&digest).await.unwrap();
    assert_eq!(
        recover_signer(&digest, &signature).unwrap(),
        signer.address()
    );

    // The retained key is listed, with its address and the stack that made it.
    let listed = json_output(&kms_eth(&["key", "list", "--json"]));
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["key_id"] == key_id.as_str())
        .unwrap_or_else(|| panic!("{key_id} not in {listed}"));
    assert_eq!(entry["address"], created["address"]);
    assert_eq!(entry["stack_name"], stack.as_str());
    assert_eq!(entry["key_state"], "Enabled");

    // Nothing to cancel on an enabled key: refused, and the key stays as it is.
    let cancel = kms_eth(&["key", "cancel-deletion", &key_id]);
    assert_eq!(cancel.status.code(), Some(1));
    assert!(
        stderr(&cancel).contains("is not pending deletion"),
        "{}",
        stderr(&cancel)
    );

    // Scheduling its deletion shows the key and address and needs a confirmation.
    let schedule = [
        "key",
        "schedule-deletion",
        &key_id,
        "--days",
        "7",
        "--skip-balance-check",
    ];
    let unconfirmed = kms_eth(&schedule);
    assert_eq!(unconfirmed.status.code(), Some(2));
    let message = stderr(&unconfirmed);
    assert!(
        message.contains(created["address"].as_str().unwrap()),
        "{message}"
    );
    assert!(message.contains("pass --yes"), "{message}");
    assert_eq!(key_state(&key_id).await, KeyState::Enabled);
    let scheduled = json_output(&kms_eth(&[&schedule[..], &["--yes", "--json"]].concat()));
    assert_eq!(scheduled["key_state"], "PendingDeletion");
}

#[tokio::test]
async fn bad_input_exits_2_and_creates_or_deletes_nothing() {
    let stack = stack_name("bad");
    let cases: [(&[&str], &str); 7] = [
        (
            &[
                "deploy",
                "--stack-name",
                &stack,
                "--removal-policy",
                "delete",
            ],
            "unknown removal policy \"delete\"",
        ),
        (
            &[
                "deploy",
                "--stack-name",
                &stack,
                "--pending-window-days",
                "3",
            ],
            "3 is not in 7..=30",
        ),
        (
            &[
                "deploy",
                "--stack-name",
                &stack,
                "--pending-window-days",
                "31",
            ],
            "31 is not in 7..=30",
        ),
        (
            &["deploy", "--stack-name", "1-starts-with-a-digit"],
            "must start with a letter",
        ),
        (
            &["deploy", "--stack-name", "has_underscore"],
            "only letters, digits and hyphens",
        ),
        (
            &["destroy", "--stack-name", &stack, "--yes"],
            "there is no stack named",
        ),
        (
            &[
                "key",
                "schedule-deletion",
                "alias/x",
                "--days",
                "6",
                "--yes",
            ],
            "6 is not in 7..=30",
        ),
    ];
    for (args, message) in cases {
        let output = kms_eth(args);
        assert_usage_error(&output, &args, message);
    }
    // An endpoint nobody answers on: a clear error, exit 1 (a failure to reach AWS, not a
    // mistake in what was typed; running it again once the endpoint is up works).
    let unreachable = TestCommand::new(kms_eth_binary())
        .args([
            "deploy",
            "--stack-name",
            &stack,
            "--endpoint-url",
            "http://127.0.0.1:9",
        ])
        .output();
    assert_eq!(
        unreachable.status.code(),
        Some(1),
        "{}",
        stderr(&unreachable)
    );
    assert!(
        stderr(&unreachable).contains("cannot reach the AWS endpoint"),
        "{}",
        stderr(&unreachable)
    );
    assert!(!stack_exists(&stack).await, "nothing was created");
}

/// The stack's parameters, as CloudFormation holds them.
async fn stack_parameters(stack: &str) -> std::collections::BTreeMap<String, String> {
    described(stack)
        .await
        .parameters()
        .iter()
        .map(|p| {
            (
                p.parameter_key().unwrap().to_owned(),
                p.parameter_value().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The stack's template as deployed: the removal policy is written into it.
async fn deployed_template(stack: &str) -> String {
    cloudformation()
        .await
        .get_template()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .template_body()
        .unwrap()
        .to_owned()
}

const OPS: &str = "arn:aws:iam::000000000000:role/kms-eth-test-ops";
const AUDIT: &str = "arn:aws:iam::000000000000:user/kms-eth-test-audit";

/// A stack deployed with non-default values for every input.
fn deploy_non_default(test: &str) -> (TestStack, Value) {
    deploy_account(
        test,
        &[
            "--removal-policy",
            "destroy",
            "--pending-window-days",
            "9",
            "--alias",
            &format!("alias/{}-custom", stack_name(test)),
            "--signer-principal",
            OPS,
        ],
    )
}

#[tokio::test]
async fn a_redeploy_with_default_flags_keeps_trust_removal_policy_and_every_other_value() {
    let (guard, created) = deploy_non_default("keep");
    let stack = guard.name.clone();
    let before = stack_parameters(&stack).await;
    let (trust_before, _) = kms_eth_e2e::account_policies(&created).await;

    // Only the stack name: the defaults must not widen trust or change the removal policy.
    let again = json_output(&kms_eth(&["deploy", "--stack-name", &stack, "--json"]));
    assert_eq!(again["action"], "unchanged", "{again}");
    assert_eq!(stack_parameters(&stack).await, before);
    assert_eq!(before["SignerPrincipals"], OPS);
    assert_eq!(before["RemovalPolicy"], "DESTROY");
    assert_eq!(before["PendingWindowInDays"], "9");
    assert_eq!(again["signer_principals"], serde_json::json!([OPS]));
    assert_eq!(again["removal_policy"], "DESTROY");
    assert_eq!(again["alias"], created["alias"]);
    let (trust_after, _) = kms_eth_e2e::account_policies(&again).await;
    assert_eq!(kms_eth_e2e::trusted_principals(&trust_after), [OPS]);
    assert_eq!(trust_after, trust_before);
    assert!(deployed_template(&stack)
        .await
        .contains("DeletionPolicy: \"Delete\""));

    // A change of something else (the window) keeps trust and removal policy too, and
    // needs no confirmation.
    let updated = json_output(&kms_eth(&[
        "deploy",
        "--stack-name",
        &stack,
        "--pending-window-days",
        "10",
        "--json",
    ]));
    assert_eq!(updated["action"], "updated");
    let after = stack_parameters(&stack).await;
    assert_eq!(after["PendingWindowInDays"], "10");
    assert_eq!(after["SignerPrincipals"], OPS);
    assert_eq!(after["RemovalPolicy"], "DESTROY");
}

#[tokio::test]
async fn a_redeploy_that_changes_trust_or_removal_policy_needs_yes() {
    let (guard, created) = deploy_non_default("confirm");
    let stack = guard.name.clone();
    let before = stack_parameters(&stack).await;

    // No terminal (the test's stdin is none) and no --yes: refused, shown old -> new,
    // nothing changed.
    let refused = kms_eth(&[
        "deploy",
        "--stack-name",
        &stack,
        "--removal-policy",
        "retain",
    ]);
    assert_usage_error(&refused, &"removal policy change", "pass --yes");
    assert!(
        stderr(&refused).contains("removal policy: DESTROY -> RETAIN"),
        "{}",
        stderr(&refused)
    );
    let widened = kms_eth(&[
        "deploy",
        "--stack-name",
        &stack,
        "--signer-principal",
        OPS,
        "--signer-principal",
        AUDIT,
    ]);
    assert_usage_error(&widened, &"trust change", "pass --yes");
    assert!(
        stderr(&widened).contains(&format!("signer principals: {OPS} -> {OPS}, {AUDIT}")),
        "{}",
        stderr(&widened)
    );
    assert_eq!(stack_parameters(&stack).await, before, "nothing changed");
    assert!(deployed_template(&stack)
        .await
        .contains("DeletionPolicy: \"Delete\""));
    assert_eq!(
        stack_status(&stack).await,
        "CREATE_COMPLETE",
        "no update was started"
    );

    // With --yes: changed, and the key (the address) is the same.
    let changed = json_output(&kms_eth(&[
        "deploy",
        "--stack-name",
        &stack,
        "--removal-policy",
        "retain",
        "--yes",
        "--json",
    ]));
    assert_eq!(changed["action"], "updated");
    assert_eq!(changed["removal_policy"], "RETAIN");
    assert_eq!(changed["address"], created["address"]);
    assert_eq!(stack_parameters(&stack).await["RemovalPolicy"], "RETAIN");
    assert!(deployed_template(&stack)
        .await
        .contains("DeletionPolicy: \"Retain\""));
    assert_eq!(
        stack_parameters(&stack).await["SignerPrincipals"],
        OPS,
        "trust was not touched"
    );
}

#[tokio::test]
async fn a_bad_signer_principal_exits_2_before_any_call() {
    let stack = stack_name("bad-principal");
    for bad in [
        "*",
        "arn:aws:iam::12345:root",
        "arn:aws:iam::123456789012:group/x",
    ] {
        let output = TestCommand::new(kms_eth_binary())
            .args(["deploy", "--stack-name", &stack, "--signer-principal", bad])
            // Nothing answers here: an AWS call would fail with exit 1, not 2.
            .args(["--endpoint-url", "http://127.0.0.1:9"])
            .output();
        assert_usage_error(&output, &bad, "--signer-principal");
    }
    assert!(!stack_exists(&stack).await);
}

/// The change sets CloudFormation still holds for `stack`.
async fn change_sets(stack: &str) -> usize {
    kms_eth_e2e::cloudformation()
        .await
        .list_change_sets()
        .stack_name(stack)
        .send()
        .await
        .unwrap()
        .summaries()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_set_that_would_replace_the_key_is_refused_deleted_and_the_key_kept() {
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let mut guard = TestStack::new(stack_name("key-replacement"));
    let stack = guard.name.clone();
    let created = kms_eth_through(&proxy, &as_strs(&deploy_args(&stack))).json();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    guard.key_id = Some(key_id.clone());

    // A real change (the pending window, a property of the key), which CloudFormation
    // plans as a Modify of the key; the proxy shows it as AWS shows a replacing change.
    proxy.show_replacement_of(KEY_LOGICAL_ID);
    let mut change = deploy_args(&stack);
    change.retain(|arg| arg != "--json");
    let window = change
        .iter()
        .position(|a| a == "--pending-window-days")
        .unwrap();
    change[window + 1] = "8".into();
    let refused = kms_eth_through(&proxy, &as_strs(&change)).fails(
        1,
        &format!("refusing to deploy: the change would replace the KMS key of stack {stack}"),
    );
    let message = stderr(&refused);
    assert!(message.contains("--allow-key-replacement"), "{message}");
    assert!(refused.stdout.is_empty(), "a report for a refused deploy");
    assert_eq!(
        proxy.counts("ExecuteChangeSet").attempts(),
        1,
        "only the create ran"
    );
    assert_eq!(
        change_sets(&stack).await,
        0,
        "the refused change set was left behind"
    );

    // Allowing it still needs the confirmation, which a run without a terminal cannot give.
    let mut allowed = change.clone();
    allowed.push("--allow-key-replacement".into());
    let unconfirmed = kms_eth_through(&proxy, &as_strs(&allowed)).fails(2, "--yes");
    assert!(
        stderr(&unconfirmed).contains(&key_id),
        "the key given up is named: {}",
        stderr(&unconfirmed)
    );
    assert_eq!(proxy.counts("ExecuteChangeSet").attempts(), 1);

    let cloudformation = kms_eth_e2e::cloudformation().await;
    assert_eq!(
        stack_key_id(&cloudformation, &stack).await,
        Some(key_id.clone())
    );
    assert_eq!(key_state(&key_id).await, KeyState::Enabled);
    let parameters = cloudformation
        .describe_stacks()
        .stack_name(&stack)
        .send()
        .await
        .unwrap();
    let window_now = parameters.stacks()[0]
        .parameters()
        .iter()
        .find(|p| p.parameter_key() == Some("PendingWindowInDays"))
        .and_then(|p| p.parameter_value().map(str::to_owned));
    assert_eq!(window_now.as_deref(), Some("7"), "the stack was changed");
}

#[tokio::test]
async fn deploy_refuses_a_tag_with_the_reserved_kms_eth_prefix() {
    let stack = stack_name("reserved-tag");
    let _guard = TestStack::new(stack.clone());
    for tag in ["kms-eth:test-run=x", "kms-eth:account=treasury"] {
        let refused = kms_eth_command(&["deploy", "--stack-name", &stack, "--tag", tag, "--yes"])
            .usage_error("reserved for the tags kms-eth sets itself");
        assert!(stderr(&refused).contains("--tag"), "{}", stderr(&refused));
        // Before any call.
        TestCommand::new(kms_eth_binary())
            .args(["deploy", "--stack-name", &stack, "--tag", tag, "--yes"])
            .args(["--endpoint-url", NOWHERE])
            .usage_error("reserved");
    }
    assert!(!stack_exists(&stack).await, "nothing was deployed");
}

/// A stack another kms-eth process is changing (its lock held, as a running deploy or fleet
/// apply holds it) is refused by deploy, destroy and a fleet apply of a manifest naming it,
/// each before anything is changed.
#[tokio::test]
async fn a_stack_another_kms_eth_command_is_changing_is_refused_by_deploy_destroy_and_fleet() {
    let identity = kms_eth_e2e::sts()
        .await
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let account = identity.account().unwrap().to_owned();
    let run: String = kms_eth_e2e::run_id()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    // The fleet's stack name is its target's and account's names joined.
    let (target, name) = (format!("lk{run}"), "held");
    let stack = format!("{target}-{name}");
    let lock = kms_eth::stack_lock::path(&account, "us-east-1", &stack);
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .unwrap();
    held.try_lock().unwrap();

    let said = "another kms-eth command";
    kms_eth_command(&["deploy", "--stack-name", &stack, "--yes"]).usage_error(said);
    kms_eth_command(&["destroy", "--stack-name", &stack, "--skip-balance-check"])
        .args(["--yes"])
        .usage_error(said);
    let manifest = kms_eth_e2e::scratch_dir().join(format!("locked-{run}.toml"));
    std::fs::write(
        &manifest,
        format!(
            "[[target]]\nname = \"{target}\"\naccount_id = \"{account}\"\nregions = [\"us-east-1\"]\n\n\
             [[target.account]]\nname = \"{name}\"\n"
        ),
    )
    .unwrap();
    kms_eth_command(&[
        "fleet",
        "apply",
        "--manifest",
        manifest.to_str().unwrap(),
        "--yes",
    ])
    .usage_error(said);
    assert!(
        !stack_exists(&stack).await,
        "a refused command made the stack"
    );
    drop(held);
    let _ = std::fs::remove_file(&lock);
}
