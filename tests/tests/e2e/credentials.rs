//! The refusals on risky paths that no other test reaches, each proved against real KMS and
//! CloudFormation (LocalStack) and a real anvil node, with what did not happen read back:
//! the key replacement guard on a real change set, `destroy` of a key whose address cannot
//! be read, `--profile` only with `--target aws` (and `--region` as LocalStack's region),
//! credentials in the environment that must not take commands to AWS, `--expect-address` on
//! every command that takes it, and a `send` whose transaction reverts.

use std::time::Duration;

use aws_sdk_kms::types::KeyState;
use kms_eth::target::LOCALSTACK_REGION;
use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{
    as_strs, deploy_args, json_output, key_state, kms, kms_eth, kms_eth_binary, kms_eth_command,
    localstack_endpoint, nonce, stack_exists, stack_key_id, stack_name, stderr, transfer_flags,
    xtask_binary, TestCommand, TestKey, TestStack,
};
use kms_eth_harness::anvil::Anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_provisioner::KEY_LOGICAL_ID;
use serde_json::json;

/// An endpoint where nothing answers: a command that gets as far as calling it fails with
/// "cannot reach", so a usage error there proves that nothing was called.
const NOWHERE: &str = "http://127.0.0.1:9";

/// An address no test key has.
const SOMEONE_ELSE: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// `kms-eth <args>` against the LocalStack behind `proxy`.
fn through(proxy: &FaultProxy, args: &[&str]) -> TestCommand {
    TestCommand::new(kms_eth_binary()).args(args).args([
        "--endpoint-url",
        proxy.endpoint(),
        "--region",
        LOCALSTACK_REGION,
    ])
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
    let created = through(&proxy, &as_strs(&deploy_args(&stack))).json();
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
    let refused = through(&proxy, &as_strs(&change)).fails(
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
    let unconfirmed = through(&proxy, &as_strs(&allowed)).fails(2, "--yes");
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
async fn destroy_of_a_key_whose_address_cannot_be_read_is_refused_unless_forced() {
    let mut guard = TestStack::new(stack_name("unreadable-address"));
    let stack = guard.name.clone();
    let created = json_output(&kms_eth(&as_strs(&deploy_args(&stack))));
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    guard.key_id = Some(key_id.clone());
    // A key pending deletion does not hand out its public key, so its address is unknown.
    kms()
        .await
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    let node = Anvil::start(Duration::from_secs(60)).unwrap();
    let destroy = || {
        kms_eth_command(&["destroy", "--stack-name", &stack, "--yes"])
            .args(["--rpc-url", node.url()])
    };

    let refused = destroy().fails(1, "cannot be read (state PendingDeletion)");
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert!(stack_exists(&stack).await, "the stack was deleted");

    let forced = destroy().args(["--force", "--json"]).json();
    assert_eq!(forced["deleted"], true, "{forced}");
    assert!(!stack_exists(&stack).await);
}

#[test]
fn profile_without_target_aws_is_refused_before_any_call() {
    let key = "alias/kms-eth-never-called";
    let message = "--profile chooses AWS credentials; it only applies with --target aws";
    let transfer = transfer_flags("1", SOMEONE_ELSE, "1gwei");
    let commands: [Vec<&str>; 6] = [
        vec!["status", "--key-id", key],
        vec!["sign-message", "--key-id", key, "hello"],
        [
            &["sign", "--key-id", key, "--nonce", "0"][..],
            &as_strs(&transfer),
        ]
        .concat(),
        vec!["deploy", "--stack-name", "kms-eth-never-deployed", "--yes"],
        vec![
            "destroy",
            "--stack-name",
            "kms-eth-never-deployed",
            "--skip-balance-check",
            "--yes",
        ],
        vec!["key", "list"],
    ];
    for args in commands {
        TestCommand::new(kms_eth_binary())
            .args(args)
            .args(["--profile", "prod", "--endpoint-url", NOWHERE])
            .usage_error(message);
    }
    // `cargo xtask test` takes neither --profile nor --region without --target aws. With
    // --cleanup, a missing refusal would end in the cleanup's own question instead of
    // starting a whole test run.
    for flag in [["--profile", "prod"], ["--region", "eu-west-1"]] {
        TestCommand::new(xtask_binary())
            .args(["test", "--cleanup"])
            .args(flag)
            .usage_error("only apply with --target aws");
    }
}

#[tokio::test]
async fn aws_credentials_and_a_profile_in_the_environment_do_not_take_commands_off_localstack() {
    // The key exists only in the harness's LocalStack; a command that went to AWS (or to
    // the environment's region) would not find it.
    let key = TestKey::ethereum_in_localstack().await;
    let status = TestCommand::new(kms_eth_binary())
        .args(["status", "--key-id", &key.id, "--json"])
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_PROFILE", "kms-eth-test-production")
        .env("AWS_ACCESS_KEY_ID", "AKIAKMSETHTESTNOTREAL")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .json();
    assert_eq!(status["key_id"], key.id.as_str(), "{status}");
    let expected = TestCommand::new(kms_eth_binary())
        .args(["status", "--key-id", &key.id, "--json"])
        .args(["--endpoint-url", &localstack_endpoint()])
        .json();
    assert_eq!(status["address"], expected["address"]);
}

/// `--profile P` with keys in the environment: the keys are not used in P's place (the SDK's
/// default chain prefers the environment's keys over the profile named, which would act in
/// another account than the one P is for). A profile that does not exist is exit 2, named.
#[tokio::test]
async fn a_profile_that_does_not_exist_is_refused_instead_of_using_the_environments_keys() {
    let key = TestKey::ethereum_in_localstack().await;
    let empty = std::env::temp_dir().join(format!("kms-eth-no-profiles-{}", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let output = TestCommand::new(kms_eth_binary())
        .args(["--target", "aws", "--profile", "kms-eth-no-such-profile"])
        .args([
            "--endpoint-url",
            &localstack_endpoint(),
            "--region",
            LOCALSTACK_REGION,
        ])
        .args(["status", "--key-id", &key.id, "--json"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", &empty)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty)
        .usage_error("invalid --profile kms-eth-no-such-profile");
    assert!(
        output.stdout.is_empty(),
        "it answered with the environment's keys"
    );
    let _ = std::fs::remove_file(&empty);
}

/// `--region` is not refused without `--target aws`: LocalStack keeps each region apart, so
/// it chooses the LocalStack region, and a key made in one is not found in another.
#[tokio::test]
async fn region_without_target_aws_chooses_the_localstack_region() {
    let key = TestKey::ethereum_in_localstack().await;
    let status = |region: &str| {
        TestCommand::new(kms_eth_binary())
            .args(["status", "--key-id", &key.id, "--json"])
            .args(["--endpoint-url", &localstack_endpoint(), "--region", region])
    };
    status(LOCALSTACK_REGION).json();
    status("eu-west-1").usage_error("not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_address_is_checked_by_status_sign_and_send_before_anything_is_signed() {
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let key = TestKey::ethereum_in_localstack().await;
    let node = Anvil::start(Duration::from_secs(60)).unwrap();
    let address = through(&proxy, &["status", "--key-id", &key.id, "--json"]).json()["address"]
        .as_str()
        .unwrap()
        .to_owned();
    rpc(
        node.url(),
        "anvil_setBalance",
        json!([address, "0xde0b6b3a7640000"]),
    )
    .unwrap();
    let chain_id = node.chain_id().to_string();
    let transfer = transfer_flags(&chain_id, SOMEONE_ELSE, "1gwei");
    let tx = as_strs(&transfer);
    let commands: [Vec<&str>; 3] = [
        vec!["status"],
        [&["sign", "--nonce", "0"][..], &tx].concat(),
        [&["send", "--rpc-url", node.url(), "--yes"][..], &tx].concat(),
    ];
    for command in &commands {
        let run = |expected: &str| {
            through(&proxy, command).args([
                "--key-id",
                &key.id,
                "--expect-address",
                expected,
                "--json",
            ])
        };
        let signs_before = proxy.counts("Sign").attempts();
        let refused = run(SOMEONE_ELSE).fails(1, &format!("not the expected {SOMEONE_ELSE}"));
        assert!(refused.stdout.is_empty(), "{command:?} printed a report");
        assert_eq!(
            proxy.counts("Sign").attempts(),
            signs_before,
            "{command:?} asked KMS to sign for the wrong account"
        );
        assert_eq!(
            nonce(node.url(), &address),
            0,
            "{command:?} sent a transaction"
        );
        let done = run(&address).json();
        assert!(
            done["address"] == address.as_str() || done["from"] == address.as_str(),
            "{command:?}: {done}"
        );
    }
    assert_eq!(
        nonce(node.url(), &address),
        1,
        "the accepted send was mined"
    );
}

#[tokio::test]
async fn a_send_whose_transaction_reverts_exits_1_with_status_0_and_the_hash() {
    let (key, address, node) = kms_eth_e2e::funded_account().await;
    let chain_id = node.chain_id().to_string();
    let send = |args: &[&str]| {
        kms_eth_command(&["send", "--key-id", &key.id, "--rpc-url", node.url()])
            .args(["--chain-id", &chain_id, "--yes"])
            .args(args)
    };
    // A contract whose code is `REVERT(0, 0)`: the init code returns the five bytes
    // 60 00 60 00 fd (PUSH1 0, PUSH1 0, REVERT).
    let deployed = send(&[
        "--create",
        "--data",
        "0x6460006000fd6000526005601bf3",
        "--json",
    ])
    .json();
    let contract = deployed["contract_address"].as_str().unwrap().to_owned();

    // An explicit gas limit: the node's estimate would already refuse a reverting call,
    // and a reverting transaction that is mined anyway is what this is about.
    let reverted = send(&["--to", &contract, "--gas-limit", "50000"])
        .fails(1, "reverted (status 0); its gas was paid");
    let message = stderr(&reverted);
    let hash = message
        .split_whitespace()
        .find(|word| word.starts_with("0x") && word.len() == 66)
        .unwrap_or_else(|| panic!("no transaction hash in: {message}"));
    assert!(reverted.stdout.is_empty(), "a success report for a revert");
    let receipt = rpc(node.url(), "eth_getTransactionReceipt", json!([hash])).unwrap();
    assert_eq!(receipt["status"], "0x0", "{receipt}");
    assert_eq!(
        nonce(node.url(), &address),
        2,
        "both transactions were mined"
    );
}
