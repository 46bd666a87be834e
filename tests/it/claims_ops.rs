//! Documented behaviours of operation that no other area showed, each a
//! row of docs/claims.md: one TLS stack in the dependency tree (cargo's own
//! resolver decides), `renew` refusing in cluster mode, the default config
//! path, the log formats and `CERTKEEP_LOG_FORMAT`, the systemd watchdog,
//! the daemon's `shutdown_timeout`, per-certificate hooks, `order_timeout`,
//! `ari_concurrency`, ARI `replaces` and an ARI outage (the last four
//! through the fault proxy in front of Pebble), and the timers' times.

use crate::common;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy};
use common::{assert_exit, text};

/// `cargo tree -i <package>` over the workspace with every kind of
/// dependency, for the host: the crates that pull `package` in (empty
/// when nothing does).
fn cargo_tree_inverted(package: &str) -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "--workspace",
            "-e",
            "normal,build,dev",
            "-i",
            package,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return (!stdout.trim().is_empty()).then_some(stdout);
    }
    // A package the lock file does not name at all.
    assert!(
        stderr.contains("did not match any packages"),
        "cargo tree -i {package} failed: {stderr}"
    );
    None
}

/// R9: rustls with aws-lc-rs, and no OpenSSL crate or ring anywhere in the
/// built dependency graph (ring may sit in Cargo.lock as an optional
/// dependency no enabled feature pulls in; cargo tree shows what is built).
#[test]
fn one_tls_stack_no_openssl_and_no_ring() {
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("Cargo.lock")
        .is_file());
    for present in ["aws-lc-rs", "rustls"] {
        let tree = cargo_tree_inverted(present)
            .unwrap_or_else(|| panic!("{present} is not in the dependency tree"));
        assert!(tree.contains("certkeep v"), "{present}:\n{tree}");
    }
    for absent in ["openssl-sys", "openssl", "native-tls", "ring", "boring-sys"] {
        if let Some(tree) = cargo_tree_inverted(absent) {
            panic!("{absent} is in the dependency tree:\n{tree}");
        }
    }
}

// ---- the binary, without a CA ----

/// A config with a store in `dir`, a CA address where nothing answers, and
/// `extra` appended.
fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("certkeep.toml");
    std::fs::write(
        &path,
        format!(
            "store = {:?}\n\n[acme]\ndirectory = \"https://127.0.0.1:{}/dir\"\nemail = \"ops@example.com\"\n{extra}",
            dir.join("store"),
            common::free_port()
        ),
    )
    .unwrap();
    path
}

/// Runs certkeep with `args` (no `--config` added) and `env`, with neither
/// `CERTKEEP_CONFIG`, `CERTKEEP_LOG_FORMAT`, `RUST_LOG` nor `NO_COLOR` inherited.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certkeep"));
    cmd.args(args)
        .env_remove("CERTKEEP_CONFIG")
        .env_remove("CERTKEEP_LOG_FORMAT")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run certkeep")
}

