//! Test bed: a real Pebble ACME server, its DNS (pebble-challtestsrv) and a real
//! nginx, each started on free loopback ports for one test and stopped on drop
//! (also when the test panics: the handles stop their process by pid and wait
//! for it). The in-process servers (SMTP, HTTP receiver, fault proxy, hostile
//! endpoints) run on tokio tasks or runtimes that end with their handle.
//!
//! When a server binary is missing the test is skipped with a message, except
//! under `CI=true`, where a missing server is a failure.

pub mod aiosmtpd;
pub mod alertmanager;
pub mod balanced;
pub mod daemon;
pub mod etcd;
pub mod fault_proxy;
pub mod hostile;
pub mod http_receiver;
pub mod lineage;
pub mod nginx;
pub mod pebble;
pub mod silent;
pub mod smtp;
pub mod tlsgen;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use nginx::Nginx;
pub use pebble::{Pebble, PebbleOptions};

/// A free TCP port on 127.0.0.1 (bound once, released, then handed out).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// True when `bin` is on PATH. Under CI=true a missing binary panics.
pub fn have(bin: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(bin).is_file();
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{bin} is required under CI=true but is not installed (run scripts/install-deps.sh)");
        }
        eprintln!("SKIP: {bin} not installed (scripts/install-deps.sh installs it)");
    }
    found
}

/// Skips the calling test (returns) unless every binary exists.
#[macro_export]
macro_rules! require {
    ($($bin:expr),+) => {
        if !($($crate::common::have($bin))&&+) {
            return;
        }
    };
}

/// A world-traversable temp dir (nginx workers run as `nobody`).
pub fn open_tempdir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("certkeep-test-")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    d
}

pub fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// Pebble + nginx + a store and webroot, with a config writer.
///
/// Fields drop in declaration order: the servers stop before `dir`, which
/// holds their files, is removed.
pub struct Bed {
    /// `[acme] staging_directory`: a pass-through proxy to the same Pebble
    /// on its own port, so a request to staging and one to production
    /// (`pebble.directory`) can be told apart (`staging.log()`).
    pub staging: fault_proxy::FaultProxy,
    pub pebble: Pebble,
    pub nginx: Nginx,
    pub webroot: PathBuf,
    pub store: PathBuf,
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Bed {
    /// Starts Pebble and nginx; `None` (test skipped) when they are not installed.
    pub fn start(opts: PebbleOptions) -> Option<Bed> {
        Self::start_with_validity(opts, None)
    }

    /// Like `start`, with Pebble issuing certificates valid `validity_secs`
    /// seconds.
    pub fn start_with_validity(opts: PebbleOptions, validity_secs: Option<u64>) -> Option<Bed> {
        if !(have("pebble") && have("pebble-challtestsrv") && have("nginx")) {
            return None;
        }
        let dir = open_tempdir();
        let webroot = dir.path().join("webroot");
        std::fs::create_dir_all(&webroot).expect("webroot");
        std::fs::set_permissions(&webroot, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let nginx = Nginx::start(&dir.path().join("nginx"), &webroot);
        let pebble = Pebble::start_with_validity(
            &dir.path().join("pebble"),
            nginx.http_port,
            opts,
            validity_secs,
        );
        let staging = fault_proxy::FaultProxy::start_as_pebble(&pebble);
        let store = dir.path().join("store");
        let config = dir.path().join("certkeep.toml");
        Some(Bed {
            staging,
            pebble,
            nginx,
            webroot,
            store,
            config,
            dir,
        })
    }

    /// The config head: store, CA, self-check and nginx commands for this bed.
    pub fn base_config(&self) -> String {
        config_head(
            &self.store,
            &self.pebble,
            &self.staging.directory,
            &self.nginx,
        )
    }

    /// A `[[certificate]]` block using this bed's webroot.
    pub fn cert_block(&self, name: &str, domains: &[&str], extra: &str) -> String {
        format!(
            "\n[[certificate]]\nname = \"{name}\"\ndomains = {domains:?}\nwebroot = \"{}\"\n{extra}\n",
            self.webroot.display()
        )
    }

    pub fn write_config(&self, body: &str) {
        std::fs::write(&self.config, format!("{}{body}", self.base_config()))
            .expect("write config");
    }

    /// Runs the certkeep binary with this bed's config.
    pub fn certkeep(&self, args: &[&str]) -> Output {
        certkeep(&self.config, args)
    }
}

/// A certkeep config head: `store`, Pebble as the CA (`staging` as the
/// staging directory), the HTTP-01 self-check against `nginx`'s HTTP port on
/// 127.0.0.1, and `nginx`'s test and reload commands. Append
/// `[[certificate]]` blocks (and other sections) to it.
pub fn config_head(store: &Path, pebble: &Pebble, staging: &str, nginx: &Nginx) -> String {
    format!(
        r#"store = "{store}"

[acme]
directory = "{dir}"
staging_directory = "{staging}"
ca_bundle = "{ca}"
email = "ops@example.com"
order_timeout = "60s"

[http01]
self_check_port = {port}
self_check_connect = "127.0.0.1"

[nginx]
test_command = {test:?}
reload_command = {reload:?}
confirm_timeout = "10s"

[renewal]
lock_wait = "60s"
retry_budget = "60s"
"#,
        store = store.display(),
        dir = pebble.directory,
        ca = pebble.api_ca.display(),
        port = nginx.http_port,
        test = nginx.test_command(),
        reload = nginx.reload_command(),
    )
}

/// Runs the certkeep binary with `--config config`.
pub fn certkeep(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_certkeep"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run certkeep")
}

pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
}

