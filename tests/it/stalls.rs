//! Peers that accept and never answer, and faults that retrying cannot fix.
//! Every network call ends within its configured timeout, alert delivery
//! never holds up a renewal, the self-check runs before the CA is contacted,
//! and a CA whose certificate does not verify fails at once. Each run of the
//! binary is bounded (configured timeout + a stated margin) and killed past
//! that bound, so a hang fails the test instead of stalling it.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::silent::SilentPeer;
use common::{assert_exit, certkeep_within, text, Bed, PebbleOptions};

/// Slack over the documented timeout for process start-up (a debug build)
/// and a slow, shared 2-core test machine. Measured overshoot: under 1 s.
const MARGIN: Duration = Duration::from_secs(5);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn all_output(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A config with only a store and `[alert]` channels.
fn alert_only_config(dir: &Path, channels: &str) -> PathBuf {
    let path = dir.join("certkeep.toml");
    std::fs::write(
        &path,
        format!(
            "store = {:?}\n\n[alert]\n{channels}",
            dir.join("store").display().to_string()
        ),
    )
    .expect("write config");
    path
}

fn email(name: &str, port: u16, tls: &str, timeout: Option<&str>) -> String {
    format!(
        "\n[[alert.channel]]\nname = \"{name}\"\ntype = \"email\"\nfrom = \"certkeep@example.test\"\nto = [\"ops@example.test\"]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {port}\ntls = \"{tls}\"\n{}\n",
        timeout
            .map(|t| format!("timeout = \"{t}\""))
            .unwrap_or_default()
    )
}

fn http_channel(name: &str, kind: &str, port: u16, timeout: &str) -> String {
    format!(
        "\n[[alert.channel]]\nname = \"{name}\"\ntype = \"{kind}\"\nurl = \"http://127.0.0.1:{port}/services/hook\"\ntimeout = \"{timeout}\"\n"
    )
}

#[test]
fn alert_test_ends_within_the_channel_timeout_on_silent_and_stalling_peers() {
    let dir = tempfile::tempdir().unwrap();
    // Every SMTP TLS mode, webhook and Slack; each against a peer that never
    // answers and one that answers one byte and then stalls: the "2" of a
    // greeting, the first byte of a TLS record (0x16, handshake) after the
    // ClientHello, the "H" of an HTTP status line after the request.
    let mut peers = Vec::new();
    let mut channels = String::new();
    for tls in ["none", "tls", "starttls"] {
        let stalling = match tls {
            "tls" => SilentPeer::one_byte_reply(0x16),
            _ => SilentPeer::one_byte(b'2'),
        };
        for (kind, peer) in [("silent", SilentPeer::start()), ("onebyte", stalling)] {
            channels.push_str(&email(
                &format!("mail-{tls}-{kind}"),
                peer.port,
                tls,
                Some("2s"),
            ));
            peers.push(peer);
        }
    }
    for kind in ["webhook", "slack"] {
        for (how, peer) in [
            ("silent", SilentPeer::start()),
            ("onebyte", SilentPeer::one_byte_reply(b'H')),
        ] {
            channels.push_str(&http_channel(
                &format!("{kind}-{how}"),
                kind,
                peer.port,
                "2s",
            ));
            peers.push(peer);
        }
    }
    let config = alert_only_config(dir.path(), &channels);
    // Ten channels tried one after another, 2 s each, plus the margin.
    let bound = secs(10 * 2) + MARGIN;
    let (out, took) = certkeep_within(&config, &["alert", "test"], bound);
    assert_exit(&out, 1);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = stdout.lines().filter(|l| l.contains("FAILED")).collect();
    assert_eq!(lines.len(), 10, "{}", text(&out));
    for l in &lines {
        assert!(l.contains("within 2s"), "{l}\n{}", text(&out));
    }
    assert!(stdout.contains("SMTP server 127.0.0.1:"), "{}", text(&out));
    for p in &peers {
        assert!(p.accepted() >= 1, "a channel never connected");
    }
    eprintln!("alert test, 10 stalled channels at 2 s: {took:?}");
}

#[test]
fn alert_test_with_the_default_timeout_ends() {
    let dir = tempfile::tempdir().unwrap();
    let peer = SilentPeer::start();
    let config = alert_only_config(dir.path(), &email("mail", peer.port, "none", None));
    // The default channel timeout is 30 s.
    let (out, took) = certkeep_within(&config, &["alert", "test"], secs(30) + MARGIN);
    assert_exit(&out, 1);
    assert!(all_output(&out).contains("within 30s"), "{}", text(&out));
    eprintln!("alert test, silent SMTP, default timeout: {took:?}");
}

/// The bed's config head with `directory` as the CA.
fn head_with_ca(bed: &Bed, directory: &str) -> String {
    bed.base_config().replace(&bed.pebble.directory, directory)
}

/// A certificate whose webroot nginx does not serve: its self-check fails.
fn unserved_cert(bed: &Bed, name: &str) -> String {
    let elsewhere = bed.dir.path().join(format!("unserved-{name}"));
    std::fs::create_dir_all(&elsewhere).unwrap();
    format!(
        "\n[[certificate]]\nname = \"{name}\"\ndomains = [\"{name}.test\"]\nwebroot = \"{}\"\n",
        elsewhere.display()
    )
}

#[test]
fn renew_with_a_silent_alert_channel_renews_and_queues_the_alert() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let hook = SilentPeer::start();
    let channel = http_channel("hook", "webhook", hook.port, "2s");
    let good = bed.cert_block("good", &["good.test"], "confirm = false");
    let broken = unserved_cert(&bed, "broken");
    std::fs::write(
        &bed.config,
        format!("{}\n[alert]\n{channel}{good}{broken}", bed.base_config()),
    )
    .unwrap();
    // One issuance from Pebble (order_timeout 60 s) and one 2 s delivery
    // attempt; the bound is what a hang would blow through.
    let (out, took) = certkeep_within(&bed.config, &["renew", "--force"], secs(60 + 2) + MARGIN);
    // "broken" fails its self-check (exit 1); "good" is renewed regardless.
    assert_exit(&out, 1);
    assert!(
        bed.store.join("live/good/cert.pem").exists(),
        "{}",
        text(&out)
    );
    assert!(
        all_output(&out).contains("FAILED: broken"),
        "{}",
        text(&out)
    );
    assert!(hook.accepted() >= 1, "the alert was never attempted");
    // The alert waits in the queue for the next run.
    let (status, _) = certkeep_within(&bed.config, &["alert", "status", "--json"], MARGIN);
    assert_exit(&status, 0);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    let queued = v["queued"].as_array().expect("queued list");
    assert!(!queued.is_empty(), "{v}");
    for q in queued {
        assert_eq!(q["channel"], "hook", "{v}");
        assert_eq!(q["attempts"], 1, "{v}");
        assert!(
            q["last_error"].as_str().unwrap_or("").contains("within 2s"),
            "{v}"
        );
    }
    // The run ended, so the store lock is free: another run takes it at once.
    std::fs::write(
        &bed.config,
        format!(
            "{}\n[alert]\n{channel}{good}",
            bed.base_config()
                .replace("lock_wait = \"60s\"", "lock_wait = \"0s\"")
        ),
    )
    .unwrap();
    let (again, _) = certkeep_within(&bed.config, &["renew"], secs(2) + MARGIN);
    assert!(
        !all_output(&again).contains("holds the store lock"),
        "{}",
        text(&again)
    );
    eprintln!("renew --force with a silent alert channel: {took:?}");
}

