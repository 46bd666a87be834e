//! Documented behaviours that no other area showed: the keys of
//! `renew --json` and `certificates --json`, `schedule --count`,
//! `$CERTKEEP_CONFIG`, `reuse_key`, `webroot_map`, `[nginx] reload = false`,
//! a failing global `pre_hook`, `RENEWED_LINEAGES`, `run`'s exit codes and
//! RSA 3072/4096 issuance, `hmac_key_env`, `confirm = false`,
//! `self_check = false`, and the daemon's memory over probe rounds. Each
//! is listed in docs/claims.md. Facts about
//! certificates and keys are read with `openssl`, not with certkeep's code.

use crate::common;

use common::{assert_exit, text, Bed, PebbleOptions};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// `openssl <args> -in <file>` stdout; the test fails when openssl does.
fn openssl(args: &[&str], file: &Path) -> String {
    let out = Command::new("openssl")
        .args(args)
        .arg("-in")
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The serial of a certificate file as openssl prints it (whole bytes of
/// hex), lowercased as the docs promise.
fn openssl_serial(cert: &Path) -> String {
    let s = openssl(&["x509", "-noout", "-serial"], cert);
    s.trim().trim_start_matches("serial=").to_lowercase()
}

/// `notAfter` of a certificate file as openssl reads it.
fn openssl_not_after(cert: &Path) -> chrono::DateTime<chrono::Utc> {
    let end = openssl(&["x509", "-noout", "-enddate"], cert);
    let end = end.trim().trim_start_matches("notAfter=");
    chrono::NaiveDateTime::parse_from_str(end, "%b %e %H:%M:%S %Y GMT")
        .unwrap_or_else(|e| panic!("openssl enddate {end:?}: {e}"))
        .and_utc()
}

/// The public key of a private key file, as openssl derives it (PEM).
fn openssl_public_key(key: &Path) -> String {
    openssl(&["pkey", "-pubout"], key)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", text(out)))
}

fn listing(bed: &Bed) -> Vec<serde_json::Value> {
    let out = bed.certkeep(&["certificates", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("certificates --json")
}

fn is_rfc3339(v: &serde_json::Value) -> bool {
    v.as_str()
        .map(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
        .unwrap_or(false)
}

#[test]
fn renew_json_has_every_documented_key() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&format!(
        "{}{}",
        bed.cert_block("jr", &["jr.test"], "confirm = false"),
        bed.cert_block("other", &["other.test"], "confirm = false")
    ));
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);

    // Nothing due (fresh 90-day certificates; ARI or the threshold decides).
    let out = bed.certkeep(&["renew", "--json"]);
    assert_exit(&out, 0);
    let v = json(&out);
    assert_eq!(v["dry_run"], false, "{v}");
    assert_eq!(v["renewed"], serde_json::json!([]), "{v}");
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
    assert_eq!(v["problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["ca_reachable"], true, "{v}");
    assert!(v["ca_unreachable_since"].is_null(), "{v}");
    let not_due = v["not_due"].as_array().expect("not_due[]");
    let names: Vec<&str> = not_due.iter().filter_map(|n| n["name"].as_str()).collect();
    assert_eq!(names, ["jr", "other"], "{v}");
    for n in not_due {
        assert!(is_rfc3339(&n["due_at"]), "due_at: {n}");
        assert!(
            n["basis"] == "ARI" || n["basis"] == "threshold",
            "basis: {n}"
        );
    }

    // `--force --cert jr`: only jr renewed, at version 2, with the serial
    // and expiry openssl reads from the new live file.
    let out = bed.certkeep(&["renew", "--force", "--cert", "jr", "--json"]);
    assert_exit(&out, 0);
    let v = json(&out);
    let renewed = v["renewed"].as_array().expect("renewed[]");
    assert_eq!(renewed.len(), 1, "{v}");
    let r = &renewed[0];
    assert_eq!(r["name"], "jr", "{v}");
    assert_eq!(r["version"], 2, "{v}");
    let cert = bed.store.join("live/jr/cert.pem");
    assert_eq!(r["serial"], openssl_serial(&cert), "{v}");
    let end = openssl_not_after(&cert);
    let not_after =
        chrono::DateTime::parse_from_rfc3339(r["not_after"].as_str().expect("not_after"))
            .expect("RFC 3339");
    assert_eq!(not_after, end, "{v}");
    assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert_eq!(
        v["not_due"],
        serde_json::json!([]),
        "--cert selects jr only: {v}"
    );

    // A dry run: `dry_run` true and `version` null.
    let out = bed.certkeep(&["renew", "--dry-run", "--cert", "jr", "--json"]);
    assert_exit(&out, 0);
    let v = json(&out);
    assert_eq!(v["dry_run"], true, "{v}");
    assert_eq!(v["renewed"][0]["name"], "jr", "{v}");
    assert!(v["renewed"][0]["version"].is_null(), "{v}");

    // A failure: `failed[]` with domains, error and the expiry left in place.
    let elsewhere = bed.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    bed.write_config(&format!(
        "\n[[certificate]]\nname = \"jr\"\ndomains = [\"jr.test\"]\nwebroot = \"{}\"\nconfirm = false\n",
        elsewhere.display()
    ));
    let out = bed.certkeep(&["renew", "--force", "--json"]);
    assert_exit(&out, 1);
    let v = json(&out);
    let f = &v["failed"][0];
    assert_eq!(f["name"], "jr", "{v}");
    assert_eq!(f["domains"], serde_json::json!(["jr.test"]), "{v}");
    assert!(
        f["error"]
            .as_str()
            .is_some_and(|e| e.contains("self-check")),
        "{v}"
    );
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(f["expires"].as_str().expect("expires")).unwrap(),
        end,
        "the expiry of version 2, left in place: {v}"
    );
}

/// Every key of the `certificates --json` table, for RSA 3072 and RSA 4096
/// lineages, each value checked against openssl.
#[test]
fn certificates_json_keys_and_rsa_3072_4096_issuance() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&format!(
        "{}{}",
        bed.cert_block(
            "r3",
            &["r3.test", "www.r3.test"],
            "confirm = false\nkey_type = \"rsa3072\""
        ),
        bed.cert_block(
            "r4",
            &["r4.test"],
            "confirm = false\nkey_type = \"rsa4096\""
        )
    ));
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);
    let all = listing(&bed);
    assert_eq!(all.len(), 2, "{all:?}");
    for (name, bits, domains) in [
        ("r3", 3072, vec!["r3.test", "www.r3.test"]),
        ("r4", 4096, vec!["r4.test"]),
    ] {
        let l = all.iter().find(|l| l["name"] == name).expect("listed");
        let live = bed.store.join("live").join(name);
        let cert = live.join("cert.pem");
        let key = live.join("privkey.pem");
        // The key, as openssl reads it.
        let pkey = openssl(&["pkey", "-noout", "-text"], &key);
        assert!(
            pkey.contains(&format!("Private-Key: ({bits} bit")),
            "{name}: {pkey}"
        );
        assert_eq!(
            openssl_public_key(&key),
            openssl(&["x509", "-noout", "-pubkey"], &cert),
            "{name}: key and certificate agree"
        );
        assert_eq!(l["key_type"], format!("rsa{bits}"), "{l}");
        assert_eq!(l["status"], "ok", "{l}");
        assert_eq!(l["problems"], serde_json::json!([]), "{l}");
        assert!(l["repair"].is_null(), "{l}");
        assert_eq!(l["domains"], serde_json::json!(domains), "{l}");
        let san = openssl(&["x509", "-noout", "-ext", "subjectAltName"], &cert);
        for d in &domains {
            assert!(san.contains(&format!("DNS:{d}")), "{san}");
        }
        assert_eq!(l["serial"], openssl_serial(&cert), "{l}");
        let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256"], &cert);
        let fp = fp
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        assert_eq!(l["fingerprint_sha256"], fp, "{l}");
        let issuer = openssl(&["x509", "-noout", "-issuer", "-nameopt", "RFC2253"], &cert);
        let cn = issuer
            .trim()
            .trim_start_matches("issuer=")
            .split(',')
            .find_map(|p| p.strip_prefix("CN="))
            .expect("issuer CN")
            .to_string();
        assert!(
            l["issuer"].as_str().is_some_and(|i| i.contains(&cn)),
            "issuer {cn}: {l}"
        );
        assert!(
            is_rfc3339(&l["not_before"]) && is_rfc3339(&l["not_after"]),
            "{l}"
        );
        // Whole days until openssl's notAfter, rounded down (a day
        // boundary passing between the two readings allows one less).
        let days = l["days_left"].as_i64().expect("days_left");
        let want = (openssl_not_after(&cert) - chrono::Utc::now()).num_days();
        assert!(
            days == want || days == want - 1,
            "days_left {days}, openssl says {want}: {l}"
        );
        assert_eq!(
            chrono::DateTime::parse_from_rfc3339(l["not_after"].as_str().unwrap()).unwrap(),
            openssl_not_after(&cert),
            "{l}"
        );
        assert_eq!(l["version"], 1, "{l}");
        for (k, f) in [
            ("cert_path", "cert.pem"),
            ("chain_path", "chain.pem"),
            ("fullchain_path", "fullchain.pem"),
            ("privkey_path", "privkey.pem"),
        ] {
            assert_eq!(l[k], live.join(f).display().to_string(), "{k}: {l}");
        }
        assert_eq!(l["configured"], true, "{l}");
    }
    // A lineage the config no longer names is listed with `configured` false.
    bed.write_config(&bed.cert_block(
        "r3",
        &["r3.test", "www.r3.test"],
        "confirm = false\nkey_type = \"rsa3072\"",
    ));
    let all = listing(&bed);
    let r4 = all.iter().find(|l| l["name"] == "r4").expect("r4 listed");
    assert_eq!(r4["configured"], false, "{r4}");
}

