//! The seed corpora of the kms-eth fuzz targets: valid inputs of every shape each parser
//! accepts, so that libFuzzer starts from the interesting part of the input space instead of
//! having to discover DER, RLP or JSON structure by chance. The binary writes them to disk
//! for `cargo fuzz`; the stable test of the fuzz properties reads them from here.

use k256::ecdsa::SigningKey;
use k256::elliptic_curve::sec1::ToEncodedPoint;
use k256::pkcs8::EncodePublicKey;
use kms_eth_signer::{
    encode_der, encode_simple, kzg_to_versioned_hash, AccessListItem, Address, BlobSidecar,
    Eip1559Tx, Eip2930Tx, Eip4844Tx, LegacyTx, SidecarForm, Signature, Transaction, U256,
};

/// Every target's seeds, by target name (the corpus folder `cargo fuzz run` uses).
pub fn corpora() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("der_signature", der_seeds()),
        ("spki", spki_seeds()),
        ("address", address_seeds()),
        ("raw_transaction", transaction_seeds()),
        ("sign_event", event_seeds()),
    ]
}

/// Small fixed private keys: the seeds must be the same on every run.
fn key(n: u8) -> SigningKey {
    let mut bytes = [0u8; 32];
    bytes[31] = n;
    SigningKey::from_slice(&bytes).unwrap_or_else(|err| fail(&format!("key {n}: {err}")))
}

/// Seeds are fixed inputs built from fixed keys: failing to build one is a bug here, so it
/// panics (in the binary and in the stable test alike) with what failed.
fn fail(message: &str) -> ! {
    panic!("kms-eth-fuzz-seeds: {message}")
}

/// Real signatures from k256, plus the extreme valid scalars (1, n - 1, and a value whose
/// top bit forces DER's leading zero byte).
fn der_seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = (1..=4)
        .map(|n| {
            let digest = kms_eth_signer::keccak256([n]);
            let (signature, _) = key(n)
                .sign_prehash_recoverable(&digest)
                .unwrap_or_else(|err| fail(&format!("signing: {err}")));
            signature.to_der().as_bytes().to_vec()
        })
        .collect();
    let mut one = [0u8; 32];
    one[31] = 1;
    let n_minus_one: [u8; 32] = (-k256::Scalar::ONE).to_bytes().into();
    let mut high_bit = [0u8; 32];
    high_bit[0] = 0x80;
    seeds.push(encode_der(&one, &one));
    seeds.push(encode_der(&n_minus_one, &n_minus_one));
    seeds.push(encode_der(&high_bit, &one));
    seeds
}

/// The canonical SPKI of a few keys, as KMS returns them, and the same keys with a
/// compressed point (valid DER for the same key, which the parser must refuse as
/// non-canonical) so that the fuzzer also explores the neighbourhood of that form.
fn spki_seeds() -> Vec<Vec<u8>> {
    (1..=4)
        .flat_map(|n| {
            let public = k256::PublicKey::from(key(n).verifying_key());
            let canonical = public
                .to_public_key_der()
                .unwrap_or_else(|err| fail(&format!("SPKI: {err}")))
                .as_bytes()
                .to_vec();
            let mut compressed =
                hex::decode("3036301006072a8648ce3d020106052b8104000a032200").unwrap_or_default();
            compressed.extend_from_slice(public.to_encoded_point(true).as_bytes());
            [canonical, compressed]
        })
        .collect()
}

fn address_of(n: u8) -> Address {
    let point = key(n).verifying_key().to_encoded_point(false);
    let mut xy = [0u8; 64];
    xy.copy_from_slice(&point.as_bytes()[1..]);
    Address::from_raw_public_key(&xy)
}

/// Each address in its checksum, lower-case and upper-case forms.
fn address_seeds() -> Vec<Vec<u8>> {
    (1..=4)
        .map(address_of)
        .chain([Address([0; 20]), Address([0xff; 20])])
        .flat_map(|address| {
            let checksum = address.to_checksum();
            let digits = &checksum[2..];
            [
                checksum.clone(),
                format!("0x{}", digits.to_ascii_lowercase()),
                format!("0X{}", digits.to_ascii_uppercase()),
            ]
        })
        .map(String::into_bytes)
        .collect()
}

