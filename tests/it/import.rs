//! `certkeep import certbot` against trees made by the real certbot (Debian's
//! 2.1) talking to the test bed's Pebble, and against hand-made trees.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use certkeep::config::{KeyType, Settings};
use certkeep::store::Store;
use common::{assert_exit, text, Bed, PebbleOptions};

/// Pebble without deliberately rejected nonces: Debian's certbot 2.1 retries
/// a bad nonce only once, and these tests are about the import, not certbot.
fn certbot_friendly() -> PebbleOptions {
    PebbleOptions {
        nonce_reject: 0,
        ..PebbleOptions::default()
    }
}

/// certbot with its three directories under `dir`, pointed at the bed's Pebble.
fn certbot(bed: &Bed, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("certbot")
        .arg("--config-dir")
        .arg(dir.join("etc"))
        .arg("--work-dir")
        .arg(dir.join("work"))
        .arg("--logs-dir")
        .arg(dir.join("logs"))
        .args(["--server", &bed.pebble.directory])
        .args(["--non-interactive", "--agree-tos"])
        .args(["--register-unsafely-without-email"])
        .args(args)
        .env("REQUESTS_CA_BUNDLE", &bed.pebble.api_ca)
        .output()
        .expect("run certbot");
    assert!(out.status.success(), "certbot {args:?}: {}", text(&out));
    out
}

fn certonly(bed: &Bed, dir: &Path, name: &str, domains: &[&str], extra: &[&str]) {
    let port = bed.nginx.http_port.to_string();
    let mut args = vec!["certonly", "--webroot", "-w"];
    let webroot = bed.webroot.display().to_string();
    args.push(&webroot);
    args.extend(["--cert-name", name, "--http-01-port", &port]);
    for d in domains {
        args.extend(["-d", d]);
    }
    args.extend(extra);
    certbot(bed, dir, &args);
}

/// A new EC P-256 key: the key pair, its PKCS#8 DER, and its JWK with the
/// private part (`d`) as certbot stores an account key.
fn ec_p256_key() -> (rcgen::KeyPair, Vec<u8>, serde_json::Value) {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pkcs8 = kp.serialize_der();
    let at = pkcs8
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .unwrap()
        + 5;
    let public = kp.public_key_raw();
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256",
        "d": URL_SAFE_NO_PAD.encode(&pkcs8[at..at + 32]),
        "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public[33..65]),
    });
    (kp, pkcs8, jwk)
}

/// Writes an account in certbot's layout into `dir`: the private key
/// `jwk`, the registration with its `uri`, and the metadata.
fn write_certbot_account(dir: &Path, jwk: &serde_json::Value, uri: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("private_key.json"), jwk.to_string()).unwrap();
    std::fs::write(
        dir.join("regr.json"),
        serde_json::json!({"body": {}, "uri": uri}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.join("meta.json"),
        r#"{"creation_dt": "2025-01-01T00:00:00Z", "creation_host": "localhost"}"#,
    )
    .unwrap();
}

