//! Which AWS account, Region and credentials a command uses, end to end: `--profile` only
//! with `--target aws` (and `--region` as LocalStack's Region), credentials and a profile in
//! the environment that must not take commands off LocalStack, a profile that does not exist
//! refused rather than replaced by the environment's keys, and credentials that never appear
//! in any command's output, JSON or error. (`cargo xtask test` also scans the whole run's
//! output and the harness's logs and state for the tests' private keys and canary
//! credentials afterwards.)

use std::process::Output;

use kms_eth::target::LOCALSTACK_REGION;
use kms_eth_e2e::{
    as_strs, deploy_args, json_output, kms_eth_binary, localstack_endpoint, stack_name,
    transfer_flags, xtask_binary, TestCommand, TestKey, TestStack,
};
use kms_eth_harness::test_env::{CANARY_SECRET_ACCESS_KEY, CANARY_SESSION_TOKEN};

/// An endpoint where nothing answers: a command that gets as far as calling it fails with
/// "cannot reach", so a usage error there proves that nothing was called.
const NOWHERE: &str = "http://127.0.0.1:9";

/// An address no test key has.
const SOMEONE_ELSE: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

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
    let empty =
        kms_eth_e2e::scratch_dir().join(format!("kms-eth-no-profiles-{}", std::process::id()));
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

/// Runs the CLI through the standard AWS credential chain (`--target aws`) against the
/// tests' LocalStack, with canary credentials in the environment.
fn with_canary_credentials(args: &[&str]) -> Output {
    let endpoint = localstack_endpoint();
    canary(TestCommand::new(kms_eth_binary()).args(args))
        .args(["--target", "aws", "--endpoint-url", &endpoint])
        .args(["--region", LOCALSTACK_REGION])
        .env_remove("AWS_PROFILE")
        .output()
}

/// The command with canary credentials in its environment.
fn canary(command: TestCommand) -> TestCommand {
    command
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", CANARY_SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", CANARY_SESSION_TOKEN)
}

#[tokio::test]
async fn no_command_prints_credentials_in_its_output_json_or_errors() {
    let mut guard = TestStack::new(stack_name("canary"));
    let deployed = with_canary_credentials(&as_strs(&deploy_args(&guard.name)));
    let created = json_output(&deployed);
    guard.key_id = created["key_id"].as_str().map(str::to_owned);
    let stack = guard.name.clone();
    let recipient = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    let mut outputs = vec![("deploy --json", deployed)];
    let local_transfer = transfer_flags("31337", recipient, "0");
    let mainnet_transfer = transfer_flags("1", recipient, "0");
    let runs: Vec<(&str, Vec<&str>)> = vec![
        (
            "status --json",
            vec!["status", "--stack-name", &stack, "--json"],
        ),
        (
            "sign --json",
            [
                &["sign", "--stack-name", &stack, "--nonce", "0", "--json"][..],
                &as_strs(&local_transfer),
            ]
            .concat(),
        ),
        (
            "sign-message --json",
            vec!["sign-message", "--stack-name", &stack, "--json", "hello"],
        ),
        ("key list --json", vec!["key", "list", "--json"]),
        // Failures print the SDK's whole error chain: it must not carry credentials either.
        (
            "status of a missing key",
            vec!["status", "--key-id", "alias/kms-eth-no-such-key", "--json"],
        ),
        (
            "sign with a missing stack",
            [
                &[
                    "sign",
                    "--stack-name",
                    "kms-eth-no-such-stack",
                    "--nonce",
                    "0",
                ][..],
                &as_strs(&mainnet_transfer),
            ]
            .concat(),
        ),
    ];
    for (name, args) in runs {
        outputs.push((name, with_canary_credentials(&args)));
    }
    // One call to an endpoint that does not answer: connection errors are printed in full.
    outputs.push((
        "an unreachable endpoint",
        canary(TestCommand::new(kms_eth_binary()))
            .args(["status", "--stack-name", &stack, "--target", "aws"])
            .args([
                "--endpoint-url",
                "http://127.0.0.1:9",
                "--region",
                LOCALSTACK_REGION,
            ])
            .output(),
    ));

    let mut succeeded = 0;
    for (name, output) in &outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!text.is_empty(), "{name} printed nothing");
        for secret in [CANARY_SECRET_ACCESS_KEY, CANARY_SESSION_TOKEN] {
            // The assertion message must not repeat the secret's context into the log.
            assert!(
                !text.contains(secret),
                "{name} printed a credential (output withheld)"
            );
        }
        succeeded += usize::from(output.status.success());
    }
    // The runs really used the canary credentials: the five good commands succeeded and the
    // three bad ones failed.
    assert_eq!(succeeded, 5, "{outputs:?}");
}
