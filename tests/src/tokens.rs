//! A real ERC-20 token with EIP-2612 permits on anvil, for tests of token movements: the
//! contract (`tests/contracts/TestToken.sol`, OpenZeppelin 5) compiled on first use with the
//! solc pinned in `chain/`, deployed from an impersonated account, read back with eth_call,
//! and its call data and permit documents built by cast and plain JSON, never by the code
//! under test.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kms_eth_harness::jsonrpc::call as rpc;
use kms_eth_signer::U256;
use serde_json::{json, Value};
use sha3::{Digest, Keccak256};

/// The token's name, which is also its EIP-712 domain's name.
pub const TOKEN_NAME: &str = "kms-eth Test Token";
/// The token's EIP-712 domain version (OpenZeppelin's `ERC20Permit` uses "1").
pub const TOKEN_VERSION: &str = "1";

/// The account the tokens are deployed from, and that submits permits: anvil runs without
/// dev accounts (`--accounts 0`), so it is funded and impersonated on each node instead. No
/// key exists for it; it only ever sends through anvil's impersonation.
pub const DEPLOYER: &str = "0x7e57000000000000000000000000000000000001";

/// Compiles `TestToken.sol` with solcjs; the source comes from $SOURCE, imports from the
/// `node_modules` in $NODE_PATH. Prints the compiler's version and the creation bytecode.
const COMPILE: &str = r#"
const fs = require("fs");
const path = require("path");
const solc = require("solc");
const input = {
  language: "Solidity",
  sources: { "TestToken.sol": { content: fs.readFileSync(process.env.SOURCE, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "TestToken.sol": { TestToken: ["evm.bytecode.object"] } },
  },
};
const imports = (name) => {
  try {
    return { contents: fs.readFileSync(path.join(process.env.NODE_PATH, name), "utf8") };
  } catch (err) {
    return { error: `${name}: ${err.message}` };
  }
};
const output = JSON.parse(solc.compile(JSON.stringify(input), { import: imports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  console.error(errors.map((e) => e.formattedMessage).join("\n"));
  process.exit(1);
}
const object = output.contracts["TestToken.sol"].TestToken.evm.bytecode.object;
console.log(JSON.stringify({ compiler: solc.version(), bytecode: "0x" + object }));
"#;

/// The token's creation bytecode (without constructor arguments). Compiled once per
/// source, compile script and `chain/package-lock.json` (which pins solc and OpenZeppelin),
/// and kept beside the installed chain tools, so a run compiles at most once and `npm ci`
/// after a change of the lock throws the old output away with the old packages.
pub fn token_bytecode() -> String {
    static BYTECODE: OnceLock<String> = OnceLock::new();
    BYTECODE.get_or_init(compile_or_reuse).clone()
}

fn compile_or_reuse() -> String {
    kms_eth_harness::anvil::install().unwrap();
    let chain = kms_eth_harness::anvil::package_dir();
    let source = kms_eth_harness::process::project_root()
        .join("tests")
        .join("contracts")
        .join("TestToken.sol");
    let mut hasher = Keccak256::new();
    for part in [
        std::fs::read(&source).unwrap(),
        COMPILE.as_bytes().to_vec(),
        std::fs::read(chain.join("package-lock.json")).unwrap(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let key = hex::encode(&hasher.finalize()[..16]);
    let cached: PathBuf = chain
        .join("node_modules")
        .join(".kms-eth-build")
        .join(format!("TestToken-{key}.json"));
    if let Ok(text) = std::fs::read_to_string(&cached) {
        if let Ok(built) = serde_json::from_str::<Value>(&text) {
            if let Some(bytecode) = built["bytecode"].as_str() {
                return bytecode.to_owned();
            }
        }
    }
    let modules = chain.join("node_modules");
    let output = Command::new("node")
        .args(["-e", COMPILE])
        .env("NODE_PATH", &modules)
        .env("SOURCE", &source)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "compiling {} with solcjs from {}: {}",
        source.display(),
        modules.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let built: Value = serde_json::from_slice(&output.stdout).unwrap();
    let bytecode = built["bytecode"].as_str().unwrap().to_owned();
    assert!(bytecode.len() > 2, "solcjs gave no bytecode: {built}");
    // Written whole, then renamed: another test process reading it sees all or nothing.
    std::fs::create_dir_all(cached.parent().unwrap()).unwrap();
    let partial = cached.with_extension(format!("{}.partial", std::process::id()));
    std::fs::write(&partial, built.to_string()).unwrap();
    std::fs::rename(&partial, &cached).unwrap();
    bytecode
}

/// Runs cast (pinned in `chain/`) with `args` and returns its stdout, trimmed; panics with
/// its stderr if it fails.
pub fn cast(args: &[&str]) -> String {
    kms_eth_harness::anvil::install().unwrap();
    let output = Command::new(kms_eth_harness::anvil::binary("cast"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cast {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Deploys a fresh token on the node at `node_url` that mints `amount` (smallest units) to
/// `holder`, and returns its address (EIP-55).
pub fn deploy_token(node_url: &str, holder: &str, amount: U256) -> String {
    let arguments = cast(&[
        "abi-encode",
        "constructor(address,uint256)",
        holder,
        &amount.to_string(),
    ]);
    let code = format!("{}{}", token_bytecode(), arguments.trim_start_matches("0x"));
    let receipt = impersonated_send(node_url, DEPLOYER, None, &code);
    let address = receipt["contractAddress"]
        .as_str()
        .unwrap_or_else(|| panic!("no contract address in {receipt}"));
    let deployed = rpc(node_url, "eth_getCode", json!([address, "latest"])).unwrap();
    assert!(
        deployed.as_str().is_some_and(|code| code.len() > 2),
        "no code at {address}"
    );
    cast(&["to-check-sum-address", address])
}

/// Sends a transaction from `from` (any address: anvil impersonates it and gives it
/// ether for gas) to `to` (`None`: a contract creation) with call data `data`, and returns
/// its receipt once mined; panics if it reverted. For what accounts other than the KMS
/// account under test do on chain: a spender using an allowance, a relayer submitting a
/// permit.
pub fn impersonated_send(node_url: &str, from: &str, to: Option<&str>, data: &str) -> Value {
    rpc(
        node_url,
        "anvil_setBalance",
        json!([from, "0x3635c9adc5dea00000"]), // 1000 ether
    )
    .unwrap();
    rpc(node_url, "anvil_impersonateAccount", json!([from])).unwrap();
    let mut tx = json!({ "from": from, "data": data });
    if let Some(to) = to {
        tx["to"] = json!(to);
    }
    let hash = rpc(node_url, "eth_sendTransaction", json!([tx])).unwrap();
    let started = Instant::now();
    loop {
        let receipt = rpc(node_url, "eth_getTransactionReceipt", json!([hash])).unwrap();
        if !receipt.is_null() {
            assert_eq!(receipt["status"], "0x1", "reverted: {receipt}");
            return receipt;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{hash} from {from} was not mined in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The values an eth_call of `signature` (`name(inputs)(outputs)`) with `args` returns,
/// decoded by cast.
fn read(node_url: &str, token: &str, signature: &str, args: &[&str]) -> Value {
    let mut command = vec!["call", "--json", "--rpc-url", node_url, token, signature];
    command.extend(args);
    serde_json::from_str(&cast(&command)).unwrap()
}

/// The uint256 an eth_call of `signature` (`name(inputs)`, no outputs: cast prints the raw
/// return data, which a JSON number could not hold whole) with `args` returns.
fn read_u256(node_url: &str, token: &str, signature: &str, args: &[&str]) -> U256 {
    let mut command = vec!["call", "--rpc-url", node_url, token, signature];
    command.extend(args);
    let output = cast(&command);
    let digits = output.strip_prefix("0x").unwrap_or(&output);
    assert_eq!(digits.len(), 64, "{signature}: not one word: {output}");
    U256::from_str_radix(digits, 16).unwrap()
}

/// `token.balanceOf(owner)`.
pub fn token_balance(node_url: &str, token: &str, owner: &str) -> U256 {
    read_u256(node_url, token, "balanceOf(address)", &[owner])
}

/// `token.allowance(owner, spender)`.
pub fn allowance(node_url: &str, token: &str, owner: &str, spender: &str) -> U256 {
    read_u256(
        node_url,
        token,
        "allowance(address,address)",
        &[owner, spender],
    )
}

/// `token.nonces(owner)`: the nonce the owner's next permit must carry.
pub fn permit_nonce(node_url: &str, token: &str, owner: &str) -> U256 {
    read_u256(node_url, token, "nonces(address)", &[owner])
}

/// The token's EIP-712 domain as the token itself reports it (EIP-5267's `eip712Domain()`),
/// as the `domain` object of an `eth_signTypedData_v4` document.
pub fn token_domain(node_url: &str, token: &str) -> Value {
    let fields = read(
        node_url,
        token,
        "eip712Domain()(bytes1,string,string,uint256,address,bytes32,uint256[])",
        &[],
    );
    // 0x0f: name, version, chainId and verifyingContract, and no salt or extensions.
    assert_eq!(fields[0], "0x0f", "unexpected domain fields: {fields}");
    let chain_id = fields[3]
        .as_u64()
        .or_else(|| fields[3].as_str().and_then(|id| id.parse().ok()))
        .unwrap_or_else(|| panic!("no chain id in the domain: {fields}"));
    json!({
        "name": fields[1],
        "version": fields[2],
        "chainId": chain_id,
        "verifyingContract": fields[4],
    })
}

/// The EIP-2612 permit document (for `eth_signTypedData_v4` or `kms-eth sign-typed-data`) by
/// which `owner` lets `spender` take `value` of `token` until `deadline` (a Unix time), with
/// the owner's current permit nonce and the domain read from the token.
pub fn permit_typed_data(
    node_url: &str,
    token: &str,
    owner: &str,
    spender: &str,
    value: U256,
    deadline: U256,
) -> Value {
    let field = |name: &str, kind: &str| json!({ "name": name, "type": kind });
    json!({
        "types": {
            "EIP712Domain": [
                field("name", "string"),
                field("version", "string"),
                field("chainId", "uint256"),
                field("verifyingContract", "address"),
            ],
            "Permit": [
                field("owner", "address"),
                field("spender", "address"),
                field("value", "uint256"),
                field("nonce", "uint256"),
                field("deadline", "uint256"),
            ],
        },
        "primaryType": "Permit",
        "domain": token_domain(node_url, token),
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value.to_string(),
            "nonce": permit_nonce(node_url, token, owner).to_string(),
            "deadline": deadline.to_string(),
        },
    })
}

/// Submits a signed permit (`signature`: 65 bytes r, s, v as hex) to the token from
/// [`DEPLOYER`], as a relayer would; returns the receipt, and panics if the token refused
/// it (a bad signature, a used nonce, a past deadline).
pub fn submit_permit(node_url: &str, token: &str, permit: &Value, signature: &str) -> Value {
    let bytes = hex::decode(signature.trim_start_matches("0x")).unwrap();
    assert_eq!(bytes.len(), 65, "a signature of {} bytes", bytes.len());
    // Either recovery id convention: the token wants 27 or 28.
    let v = match bytes[64] {
        v @ (0 | 1) => v + 27,
        v => v,
    };
    let message = &permit["message"];
    let text = |name: &str| message[name].as_str().unwrap().to_owned();
    let data = cast(&[
        "calldata",
        "permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
        &text("owner"),
        &text("spender"),
        &text("value"),
        &text("deadline"),
        &v.to_string(),
        &format!("0x{}", hex::encode(&bytes[..32])),
        &format!("0x{}", hex::encode(&bytes[32..64])),
    ]);
    impersonated_send(node_url, DEPLOYER, Some(token), &data)
}

/// Call data of `transfer(to, amount)`.
pub fn transfer_data(to: &str, amount: U256) -> String {
    cast(&[
        "calldata",
        "transfer(address,uint256)",
        to,
        &amount.to_string(),
    ])
}

/// Call data of `approve(spender, amount)`.
pub fn approve_data(spender: &str, amount: U256) -> String {
    cast(&[
        "calldata",
        "approve(address,uint256)",
        spender,
        &amount.to_string(),
    ])
}

/// Call data of `transferFrom(from, to, amount)`.
pub fn transfer_from_data(from: &str, to: &str, amount: U256) -> String {
    cast(&[
        "calldata",
        "transferFrom(address,address,uint256)",
        from,
        to,
        &amount.to_string(),
    ])
}

/// Call data of `increaseAllowance(spender, added)`.
pub fn increase_allowance_data(spender: &str, added: U256) -> String {
    cast(&[
        "calldata",
        "increaseAllowance(address,uint256)",
        spender,
        &added.to_string(),
    ])
}
