//! `kms-eth-bench`: the benchmarks of `cargo xtask bench` past the build and the start of
//! LocalStack. Against a running LocalStack (and an anvil it starts), it measures signing
//! throughput side by side (raw SDK, kms-eth, alloy), counts the KMS calls of one signer and
//! times `deploy` and `destroy` against bare CloudFormation; it reads criterion's figures of
//! the local overhead, writes the whole report as JSON and prints it as a table. It exits
//! non-zero if the call counts are not exactly one GetPublicKey and one Sign per signature,
//! or if a send of the sends or replicas benchmark was not mined in nonce order. It also
//! times a multi-Region key's failover from a Region cut off to its replica. `--only sends`
//! runs that benchmark alone (one account's `eth_sendTransaction` with the node 20 ms away),
//! `--only replicas` the same sends through three replicas on one store against one
//! service.

mod alloy_side;
mod calls;
mod delay_proxy;
mod failover;
mod fleet;
mod interleave;
mod local_overhead;
mod machine;
mod replicas;
mod report;
mod sends;
mod service;
mod stacks;
mod stats;
mod table;
mod throughput;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use aws_sdk_kms::types::{KeySpec, KeyUsageType, Tag};
use clap::Parser;
use kms_eth::target::Target;
use kms_eth_harness::anvil::Anvil;
use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_harness::TEST_TAG;
use kms_eth_signer::{Address, Eip1559Tx, KmsSigner, SignedTransaction, Transaction, U256};
use serde_json::json;

use crate::alloy_side::AlloySide;
use crate::report::{AnvilCheck, Network, Results};
use crate::throughput::Subjects;

/// Measures kms-eth against a raw SDK loop and alloy's AWS KMS signer on one LocalStack,
/// and reports every benchmark of the run. Normally run by `cargo xtask bench`, which builds
/// everything, runs criterion and starts LocalStack first.
#[derive(Debug, Parser)]
struct Args {
    /// The LocalStack endpoint, for example http://127.0.0.1:4566.
    #[arg(long)]
    endpoint_url: String,
    /// The region.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Signatures per variant, per concurrency, per round (`cargo xtask bench` passes its
    /// own default, 3000).
    #[arg(short = 'n', long, default_value_t = 3000)]
    signatures: usize,
    /// Rounds, the variants taking turns slice by slice in each.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Concurrencies to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    concurrency: Vec<usize>,
    /// Signatures per variant before anything is timed.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Signatures made by the signer whose KMS calls are counted.
    #[arg(long, default_value_t = 100)]
    counted: usize,
    /// The built `kms-eth` binary whose deploy and destroy are timed; without it, the
    /// stack benchmark is skipped.
    #[arg(long)]
    kms_eth_bin: Option<PathBuf>,
    /// LocalStack's process id, to pin it to its own CPU during the service benchmark.
    #[arg(long)]
    localstack_pid: Option<u32>,
    /// Rounds of deploy/destroy (one CLI and one raw stack each).
    #[arg(long, default_value_t = 5)]
    stack_rounds: usize,
    /// criterion's output folder (its `CRITERION_HOME`) after `signer/benches/local_overhead.rs`
    /// ran; without it, the report has no local overhead.
    #[arg(long)]
    criterion_dir: Option<PathBuf>,
    /// The cargo profile the benchmarks were built with, recorded in the report.
    #[arg(long)]
    profile: String,
    /// Where to write the JSON report.
    #[arg(long)]
    json: PathBuf,
    /// Run one benchmark alone: `sends` (one account's eth_sendTransaction against its
    /// eth_signTransaction through kms-eth serve, the node 20 ms away) or `replicas` (the
    /// same sends through three replicas on one store against one service without a store);
    /// needs --kms-eth-bin.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Requests per variant, per concurrency, per round of the sends and replicas benchmarks
    /// (each send is a transaction mined on anvil).
    #[arg(long, default_value_t = 300)]
    sends: usize,
    /// Rounds of the failover benchmark (a multi-Region key's first Region cut off, the
    /// signature that moves on to the second timed).
    #[arg(long, default_value_t = 5)]
    failover_rounds: usize,
}

