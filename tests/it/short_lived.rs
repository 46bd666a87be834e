//! Short-lived certificates end to end, scaled down: Pebble issues
//! 1-minute certificates (`certificateValidityPeriod`), a real `certkeep run`
//! checks renewals and probes nginx every second, and a webhook receiver
//! counts what reaches the alert channel. A 6-day certificate goes through
//! the same decisions at 1/8640 of the pace (the unit test
//! `src/renew/plan_tests.rs::six_day_certificates_over_a_month_of_checks`
//! walks the real 6-day timeline over an injected clock).

use crate::common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http_receiver::Receiver;
use common::{assert_exit, lineage, Bed, KillOnDrop, PebbleOptions};
use time::OffsetDateTime;

/// Lifetime of Pebble's certificates here, in seconds.
const LIFETIME: i64 = 60;

fn dates(path: &std::path::Path) -> (OffsetDateTime, OffsetDateTime) {
    let pem = std::fs::read(path).expect("read cert.pem");
    let der = certkeep::cert::parse_pem_leaf(&pem, "cert.pem").expect("a certificate");
    let f = certkeep::cert::facts(&der, "cert.pem").expect("facts");
    (f.not_before, f.not_after)
}

/// Version 1 (a 1-minute certificate) is renewed by the daemon once half
/// its lifetime is left, and before the 1/10 mark; version 2 is not
/// renewed again before its own half-life; nginx serves version 2; the
/// probe finds nothing to warn about and no alert is sent.
#[test]
fn a_daemon_renews_each_short_lived_certificate_once_at_half_its_lifetime_without_alerts() {
    let Some(bed) = Bed::start_with_validity(
        PebbleOptions {
            nonce_reject: 0,
            ..PebbleOptions::default()
        },
        Some(LIFETIME as u64),
    ) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start(vec![]));
    let common_sections = format!(
        "\n[alert]\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n\n[daemon]\nrenew_schedule = \"* * * * * *\"\nrenew_jitter = \"0s\"\nprobe_schedule = \"* * * * * *\"\nshutdown_timeout = \"5s\"\n",
        receiver.url("/hook")
    );
    let head = format!("{}{common_sections}", bed.base_config());
    std::fs::write(
        &bed.config,
        format!(
            "{head}{}",
            bed.cert_block("short", &["short.test"], "confirm = false")
        ),
    )
    .unwrap();
    assert_exit(&bed.certkeep(&["issue", "short"]), 0);
    let live = bed.store.join("live/short");
    // TLS 1.2 and 1.3, as the probe's default policy wants (this nginx's
    // own default may leave 1.3 out).
    let port = bed.nginx.tls_site(
        "short",
        "short.test",
        &live.join("fullchain.pem"),
        &live.join("privkey.pem"),
        "ssl_protocols TLSv1.2 TLSv1.3;",
    );
    bed.nginx.reload();
    let body = bed.cert_block(
        "short",
        &["short.test"],
        &format!("endpoint = \"127.0.0.1:{port}\""),
    );
    // The probe looks at what nginx serves: expiry, chain, hostname,
    // protocols (HSTS and plain HTTP are not this site's business).
    let probe = format!(
        "\n[probe]\nmanaged_certificates = false\nca_file = \"{}\"\n\n[probe.policy.default]\nhsts_missing = \"ok\"\nhttp_port = 0\n\n[[endpoint]]\nurl = \"https://short.test:{port}\"\nconnect = \"127.0.0.1:{port}\"\n",
        bed.pebble.issuer_root.display()
    );
    std::fs::write(&bed.config, format!("{head}{probe}{body}")).unwrap();
    let cert = bed.store.join("live/short/cert.pem");
    let (nb1, na1) = dates(&cert);
    // Pebble's notAfter is inclusive (RFC 5280): the validity period less
    // one second.
    let life = (na1 - nb1).whole_seconds();
    assert_eq!(life, LIFETIME - 1, "Pebble's validity period");
    let serial1 = lineage::live_serial(&bed.store, "short");

    // `schedule` under a yearly renew_schedule: while this certificate is
    // live, the checks come 4 hours apart.
    let yearly = bed.dir.path().join("yearly.toml");
    std::fs::write(
        &yearly,
        format!("{head}{probe}{body}").replace(
            "renew_schedule = \"* * * * * *\"",
            "renew_schedule = \"0 0 1 1 *\"",
        ),
    )
    .unwrap();
    let out = common::certkeep(&yearly, &["schedule", "--count", "3"]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = stdout.lines().next().unwrap_or_default();
    assert!(line.contains("at most 4h apart"), "{stdout}");
    let times: Vec<OffsetDateTime> = line
        .rsplit("): ")
        .next()
        .unwrap_or_default()
        .split(", ")
        .map(|t| {
            OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{t}: {e}: {stdout}"))
        })
        .collect();
    assert_eq!(times.len(), 3, "{stdout}");
    assert_eq!(times[1] - times[0], time::Duration::hours(4), "{stdout}");
    assert_eq!(times[2] - times[1], time::Duration::hours(4), "{stdout}");

    let log_path = bed.dir.path().join("daemon.log");
    let mut daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["run", "-v", "--log-format", "plain"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Version 2 comes at the first check with half the lifetime left: 30 s
    // after version 1's notBefore; the bound (the whole lifetime, plus the
    // time to start) only ends a hung test.
    let start = Instant::now();
    while lineage::live_serial(&bed.store, "short") == serial1 {
        assert!(
            start.elapsed() < Duration::from_secs(LIFETIME as u64 + 30),
            "not renewed\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (nb2, _) = dates(&cert);
    let renewed_after = (nb2 - nb1).whole_seconds();
    // Pebble's notBefore is the moment it issued (whole seconds); the plan
    // made it due with half the lifetime left, and the 1/10 rule was not
    // needed.
    assert!(
        (life - life / 2..life * 9 / 10).contains(&renewed_after),
        "renewed {renewed_after} s into a {life} s lifetime\n{}",
        log()
    );
    assert!(
        log().contains(&format!("renewing at {}s left", life / 2)),
        "renewed by the lifetime rule\n{}",
        log()
    );
    let serial2 = lineage::live_serial(&bed.store, "short");
    common::wait_for("nginx to serve version 2", Duration::from_secs(20), || {
        lineage::served_serial(&bed, "short").as_deref() == Ok(serial2.as_str())
    });

    // Until version 2's own half-life (less 3 s for the check in flight)
    // nothing more is ordered, the probe keeps finding the site fine, and
    // nothing reaches the channel.
    let quiet_until = nb2 + time::Duration::seconds(life / 2 - 3);
    while OffsetDateTime::now_utc() < quiet_until {
        std::thread::sleep(Duration::from_millis(500));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let stopped = Instant::now();
    while daemon.try_wait().ok().flatten().is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "daemon did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = log();
    assert_eq!(
        lineage::versions(&bed.store, "short"),
        (2, 2, 4),
        "one renewal, not more\n{log}"
    );
    assert_eq!(log.matches("renewed=1").count(), 1, "{log}");
    assert!(
        log.matches("probed").count() >= 10,
        "the probe ran every second\n{log}"
    );
    let sent = receiver.requests();
    assert!(
        sent.is_empty(),
        "alerts sent: {:?}\n{log}",
        sent.iter().map(|r| r.json()).collect::<Vec<_>>()
    );
}