#[test]
fn reuse_key_keeps_the_key_and_the_default_makes_a_new_one() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    bed.write_config(&format!(
        "{}{}",
        bed.cert_block("keep", &["keep.test"], "confirm = false\nreuse_key = true"),
        bed.cert_block("fresh", &["fresh.test"], "confirm = false")
    ));
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    let key = |name: &str, v: u32| {
        openssl_public_key(&bed.store.join(format!("archive/{name}/privkey{v}.pem")))
    };
    assert_eq!(key("keep", 1), key("keep", 2), "reuse_key = true");
    assert_ne!(key("fresh", 1), key("fresh", 2), "a new key by default");
    // The renewed certificate is for the reused key.
    assert_eq!(
        openssl(
            &["x509", "-noout", "-pubkey"],
            &bed.store.join("archive/keep/cert2.pem")
        ),
        key("keep", 1)
    );
}

/// Each domain validated from its own webroot: nginx serves `b.test`'s
/// challenges from a directory only `webroot_map` names, so issuance can
/// only pass if certkeep wrote `b.test`'s token there.
#[test]
fn webroot_map_serves_each_domain_from_its_own_webroot() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let other = bed.dir.path().join("other-webroot");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o755)).unwrap();
    bed.nginx.add_site(
        "b",
        &format!(
            "server {{\n  listen 127.0.0.1:{};\n  server_name b.test;\n  location /.well-known/acme-challenge/ {{ root {}; default_type text/plain; }}\n}}\n",
            bed.nginx.http_port,
            other.display()
        ),
    );
    bed.nginx.reload();
    let block = |map: &str| {
        format!(
            "\n[[certificate]]\nname = \"mapped\"\ndomains = [\"a.test\", \"b.test\"]\nconfirm = false\nwebroot_map = {{ {map} }}\n"
        )
    };
    // b.test mapped to the default webroot: nginx looks elsewhere, the
    // self-check for b.test fails and no order is made.
    bed.write_config(&block(&format!(
        "\"a.test\" = \"{w}\", \"b.test\" = \"{w}\"",
        w = bed.webroot.display()
    )));
    let out = bed.certkeep(&["issue", "mapped"]);
    assert_exit(&out, 1);
    assert!(text(&out).contains("b.test"), "{}", text(&out));
    assert_eq!(bed.pebble.orders_created(), 0, "{}", text(&out));
    // Mapped right: issued for both names.
    bed.write_config(&block(&format!(
        "\"a.test\" = \"{}\", \"b.test\" = \"{}\"",
        bed.webroot.display(),
        other.display()
    )));
    let out = bed.certkeep(&["issue", "mapped"]);
    assert_exit(&out, 0);
    let san = openssl(
        &["x509", "-noout", "-ext", "subjectAltName"],
        &bed.store.join("live/mapped/cert.pem"),
    );
    assert!(
        san.contains("DNS:a.test") && san.contains("DNS:b.test"),
        "{san}"
    );
    // The token files were removed afterwards from both webroots.
    for w in [&bed.webroot, &other] {
        let dir = w.join(".well-known/acme-challenge");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{}: {left:?}", dir.display());
    }
}