/// D2: in cluster mode `renew` refuses, says why and what to run instead,
/// and contacts neither the CA nor etcd; the same config is valid.
#[test]
fn renew_refuses_in_cluster_mode_and_contacts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TcpListener::bind("127.0.0.1:0").unwrap();
    let etcd = TcpListener::bind("127.0.0.1:0").unwrap();
    ca.set_nonblocking(true).unwrap();
    etcd.set_nonblocking(true).unwrap();
    let key = dir.path().join("cluster.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let config = dir.path().join("certkeep.toml");
    std::fs::write(
        &config,
        format!(
            "store = {store:?}\n\n[acme]\ndirectory = \"https://127.0.0.1:{ca}/dir\"\nemail = \"ops@example.com\"\n\n\
             [cluster]\nendpoints = [\"http://127.0.0.1:{etcd}\"]\nnode = \"web1\"\nencryption_key_file = {key:?}\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = {webroot:?}\n",
            store = dir.path().join("store"),
            ca = ca.local_addr().unwrap().port(),
            etcd = etcd.local_addr().unwrap().port(),
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let out = run(&["--config", cfg, "check-config"], &[]);
    assert_exit(&out, 0);

    for args in [
        &["renew"][..],
        &["renew", "--force"],
        &["renew", "--cert", "a"],
    ] {
        let mut all = vec!["--config", cfg];
        all.extend(args);
        let out = run(&all, &[]);
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("error: certkeep renew does not run in cluster mode ([cluster] is set)"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(err.contains("`certkeep run`"), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out));
    }
    for (what, l) in [("the CA", &ca), ("etcd", &etcd)] {
        assert!(
            matches!(l.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{what} was contacted"
        );
    }
    assert!(
        !dir.path().join("store").join("archive").exists(),
        "nothing was written to the store"
    );
}

/// C15: without `--config` and `$CERTKEEP_CONFIG` the file is
/// /etc/certkeep/certkeep.toml (whether or not it exists here).
#[test]
fn default_config_path_is_etc_certkeep() {
    let out = run(&["check-config"], &[]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("/etc/certkeep/certkeep.toml"),
        "{}",
        text(&out)
    );
    if !Path::new("/etc/certkeep/certkeep.toml").exists() {
        assert_exit(&out, 2);
        assert!(
            all.contains("cannot read config file /etc/certkeep/certkeep.toml"),
            "{all}"
        );
    }
    // --config replaces the default ($CERTKEEP_CONFIG: claims.rs).
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "");
    let out = run(&["--config", config.to_str().unwrap(), "check-config"], &[]);
    assert_exit(&out, 0);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("/etc/certkeep"));
}

/// The log lines (stderr) of a `renew` against a CA that refuses
/// connections, with a 1 s retry budget: an INFO line ("renewing") and a
/// WARN line (the retry), in the format `format` selects.
fn renew_log(config: &Path, args: &[&str], env: &[(&str, &str)], tty: bool) -> String {
    let mut all = vec!["--config", config.to_str().unwrap(), "-v"];
    all.extend(args);
    all.push("renew");
    let out = if tty {
        // util-linux `script` gives certkeep a terminal for stdout and stderr.
        let line = std::iter::once(env!("CARGO_BIN_EXE_certkeep"))
            .chain(all.iter().copied())
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .env_remove("CERTKEEP_CONFIG")
            .env_remove("CERTKEEP_LOG_FORMAT")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run script");
        let mut o = out.clone();
        o.stderr = out.stdout;
        o.stdout = Vec::new();
        o
    } else {
        run(&all, env)
    };
    assert_exit(&out, 1);
    let log = String::from_utf8_lossy(&out.stderr).replace('\r', "");
    assert!(log.contains("renewing"), "{}", text(&out));
    log
}

const ESC: char = '\u{1b}';

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(needle)).collect()
}

/// Starts with an RFC 3339 timestamp of this century (human format).
fn timestamped(line: &str) -> bool {
    let plain: String = strip_ansi(line);
    plain.starts_with("20") && plain.get(10..11) == Some("T")
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == ESC {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// C18 and D13: `--log-format auto` is human (timestamps, colours) on a
/// terminal and plain lines (no time, no colours) otherwise; `human` is
/// human on a pipe too; `plain` is plain on a terminal; the variable
/// `CERTKEEP_LOG_FORMAT` (set by the units) selects the format as the flag
/// does; `json` gives one JSON object per line.
#[test]
fn log_formats_auto_human_plain_json_and_the_environment_variable() {
    require!("script");
    let dir = tempfile::tempdir().unwrap();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "\n[http01]\nself_check = false\n\n[renewal]\nretry_budget = \"1s\"\n\n[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = {webroot:?}\n"
        ),
    );
    let plain = |log: &str, what: &str| {
        let info = lines_with(log, "renewing");
        assert!(!info.is_empty(), "{what}: {log}");
        for l in &info {
            assert!(!l.contains(ESC), "{what}: colours in {l:?}");
            assert!(!timestamped(l), "{what}: a timestamp in {l:?}");
            assert!(l.trim_start().starts_with("INFO certkeep"), "{what}: {l:?}");
        }
    };
    let human = |log: &str, what: &str| {
        let info = lines_with(log, "renewing");
        assert!(!info.is_empty(), "{what}: {log}");
        for l in &info {
            assert!(l.contains(ESC), "{what}: no colours in {l:?}");
            assert!(timestamped(l), "{what}: no timestamp in {l:?}");
            assert!(strip_ansi(l).contains(" INFO certkeep"), "{what}: {l:?}");
        }
    };

    plain(&renew_log(&config, &[], &[], false), "auto on a pipe");
    plain(
        &renew_log(&config, &["--log-format", "auto"], &[], false),
        "--log-format auto on a pipe",
    );
    human(&renew_log(&config, &[], &[], true), "auto on a terminal");
    human(
        &renew_log(&config, &["--log-format", "human"], &[], false),
        "human on a pipe",
    );
    plain(
        &renew_log(&config, &["--log-format", "plain"], &[], true),
        "plain on a terminal",
    );
    plain(
        &renew_log(&config, &[], &[("CERTKEEP_LOG_FORMAT", "plain")], true),
        "CERTKEEP_LOG_FORMAT=plain on a terminal",
    );
    human(
        &renew_log(&config, &[], &[("CERTKEEP_LOG_FORMAT", "human")], false),
        "CERTKEEP_LOG_FORMAT=human on a pipe",
    );
    for log in [
        renew_log(&config, &["--log-format", "json"], &[], false),
        renew_log(&config, &[], &[("CERTKEEP_LOG_FORMAT", "json")], false),
    ] {
        let info = lines_with(&log, "renewing");
        assert!(!info.is_empty(), "{log}");
        for l in info {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(v["level"], "INFO", "{l}");
            assert_eq!(v["fields"]["certificate"], "a", "{l}");
        }
    }
}

