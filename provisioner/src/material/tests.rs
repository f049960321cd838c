//! The keystore reader against keystores written by another implementation (eth_account
//! 0.14, with small work factors so the tests are quick), PEM keys written by OpenSSL's
//! formats (Python's cryptography), and every refusal.

use super::*;

/// The key 0x46...46 (the EIP-155 example's, on the leak scan's list) and its address.
const ADDRESS: &str = "0x9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F";
const PASSWORD: &[u8] = b"kms-eth test password";

const PBKDF2: &str = r#"{"address": "9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F", "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": "e43eb6344bed719b17d9f2044199abf5"}, "ciphertext": "3545e01c19b2f6e73f9f471d048d5e1508806e0954f637234695960352e5f84c", "kdf": "pbkdf2", "kdfparams": {"c": 1024, "dklen": 32, "prf": "hmac-sha256", "salt": "26fa402fd7a7664b64f1a2bac816307a"}, "mac": "78aa8b2a51cde056fa63eacd86423ad25f77bb936e7a2841d62b9e5e1b214a56"}, "id": "17479f47-7d14-4fd2-9927-fcad61961729", "version": 3}"#;

const SCRYPT: &str = r#"{"address": "9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F", "crypto": {"cipher": "aes-128-ctr", "cipherparams": {"iv": "92a8725923a76a89621036f096b13cb2"}, "ciphertext": "7be82ceabc57aa51ce6f5774293f2fbd3f83a1984a711772a93170ec6047d366", "kdf": "scrypt", "kdfparams": {"dklen": 32, "n": 1024, "r": 8, "p": 1, "salt": "ddbe9101582144a0c52da7d5a02c4b13"}, "mac": "2c43a81bd6d9945a201c7eb621f174dcbccd353cc419aea90eee6857b0cf3f56"}, "id": "cc1e0f91-73aa-4249-b6af-e2177ec44125", "version": 3}"#;

const PKCS8_SECP256K1: &str = "-----BEGIN PRIVATE KEY-----
MIGEAgEAMBAGByqGSM49AgEGBSuBBAAKBG0wawIBAQQgRkZGRkZGRkZGRkZGRkZG
RkZGRkZGRkZGRkZGRkZGRkahRANCAARLwqMSZRU/B+cOC6sIck5rheIX+M1ijOti
l0JHu0kzgs4oyrea1xGe4a0+vNuYoWgFIRUw7MbP76G4jm3/mSMq
-----END PRIVATE KEY-----
";

const SEC1_SECP256K1: &str = "-----BEGIN EC PRIVATE KEY-----
MHQCAQEEIEZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGRkZGoAcGBSuBBAAK
oUQDQgAES8KjEmUVPwfnDgurCHJOa4XiF/jNYozrYpdCR7tJM4LOKMq3mtcRnuGt
PrzbmKFoBSEVMOzGz++huI5t/5kjKg==
-----END EC PRIVATE KEY-----
";

/// The same scalar on P-256: a key of another curve.
const PKCS8_P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgRkZGRkZGRkZGRkZG
RkZGRkZGRkZGRkZGRkZGRkZGRkahRANCAAQb7BJQqo94J1+ZpmY2iPMQhYSNDtkv
EgPkRxJfknt0hpduGdLuz9PUD5NfEL4J5jvLyKJKce+2eEjZdyXDoNxz
-----END PRIVATE KEY-----
";

fn address() -> Address {
    ADDRESS.parse().unwrap()
}

#[test]
fn both_kdfs_decrypt_to_the_keystores_address() {
    for keystore in [PBKDF2, SCRYPT] {
        let material = from_keystore(keystore, PASSWORD).unwrap();
        assert_eq!(material.address(), address());
        assert_eq!(material.promised_address(), Some(address()));
        material.check_address(Some(address())).unwrap();
    }
}

#[test]
fn a_wrong_password_is_refused_by_the_mac() {
    for keystore in [PBKDF2, SCRYPT] {
        assert_eq!(
            from_keystore(keystore, b"not the password").unwrap_err(),
            MaterialError::WrongPassword
        );
    }
}

