//! `certkeep probe` writes each endpoint's report as soon as its probe
//! completes (table and JSON), and draws a progress bar only on a terminal:
//! never into a pipe, never beside JSON.

use crate::common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Command, Stdio};

use common::silent::SilentPeer;
use common::{certkeep, text};

const NO_CONFIG: &str = "/nonexistent/certkeep.toml";

/// A loopback port nothing listens on (connections are refused).
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Probe arguments with every limit at `limit` and no port-80 check.
fn probe_args(limit: &str, json: bool, targets: &[String]) -> Vec<String> {
    let mut a: Vec<String> = [
        "probe",
        "--http-port",
        "0",
        "--connect-timeout",
        limit,
        "--handshake-timeout",
        limit,
        "--read-timeout",
        limit,
        "--timeout",
        limit,
    ]
    .map(String::from)
    .to_vec();
    if json {
        a.push("--json".into());
    }
    a.extend(targets.iter().cloned());
    a
}

/// The refused endpoint's report is on stdout while the silent one is
/// still being probed (it stalls for 5 s): the command does not hold the
/// reports until the end. Fails if output waited for the whole run.
#[test]
fn each_report_is_written_while_slower_probes_still_run() {
    let silent = SilentPeer::start();
    let refused = closed_port();
    let refused_target = format!("127.0.0.1:{refused}");
    let targets = [format!("127.0.0.1:{}", silent.port), refused_target.clone()];
    for json in [false, true] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(NO_CONFIG)
            .args(probe_args("5s", json, &targets))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run certkeep");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).expect("read stdout");
            assert!(
                n > 0,
                "stdout ended before the refused endpoint's report: {seen}"
            );
            seen.push_str(&line);
            if line.contains(&refused_target) {
                break;
            }
        }
        // The silent endpoint holds the process for its 5 s limit.
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "json {json}: the refused endpoint's report came only after the run ended: {seen}"
        );
        let mut rest = String::new();
        out.read_to_string(&mut rest).expect("read stdout");
        let status = child.wait().expect("wait");
        assert_eq!(status.code(), Some(3), "json {json}: {seen}{rest}");
        let all = format!("{seen}{rest}");
        if json {
            // Still one valid JSON array, in completion order.
            let v: Vec<serde_json::Value> =
                serde_json::from_str(&all).unwrap_or_else(|e| panic!("{e}: {all}"));
            assert_eq!(v.len(), 2, "{all}");
            assert_eq!(v[0]["port"], refused, "{all}");
            assert_eq!(v[0]["error"]["kind"], "refused", "{all}");
            assert_eq!(v[1]["port"], silent.port, "{all}");
            assert_eq!(v[1]["verdict"], "error", "{all}");
        } else {
            let lines: Vec<&str> = all.lines().collect();
            assert!(lines[0].starts_with("VERDICT"), "{all}");
            assert_eq!(lines.len(), 3, "{all}");
            assert!(lines[1].contains(&refused_target), "{all}");
            assert!(lines[2].contains(&format!(":{}", silent.port)), "{all}");
        }
    }
}

/// With stdout and stderr piped (a script, CI, a log), no progress bar:
/// no carriage return, no escape sequence, no bar, in either stream.
#[test]
fn piped_output_has_no_progress_bar() {
    let silent = SilentPeer::start();
    let targets: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", silent.port))
        .collect();
    for json in [false, true] {
        let args = probe_args("1s", json, &targets);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = certkeep(std::path::Path::new(NO_CONFIG), &args);
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            let s = String::from_utf8_lossy(bytes);
            for bad in ["\r", "\x1b", "probing [", "[=", "=>", "/3"] {
                assert!(
                    !s.contains(bad),
                    "json {json}: {name} has {bad:?}: {}",
                    text(&out)
                );
            }
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        if json {
            let v: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("JSON");
            assert_eq!(v.len(), 3);
        } else {
            assert_eq!(stdout.lines().count(), 4, "{stdout}");
        }
    }
}

/// On a terminal (a pseudo-terminal from `script`), the same run shows a
/// bar on stderr counting the endpoints; with --json or -v it does not.
#[test]
fn a_terminal_shows_progress_but_not_with_json_or_logs() {
    require!("script");
    let silent = SilentPeer::start();
    let targets: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", silent.port))
        .collect();
    let transcript = |global: &[&str], json: bool| {
        let mut cmd = vec![
            env!("CARGO_BIN_EXE_certkeep").to_string(),
            "--config".into(),
            NO_CONFIG.into(),
        ];
        cmd.extend(global.iter().map(|s| s.to_string()));
        cmd.extend(probe_args("1s", json, &targets));
        let out = Command::new("script")
            .args(["-q", "-f", "-e", "-c", &cmd.join(" "), "/dev/null"])
            .env("TERM", "xterm")
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .output()
            .expect("run script");
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = transcript(&[], false);
    assert!(
        shown.contains("probing ["),
        "no bar on a terminal: {shown:?}"
    );
    assert!(
        shown.contains("/3"),
        "the bar counts 3 endpoints: {shown:?}"
    );
    // The table is still there.
    assert!(shown.contains("VERDICT"), "{shown:?}");
    for (global, json) in [(&[][..], true), (&["-v"][..], false)] {
        let s = transcript(global, json);
        assert!(!s.contains("probing ["), "{global:?} json {json}: {s:?}");
        assert!(!s.contains("/3"), "{global:?} json {json}: {s:?}");
    }
}