/// The benchmarks that can be run alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Only {
    Sends,
    Replicas,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.signatures >= 2,
        "-n must be at least 2 (the node check sends transactions 0 and 1)"
    );
    ensure!(!args.concurrency.is_empty(), "--concurrency names none");
    // A stale report must never pass for this run's, whatever makes the run fail.
    remove_stale(&args.json)?;
    // criterion's figures first: a missing one fails now, not after minutes of signing.
    let local_overhead = args
        .criterion_dir
        .as_deref()
        .map(local_overhead::read)
        .transpose()
        .context("reading criterion's estimates of the local overhead")?;
    let anvil = Anvil::start(Duration::from_secs(60)).context("starting anvil")?;
    eprintln!(
        "[bench] anvil at {} (chain id {})",
        anvil.url(),
        anvil.chain_id()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // Described before anything runs: the service benchmark pins this process to a part of
    // the machine, which would then look smaller than it is.
    let machine = machine::describe(&args.profile);
    if let Some(only) = args.only {
        let (sends, replicas) =
            runtime.block_on(alone(&args, only, anvil.url(), anvil.chain_id()))?;
        let results = report::Alone {
            command: command_line(&args),
            machine,
            sends,
            replicas,
        };
        results.write(&args.json)?;
        print(&table::render_alone(&results));
        print(&format!("JSON: {}", args.json.display()));
        return all_mined(results.sends.as_ref(), results.replicas.as_ref());
    }
    let network = runtime.block_on(run(&args, anvil.url(), anvil.chain_id()))?;
    let results = Results {
        command: command_line(&args),
        machine,
        local_overhead,
        network,
    };
    // The report is written and shown before failing on wrong call counts, so that the
    // figures of a failed run can be looked at.
    results.write(&args.json)?;
    print(&table::render(&results));
    print(&format!("JSON: {}", args.json.display()));
    let calls = &results.network.calls;
    if !calls.kms_eth_as_required {
        bail!(
            "KMS calls of one KmsSigner for {} signatures were {:?}, not exactly 1 GetPublicKey + {} Sign (and no DescribeKey)",
            calls.signatures,
            calls.kms_eth.operations,
            calls.signatures
        );
    }
    all_mined(
        results.network.sends.as_ref(),
        results.network.replicas.as_ref(),
    )
}

/// Fails if a send of the sends or the replicas benchmark was not mined, or the nonces were
/// not consecutive.
fn all_mined(
    sends: Option<&sends::SendsReport>,
    replicas: Option<&replicas::ReplicasReport>,
) -> Result<()> {
    let problems = [
        ("sends", sends.and_then(|sends| sends.problem.as_ref())),
        ("replicas", replicas.and_then(|r| r.problem.as_ref())),
    ];
    for (what, problem) in problems {
        if let Some(problem) = problem {
            bail!("the {what} benchmark's transactions on anvil: {problem}");
        }
    }
    Ok(())
}

