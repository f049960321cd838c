//! Deploys that are cut off half-way: the `deploy` process killed while CloudFormation
//! creates the stack, a deploy that finds an earlier operation still running (held in
//! progress by a proxy in front of CloudFormation, since LocalStack finishes a create in
//! half a second), and LocalStack itself killed and started again in the middle of a
//! deploy. The next `deploy` must converge, and a stack must never end up with a second key.
//!
//! A first deploy stopped between `CreateChangeSet` and `ExecuteChangeSet` is made for real
//! (the change set created and never executed: the stack is in REVIEW_IN_PROGRESS), and so is
//! a failed update (an alias another key holds: CloudFormation's CreateAlias fails and the
//! stack ends in UPDATE_ROLLBACK_COMPLETE); the re-run of the deploy before it keeps the key
//! and the address. What LocalStack 2026.3's CloudFormation engine (v2) does after the failed
//! update, seen in its log and events, and why no later *update* of that stack can be shown
//! converging on it: its "rollback" runs the replacement's deferred deletion, so the stack's
//! old alias is deleted (DescribeStackResources lists no Alias; KMS has no alias/<stack>); the
//! stack keeps the failed update's parameters and template but the old outputs; and the
//! stack's resource record becomes the failed run's, which (as its executor's code reads)
//! lacks the resources the run never reached (SignerPolicy). Every later update of the stack then ends in UPDATE_ROLLBACK_COMPLETE
//! within milliseconds: back to the old alias, the old failure is replayed without a call to
//! KMS; to a third alias, the alias is made and then `KeyError: 'ResourceStatus'` (the
//! missing record) rolls it back; the failed alias again, once free, is "no changes". The
//! deploy without `--alias` finds the parameters it would write already there: "unchanged",
//! as on AWS, where the rollback restores the old parameters.
//!
//! LocalStack's community edition keeps no state across a restart (persistence is a paid
//! feature), so the restart test proves what a restart of an empty emulator shows: the
//! interrupted deploy fails with advice, and the next one starts over cleanly. Convergence
//! onto a stack that survived the interruption is what the other tests prove.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_kms::types::KeyState;
use kms_eth::target::LOCALSTACK_REGION;
use kms_eth_e2e::fault_proxy::FaultProxy;
use kms_eth_e2e::{as_strs, deploy_args, json_output, kms_through, run_id, stack_name, stderr};
use kms_eth_e2e::{kms_eth, kms_eth_binary, kms_eth_command, localstack_endpoint, xtask_binary};
use kms_eth_e2e::{localstack_kms, PrivateState, TestCommand, TestStack};
use kms_eth_harness::process::free_port;
use kms_eth_provisioner::ACCOUNT_TAG;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Starts `command` and returns it once a line of its stderr contains `marker` (the rest of
/// its stderr is collected in the background), or panics after `timeout`.
fn spawn_until(
    mut command: Command,
    marker: &'static str,
    timeout: Duration,
) -> (Child, mpsc::Receiver<String>) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let (seen_tx, seen) = mpsc::channel();
    let stream = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut told = false;
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if !told && line.contains(marker) {
                told = seen_tx.send(()).is_ok();
            }
            let _ = lines_tx.send(line);
        }
    });
    if seen.recv_timeout(timeout).is_err() {
        let _ = child.kill();
        let output: Vec<String> = lines.try_iter().collect();
        panic!(
            "no {marker:?} within {timeout:?}; stderr so far:\n{}",
            output.join("\n")
        );
    }
    (child, lines)
}

