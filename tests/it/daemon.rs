//! The daemon as a child process: readiness through a NOTIFY_SOCKET made by
//! the test, a scheduled renewal, metrics, SIGHUP (valid and invalid config)
//! and SIGTERM. Real Pebble and nginx on loopback.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Bed, PebbleOptions};

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `promtool check metrics` (Prometheus's own linter) on a live /metrics:
/// no problem reported at all.
fn check_metrics_with_promtool(metrics: &str) {
    if !common::have("promtool") {
        return;
    }
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics: {report}\n{metrics}"
    );
}

/// Loads `/` in headless chromium: the DOM it builds and a screenshot.
fn check_status_page_in_chromium(port: u16, site_port: u16, dir: &std::path::Path) {
    let json: serde_json::Value =
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/status.json"))
            .unwrap()
            .json()
            .unwrap();
    assert!(
        json["endpoints"].as_array().is_some_and(|e| !e.is_empty()),
        "{json}"
    );
    let text = json.to_string();
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    // The lineage issued at start: version 1, renewed ok, renewed next at
    // the next scheduled check or later, once it is due.
    let d1 = &json["lineages"][0];
    assert_eq!(d1["name"], "d1", "{json}");
    assert_eq!(d1["version"], 1, "{json}");
    assert_eq!(d1["last_renewal"], "ok", "{json}");
    let next = d1["next_renewal"]
        .as_str()
        .unwrap_or_else(|| panic!("{json}"));
    let check = json["next_renewal_check"]
        .as_str()
        .unwrap_or_else(|| panic!("{json}"));
    assert!(
        json["generated"].as_str().is_some_and(|now| check > now),
        "{json}"
    );
    assert!(next >= check, "{json}");
    if !common::have("chromium") {
        return;
    }
    let run = |extra: &str| {
        let profile = tempfile::tempdir_in(dir).unwrap();
        // `timeout` bounds a hung browser (60 s: a cold start takes a few).
        let out = Command::new("timeout")
            .args([
                "-s",
                "KILL",
                "60",
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=800,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(extra)
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .expect("run chromium");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run("--dump-dom");
    assert!(dom.contains("<h1>certkeep status</h1>"), "{dom}");
    assert!(dom.contains("<td>d1</td><td>1</td>"), "{dom}");
    assert!(dom.contains("<th>Next renewal</th>"), "{dom}");
    // Shown as "YYYY-MM-DD HH:MM" (UTC).
    let shown = format!("<td>{} {}</td>", &next[..10], &next[11..16]);
    assert!(dom.contains(&shown), "{shown} not in {dom}");
    assert!(dom.contains(">ok at "), "{dom}");
    assert!(
        dom.contains(&format!("https://site.test:{site_port}")),
        "{dom}"
    );
    assert!(dom.contains("Open alerts:"), "{dom}");
    let shot = dir.join("status.png");
    run(&format!("--screenshot={}", shot.display()));
    let png = std::fs::read(&shot).expect("screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    if let Ok(keep) = std::env::var("CERTKEEP_STATUS_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn daemon_notifies_renews_serves_metrics_reloads_and_stops() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let metrics_port = common::free_port();
    // A TLS site to probe, with a certificate from a test CA.
    let ca = common::tlsgen::TestCa::new(bed.dir.path());
    let (crt, key) = ca.write_leaf(bed.dir.path(), "site", &["site.test"], (-1, 89), false);
    let site_port = bed.nginx.tls_site("site", "site.test", &crt, &key, "");
    bed.nginx.reload();
    // And an endpoint where nothing listens: its failure is its own, not the job's.
    let refused_port = common::free_port();
    let daemon = format!(
        "\n[daemon]\nrenew_schedule = \"0 0 1 1 *\"\nprobe_schedule = \"* * * * * *\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\nshutdown_timeout = \"5s\"\n\n[probe]\nmanaged_certificates = false\nca_file = \"{}\"\n\n[[endpoint]]\nurl = \"https://site.test:{site_port}\"\nconnect = \"127.0.0.1:{site_port}\"\n\n[[endpoint]]\nurl = \"https://refused.test:{refused_port}\"\nconnect = \"127.0.0.1:{refused_port}\"\n",
        ca.path.display()
    );
    let one = bed.cert_block("d1", &["d1.test"], "confirm = false");
    bed.write_config(&format!("{daemon}{one}"));

    let sock_path = bed.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["run", "-v", "--log-format", "plain"])
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.id();
    let (log, reader) = common::collect_stderr(&mut child);
    let notes = Arc::new(Mutex::new(Vec::<String>::new()));
    let listener = {
        let notes = notes.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                    let stop = msg.contains("STOPPING=1");
                    notes.lock().unwrap().push(msg);
                    if stop {
                        return;
                    }
                }
            }
        })
    };
    let saw = |s: &str| notes.lock().unwrap().iter().any(|n| n.contains(s));
    let logged = |s: &str| log.lock().unwrap().contains(s);

    wait_until("READY=1", Duration::from_secs(10), || saw("READY=1"));
    // renew_at_start: the missing certificate is issued at once.
    wait_until("the first renewal check", Duration::from_secs(30), || {
        logged("renewal check done")
    });
    assert!(
        bed.store.join("live/d1/cert.pem").exists(),
        "{}",
        log.lock().unwrap()
    );
    wait_until(
        "a STATUS with the last run",
        Duration::from_secs(10),
        || saw("last renew ok"),
    );

    // The probe runs every second.
    wait_until("a scheduled probe", Duration::from_secs(15), || {
        logged("probed")
    });
    let get_metrics = || {
        reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .unwrap()
            .text()
            .unwrap()
    };
    wait_until("probe metrics", Duration::from_secs(10), || {
        get_metrics().contains("certkeep_probe_success")
    });
    let metrics = get_metrics();
    assert_eq!(
        sample(
            &metrics,
            &format!("certkeep_probe_success{{target=\"https://site.test:{site_port}\",address=")
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            &format!(
                "certkeep_probe_success{{target=\"https://refused.test:{refused_port}\",address="
            )
        ),
        Some(0.0),
        "{metrics}"
    );
    // The served leaf says which certificate it is; times are absolute.
    let site_expiry = sample(
        &metrics,
        &format!("certkeep_probe_ssl_leaf_not_after_timestamp_seconds{{target=\"https://site.test:{site_port}\",address="),
    )
    .expect("leaf not-after");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // The test CA's leaf is valid for 89 more days (a day's margin each way).
    assert!(
        (site_expiry - now - 89.0 * 86_400.0).abs() < 86_400.0,
        "{site_expiry} {now}"
    );
    assert!(
        !metrics.contains("days"),
        "durations are in seconds: {metrics}"
    );
    check_metrics_with_promtool(&metrics);
    // The status page in a real headless browser.
    check_status_page_in_chromium(metrics_port, site_port, bed.dir.path());
    // One refused endpoint does not make the probe job unhealthy.
    assert!(
        metrics.contains("certkeep_last_run_success{job_name=\"probe\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certkeep_last_success_timestamp_seconds{job_name=\"probe\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("certkeep_probe_tls_version_accepted{target="),
        "{metrics}"
    );
    // -v says per target what happened.
    assert!(
        logged(&format!("target=https://refused.test:{refused_port}"))
            && logged("cannot probe (Refused)"),
        "{}",
        log.lock().unwrap()
    );
    assert!(
        metrics.contains("certkeep_certificate_not_after_timestamp_seconds{name=\"d1\",serial=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("certkeep_last_run_success{job_name=\"renew\"} 1"),
        "{metrics}"
    );

    // SIGHUP with a valid new config: a second certificate appears.
    let two = bed.cert_block("d2", &["d2.test"], "confirm = false");
    bed.write_config(&format!("{daemon}{one}{two}"));
    signal(pid, "HUP");
    wait_until("the reload", Duration::from_secs(10), || {
        logged("configuration reloaded")
    });
    // SIGHUP with a broken config: logged, old one kept, still running.
    std::fs::write(&bed.config, "this is = = not toml").unwrap();
    signal(pid, "HUP");
    wait_until("the rejected reload", Duration::from_secs(10), || {
        logged("configuration NOT reloaded")
    });
    assert!(
        logged("certkeep.toml:1:"),
        "the error names file and line: {}",
        log.lock().unwrap()
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the daemon died on a bad config"
    );

    // SIGTERM: exits 0, promptly.
    let start = Instant::now();
    signal(pid, "TERM");
    let status = common::wait_exit(&mut child, start, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    listener.join().unwrap();
    reader.join().unwrap();
    assert!(saw("STOPPING=1"));
}

/// A renewal check that cannot run at all (the store's archive/ is a regular
/// file) raises the same critical alert in the daemon as in `certkeep renew`,
/// delivered to a real HTTP receiver.
#[test]
fn daemon_alerts_when_its_renewal_check_cannot_run() {
    let dir = common::open_tempdir();
    let store = dir.path().join("store");
    std::fs::create_dir_all(store.join("state")).unwrap();
    std::fs::write(store.join("archive"), "not a directory").unwrap();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(common::http_receiver::Receiver::start(vec![]));
    let config = dir.path().join("certkeep.toml");
    std::fs::write(
        &config,
        format!(
            "store = \"{}\"\n\n[acme]\ndirectory = \"https://127.0.0.1:9/dir\"\n\n\
             [daemon]\nrenew_schedule = \"0 0 1 1 *\"\nprobe_schedule = \"0 0 1 1 *\"\nshutdown_timeout = \"5s\"\n\n\
             [alert]\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n\n\
             [[certificate]]\nname = \"shop\"\ndomains = [\"shop.test\"]\nwebroot = \"{}\"\nconfirm = false\n",
            store.display(),
            receiver.url("/hook"),
            webroot.display()
        ),
    )
    .unwrap();
    let mut child = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&config)
            .args(["run", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (log, reader) = common::collect_stderr(&mut child);
    // renew_at_start: the first check runs at once and cannot use the store.
    let start = Instant::now();
    while receiver.requests().is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert_eq!(status.code(), Some(0), "{log}");
    let sent: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(sent.len(), 1, "one message: {sent:?}\n{log}");
    assert_eq!(sent[0]["status"], "firing");
    let a = &sent[0]["alerts"][0];
    assert_eq!(a["labels"]["key"], "agent:renewal-check:run", "{a}");
    assert_eq!(a["labels"]["severity"], "critical", "{a}");
    assert_eq!(
        a["annotations"]["summary"], "certkeep could not run its renewal check",
        "{a}"
    );
    assert!(
        a.to_string().contains("archive"),
        "the alert says what could not be used: {a}"
    );
    assert!(log.contains("could not run the renewal check"), "{log}");
}

/// A SIGHUP with a file that loads but refers to a policy that does not
/// exist: the daemon says why (file:line:column), keeps the configuration it
/// had, and its probe rounds go on probing the old endpoint. (Before the
/// whole file was resolved at load, such a file was accepted and every probe
/// round then failed and probed nothing.)
#[test]
fn sighup_with_a_bad_reference_keeps_the_old_configuration() {
    let d = common::open_tempdir();
    let cfg = d.path().join("certkeep.toml");
    // Nothing listens on this port: each probe ends at once as refused.
    let closed = common::free_port();
    let head = format!(
        "store = \"{}\"\n\n[daemon]\nrenew_at_start = false\nrenew_schedule = \"0 0 1 1 *\"\nprobe_schedule = \"* * * * * *\"\nshutdown_timeout = \"5s\"\n\n[probe]\nmanaged_certificates = false\n\n",
        d.path().join("store").display()
    );
    let good = format!(
        "{head}[[endpoint]]\nurl = \"https://old.test:{closed}\"\nconnect = \"127.0.0.1:{closed}\"\n"
    );
    std::fs::write(&cfg, &good).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&cfg)
            .args(["run", "-v", "--log-format", "plain"])
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    let (log, reader) = common::collect_stderr(&mut child.0);
    let count = |s: &str| log.lock().unwrap().matches(s).count();
    let dump = || log.lock().unwrap().clone();
    wait_until(
        "a probe of the old endpoint",
        Duration::from_secs(20),
        || count("old.test") > 0,
    );

    // Line 14 is `policy = "nosuch"`; its value starts at column 10.
    let bad = format!(
        "{head}[[endpoint]]\nurl = \"https://new.test:{closed}\"\npolicy = \"nosuch\"\nconnect = \"127.0.0.1:{closed}\"\n"
    );
    assert_eq!(bad.lines().nth(13), Some("policy = \"nosuch\""));
    std::fs::write(&cfg, &bad).unwrap();
    signal(pid, "HUP");
    wait_until("the rejected reload", Duration::from_secs(10), || {
        count("configuration NOT reloaded") > 0
    });
    let log_text = dump();
    assert!(
        log_text.contains(&format!("{}:14:10: ", cfg.display()))
            && log_text.contains("names policy \"nosuch\""),
        "the reason, with file:line:column: {log_text}"
    );
    // Later rounds still probe the old endpoint, and never the new one.
    let before = count("old.test");
    wait_until(
        "another probe of the old endpoint",
        Duration::from_secs(20),
        || count("old.test") > before,
    );
    let log_text = dump();
    assert!(!log_text.contains("target=https://new.test"), "{log_text}");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the daemon died on a bad config: {log_text}"
    );
    signal(pid, "TERM");
    let start = Instant::now();
    let status = common::wait_exit(&mut child.0, start, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    reader.join().unwrap();
}

/// Kills the child if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
