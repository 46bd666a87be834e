use super::*;
use std::time::Duration;

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new("t.toml"))
}

fn err(text: &str) -> (usize, usize, String) {
    match parse(text) {
        Err(ConfigError::Invalid {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

const MIN: &str = r#"
[[certificate]]
name = "example.com"
domains = ["example.com", "WWW.Example.com."]
webroot = "/var/www/certbot"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MIN).unwrap();
    assert_eq!(c.store, PathBuf::from("/var/lib/certkeep"));
    assert_eq!(c.acme.directory.as_str(), LETSENCRYPT_DIRECTORY);
    assert_eq!(
        c.acme.dry_run_directory().unwrap().as_str(),
        LETSENCRYPT_STAGING_DIRECTORY
    );
    assert!(c.http01.self_check);
    assert_eq!(c.http01.self_check_port, 80);
    assert_eq!(c.nginx.test_command.argv(), vec!["nginx", "-t"]);
    assert_eq!(c.nginx.reload_command.argv(), vec!["nginx", "-s", "reload"]);
    let cert = &c.certificates[0];
    assert_eq!(cert.name(), "example.com");
    assert_eq!(cert.domain_names(), vec!["example.com", "www.example.com"]);
    assert_eq!(cert.key_type, KeyType::EcdsaP256);
    assert!(!cert.reuse_key);
    assert_eq!(cert.confirm_endpoint(), "example.com:443");
    assert_eq!(
        cert.webroot_for("www.example.com"),
        Some(Path::new("/var/www/certbot"))
    );
}

#[test]
fn empty_file_is_valid() {
    let c = parse("").unwrap();
    assert!(c.certificates.is_empty());
}

/// A readable PEM CA file (the one the tests' CA uses is not needed: any
/// certificate will do).
fn ca_file(dir: &Path) -> PathBuf {
    let p = dir.join("ca.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ca.test".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&p, cert.pem()).unwrap();
    p
}

#[test]
fn full_config_parses() {
    let d = tempfile::tempdir().unwrap();
    let ca = ca_file(d.path());
    let c = parse(&format!(
        r#"
store = "/etc/letsencrypt"
[acme]
directory = "https://ca.example/dir"
staging_directory = "https://ca.example/staging"
ca_bundle = "{}"
email = "mailto:ops@example.com"
order_timeout = "3m"
[acme.eab]
key_id = "kid"
hmac_key_env = "EAB_HMAC"
[http01]
self_check = false
[nginx]
reload_command = ["systemctl", "reload", "nginx"]
confirm_timeout = "20s"
[renewal]
renew_before = "1/2"
lock_wait = "1m"
[hooks]
post_hook = ["/usr/local/bin/notify"]
[[certificate]]
name = "a"
domains = ["a.example", "b.example"]
webroot_map = {{ "a.example" = "/srv/a", "b.example" = "/srv/b" }}
key_type = "rsa4096"
reuse_key = true
renew_before = "30d"
endpoint = "127.0.0.1:8443"
deploy_hook = ["/bin/true"]
"#,
        ca.display()
    ))
    .unwrap();
    assert_eq!(c.acme.email, Some(Email::new("ops@example.com").unwrap()));
    assert_eq!(c.acme.order_timeout.get(), Duration::from_secs(180));
    assert_eq!(
        c.renewal.renew_before,
        Some(crate::config::TimeLeft::fraction(0.5).unwrap())
    );
    let a = &c.certificates[0];
    assert_eq!(a.key_type, KeyType::Rsa4096);
    assert_eq!(
        a.renew_before,
        Some(crate::config::TimeLeft::duration(Duration::from_secs(30 * 86400)).unwrap())
    );
    assert_eq!(a.webroot_for("b.example"), Some(Path::new("/srv/b")));
    assert_eq!(a.confirm_endpoint(), "127.0.0.1:8443");
    assert_eq!(a.deploy_hook, Some(Command::new(["/bin/true"]).unwrap()));
}

#[test]
fn unknown_key_is_rejected_at_its_position() {
    let (line, col, msg) = err("[[certificate]]\nname = \"a\"\ndomain = [\"x.example\"]\n");
    assert_eq!((line, col), (3, 1));
    assert!(msg.contains("unknown field `domain`"), "{msg}");
    assert!(
        msg.contains("domains"),
        "the message lists the valid keys: {msg}"
    );
}

#[test]
fn bad_values_point_at_the_value() {
    let base = "[[certificate]]\nname = \"a\"\nwebroot = \"/w\"\n";
    let (line, col, msg) = err(&format!("{base}domains = [\"ok.example\", \"no way\"]\n"));
    assert_eq!(line, 4);
    assert_eq!(col, 26, "points at the bad entry of domains");
    assert!(msg.contains("not a valid DNS name"), "{msg}");

    let (_, _, msg) = err(&format!("{base}domains = [\"*.example.com\"]\n"));
    assert!(msg.contains("wildcard"), "{msg}");
    let (_, _, msg) = err(&format!("{base}domains = [\"10.0.0.1.5\"]\n"));
    assert!(msg.contains("not a valid IPv4 address"), "{msg}");
    let (line, _, msg) = err(&format!(
        "{base}domains = [\"a.example\"]\nkey_type = \"dsa\"\n"
    ));
    assert_eq!(line, 5);
    assert!(
        msg.contains("ecdsa-p256"),
        "lists the valid key types: {msg}"
    );
    let (_, _, msg) = err(&format!(
        "{base}domains = [\"a.example\"]\nrenew_before = \"soon\"\n"
    ));
    assert!(msg.contains("neither a duration"), "{msg}");
    let (_, _, msg) = err(&format!(
        "{base}domains = [\"a.example\"]\nrenew_before = 1.5\n"
    ));
    assert!(msg.contains("between 0 and 1"), "{msg}");
    let (_, _, msg) = err("[acme]\ndirectory = \"ftp://x\"\n");
    assert!(msg.contains("not an http(s) URL"), "{msg}");
    let (_, _, msg) = err("[acme]\nemail = \"nobody\"\n");
    assert!(msg.contains("not an email"), "{msg}");
    let (_, _, msg) = err("[nginx]\nreload_command = []\n");
    assert!(msg.contains("non-empty"), "{msg}");
    let (_, _, msg) = err("[acme]\norder_timeout = \"forever\"\n");
    assert!(msg.contains("duration"), "{msg}");
    let (line, _, msg) =
        err("[[certificate]]\nname = \"../etc\"\ndomains = [\"a.example\"]\nwebroot = \"/w\"\n");
    assert_eq!(line, 2);
    assert!(msg.contains("invalid certificate name"), "{msg}");
}

#[test]
fn cross_field_errors_point_at_the_offending_value() {
    let (line, _, msg) = err(
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\nwebroot = \"/w\"\n\n[[certificate]]\nname = \"a\"\ndomains = [\"b.example\"]\nwebroot = \"/w\"\n",
    );
    assert_eq!(line, 7);
    assert!(msg.contains("used twice"), "{msg}");

    let (line, col, msg) = err("[[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\n");
    assert_eq!((line, col), (3, 12), "points at the domain");
    assert!(msg.contains("no webroot"), "{msg}");

    let (_, _, msg) = err("[[certificate]]\nname = \"a\"\ndomains = []\nwebroot = \"/w\"\n");
    assert!(msg.contains("no domains"), "{msg}");

    let (_, _, msg) = err("[[certificate]]\nname = \"a\"\ndomains = [\"a.example\", \"A.example\"]\nwebroot = \"/w\"\n");
    assert!(msg.contains("twice"), "{msg}");

    let (_, _, msg) = err("[[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\nwebroot = \"/w\"\nwebroot_map = { \"b.example\" = \"/x\" }\n");
    assert!(msg.contains("not in domains"), "{msg}");

    let (line, col, msg) = err("store = \"/s\"\n\n[acme.eab]\nkey_id = \"k\"\n");
    assert_eq!((line, col), (3, 1), "points at [acme.eab]");
    assert!(msg.contains("hmac_key_file"), "{msg}");
}

#[test]
fn syntax_errors_have_positions() {
    let (line, col, _) = err("store = \"/x\"\n[acme\n");
    assert_eq!(line, 2);
    assert!(col >= 1);
    let e = parse("a = \n").unwrap_err().to_string();
    assert!(e.starts_with("t.toml:1:"), "{e}");
}

#[test]
fn line_column_counts_characters() {
    assert_eq!(line_column("ab\ncd", 0), (1, 1));
    assert_eq!(line_column("ab\ncd", 3), (2, 1));
    assert_eq!(line_column("ab\ncd", 4), (2, 2));
    assert_eq!(line_column("é\nx", 3), (2, 1));
    assert_eq!(line_column("abc", 99), (1, 4));
}

#[test]
fn missing_file_names_the_path() {
    let e = Settings::load(Path::new("/nonexistent/certkeep.toml")).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("/nonexistent/certkeep.toml") && s.contains("--config"),
        "{s}"
    );
}

#[test]
fn shipped_example_config_is_valid() {
    let text = include_str!("../../config/certkeep.example.toml");
    let c = Settings::parse(text, Path::new("config/certkeep.example.toml")).unwrap();
    assert_eq!(c.certificates.len(), 1);
}

#[test]
fn dry_run_directory_defaults_to_staging_only_for_lets_encrypt() {
    let le = parse("").unwrap();
    assert_eq!(
        le.acme.dry_run_directory().unwrap().as_str(),
        LETSENCRYPT_STAGING_DIRECTORY
    );
    let other = parse("[acme]\ndirectory = \"https://ca.example/dir\"\n").unwrap();
    let e = other.acme.dry_run_directory().unwrap_err();
    assert!(
        e.contains("staging_directory") && e.contains("https://ca.example/dir"),
        "{e}"
    );
    let set = parse(
        "[acme]\ndirectory = \"https://ca.example/dir\"\nstaging_directory = \"https://ca.example/test\"\n",
    )
    .unwrap();
    assert_eq!(
        set.acme.dry_run_directory().unwrap().as_str(),
        "https://ca.example/test"
    );
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
}

#[test]
fn plain_http_directory_loads_with_a_positioned_warning() {
    let c = parse("store = \"/s\"\n[acme]\ndirectory = \"http://127.0.0.1:14000/dir\"\n").unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("t.toml:3:13: ") && c.warnings[0].contains("http://"),
        "{:?}",
        c.warnings
    );
    assert!(c.acme.dry_run_directory().is_err());
}

