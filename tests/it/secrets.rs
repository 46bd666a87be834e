//! Secrets audit: issuance with external account binding and renewals at
//! trace level (every crate, `RUST_LOG=trace`, and `-vvv`), in human and JSON
//! log formats; no secret may appear on stdout or stderr. Also a failed
//! renewal whose alerts go out by SMTP (with a password) and to a webhook
//! (with a bearer token), traced the same way.

use crate::common;
use crate::common::{http_receiver, smtp};

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine;
use common::{assert_exit, text, Bed, PebbleOptions};

/// Runs certkeep with every log at trace level.
fn traced(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certkeep"))
        .arg("--config")
        .arg(config)
        .arg("-vvv")
        .args(args)
        .env("RUST_LOG", "trace")
        .output()
        .expect("run certkeep")
}

fn account_json(store: &Path) -> serde_json::Value {
    fn find(dir: &Path) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if p.is_dir() {
                if let Some(f) = find(&p) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n == "account.json") {
                return Some(p);
            }
        }
        None
    }
    let p = find(&store.join("accounts")).expect("account.json in the store");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Base64 body lines of every private key in the lineage's archive.
fn key_lines(store: &Path, name: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(store.join("archive").join(name))
        .unwrap()
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with("privkey") {
            let pem = std::fs::read_to_string(e.path()).unwrap();
            lines.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                    .map(str::to_string),
            );
        }
    }
    lines
}

#[test]
fn no_secret_reaches_stdout_or_stderr_at_trace_level() {
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let hmac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let Some(bed) = Bed::start(PebbleOptions {
        nonce_reject: 5,
        authz_reuse: 0,
        eab: Some(("kid-1".into(), hmac.clone())),
    }) else {
        return;
    };
    let key_file = bed.dir.path().join("eab.key");
    std::fs::write(&key_file, format!("{hmac}\n")).unwrap();
    let eab = format!(
        "\n[acme.eab]\nkey_id = \"kid-1\"\nhmac_key_file = \"{}\"\n",
        key_file.display()
    );
    bed.write_config(&format!(
        "{eab}{}",
        bed.cert_block("sec", &["sec.test", "www.sec.test"], "confirm = false")
    ));

    // Without the binding Pebble refuses the account: proves EAB is in use.
    let no_eab = bed.dir.path().join("no-eab.toml");
    std::fs::write(
        &no_eab,
        format!(
            "{}{}",
            bed.base_config(),
            bed.cert_block("sec", &["sec.test"], "confirm = false")
        )
        .replace(
            &bed.store.display().to_string(),
            &bed.dir.path().join("other").display().to_string(),
        ),
    )
    .unwrap();
    let refused = traced(&no_eab, &["issue", "sec"]);
    assert_exit(&refused, 1);

    let mut outputs = vec![refused];
    for args in [
        &["issue", "sec"][..],
        &["renew", "--force"],
        &["renew"],
        &["--log-format", "json", "renew", "--force"],
        &["certificates", "--json"],
    ] {
        let out = traced(&bed.config, args);
        assert_exit(&out, 0);
        outputs.push(out);
    }

    let account = account_json(&bed.store);
    let account_key = account["key_pkcs8"]
        .as_str()
        .expect("key_pkcs8 in account.json")
        .to_string();
    let account_der = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(account_key.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(&account_key))
        .expect("account key is base64");
    let mut secrets: Vec<(String, String)> = vec![
        ("EAB HMAC (base64url)".into(), hmac.clone()),
        ("EAB HMAC (hex)".into(), hex::encode(raw)),
        (
            "EAB HMAC (standard base64)".into(),
            base64::engine::general_purpose::STANDARD.encode(raw),
        ),
        ("account key (key_pkcs8)".into(), account_key.clone()),
        ("account key (hex DER)".into(), hex::encode(&account_der)),
    ];
    let lines = key_lines(&bed.store, "sec");
    assert!(lines.len() >= 6, "three private keys with a few lines each");
    for (i, l) in lines.into_iter().enumerate() {
        secrets.push((format!("certificate private key line {i}"), l));
    }

    let mut total = 0;
    for out in &outputs {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        total += all.len();
        for (what, secret) in &secrets {
            assert!(
                !all.contains(secret.as_str()),
                "{what} appears in the output:\n{}",
                text(out)
            );
        }
    }
    // The trace logs really were on (and long).
    assert!(
        total > 50_000,
        "only {total} bytes of output at trace level"
    );
    eprintln!(
        "secrets audit: {} secrets checked against {total} bytes of output",
        secrets.len()
    );
}