#[test]
fn the_self_check_fails_before_the_ca_is_contacted() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    // The CA accepts connections and never answers: any contact would
    // show in its count and cost a 30 s request timeout and retries.
    let ca = SilentPeer::start();
    let head = head_with_ca(&bed, &format!("https://{}/dir", ca.addr()));
    std::fs::write(
        &bed.config,
        format!("{head}{}", unserved_cert(&bed, "broken")),
    )
    .unwrap();
    // nginx answers 404 at once; the self-check's own timeout is 10 s.
    for args in [&["issue", "broken"][..], &["renew", "--force"][..]] {
        let (out, took) = certkeep_within(&bed.config, args, secs(10) + MARGIN);
        assert_exit(&out, 1);
        assert!(
            all_output(&out).contains("self-check failed for broken.test"),
            "{args:?}: {}",
            text(&out)
        );
        eprintln!("{args:?} with a broken webroot and a silent CA: {took:?}");
    }
    // nginx itself silent: the self-check gives up after its 10 s timeout.
    let nginx = SilentPeer::start();
    let head = head.replace(
        &format!("self_check_port = {}", bed.nginx.http_port),
        &format!("self_check_port = {}", nginx.port),
    );
    std::fs::write(
        &bed.config,
        format!("{head}{}", bed.cert_block("quiet", &["quiet.test"], "")),
    )
    .unwrap();
    let (out, took) = certkeep_within(&bed.config, &["issue", "quiet"], secs(10) + MARGIN);
    assert_exit(&out, 1);
    assert!(
        all_output(&out).contains("self-check failed for quiet.test"),
        "{}",
        text(&out)
    );
    assert!(nginx.accepted() >= 1);
    assert_eq!(
        ca.accepted(),
        0,
        "the CA was contacted before the self-check"
    );
    eprintln!("issue with a silent nginx port: {took:?}");
}