#[test]
fn self_check_connect_is_an_ip_address() {
    let c = parse("[http01]\nself_check_connect = \"::1\"\n").unwrap();
    assert_eq!(
        c.http01.self_check_connect,
        Some(std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST))
    );
    let (line, col, msg) = err("[http01]\nself_check_connect = \"localhost\"\n");
    assert_eq!((line, col), (2, 22));
    assert!(msg.contains("not an IP address"), "{msg}");
    let (line, col, _) = err("[http01]\nself_check_port = 0\n");
    assert_eq!((line, col), (2, 19));
}

#[test]
fn missing_table_keys_point_at_their_table_header() {
    // The error is about a key that is not there: its table's header.
    let (line, col, msg) =
        err("store = \"/s\"\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"slack\"\n");
    assert_eq!((line, col), (3, 1));
    assert!(msg.contains("needs url"), "{msg}");
}

#[test]
fn ca_files_must_be_regular_pem_files() {
    let d = tempfile::tempdir().unwrap();
    let junk = d.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    for (path, want) in [
        ("/dev/zero".to_string(), "not a regular file"),
        (d.path().display().to_string(), "not a regular file"),
        (junk.display().to_string(), "PEM"),
        ("ca.pem".to_string(), "relative path"),
    ] {
        let (line, col, msg) = err(&format!("[acme]\nca_bundle = \"{path}\"\n"));
        assert_eq!((line, col), (2, 13), "{msg}");
        assert!(msg.contains(want), "{path}: {msg}");
    }
    let ok = ca_file(d.path());
    let c = parse(&format!("[probe]\nca_file = \"{}\"\n", ok.display())).unwrap();
    assert_eq!(c.probe.ca_file.as_deref(), Some(ok.as_path()));
}