/// Registers an EC P-256 account at Pebble and stores it the way certbot
/// does, so certbot (which makes RSA account keys itself) uses it.
fn seed_ec_account(bed: &Bed, etc: &Path) -> (String, String) {
    let (kp, pkcs8, jwk) = ec_p256_key();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uri = rt.block_on(async {
        let mut last = None;
        for _ in 0..5 {
            let key = instant_acme::Key::from_pkcs8_der(
                rustls_pki_types::PrivatePkcs8KeyDer::from(pkcs8.clone()),
            )
            .unwrap();
            let der = rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8.clone().into());
            let http = certkeep::net::client_builder(Some(&bed.pebble.api_ca))
                .unwrap()
                .build()
                .unwrap();
            match instant_acme::Account::builder_with_http(Box::new(
                certkeep::acme::http::AcmeHttp::new(http, Default::default()),
            ))
            .create_from_key((key, der), bed.pebble.directory.clone())
            .await
            {
                Ok((account, _)) => return account.id().to_string(),
                Err(e) => last = Some(e.to_string()),
            }
        }
        panic!("cannot register the seed account: {last:?}");
    });
    // certbot names the account directory by the MD5 of the public key PEM
    // (computed with the same Python library certbot uses).
    let spki = etc.parent().unwrap().join("spki.der");
    std::fs::write(&spki, rcgen::PublicKeyData::subject_public_key_info(&kp)).unwrap();
    let md5 = Command::new("python3")
        .args([
            "-c",
            "import hashlib,sys\nfrom cryptography.hazmat.primitives import serialization as s\nk=s.load_der_public_key(open(sys.argv[1],'rb').read())\nprint(hashlib.md5(k.public_bytes(s.Encoding.PEM,s.PublicFormat.SubjectPublicKeyInfo)).hexdigest())",
        ])
        .arg(&spki)
        .output()
        .unwrap();
    let id = String::from_utf8(md5.stdout).unwrap().trim().to_string();
    let dir = certkeep::certbot::account::certbot_account_dir(etc, &bed.pebble.directory, &id);
    write_certbot_account(&dir, &jwk, &uri);
    (id, uri)
}

/// The serial nginx serves on `port` for `sni` (lowercase hex, no leading zeros).
fn served_serial(port: u16, sni: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>/dev/null | openssl x509 -noout -serial"
        ))
        .output()
        .expect("openssl");
    norm_serial(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("serial="),
    )
}

fn norm_serial(s: &str) -> String {
    s.to_ascii_lowercase().trim_start_matches('0').to_string()
}