// ---- the daemon ----

/// Schedules that never come during a test, and no check at start.
const QUIET_DAEMON: &str = "\n[daemon]\nrenew_schedule = \"0 0 1 1 *\"\nprobe_schedule = \"0 0 1 1 *\"\nrenew_at_start = false\n";

/// Runs `certkeep run` with a NOTIFY_SOCKET the test binds and `env`;
/// returns every notification with the time it arrived, after `listen`.
fn daemon_notifications(
    config: &Path,
    env: &[(&str, &str)],
    listen: Duration,
) -> Vec<(Instant, String)> {
    let dir = config.parent().unwrap();
    let sock_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certkeep"));
    cmd.arg("--config")
        .arg(config)
        .args(["run", "--log-format", "plain"])
        .env("NOTIFY_SOCKET", &sock_path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = common::KillOnDrop(cmd.spawn().expect("start certkeep run"));
    let start = Instant::now();
    let mut notes = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < listen {
        if let Ok(n) = sock.recv(&mut buf) {
            notes.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the daemon exited: {notes:?}"
        );
    }
    notes
}

/// D8: with `WATCHDOG_USEC` set (as systemd does for `WatchdogSec=`), the
/// daemon sends `WATCHDOG=1` at half the interval; without it, none, and
/// none when `WATCHDOG_PID` names another process.
#[test]
fn watchdog_pings_at_half_of_watchdog_sec() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), QUIET_DAEMON);
    // WatchdogSec=4s: a ping every 2 s, so 5 within 9 s (at 0, 2, 4, 6, 8 s).
    let notes = daemon_notifications(
        &config,
        &[("WATCHDOG_USEC", "4000000")],
        Duration::from_secs(9),
    );
    assert!(
        notes.iter().any(|(_, n)| n.contains("READY=1")),
        "{notes:?}"
    );
    let pings: Vec<Instant> = notes
        .iter()
        .filter(|(_, n)| n.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    assert!(
        (4..=6).contains(&pings.len()),
        "{} pings in 9 s with a 2 s period: {notes:?}",
        pings.len()
    );
    // On average a ping every half of WatchdogSec (2 s, with a margin of
    // 0.5 s for a loaded machine), and never a gap near WatchdogSec itself
    // (4 s: systemd would kill the service).
    let mean = (*pings.last().unwrap() - pings[0]) / (pings.len() as u32 - 1);
    assert!(
        mean >= Duration::from_millis(1500) && mean <= Duration::from_millis(2500),
        "mean ping gap {mean:?}, not about 2 s: {notes:?}"
    );
    for w in pings.windows(2) {
        assert!(
            w[1] - w[0] < Duration::from_millis(3500),
            "a gap of {:?}: {notes:?}",
            w[1] - w[0]
        );
    }

    for (env, what) in [
        (&[][..], "no WATCHDOG_USEC"),
        (
            &[("WATCHDOG_USEC", "1000000"), ("WATCHDOG_PID", "1")][..],
            "WATCHDOG_PID of another process",
        ),
    ] {
        let notes = daemon_notifications(&config, env, Duration::from_secs(3));
        assert!(
            notes.iter().any(|(_, n)| n.contains("READY=1")),
            "{what}: {notes:?}"
        );
        assert!(
            !notes.iter().any(|(_, n)| n.contains("WATCHDOG=1")),
            "{what}: {notes:?}"
        );
    }
}

