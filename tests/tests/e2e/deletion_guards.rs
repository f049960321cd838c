//! What stands between a key and its deletion, end to end against real KMS and
//! CloudFormation (LocalStack by default) and real anvil nodes: `destroy` and
//! `key schedule-deletion` need a confirmation, look at every chain given (or are told
//! explicitly not to), refuse a funded address, and refuse a key whose address cannot be read
//! unless forced; both touch only kms-eth's keys, `key cancel-deletion` enables one only when
//! asked, and `test --cleanup` removes only test leftovers, listing them first. Every refusal
//! is checked by reading the keys and stacks back: nothing was scheduled or deleted.

use std::time::Duration;

use aws_sdk_kms::types::{KeyState, Tag};
use kms_eth_e2e::{
    as_strs, assert_usage_error, deploy_args, deploy_test_account, in_account, json_output,
    key_state, kms, kms_eth, kms_eth_binary, kms_eth_command, on_target, own_account, run_id,
    stack_exists, stack_name, stderr, TestCommand, TestKey, TestStack,
};
use kms_eth_harness::anvil::Anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_harness::process;
use kms_eth_provisioner::ACCOUNT_TAG;
use serde_json::json;

/// An endpoint where nothing answers: a command that gets as far as calling it fails with
/// "cannot reach", so a usage error there proves that nothing was called.
const NOWHERE: &str = "http://127.0.0.1:9";

/// A test key tagged as the provisioner tags an account's key, so the commands treat it
/// as kms-eth's; and its address.
async fn account_key(label: &str) -> (TestKey, String) {
    let kms = kms().await;
    let key = TestKey::ethereum(&kms).await;
    kms.tag_resource()
        .key_id(&key.id)
        .tags(
            Tag::builder()
                .tag_key(ACCOUNT_TAG)
                .tag_value(stack_name(label))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let status = json_output(&kms_eth(&["status", "--key-id", &key.id, "--json"]));
    let address = status["address"].as_str().unwrap().to_owned();
    (key, address)
}

/// Schedules `key_id`'s deletion directly in KMS (7 days), as a destroy would have.
async fn schedule_in_kms(key_id: &str) {
    kms()
        .await
        .schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
}

fn anvil() -> Anvil {
    Anvil::start(Duration::from_secs(60)).unwrap()
}

/// A loopback URL where no node answers, pinned to chain 1 (`CHAIN_ID=URL`).
fn dead_node() -> String {
    format!("1=http://127.0.0.1:{}", process::free_port().unwrap())
}

/// `--rpc-url`'s value for `node`: its URL with the chain id it must answer.
fn pinned(node: &Anvil) -> String {
    format!("{}={}", node.chain_id(), node.url())
}

#[tokio::test]
async fn schedule_deletion_without_rpc_url_or_skip_balance_check_is_refused_before_any_call() {
    let (key, _address) = account_key("no-check").await;
    let both_named = |output: &std::process::Output| {
        let message = stderr(output);
        assert!(message.contains("--rpc-url"), "{message}");
        assert!(message.contains("--skip-balance-check"), "{message}");
        assert!(!message.contains("cannot reach"), "{message}");
    };
    let refused = kms_eth_command(&["key", "schedule-deletion", &key.id, "--days", "7", "--yes"])
        .usage_error("nothing was scheduled for deletion");
    both_named(&refused);
    // Before any call: the same refusal where no AWS endpoint answers.
    let refused = TestCommand::new(kms_eth_binary())
        .args(["key", "schedule-deletion", &key.id, "--days", "7", "--yes"])
        .args(["--endpoint-url", NOWHERE])
        .usage_error("nothing was scheduled for deletion");
    both_named(&refused);
    // Both at once contradict each other.
    TestCommand::new(kms_eth_binary())
        .args(["key", "schedule-deletion", &key.id, "--days", "7", "--yes"])
        .args(["--rpc-url", NOWHERE, "--skip-balance-check"])
        .args(["--endpoint-url", NOWHERE])
        .usage_error("cannot be used with");
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);
}

