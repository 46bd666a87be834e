//! What each fuzz target does with one input. Shared by the cargo-fuzz
//! targets (fuzz/fuzz_targets/) and tests/fuzz_regressions.rs, which replays
//! fuzz/regressions/<target>/* on every `cargo test`.

#![allow(dead_code)]

use std::path::Path;

/// `config`: the TOML config parser and validation.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = certkeep::config::Config::parse(text, Path::new("fuzz.toml"));
    }
}

/// `cert`: certificate facts from PEM (every certificate of a chain) and from
/// the bytes taken as DER, plus private key parsing.
pub fn cert(data: &[u8]) {
    if let Ok(chain) = certkeep::cert::parse_pem_chain(data, "fuzz") {
        for der in chain {
            let _ = certkeep::cert::facts(&der, "fuzz");
        }
    }
    let _ = certkeep::cert::facts(data, "fuzz");
    let _ = certkeep::cert::parse_pem_key(data, "fuzz");
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = certkeep::cert::key_spki_der(text);
    }
}

/// `certbot_ini`: certbot's renewal/*.conf parser.
pub fn certbot_ini(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = certkeep::certbot::ini::parse(text, Path::new("fuzz.conf"));
    }
}

/// Every target by name.
pub const TARGETS: [(&str, fn(&[u8])); 3] = [
    ("config", config),
    ("cert", cert),
    ("certbot_ini", certbot_ini),
];