/// Signed transactions of every type and shape: with and without a recipient, chain id,
/// data and access list; a blob transaction alone and in both network forms.
fn transaction_seeds() -> Vec<Vec<u8>> {
    let to = Some(address_of(2));
    let gwei = U256::from(1_000_000_000u64);
    let access_list = vec![AccessListItem {
        address: address_of(3),
        storage_keys: vec![[0u8; 32], [0xab; 32]],
    }];
    let legacy = |chain_id, to, input: &[u8]| {
        Transaction::Legacy(LegacyTx {
            chain_id,
            nonce: 9,
            gas_price: gwei * U256::from(20),
            gas_limit: 21_000,
            to,
            value: U256::from(10u64).pow(U256::from(18)),
            input: input.to_vec(),
        })
    };
    let transactions = [
        legacy(Some(1), to, &[]),
        legacy(None, to, &[]),
        legacy(Some(u64::MAX), None, &[0x60, 0x80, 0x60, 0x40]),
        Transaction::Eip2930(Eip2930Tx {
            chain_id: 11_155_111,
            nonce: 0,
            gas_price: gwei,
            gas_limit: 50_000,
            to,
            value: U256::ZERO,
            input: vec![0xa9, 0x05, 0x9c, 0xbb],
            access_list: access_list.clone(),
        }),
        Transaction::Eip1559(Eip1559Tx {
            chain_id: 31_337,
            nonce: 1,
            max_priority_fee_per_gas: gwei,
            max_fee_per_gas: gwei * U256::from(30),
            gas_limit: 160_000,
            to,
            value: U256::from(1u64),
            input: vec![0u8; 60],
            access_list: Vec::new(),
        }),
        Transaction::Eip1559(Eip1559Tx {
            chain_id: 1,
            nonce: u64::MAX,
            max_priority_fee_per_gas: U256::MAX,
            max_fee_per_gas: U256::MAX,
            gas_limit: u64::MAX,
            to: None,
            value: U256::MAX,
            input: Vec::new(),
            access_list: access_list.clone(),
        }),
        blob_transaction(None),
        // The network forms: the decoder checks their shape, not their KZG proofs, so
        // points of the right length serve as seeds.
        blob_transaction(Some(SidecarForm::Eip4844)),
        blob_transaction(Some(SidecarForm::Eip7594)),
    ];
    transactions
        .into_iter()
        .map(|tx| {
            let (signature, recovery_id) = key(1)
                .sign_prehash_recoverable(&tx.signing_hash())
                .unwrap_or_else(|err| fail(&format!("signing: {err}")));
            let signature = Signature {
                r: signature.r().to_bytes().into(),
                s: signature.s().to_bytes().into(),
                y_parity: recovery_id.is_y_odd(),
            };
            tx.into_signed(signature).raw
        })
        .collect()
}

/// A type-3 transaction with one blob, alone or in a network form.
fn blob_transaction(form: Option<SidecarForm>) -> Transaction {
    let blob =
        encode_simple(b"a blob for the fuzzer").unwrap_or_else(|err| fail(&format!("blob: {err}")));
    let sidecar = form.map(|form| BlobSidecar {
        form,
        blobs: vec![blob],
        commitments: vec![[0xc0; 48]],
        proofs: vec![[0xc0; 48]; form.proof_count(1)],
    });
    Transaction::Eip4844(Eip4844Tx {
        chain_id: 1,
        nonce: 3,
        max_priority_fee_per_gas: U256::from(1u8),
        max_fee_per_gas: U256::from(30u8),
        gas_limit: 21_000,
        to: address_of(4),
        value: U256::ZERO,
        input: Vec::new(),
        access_list: Vec::new(),
        max_fee_per_blob_gas: U256::from(10u8),
        blob_versioned_hashes: vec![kzg_to_versioned_hash(&[0xc0; 48])],
        sidecar,
    })
}

/// Sign events of every type, with numbers as JSON numbers and as strings.
fn event_seeds() -> Vec<Vec<u8>> {
    let to = address_of(2).to_checksum();
    [
        format!(
            r#"{{"operation":"sign","amount":0.01,"dst_address":"{to}","nonce":0,"chain_id":1,"max_fee_per_gas":"30gwei","max_priority_fee_per_gas":"1gwei"}}"#
        ),
        format!(
            r#"{{"operation":"sign","amount":"1.5","dst_address":"{}","nonce":"7","chainid":"31337","type":"legacy","gas":"21000","gas_price":"20gwei","data":"0x"}}"#,
            to.to_ascii_lowercase()
        ),
        format!(
            r#"{{"operation":"sign","amount":0,"dst_address":"{to}","nonce":18446744073709551615,"chain_id":11155111,"type":"2930","gas_limit":50000,"gas_price":1000000000,"data":"0xa9059cbb"}}"#
        ),
        format!(
            r#"{{"operation":"sign","amount":1e-18,"dst_address":"{to}","nonce":1,"chain_id":1,"type":2,"max_fee_per_gas":"2","max_priority_fee_per_gas":"1"}}"#
        ),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}
