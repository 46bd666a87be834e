//! `certkeep check-config` (the binary) on files with one mistake each: the
//! error names the file, line and column of the offending value, and exits 2.
//! The same load runs at the daemon's start and on SIGHUP (see daemon.rs).

use crate::common;

use common::assert_exit;

/// (what, file text, expected "line:column", a phrase of the message).
/// Positions are counted by hand: 1-based, columns in characters.
const BAD: &[(&str, &str, &str, &str)] = &[
    (
        "endpoint_sni that is not a DNS name",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"/var/www/certbot\"\nendpoint_sni = \"bad name!\"\n",
        "5:16",
        "neither a DNS name nor an IP address",
    ),
    (
        "certificate endpoint whose host is not a DNS name",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"/var/www/certbot\"\nendpoint = \"bad host!:443\"\n",
        "5:12",
        "neither a DNS name nor an IP address",
    ),
    (
        "endpoint connect host that is not a DNS name",
        "[[endpoint]]\nurl = \"https://a.test\"\nconnect = \"bad host!:443\"\n",
        "3:11",
        "neither a DNS name nor an IP address",
    ),
    (
        "endpoint policy that does not exist",
        "store = \"/var/lib/certkeep\"\n\n[[endpoint]]\nurl = \"https://a.test\"\npolicy = \"nosuch\"\n",
        "5:10",
        "names policy \"nosuch\"",
    ),
    (
        "endpoint certificate that does not exist",
        "[[endpoint]]\nurl = \"https://a.test\"\ncertificate = \"nosuch\"\n",
        "3:15",
        "names certificate \"nosuch\"",
    ),
    (
        "endpoint with an http:// URL",
        "[probe]\nmanaged_certificates = true\n\n[[endpoint]]\nurl = \"http://a.test\"\n",
        "5:7",
        "only https://",
    ),
    (
        "endpoint port out of range",
        "[[endpoint]]\nurl = \"https://a.test:99999\"\n",
        "2:7",
        "1 to 65535",
    ),
    (
        "endpoint that is not an address",
        "[[endpoint]]\nurl = \"https://a.test\"\n\n[[endpoint]]\nurl = \"https://b test/\"\n",
        "5:7",
        "invalid probe target",
    ),
    (
        "certificate endpoint without a port",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"/var/www/certbot\"\nendpoint = \"127.0.0.1\"\n",
        "5:12",
        "has no port",
    ),
    (
        "ca_bundle that does not exist",
        "[acme]\ndirectory = \"https://ca.test/dir\"\nca_bundle = \"/nonexistent/ca.pem\"\n",
        "3:13",
        "cannot read CA file /nonexistent/ca.pem",
    ),
    (
        "probe ca_file that does not exist",
        "[probe]\nca_file = \"/nonexistent/probe-ca.pem\"\n",
        "2:11",
        "cannot read CA file",
    ),
    (
        "empty webroot",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"\"\n",
        "4:11",
        "webroot is empty",
    ),
    (
        "relative store",
        "store = \"var/lib/certkeep\"\n",
        "1:9",
        "relative path",
    ),
    (
        "relative webroot",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"www\"\n",
        "4:11",
        "relative path",
    ),
    (
        "relative webroot_map entry",
        "[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot_map = { \"a.test\" = \"www\" }\n",
        "4:28",
        "relative path",
    ),
    (
        "[acme.eab] without its key",
        "[acme]\ndirectory = \"https://ca.test/dir\"\n\n[acme.eab]\nkey_id = \"kid\"\n",
        "4:1",
        "exactly one of hmac_key_file or hmac_key_env",
    ),
    (
        "[acme.eab] with an empty key id",
        "[acme.eab]\nkey_id = \"\"\nhmac_key_env = \"EAB_HMAC\"\n",
        "2:10",
        "key_id is empty",
    ),
    (
        "[acme.eab] with a relative key file",
        "[acme.eab]\nkey_id = \"kid\"\nhmac_key_file = \"eab.key\"\n",
        "3:17",
        "relative path",
    ),
    (
        "[alert] value out of range",
        "store = \"/var/lib/certkeep\"\n\n[alert]\nrepeat_interval = \"10s\"\n",
        "4:19",
        "at least \"1m\"",
    ),
    (
        "[[alert.channel]] with a bad address",
        "[alert]\n\n[[alert.channel]]\nname = \"m\"\ntype = \"email\"\nfrom = \"a@b.test\"\nto = [\"ops@b.test\", \"nope\"]\nsmtp_host = \"smtp.test\"\n",
        "7:21",
        "\"nope\" is not an email address",
    ),
    (
        "[[alert.channel]] without a required key",
        "[[alert.channel]]\nname = \"a\"\ntype = \"webhook\"\nurl_env = \"A\"\n\n[[alert.channel]]\nname = \"m\"\ntype = \"email\"\nfrom = \"a@b.test\"\nto = [\"a@b.test\"]\n",
        "6:1",
        "needs smtp_host",
    ),
    (
        "[[alert.channel]] name used twice",
        "[[alert.channel]]\nname = \"a\"\ntype = \"webhook\"\nurl_env = \"A\"\n\n[[alert.channel]]\nname = \"a\"\ntype = \"slack\"\nurl_env = \"B\"\n",
        "7:8",
        "used twice",
    ),
    (
        "[[alert.channel]] ca_bundle that does not exist",
        "[[alert.channel]]\nname = \"a\"\ntype = \"webhook\"\nurl_env = \"A\"\nca_bundle = \"/nonexistent/hook-ca.pem\"\n",
        "5:13",
        "cannot read CA file",
    ),
];