/// Whether `pid` is a live process (a zombie, exited but not yet reaped by
/// its parent, counts as gone).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The profile each of `names` in `config` asks the CA for, one entry each:
/// `name: profile (mode)`, or `name: no profile`.
pub fn wanted_profiles(config: &certkeep::config::Settings, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            let cert = config
                .certificate(n)
                .unwrap_or_else(|| panic!("no certificate {n:?} in the config"));
            match cert.wanted_profile(&config.acme) {
                Some(w) => format!("{n}: {} ({})", w.name, w.mode),
                None => format!("{n}: no profile"),
            }
        })
        .collect()
}

/// A child process that is killed (SIGKILL) and reaped when dropped, so a
/// test that panics halfway leaves no daemon running.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Runs the certkeep binary with `--config config`, killing it (and failing
/// the test) when it runs longer than `bound`: a hang shows as a failure
/// naming the bound, never as a stuck test. Returns the output and how long
/// it ran.
pub fn certkeep_within(config: &Path, args: &[&str], bound: Duration) -> (Output, Duration) {
    use std::io::Read;
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_certkeep"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run certkeep");
    let pipe = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = pipe(
        child
            .stdout
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let err = pipe(
        child
            .stderr
            .take()
            .map(|r| Box::new(r) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for certkeep") {
            break s;
        }
        if start.elapsed() > bound {
            let _ = child.kill();
            let _ = child.wait();
            let o = Output {
                status: std::process::ExitStatus::default(),
                stdout: out.join().unwrap_or_default(),
                stderr: err.join().unwrap_or_default(),
            };
            panic!(
                "certkeep {args:?} still ran after {bound:?} and was killed\n{}",
                text(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = start.elapsed();
    let o = Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    };
    (o, took)
}

/// `certkeep probe --json` output put back in the order of `targets`
/// ("host:port" or "https://host:port/path"): the command writes each
/// report as its probe completes. Panics unless every target has exactly
/// one report.
pub fn in_target_order(
    reports: Vec<serde_json::Value>,
    targets: &[String],
) -> Vec<serde_json::Value> {
    let key = |t: &str| {
        let t = t.strip_prefix("https://").unwrap_or(t);
        let authority = t.split('/').next().unwrap_or(t);
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u64>().unwrap_or(0)),
            None => (authority.to_string(), 443),
        }
    };
    assert_eq!(
        reports.len(),
        targets.len(),
        "one report per target: {reports:#?}"
    );
    let mut slots: Vec<Option<serde_json::Value>> = vec![None; targets.len()];
    for r in reports {
        let got = (
            r["host"].as_str().unwrap_or_default().to_string(),
            r["port"].as_u64().unwrap_or(0),
        );
        let i = targets
            .iter()
            .position(|t| key(t) == got)
            .unwrap_or_else(|| panic!("a report for no target: {r:#}"));
        assert!(slots[i].is_none(), "two reports for {}", targets[i]);
        slots[i] = Some(r);
    }
    slots.into_iter().flatten().collect()
}

/// Collects `child`'s stderr, line by line, into a shared string while it
/// runs; join the handle after the child exits to have all of it.
pub fn collect_stderr(
    child: &mut std::process::Child,
) -> (
    std::sync::Arc<std::sync::Mutex<String>>,
    std::thread::JoinHandle<()>,
) {
    use std::io::BufRead;
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr = child
        .stderr
        .take()
        .expect("child started with stderr piped");
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut l = log.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        })
    };
    (log, reader)
}

/// Waits for `child` to exit, polling; fails the test when it still runs
/// `bound` after `start`.
pub fn wait_exit(
    child: &mut std::process::Child,
    start: std::time::Instant,
    bound: std::time::Duration,
) -> std::process::ExitStatus {
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            start.elapsed() < bound,
            "did not stop within {} s",
            bound.as_secs()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