#[tokio::test]
async fn schedule_deletion_refuses_an_address_that_sent_a_transaction_or_holds_ether_on_any_node() {
    let (key, address) = account_key("in-use").await;
    let (clean, used) = (anvil(), anvil());
    // Never funded, but it has sent a transaction on the second chain: it is in use.
    rpc(used.url(), "anvil_setNonce", json!([address, "0x1"])).unwrap();
    let schedule = |nodes: &[&str]| {
        let mut args = vec!["key", "schedule-deletion", &key.id, "--days", "7", "--yes"];
        for node in nodes {
            args.extend(["--rpc-url", node]);
        }
        kms_eth_command(&args)
    };

    let refused = schedule(&[&pinned(&clean), &pinned(&used)]).fails(1, "is in use");
    let message = stderr(&refused);
    for node in [&clean, &used] {
        let shown = format!("checked chain {} ({})", node.chain_id(), node.url());
        assert!(message.contains(&shown), "{shown:?} in: {message}");
    }
    assert!(
        message.contains(&format!(
            "on chain {} ({}) it has sent 1 transaction(s)",
            used.chain_id(),
            used.url()
        )),
        "{message}"
    );
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);

    // Ether on the first chain, nothing sent.
    rpc(
        clean.url(),
        "anvil_setBalance",
        json!([address, "0xde0b6b3a7640000"]),
    )
    .unwrap();
    schedule(&[&pinned(&clean)]).fails(1, "it holds 1 ether (1000000000000000000 wei)");
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);

    // A node that does not answer is an error, not a chain skipped.
    let dead = dead_node();
    let dead_url = dead.trim_start_matches("1=");
    schedule(&[&pinned(&used), &dead]).fails(
        1,
        &format!("the balance check of {address} failed at {dead_url}"),
    );
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);
}

#[tokio::test]
async fn schedule_deletion_after_a_clean_check_says_that_tokens_and_other_chains_were_not() {
    let (key, _address) = account_key("clean").await;
    let node = anvil();
    let output = kms_eth_command(&[
        "key",
        "schedule-deletion",
        &key.id,
        "--days",
        "7",
        "--rpc-url",
        node.url(),
        "--chain-id",
        &node.chain_id().to_string(),
        "--yes",
        "--json",
    ])
    .success();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let check = &report["balance_check"];
    assert_eq!(check["skipped"], false, "{report}");
    assert_eq!(check["chains"][0]["chain_id"], node.chain_id());
    assert_eq!(check["chains"][0]["balance"], "0");
    assert_eq!(check["chains"][0]["nonce"], 0);
    for said in [check["not_checked"].as_str().unwrap(), &stderr(&output)] {
        assert!(
            said.contains("tokens") && said.contains("chains not given with --rpc-url"),
            "{said}"
        );
    }
    assert_eq!(key_state(&key.id).await, KeyState::PendingDeletion);
}

#[tokio::test]
async fn destroy_of_a_destroy_stack_needs_a_balance_check_on_every_node_given_or_its_skip() {
    let mut guard = TestStack::new(stack_name("guarded-destroy"));
    let created = json_output(&kms_eth(&as_strs(&deploy_args(&guard.name))));
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    guard.key_id = Some(key_id.clone());
    let stack = guard.name.clone();
    let untouched = || async {
        assert!(stack_exists(&stack).await, "the stack was deleted");
        assert_eq!(key_state(&key_id).await, KeyState::Enabled);
    };

    let destroy = || kms_eth_command(&["destroy", "--stack-name", &stack, "--yes"]);
    let refused = destroy().usage_error("--rpc-url");
    assert!(
        stderr(&refused).contains("--skip-balance-check"),
        "{}",
        stderr(&refused)
    );
    untouched().await;

    let node = anvil();
    let dead = dead_node();
    destroy()
        .args(["--rpc-url", &pinned(&node), "--rpc-url", &dead])
        .fails(1, &format!("failed at {}", dead.trim_start_matches("1=")));
    untouched().await;

    let destroyed = destroy()
        .args(["--rpc-url", &pinned(&node), "--json"])
        .json();
    assert_eq!(
        destroyed["balance_check"]["chains"][0]["chain_id"],
        node.chain_id()
    );
    assert!(!stack_exists(&stack).await);
    assert_eq!(key_state(&key_id).await, KeyState::PendingDeletion);
}