#[test]
fn a_keystore_promising_another_address_is_refused() {
    let other = "0x0000000000000000000000000000000000000001";
    let forged = PBKDF2.replace("9d8A62f656a8d1615C1294fd71e9CFb3E4855A4F", &other[2..]);
    let material = from_keystore(&forged, PASSWORD).unwrap();
    let err = material.check_address(None).unwrap_err();
    assert!(matches!(
        err,
        MaterialError::AddressMismatch {
            promised_by: "the keystore",
            ..
        }
    ));
    let material = from_keystore(PBKDF2, PASSWORD).unwrap();
    let err = material
        .check_address(Some(other.parse().unwrap()))
        .unwrap_err();
    assert!(matches!(
        err,
        MaterialError::AddressMismatch {
            promised_by: "--expect-address",
            ..
        }
    ));
}

#[test]
fn hex_and_pem_secp256k1_keys_are_read() {
    let hex = "46".repeat(32);
    for text in [
        hex.clone(),
        format!("0x{hex}\n"),
        PKCS8_SECP256K1.into(),
        SEC1_SECP256K1.into(),
    ] {
        assert_eq!(from_text(&text).unwrap().address(), address(), "{text}");
    }
}

#[test]
fn keys_of_other_curves_and_non_keys_are_refused() {
    assert_eq!(
        from_text(PKCS8_P256).unwrap_err(),
        MaterialError::WrongCurve("P-256 (ECC_NIST_P256)".into())
    );
    assert!(matches!(
        from_text(&"00".repeat(32)),
        Err(MaterialError::NotAKey(_))
    ));
    // The curve order itself is not a private key.
    let order = "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141";
    assert!(matches!(from_text(order), Err(MaterialError::NotAKey(_))));
    assert!(matches!(
        from_text("0x1234"),
        Err(MaterialError::NotAKey(_))
    ));
    assert!(matches!(
        from_text(&"zz".repeat(32)),
        Err(MaterialError::NotAKey(_))
    ));
}