/// `[nginx] reload = false`: the links move, and neither the test nor the
/// reload command runs (both would leave a marker file).
#[test]
fn nginx_reload_false_moves_the_links_and_runs_no_nginx_command() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let marker = |n: &str| bed.dir.path().join(n);
    let head = bed.base_config();
    let start = head.find("[nginx]\n").expect("[nginx] in the base config");
    let end = head[start..].find("\n\n").expect("end of [nginx]") + start;
    let nginx = format!(
        "[nginx]\nreload = false\ntest_command = [\"/bin/sh\", \"-c\", \"touch {}\"]\nreload_command = [\"/bin/sh\", \"-c\", \"touch {}\"]",
        marker("tested").display(),
        marker("reloaded").display()
    );
    let head = format!("{}{nginx}{}", &head[..start], &head[end..]);
    std::fs::write(
        &bed.config,
        format!("{head}{}", bed.cert_block("nr", &["nr.test"], "")),
    )
    .unwrap();
    assert_exit(&bed.certkeep(&["issue", "nr"]), 0);
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("renewed: nr (version 2"),
        "{}",
        text(&out)
    );
    let link = std::fs::read_link(bed.store.join("live/nr/cert.pem")).unwrap();
    assert!(link.ends_with("cert2.pem"), "{}", link.display());
    assert!(!marker("tested").exists(), "the test command ran");
    assert!(!marker("reloaded").exists(), "the reload command ran");
    // Deployed: the next plain run has nothing pending.
    let v = json(&bed.certkeep(&["renew", "--json"]));
    assert_eq!(v["failed"], serde_json::json!([]), "{v}");
}