/// A config with no nginx and no self-check: only the CA at `directory`.
fn ca_only_config(dir: &Path, directory: &str, budget: &str) -> PathBuf {
    let webroot = dir.join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let path = dir.join("certkeep.toml");
    std::fs::write(
        &path,
        format!(
            "store = {store:?}\n\n[acme]\ndirectory = \"{directory}\"\nemail = \"ops@example.com\"\n\n[http01]\nself_check = false\n\n[renewal]\nretry_budget = \"{budget}\"\n\n[[certificate]]\nname = \"a\"\ndomains = [\"a.test\"]\nwebroot = {webroot:?}\n",
            store = dir.join("store").display().to_string(),
            webroot = webroot.display().to_string(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn an_acme_directory_on_a_silent_peer_fails_within_the_request_timeout() {
    // Both peers at once: each run waits out one 30 s request timeout.
    let runs: Vec<_> = [SilentPeer::start(), SilentPeer::one_byte_reply(0x16)]
        .into_iter()
        .map(|peer| {
            std::thread::spawn(move || {
                let dir = tempfile::tempdir().unwrap();
                let directory = format!("https://{}/dir", peer.addr());
                let config = ca_only_config(dir.path(), &directory, "2s");
                // One attempt (30 s request timeout) uses up the 2 s budget.
                let (out, took) =
                    certkeep_within(&config, &["renew", "--force"], secs(30 + 2) + MARGIN);
                assert_exit(&out, 1);
                let all = all_output(&out);
                assert!(all.contains("FAILED: a"), "{}", text(&out));
                assert!(all.contains(&directory), "{}", text(&out));
                assert!(peer.accepted() >= 1);
                took
            })
        })
        .collect();
    for r in runs {
        let took = r.join().expect("run");
        eprintln!("ACME directory on a silent peer: {took:?}");
    }
}

#[test]
fn a_ca_certificate_that_does_not_verify_fails_at_once() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    // Without ca_bundle, Pebble's certificate chains to nothing trusted.
    let head = bed
        .base_config()
        .replace(
            &format!("ca_bundle = \"{}\"\n", bed.pebble.api_ca.display()),
            "",
        )
        .replace("retry_budget = \"60s\"", "retry_budget = \"120s\"");
    assert!(!head.contains("ca_bundle"), "{head}");
    std::fs::write(
        &bed.config,
        format!("{head}{}", bed.cert_block("v", &["v.test"], "")),
    )
    .unwrap();
    // At once (docs: "fails at once", measured under 1 s), not after the
    // 120 s retry budget: 1 s plus the margin.
    let (out, took) = certkeep_within(&bed.config, &["issue", "v"], secs(1) + MARGIN);
    assert_exit(&out, 1);
    let all = all_output(&out);
    assert!(all.contains("certificate"), "{}", text(&out));
    assert!(!all.contains("retrying"), "{}", text(&out));
    eprintln!("issue against a CA that does not verify: {took:?}");
}

#[test]
fn the_nginx_confirmation_against_a_silent_port_ends_at_confirm_timeout() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    // The endpoint that should serve the new certificate accepts and never
    // completes a TLS handshake.
    let endpoint = SilentPeer::start();
    let head = bed
        .base_config()
        .replace("confirm_timeout = \"10s\"", "confirm_timeout = \"3s\"");
    assert!(head.contains("confirm_timeout = \"3s\""), "{head}");
    let cert = bed.cert_block(
        "c",
        &["c.test"],
        &format!(
            "endpoint = \"{}\"\nendpoint_sni = \"c.test\"",
            endpoint.addr()
        ),
    );
    std::fs::write(&bed.config, format!("{head}{cert}")).unwrap();
    // One issuance (order_timeout 60 s), then 3 s of confirmation attempts.
    let (out, took) = certkeep_within(&bed.config, &["renew", "--force"], secs(60 + 3) + MARGIN);
    assert_exit(&out, 1);
    let all = all_output(&out);
    assert!(
        all.contains(&format!(
            "cannot fetch the served certificate from {}",
            endpoint.addr()
        )),
        "{}",
        text(&out)
    );
    assert!(endpoint.accepted() >= 1);
    eprintln!("renew with a silent confirmation endpoint: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_channels_cost_one_timeout_not_one_each() {
    use certkeep::alert::{Alerter, Problem, Severity};
    let dir = tempfile::tempdir().unwrap();
    // Six channels that never answer, 4 s timeout each: one after another
    // they would take 24 s; side by side, 4 s.
    let peers: Vec<SilentPeer> = (0..6).map(|_| SilentPeer::start()).collect();
    let mut channels = String::new();
    for (i, p) in peers.iter().enumerate() {
        channels.push_str(&http_channel(&format!("hook{i}"), "webhook", p.port, "4s"));
    }
    let path = alert_only_config(dir.path(), &channels);
    let text = std::fs::read_to_string(&path).unwrap();
    let config = certkeep::config::Settings::parse(&text, &path).expect("config parses");
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    let now = std::time::SystemTime::now();
    alerter.observe(
        now,
        vec![Problem::new(
            "renew:x:renewal",
            Severity::Critical,
            "renewal of x failed",
        )],
        &[],
    );
    let start = std::time::Instant::now();
    let bound = secs(4) + MARGIN;
    let report = tokio::time::timeout(bound, alerter.flush(now))
        .await
        .unwrap_or_else(|_| panic!("flush still ran after {bound:?} (6 x 4 s would be 24 s)"))
        .unwrap();
    let took = start.elapsed();
    // Every channel failed, in the configured order, and stays queued.
    let names: Vec<&str> = report.outcomes.iter().map(|o| o.channel.as_str()).collect();
    assert_eq!(
        names,
        ["hook0", "hook1", "hook2", "hook3", "hook4", "hook5"]
    );
    for o in &report.outcomes {
        assert!(
            o.error.as_deref().unwrap_or("").contains("within 4s"),
            "{o:?}"
        );
    }
    assert_eq!(report.queued, 6);
    for p in &peers {
        assert_eq!(p.accepted(), 1);
    }
    eprintln!("six stalled channels at 4 s each: flush took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_check_through_slow_redirects_ends_at_its_total_bound() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Each answer comes after 8 s and redirects again: ten hops would take
    // 80 s; the whole self-check ends after 20 s.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            n += 1;
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(8)).await;
                let rsp = format!(
                    "HTTP/1.1 302 Found\r\nLocation: /hop{n}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(rsp.as_bytes()).await;
            });
        }
    });
    let webroot = tempfile::tempdir().unwrap();
    let how = certkeep::webroot::SelfCheck {
        port,
        connect: Some("127.0.0.1".parse().unwrap()),
        ca_bundle: None,
    };
    let start = std::time::Instant::now();
    let bound = certkeep::webroot::SELF_CHECK_TOTAL + MARGIN;
    let r = tokio::time::timeout(
        bound,
        certkeep::webroot::self_check("slow.test", webroot.path(), &how),
    )
    .await
    .unwrap_or_else(|_| panic!("the self-check still ran after {bound:?}"));
    let e = r.expect_err("a self-check that never gets the file fails");
    let msg = e.to_string();
    // The third request (two redirects in, 16 s spent) runs out of the
    // 20 s: it says so, with the redirects that led there.
    assert!(msg.contains("timed out"), "{msg}");
    assert!(msg.contains("/hop1 -> HTTP 302"), "{msg}");
    eprintln!("self-check through slow redirects: {:?}", start.elapsed());
}

