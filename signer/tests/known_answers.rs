//! Known-answer tests: published vectors reproduced byte for byte through the local signer.

// Tests may panic on failure; helpers outside #[test] functions too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kms_eth_signer::{
    eip191_hash, Address, Error, InsecureLocalSigner, LegacyTx, SignedTransaction, Signer,
    Transaction, TxError, U256,
};

fn eip155_example() -> Transaction {
    Transaction::Legacy(LegacyTx {
        chain_id: Some(1),
        nonce: 9,
        gas_price: U256::from(20_000_000_000u64),
        gas_limit: 21_000,
        to: Some(Address([0x35; 20])),
        value: U256::from(1_000_000_000_000_000_000u64),
        input: Vec::new(),
    })
}

#[tokio::test]
async fn eip155_worked_example_matches_the_eip_text() {
    let tx = eip155_example();
    assert_eq!(
        hex::encode(tx.signing_hash()),
        "daf5a779ae972f972197303d7b574746c7ef83eadac0f2791ad23db92e4c8e53",
        "signing hash from EIP-155"
    );

    let signer = InsecureLocalSigner::from_private_key(&[0x46; 32]).unwrap();
    let signed = signer.sign_transaction(tx).await.unwrap();
    assert_eq!(
        signed.raw_hex(),
        "0xf86c098504a817c800825208943535353535353535353535353535353535353535880de0b6b3a76400008025a028ef61340bd939bc2195fe537567866003e1a15d3c71ff63e1590620aa636276a067cbe9d8997f761aecb703304b3800ccf555c9f3dc64214b297fb1966a3b6d83",
        "signed transaction from EIP-155"
    );
    assert_eq!(
        U256::from_be_bytes(signed.signature.r),
        "18515461264373351373200002665853028612451056578545711640558177340181847433846"
            .parse::<U256>()
            .unwrap()
    );
    assert_eq!(
        U256::from_be_bytes(signed.signature.s),
        "46948507304638947509940763649030358759909902576025900602547168820602576006531"
            .parse::<U256>()
            .unwrap()
    );

    let decoded = SignedTransaction::decode(&signed.raw).unwrap();
    assert_eq!(decoded, signed);
    assert_eq!(decoded.recover_signer().unwrap(), signer.address());
}

#[tokio::test]
async fn legacy_without_chain_id_is_refused_unless_asked_for() {
    let Transaction::Legacy(mut tx) = eip155_example() else {
        unreachable!()
    };
    tx.chain_id = None;
    let signer = InsecureLocalSigner::from_private_key(&[0x46; 32]).unwrap();
    let err = signer
        .sign_transaction(Transaction::Legacy(tx.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transaction(TxError::MissingChainId)),
        "{err}"
    );

    let zero = LegacyTx {
        chain_id: Some(0),
        ..tx.clone()
    };
    let err = signer
        .sign_transaction(Transaction::Legacy(zero))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transaction(TxError::ZeroChainId)),
        "{err}"
    );

    let signed = signer
        .sign_unprotected_transaction(Transaction::Legacy(tx))
        .await
        .unwrap();
    assert!(
        matches!(signed.raw.get(signed.raw.len() - 67), Some(27 | 28)),
        "v is 27 or 28"
    );
    let decoded = SignedTransaction::decode(&signed.raw).unwrap();
    assert_eq!(decoded.tx.chain_id(), None);
    assert_eq!(decoded.recover_signer().unwrap(), signer.address());
}

#[tokio::test]
async fn personal_sign_recovers_to_the_signer() {
    let mut one = [0u8; 32];
    one[31] = 1;
    let signer = InsecureLocalSigner::from_private_key(&one).unwrap();
    assert_eq!(
        signer.address(),
        "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
            .parse::<Address>()
            .unwrap()
    );
    let signature = signer.sign_message(b"hello").await.unwrap();
    let bytes = signature.to_rsv_bytes();
    assert!(matches!(bytes[64], 27 | 28));
    let recovered = kms_eth_signer::recover_signer(&eip191_hash(b"hello"), &signature).unwrap();
    assert_eq!(recovered, signer.address());
    // The same signature does not recover to the signer for another message.
    let other = kms_eth_signer::recover_signer(&eip191_hash(b"hellp"), &signature).unwrap();
    assert_ne!(other, signer.address());
}