/// Removes the report an earlier run left at `path`, if any.
fn remove_stale(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing the earlier report {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The `cargo xtask bench` command that reproduces this run.
fn command_line(args: &Args) -> String {
    let concurrency = args
        .concurrency
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let only = match args.only {
        Some(Only::Sends) => format!(" --only sends --sends {}", args.sends),
        Some(Only::Replicas) => format!(" --only replicas --sends {}", args.sends),
        None => String::new(),
    };
    format!(
        "cargo xtask bench -n {} --rounds {} --concurrency {concurrency} --stack-rounds {}{only}",
        args.signatures, args.rounds, args.stack_rounds
    )
}

/// Prints `text` as a line on stdout. A closed stdout (`cargo xtask bench | head`) is not a
/// failure of the benchmarks: the report is in the JSON, and the exit code must still say
/// whether the call counts were right.
fn print(text: &str) {
    let _ = writeln!(std::io::stdout(), "{text}");
}

async fn run(args: &Args, rpc_url: &str, chain_id: u64) -> Result<Network> {
    with_key(args, async |config, client, key_arn, run_id| {
        measure(args, config, client, key_arn, rpc_url, chain_id, run_id).await
    })
    .await
}

/// The sends or the replicas benchmark alone, on a key of its own.
async fn alone(
    args: &Args,
    only: Only,
    anvil_url: &str,
    chain_id: u64,
) -> Result<(Option<sends::SendsReport>, Option<replicas::ReplicasReport>)> {
    let kms_eth_bin = args
        .kms_eth_bin
        .as_deref()
        .context("--only needs --kms-eth-bin (the service it measures)")?;
    with_key(args, async |_, client, key_arn, _| {
        let signer = KmsSigner::new(client.clone(), key_arn)
            .await
            .context("building kms-eth's KmsSigner")?;
        let account = sends::Account {
            kms_eth: kms_eth_bin,
            endpoint: &args.endpoint_url,
            region: &args.region,
            anvil_url,
            chain_id,
            key_arn,
            address: &signer.address().to_string(),
        };
        sends_and_replicas(args, &account, Some(only)).await
    })
    .await
}

/// The sends benchmark (`eth_sendTransaction` against `eth_signTransaction`), then or
/// alone the replicas benchmark (the same sends through three replicas on one store against
/// one service without a store), from `account`.
async fn sends_and_replicas(
    args: &Args,
    account: &sends::Account<'_>,
    only: Option<Only>,
) -> Result<(Option<sends::SendsReport>, Option<replicas::ReplicasReport>)> {
    let sends = match only {
        None | Some(Only::Sends) => {
            let txs = transactions(args.sends, account.chain_id);
            Some(sends::measure(account, &txs, &args.concurrency, args.rounds).await?)
        }
        Some(Only::Replicas) => None,
    };
    let replicas = match only {
        None | Some(Only::Replicas) => {
            Some(replicas::measure(account, args.sends, &args.concurrency, args.rounds).await?)
        }
        Some(Only::Sends) => None,
    };
    Ok((sends, replicas))
}

/// Runs `body` with a benchmark key created for the run, scheduled for deletion afterwards
/// whatever `body` did.
async fn with_key<T>(
    args: &Args,
    body: impl AsyncFnOnce(&aws_config::SdkConfig, &aws_sdk_kms::Client, &str, &str) -> Result<T>,
) -> Result<T> {
    let target = Target::LocalStack {
        endpoint: args.endpoint_url.clone(),
        region: args.region.clone(),
    };
    let config = target.sdk_config().await;
    let client = aws_sdk_kms::Client::new(&config);
    let run_id = kms_eth_harness::test_env::new_run_id();
    let key = client
        .create_key()
        .key_spec(KeySpec::EccSecgP256K1)
        .key_usage(KeyUsageType::SignVerify)
        .description(kms_eth_harness::test_names::bench_key_description(&run_id))
        .tags(
            Tag::builder()
                .tag_key(TEST_TAG)
                .tag_value(&run_id)
                .build()?,
        )
        .send()
        .await
        .context("creating the benchmark key")?;
    let key_arn = key
        .key_metadata()
        .and_then(|m| m.arn())
        .context("CreateKey returned no ARN")?
        .to_owned();
    let result = body(&config, &client, &key_arn, &run_id).await;
    // The key is retired whatever happened, as the end-to-end tests retire theirs.
    if let Err(err) = client
        .schedule_key_deletion()
        .key_id(&key_arn)
        .pending_window_in_days(7)
        .send()
        .await
    {
        eprintln!("[bench] could not schedule the deletion of {key_arn}: {err}");
    }
    result
}

/// The benchmark's transactions: transfers with a little call data, nonces 0.., so that the
/// first two can be mined in order on anvil.
fn transactions(count: usize, chain_id: u64) -> Vec<Transaction> {
    (0..count as u64)
        .map(|nonce| {
            Transaction::Eip1559(Eip1559Tx {
                chain_id,
                nonce,
                max_priority_fee_per_gas: U256::from(1_000_000_000u64),
                max_fee_per_gas: U256::from(30_000_000_000u64),
                gas_limit: 30_000 + nonce,
                to: Some(Address([0x42; 20])),
                value: U256::from(10_000_000_000_000_000u64) + U256::from(nonce),
                input: nonce.to_be_bytes().to_vec(),
                access_list: Vec::new(),
            })
        })
        .collect()
}

async fn measure(
    args: &Args,
    config: &aws_config::SdkConfig,
    client: &aws_sdk_kms::Client,
    key_arn: &str,
    rpc_url: &str,
    chain_id: u64,
    run_id: &str,
) -> Result<Network> {
    let txs = transactions(args.signatures, chain_id);
    let digests = txs
        .iter()
        .map(Transaction::signing_hash)
        .collect::<Vec<_>>();
    let kms_eth = KmsSigner::new(client.clone(), key_arn)
        .await
        .context("building kms-eth's KmsSigner")?;
    let alloy = AlloySide::new(client.clone(), key_arn, chain_id, &txs).await?;
    ensure!(
        alloy.address() == kms_eth.address().0,
        "alloy derives another address from the key"
    );
    for (index, digest) in digests.iter().enumerate() {
        ensure!(
            alloy.signing_hash(index)? == *digest,
            "alloy's signing hash of transaction {index} differs from kms-eth's"
        );
    }
    cross_check(&kms_eth, &alloy, &txs).await?;
    let subjects = Arc::new(Subjects {
        client: client.clone(),
        key_arn: key_arn.to_owned(),
        txs: txs.clone(),
        digests,
        kms_eth: kms_eth.clone(),
        alloy,
    });
    let pinning = service::pin(args.localstack_pid);
    eprintln!("[bench] pinning: {pinning}");
    let measured = measure_pinned(
        args, &subjects, &txs, config, key_arn, rpc_url, chain_id, run_id, &pinning,
    )
    .await;
    service::unpin(args.localstack_pid);
    let (throughput, calls, anvil, stacks, service) = measured?;
    // Sends run unpinned too: the node's delay, not LocalStack's CPU, sets their pace.
    let address = kms_eth.address().to_string();
    let (sends, replicas) = match &args.kms_eth_bin {
        Some(kms_eth_bin) => {
            let account = sends::Account {
                kms_eth: kms_eth_bin,
                endpoint: &args.endpoint_url,
                region: &args.region,
                anvil_url: rpc_url,
                chain_id,
                key_arn,
                address: &address,
            };
            sends_and_replicas(args, &account, None).await?
        }
        None => (None, None),
    };
    // Fleets are timed unpinned, like a user's run: both sides are CloudFormation-bound.
    let fleet = match &args.kms_eth_bin {
        Some(kms_eth) => {
            eprintln!(
                "[bench] fleet apply of 12 stacks against deploy of one, {} rounds",
                args.stack_rounds
            );
            Some(
                fleet::measure(
                    kms_eth,
                    &args.endpoint_url,
                    &args.region,
                    run_id,
                    args.stack_rounds,
                )
                .await?,
            )
        }
        None => None,
    };
    eprintln!(
        "[bench] failover between two Regions, {} rounds",
        args.failover_rounds
    );
    let failover = Some(
        failover::measure(
            &args.endpoint_url,
            &args.region,
            run_id,
            args.failover_rounds,
        )
        .await?,
    );
    Ok(Network {
        endpoint: args.endpoint_url.clone(),
        key_arn: key_arn.to_owned(),
        address: kms_eth.address().to_string(),
        chain_id,
        throughput,
        calls,
        stacks,
        anvil,
        service,
        fleet,
        sends,
        replicas,
        failover,
    })
}

/// Everything measured while LocalStack and this process are pinned to separate CPUs.
#[allow(clippy::too_many_arguments)]
async fn measure_pinned(
    args: &Args,
    subjects: &Arc<Subjects>,
    txs: &[Transaction],
    config: &aws_config::SdkConfig,
    key_arn: &str,
    rpc_url: &str,
    chain_id: u64,
    run_id: &str,
    pinning: &str,
) -> Result<(
    throughput::Report,
    crate::calls::CallReport,
    AnvilCheck,
    Option<crate::stacks::StackReport>,
    Option<service::ServiceReport>,
)> {
    let top = args.concurrency.iter().copied().max().unwrap_or(1);
    eprintln!(
        "[bench] warming up ({} signatures per variant)",
        args.warmup
    );
    throughput::warm_up(subjects, args.warmup, top).await?;
    eprintln!(
        "[bench] signing throughput: {} signatures x {} variants x concurrency {:?} x {} rounds",
        args.signatures, 3, args.concurrency, args.rounds
    );
    let throughput = throughput::measure(subjects, &args.concurrency, args.rounds).await?;

    let counted = txs.iter().take(args.counted).cloned().collect::<Vec<_>>();
    let calls = calls::count(config, key_arn, chain_id, &counted).await?;
    eprintln!(
        "[bench] KMS calls for {} signatures: kms-eth {:?}, alloy {:?}",
        calls.signatures, calls.kms_eth.operations, calls.alloy.operations
    );

    let anvil = on_anvil(subjects, rpc_url).await?;

    let service = match &args.kms_eth_bin {
        Some(kms_eth) => {
            eprintln!(
                "[bench] the signing service: eth_signTransaction through kms-eth serve against raw Sign, concurrency {:?} x {} rounds",
                args.concurrency, args.rounds
            );
            Some(
                service::measure(
                    subjects,
                    &service::Setup {
                        kms_eth,
                        endpoint: &args.endpoint_url,
                        region: &args.region,
                        rpc_url,
                        concurrencies: &args.concurrency,
                        rounds: args.rounds,
                        pinning,
                    },
                )
                .await?,
            )
        }
        None => None,
    };

    let stacks = match &args.kms_eth_bin {
        Some(kms_eth) => {
            let cloudformation = aws_sdk_cloudformation::Client::new(config);
            Some(
                stacks::measure(
                    &cloudformation,
                    kms_eth,
                    &args.endpoint_url,
                    &args.region,
                    run_id,
                    args.stack_rounds,
                )
                .await?,
            )
        }
        None => None,
    };
    Ok((throughput, calls, anvil, stacks, service))
}

/// Checks, outside any timing, that each side's output is a valid signed transaction for the
/// other: kms-eth decodes alloy's envelopes and both recover to the same address.
async fn cross_check(kms_eth: &KmsSigner, alloy: &AlloySide, txs: &[Transaction]) -> Result<()> {
    use kms_eth_signer::Signer as _;
    for (index, tx) in txs.iter().enumerate().take(8) {
        let ours = kms_eth.sign_transaction(tx.clone()).await?;
        let theirs = SignedTransaction::decode(&alloy.sign(index).await?)
            .context("kms-eth cannot decode alloy's signed transaction")?;
        ensure!(theirs.tx == ours.tx, "alloy signed another transaction");
        ensure!(
            theirs.recover_signer()? == kms_eth.address()
                && ours.recover_signer()? == kms_eth.address(),
            "a signed transaction does not recover to the key's address"
        );
    }
    Ok(())
}

/// Funds the account on anvil and has it mine transaction 0 as signed by kms-eth and
/// transaction 1 as signed by alloy.
async fn on_anvil(subjects: &Subjects, rpc_url: &str) -> Result<AnvilCheck> {
    use kms_eth_signer::Signer as _;
    let ours = subjects
        .kms_eth
        .sign_transaction(subjects.txs.first().context("no transactions")?.clone())
        .await?;
    let theirs = subjects.alloy.sign(1).await?;
    let address = subjects.kms_eth.address().to_string();
    let url = rpc_url.to_owned();
    let (kms_eth_tx, alloy_tx, both_mined) = tokio::task::spawn_blocking(move || -> Result<_> {
        rpc(
            &url,
            "anvil_setBalance",
            json!([address, "0x8ac7230489e80000"]),
        )?;
        let mut hashes = Vec::new();
        let mut mined = true;
        for raw in [ours.raw, theirs] {
            let hash = rpc(
                &url,
                "eth_sendRawTransaction",
                json!([format!("0x{}", hex::encode(raw))]),
            )?;
            let receipt = receipt(&url, &hash)?;
            let status = receipt.get("status").and_then(|s| s.as_str());
            if status != Some("0x1") {
                eprintln!("[bench] transaction {hash} was not mined successfully: {receipt}");
                mined = false;
            }
            hashes.push(hash.as_str().unwrap_or_default().to_owned());
        }
        let [ours, theirs] = <[String; 2]>::try_from(hashes)
            .map_err(|_| anyhow::anyhow!("two transactions were sent"))?;
        Ok((ours, theirs, mined))
    })
    .await??;
    ensure!(
        both_mined,
        "anvil did not mine both signed transactions successfully"
    );
    eprintln!("[bench] anvil mined kms-eth's {kms_eth_tx} and alloy's {alloy_tx}");
    Ok(AnvilCheck {
        kms_eth_tx,
        alloy_tx,
        both_mined,
    })
}

/// The receipt of `hash`, waiting up to ten seconds for anvil to mine it.
fn receipt(url: &str, hash: &serde_json::Value) -> Result<serde_json::Value> {
    for _ in 0..100 {
        let receipt = rpc(url, "eth_getTransactionReceipt", json!([hash]))?;
        if !receipt.is_null() {
            return Ok(receipt);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("anvil did not mine {hash} within ten seconds")
}