#[tokio::test]
async fn cancel_deletion_refuses_a_key_that_is_not_kms_eths() {
    let other = TestKey::ethereum(&kms().await).await;
    schedule_in_kms(&other.id).await;
    let refused =
        kms_eth_command(&["key", "cancel-deletion", &other.id, "--enable"]).usage_error(&format!(
            "key {} is not a kms-eth key (it has no {ACCOUNT_TAG} tag); refusing to cancel its deletion",
            other.id
        ));
    assert!(!stderr(&refused).contains("cannot reach"));
    assert_eq!(key_state(&other.id).await, KeyState::PendingDeletion);
}

#[tokio::test]
async fn cancel_deletion_leaves_the_key_disabled_unless_enable_is_given() {
    let (key, address) = account_key("cancel").await;
    schedule_in_kms(&key.id).await;
    let output = kms_eth_command(&["key", "cancel-deletion", &key.id, "--json"]).success();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["key_state"], "Disabled", "{report}");
    assert!(stderr(&output).contains("--enable"), "{}", stderr(&output));
    assert_eq!(key_state(&key.id).await, KeyState::Disabled);

    schedule_in_kms(&key.id).await;
    let enabled =
        kms_eth_command(&["key", "cancel-deletion", &key.id, "--enable", "--json"]).json();
    assert_eq!(enabled["key_state"], "Enabled");
    assert_eq!(enabled["address"], address.as_str());
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);
}

