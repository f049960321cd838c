//! ERC-20 tokens on anvil: the test token (compiled from `tests/contracts/TestToken.sol`)
//! moved by transactions that `kms-eth send` signs with a KMS key (transfer, approve,
//! increaseAllowance, and the transferFrom they allow), and an EIP-2612 permit signed by
//! `kms-eth sign-typed-data` that the token accepts; every amount read back from the token.

use kms_eth_e2e::{
    allowance, approve_data, deploy_token, funded_account, impersonated_send,
    increase_allowance_data, json_output, kms_eth, kms_eth_command, permit_nonce,
    permit_typed_data, submit_permit, token_balance, transfer_data, transfer_from_data,
};
use kms_eth_signer::U256;

const RECIPIENT: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const SPENDER: &str = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC";

/// `n` whole tokens (18 decimals).
fn tokens(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_calls_sent_with_kms_eth_move_exactly_the_amounts_they_name() {
    let (key, address, node) = funded_account().await;
    let token = deploy_token(node.url(), &address, tokens(1000));
    assert_eq!(token_balance(node.url(), &token, &address), tokens(1000));
    assert_eq!(token_balance(node.url(), &token, RECIPIENT), U256::ZERO);
    let chain_id = node.chain_id().to_string();
    let send = |data: &str| {
        let sent = kms_eth_command(&["send", "--key-id", &key.id, "--rpc-url", node.url()])
            .args(["--chain-id", &chain_id, "--to", &token, "--data", data])
            .args(["--yes", "--json"])
            .json();
        assert_eq!(sent["status"], 1, "{sent}");
    };

    send(&transfer_data(RECIPIENT, tokens(250)));
    assert_eq!(token_balance(node.url(), &token, &address), tokens(750));
    assert_eq!(token_balance(node.url(), &token, RECIPIENT), tokens(250));

    // An allowance, raised, then taken in full by the spender.
    send(&approve_data(SPENDER, tokens(100)));
    assert_eq!(
        allowance(node.url(), &token, &address, SPENDER),
        tokens(100)
    );
    send(&increase_allowance_data(SPENDER, tokens(50)));
    assert_eq!(
        allowance(node.url(), &token, &address, SPENDER),
        tokens(150)
    );
    impersonated_send(
        node.url(),
        SPENDER,
        Some(&token),
        &transfer_from_data(&address, RECIPIENT, tokens(150)),
    );
    assert_eq!(allowance(node.url(), &token, &address, SPENDER), U256::ZERO);
    assert_eq!(token_balance(node.url(), &token, &address), tokens(600));
    assert_eq!(token_balance(node.url(), &token, RECIPIENT), tokens(400));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permit_signed_with_kms_eth_grants_the_allowance_it_names() {
    let (key, address, node) = funded_account().await;
    let token = deploy_token(node.url(), &address, tokens(10));
    let permit = permit_typed_data(
        node.url(),
        &token,
        &address,
        SPENDER,
        tokens(7),
        U256::from(u64::MAX),
    );
    assert_eq!(permit["domain"]["chainId"], node.chain_id());
    assert_eq!(permit["domain"]["verifyingContract"], token.as_str());
    let file = kms_eth_e2e::scratch_dir().join(format!("permit-{}.json", std::process::id()));
    std::fs::write(&file, permit.to_string()).unwrap();
    let signed = json_output(&kms_eth(&[
        "sign-typed-data",
        "--key-id",
        &key.id,
        file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(signed["address"], address.as_str());
    submit_permit(
        node.url(),
        &token,
        &permit,
        signed["signature"].as_str().unwrap(),
    );
    assert_eq!(allowance(node.url(), &token, &address, SPENDER), tokens(7));
    assert_eq!(permit_nonce(node.url(), &token, &address), U256::from(1u64));
    let _ = std::fs::remove_file(file);
}