/// D11: SIGTERM while a job runs a hook that would take 10 minutes: the
/// hook is left to run for `shutdown_timeout` (2 s), then the job is
/// dropped, the hook's whole process group killed, and the daemon exits 0.
#[test]
fn shutdown_timeout_drops_the_job_and_kills_the_hook_group() {
    let dir = tempfile::tempdir().unwrap();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let pids = dir.path().join("hook.pids");
    let config = write_config(
        dir.path(),
        &format!(
            "\n[http01]\nself_check = false\n\n[daemon]\nrenew_schedule = \"0 0 1 1 *\"\nprobe_schedule = \"0 0 1 1 *\"\nrenew_at_start = true\nshutdown_timeout = \"2s\"\n\n\
             [hooks]\ntimeout = \"1h\"\npre_hook = [\"/bin/sh\", \"-c\", \"sleep 600 & echo $$ $! > {pids}; wait\"]\n\n\
             [[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = {webroot:?}\n",
            pids = pids.display()
        ),
    );
    let mut child = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&config)
            .args(["run", "-v", "--log-format", "plain"])
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start certkeep run"),
    );
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut std::io::BufReader::new(stderr), &mut s);
        s
    });
    // The renewal at start runs the pre hook: a shell and its sleep.
    common::wait_for("the pre hook to start", Duration::from_secs(30), || {
        std::fs::read_to_string(&pids).is_ok_and(|s| s.split_whitespace().count() == 2)
    });
    let hook: Vec<u32> = std::fs::read_to_string(&pids)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(hook.iter().all(|p| common::alive(*p)), "{hook:?}");

    let term = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    // Bound on a hang: the 2 s grace plus 28 s for a loaded machine.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            term.elapsed() < Duration::from_secs(30),
            "the daemon still ran 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = term.elapsed();
    let log = log.join().unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    // The running hook was given the grace, not cut at once.
    assert!(
        took >= Duration::from_millis(1900),
        "exited after {took:?}: {log}"
    );
    assert!(log.contains("did not finish within 2s; aborted"), "{log}");
    common::wait_for(
        "the hook's processes to be gone",
        Duration::from_secs(10),
        || hook.iter().all(|p| !common::alive(*p)),
    );
    eprintln!("daemon exited {took:?} after SIGTERM with shutdown_timeout = 2s");
}

// ---- with Pebble and nginx ----

/// K13: per-certificate `deploy_hook` and `post_hook` run for their own
/// certificate only: the deploy hook after the global one, with that
/// certificate's `RENEWED_LINEAGE` and `RENEWED_DOMAINS`; the post hook once
/// per run that attempted it, before the global one; neither for a run that
/// did not touch it.
#[test]
fn per_certificate_deploy_and_post_hooks_run_for_their_certificate_only() {
    let Some(bed) = common::Bed::start(common::PebbleOptions::default()) else {
        return;
    };
    let log = bed.dir.path().join("hooks.log");
    let hook = |tag: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo '{tag}' \\\"[$RENEWED_LINEAGE]\\\" \\\"[$RENEWED_DOMAINS]\\\" >> {}\"]",
            log.display()
        )
    };
    bed.write_config(&format!(
        "\n[hooks]\ndeploy_hook = {}\npost_hook = {}\n{}{}",
        hook("global-deploy"),
        hook("global-post"),
        bed.cert_block(
            "a",
            &["a.test", "www.a.test"],
            &format!(
                "confirm = false\ndeploy_hook = {}\npost_hook = {}",
                hook("a-deploy"),
                hook("a-post")
            )
        ),
        bed.cert_block("b", &["b.test"], "confirm = false"),
    ));
    let live = |name: &str| bed.store.join("live").join(name).display().to_string();
    let read_log = || {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(&log);
        l
    };

    // Both issued in one run.
    common::assert_exit(&bed.certkeep(&["renew"]), 0);
    let want = format!(
        "global-deploy [{a}] [a.test www.a.test]\n\
         a-deploy [{a}] [a.test www.a.test]\n\
         global-deploy [{b}] [b.test]\n\
         a-post [] [a.test www.a.test b.test]\n\
         global-post [] [a.test www.a.test b.test]\n",
        a = live("a"),
        b = live("b"),
    );
    assert_eq!(read_log(), want);

    // A run that renews only b: a's hooks stay silent.
    common::assert_exit(&bed.certkeep(&["renew", "--force", "--cert", "b"]), 0);
    let want = format!(
        "global-deploy [{b}] [b.test]\nglobal-post [] [b.test]\n",
        b = live("b"),
    );
    assert_eq!(read_log(), want);

    // Only a: its deploy and post hooks again.
    common::assert_exit(&bed.certkeep(&["renew", "--force", "--cert", "a"]), 0);
    let want = format!(
        "global-deploy [{a}] [a.test www.a.test]\n\
         a-deploy [{a}] [a.test www.a.test]\n\
         a-post [] [a.test www.a.test]\n\
         global-post [] [a.test www.a.test]\n",
        a = live("a"),
    );
    assert_eq!(read_log(), want);
}