/// Whether `pid` runs (a zombie awaiting its reaper does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s[s.rfind(')')? + 1..].trim_start().to_string();
            rest.chars().next()
        })
        .is_some_and(|state| state != 'Z')
}

fn pid_in(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

#[test]
fn deploy_hooks_that_background_or_hang_are_ended_with_their_children() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let bg = bed.dir.path().join("bg.pid");
    let hung = bed.dir.path().join("hung.pid");
    // One deploy hook leaves a child behind and exits; the other hangs.
    let backgrounding = format!(
        "deploy_hook = [\"/bin/sh\", \"-c\", \"sleep 600 & echo $! > {}; echo started\"]\nconfirm = false",
        bg.display()
    );
    let hanging = format!(
        "deploy_hook = [\"/bin/sh\", \"-c\", \"sleep 600 & echo $! > {}; echo waiting; sleep 600\"]\nconfirm = false",
        hung.display()
    );
    let hooks = "\n[hooks]\ntimeout = \"3s\"\n";
    std::fs::write(
        &bed.config,
        format!(
            "{}{hooks}{}{}",
            bed.base_config(),
            bed.cert_block("bg", &["bg.test"], &backgrounding),
            bed.cert_block("hung", &["hung.test"], &hanging)
        ),
    )
    .unwrap();
    // Two issuances (order_timeout 60 s), one hook timeout (3 s) and its
    // 2 s SIGTERM grace; the children would sleep 600 s.
    let (out, took) = certkeep_within(
        &bed.config,
        &["renew", "--force", "-v", "--log-format", "plain"],
        secs(60 + 3 + 2) + MARGIN,
    );
    let all = all_output(&out);
    // Both renewed; the hung hook is the run's problem (exit 1).
    assert_exit(&out, 1);
    assert!(all.contains("renewed: bg"), "{}", text(&out));
    assert!(all.contains("renewed: hung"), "{}", text(&out));
    assert!(
        all.contains("did not finish within 3s; it and every process it started were killed"),
        "{}",
        text(&out)
    );
    assert!(
        all.contains("waiting"),
        "the hung hook's output: {}",
        text(&out)
    );
    // The backgrounding hook succeeded, and what it left was ended.
    assert!(all.contains("hung: deploy_hook"), "{}", text(&out));
    assert!(!all.contains("bg: deploy_hook"), "{}", text(&out));
    assert!(all.contains("started"), "{}", text(&out));
    assert!(
        all.contains("left background processes running; they were killed"),
        "{all}"
    );
    for p in [&bg, &hung] {
        let pid = pid_in(p);
        assert!(!running(pid), "{} ({pid}) still runs", p.display());
    }
    eprintln!("renew with a backgrounding and a hung deploy hook: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_slower_than_30s_within_its_channel_timeout_is_delivered() {
    use certkeep::alert::{Alerter, Problem, Severity};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Answers 200 after 33 s: past the HTTP client's default 30 s, within
    // the channel's 45 s, which is the bound that counts.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // The whole request: head and the JSON body (Content-Length).
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(33)).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = alert_only_config(dir.path(), &http_channel("slow", "webhook", port, "45s"));
    let text = std::fs::read_to_string(&path).unwrap();
    let config = certkeep::config::Settings::parse(&text, &path).expect("config parses");
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    let now = std::time::SystemTime::now();
    alerter.observe(
        now,
        vec![Problem::new(
            "renew:x:renewal",
            Severity::Critical,
            "renewal of x failed",
        )],
        &[],
    );
    let bound = secs(45) + MARGIN;
    let report = tokio::time::timeout(bound, alerter.flush(now))
        .await
        .unwrap_or_else(|_| panic!("flush still ran after {bound:?}"))
        .unwrap();
    assert_eq!(report.outcomes.len(), 1);
    assert_eq!(report.outcomes[0].error, None, "{:?}", report.outcomes);
    assert_eq!(report.queued, 0);
}
