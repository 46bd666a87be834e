use super::*;

fn parse(text: &str) -> Result<AlertConfig, String> {
    crate::config::Settings::parse(text, std::path::Path::new("t.toml"))
        .map(|c| c.alert)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults() {
    let c = parse("[alert]\n").unwrap();
    assert_eq!(c.repeat_interval, Duration::from_secs(86_400));
    assert_eq!(c.resolve_after_checks, 2);
    assert!(c.channels.is_empty());
    assert_eq!(c.policy(), Policy::default());
    assert_eq!(AlertConfig::default().expiry_thresholds.len(), 4);
}

#[test]
fn all_channel_types() {
    let c = parse(
        r#"
[alert]
repeat_interval = "12h"
expiry_thresholds = ["10d", "1/3", "2d"]

[[alert.channel]]
name = "mail"
type = "email"
from = "certkeep <certkeep@example.com>"
to = ["ops@example.com"]
smtp_host = "smtp.example.com"
username = "certkeep"
password_file = "/etc/certkeep/smtp-password"

[[alert.channel]]
name = "slack"
type = "slack"
min_severity = "critical"
url_file = "/etc/certkeep/slack-url"

[[alert.channel]]
name = "hook"
type = "webhook"
url = "https://alerts.example/hook"
headers = { X-Env = "prod" }
headers_from_files = { Authorization = "/etc/certkeep/hook-auth" }
"#,
    )
    .unwrap();
    assert_eq!(c.channels.len(), 3);
    let ChannelKind::Email(m) = &c.channels[0].kind else {
        panic!()
    };
    assert_eq!((m.port, m.tls), (587, SmtpTls::Starttls));
    assert_eq!(c.channels[1].min_severity, Severity::Critical);
    assert_eq!(c.routes()[1], ("slack".to_string(), Severity::Critical));
    // 90-day certificate: 1/3 is 30 days.
    assert_eq!(c.expiry_threshold(40, 90), None);
    assert_eq!(c.expiry_threshold(25, 90), Some(30));
    assert_eq!(c.expiry_threshold(9, 90), Some(10));
    assert_eq!(c.expiry_threshold(-1, 90), Some(2));
    // 6-day certificate: 1/3 is 2 days, below the fixed ones.
    assert_eq!(c.expiry_threshold(2, 6), Some(2));
}

#[test]
fn fixed_thresholds_of_half_the_lifetime_or_more_stay_quiet_for_short_lived_certificates() {
    let c = AlertConfig::default();
    // The defaults (14, 7, 3, 1 days) against a 6-day certificate: a new
    // one (6 days left) and one at its renewal point (3 days) alert on
    // nothing; one day left (renewal failing for two days) does.
    assert_eq!(c.expiry_threshold(6, 6), None);
    assert_eq!(c.expiry_threshold(3, 6), None);
    assert_eq!(c.expiry_threshold(2, 6), None);
    assert_eq!(c.expiry_threshold(1, 6), Some(1));
    assert_eq!(c.expiry_threshold(0, 6), Some(1));
    // 90 days: every default applies.
    assert_eq!(c.expiry_threshold(14, 90), Some(14));
    assert_eq!(c.expiry_threshold(3, 90), Some(3));
}

#[test]
fn errors_name_the_problem() {
    let cases = [
        ("[[alert.channel]]\nname = \"x\"\ntype = \"email\"\n", "needs from"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"pager\"\n", "unknown variant"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"slack\"\n", "needs url"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"slack\"\nurl = \"ftp://h/secretpath\"\n", "not an http(s) URL"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"slack\"\nurl_env = \"A\"\nurl_file = \"/b\"\n", "only one of"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"slack\"\nurl_env = \"A\"\nsmtp_host = \"h\"\n", "smtp_host does not apply"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"webhook\"\nurl_env = \"A\"\n[[alert.channel]]\nname = \"x\"\ntype = \"webhook\"\nurl_env = \"B\"\n", "used twice"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"webhook\"\nurl_env = \"A\"\nbogus = 1\n", "unknown field"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"email\"\nfrom = \"a@b.c\"\nto = [\"nope\"]\nsmtp_host = \"h\"\n", "not an email address"),
        ("[[alert.channel]]\nname = \"x\"\ntype = \"email\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nsmtp_host = \"h\"\nusername = \"u\"\n", "go together"),
        ("expiry_thresholds = [\"12h\"]\n", "whole days"),
        ("resolve_after_checks = 0\n", "at least 1"),
    ];
    for (body, want) in cases {
        let err = parse(&format!("[alert]\n{body}")).unwrap_err();
        assert!(err.contains(want), "{body}\n=> {err}");
        assert!(!err.contains("secretpath"), "{err}");
    }
}

#[test]
fn secrets_read_trimmed_and_errors_do_not_leak() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("pw");
    std::fs::write(&p, "hunter2\n").unwrap();
    assert_eq!(Secret::file(p.clone()).unwrap().read().unwrap(), "hunter2");
    let missing = Secret::file(d.path().join("nope"))
        .unwrap()
        .read()
        .unwrap_err();
    assert!(missing.contains("nope"), "{missing}");
    let env = Secret::env("CERTKEEP_TEST_UNSET_VAR".into())
        .unwrap()
        .read()
        .unwrap_err();
    assert!(env.contains("CERTKEEP_TEST_UNSET_VAR"));
    assert!(!format!("{:?}", Secret::inline("hunter2".into())).contains("hunter2"));
    let c = parse(
        "[alert]\n[[alert.channel]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"https://h.example/tok3n\"\nheaders = { Authorization = \"Bearer hunter2\" }\n",
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains("hunter2") && !dbg.contains("tok3n"), "{dbg}");
}

