use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A fresh P-256 key as certbot would store it (JWK), plus its PKCS#8.
fn p256_jwk() -> (Value, rcgen::KeyPair) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let der = kp.serialize_der();
    // ECPrivateKey: version 1 (02 01 01), then the 32-byte scalar (04 20 ...).
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .unwrap()
        + 5;
    let d = &der[at..at + 32];
    let public = kp.public_key_raw();
    assert_eq!(public[0], 4);
    let jwk = serde_json::json!({
        "kty": "EC",
        "crv": "P-256",
        "d": URL_SAFE_NO_PAD.encode(d),
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
    });
    (jwk, kp)
}

#[test]
fn p256_jwk_round_trips_to_the_same_key() {
    let (jwk, original) = p256_jwk();
    let der = jwk_to_pkcs8(&jwk).unwrap();
    let again = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
    assert_eq!(again.public_key_raw(), original.public_key_raw());
    instant_acme::Key::from_pkcs8_der(rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_slice()))
        .unwrap();
    let json = credentials_json("https://ca.test/acct/1", &der, "https://ca.test/dir").unwrap();
    let creds: instant_acme::AccountCredentials = serde_json::from_slice(&json).unwrap();
    assert_eq!(creds.private_key().secret_pkcs8_der(), der.as_slice());
    let v: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["id"], "https://ca.test/acct/1");
    assert_eq!(v["directory"], "https://ca.test/dir");
}

#[test]
fn padded_base64_is_accepted() {
    let (mut jwk, original) = p256_jwk();
    let d = jwk["d"].as_str().unwrap().to_string();
    jwk["d"] = Value::String(format!("{d}="));
    let der = jwk_to_pkcs8(&jwk).unwrap();
    let again = rcgen::KeyPair::try_from(der.as_slice()).unwrap();
    assert_eq!(again.public_key_raw(), original.public_key_raw());
}

#[test]
fn mismatched_or_broken_keys_are_refused_without_echoing_them() {
    let (jwk, _) = p256_jwk();
    let (other, _) = p256_jwk();
    let mut mixed = jwk.clone();
    mixed["x"] = other["x"].clone();
    mixed["y"] = other["y"].clone();
    let e = jwk_to_pkcs8(&mixed).unwrap_err();
    assert!(e.contains("valid P-256 key pair"), "{e}");
    assert!(!e.contains(jwk["d"].as_str().unwrap()));
    let mut missing = jwk.clone();
    missing.as_object_mut().unwrap().remove("d");
    assert!(jwk_to_pkcs8(&missing).unwrap_err().contains("\"d\""));
    let mut long = jwk;
    long["d"] = Value::String(URL_SAFE_NO_PAD.encode([1u8; 33]));
    assert!(jwk_to_pkcs8(&long).unwrap_err().contains("longer"));
}

#[test]
fn reads_certbot_account_directories() {
    let dir = tempfile::tempdir().unwrap();
    let (jwk, _) = p256_jwk();
    let acct = certbot_account_dir(dir.path(), "https://127.0.0.1:14000/dir", "abc");
    assert_eq!(acct, dir.path().join("accounts/127.0.0.1:14000/dir/abc"));
    std::fs::create_dir_all(&acct).unwrap();
    std::fs::write(
        acct.join("regr.json"),
        r#"{"body": {}, "uri": "https://127.0.0.1:14000/my-account/1"}"#,
    )
    .unwrap();
    std::fs::write(acct.join("meta.json"), r#"{"creation_host": "h"}"#).unwrap();
    std::fs::write(acct.join("private_key.json"), jwk.to_string()).unwrap();
    let a = read(&acct).unwrap();
    assert_eq!(a.uri, "https://127.0.0.1:14000/my-account/1");
    assert!(matches!(a.key, AccountKey::P256(_)));
    assert_eq!(format!("{:?}", a.key), "P256(<redacted>)");

    std::fs::write(
        acct.join("private_key.json"),
        r#"{"kty": "RSA", "n": "AQAB", "e": "AQAB", "d": "AQAB"}"#,
    )
    .unwrap();
    assert!(matches!(read(&acct).unwrap().key, AccountKey::Rsa));

    std::fs::write(acct.join("regr.json"), r#"{"body": {}}"#).unwrap();
    let e = read(&acct).unwrap_err().to_string();
    assert!(e.contains("regr.json") && e.contains("uri"), "{e}");
    std::fs::write(acct.join("regr.json"), "{").unwrap();
    let e = read(&acct).unwrap_err().to_string();
    assert!(e.contains("invalid JSON"), "{e}");
}

#[test]
fn lets_encrypt_layout() {
    assert_eq!(
        certbot_account_dir(
            Path::new("/etc/letsencrypt"),
            "https://acme-v02.api.letsencrypt.org/directory",
            "0123"
        ),
        PathBuf::from("/etc/letsencrypt/accounts/acme-v02.api.letsencrypt.org/directory/0123")
    );
}