/// Waits for `child` (at most `timeout`) and returns its output, with the stderr lines the
/// reader thread collected.
fn finish(mut child: Child, lines: mpsc::Receiver<String>, timeout: Duration) -> Output {
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not finish within {timeout:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let stderr: Vec<String> = lines.iter().collect();
    Output {
        status,
        stdout,
        stderr: stderr.join("\n").into_bytes(),
    }
}

/// The keys in KMS that carry the account tag of `stack`, whatever their state.
async fn keys_of_stack(kms: &aws_sdk_kms::Client, stack: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut keys = kms.list_keys().into_paginator().items().send();
    while let Some(key) = keys.next().await {
        let key_id = key.unwrap().key_id().unwrap().to_owned();
        let Ok(tags) = kms.list_resource_tags().key_id(&key_id).send().await else {
            continue;
        };
        if tags
            .tags()
            .iter()
            .any(|t| t.tag_key() == ACCOUNT_TAG && t.tag_value() == stack)
        {
            found.push(key_id);
        }
    }
    found
}

#[tokio::test]
async fn a_deploy_killed_while_the_stack_is_created_is_finished_by_the_next_deploy_with_one_key() {
    let stack = stack_name("killed-deploy");
    let mut guard = TestStack::new(stack.clone());
    let flags = deploy_args(&stack);
    let command = kms_eth_command(&as_strs(&flags)).into_command();
    // The first stack event means CloudFormation has taken the change set and is creating.
    let (child, lines) = spawn_until(command, "CREATE_IN_PROGRESS", Duration::from_secs(120));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let killed = finish(child, lines, Duration::from_secs(10));
    // Killed by our signal, not finished before it arrived: the deploy really was cut off
    // between CloudFormation taking the change set and the report.
    assert_eq!(
        killed.status.signal(),
        Some(Signal::SIGKILL as i32),
        "the deploy ended on its own before it was killed: {}",
        stderr(&killed)
    );
    assert!(
        killed.stdout.is_empty(),
        "the killed deploy printed a report"
    );

    let redeployed = kms_eth(&as_strs(&flags));
    let result = json_output(&redeployed);
    guard.key_id = result["key_id"].as_str().map(str::to_owned);
    // The stack the killed deploy started is found and kept: not created a second time.
    // (LocalStack finishes a create in about half a second, so by now the stack is
    // complete; the wait for an operation in progress is tested with a held stack below.)
    assert_eq!(result["action"], "unchanged", "{result}");
    let keys = keys_of_stack(&kms_eth_e2e::kms().await, &stack).await;
    assert_eq!(keys, vec![result["key_id"].as_str().unwrap().to_owned()]);
    println!(
        "killed deploy: the next deploy said {} with {} key; its progress:\n{}",
        result["action"],
        keys.len(),
        stderr(&redeployed)
    );
}

/// The next deploy's wait for an operation still running, for real: the stack a killed
/// deploy left is shown as CREATE_IN_PROGRESS (and, as LocalStack shows a stack it creates,
/// without parameters) by a proxy in front of CloudFormation for a few seconds, and the
/// deploy must say so, wait it out polling CloudFormation, and then find the stack as it
/// wants it (no guard question about inputs it could not read, no change set run, the same
/// single key). Before the fix, the deploy read the inputs before waiting and stopped with
/// "signer principals: unknown -> ..." (exit 2).
// The proxy's tasks need a worker of their own: the test thread blocks on the commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_finds_the_stack_still_in_progress_waits_for_it_then_converges() {
    let proxy = FaultProxy::start(&localstack_endpoint()).await.unwrap();
    let through_proxy = |flags: &[String]| {
        TestCommand::new(kms_eth_binary())
            .args(flags)
            .args(["--endpoint-url", proxy.endpoint()])
            .args(["--region", LOCALSTACK_REGION])
    };
    let stack = stack_name("held-in-progress");
    let mut guard = TestStack::new(stack.clone());
    let flags = deploy_args(&stack);
    let command = through_proxy(&flags).into_command();
    let (child, lines) = spawn_until(command, "CREATE_IN_PROGRESS", Duration::from_secs(120));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    finish(child, lines, Duration::from_secs(10));

    let hold = Duration::from_secs(6);
    let executed_before = proxy.counts("ExecuteChangeSet").attempts();
    proxy.hold_stack_status(&stack, "CREATE_IN_PROGRESS", hold);
    let started = std::time::Instant::now();
    let redeployed = through_proxy(&flags).output();
    let waited = started.elapsed();
    let result = json_output(&redeployed);
    guard.key_id = result["key_id"].as_str().map(str::to_owned);
    let progress = stderr(&redeployed);
    assert!(
        progress.contains(&format!(
            "stack {stack} is CREATE_IN_PROGRESS (an earlier operation, perhaps an interrupted \
             deploy, is still running); waiting for it to finish"
        )),
        "{progress}"
    );
    assert!(
        waited >= hold,
        "the deploy went on after {waited:?}, before the operation finished: {progress}"
    );
    // It polled CloudFormation through the hold (not one long sleep) and saw it end.
    let described = proxy.counts("DescribeStacks");
    assert!(described.rewritten >= 2, "{described:?}");
    assert!(described.forwarded > described.rewritten, "{described:?}");
    assert_eq!(result["action"], "unchanged", "{result}");
    assert_eq!(
        proxy.counts("ExecuteChangeSet").attempts(),
        executed_before,
        "a change set was executed on a stack that already matched"
    );
    let keys = keys_of_stack(&localstack_kms().await, &stack).await;
    assert_eq!(keys, vec![result["key_id"].as_str().unwrap().to_owned()]);
    println!("held in progress for {hold:?}: the deploy waited {waited:.1?}; {described:?}");
}

