//! `deploy --with-lambda` against real LocalStack: the refusal where LocalStack cannot run a
//! function (no Docker engine here), with nothing created, and the asset bucket on LocalStack's
//! S3 (which needs no Docker): made once per account and region, set up, reused, the zip
//! content-addressed and a second upload of the same bytes a no-op. The deploy itself with
//! `--target aws` cannot run on these machines (see README).

use std::hash::{Hash, Hasher};

use aws_credential_types::Credentials;
use kms_eth_e2e::{localstack_endpoint, run_id, stack_exists, stack_name, TestCommand};
use kms_eth_provisioner::{bucket_name, object_key, AssetStore, Progress};

/// A zip's first bytes and some content: the product only checks the zip's signature.
fn fake_zip(content: &str) -> Vec<u8> {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(content.as_bytes());
    zip
}

/// An AWS account of LocalStack's of this run alone (a 12-digit access key id chooses the
/// account), so that "the first upload makes the bucket" holds on every run.
fn fresh_account(label: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (run_id(), label).hash(&mut hasher);
    format!("9{:011}", hasher.finish() % 100_000_000_000)
}

/// The asset store of `account` in `region` on the harness's LocalStack.
fn store(account: &str, region: &str) -> AssetStore {
    let credentials = Credentials::new(account, "test", None, None, "localstack-account");
    AssetStore::new(account, region, credentials, Some(localstack_endpoint())).unwrap()
}

#[tokio::test]
async fn with_lambda_on_localstack_without_docker_is_refused_before_any_change() {
    // These machines have no Docker engine; if one answers, this test does not describe it.
    assert!(
        std::env::var_os("DOCKER_HOST").is_none()
            && std::os::unix::net::UnixStream::connect("/var/run/docker.sock").is_err(),
        "a Docker engine answers here: LocalStack could run the function"
    );
    let dir = kms_eth_e2e::scratch_dir().join(format!("kms-eth-lambda-refusal-{}", run_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zip = dir.join("bootstrap.zip");
    std::fs::write(&zip, fake_zip("refused")).unwrap();
    let account = fresh_account("refusal");
    let stack = stack_name("lambda-refused");
    let output = TestCommand::new(kms_eth_e2e::kms_eth_binary())
        .args([
            "deploy",
            "--stack-name",
            &stack,
            "--with-lambda",
            "--lambda-unrestricted",
        ])
        .args(["--lambda-zip", zip.to_str().unwrap()])
        .args([
            "--endpoint-url",
            &localstack_endpoint(),
            "--region",
            "us-east-1",
        ])
        .env("AWS_ACCESS_KEY_ID", &account)
        .output();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    for said in [
        "LocalStack runs Lambda functions only in Docker",
        "Nothing was changed",
        "cargo xtask lambda invoke",
        "--target aws",
    ] {
        assert!(stderr.contains(said), "{said:?} not in {stderr}");
    }
    assert!(output.stdout.is_empty());
    // Nothing was made: no stack, and no asset bucket in the account.
    assert!(!stack_exists(&stack).await);
    let (status, _) = store(&account, "us-east-1")
        .read("/?versioning")
        .await
        .unwrap();
    assert_eq!(status, 404, "the asset bucket of {account} exists");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_asset_bucket_is_made_once_set_up_and_reused_and_the_zip_is_content_addressed() {
    // Not us-east-1: every other region needs its location given when the bucket is made.
    let (account, region) = (fresh_account("assets"), "eu-west-1");
    let store = store(&account, region);
    assert_eq!(store.bucket(), bucket_name(&account, region));
    let mut notes = Vec::new();
    let mut progress = |p: Progress| {
        if let Progress::Note(note) = p {
            notes.push(note);
        }
    };

    let zip = fake_zip("first build");
    let first = store.upload(&zip, &mut progress).await.unwrap();
    assert!(first.bucket_created && first.uploaded, "{first:?}");
    assert_eq!(first.key, object_key(&zip));
    let digest = first
        .key
        .strip_prefix("kms-eth-lambda/")
        .and_then(|k| k.strip_suffix(".zip"))
        .unwrap();
    assert!(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()));

    // The bucket is set up: versioning on, public access blocked, encrypted by default.
    let read = |path: &'static str| {
        let store = &store;
        async move {
            let (status, body) = store.read(path).await.unwrap();
            assert_eq!(status, 200, "GET {path}: {body}");
            body
        }
    };
    assert!(read("/?versioning")
        .await
        .contains("<Status>Enabled</Status>"));
    let block = read("/?publicAccessBlock").await;
    for setting in [
        "BlockPublicAcls",
        "IgnorePublicAcls",
        "BlockPublicPolicy",
        "RestrictPublicBuckets",
    ] {
        assert!(
            block.contains(&format!("<{setting}>true</{setting}>")),
            "{setting}: {block}"
        );
    }
    assert!(read("/?encryption").await.contains("AES256"));
    // The object holds the zip's bytes.
    let (status, body) = store.read(&format!("/{}", first.key)).await.unwrap();
    assert_eq!((status, body.into_bytes()), (200, zip.clone()));

    // The same bytes again: the bucket is reused and nothing is written.
    let again = store.upload(&zip, &mut progress).await.unwrap();
    assert!(!again.bucket_created && !again.uploaded, "{again:?}");
    assert_eq!(again.key, first.key);

    // New code: the same bucket, a new key beside the old one.
    let rebuilt = fake_zip("second build");
    let second = store.upload(&rebuilt, &mut progress).await.unwrap();
    assert!(!second.bucket_created && second.uploaded, "{second:?}");
    assert_ne!(second.key, first.key);
    assert_eq!(second.bucket, first.bucket);

    let created = notes
        .iter()
        .filter(|n| n.contains("creating the asset bucket"))
        .count();
    let uploads = notes.iter().filter(|n| n.contains("uploading")).count();
    assert_eq!((created, uploads), (1, 2), "{notes:?}");
}
