//! What each fuzz target does with one input. Shared by the cargo-fuzz
//! targets (fuzz/fuzz_targets/) and tests/fuzz_regressions.rs, which replays
//! fuzz/regressions/<target>/* on every `cargo test`.

#![allow(dead_code)]

use std::path::Path;

/// `config`: the TOML config parser and validation.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = certkeep::config::Settings::parse(text, Path::new("fuzz.toml"));
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

/// `legacy`: the TLS 1.0/1.1 probe's reading of a server's first bytes. The
/// first two input bytes are the offered version. Beyond not panicking, a
/// "need more" answer must ask for more than it was given.
pub fn legacy(data: &[u8]) {
    let Some((v, reply)) = data.split_first_chunk::<2>() else {
        return;
    };
    let offered = u16::from_be_bytes(*v);
    if let Ok(certkeep::probe::legacy::Reply::NeedMore(n)) =
        certkeep::probe::legacy::classify_reply(offered, reply)
    {
        assert!(n > reply.len(), "NeedMore({n}) with {} bytes", reply.len());
    }
}

/// What a target does with one input.
pub type Entry = fn(&[u8]);

/// Every target by name.
pub const TARGETS: [(&str, Entry); 4] = [
    ("config", config),
    ("cert", cert),
    ("certbot_ini", certbot_ini),
    ("legacy", legacy),
];
