//! The daemon's jobs run independently: a renewal retrying against an
//! unreachable CA stops no probe round, and SIGTERM during its retry
//! back-off stops the daemon at once rather than after the shutdown timeout.
//! A job still running at its next scheduled time is skipped, not doubled.
//! The daemon runs as a child process; nothing here needs Pebble or nginx.

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::silent::SilentPeer;

/// `certkeep_last_run_timestamp_seconds{job_name="<job>"}` from the metrics text.
fn last_run(metrics: &str, job: &str) -> Option<i64> {
    let prefix = format!("certkeep_last_run_timestamp_seconds{{job_name=\"{job}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn probes_run_while_a_renewal_retries_and_sigterm_stops_the_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    // The CA: a port nothing listens on (connections refused, retried with
    // back-off for the whole 10 min budget).
    let ca_port = common::free_port();
    // The probed endpoint never answers: each round ends at its 1 s timeout.
    let endpoint = SilentPeer::start();
    let metrics_port = common::free_port();
    let config = dir.path().join("certkeep.toml");
    std::fs::write(
        &config,
        format!(
            r#"store = {store:?}

[acme]
directory = "https://127.0.0.1:{ca_port}/dir"
email = "ops@example.com"

[http01]
self_check = false

[renewal]
retry_budget = "10m"

[daemon]
renew_at_start = true
renew_schedule = "* * * * * *"
renew_jitter = "0s"
probe_schedule = "* * * * * *"
metrics_listen = "127.0.0.1:{metrics_port}"
shutdown_timeout = "120s"

[probe]
managed_certificates = false
total_timeout = "1s"

[[endpoint]]
url = "https://127.0.0.1:{port}"

[[certificate]]
name = "a"
domains = ["a.test"]
webroot = {webroot:?}
"#,
            store = dir.path().join("store").display().to_string(),
            port = endpoint.port,
            webroot = webroot.display().to_string(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_certkeep"))
        .arg("--config")
        .arg(&config)
        .args(["run", "-v", "--log-format", "plain"])
        .env_remove("RUST_LOG")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (log, reader) = common::collect_stderr(&mut child);
    let logged = |s: &str| log.lock().unwrap().matches(s).count();
    let metrics = || {
        reqwest::blocking::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    let kill = |child: &mut std::process::Child, why: String| -> ! {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{why}\n--- daemon log\n{}", log.lock().unwrap());
    };

    // The renewal starts at once and keeps retrying; meanwhile probe rounds
    // complete, one after another.
    let start = Instant::now();
    let mut rounds = Vec::new();
    while rounds.len() < 3 || logged("retrying") < 3 {
        if start.elapsed() > Duration::from_secs(40) {
            kill(
                &mut child,
                format!(
                    "within 40 s: probe rounds finished at {rounds:?}, {} retries",
                    logged("retrying")
                ),
            );
        }
        if let Some(t) = last_run(&metrics(), "probe") {
            if rounds.last() != Some(&t) {
                rounds.push(t);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        logged("renewal check done"),
        0,
        "the renewal should still be retrying: {}",
        log.lock().unwrap()
    );
    assert!(last_run(&metrics(), "renew").is_none());
    // The renewal is scheduled every second too: while one runs, the next
    // ones are skipped and said so, never started beside it.
    assert!(
        logged("the previous renewal check is still running; skipping") >= 1,
        "{}",
        log.lock().unwrap()
    );

    // SIGTERM in the middle of a back-off: the wait is cut short, so the
    // daemon stops within a few seconds, not the 120 s shutdown timeout.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    let bound = Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if stopped.elapsed() > bound {
            kill(
                &mut child,
                format!("still running {bound:?} after SIGTERM (shutdown_timeout is 120 s)"),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = stopped.elapsed();
    reader.join().unwrap();
    assert_eq!(status.code(), Some(0), "{}", log.lock().unwrap());
    assert!(
        logged("did not finish within") == 0,
        "a job had to be aborted: {}",
        log.lock().unwrap()
    );
    eprintln!(
        "probe rounds during the retries: {}; stopped {took:?} after SIGTERM",
        rounds.len()
    );
}

#[test]
fn sigterm_during_a_renew_back_off_ends_the_run_and_still_runs_the_post_hook() {
    let dir = tempfile::tempdir().unwrap();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let ca_port = common::free_port();
    let pre = dir.path().join("pre-ran");
    let post = dir.path().join("post-ran");
    let config = dir.path().join("certkeep.toml");
    std::fs::write(
        &config,
        format!(
            r#"store = {store:?}

[acme]
directory = "https://127.0.0.1:{ca_port}/dir"
email = "ops@example.com"

[http01]
self_check = false

[renewal]
retry_budget = "10m"

[hooks]
pre_hook = ["/bin/sh", "-c", "touch {pre}"]
post_hook = ["/bin/sh", "-c", "echo \"$FAILED_DOMAINS\" > {post}"]

[[certificate]]
name = "a"
domains = ["a.test"]
webroot = {webroot:?}
"#,
            store = dir.path().join("store").display().to_string(),
            pre = pre.display(),
            post = post.display(),
            webroot = webroot.display().to_string(),
        ),
    )
    .unwrap();
    let mut child = common::KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&config)
            .args(["renew", "--force", "-v", "--log-format", "plain"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (log, reader) = common::collect_stderr(&mut child);
    // The CA refuses connections: the run backs off, again and again.
    let start = Instant::now();
    while log.lock().unwrap().matches("retrying").count() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no retries within 30 s: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(pre.exists(), "the pre hook ran before the order");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // The back-off (up to 60 s) is cut short; the 10 min budget is not waited.
    let stopped = Instant::now();
    let bound = Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopped.elapsed() < bound,
            "renew still ran {bound:?} after SIGTERM: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    let log = log.lock().unwrap().clone();
    // Not renewed: exit 1, saying why; the post hook ran and was told.
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&post)
            .expect("the post hook ran")
            .trim(),
        "a.test"
    );
    eprintln!("renew stopped {:?} after SIGTERM", stopped.elapsed());
}