fn listing(config: &Path) -> Vec<serde_json::Value> {
    let out = common::certkeep(config, &["certificates", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every file under `dir` with its content (symlinks as their targets).
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_symlink() {
            out.push((
                p.clone(),
                std::fs::read_link(&p)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            ));
        } else if p.is_dir() {
            out.extend(snapshot(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn takes_over_certbot_lineages_with_the_same_account() {
    if !common::have("certbot") || !common::have("openssl") {
        return;
    }
    let Some(bed) = Bed::start(certbot_friendly()) else {
        return;
    };
    let cb = bed.dir.path().join("certbot");
    let etc = cb.join("etc");
    std::fs::create_dir_all(&etc).unwrap();
    let (account_id, account_uri) = seed_ec_account(&bed, &etc);
    certonly(
        &bed,
        &cb,
        "ec",
        &["ec.test", "www.ec.test"],
        &["--key-type", "ecdsa"],
    );
    certbot(
        &bed,
        &cb,
        &[
            "renew",
            "--force-renewal",
            "--no-random-sleep-on-renew",
            "--cert-name",
            "ec",
        ],
    );
    certonly(&bed, &cb, "rsa", &["rsa.test"], &["--key-type", "rsa"]);
    let conf = std::fs::read_to_string(etc.join("renewal/ec.conf")).unwrap();
    assert!(conf.contains(&format!("account = {account_id}")), "{conf}");
    assert!(etc.join("archive/ec/cert2.pem").exists());

    let before = snapshot(&etc);
    std::fs::write(&bed.config, bed.base_config()).unwrap();
    let from = etc.display().to_string();
    let out = bed.certkeep(&["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("systemctl disable --now certbot.timer"),
        "{}",
        text(&out)
    );

    // certbot's files are untouched; only certkeep's account file is new.
    let after = snapshot(&etc);
    let added: Vec<_> = after.iter().filter(|f| !before.contains(f)).collect();
    let store = Store::new(&etc);
    let account_file = certkeep::acme::account_path(&store, &bed.pebble.directory);
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].0, account_file);
    assert!(before.iter().all(|f| after.contains(f)));
    let mode = std::fs::metadata(&account_file)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&account_file).unwrap()).unwrap();
    assert_eq!(creds["id"], account_uri.as_str());
    assert_eq!(creds["directory"], bed.pebble.directory.as_str());

    let config = Settings::load(&bed.config).unwrap();
    assert_eq!(config.store, etc);
    let names: Vec<&str> = config.certificates.iter().map(|c| c.name()).collect();
    assert_eq!(names, ["ec", "rsa"]);
    let ec = config.certificate("ec").unwrap();
    let mut domains = ec.domain_names();
    domains.sort();
    assert_eq!(domains, ["ec.test", "www.ec.test"]);
    assert_eq!(ec.key_type, KeyType::EcdsaP256);
    assert_eq!(ec.webroot.as_deref(), Some(bed.webroot.as_path()));
    let rsa = config.certificate("rsa").unwrap();
    assert_eq!(rsa.domain_names(), ["rsa.test"]);
    assert_eq!(rsa.key_type, KeyType::Rsa2048);
    assert_eq!(rsa.webroot.as_deref(), Some(bed.webroot.as_path()));

    // nginx keeps certbot's live paths.
    let live = etc.join("live/ec");
    let port = bed.nginx.tls_site(
        "ec",
        "ec.test",
        &live.join("fullchain.pem"),
        &live.join("privkey.pem"),
        "",
    );
    bed.nginx.reload();
    let old = norm_serial(listing(&bed.config)[0]["serial"].as_str().unwrap());
    common::wait_for(
        "nginx to serve certbot's certificate",
        Duration::from_secs(10),
        || served_serial(port, "ec.test") == old,
    );

    // What the walkthrough's "add endpoint probes" step does: tell certkeep
    // where the certificate is served so the renewal confirms it there.
    let written = std::fs::read_to_string(&bed.config).unwrap();
    std::fs::write(
        &bed.config,
        written.replacen(
            "name = \"ec\"\n",
            &format!("name = \"ec\"\nendpoint = \"127.0.0.1:{port}\"\n"),
            1,
        ),
    )
    .unwrap();
    let out = bed.certkeep(&["renew", "--force", "--cert", "ec", "-vv"]);
    assert_exit(&out, 0);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("registered a new ACME account"),
        "{}",
        text(&out)
    );
    let l = listing(&bed.config);
    let ec_now = l.iter().find(|c| c["name"] == "ec").unwrap();
    assert_eq!(ec_now["version"], 3, "{ec_now}");
    assert!(etc.join("archive/ec/cert3.pem").exists());
    let new = norm_serial(ec_now["serial"].as_str().unwrap());
    assert_ne!(new, old);
    bed.nginx.reload();
    common::wait_for(
        "nginx to serve the renewed certificate",
        Duration::from_secs(15),
        || served_serial(port, "ec.test") == new,
    );
    assert_eq!(
        std::fs::read(&account_file).unwrap(),
        serde_json::to_vec_pretty(&creds).unwrap(),
        "the account file is unchanged"
    );
}

#[test]
fn rsa_account_from_certbot_is_reported_and_replaced() {
    if !common::have("certbot") {
        return;
    }
    let Some(bed) = Bed::start(certbot_friendly()) else {
        return;
    };
    let cb = bed.dir.path().join("certbot");
    certonly(&bed, &cb, "plain", &["plain.test"], &[]);
    let etc = cb.join("etc");
    std::fs::write(&bed.config, bed.base_config()).unwrap();
    let from = etc.display().to_string();
    let out = bed.certkeep(&["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("RSA key"), "{}", text(&out));
    assert!(stdout.contains("register a new account"), "{}", text(&out));
    let account_file = certkeep::acme::account_path(&Store::new(&etc), &bed.pebble.directory);
    assert!(!account_file.exists());

    let out = bed.certkeep(&["issue", "plain", "-v"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("registered a new ACME account"),
        "{}",
        text(&out)
    );
    assert!(account_file.exists());
    assert_eq!(listing(&bed.config)[0]["version"], 2);
}

/// A certbot-shaped tree with one version per lineage, made without a CA.
pub(crate) fn fake_lineage(etc: &Path, name: &str, domains: &[&str], renewal: &str) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let params =
        rcgen::CertificateParams::new(domains.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap().pem();
    let archive = etc.join("archive").join(name);
    let live = etc.join("live").join(name);
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    std::fs::create_dir_all(etc.join("renewal")).unwrap();
    for (kind, body) in [
        ("cert", cert.clone()),
        ("chain", String::new()),
        ("fullchain", cert.clone()),
        ("privkey", key.serialize_pem()),
    ] {
        std::fs::write(archive.join(format!("{kind}1.pem")), body).unwrap();
        std::os::unix::fs::symlink(
            format!("../../archive/{name}/{kind}1.pem"),
            live.join(format!("{kind}.pem")),
        )
        .unwrap();
    }
    std::fs::write(etc.join(format!("renewal/{name}.conf")), renewal).unwrap();
}

/// A temp dir holding certbot's tree (`letsencrypt/`, returned) with one
/// lineage, "web" for web.test and www.web.test, renewed by `renewal`.
fn web_lineage(renewal: &str) -> (tempfile::TempDir, PathBuf) {
    let d = common::open_tempdir();
    let etc = d.path().join("letsencrypt");
    fake_lineage(&etc, "web", &["web.test", "www.web.test"], renewal);
    (d, etc)
}

const HEAD: &str = "# certkeep for this host
store = \"/var/lib/certkeep\"

[acme]
# the CA
directory = \"https://ca.test/dir\"

[[certificate]]
name = \"kept\" # mine
domains = [\"kept.test\"]
webroot = \"/var/www/kept\"
";

#[test]
fn standalone_lineage_blocks_the_import_and_nothing_is_written() {
    let (d, etc) = web_lineage(
        "version = 2.1.0\narchive_dir = /nowhere\n\n[renewalparams]\nauthenticator = webroot\nserver = https://ca.test/dir\nwebroot_path = /var/www/certbot,\nkey_type = ecdsa\nrenew_hook = systemctl reload nginx\n[[webroot_map]]\nweb.test = /var/www/certbot\nwww.web.test = /var/www/certbot\n",
    );
    fake_lineage(
        &etc,
        "alone",
        &["alone.test"],
        "[renewalparams]\nauthenticator = standalone\nserver = https://ca.test/dir\n",
    );
    let cfg = d.path().join("certkeep.toml");
    std::fs::write(&cfg, HEAD).unwrap();
    let from = etc.display().to_string();
    let tree = snapshot(&etc);

    let out = common::certkeep(&cfg, &["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alone: authenticator is standalone"), "{err}");
    assert!(err.contains("what to do:"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), HEAD);
    assert_eq!(snapshot(&etc), tree);

    // Dry run of the importable one: the plan, no writes.
    let out = common::certkeep(
        &cfg,
        &[
            "import",
            "certbot",
            "--from",
            &from,
            "--cert",
            "web",
            "--write",
            "--dry-run",
        ],
    );
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("name = \"web\""));
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), HEAD);

    // The config's store holds no lineage for "kept", so it may move.
    let out = common::certkeep(
        &cfg,
        &[
            "import", "certbot", "--from", &from, "--cert", "web", "--write",
        ],
    );
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("archive_dir is /nowhere"),
        "{}",
        text(&out)
    );
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        written.starts_with("# certkeep for this host\n"),
        "{written}"
    );
    assert!(written.contains("# the CA\n"), "{written}");
    assert!(written.contains("name = \"kept\" # mine"), "{written}");
    assert!(
        written.contains(&format!("store = \"{from}\"")),
        "{written}"
    );
    assert!(
        written.contains("deploy_hook = [\"/bin/sh\", \"-c\", \"systemctl reload nginx\"]"),
        "{written}"
    );
    let config = Settings::parse(&written, &cfg).unwrap();
    let web = config.certificate("web").unwrap();
    assert_eq!(web.domain_names(), ["web.test", "www.web.test"]);
    assert_eq!(web.webroot.as_deref(), Some(Path::new("/var/www/certbot")));
    assert!(config.certificate("kept").is_some());
    assert_eq!(snapshot(&etc), tree, "certbot's tree is unchanged");

    // A second import refuses to overwrite, --force replaces in place.
    let out = common::certkeep(
        &cfg,
        &[
            "import", "certbot", "--from", &from, "--cert", "web", "--write",
        ],
    );
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        text(&out)
    );
    let out = common::certkeep(
        &cfg,
        &[
            "import", "certbot", "--from", &from, "--cert", "web", "--write", "--force",
        ],
    );
    assert_exit(&out, 0);
    let again = std::fs::read_to_string(&cfg).unwrap();
    assert_eq!(again.matches("name = \"web\"").count(), 1, "{again}");
}

