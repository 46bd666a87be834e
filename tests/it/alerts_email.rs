//! An alert email as mail systems see it: delivered to the test SMTP server,
//! then parsed by an independent MIME parser (Python's `email` package with
//! the default policy), whose headers and body the test checks.

use crate::common::smtp::{self, SmtpServer};

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use certkeep::alert::{Alerter, Problem, Severity};
use certkeep::config::Settings;
use serde_json::Value;

/// Parses `raw` with Python's email package; headers, body and defects as JSON.
fn python_parse(raw: &str) -> Value {
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
raw = sys.stdin.buffer.read()
m = email.message_from_bytes(raw, policy=email.policy.default)
part = m.get_body(preferencelist=("plain",))
print(json.dumps({
    "headers": {k: str(v) for k, v in m.items()},
    "content_type": m.get_content_type(),
    "cte": str(m.get("Content-Transfer-Encoding", "")),
    "charset": m.get_content_charset(),
    "body": part.get_content() if part is not None else None,
    "defects": [type(d).__name__ for d in m.defects] + [type(d).__name__ for p in m.walk() for d in p.defects],
    "message_id_defects": len(m["Message-ID"].defects) if m["Message-ID"] is not None else None,
}))
"#;
    // Debian's python3 (scripts/install-deps.sh), not whatever is first on PATH.
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(raw.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_email_parses_as_mime_with_ids_and_readable_body() {
    require!("python3");
    let server = SmtpServer::start(smtp::Options::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("certkeep.toml");
    let text = format!(
        "store = {:?}\n\n[renewal]\nlock_wait = \"5s\"\n\n[alert]\n\n[[alert.channel]]\nname = \"mail\"\ntype = \"email\"\nfrom = \"certkeep <certkeep@example.test>\"\nto = [\"ops@example.test\"]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\ntls = \"none\"\n",
        dir.path().join("store"),
        server.port
    );
    std::fs::write(&path, &text).unwrap();
    let config = Settings::parse(&text, &path).unwrap();
    let mut alerter = Alerter::load(&config.alerting()).await.unwrap();
    // A long reason (over 200 characters) and a non-ASCII issuer.
    let reason = "the intermediate certificate is missing: the server sends only its certificate, issued by \"CN=Example Issuing CA 2\", which is not a trusted root; serve fullchain.pem, or pass --ca-file for a private CA";
    assert!(reason.len() > 200);
    let p = Problem::new(
        "probe:shop.example:443:chain",
        Severity::Critical,
        format!("https://shop.example: {reason}"),
    )
    .detail("endpoint", "https://shop.example")
    .detail("problem", reason)
    .detail("issuer", "CN=Zertifizierungsstelle Müller");
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000);
    alerter.observe(t0, vec![p], &[]);
    let report = alerter.flush(t0).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let mails = server.mails();
    assert_eq!(mails.len(), 1);
    let raw = &mails[0].data;

    // On the wire: no quoted-printable soft breaks, every line short.
    assert!(!raw.contains("=\r\n"), "soft line breaks:\n{raw}");
    for line in raw.split("\r\n") {
        assert!(line.len() <= 78, "line of {} bytes: {line:?}", line.len());
    }

    let m = python_parse(raw);
    let h = &m["headers"];
    assert_eq!(m["defects"], serde_json::json!([]), "{m:#}");
    assert_eq!(h["MIME-Version"], "1.0", "{m:#}");
    let id = h["Message-ID"].as_str().expect("a Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with("@example.test>") && id.len() > 20,
        "{id}"
    );
    assert_eq!(m["message_id_defects"], 0, "Message-ID defects: {m:#}");
    assert!(h["Date"].as_str().is_some_and(|d| !d.is_empty()), "{m:#}");
    assert!(h["From"]
        .as_str()
        .unwrap()
        .contains("certkeep@example.test"));
    assert_eq!(h["To"], "ops@example.test");
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["cte"], "8bit", "non-ASCII travels as 8bit: {m:#}");
    assert_eq!(m["charset"], "utf-8");
    let body = m["body"].as_str().unwrap();
    assert!(body.contains("CN=Zertifizierungsstelle Müller"), "{body}");
    // The reason arrives whole, wrapped at spaces only.
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(words(body).contains(reason), "{body}");
    assert!(body.contains("  Problem: the intermediate certificate is missing:"));
}