/// A bed (Pebble rejecting no nonce) and a fault proxy in front of its CA;
/// `None` where the bed's servers are missing outside CI.
fn proxied_bed() -> Option<(common::Bed, FaultProxy)> {
    let bed = common::Bed::start(common::PebbleOptions {
        nonce_reject: 0,
        authz_reuse: 0,
        eab: None,
    })?;
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    Some((bed, proxy))
}

/// The bed's config head, talking to the CA through `proxy`.
fn proxied_head(bed: &common::Bed, proxy: &FaultProxy) -> String {
    bed.base_config()
        .replace(&bed.pebble.directory, &proxy.directory)
        .replace(
            &bed.pebble.api_ca.display().to_string(),
            &proxy.ca_bundle.display().to_string(),
        )
}

/// Writes the bed's config: its head talking to the CA through `proxy`,
/// then `body`.
fn write_proxied(bed: &common::Bed, proxy: &FaultProxy, body: &str) {
    std::fs::write(&bed.config, proxied_head(bed, proxy) + body).unwrap();
}

/// K6: `[acme] order_timeout` ends the wait for a CA that never validates
/// (orders read back "pending" through the fault proxy): the issue fails
/// after about the timeout, saying which setting to raise, and writes no
/// certificate; once the CA answers again the same command issues.
#[test]
fn order_timeout_ends_the_wait_for_a_ca_that_never_validates() {
    let Some((bed, proxy)) = proxied_bed() else {
        return;
    };
    let head =
        proxied_head(&bed, &proxy).replace("order_timeout = \"60s\"", "order_timeout = \"3s\"");
    assert!(head.contains("order_timeout = \"3s\""), "{head}");
    std::fs::write(
        &bed.config,
        format!(
            "{head}{}",
            bed.cert_block("slow", &["slow.test"], "confirm = false")
        ),
    )
    .unwrap();

    proxy.hold_orders_pending(true);
    // Bound on a hang: the 3 s timeout plus 60 s for a loaded machine.
    let (out, took) =
        common::certkeep_within(&bed.config, &["issue", "slow"], Duration::from_secs(63));
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the CA did not validate within 3s; raise [acme] order_timeout"),
        "{}",
        text(&out)
    );
    let seen = proxy.log();
    let t0 = seen[0].at;
    let shown: Vec<String> = seen
        .iter()
        .map(|s| {
            format!(
                "{:>7.3}s {} {} -> {}",
                (s.at - t0).as_secs_f64(),
                s.method,
                s.path,
                s.status
            )
        })
        .collect();
    let shown = shown.join("\n");
    let polls: Vec<Instant> = seen
        .iter()
        .filter(|s| s.path.starts_with("/my-order/"))
        .map(|s| s.at)
        .collect();
    assert!(polls.len() >= 3, "the order was polled: {polls:?}");
    let span = *polls.last().unwrap() - polls[0];
    // Polled for the whole timeout (a margin of 0.5 s for the first poll's
    // delay and the last back-off step), not given up early.
    assert!(
        span >= Duration::from_millis(2500),
        "polled for {span:?} only; took {took:?}:\n{shown}"
    );
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert!(!bed.store.join("live").join("slow").exists());

    proxy.hold_orders_pending(false);
    let out = bed.certkeep(&["issue", "slow"]);
    assert_exit(&out, 0);
    assert!(bed.store.join("live/slow/fullchain.pem").exists());
    eprintln!("issue gave up {took:?} after it started, with order_timeout = 3s");
}