#[test]
fn ip_addresses_in_domains_load_in_canonical_form() {
    let c = parse(
        r#"
[acme]
directory = "https://ca.test/dir"

[[certificate]]
name = "loopback"
domains = ["127.0.0.1", "0:0:0:0:0:0:0:1", "a.test"]
webroot = "/var/www/certbot"

[certificate.webroot_map]
"::1" = "/srv/v6"
"#,
    )
    .unwrap();
    let cert = &c.certificates[0];
    assert_eq!(cert.domain_names(), ["127.0.0.1", "::1", "a.test"]);
    assert!(cert.has_ip());
    assert_eq!(cert.webroot_for("::1"), Some(Path::new("/srv/v6")));
    assert_eq!(cert.confirm_endpoint(), "127.0.0.1:443");
    assert_eq!(cert.confirm_sni(), "127.0.0.1");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let t = &c.probe_targets[0];
    assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 443));
    assert_eq!(t.target, "https://127.0.0.1:443");

    let v6 = parse(
        r#"
[acme]
directory = "https://ca.test/dir"

[[certificate]]
name = "v6"
domains = ["::1"]
webroot = "/var/www/certbot"
"#,
    )
    .unwrap();
    assert_eq!(v6.certificates[0].confirm_endpoint(), "[::1]:443");
    assert_eq!(v6.probe_targets[0].target, "https://[::1]:443");
    assert_eq!(v6.probe_targets[0].host, "::1");
}