#[test]
fn broken_renewal_file_is_reported_with_file_and_line() {
    let d = common::open_tempdir();
    let etc = d.path().join("letsencrypt");
    fake_lineage(
        &etc,
        "bad",
        &["bad.test"],
        "[renewalparams]\nauthenticator = webroot\nthis is not ini\n",
    );
    let cfg = d.path().join("none.toml");
    let out = common::certkeep(
        &cfg,
        &["import", "certbot", "--from", &etc.display().to_string()],
    );
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("renewal/bad.conf:3: expected `key = value`"),
        "{err}"
    );
    assert!(!cfg.exists());

    let out = common::certkeep(
        &cfg,
        &["import", "certbot", "--from", "/nonexistent/letsencrypt"],
    );
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--from"),
        "{}",
        text(&out)
    );
}

/// Importing lineages of a CA other than Let's Encrypt into a new config sets
/// `[acme] staging_directory` too, so `renew --dry-run` never goes to Let's
/// Encrypt's staging CA for them (certbot's --dry-run used the same server).
#[test]
fn import_from_another_ca_sets_the_dry_run_directory() {
    let d = common::open_tempdir();
    let etc = d.path().join("letsencrypt");
    fake_lineage(
        &etc,
        "web",
        &["web.test"],
        "version = 2.1.0\n\n[renewalparams]\nauthenticator = webroot\nserver = https://ca.test/dir\nwebroot_path = /var/www/certbot,\nkey_type = ecdsa\n[[webroot_map]]\nweb.test = /var/www/certbot\n",
    );
    let cfg = d.path().join("certkeep.toml");
    let from = etc.display().to_string();
    let out = common::certkeep(&cfg, &["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        written.contains("[acme]\ndirectory = \"https://ca.test/dir\"\n# renew --dry-run orders here, as certbot --dry-run did")
            && written.contains("\nstaging_directory = \"https://ca.test/dir\"\n"),
        "{written}"
    );
    let config = Settings::load(&cfg).unwrap();
    assert_eq!(config.acme.directory.as_str(), "https://ca.test/dir");
    assert_eq!(
        config.acme.dry_run_directory().unwrap().as_str(),
        "https://ca.test/dir"
    );
}