#[tokio::test]
async fn cleanup_lists_only_test_leftovers_and_refuses_to_remove_them_unasked() {
    // What the report was about: a real account that carries the test tag. Its name is not
    // a test's, so it is not a leftover.
    let mut real = TestStack::new(format!("kms-eth-real-{}", run_id()));
    let deployed = json_output(&kms_eth(&as_strs(&deploy_args(&real.name))));
    let real_key = deployed["key_id"].as_str().unwrap().to_owned();
    real.key_id = Some(real_key.clone());
    // Leftovers of this run: a test's stack, and a test key with its address.
    let mut listed = TestStack::new(stack_name("cleanup-listed"));
    let listed_key = json_output(&kms_eth(&as_strs(&deploy_args(&listed.name))))["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    listed.key_id = Some(listed_key.clone());
    let (leftover, leftover_address) = account_key("cleanup-leftover").await;

    let refused = on_target(TestCommand::new(env!("CARGO_BIN_EXE_cleanup"))).fails(2, "pass --yes");
    let listing = stderr(&refused);
    assert!(
        listing.contains(&format!("key {}  address {leftover_address}", leftover.id)),
        "the leftover and its address are listed before the question: {listing}"
    );
    assert!(
        listing.contains(&format!(
            "stack {}  (run {}, key {listed_key})",
            listed.name,
            run_id()
        )),
        "{listing}"
    );
    assert!(!listing.contains(&real.name), "{listing}");
    assert!(!listing.contains(&real_key), "{listing}");

    assert!(stack_exists(&real.name).await);
    assert_eq!(key_state(&real_key).await, KeyState::Enabled);
    assert_eq!(key_state(&leftover.id).await, KeyState::Enabled);
    assert!(stack_exists(&listed.name).await, "listed, not deleted");
}

/// `test --cleanup --yes`, the branch that deletes, in a LocalStack account of this test's
/// own: the cleanup removes the leftovers of every run it finds, so in the run's account it
/// would delete the stacks of the tests running beside this one (`--endpoint-url` alone acts
/// in 000000000000 whatever the access key, hence `--target aws` there). In it: a test's
/// stack with this run's test tag and another with a test's name of this run but no tag (a
/// look-alike, as a user's stack named like a test's is), and a key made as tests make theirs
/// beside one with the same description but no tag. The tagged ones are removed (the stack
/// deleted, both keys pending deletion); the look-alikes keep their stack and enabled keys.
#[tokio::test]
async fn cleanup_with_yes_removes_tagged_leftovers_and_keeps_untagged_look_alikes() {
    let account = own_account("cleanup-delete");
    let deploy = |label: &str, tagged: bool| {
        let mut guard = TestStack::in_account(stack_name(label), &account);
        let mut args = deploy_args(&guard.name);
        if !tagged {
            let at = args.iter().position(|a| a == "--tag").unwrap();
            args.drain(at..at + 2);
        }
        let command = TestCommand::new(kms_eth_binary()).args(as_strs(&args));
        let report = in_account(command, &account).json();
        guard.key_id = report["key_id"].as_str().map(str::to_owned);
        guard
    };
    let leftover = deploy("cleanup-removed", true);
    let look_alike = deploy("cleanup-kept", false);
    let leftover_key = TestKey::ethereum_in_account(&account, true).await;
    let look_alike_key = TestKey::ethereum_in_account(&account, false).await;
    let config = kms_eth_e2e::sdk_config_in(&account).await;
    let (stacks, keys) = (
        aws_sdk_cloudformation::Client::new(&config),
        aws_sdk_kms::Client::new(&config),
    );
    let state = |key_id: String| {
        let keys = keys.clone();
        async move {
            let described = keys.describe_key().key_id(key_id).send().await.unwrap();
            described
                .key_metadata()
                .unwrap()
                .key_state()
                .unwrap()
                .clone()
        }
    };
    // Every key enabled before: a state found afterwards was the cleanup's doing.
    let (leftover_stack_key, look_alike_stack_key) = (
        leftover.key_id.clone().unwrap(),
        look_alike.key_id.clone().unwrap(),
    );
    for key in [
        &leftover_stack_key,
        &leftover_key.id,
        &look_alike_stack_key,
        &look_alike_key.id,
    ] {
        assert_eq!(state(key.clone()).await, KeyState::Enabled, "{key}");
    }

    let cleanup = TestCommand::new(env!("CARGO_BIN_EXE_cleanup")).args(["--yes"]);
    let cleaned = in_account(cleanup, &account).success();
    let said = stderr(&cleaned);
    assert!(
        said.contains("deleted 1 stack(s), scheduled 2 key(s) for deletion"),
        "{said}"
    );
    assert!(
        said.contains(&format!("deleting stack {}", leftover.name)),
        "{said}"
    );
    for kept in [&look_alike.name, &look_alike_stack_key, &look_alike_key.id] {
        assert!(!said.contains(kept.as_str()), "{kept} was listed: {said}");
    }

    // The deletion runs on after the cleanup returns: wait for it.
    let status = |name: String| {
        let stacks = stacks.clone();
        async move {
            match stacks.describe_stacks().stack_name(name).send().await {
                Ok(found) => found.stacks()[0]
                    .stack_status()
                    .unwrap()
                    .as_str()
                    .to_owned(),
                Err(err) if format!("{err:?}").contains("does not exist") => "gone".to_owned(),
                Err(err) => panic!("{err:?}"),
            }
        }
    };
    let mut left = status(leftover.name.clone()).await;
    for _ in 0..120 {
        if left == "gone" || left == "DELETE_COMPLETE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        left = status(leftover.name.clone()).await;
    }
    assert!(left == "gone" || left == "DELETE_COMPLETE", "{left}");
    assert_eq!(state(leftover_stack_key).await, KeyState::PendingDeletion);
    assert_eq!(
        state(leftover_key.id.clone()).await,
        KeyState::PendingDeletion
    );
    assert_eq!(status(look_alike.name.clone()).await, "CREATE_COMPLETE");
    assert_eq!(state(look_alike_stack_key).await, KeyState::Enabled);
    assert_eq!(state(look_alike_key.id.clone()).await, KeyState::Enabled);
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
            .args(["--rpc-url", &pinned(&node)])
    };

    let refused = destroy().fails(1, "cannot be read (state PendingDeletion)");
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert!(stack_exists(&stack).await, "the stack was deleted");

    let forced = destroy().args(["--force", "--json"]).json();
    assert_eq!(forced["deleted"], true, "{forced}");
    assert!(!stack_exists(&stack).await);
}