#[test]
fn alert_secrets_stay_out_of_a_traced_failed_renewal() {
    const SMTP_PASSWORD: &str = "renew-sm7p-pa55word-do-not-log";
    const BEARER: &str = "Bearer renew-t0ken-do-not-log";
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // One server offers only AUTH PLAIN, the other only AUTH LOGIN, so the
    // password travels in both base64 forms.
    let smtp = rt.block_on(smtp::SmtpServer::start(smtp::Options {
        mechanisms: "PLAIN",
        credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
        ..Default::default()
    }));
    let smtp_login = rt.block_on(smtp::SmtpServer::start(smtp::Options {
        mechanisms: "LOGIN",
        credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
        ..Default::default()
    }));
    let hook = rt.block_on(http_receiver::Receiver::start(vec![]));
    let secret = |name: &str, value: &str| {
        let p = bed.dir.path().join(name);
        std::fs::write(&p, value).unwrap();
        p
    };
    let pw = secret("smtp-password", SMTP_PASSWORD);
    let auth = secret("hook-auth", BEARER);
    let elsewhere = bed.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    // A webroot nginx does not serve: the renewal fails and both channels fire.
    bed.write_config(&format!(
        r#"
[alert]
resolve_after_checks = 1

[[alert.channel]]
name = "mail"
type = "email"
from = "certkeep <certkeep@example.test>"
to = ["ops@example.test"]
smtp_host = "127.0.0.1"
smtp_port = {port}
tls = "none"
username = "certkeep"
password_file = {pw:?}

[[alert.channel]]
name = "mail-login"
type = "email"
from = "certkeep <certkeep@example.test>"
to = ["ops@example.test"]
smtp_host = "127.0.0.1"
smtp_port = {login_port}
tls = "none"
username = "certkeep"
password_file = {pw:?}

[[alert.channel]]
name = "hook"
type = "webhook"
url = {url:?}
headers_from_files = {{ Authorization = {auth:?} }}

[[certificate]]
name = "fails"
domains = ["fails.test"]
webroot = {elsewhere:?}
confirm = false
"#,
        port = smtp.port,
        login_port = smtp_login.port,
        url = hook.url("/hook"),
    ));
    let mut outputs = Vec::new();
    for args in [
        &["renew"][..],
        &["--log-format", "json", "renew", "--force"],
    ] {
        let out = traced(&bed.config, args);
        assert_exit(&out, 1);
        outputs.push(out);
    }
    // The secrets did reach the servers, so the check below means something.
    for (server, mechanism) in [(&smtp, "PLAIN"), (&smtp_login, "LOGIN")] {
        let mails = server.mails();
        assert!(!mails.is_empty(), "no mail over AUTH {mechanism}");
        assert_eq!(
            mails[0].auth.clone(),
            Some((
                "certkeep".to_string(),
                SMTP_PASSWORD.to_string(),
                mechanism.to_string()
            )),
            "AUTH {mechanism}"
        );
    }
    // The password as the AUTH commands carry it: PLAIN sends
    // base64("\0user\0password") (some clients repeat the user as the
    // authorization identity), LOGIN base64("password") on its own line.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let b64_unpadded = |s: &str| base64::engine::general_purpose::STANDARD_NO_PAD.encode(s);
    let plain = format!("\0certkeep\0{SMTP_PASSWORD}");
    let plain_authz = format!("certkeep\0certkeep\0{SMTP_PASSWORD}");
    let encoded = [
        b64(&plain),
        b64_unpadded(&plain),
        b64(&plain_authz),
        b64_unpadded(&plain_authz),
        b64(SMTP_PASSWORD),
        b64_unpadded(SMTP_PASSWORD),
    ];
    assert_eq!(hook.requests()[0].header("authorization"), Some(BEARER));
    for out in &outputs {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // A failed self-check now stops before the CA is contacted, so the
        // output is short; trace lines from the HTTP clients show the level.
        assert!(
            all.contains("TRACE") && all.contains("hyper"),
            "trace logging was on:\n{}",
            text(out)
        );
        let literal = [SMTP_PASSWORD, BEARER, "renew-t0ken-do-not-log"];
        for secret in literal
            .iter()
            .copied()
            .chain(encoded.iter().map(|s| s.as_str()))
        {
            assert!(
                !all.contains(secret),
                "{secret} in the output:\n{}",
                text(out)
            );
        }
    }
}
