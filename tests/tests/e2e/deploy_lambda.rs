//! `deploy --with-lambda` against real LocalStack: the refusal where LocalStack cannot run a
//! function (no Docker engine: the test hides any engine from the command), with nothing
//! created, and the asset bucket on LocalStack's S3 (which needs no Docker): made once per
//! account and region, set up, reused, the zip content-addressed, a second upload of the same
//! bytes a no-op, a planted object under the zip's key refused, the object version pinned, and
//! a bucket opened by someone else repaired. The deploy itself cannot run here: the tests'
//! LocalStack runs no Lambda service (see README).

use aws_credential_types::Credentials;
use kms_eth_e2e::{
    localstack_endpoint, own_account, run_id, stack_exists, stack_name, TestCommand,
};
use kms_eth_provisioner::{bucket_name, object_key, AssetStore, Progress};

/// A zip's first bytes and some content: the product only checks the zip's signature.
fn fake_zip(content: &str) -> Vec<u8> {
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend_from_slice(content.as_bytes());
    zip
}

/// The asset store of `account` in `region` on the harness's LocalStack.
fn store(account: &str, region: &str) -> AssetStore {
    let credentials = Credentials::new(account, "test", None, None, "localstack-account");
    let deployer = format!("arn:aws:iam::{account}:root");
    AssetStore::new(
        account,
        region,
        &deployer,
        credentials,
        Some(localstack_endpoint()),
    )
    .unwrap()
}

#[tokio::test]
async fn with_lambda_on_localstack_without_docker_is_refused_before_any_change() {
    // The command is shown no engine (DOCKER_HOST names a socket nothing listens on), so the
    // test means the same on a machine where Docker answers.
    let dir = kms_eth_e2e::scratch_dir().join(format!("kms-eth-lambda-refusal-{}", run_id()));
    std::fs::create_dir_all(&dir).unwrap();
    let zip = dir.join("bootstrap.zip");
    std::fs::write(&zip, fake_zip("refused")).unwrap();
    let account = own_account("refusal");
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
        .env(
            "DOCKER_HOST",
            format!("unix://{}", dir.join("no-docker.sock").display()),
        )
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
    let (account, region) = (own_account("assets"), "eu-west-1");
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

#[tokio::test]
async fn a_planted_object_under_the_zips_key_is_refused_and_the_version_is_pinned() {
    let (account, region) = (own_account("planted"), "us-east-1");
    let store = store(&account, region);
    let good = fake_zip("the function kms-eth built");
    let key = object_key(&good);
    let mut progress = |_: Progress| {};
    // The attacker got there first: their bytes under the good zip's content address, in a
    // bucket made as kms-eth makes it.
    store
        .upload(&fake_zip("unrelated"), &mut progress)
        .await
        .unwrap();
    let planted = fake_zip("the attacker's bootstrap");
    let (status, body) = store
        .request("PUT", &format!("/{key}"), planted.clone())
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let err = store
        .upload(&good, &mut progress)
        .await
        .unwrap_err()
        .to_string();
    for said in [
        "holds other bytes",
        &key,
        "someone other than kms-eth wrote there",
    ] {
        assert!(err.contains(said), "{said:?} not in {err}");
    }
    // The object is still the attacker's: nothing was deployed or overwritten.
    let (_, still) = store.read(&format!("/{key}")).await.unwrap();
    assert_eq!(still.into_bytes(), planted);

    // Where kms-eth uploaded, the version it pins holds its bytes even after someone writes
    // over the key.
    let (account, region) = (own_account("pinned"), "us-east-1");
    let store = self::store(&account, region);
    let asset = store.upload(&good, &mut progress).await.unwrap();
    assert!(asset.uploaded && !asset.version.is_empty(), "{asset:?}");
    let (status, _) = store
        .request("PUT", &format!("/{key}"), planted.clone())
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, pinned) = store
        .read(&format!("/{key}?versionId={}", asset.version))
        .await
        .unwrap();
    assert_eq!((status, pinned.into_bytes()), (200, good.clone()));
    // And the next deploy refuses the key's new bytes instead of pinning them.
    let err = store
        .upload(&good, &mut progress)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("holds other bytes"), "{err}");
}

#[tokio::test]
async fn a_bucket_opened_by_someone_else_is_repaired_before_new_code_goes_in() {
    let (account, region) = (own_account("opened"), "us-east-1");
    let store = store(&account, region);
    let mut progress = |_: Progress| {};
    store
        .upload(&fake_zip("first"), &mut progress)
        .await
        .unwrap();
    // Opened as the attack opened it: public access allowed, no encryption, ACLs back on,
    // and a bucket policy that lets another account write.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::222222222222:root"}},"Action":"s3:PutObject","Resource":"arn:aws:s3:::{}/*"}}]}}"#,
        store.bucket()
    );
    for (method, path, body) in [
        ("DELETE", "/?publicAccessBlock", String::new()),
        ("DELETE", "/?encryption", String::new()),
        (
            "PUT",
            "/?ownershipControls",
            "<OwnershipControls xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Rule>\
             <ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>"
                .to_owned(),
        ),
        ("PUT", "/?policy", policy),
    ] {
        let (status, answer) = store
            .request(method, path, body.into_bytes())
            .await
            .unwrap();
        assert!(
            matches!(status, 200 | 204),
            "{method} {path}: {status} {answer}"
        );
    }
    let mut warnings = Vec::new();
    let mut progress = |p: Progress| {
        if let Progress::Warning(w) = p {
            warnings.push(w);
        }
    };
    let asset = store
        .upload(&fake_zip("second"), &mut progress)
        .await
        .unwrap();
    assert!(asset.uploaded);
    for what in [
        "public access block",
        "default encryption",
        "object ownership",
        "bucket policy",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(what)),
            "{what} not repaired: {warnings:?}"
        );
    }
    assert_eq!(warnings.len(), 4, "{warnings:?}");
    // Read back: every setting is kms-eth's again, the other account named nowhere.
    let (_, block) = store.read("/?publicAccessBlock").await.unwrap();
    assert!(
        block.contains("<RestrictPublicBuckets>true</RestrictPublicBuckets>"),
        "{block}"
    );
    let (_, encryption) = store.read("/?encryption").await.unwrap();
    assert!(encryption.contains("AES256"), "{encryption}");
    let (_, ownership) = store.read("/?ownershipControls").await.unwrap();
    assert!(ownership.contains("BucketOwnerEnforced"), "{ownership}");
    let (_, policy) = store.read("/?policy").await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap();
    let text = policy.to_string();
    assert!(!text.contains("222222222222"), "{text}");
    let statements = policy["Statement"].as_array().unwrap();
    assert!(statements.iter().all(|s| s["Effect"] == "Deny"), "{text}");
    assert!(text.contains("aws:SecureTransport"), "{text}");
    assert_eq!(
        statements[1]["Condition"]["ArnNotLike"]["aws:PrincipalArn"],
        format!("arn:aws:iam::{account}:root")
    );
    // A bucket as kms-eth left it is checked without a warning.
    warnings.clear();
    let mut progress = |p: Progress| {
        if let Progress::Warning(w) = p {
            warnings.push(w);
        }
    };
    store
        .upload(&fake_zip("second"), &mut progress)
        .await
        .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
}
