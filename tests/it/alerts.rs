//! Alert delivery against real servers on 127.0.0.1: an SMTP server and an
//! HTTP receiver written for these tests (tests/common/smtp.rs,
//! tests/common/http_receiver.rs), and the certkeep binary for `alert test`.

use crate::common::{http_receiver, smtp};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use certkeep::alert::{Alerter, Problem, Severity};
use certkeep::config::Settings;
use http_receiver::{Receiver, Reply};
use smtp::{Mode, SmtpServer};

const SMTP_PASSWORD: &str = "sm7p-pa55word-do-not-log";
const BEARER: &str = "Bearer t0ken-do-not-log";
const URL_TOKEN: &str = "T0K3N-in-url-do-not-log";

struct Bed {
    dir: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        Bed {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a secret file (0600) and returns its path.
    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, format!("{value}\n")).expect("write secret");
        p
    }

    /// Writes certkeep.toml with `alert` as the body of `[alert]` and parses it.
    fn config(&self, alert: &str) -> (Settings, PathBuf) {
        let path = self.path("certkeep.toml");
        let text = format!(
            "store = {:?}\n\n[renewal]\nlock_wait = \"5s\"\n\n[alert]\n{alert}",
            self.path("store")
        );
        std::fs::write(&path, &text).expect("write config");
        let config = Settings::parse(&text, &path).expect("config parses");
        (config, path)
    }
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000)
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn expiry_problem(host: &str, days: i64) -> Problem {
    let mut p = Problem::new(
        format!("probe:{host}:443:expiry"),
        if days <= 3 {
            Severity::Critical
        } else {
            Severity::Warning
        },
        format!("{host}:443 certificate expires in {days} days"),
    )
    .detail("endpoint", format!("{host}:443"))
    .detail("problem", "expiry")
    .detail("days_left", days.to_string())
    .detail("issuer", "CN=Test CA")
    .detail("serial", "0a:1b:2c");
    p.fingerprint = Some(format!("fp-{host}"));
    p.threshold = Some(7);
    p
}