/// A failing global pre hook cancels the run's orders; the post hook still
/// runs and hears of the failed domains. A run that renews two lineages
/// gives the post hook `RENEWED_LINEAGES`.
#[test]
fn failing_pre_hook_cancels_orders_and_post_hook_gets_renewed_lineages() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let d = bed.dir.path().display().to_string();
    let post = format!(
        "post_hook = [\"/bin/sh\", \"-c\", \"echo \\\"$RENEWED_LINEAGES|$FAILED_DOMAINS\\\" >> {d}/post.log\"]"
    );
    let certs = format!(
        "{}{}",
        bed.cert_block("p1", &["p1.test"], "confirm = false"),
        bed.cert_block("p2", &["p2.test"], "confirm = false")
    );
    bed.write_config(&format!("\n[hooks]\n{post}\n{certs}"));
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);
    let orders = bed.pebble.orders_created();
    assert_eq!(orders, 2);
    std::fs::remove_file(bed.dir.path().join("post.log")).ok();

    // The pre hook exits 3: no order, links unchanged, exit 1.
    bed.write_config(&format!(
        "\n[hooks]\npre_hook = [\"/bin/sh\", \"-c\", \"exit 3\"]\n{post}\n{certs}"
    ));
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(text(&out).contains("exit code 3"), "{}", text(&out));
    assert_eq!(bed.pebble.orders_created(), orders, "{}", text(&out));
    for n in ["p1", "p2"] {
        let link = std::fs::read_link(bed.store.join(format!("live/{n}/cert.pem"))).unwrap();
        assert!(link.ends_with("cert1.pem"), "{}", link.display());
    }
    let log = std::fs::read_to_string(bed.dir.path().join("post.log")).unwrap_or_default();
    assert_eq!(
        log, "|p1.test p2.test\n",
        "post hook after the cancelled run"
    );

    // Pre hook fixed: both renewed; RENEWED_LINEAGES lists both live/ dirs.
    std::fs::remove_file(bed.dir.path().join("post.log")).ok();
    bed.write_config(&format!(
        "\n[hooks]\npre_hook = [\"/bin/true\"]\n{post}\n{certs}"
    ));
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    let log = std::fs::read_to_string(bed.dir.path().join("post.log")).unwrap_or_default();
    assert_eq!(
        log,
        format!(
            "{} {}|\n",
            bed.store.join("live/p1").display(),
            bed.store.join("live/p2").display()
        )
    );
}