#[test]
fn certbot_profiles_are_carried_over() {
    let d = common::open_tempdir();
    let etc = d.path().join("letsencrypt");
    let params = "[renewalparams]\nauthenticator = webroot\nserver = https://ca.test/dir\nwebroot_path = /var/www/certbot,\nkey_type = ecdsa\n";
    fake_lineage(
        &etc,
        "pref",
        &["pref.test"],
        &format!("{params}preferred_profile = tlsserver\n"),
    );
    fake_lineage(
        &etc,
        "req",
        &["req.test"],
        &format!("{params}required_profile = shortlived\n"),
    );
    fake_lineage(
        &etc,
        "both",
        &["both.test"],
        &format!("{params}required_profile = shortlived\npreferred_profile = classic\n"),
    );
    fake_lineage(&etc, "none", &["none.test"], params);
    let cfg = d.path().join("certkeep.toml");
    std::fs::write(&cfg, HEAD).unwrap();
    let from = etc.display().to_string();
    let out = common::certkeep(&cfg, &["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    assert!(
        text(&out).contains(
            "both: both required_profile = shortlived and preferred_profile = classic are set; certkeep requires shortlived"
        ),
        "{}",
        text(&out)
    );
    let written = std::fs::read_to_string(&cfg).unwrap();
    let config = Settings::parse(&written, &cfg).unwrap();
    assert_eq!(
        common::wanted_profiles(&config, &["pref", "req", "both", "none"]),
        [
            "pref: tlsserver (preferred)",
            "req: shortlived (required)",
            "both: shortlived (required)",
            "none: no profile",
        ]
    );
    assert!(written.contains("profile_mode = \"required\""), "{written}");
}

/// An EC P-256 account laid out as certbot stores it, for `server`, made
/// without a CA (the import does not contact it).
fn offline_ec_account(etc: &Path, server: &str, uri: &str) {
    let (_, _, jwk) = ec_p256_key();
    let dir = certkeep::certbot::account::certbot_account_dir(
        etc,
        server,
        "0123456789abcdef0123456789abcdef",
    );
    write_certbot_account(&dir, &jwk, uri);
}

/// `import certbot --dry-run` (with or without `--write`) and the plain
/// plan write nothing anywhere: not the config, not the account file, not
/// certbot's tree. What it prints is what `--write` then writes.
#[test]
fn import_dry_run_writes_nothing_and_shows_what_write_writes() {
    let (d, etc) = web_lineage(
        "version = 2.1.0\n\n[renewalparams]\nauthenticator = webroot\naccount = 0123456789abcdef0123456789abcdef\nserver = https://ca.test/dir\nwebroot_path = /var/www/certbot,\nkey_type = ecdsa\n",
    );
    offline_ec_account(&etc, "https://ca.test/dir", "https://ca.test/acct/17");
    let cfg = d.path().join("conf").join("certkeep.toml");
    let from = etc.display().to_string();
    let before = snapshot(d.path());
    assert!(before.len() >= 12, "lineage and account files: {before:?}");

    let mut shown = Vec::new();
    for args in [&["--write", "--dry-run"][..], &["--dry-run"], &[]] {
        let mut all = vec!["import", "certbot", "--from", &from];
        all.extend(args);
        let out = common::certkeep(&cfg, &all);
        assert_exit(&out, 0);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("nothing was written"),
            "{args:?}: {}",
            text(&out)
        );
        if args.contains(&"--dry-run") {
            assert!(
                err.contains("dry run: nothing was written"),
                "{args:?}: {err}"
            );
        }
        assert!(
            err.contains("https://ca.test/acct/17"),
            "{args:?}: the plan names the account it would convert: {err}"
        );
        assert_eq!(snapshot(d.path()), before, "{args:?} wrote something");
        assert!(!cfg.exists());
        shown.push(String::from_utf8(out.stdout).unwrap());
    }
    assert!(shown[0].contains("name = \"web\""), "{}", shown[0]);
    assert!(shown.iter().all(|s| *s == shown[0]));

    let out = common::certkeep(&cfg, &["import", "certbot", "--from", &from, "--write"]);
    assert_exit(&out, 0);
    assert_eq!(
        std::fs::read_to_string(&cfg).unwrap(),
        shown[0],
        "--write writes what --dry-run showed"
    );
    let after = snapshot(d.path());
    let new: Vec<&PathBuf> = after
        .iter()
        .map(|(p, _)| p)
        .filter(|p| !before.iter().any(|(q, _)| q == *p))
        .collect();
    assert!(
        new.iter().any(|p| p.ends_with("account.json")),
        "--write converts the account: {new:?}"
    );
}