/// N5: `[renewal] ari_concurrency` look-ups run at the same time. Each ARI
/// request is held 1.5 s by the fault proxy: with `ari_concurrency = 1`
/// the four look-ups of four certificates arrive one answer apart; with 4,
/// all four arrive before the first could have been answered, which only
/// concurrent requests can do.
#[test]
fn ari_look_ups_run_ari_concurrency_at_a_time() {
    let Some((bed, proxy)) = proxied_bed() else {
        return;
    };
    let names = ["n1", "n2", "n3", "n4"];
    let write = |concurrency: usize| {
        let head = proxied_head(&bed, &proxy).replace(
            "[renewal]\n",
            &format!("[renewal]\nari_concurrency = {concurrency}\n"),
        );
        let certs: String = names
            .iter()
            .map(|n| bed.cert_block(n, &[&format!("{n}.test")], "confirm = false"))
            .collect();
        std::fs::write(&bed.config, format!("{head}{certs}")).unwrap();
    };
    write(8);
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);

    const HOLD: Duration = Duration::from_millis(1500);
    proxy.delay(Some(("renewalInfo", HOLD)));
    let mut arrivals = Vec::new();
    for concurrency in [1, 4] {
        write(concurrency);
        // No stored windows: every certificate is looked up.
        let _ = std::fs::remove_file(bed.store.join("state").join("ari.json"));
        let before = proxy.log().len();
        let out = bed.certkeep(&["renew"]);
        assert_exit(&out, 0);
        let log = proxy.log();
        let ari: Vec<Instant> = log[before..]
            .iter()
            .filter(|s| s.path.contains("renewalInfo"))
            .map(|s| s.at)
            .collect();
        let paths: Vec<&str> = log[before..].iter().map(|s| s.path.as_str()).collect();
        assert_eq!(ari.len(), 4, "ari_concurrency = {concurrency}: {paths:?}");
        arrivals.push(ari);
    }
    // One at a time: each look-up is sent after the one before was answered.
    for w in arrivals[0].windows(2) {
        assert!(
            w[1] - w[0] >= HOLD,
            "ari_concurrency = 1: {:?}",
            arrivals[0]
        );
    }
    // Four at a time: all four sent while the first was still held.
    let spread = arrivals[1][3] - arrivals[1][0];
    assert!(spread < HOLD, "ari_concurrency = 4: spread {spread:?}");
}

/// `openssl x509 <args>` on a PEM file; stdout.
fn openssl_x509(file: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .arg("x509")
        .arg("-in")
        .arg(file)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl x509 {args:?}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    let hex: String = hex.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// N8: a renewal's order carries ARI `replaces` naming the certificate it
/// replaces: base64url of its authority key identifier, a dot, base64url of
/// its serial's DER content octets (RFC 9773), here computed from what
/// openssl prints for the certificate that was live before the renewal.
#[test]
fn a_renewal_order_names_the_certificate_it_replaces() {
    use base64::Engine;
    let Some((bed, proxy)) = proxied_bed() else {
        return;
    };
    write_proxied(
        &bed,
        &proxy,
        &bed.cert_block("rp", &["rp.test"], "confirm = false"),
    );
    assert_exit(&bed.certkeep(&["issue", "rp"]), 0);
    let old = bed.dir.path().join("old.pem");
    std::fs::copy(bed.store.join("live/rp/cert.pem"), &old).unwrap();
    let issued = proxy.orders();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        issued[0].replaces_id, None,
        "a first order replaces nothing"
    );

    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    let orders = proxy.orders();
    assert_eq!(orders.len(), 2, "{orders:?}");

    let serial = openssl_x509(&old, &["-noout", "-serial"]);
    let mut serial = hex_bytes(serial.trim().trim_start_matches("serial="));
    if serial[0] & 0x80 != 0 {
        serial.insert(0, 0);
    }
    let aki = openssl_x509(&old, &["-noout", "-ext", "authorityKeyIdentifier"]);
    let aki_line = aki
        .lines()
        .map(str::trim)
        .find(|l| l.contains(':') && !l.starts_with("X509v3"))
        .unwrap_or_else(|| panic!("no key id in {aki:?}"));
    let aki = hex_bytes(aki_line.trim_start_matches("keyid:"));
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let want = format!("{}.{}", b64(&aki), b64(&serial));
    assert_eq!(orders[1].replaces_id.as_deref(), Some(want.as_str()));
    assert_eq!(orders[1].status, 201, "the CA took it");
}