/// A LocalStack of its own, on its own port and state folder, so that killing it leaves
/// the one every other test uses alone. Dropping it stops it.
struct PrivateLocalStack {
    state: PrivateState,
    port: u16,
}

impl PrivateLocalStack {
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `kms-eth <args>` (`xtask`: `cargo xtask <args>`) against this private instance.
    fn command(&self, args: &[&str]) -> TestCommand {
        let binary = match args.first() {
            Some(&"localstack") => xtask_binary(),
            _ => kms_eth_binary(),
        };
        // The target of a deploy is this LocalStack, never AWS_ENDPOINT_URL's.
        TestCommand::new(binary).args(args).state(&self.state)
    }

    fn up(&self) {
        let port = self.port.to_string();
        self.command(&["localstack", "up", "--port", &port])
            .success();
    }

    /// Kills LocalStack's whole process group at once, as a crash or power loss would.
    fn kill(&self) {
        let pid = self.state.recorded_pid("localstack") as i32;
        killpg(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !kms_eth_harness::process::port_is_free(self.port) {
            assert!(
                std::time::Instant::now() < deadline,
                "LocalStack survived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test]
async fn localstack_killed_mid_deploy_fails_with_advice_and_after_a_restart_deploy_starts_over_with_one_key(
) {
    let localstack = PrivateLocalStack {
        state: PrivateState::new(
            kms_eth_e2e::scratch_dir(),
            &format!("kms-eth-restart-{}", run_id()),
        ),
        port: free_port().unwrap(),
    };
    localstack.up();
    let endpoint = localstack.endpoint();
    let stack = stack_name("localstack-restart");
    let mut flags = deploy_args(&stack);
    flags.extend(["--endpoint-url".into(), endpoint.clone()]);
    flags.extend(["--region".into(), LOCALSTACK_REGION.into()]);

    let command = localstack.command(&as_strs(&flags)).into_command();
    let (child, lines) = spawn_until(command, "CREATE_IN_PROGRESS", Duration::from_secs(120));
    localstack.kill();
    let interrupted = finish(child, lines, Duration::from_secs(120));
    let message = stderr(&interrupted);
    assert_eq!(
        interrupted.status.code(),
        Some(1),
        "the deploy was not interrupted: {message}"
    );
    assert!(
        message.contains("cannot reach the AWS endpoint"),
        "{message}"
    );
    assert!(message.contains("run the same command again"), "{message}");

    localstack.up();
    let redeployed = localstack.command(&as_strs(&flags)).output();
    let result = json_output(&redeployed);
    // The restarted LocalStack is empty (no persistence in the community edition): the
    // deploy must create the account afresh rather than trip over the lost one.
    assert_eq!(result["action"], "created", "{result}");
    let kms = kms_through(&endpoint, "interrupted-deploy").await;
    let keys = keys_of_stack(&kms, &stack).await;
    assert_eq!(keys, vec![result["key_id"].as_str().unwrap().to_owned()]);
    println!(
        "LocalStack killed mid-deploy: the deploy failed with {:?}; after a restart the next \
         deploy said {} with {} key",
        message.lines().last().unwrap_or_default(),
        result["action"],
        keys.len()
    );
}

/// The stack's status as CloudFormation reports it.
async fn status_of(stack: &str) -> String {
    let described = kms_eth_e2e::cloudformation()
        .await
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .unwrap();
    described.stacks()[0]
        .stack_status()
        .map(|s| s.as_str().to_owned())
        .unwrap_or_default()
}

/// A first deploy stopped between `CreateChangeSet` and `ExecuteChangeSet` (what a kill at
/// that moment leaves: the change set made by kms-eth's own template and parameters, never
/// executed) leaves a stack really in REVIEW_IN_PROGRESS; the next deploy creates it, with
/// one key, and a third is a no-op with the same address.
#[tokio::test]
async fn a_deploy_stopped_before_its_change_set_ran_leaves_review_in_progress_and_the_next_converges(
) {
    let mut guard = TestStack::new(stack_name("review-in-progress"));
    let stack = guard.name.clone();
    let mut spec = kms_eth_provisioner::AccountSpec::new(&stack, "000000000000");
    spec.removal_policy = kms_eth_provisioner::RemovalPolicy::Destroy;
    spec.pending_window_days = 7;
    let cloudformation = kms_eth_e2e::cloudformation().await;
    cloudformation
        .create_change_set()
        .stack_name(&stack)
        .change_set_name("kms-eth-interrupted")
        .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
        .template_body(spec.template_body())
        .set_parameters(Some(kms_eth_provisioner::stack_parameters(&spec)))
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityIam)
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(&stack).await, "REVIEW_IN_PROGRESS");
    assert!(keys_of_stack(&localstack_kms().await, &stack)
        .await
        .is_empty());

    let created = json_output(&kms_eth(&as_strs(&deploy_args(&stack))));
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    assert_eq!(created["action"], "created", "{created}");
    assert_eq!(status_of(&stack).await, "CREATE_COMPLETE");
    let again = json_output(&kms_eth(&as_strs(&deploy_args(&stack))));
    assert_eq!(again["action"], "unchanged", "{again}");
    assert_eq!(again["address"], created["address"]);
    assert_eq!(
        keys_of_stack(&localstack_kms().await, &stack).await,
        [created["key_id"].as_str().unwrap().to_owned()]
    );
}

/// A failed update for real: the deploy asks for an alias another key holds, CloudFormation's
/// CreateAlias refuses it, and the stack ends in UPDATE_ROLLBACK_COMPLETE. The deploy says so
/// with CloudFormation's reason (exit 1); the stack keeps its one key, enabled, and the same
/// address; and the re-run of the deploy before the failed one (no `--alias`) converges on
/// it: "unchanged", the same key and address. (Why no later update is shown converging: the
/// module's comment.)
#[tokio::test]
async fn a_failed_update_leaves_update_rollback_complete_and_the_rerun_keeps_the_key_and_address() {
    let (mut guard, created) = kms_eth_e2e::deploy_test_account("update-rollback", &[]);
    let stack = guard.name.clone();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    guard.key_id = Some(key_id.clone());
    let kms = kms_eth_e2e::kms().await;
    let other = kms_eth_e2e::TestKey::ethereum(&kms).await;
    let taken = kms_eth_e2e::TestAlias::create(&kms, "rollback-taken", &other).await;

    let mut flags = deploy_args(&stack);
    flags.extend(["--alias".to_owned(), taken.name.clone()]);
    let failed = kms_eth(&as_strs(&flags));
    let message = stderr(&failed);
    assert_eq!(failed.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!("stack {stack} ended in UPDATE_ROLLBACK_COMPLETE")),
        "{message}"
    );
    assert!(message.contains("already exists"), "{message}");
    assert!(failed.stdout.is_empty(), "a failed deploy printed a report");
    assert_eq!(status_of(&stack).await, "UPDATE_ROLLBACK_COMPLETE");
    assert_eq!(keys_of_stack(&kms, &stack).await, vec![key_id.clone()]);
    assert_eq!(kms_eth_e2e::key_state(&key_id).await, KeyState::Enabled);
    let status = json_output(&kms_eth(&["status", "--stack-name", &stack, "--json"]));
    assert_eq!(status["address"], created["address"], "{status}");

    let rerun = json_output(&kms_eth(&as_strs(&deploy_args(&stack))));
    assert_eq!(rerun["action"], "unchanged", "{rerun}");
    assert_eq!(rerun["key_id"], created["key_id"], "{rerun}");
    assert_eq!(rerun["address"], created["address"], "{rerun}");
    assert_eq!(keys_of_stack(&kms, &stack).await, vec![key_id.clone()]);
    assert_eq!(
        kms.describe_key()
            .key_id(&other.id)
            .send()
            .await
            .unwrap()
            .key_metadata()
            .and_then(|m| m.key_state().cloned()),
        Some(KeyState::Enabled),
        "the other key's alias stays its own"
    );
    let alias_of_other = kms.list_aliases().key_id(&other.id).send().await.unwrap();
    assert!(
        alias_of_other
            .aliases()
            .iter()
            .any(|a| a.alias_name() == Some(&taken.name)),
        "{alias_of_other:?}"
    );
}