#[test]
fn malformed_ip_addresses_name_file_line_and_column() {
    for (bad, says) in [
        ("256.1.1.1", "not a valid IPv4 address"),
        ("::zz", "not a valid IPv6 address"),
        ("[::1]", "without brackets"),
    ] {
        let text = format!(
            "[acme]\ndirectory = \"https://ca.test/dir\"\n\n[[certificate]]\nname = \"x\"\ndomains = [\"a.test\", \"{bad}\"]\nwebroot = \"/w\"\n"
        );
        let (line, column, message) = err(&text);
        assert_eq!((line, column), (6, 22), "{bad}: {message}");
        assert!(message.contains(says), "{bad}: {message}");
        let full = parse(&text).unwrap_err().to_string();
        assert!(full.starts_with("t.toml:6:22: "), "{full}");
    }
}

#[test]
fn webroot_map_with_another_spelling_of_an_address_says_how_to_write_it() {
    let (line, _, message) = err(r#"[acme]
directory = "https://ca.test/dir"

[[certificate]]
name = "x"
domains = ["::1"]
webroot_map = { "0::1" = "/w" }
"#);
    assert!(message.contains("write it as \"::1\""), "{message}");
    assert_eq!(line, 7, "{message}");
}

#[test]
fn ip_certificates_at_lets_encrypt_need_the_shortlived_profile() {
    let cert = |extra: &str| {
        format!(
            "{extra}\n[[certificate]]\nname = \"ip\"\ndomains = [\"a.test\", \"192.0.2.10\"]\nwebroot = \"/w\"\n"
        )
    };
    // Let's Encrypt (the default directory) without a profile: an error at
    // the address, naming the fix.
    let (line, column, message) = err(&cert(""));
    assert_eq!((line, column), (4, 22), "{message}");
    assert!(message.contains("profile = \"shortlived\""), "{message}");
    assert!(message.contains("192.0.2.10"), "{message}");
    // Another profile, set on the certificate: the error points at it.
    let text = format!("{}profile = \"classic\"\n", cert(""));
    let (line, column, message) = err(&text);
    assert_eq!((line, column), (6, 11), "{message}");
    assert!(message.contains("\"classic\""), "{message}");
    // Inherited from [acme] against Let's Encrypt staging.
    let (_, _, message) = err(&cert(
        "[acme]\ndirectory = \"https://acme-staging-v02.api.letsencrypt.org/directory\"\nprofile = \"tlsserver\"\n",
    ));
    assert!(message.contains("from [acme] profile"), "{message}");
    // shortlived, preferred or required, loads without a warning.
    for mode in ["preferred", "required"] {
        let text = format!(
            "{}profile = \"shortlived\"\nprofile_mode = \"{mode}\"\n",
            cert("")
        );
        let c = parse(&text).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }
    // Another CA (Pebble has no profiles): no profile is fine, another
    // profile a warning at the profile.
    let other = "[acme]\ndirectory = \"https://ca.test/dir\"\n";
    let c = parse(&cert(other)).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = parse(&format!(
        "{}profile = \"classic\"\nprofile_mode = \"required\"\n",
        cert(other)
    ))
    .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].starts_with("t.toml:8:11: "),
        "{:?}",
        c.warnings
    );
    assert!(
        c.warnings[0].contains("\"classic\" (required)"),
        "{:?}",
        c.warnings
    );
    // A certificate without an address is not concerned.
    let c = parse(MIN).unwrap();
    assert!(c.warnings.is_empty());
}