fn email_channel(server: &SmtpServer, tls: &str, extra: &str) -> String {
    format!(
        r#"
[[alert.channel]]
name = "mail"
type = "email"
from = "certkeep <certkeep@example.test>"
to = ["ops@example.test", "Second <second@example.test>"]
smtp_host = "127.0.0.1"
smtp_port = {}
tls = "{tls}"
{extra}
"#,
        server.port
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_with_auth_plain_groups_problems_in_one_message() {
    let server = SmtpServer::start(smtp::Options {
        credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
        ..Default::default()
    })
    .await;
    let bed = Bed::new();
    let pw = bed.secret("smtp-password", SMTP_PASSWORD);
    let (config, _) = bed.config(&email_channel(
        &server,
        "none",
        &format!("username = \"certkeep\"\npassword_file = {pw:?}\n"),
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    let sent = alerter.observe(
        t0(),
        vec![
            expiry_problem("a.example", 5),
            expiry_problem("b.example", 2),
        ],
        &[],
    );
    assert_eq!(sent.len(), 2);
    let report = alerter.flush(t0()).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.queued, 0);

    let mails = server.mails();
    assert_eq!(mails.len(), 1, "one message per channel per run");
    let m = &mails[0];
    assert_eq!(
        m.auth,
        Some(("certkeep".into(), SMTP_PASSWORD.into(), "PLAIN".into()))
    );
    assert_eq!(m.from, "certkeep@example.test");
    assert_eq!(m.rcpt, vec!["ops@example.test", "second@example.test"]);
    assert_eq!(
        m.header("Subject").unwrap(),
        "[certkeep] 2 alerts: 1 critical, 1 warning"
    );
    assert!(m.header("From").unwrap().contains("certkeep@example.test"));
    assert!(m.header("To").unwrap().contains("second@example.test"));
    assert!(m.header("Date").is_some());
    assert!(m.header("Content-Type").unwrap().starts_with("text/plain"));
    let body = m.body();
    for want in [
        "WARNING: a.example:443 certificate expires in 5 days",
        "CRITICAL: b.example:443 certificate expires in 2 days",
        "Endpoint: a.example:443",
        "Days left: 2",
        "Issuer: CN=Test CA",
        "Serial: 0a:1b:2c",
        "Since: 2026-05-28T",
        "Alert: probe:b.example:443:expiry",
    ] {
        assert!(body.contains(want), "body lacks {want:?}:\n{body}");
    }

    // Nothing new: nothing sent.
    alerter.observe(at(3600), vec![expiry_problem("a.example", 5)], &[]);
    alerter.flush(at(3600)).await.unwrap();
    assert_eq!(server.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_auth_login_and_rejected_password_stays_queued() {
    let server = SmtpServer::start(smtp::Options {
        mechanisms: "LOGIN",
        credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
        ..Default::default()
    })
    .await;
    let bed = Bed::new();
    let pw = bed.secret("smtp-password", "wrong-password");
    let (config, _) = bed.config(&email_channel(
        &server,
        "none",
        &format!("username = \"certkeep\"\npassword_file = {pw:?}\n"),
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    alerter.observe(t0(), vec![expiry_problem("a.example", 2)], &[]);
    let report = alerter.flush(t0()).await.unwrap();
    let err = report.outcomes[0].error.as_deref().unwrap();
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(err.contains("535"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    assert_eq!(report.queued, 1);
    assert!(server.mails().is_empty());

    // The operator fixes the password; the retry after backoff gets through.
    bed.secret("smtp-password", SMTP_PASSWORD);
    let report = alerter.flush(at(60)).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].auth.as_ref().unwrap().2, "LOGIN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_and_implicit_tls() {
    for (mode, tls) in [(Mode::Starttls, "starttls"), (Mode::Implicit, "tls")] {
        let server = SmtpServer::start(smtp::Options {
            mode,
            credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
            ..Default::default()
        })
        .await;
        let bed = Bed::new();
        let pw = bed.secret("smtp-password", SMTP_PASSWORD);
        let ca = bed.path("ca.pem");
        std::fs::write(&ca, &server.ca_pem).unwrap();
        let (config, _) = bed.config(&email_channel(
            &server,
            tls,
            &format!("username = \"certkeep\"\npassword_file = {pw:?}\nca_bundle = {ca:?}\n"),
        ));
        let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
        alerter.observe(t0(), vec![expiry_problem("a.example", 2)], &[]);
        let report = alerter.flush(t0()).await.unwrap();
        assert!(report.ok(), "{tls}: {report:?}");
        let mails = server.mails();
        assert_eq!(mails.len(), 1, "{tls}");
        assert!(mails[0].tls, "{tls}: mail went over TLS");

        // Without the CA bundle the server is not trusted: a clear failure.
        let (config, _) = bed.config(&email_channel(
            &server,
            tls,
            &format!("username = \"certkeep\"\npassword_file = {pw:?}\n"),
        ));
        drop(alerter);
        let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
        alerter.observe(at(10), vec![expiry_problem("c.example", 2)], &[]);
        let report = alerter.flush(at(10)).await.unwrap();
        let err = report.outcomes[0].error.as_deref().unwrap();
        assert!(err.to_lowercase().contains("certificate"), "{tls}: {err}");
        assert_eq!(server.mails().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_block_kit_with_text_fallback() {
    let rx = Receiver::start(vec![]).await;
    let bed = Bed::new();
    let url = bed.secret("slack-url", &rx.url(&format!("/services/{URL_TOKEN}")));
    let (config, _) = bed.config(&format!(
        "[[alert.channel]]\nname = \"slack\"\ntype = \"slack\"\nurl_file = {url:?}\n"
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    alerter.observe(
        t0(),
        vec![
            expiry_problem("a.example", 5),
            expiry_problem("b.example", 2),
        ],
        &[],
    );
    assert!(alerter.flush(t0()).await.unwrap().ok());
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/services/{URL_TOKEN}"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert!(v["text"]
        .as_str()
        .unwrap()
        .contains("CRITICAL: b.example:443 certificate expires in 2 days"));
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(
        blocks[0]["text"]["text"],
        "certkeep: 2 alerts: 1 critical, 1 warning"
    );
    let fields: Vec<String> = blocks[2]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "*Endpoint*\na.example:443",
        "*Problem*\nexpiry",
        "*Days left*\n5",
        "*Issuer*\nCN=Test CA",
        "*Serial*\n0a:1b:2c",
    ] {
        assert!(
            fields.contains(&want.to_string()),
            "{want:?} not in {fields:?}"
        );
    }
    assert!(fields.iter().any(|f| f.starts_with("*Since*\n2026-")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_payload_headers_and_resolution() {
    let rx = Receiver::start(vec![]).await;
    let bed = Bed::new();
    let auth = bed.secret("hook-auth", BEARER);
    let (config, _) = bed.config(&format!(
        "resolve_after_checks = 2\n[[alert.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = {:?}\nheaders = {{ X-Env = \"test\" }}\nheaders_from_files = {{ Authorization = {auth:?} }}\n",
        rx.url("/hook")
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    let key = "probe:a.example:443:expiry".to_string();
    alerter.observe(t0(), vec![expiry_problem("a.example", 2)], &[]);
    assert!(alerter.flush(t0()).await.unwrap().ok());
    // Renewed: OK twice, then resolved.
    assert!(alerter
        .observe(at(600), vec![], std::slice::from_ref(&key))
        .is_empty());
    let resolved = alerter.observe(at(1200), vec![], std::slice::from_ref(&key));
    assert_eq!(resolved.len(), 1);
    assert!(alerter.flush(at(1200)).await.unwrap().ok());

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].header("authorization"), Some(BEARER));
    assert_eq!(reqs[0].header("x-env"), Some("test"));
    let v = reqs[0].json();
    assert_eq!(v["version"], "1");
    assert_eq!(v["source"], "certkeep");
    assert_eq!(v["receiver"], "hook");
    assert_eq!(v["status"], "firing");
    let a = &v["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["kind"], "firing");
    assert_eq!(a["labels"]["alertname"], "expiry");
    assert_eq!(a["labels"]["key"], key.as_str());
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["endpoint"], "a.example:443");
    assert_eq!(
        a["annotations"]["summary"],
        "a.example:443 certificate expires in 2 days"
    );
    assert_eq!(a["annotations"]["days_left"], "2");
    assert_eq!(a["startsAt"], "2026-05-28T20:26:40Z");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    let fp = a["fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp.len(), 16);

    let v = reqs[1].json();
    assert_eq!(v["status"], "resolved");
    let a = &v["alerts"][0];
    assert_eq!(a["status"], "resolved");
    assert_eq!(a["startsAt"], "2026-05-28T20:26:40Z");
    assert_eq!(a["endsAt"], "2026-05-28T20:46:40Z");
    assert_eq!(a["fingerprint"], fp.as_str());
    assert_ne!(a["id"], reqs[0].json()["alerts"][0]["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_send_is_retried_once_across_a_restart() {
    let rx = Receiver::start(vec![Reply::status(500)]).await;
    let bed = Bed::new();
    let (config, _) = bed.config(&format!(
        "[[alert.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = {:?}\n",
        rx.url(&format!("/hook/{URL_TOKEN}"))
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    alerter.observe(t0(), vec![expiry_problem("a.example", 2)], &[]);
    let report = alerter.flush(t0()).await.unwrap();
    let err = report.outcomes[0].error.as_deref().unwrap();
    assert!(err.contains("500"), "{err}");
    assert!(err.contains("http://127.0.0.1:"), "{err}");
    assert!(!err.contains(URL_TOKEN), "the URL path is a secret: {err}");
    assert_eq!(report.queued, 1);
    drop(alerter);

    // A restart: the new process knows the alert is open and still undelivered.
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    assert!(alerter
        .observe(at(30), vec![expiry_problem("a.example", 2)], &[])
        .is_empty());
    let report = alerter.flush(at(30)).await.unwrap();
    assert!(
        report.outcomes.is_empty(),
        "backoff not over yet: {report:?}"
    );
    assert_eq!(rx.requests().len(), 1);
    let report = alerter.flush(at(60)).await.unwrap();
    assert!(report.ok(), "{report:?}");
    drop(alerter);

    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    alerter.observe(at(7200), vec![expiry_problem("a.example", 2)], &[]);
    alerter.flush(at(7200)).await.unwrap();
    alerter.flush(at(86_000)).await.unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2, "delivered exactly once after the retry");
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(alerter.state().queued(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_429_retry_after_is_honoured() {
    let rx = Receiver::start(vec![
        Reply::status(429).header("Retry-After", "1"),
        Reply::status(200),
        Reply::status(429).header("Retry-After", "3600"),
    ])
    .await;
    let bed = Bed::new();
    let (config, _) = bed.config(&format!(
        "[[alert.channel]]\nname = \"slack\"\ntype = \"slack\"\nurl = {:?}\n",
        rx.url("/services/x")
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    // A short Retry-After is waited out in the same run.
    alerter.observe(t0(), vec![expiry_problem("a.example", 2)], &[]);
    let report = alerter.flush(t0()).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[1].at.duration_since(reqs[0].at) >= Duration::from_millis(950));

    // A long one schedules the next attempt no earlier than asked.
    alerter.observe(at(10), vec![expiry_problem("b.example", 2)], &[]);
    let report = alerter.flush(at(10)).await.unwrap();
    assert!(report.outcomes[0].error.as_deref().unwrap().contains("429"));
    let d = &alerter.state().queue["slack"][0];
    assert!(d.next_at >= certkeep::alert::unix(at(10)) + 3600, "{d:?}");
    assert!(alerter.flush(at(1800)).await.unwrap().outcomes.is_empty());
    assert_eq!(rx.requests().len(), 3);
    assert!(alerter.flush(at(3610)).await.unwrap().ok());
    assert_eq!(rx.requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_get_only_their_severity() {
    let warn_rx = Receiver::start(vec![]).await;
    let crit_rx = Receiver::start(vec![]).await;
    let bed = Bed::new();
    let (config, _) = bed.config(&format!(
        "[[alert.channel]]\nname = \"all\"\ntype = \"webhook\"\nurl = {:?}\n\
         [[alert.channel]]\nname = \"pager\"\ntype = \"webhook\"\nmin_severity = \"critical\"\nurl = {:?}\n",
        warn_rx.url("/"),
        crit_rx.url("/")
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    alerter.observe(t0(), vec![expiry_problem("w.example", 5)], &[]);
    alerter.flush(t0()).await.unwrap();
    assert_eq!(warn_rx.requests().len(), 1);
    assert!(crit_rx.requests().is_empty());
    // Escalation reaches the pager.
    alerter.observe(at(60), vec![expiry_problem("w.example", 2)], &[]);
    alerter.flush(at(60)).await.unwrap();
    assert_eq!(warn_rx.requests().len(), 2);
    let v = crit_rx.requests()[0].json();
    assert_eq!(v["alerts"][0]["kind"], "escalated");
}

// ---- the binary ----

async fn certkeep(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_certkeep"));
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("run certkeep");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_test_command_reports_each_channel() {
    let rx = Receiver::start(vec![]).await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bed = Bed::new();
    let (_, path) = bed.config(&format!(
        "[[alert.channel]]\nname = \"good\"\ntype = \"webhook\"\nurl = {:?}\n\
         [[alert.channel]]\nname = \"down\"\ntype = \"slack\"\nurl = \"http://127.0.0.1:{refused}/services/x\"\n",
        rx.url("/hook")
    ));
    let (code, out, err) = certkeep(&path, &["alert", "test"], &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("good (webhook): delivered"), "{out}");
    assert!(
        out.contains("down (slack): FAILED: POST to http://127.0.0.1:"),
        "{out}"
    );
    assert!(!out.contains("/services/x"), "{out}");
    let v = rx.requests()[0].json();
    assert_eq!(v["alerts"][0]["kind"], "test");

    let (code, out, _) = certkeep(&path, &["alert", "test", "--channel", "good"], &[]).await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(rx.requests().len(), 2);

    let (code, _, err) = certkeep(&path, &["alert", "test", "--channel", "nope"], &[]).await;
    assert_eq!(code, 2);
    assert!(
        err.contains("no alert channel named \"nope\"; configured: good, down"),
        "{err}"
    );

    let (code, out, _) = certkeep(&path, &["alert", "status"], &[]).await;
    assert_eq!(code, 0);
    assert!(out.contains("no open alerts"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs() {
    let server = SmtpServer::start(smtp::Options {
        credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
        ..Default::default()
    })
    .await;
    let ok_rx = Receiver::start(vec![]).await;
    let failing_rx = Receiver::start(vec![Reply::status(500); 20]).await;
    let bed = Bed::new();
    let pw = bed.secret("smtp-password", SMTP_PASSWORD);
    let auth = bed.secret("hook-auth", BEARER);
    let slack_url = bed.secret(
        "slack-url",
        &failing_rx.url(&format!("/services/{URL_TOKEN}")),
    );
    let (_, path) = bed.config(&format!(
        "{}\n[[alert.channel]]\nname = \"hook\"\ntype = \"webhook\"\nurl = {:?}\nheaders_from_files = {{ Authorization = {auth:?} }}\n\
         [[alert.channel]]\nname = \"slack\"\ntype = \"slack\"\nurl_file = {slack_url:?}\n\
         [[alert.channel]]\nname = \"hook2\"\ntype = \"webhook\"\nurl_env = \"CERTKEEP_TEST_HOOK_URL\"\n",
        email_channel(
            &server,
            "none",
            &format!("username = \"certkeep\"\npassword_file = {pw:?}\n")
        ),
        ok_rx.url(&format!("/hook/{URL_TOKEN}")),
    ));
    let env_url = failing_rx.url(&format!("/env/{URL_TOKEN}"));
    // The password also as AUTH PLAIN and AUTH LOGIN carry it (base64).
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let auth_plain = b64(&format!("\0certkeep\0{SMTP_PASSWORD}"));
    let auth_login = b64(SMTP_PASSWORD);
    for (args, env) in [
        (vec!["-vvv", "alert", "test"], vec![]),
        (vec!["alert", "test"], vec![("RUST_LOG", "trace")]),
        (
            vec!["--log-format", "json", "-vvv", "alert", "test"],
            vec![],
        ),
    ] {
        let mut env = env;
        env.push(("CERTKEEP_TEST_HOOK_URL", env_url.as_str()));
        let (code, out, err) = certkeep(&path, &args, &env).await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(!err.is_empty(), "trace logging produced nothing");
        for secret in [
            SMTP_PASSWORD,
            BEARER,
            "t0ken-do-not-log",
            URL_TOKEN,
            &auth_plain,
            auth_plain.trim_end_matches('='),
            &auth_login,
            auth_login.trim_end_matches('='),
        ] {
            assert!(!out.contains(secret), "{secret} on stdout:\n{out}");
            assert!(!err.contains(secret), "{secret} in logs:\n{err}");
        }
        assert!(out.contains("mail (email): delivered"), "{out}");
        assert!(out.contains("hook (webhook): delivered"), "{out}");
        assert!(out.contains("slack (slack): FAILED"), "{out}");
    }
    // The secrets did reach the servers, so the test above is meaningful.
    assert_eq!(
        server.mails()[0].auth.as_ref().unwrap().1,
        SMTP_PASSWORD.to_string()
    );
    assert_eq!(ok_rx.requests()[0].header("authorization"), Some(BEARER));
    assert!(failing_rx.requests()[0].path.contains(URL_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_is_required_not_opportunistic() {
    // A server that does not offer STARTTLS gets neither the password nor the mail.
    let server = SmtpServer::start(smtp::Options {
        credentials: Some(("certkeep".into(), SMTP_PASSWORD.into())),
        ..Default::default()
    })
    .await;
    let bed = Bed::new();
    let pw = bed.secret("smtp-password", SMTP_PASSWORD);
    let (config, _) = bed.config(&email_channel(
        &server,
        "starttls",
        &format!("username = \"certkeep\"\npassword_file = {pw:?}\n"),
    ));
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    alerter.observe(t0(), vec![expiry_problem("a.example", 2)], &[]);
    let report = alerter.flush(t0()).await.unwrap();
    let err = report.outcomes[0].error.as_deref().unwrap();
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(server.mails().is_empty());
    assert!(
        server.auths.lock().unwrap().is_empty(),
        "password sent in clear"
    );
    assert_eq!(report.queued, 1);
}

/// The webhook payloads for a renewal that fails with an error holding the
/// self-check's random token (twice: a new token each run), then succeeds:
/// the firing and the resolved alert carry the same short labels and
/// fingerprint, with the token only in the annotations.
#[test]
fn alert_identity_is_stable_across_changing_error_text() {
    use crate::common::{assert_exit, text, Bed as AcmeBed, PebbleOptions};
    let Some(bed) = AcmeBed::start(PebbleOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start(vec![]));
    let unserved = bed.dir.path().join("unserved");
    std::fs::create_dir_all(&unserved).unwrap();
    let config = |webroot: &Path| {
        format!(
            "\n[alert]\nresolve_after_checks = 1\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n\n[[certificate]]\nname = \"tok\"\ndomains = [\"tok.test\"]\nwebroot = \"{}\"\nconfirm = false\n",
            receiver.url("/hook"),
            webroot.display()
        )
    };
    bed.write_config(&config(&unserved));
    let first = bed.certkeep(&["renew"]);
    assert_exit(&first, 1);
    let second = bed.certkeep(&["renew"]);
    assert_exit(&second, 1);
    let token = |o: &std::process::Output| {
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        let at = e
            .find("certkeep-selfcheck-")
            .unwrap_or_else(|| panic!("{}", text(o)));
        e[at..at + "certkeep-selfcheck-".len() + 16].to_string()
    };
    let (t1, t2) = (token(&first), token(&second));
    assert_ne!(t1, t2, "each self-check uses a new token");

    bed.write_config(&config(&bed.webroot));
    let fixed = bed.certkeep(&["renew"]);
    assert_exit(&fixed, 0);

    let messages: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(messages.len(), 2, "firing, then resolved: {messages:?}");
    let firing = &messages[0]["alerts"][0];
    let resolved = &messages[1]["alerts"][0];
    assert_eq!(firing["status"], "firing");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(firing["labels"], resolved["labels"]);
    assert_eq!(firing["fingerprint"], resolved["fingerprint"]);
    assert_eq!(
        firing["labels"],
        serde_json::json!({
            "alertname": "renewal",
            "check": "renewal",
            "key": "renew:tok:renewal",
            "severity": "critical",
            "certificate": "tok",
        })
    );
    for a in [firing, resolved] {
        let identity = format!("{} {}", a["labels"], a["fingerprint"]);
        assert!(!identity.contains("selfcheck"), "{a}");
    }
    // The variable text is still there, in the annotations.
    assert!(
        firing["annotations"]["problem"]
            .as_str()
            .unwrap()
            .contains(&t1),
        "{firing}"
    );
    assert!(
        resolved["annotations"]["problem"]
            .as_str()
            .unwrap()
            .contains(&t2),
        "{resolved}"
    );
}