#[test]
fn malformed_or_costly_keystores_are_refused_before_any_work() {
    let cases = [
        ("not json", "{"),
        ("version", r#"{"version": 1}"#),
        ("no crypto", r#"{"version": 3}"#),
    ];
    for (what, text) in cases {
        assert!(from_keystore(text, PASSWORD).is_err(), "{what}");
    }
    let huge = SCRYPT.replace("\"n\": 1024", "\"n\": 1073741824");
    assert!(matches!(
        from_keystore(&huge, PASSWORD),
        Err(MaterialError::Unsupported(_))
    ));
    let odd = SCRYPT.replace("\"n\": 1024", "\"n\": 1000");
    assert!(matches!(
        from_keystore(&odd, PASSWORD),
        Err(MaterialError::Keystore(_))
    ));
    let sha1 = PBKDF2.replace("hmac-sha256", "hmac-sha1");
    assert!(matches!(
        from_keystore(&sha1, PASSWORD),
        Err(MaterialError::Unsupported(_))
    ));
    let cbc = PBKDF2.replace("aes-128-ctr", "aes-128-cbc");
    assert!(matches!(
        from_keystore(&cbc, PASSWORD),
        Err(MaterialError::Unsupported(_))
    ));
}

#[test]
fn the_wrapped_key_is_the_pkcs8_document_under_oaep_sha256() {
    use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
    // A fixed wrapping key: generating one takes seconds in a debug build.
    let private = rsa::RsaPrivateKey::from_pkcs8_pem(WRAPPING_KEY).unwrap();
    let public = private.to_public_key().to_public_key_der().unwrap();
    let material = from_text(&"46".repeat(32)).unwrap();
    let wrapped = material.wrap(public.as_bytes()).unwrap();
    let document = private
        .decrypt(rsa::Oaep::new::<sha2::Sha256>(), &wrapped)
        .unwrap();
    let key =
        <k256::SecretKey as k256::pkcs8::DecodePrivateKey>::from_pkcs8_der(&document).unwrap();
    assert_eq!(key.to_bytes()[..], [0x46; 32]);
    assert!(matches!(
        material.wrap(b"not a key"),
        Err(MaterialError::Wrapping(_))
    ));
}

/// A 2048-bit RSA key standing in for the import parameters' (KMS keeps the private half).
const WRAPPING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCUzgtovxthbIIF
05Lt9qO94DzIanz+rvtSF6DDU3dQcXgLiYhuovQwetZDt/zGR/+NxgaRGS4cmLFc
ErtCVYV+PddT6SFiaele739oZKT0RZmyHbAHPnDDNzGPUNnN9FlkhppTEpNjTDUA
CnAqa/M533VFgCWCMZSXilpo+b1w8dCELqJxLyWXqA+Rt5X65RaUaqFjPR9jkbg1
ZxbsVNZouyB537HgxM0sfrGzpRHEshxpibhGS/MxFW3Ec7Swe75U4rmN3uEvyuf0
JjBeOzH3h1EfCy+4Ouwv7b6neFJwCppH4pEo8KrHBb/lXvOckdsy/Eyb5mCGieRZ
YGVVSxbLAgMBAAECggEABl/8EyUPejwDfKu/bAcYpWYkPyh4vxHQszKkm4RJj0kH
2I6wKUqSkDp4UCG4vZHmETUo9jG696n+/IUnlUREBNAyF7vcHJ2RoZSRw8TUCvb/
ClIanCTWVeFZHoewh7yZJnpccC9SiyV/pnHMCQqOOq4nwFjTbTbMjorJ1sd5kItq
zysg8uuEC10JVjEHR306AM/4PQJxENYhaijArVbTOLJ7YpjrskT4SilIOJIaLif0
NoKd/zSKzliXBtrjttvUdzIx8GinUtnqsP67AwYvIXIHrHm6pKB8mf6Ru797qQR4
Zg/JpQZehj8b6WPku98CF3bEfv6lE99kqGvTiMQFuQKBgQDKWPNbwNawEo3KbA+k
3DuHZRCYiKnzrd/mRNOp4QwOwDeiE/RZgoax0RYS8utEJ4kYlfk+53FMuex/lyav
4QFmyS/Yb0lxjRFWWvGMZIAp8cSsRsf0J/hKxHhiip+WReYy9Ia3PRgxm2KW2kJl
7gDWw7nFVN9ha5YiTWEuyaP3fwKBgQC8QrNZGkDJQ3oQ0eulFxQp0iOQ1Xe4Ecw9
M1WAADx6/W2iOWVoL3+NgEiz+wU7GKJ2RkCldN7IXSNGEDEoRYkNkRv3SBt2jLLN
a3yMt4RPU+qZjaQ8eSZYIPrmpTM9C8SJYMaG556lbWFgIXfXtdLSTc9fg8Ug2ubS
sFFmVH/mtQKBgQDJsiyx8uCNFZF8ioZ1gIleBqGqSd+OZGzgLQ8HMKpCMdvClT1l
07PLn2zvanCUuQvxE90klLLdFh7ld5c6jYBGIpislxGQPFthxrkrhioypSmzx8Ic
X5MhhAGzyBYXRomVlSSLljx9hjOZxumUjM8NRH/ycQ1RIFrAynzqlFf6pQKBgGrO
9O3yhRsq21A7qRPq+heYD3GWiuu1vUhjnXiXqbilm9PT+IKZoCZpx9XE7vzORy4P
QZIdsl++58pSWXFdshouX8117Y7e2HrPJsS3Qau4Enu37pwYp/aMD41X4LAbww+m
Bjx3oHx+iCaAFnwdvlRurN6l5et0Bk02l5gVDNOZAoGAHcLuiClKFffvXtErXJA5
LkfVAsbGaS7k3Z1XbCjXhBeQOveYI645ZJv2xP3Im7pmtzAIiTVWxgFnpGMCsU9S
KVJ3ZYvYCiBFZqF2WjReEcPGcQqUIe4t80EunwOihMxpNafUlXONO6ywV2Q+Q1+v
0wcAA/9K9fST+WKpolEPVxQ=
-----END PRIVATE KEY-----
";