#[test]
fn tls_names_and_connect_hosts_are_checked_at_load() {
    let cert = |extra: &str| {
        format!("[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"/var/www/certbot\"\n{extra}\n")
    };
    let (line, column, message) = err(&cert("endpoint_sni = \"bad name!\""));
    assert_eq!((line, column), (5, 16), "{message}");
    assert!(
        message.contains("\"bad name!\" is neither a DNS name nor an IP address"),
        "{message}"
    );
    let (line, column, message) = err(&cert("endpoint = \"bad host!:443\""));
    assert_eq!((line, column), (5, 12), "{message}");
    assert!(message.contains("\"bad host!\" is neither"), "{message}");
    let (line, column, message) =
        err("[[endpoint]]\nurl = \"https://a.test\"\nconnect = \"bad host!:443\"\n");
    assert_eq!((line, column), (3, 11), "{message}");
    assert!(
        message.contains("connect: \"bad host!\" is neither"),
        "{message}"
    );
    // DNS names (one label too) and addresses of either family load.
    let ok = parse(&format!(
        "{}\n[[endpoint]]\nurl = \"https://a.test\"\nconnect = \"nginx-1\"\n\n[[endpoint]]\nurl = \"https://b.test\"\nconnect = \"[::1]:8443\"\n",
        cert("endpoint = \"127.0.0.1:8443\"\nendpoint_sni = \"www.a.test\"")
    ))
    .unwrap();
    assert_eq!(ok.certificates[0].confirm_sni(), "www.a.test");
    assert_eq!(ok.certificates[0].confirm_endpoint(), "127.0.0.1:8443");
    assert_eq!(
        ok.probe_targets[1].connect_address().unwrap(),
        ("::1".to_string(), 8443)
    );
}

#[test]
fn a_profile_mode_without_a_profile_is_an_error_where_it_is_written() {
    let cert = "[[certificate]]\nname = \"a\"\ndomains = [\"a.example\"]\nwebroot = \"/w\"\n";
    // [acme] profile_mode, and no profile anywhere.
    let text = format!("[acme]\nprofile_mode = \"required\"\n\n{cert}");
    let (line, col, msg) = err(&text);
    assert_eq!((line, col), (2, 16), "points at the value");
    assert!(
        msg.contains("[acme] profile_mode is set but no profile is"),
        "{msg}"
    );
    let shown = parse(&text).unwrap_err().to_string();
    assert!(shown.starts_with("t.toml:2:16: "), "{shown}");
    // A certificate's own profile_mode with no profile for it.
    let (line, col, msg) = err(&format!("{cert}profile_mode = \"preferred\"\n"));
    assert_eq!((line, col), (5, 16));
    assert!(
        msg.contains("certificate \"a\": profile_mode is set but no profile is"),
        "{msg}"
    );
    // Either is fine once a profile applies: [acme] profile_mode for the
    // certificates with their own profile, a certificate's mode for the
    // [acme] profile.
    parse(&format!(
        "[acme]\nprofile_mode = \"required\"\n\n{cert}profile = \"shortlived\"\n"
    ))
    .unwrap();
    parse(&format!(
        "[acme]\nprofile = \"tlsserver\"\n\n{cert}profile_mode = \"required\"\n"
    ))
    .unwrap();
}