/// N6: the CA's ARI answers fail (HTTP 500 for `renewalInfo` only): the run
/// goes on and the lifetime rule decides. A certificate whose
/// `renew_before` (10 years) makes it due by its lifetime is left alone
/// while ARI answers (the window decides), and renewed once ARI fails; the
/// one with the default threshold is not; both runs exit 0.
#[test]
fn an_ari_outage_leaves_the_decision_to_the_lifetime_rule() {
    let Some((bed, proxy)) = proxied_bed() else {
        return;
    };
    let certs = bed.cert_block(
        "early",
        &["early.test"],
        "confirm = false\nrenew_before = \"3650d\"",
    ) + &bed.cert_block("fresh", &["fresh.test"], "confirm = false");
    write_proxied(&bed, &proxy, &certs);
    assert_exit(&bed.certkeep(&["issue", "--all"]), 0);
    let versions = || -> Vec<(String, i64)> {
        let out = bed.certkeep(&["certificates", "--json"]);
        assert_exit(&out, 0);
        let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let mut v: Vec<(String, i64)> = v
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["version"].as_i64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let ari_answers = |from: usize| -> Vec<u16> {
        proxy.log()[from..]
            .iter()
            .filter(|s| s.path.contains("renewalInfo"))
            .map(|s| s.status)
            .collect()
    };

    // ARI answers: its windows (in the future) decide; nothing is due.
    let _ = std::fs::remove_file(bed.store.join("state").join("ari.json"));
    let from = proxy.log().len();
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert_eq!(ari_answers(from), vec![200, 200], "{}", text(&out));
    assert_eq!(versions(), vec![("early".into(), 1), ("fresh".into(), 1)]);

    // ARI fails: the lifetime rule decides, the run goes on.
    let _ = std::fs::remove_file(bed.store.join("state").join("ari.json"));
    proxy.set_for(Fault::Status500(1000), Some("renewalInfo"));
    let from = proxy.log().len();
    let out = bed.certkeep(&["renew", "-v"]);
    assert_exit(&out, 0);
    assert_eq!(ari_answers(from), vec![500, 500], "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["early", "fresh"] {
        assert!(
            err.lines().any(
                |l| l.contains("ARI look-up failed, using the lifetime threshold")
                    && l.contains(name)
            ),
            "{name}: {}",
            text(&out)
        );
    }
    assert_eq!(versions(), vec![("early".into(), 2), ("fresh".into(), 1)]);
}

/// The next `n` times systemd computes for the `OnCalendar=` of a shipped
/// timer unit (in UTC).
fn timer_elapses(unit: &str, n: usize) -> Vec<chrono::NaiveDateTime> {
    let unit_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(unit),
    )
    .unwrap();
    let calendars: Vec<&str> = unit_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("OnCalendar="))
        .collect();
    assert_eq!(calendars.len(), 1, "{unit}: {calendars:?}");
    let out = Command::new("systemd-analyze")
        .args(["calendar", &format!("--iterations={n}"), calendars[0]])
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze");
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let times: Vec<chrono::NaiveDateTime> = stdout
        .lines()
        .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
        .map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words[words.len() - 3..words.len() - 1].join(" ");
            chrono::NaiveDateTime::parse_from_str(&at, "%Y-%m-%d %H:%M:%S")
                .unwrap_or_else(|e| panic!("{l:?}: {e}"))
        })
        .collect();
    assert_eq!(times.len(), n, "{stdout}");
    times
}

/// N1 and the README's timers: systemd itself computes the renew timer's
/// times (twice a day, at 00:00 and 12:00 before the random delay) and the
/// probe timer's (every 15 minutes).
#[test]
fn timers_run_renew_twice_a_day_and_probe_every_15_minutes() {
    require!("systemd-analyze");
    let renew = timer_elapses("certkeep-renew.timer", 6);
    for t in &renew {
        assert!(
            t.format("%H:%M:%S").to_string() == "00:00:00"
                || t.format("%H:%M:%S").to_string() == "12:00:00",
            "{renew:?}"
        );
    }
    for w in renew.windows(2) {
        assert_eq!(w[1] - w[0], chrono::Duration::hours(12), "{renew:?}");
    }
    let probe = timer_elapses("certkeep-probe.timer", 8);
    for w in probe.windows(2) {
        assert_eq!(w[1] - w[0], chrono::Duration::minutes(15), "{probe:?}");
    }
}