#[test]
fn alertmanager_channel() {
    let c = parse(
        r#"
[alert]
[[alert.channel]]
name = "am"
type = "alertmanager"
urls = ["http://am1.example:9093", "https://am2.example/prefix"]
instance = "web1"
generator_url = "http://web1.example:9464/"
resend_interval = "30s"
bearer_token_file = "/etc/certkeep/am-token"
"#,
    )
    .unwrap();
    let ChannelKind::Alertmanager(a) = &c.channels[0].kind else {
        panic!("not alertmanager: {:?}", c.channels[0]);
    };
    assert_eq!(a.urls.len(), 2);
    assert_eq!(a.instance, "web1");
    assert_eq!(a.resend_interval, Duration::from_secs(30));
    assert_eq!(
        a.bearer_token,
        Some(Secret::file("/etc/certkeep/am-token".into()).unwrap())
    );
    assert_eq!(
        c.refresh_routes(),
        vec![("am".to_string(), Severity::Warning, 30)]
    );

    let c = parse("[alert]\n[[alert.channel]]\nname = \"am\"\ntype = \"alertmanager\"\nurls = [\"http://127.0.0.1:9093\"]\n").unwrap();
    let ChannelKind::Alertmanager(a) = &c.channels[0].kind else {
        panic!("not alertmanager");
    };
    assert_eq!(a.resend_interval, DEFAULT_RESEND_INTERVAL);
    assert_eq!(a.instance, crate::alert::message::hostname());

    for (body, want) in [
        ("", "needs urls"),
        ("urls = [\"ftp://x\"]", "not an http(s) URL"),
        ("urls = [\"http://x\"]\nurl = \"http://x\"", "url (use urls"),
        ("urls = [\"http://x\"]\nresend_interval = \"0s\"", "at least \"1s\""),
        ("urls = [\"http://x\"]\nusername = \"u\"", "go together"),
        (
            "urls = [\"http://x\"]\nusername = \"u\"\npassword_file = \"/p\"\nbearer_token_file = \"/t\"",
            "not both",
        ),
        ("urls = [\"http://x\"]\ninstance = \" \"", "instance must not be empty"),
    ] {
        let err = parse(&format!(
            "[alert]\n[[alert.channel]]\nname = \"am\"\ntype = \"alertmanager\"\n{body}\n"
        ))
        .unwrap_err();
        assert!(err.contains(want), "{body}: {err}");
    }
    let err = parse(
        "[alert]\n[[alert.channel]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"http://x\"\nurls = [\"http://x\"]\n",
    )
    .unwrap_err();
    assert!(
        err.contains("urls does not apply to type = \"webhook\""),
        "{err}"
    );
}
