//! certbot's ACME accounts (`accounts/<server>/<id>/`) turned into
//! certkeep's account file, so the same ACME account keeps being used.
//!
//! certbot keeps the key as a JWK in `private_key.json` and the account URL
//! in `regr.json` (`"uri"`). instant-acme signs with ES256 only, so an EC
//! P-256 key is converted to PKCS#8; RSA keys (what certbot itself
//! generates) cannot be used and certkeep registers a new account instead.
//! Key material never appears in messages or `Debug` output.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("cannot read {path}: {source} (run the import as the user that owns the certbot directory, usually root)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a certbot account file: {detail}")]
    Invalid { path: PathBuf, detail: String },
}

/// A certbot account key, in the form certkeep can or cannot use.
pub enum AccountKey {
    /// EC P-256, as PKCS#8 DER (secret).
    P256(Vec<u8>),
    /// RSA: instant-acme cannot sign with it.
    Rsa,
    /// Any other kind ("EC P-384", ...).
    Other(String),
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountKey::P256(_) => f.write_str("P256(<redacted>)"),
            AccountKey::Rsa => f.write_str("Rsa"),
            AccountKey::Other(k) => write!(f, "Other({k})"),
        }
    }
}

/// One account directory of certbot's.
#[derive(Debug)]
pub struct CertbotAccount {
    pub dir: PathBuf,
    /// The account URL at the CA (certkeep's account id).
    pub uri: String,
    pub key: AccountKey,
}

/// `<from>/accounts/<host[:port]><path>/<id>`, as certbot lays it out.
pub fn certbot_account_dir(from: &Path, server: &str, id: &str) -> PathBuf {
    let mut p = from.join("accounts");
    match reqwest::Url::parse(server) {
        Ok(u) => {
            let host = match (u.host_str(), u.port()) {
                (Some(h), Some(port)) => format!("{h}:{port}"),
                (Some(h), None) => h.to_string(),
                _ => String::new(),
            };
            p.push(host);
            for seg in u.path().split('/').filter(|s| !s.is_empty()) {
                p.push(seg);
            }
        }
        Err(_) => p.push(server),
    }
    p.join(id)
}

/// Reads `regr.json`, `meta.json` and `private_key.json` from `dir`.
pub fn read(dir: &Path) -> Result<CertbotAccount, AccountError> {
    let regr = read_json(&dir.join("regr.json"))?;
    let meta = read_json(&dir.join("meta.json")).ok();
    let uri = regr
        .get("uri")
        .or_else(|| meta.as_ref().and_then(|m| m.get("uri")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| AccountError::Invalid {
            path: dir.join("regr.json"),
            detail: "it has no \"uri\" (the account URL)".into(),
        })?;
    let key_path = dir.join("private_key.json");
    let jwk = read_json(&key_path)?;
    let key = match jwk.get("kty").and_then(Value::as_str) {
        Some("RSA") => AccountKey::Rsa,
        Some("EC") if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => {
            AccountKey::P256(jwk_to_pkcs8(&jwk).map_err(|detail| AccountError::Invalid {
                path: key_path.clone(),
                detail,
            })?)
        }
        Some("EC") => AccountKey::Other(format!(
            "EC {}",
            jwk.get("crv")
                .and_then(Value::as_str)
                .unwrap_or("(no curve)")
        )),
        Some(k) => AccountKey::Other(k.to_string()),
        None => {
            return Err(AccountError::Invalid {
                path: key_path,
                detail: "the key has no \"kty\"".into(),
            })
        }
    };
    Ok(CertbotAccount {
        dir: dir.to_path_buf(),
        uri,
        key,
    })
}

fn read_json(path: &Path) -> Result<Value, AccountError> {
    let bytes = std::fs::read(path).map_err(|source| AccountError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    // Never echo the content: it may hold a private key.
    serde_json::from_slice(&bytes).map_err(|e| AccountError::Invalid {
        path: path.to_path_buf(),
        detail: format!("invalid JSON at line {}", e.line()),
    })
}

/// The EC P-256 JWK (`d`, `x`, `y`) as PKCS#8 DER (RFC 5208 with an RFC 5915
/// ECPrivateKey). The result is checked by loading it as an account key.
pub fn jwk_to_pkcs8(jwk: &Value) -> Result<Vec<u8>, String> {
    let field = |name: &str| -> Result<[u8; 32], String> {
        let s = jwk
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the EC key has no \"{name}\""))?;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| format!("\"{name}\" is not base64url"))?;
        // JWK coordinates are 32 bytes; tolerate stripped leading zeros.
        if raw.len() > 32 {
            return Err(format!("\"{name}\" is longer than a P-256 value"));
        }
        let mut out = [0u8; 32];
        out[32 - raw.len()..].copy_from_slice(&raw);
        Ok(out)
    };
    let (d, x, y) = (field("d")?, field("x")?, field("y")?);
    let mut der = Vec::with_capacity(138);
    der.extend_from_slice(&[
        0x30, 0x81, 0x87, // PrivateKeyInfo
        0x02, 0x01, 0x00, // version 0
        0x30, 0x13, // AlgorithmIdentifier
        0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, // id-ecPublicKey
        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, // prime256v1
        0x04, 0x6d, // privateKey OCTET STRING
        0x30, 0x6b, // ECPrivateKey
        0x02, 0x01, 0x01, // version 1
        0x04, 0x20, // privateKey
    ]);
    der.extend_from_slice(&d);
    der.extend_from_slice(&[0xa1, 0x44, 0x03, 0x42, 0x00, 0x04]); // [1] publicKey BIT STRING
    der.extend_from_slice(&x);
    der.extend_from_slice(&y);
    instant_acme::Key::from_pkcs8_der(rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_slice()))
        .map_err(|_| "d, x and y do not form a valid P-256 key pair".to_string())?;
    Ok(der)
}

/// certkeep's account file: instant-acme's `AccountCredentials` JSON.
pub fn credentials_json(uri: &str, pkcs8: &[u8], directory: &str) -> Result<Vec<u8>, String> {
    let json = serde_json::json!({
        "id": uri,
        "key_pkcs8": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pkcs8),
        "directory": directory,
    });
    // Make sure instant-acme reads back what we write.
    let _: instant_acme::AccountCredentials =
        serde_json::from_value(json.clone()).map_err(|_| "not valid account credentials")?;
    serde_json::to_vec_pretty(&json).map_err(|e| e.to_string())
}

/// The account id (URL) in an existing certkeep account file, if readable.
pub fn existing_id(path: &Path) -> Option<String> {
    let v: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v.get("id").and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests;