/// `--config` defaults to `$CERTKEEP_CONFIG`: the error names that file.
#[test]
fn certkeep_config_environment_variable_names_the_file() {
    let dir = common::open_tempdir();
    let bad = dir.path().join("from-env.toml");
    std::fs::write(&bad, "store = \"/tmp/x\"\nnot_a_key = 1\n").unwrap();
    let run = |path: &Path| {
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("check-config")
            .env("CERTKEEP_CONFIG", path)
            .env_remove("RUST_LOG")
            .output()
            .expect("run certkeep")
    };
    let out = run(&bad);
    assert_exit(&out, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:2:1", bad.display())),
        "file:line:col of the env's file: {err}"
    );
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        format!("store = \"{}\"\n", dir.path().join("s").display()),
    )
    .unwrap();
    assert_exit(&run(&good), 0);
}

/// `schedule --count N` prints the next N times of each schedule; with a
/// year range the times are fixed and written here.
#[test]
fn schedule_count_prints_the_next_times() {
    let dir = common::open_tempdir();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "store = \"{}\"\n[daemon]\nrenew_schedule = \"0 0 0 1 1 * 2030-2035\"\nrenew_jitter = \"0s\"\nprobe_schedule = \"0 30 6 1 1 * 2030\"\n",
            dir.path().join("s").display()
        ),
    )
    .unwrap();
    let out = common::certkeep(&cfg, &["schedule", "--count", "3"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("renewal check (")
            && lines[0].ends_with(
                ": 2030-01-01T00:00:00+00:00, 2031-01-01T00:00:00+00:00, 2032-01-01T00:00:00+00:00"
            ),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("probe (") && lines[1].ends_with(": 2030-01-01T06:30:00+00:00"),
        "only one time left in that range: {stdout}"
    );
    // An invalid schedule is a configuration error.
    std::fs::write(&cfg, "[daemon]\nrenew_schedule = \"every day\"\n").unwrap();
    assert_exit(&common::certkeep(&cfg, &["schedule"]), 2);
}