#[test]
fn check_config_points_at_the_offending_value() {
    let d = common::open_tempdir();
    let cfg = d.path().join("bad.toml");
    let mut failures = Vec::new();
    for (what, text, at, phrase) in BAD {
        std::fs::write(&cfg, text).unwrap();
        let out = common::certkeep(&cfg, &["check-config"]);
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("error: {}:{at}: ", cfg.display());
        if out.status.code() != Some(2) || !err.starts_with(&want) || !err.contains(phrase) {
            failures.push(format!(
                "{what}: want exit 2, {want:?} and {phrase:?}; got {}",
                common::text(&out)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn check_config_accepts_ipv6_endpoints_and_warns_about_http_directories() {
    let d = common::open_tempdir();
    let cfg = d.path().join("ok.toml");
    std::fs::write(
        &cfg,
        "[acme]\ndirectory = \"http://127.0.0.1:14000/dir\"\nstaging_directory = \"https://127.0.0.1:14001/dir\"\n\n[[endpoint]]\nurl = \"[::1]:443\"\n\n[[endpoint]]\nurl = \"https://[::1]:8443/health\"\n",
    )
    .unwrap();
    let out = common::certkeep(&cfg, &["check-config"]);
    assert_exit(&out, 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("warning: {}:2:13: ", cfg.display())) && err.contains("http://"),
        "{}",
        common::text(&out)
    );
}

#[test]
fn dry_run_with_another_ca_and_no_staging_directory_stops_and_says_what_to_set() {
    let d = common::open_tempdir();
    let cfg = d.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "store = \"{}\"\n\n[acme]\n# Nothing listens here: the run must stop before any request.\ndirectory = \"https://127.0.0.1:9/dir\"\n\n[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = \"{}\"\n",
            d.path().join("store").display(),
            d.path().join("www").display()
        ),
    )
    .unwrap();
    let out = common::certkeep(&cfg, &["renew", "--dry-run"]);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("staging_directory") && err.contains("https://127.0.0.1:9/dir"),
        "{}",
        common::text(&out)
    );
    assert!(!err.contains("letsencrypt"), "{}", common::text(&out));
}
