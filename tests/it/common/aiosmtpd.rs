//! A strict third-party SMTP server: Debian's aiosmtpd (`python3-aiosmtpd`)
//! on 127.0.0.1, run by `aiosmtpd_peer.py` (next to this file), which adds
//! AUTH with one user and writes each accepted message to a directory.
//! Unlike [`super::smtp`], it is not written for these tests: aiosmtpd
//! enforces command order, line lengths, STARTTLS before anything else when
//! it is offered and AUTH before MAIL when credentials are set.
//!
//! The process is killed and reaped on drop (also when the test panics) and
//! exits by itself when the test process ends (it watches its stdin).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::smtp::Mail;
use super::tlsgen::TestCa;
use super::KillOnDrop;

/// Debian's python3, where python3-aiosmtpd is installed.
const PYTHON: &str = "/usr/bin/python3";

/// How long the server may take to print its port (it starts in well under
/// a second; the margin absorbs a loaded test machine).
const START_BOUND: Duration = Duration::from_secs(30);

/// True when aiosmtpd can be imported. Under CI=true a missing module panics.
pub fn available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd.smtp"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3-aiosmtpd is required under CI=true but is not installed (run scripts/install-deps.sh)");
        }
        eprintln!("SKIP: python3-aiosmtpd not installed (scripts/install-deps.sh installs it)");
    }
    ok
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    /// STARTTLS offered and required before any other command.
    Starttls,
    /// Implicit TLS from the first byte.
    Smtps,
}

pub struct Options<'a> {
    pub mode: Mode,
    /// The CA that signs the server certificate (for 127.0.0.1), for TLS modes.
    pub ca: Option<&'a TestCa>,
    /// AUTH required with this user and password (MAIL is refused before).
    pub credentials: Option<(&'a str, &'a str)>,
    /// Offer only this mechanism ("PLAIN" or "LOGIN"); both when `None`.
    pub only_mechanism: Option<&'static str>,
    /// Allow AUTH without TLS (aiosmtpd refuses it otherwise).
    pub auth_in_clear: bool,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            mode: Mode::Plain,
            ca: None,
            credentials: None,
            only_mechanism: None,
            auth_in_clear: false,
        }
    }
}

/// One AUTH attempt as the server judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthAttempt {
    pub mechanism: String,
    pub ok: bool,
}

pub struct Aiosmtpd {
    pub port: u16,
    child: KillOnDrop,
    mails: PathBuf,
    // Dropped after the child: the capture directory and the log live here.
    dir: tempfile::TempDir,
}

impl Aiosmtpd {
    pub fn start(opts: Options) -> Aiosmtpd {
        let dir = tempfile::Builder::new()
            .prefix("certkeep-aiosmtpd-")
            .tempdir()
            .expect("tempdir");
        let mails = dir.path().join("mails");
        std::fs::create_dir_all(&mails).expect("mails dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/common/aiosmtpd_peer.py");
        let mut cmd = Command::new(PYTHON);
        cmd.arg(&script).arg("--dir").arg(&mails);
        let mode = match opts.mode {
            Mode::Plain => "plain",
            Mode::Starttls => "starttls",
            Mode::Smtps => "smtps",
        };
        cmd.args(["--mode", mode]);
        if opts.mode != Mode::Plain {
            let ca = opts.ca.expect("a TLS mode needs a CA");
            let (crt, key) = ca.write_leaf(
                dir.path(),
                "smtp",
                &["localhost", "127.0.0.1"],
                (-1, 30),
                false,
            );
            cmd.arg("--cert").arg(crt).arg("--key").arg(key);
        }
        if let Some((user, password)) = opts.credentials {
            let pw = dir.path().join("password");
            std::fs::write(&pw, password).expect("write password");
            cmd.args(["--user", user]).arg("--password-file").arg(pw);
        }
        if let Some(m) = opts.only_mechanism {
            cmd.args(["--only-mechanism", m]);
        }
        if opts.auth_in_clear {
            cmd.arg("--auth-in-clear");
        }
        let log = std::fs::File::create(dir.path().join("aiosmtpd.log")).expect("log file");
        let mut child = KillOnDrop(
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .expect("start aiosmtpd_peer.py"),
        );
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_BOUND).unwrap_or_default();
        let port: u16 = match line.trim().parse() {
            Ok(p) => p,
            Err(_) => panic!(
                "aiosmtpd did not print its port within {START_BOUND:?} (got {line:?}); its log:\n{}",
                std::fs::read_to_string(dir.path().join("aiosmtpd.log")).unwrap_or_default()
            ),
        };
        Aiosmtpd {
            port,
            child,
            mails,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's log (aiosmtpd's warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("aiosmtpd.log")).unwrap_or_default()
    }

    fn records(&self, prefix: &str) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.mails)
            .expect("read mails dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| {
                serde_json::from_slice(&std::fs::read(p).expect("read capture"))
                    .expect("capture is JSON")
            })
            .collect()
    }

    /// Every accepted message, in order. `auth` holds the user and the
    /// mechanism (the password is only known to have matched).
    pub fn mails(&self) -> Vec<Mail> {
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        self.records("mail-")
            .iter()
            .map(|r| Mail {
                auth: r["user"]
                    .as_str()
                    .map(|u| (u.to_string(), String::new(), s(&r["mechanism"]))),
                from: s(&r["from"]),
                rcpt: r["rcpt"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default(),
                data: s(&r["data"]),
                tls: r["tls"].as_bool().unwrap_or(false),
            })
            .collect()
    }

    /// Every AUTH attempt, in order.
    pub fn auths(&self) -> Vec<AuthAttempt> {
        self.records("auth-")
            .iter()
            .map(|r| AuthAttempt {
                mechanism: r["mechanism"].as_str().unwrap_or_default().to_string(),
                ok: r["ok"].as_bool().unwrap_or(false),
            })
            .collect()
    }
}