/// `run`: 2 for a configuration error, 1 when it cannot start (the metrics
/// address is taken), 0 when stopped by SIGTERM.
#[test]
fn run_exit_codes() {
    let dir = common::open_tempdir();
    let cfg = dir.path().join("c.toml");
    let bound = Duration::from_secs(20);
    std::fs::write(&cfg, "store = 5\n").unwrap();
    let (out, _) = common::certkeep_within(&cfg, &["run"], bound);
    assert_exit(&out, 2);

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let head = common::daemon::idle_head(&dir.path().join("s"));
    std::fs::write(
        &cfg,
        format!("{head}metrics_listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let (out, _) = common::certkeep_within(&cfg, &["run"], bound);
    assert_exit(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("127.0.0.1:{port}")),
        "names the address: {}",
        text(&out)
    );
    drop(taken);

    let port = common::free_port();
    std::fs::write(
        &cfg,
        format!("{head}metrics_listen = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut child = common::daemon::start(&cfg, port);
    // SAFETY: kill(2) on the pid of our own child, which is not reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + bound;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit within {bound:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// `VmHWM` (peak) and `VmRSS` of a process in KiB, from /proc.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in {status}"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// "Memory stays bounded" (docs/probing.md), measured: a daemon probing 60
/// endpoints every second, 40 of them sending a chain of about 200 KB that
/// is refused as too large, 20 refusing the connection. After the first
/// rounds its peak RSS must grow by less than `GROWTH` over the next 15 s
/// (about 15 more rounds, 900 more probes). Unbounded buffering of the
/// chains would add over 8 MB per round. Measured: +320 KiB of peak RSS
/// over 16 rounds (29.3 MiB after warm-up, debug build).
#[test]
fn daemon_memory_stays_bounded_over_probe_rounds() {
    const GROWTH_KIB: u64 = 4 * 1024;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let huge = rt.block_on(common::hostile::Hostile::start(
        common::hostile::Behaviour::HugeChain,
    ));
    let dir = common::open_tempdir();
    let metrics_port = common::free_port();
    let mut endpoints = String::new();
    for i in 0..40 {
        endpoints.push_str(&format!(
            "\n[[endpoint]]\nurl = \"https://h{i}.test:{p}\"\nconnect = \"127.0.0.1:{p}\"\n",
            p = huge.port
        ));
    }
    for _ in 0..20 {
        endpoints.push_str(&format!(
            "\n[[endpoint]]\nurl = \"https://127.0.0.1:{}\"\n",
            common::free_port()
        ));
    }
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"{}\"\n\n[daemon]\nrenew_at_start = false\nrenew_schedule = \"0 0 0 1 1 * 2099\"\nprobe_schedule = \"* * * * * *\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n[probe]\nmanaged_certificates = false\ntotal_timeout = \"3s\"\n\n[probe.policy.default]\nhttp_port = 0\n{endpoints}",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let child = common::daemon::spawn(&config);
    let pid = child.id();
    let rounds = || -> f64 {
        reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .and_then(|r| r.text())
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| {
                        l.starts_with("certkeep_last_run_timestamp_seconds{job_name=\"probe\"}")
                    })
                    .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            })
            .unwrap_or(0.0)
    };
    // Warm-up: wait for two completed rounds.
    let mut seen = Vec::new();
    common::wait_for("two probe rounds", Duration::from_secs(30), || {
        let r = rounds();
        if r > 0.0 && !seen.contains(&r) {
            seen.push(r);
        }
        seen.len() >= 2
    });
    let (hwm0, rss0) = memory_kib(pid);
    let first = rounds();
    std::thread::sleep(Duration::from_secs(15));
    let last = rounds();
    let (hwm1, rss1) = memory_kib(pid);
    assert!(
        last - first >= 5.0,
        "the probe rounds kept running (last round at {first}, then {last})"
    );
    eprintln!(
        "daemon, 60 endpoints every second: after warm-up VmHWM {hwm0} KiB VmRSS {rss0} KiB; \
         {:.0} s later VmHWM {hwm1} KiB VmRSS {rss1} KiB",
        last - first
    );
    assert!(
        hwm1 < hwm0 + GROWTH_KIB,
        "peak RSS grew from {hwm0} KiB to {hwm1} KiB over {:.0} s of rounds (bound: +{GROWTH_KIB} KiB)",
        last - first
    );
    drop(child);
    drop(huge);
}

/// `[acme.eab] hmac_key_env`: the HMAC key comes from the environment.
/// Pebble requires external account binding, so issuance succeeds only when
/// certkeep read the key from the variable; without the variable the error
/// names it.
#[test]
fn eab_hmac_key_from_the_environment() {
    use base64::Engine;
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::fill(&mut raw).unwrap();
    let hmac = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let Some(bed) = Bed::start(PebbleOptions {
        eab: Some(("kid-env".into(), hmac.clone())),
        ..PebbleOptions::default()
    }) else {
        return;
    };
    bed.write_config(&format!(
        "\n[acme.eab]\nkey_id = \"kid-env\"\nhmac_key_env = \"CERTKEEP_TEST_EAB_HMAC\"\n{}",
        bed.cert_block("eab", &["eab.test"], "confirm = false")
    ));
    let run = |value: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_certkeep"));
        c.arg("--config")
            .arg(&bed.config)
            .args(["issue", "eab"])
            .env_remove("RUST_LOG")
            .env_remove("CERTKEEP_TEST_EAB_HMAC");
        if let Some(v) = value {
            c.env("CERTKEEP_TEST_EAB_HMAC", v);
        }
        c.output().expect("run certkeep")
    };
    let out = run(None);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("CERTKEEP_TEST_EAB_HMAC"),
        "names the variable: {}",
        text(&out)
    );
    assert!(!bed.store.join("live/eab").exists());
    let out = run(Some(&hmac));
    assert_exit(&out, 0);
    assert!(!text(&out).contains(&hmac), "the key in the output");
    let san = openssl(
        &["x509", "-noout", "-ext", "subjectAltName"],
        &bed.store.join("live/eab/cert.pem"),
    );
    assert!(san.contains("DNS:eab.test"), "{san}");
}