#[tokio::test]
async fn schedule_deletion_refuses_keys_that_are_not_kms_eth_accounts() {
    let other = TestKey::ethereum(&kms().await).await;
    let refused = kms_eth(&[
        "key",
        "schedule-deletion",
        &other.id,
        "--days",
        "7",
        "--skip-balance-check",
        "--yes",
    ]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("is not a kms-eth key"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(key_state(&other.id).await, KeyState::Enabled);
}

#[tokio::test]
async fn destroy_needs_yes_without_a_terminal_and_refuses_a_funded_address() {
    let (guard, created) = deploy_test_account("funded", &[]);
    let stack = guard.name.clone();

    // No terminal (the test's stdin is not one) and no --yes: refused, nothing deleted.
    let refused = kms_eth(&["destroy", "--stack-name", &stack, "--skip-balance-check"]);
    assert_usage_error(&refused, &"destroy without --yes", "pass --yes");
    // The plan, with the key and its address, was shown before asking.
    assert!(
        stderr(&refused).contains("schedules KMS key"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains(created["address"].as_str().unwrap()),
        "{}",
        stderr(&refused)
    );
    assert!(stack_exists(&stack).await);

    // A balance at the address stops the destroy unless forced.
    let node = Anvil::start(std::time::Duration::from_secs(60)).unwrap();
    let address = created["address"].as_str().unwrap();
    kms_eth_harness::jsonrpc::call(
        node.url(),
        "anvil_setBalance",
        serde_json::json!([address, "0xde0b6b3a7640000"]),
    )
    .unwrap();
    let funded = kms_eth(&[
        "destroy",
        "--stack-name",
        &stack,
        "--yes",
        "--rpc-url",
        &pinned(&node),
    ]);
    assert_eq!(funded.status.code(), Some(1));
    assert!(
        stderr(&funded).contains("holds 1 ether (1000000000000000000 wei)"),
        "{}",
        stderr(&funded)
    );
    assert!(
        stack_exists(&stack).await,
        "a refused destroy deletes nothing"
    );

    let forced = kms_eth(&[
        "destroy",
        "--stack-name",
        &stack,
        "--yes",
        "--rpc-url",
        &pinned(&node),
        "--force",
    ]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(!stack_exists(&stack).await);
}

#[tokio::test]
async fn a_funds_check_on_a_node_of_another_chain_is_refused_and_a_node_without_a_chain_too() {
    let (key, _address) = account_key("other-chain").await;
    let node = anvil();
    // The user means chain 1; the node given answers for another chain, where the address
    // holds nothing, as the attack's node did.
    let schedule = |rpc_url: &str, extra: &[&str]| {
        let mut args = vec!["key", "schedule-deletion", &key.id, "--days", "7", "--yes"];
        args.extend(["--rpc-url", rpc_url]);
        args.extend(extra);
        kms_eth_command(&args)
    };
    let refused = schedule(&format!("1={}", node.url()), &[])
        .fails(1, &format!("answers chain id {}, not 1", node.chain_id()));
    assert!(
        stderr(&refused).contains("nothing was deleted"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);
    schedule(node.url(), &["--chain-id", "1"]).fails(1, "not 1 as given");
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);
    // A node whose chain is not said is refused before any call (usage, exit 2).
    let unpinned = schedule(node.url(), &[]).usage_error("which chain must it be");
    assert!(
        stderr(&unpinned).contains("CHAIN_ID=URL"),
        "{}",
        stderr(&unpinned)
    );
    assert_eq!(key_state(&key.id).await, KeyState::Enabled);
}