/// `confirm = false` skips the TLS confirmation: an endpoint where nothing
/// listens fails the renewal with `confirm = true` and not without it.
#[test]
fn confirm_false_skips_the_served_serial_check() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let head = bed
        .base_config()
        .replace("confirm_timeout = \"10s\"", "confirm_timeout = \"2s\"");
    assert!(head.contains("confirm_timeout = \"2s\""), "{head}");
    let port = common::free_port();
    let write = |confirm: bool| {
        std::fs::write(
            &bed.config,
            format!(
                "{head}{}",
                bed.cert_block(
                    "cf",
                    &["cf.test"],
                    &format!("endpoint = \"127.0.0.1:{port}\"\nconfirm = {confirm}")
                )
            ),
        )
        .unwrap()
    };
    write(false);
    assert_exit(&bed.certkeep(&["issue", "cf"]), 0);
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    write(true);
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains(&format!("127.0.0.1:{port}")),
        "the failure names the endpoint: {}",
        text(&out)
    );
}

/// `[http01] self_check = false`: no fetch before the order. With a webroot
/// nginx does not serve, the self-check stops before any order; without it
/// the order is made and the CA's validation fails instead.
#[test]
fn self_check_false_orders_without_the_pre_check() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let elsewhere = bed.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let cert = format!(
        "\n[[certificate]]\nname = \"sc\"\ndomains = [\"sc.test\"]\nwebroot = \"{}\"\nconfirm = false\n",
        elsewhere.display()
    );
    bed.write_config(&cert);
    let out = bed.certkeep(&["issue", "sc"]);
    assert_exit(&out, 1);
    assert!(
        text(&out).contains("self-check failed for sc.test"),
        "{}",
        text(&out)
    );
    assert_eq!(bed.pebble.orders_created(), 0);
    let head = bed
        .base_config()
        .replace("[http01]\n", "[http01]\nself_check = false\n");
    assert!(head.contains("self_check = false"), "{head}");
    std::fs::write(&bed.config, format!("{head}{cert}")).unwrap();
    let out = bed.certkeep(&["issue", "sc"]);
    assert_exit(&out, 1);
    assert!(!text(&out).contains("self-check failed"), "{}", text(&out));
    assert_eq!(bed.pebble.orders_created(), 1, "{}", text(&out));
}
