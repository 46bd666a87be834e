//! A 3-member etcd cluster (Debian's `etcd-server`, v3 API) on loopback, for
//! cluster-mode tests.
//!
//! Each member gets its own free client and peer port and its own temp data
//! dir; the cluster token is unique per start, so `pgrep -f <token>` finds
//! exactly this cluster's processes. Members can be stopped and started one
//! at a time (quorum tests); every member is killed when the `Etcd` value is
//! dropped, also when the test panics, and (through `PR_SET_PDEATHSIG`) when
//! the thread that started it dies.
//!
//! `Etcd::start_secure` adds client-certificate TLS on the client port and
//! authentication: a `root` user and a `certkeep` user whose `certkeep` role
//! may read and write keys under `EtcdSecurity::prefix` only.
//!
//! The harness talks to etcd only through `etcdctl` (Debian's `etcd-client`),
//! so its own tests do not depend on certkeep's etcd code.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rcgen::ExtendedKeyUsagePurpose;

use super::tlsgen::TestCa;
use super::{free_port, have};

/// How long a member (or the whole cluster) may take to become healthy. etcd
/// is healthy within 1-3 s on loopback; the rest is margin for a loaded
/// 2-core machine.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(30);

/// One etcd member: its URLs, data dir, log and process (None when stopped).
pub struct Member {
    pub name: String,
    /// `http://127.0.0.1:PORT`, or `https://` in the secure variant.
    pub client_url: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    pub log: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

/// TLS and authentication of a cluster started with `Etcd::start_secure`.
/// Every file is in the cluster's temp dir; keys and the password file are 0600.
pub struct EtcdSecurity {
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// A client certificate and key the servers accept (CN `certkeep-client`,
    /// which is no etcd user: without a user name it may do nothing).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// The root user's password (the harness's own etcdctl calls use it).
    pub root_password: String,
    /// The restricted user, its password and a file holding only the password.
    pub user: String,
    pub password: String,
    pub password_file: PathBuf,
    /// The key prefix the user's role may read and write (`/certkeep/`).
    pub prefix: String,
}

pub struct Etcd {
    pub dir: tempfile::TempDir,
    /// `--initial-cluster-token`: unique per start, also a `pgrep -f` pattern.
    pub token: String,
    pub members: Vec<Member>,
    pub security: Option<EtcdSecurity>,
    /// Whether authentication is on (the harness's etcdctl then acts as root).
    auth_enabled: bool,
}

/// An etcdctl invocation: endpoints, TLS files, user and timeouts. Build one
/// with `Etcd::ctl`/`Etcd::ctl_all` and change fields to test refusals.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    pub endpoints: Vec<String>,
    pub cacert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// `user:password`.
    pub user: Option<String>,
    pub dial_timeout: Duration,
    pub command_timeout: Duration,
}

impl Etcdctl {
    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints.join(",")))
            .arg(format!(
                "--dial-timeout={}ms",
                self.dial_timeout.as_millis()
            ))
            .arg(format!(
                "--command-timeout={}ms",
                self.command_timeout.as_millis()
            ));
        for (flag, v) in [
            ("--cacert", &self.cacert),
            ("--cert", &self.cert),
            ("--key", &self.key),
        ] {
            if let Some(p) = v {
                c.arg(format!("{flag}={}", p.display()));
            }
        }
        if let Some(u) = &self.user {
            c.arg(format!("--user={u}"));
        }
        c.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run etcdctl")
    }

    /// Runs `args` and panics (with etcdctl's output) unless it succeeds.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "etcdctl {args:?} against {:?} failed: {}",
            self.endpoints,
            super::text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `put key value`, panicking on failure.
    #[track_caller]
    pub fn put(&self, key: &str, value: &str) {
        self.ok(&["put", key, value]);
    }

    /// The value of `key`, or None when it does not exist.
    #[track_caller]
    pub fn get(&self, key: &str) -> Option<String> {
        let out = self.ok(&["get", "--print-value-only", key]);
        // etcdctl prints the value followed by a newline, nothing when absent.
        out.strip_suffix('\n').map(str::to_string)
    }
}

static STARTS: AtomicU32 = AtomicU32::new(0);

impl Etcd {
    /// Starts three members over plain HTTP and waits until every one is
    /// healthy. `None` (test skipped) when etcd or etcdctl is not installed;
    /// under CI=true that panics instead.
    pub fn start() -> Option<Etcd> {
        Self::start_inner(false)
    }

    /// Like `start`, with client-certificate TLS on the client port and
    /// authentication on (see `EtcdSecurity`).
    pub fn start_secure() -> Option<Etcd> {
        Self::start_inner(true)
    }

    fn start_inner(secure: bool) -> Option<Etcd> {
        if !(have("etcd") && have("etcdctl")) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("certkeep-etcd-")
            .tempdir()
            .expect("etcd tempdir");
        let token = format!(
            "certkeep-test-{}-{}-{:08x}",
            std::process::id(),
            STARTS.fetch_add(1, Ordering::SeqCst),
            rand::random::<u32>()
        );
        let scheme = if secure { "https" } else { "http" };
        let names = ["m0", "m1", "m2"];
        let ports: Vec<(u16, u16)> = names.iter().map(|_| (free_port(), free_port())).collect();
        let initial_cluster = names
            .iter()
            .zip(&ports)
            .map(|(n, (_, peer))| format!("{n}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let security = secure.then(|| make_security(dir.path()));
        let mut members = Vec::new();
        for (name, (client, peer)) in names.iter().zip(&ports) {
            let data_dir = dir.path().join(format!("{name}.data"));
            std::fs::create_dir(&data_dir).expect("etcd data dir");
            std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700))
                .expect("chmod etcd data dir");
            let client_url = format!("{scheme}://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut args = vec![
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial_cluster}"),
                "--initial-cluster-state=new".to_string(),
                format!("--initial-cluster-token={token}"),
                "--logger=zap".to_string(),
                "--log-outputs=stderr".to_string(),
            ];
            if let Some(s) = &security {
                let d = dir.path();
                args.extend([
                    "--client-cert-auth".to_string(),
                    format!("--trusted-ca-file={}", s.ca.display()),
                    format!("--cert-file={}", d.join("server.crt").display()),
                    format!("--key-file={}", d.join("server.key").display()),
                ]);
            }
            members.push(Member {
                name: name.to_string(),
                client_url,
                peer_url,
                log: dir.path().join(format!("{name}.log")),
                data_dir,
                args,
                child: None,
            });
        }
        let mut etcd = Etcd {
            dir,
            token,
            members,
            security,
            auth_enabled: false,
        };
        for i in 0..etcd.members.len() {
            etcd.spawn(i);
        }
        etcd.wait_all_healthy();
        if secure {
            etcd.enable_auth();
            etcd.auth_enabled = true;
            etcd.wait_all_healthy();
        }
        Some(etcd)
    }

    fn spawn(&mut self, i: usize) {
        let m = &mut self.members[i];
        assert!(
            m.child.is_none(),
            "etcd member {} is already running",
            m.name
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log)
            .expect("etcd log");
        let mut c = Command::new("etcd");
        c.args(&m.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("etcd log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill
        // the child when the thread that spawned it exits (a test killed
        // before its Drop runs leaves no etcd behind).
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        m.child = Some(c.spawn().expect("start etcd"));
    }

    /// The client URLs of all three members.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// An etcdctl against member `i` with the harness's credentials (root in
    /// the secure variant).
    pub fn ctl(&self, i: usize) -> Etcdctl {
        self.ctl_for(vec![self.members[i].client_url.clone()])
    }

    /// An etcdctl against all three members.
    pub fn ctl_all(&self) -> Etcdctl {
        self.ctl_for(self.endpoints())
    }

    fn ctl_for(&self, endpoints: Vec<String>) -> Etcdctl {
        let s = self.security.as_ref();
        Etcdctl {
            endpoints,
            cacert: s.map(|s| s.ca.clone()),
            cert: s.map(|s| s.client_cert.clone()),
            key: s.map(|s| s.client_key.clone()),
            user: s
                .filter(|_| self.auth_enabled)
                .map(|s| format!("root:{}", s.root_password)),
            dial_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
        }
    }

    /// Whether member `i` answers `endpoint health` (a linearizable read, so
    /// false while the cluster has no quorum).
    pub fn healthy(&self, i: usize) -> bool {
        let mut c = self.ctl(i);
        // Loopback connects at once or is refused; a stopped member then
        // costs the dial timeout, an unhealthy one the command timeout.
        c.dial_timeout = Duration::from_secs(1);
        c.command_timeout = Duration::from_secs(2);
        c.run(&["endpoint", "health"]).status.success()
    }

    /// Waits until member `i` is healthy; panics with its log after
    /// `HEALTHY_WITHIN`.
    pub fn wait_healthy(&self, i: usize) {
        let m = &self.members[i];
        let start = Instant::now();
        while start.elapsed() < HEALTHY_WITHIN {
            if self.healthy(i) {
                return;
            }
            // A member that exited (a port taken meanwhile, a bad flag) will
            // never be healthy: say so at once, with its log.
            if let Some(pid) = m.child.as_ref().map(Child::id) {
                if !super::alive(pid) {
                    panic!(
                        "etcd member {} ({}) exited while starting; its log ends:\n{}",
                        m.name,
                        m.client_url,
                        tail(&m.log, 30)
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "etcd member {} ({}) not healthy after {HEALTHY_WITHIN:?}; its log ends:\n{}",
            self.members[i].name,
            self.members[i].client_url,
            tail(&self.members[i].log, 30)
        );
    }

    /// Waits until every running member is healthy.
    pub fn wait_all_healthy(&self) {
        for i in 0..self.members.len() {
            if self.members[i].child.is_some() {
                self.wait_healthy(i);
            }
        }
    }

    /// Stops member `i` (SIGTERM, then SIGKILL after 10 s) and waits for it.
    pub fn stop_member(&mut self, i: usize) {
        let Some(mut child) = self.members[i].child.take() else {
            panic!("etcd member {} is not running", self.members[i].name);
        };
        // SAFETY: kill(2) on our own child's pid, which has not been reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts member `i` again on its data dir and ports. Does not wait: call
    /// `wait_healthy` (it only becomes healthy once a quorum is up).
    pub fn start_member(&mut self, i: usize) {
        self.spawn(i);
    }

    /// Whether member `i`'s process is running (started and not stopped).
    pub fn is_running(&self, i: usize) -> bool {
        self.members[i].child.is_some()
    }

    /// A `[cluster]` section for node `node` on this cluster: its endpoints,
    /// `prefix` and `encryption_key_file = key_file`; in the secure variant
    /// also the CA, client certificate and key, the `certkeep` user and its
    /// password file. `extra` lines (timeouts, lease TTL) go at its end.
    pub fn cluster_section(
        &self,
        node: &str,
        prefix: &str,
        key_file: &Path,
        extra: &str,
    ) -> String {
        let mut s = format!(
            "\n[cluster]\nendpoints = {:?}\nprefix = {prefix:?}\nnode = {node:?}\nencryption_key_file = {:?}\n",
            self.endpoints(),
            key_file.display().to_string()
        );
        if let Some(sec) = &self.security {
            for (k, v) in [
                ("ca_file", &sec.ca),
                ("cert_file", &sec.client_cert),
                ("key_file", &sec.client_key),
                ("password_file", &sec.password_file),
            ] {
                s.push_str(&format!("{k} = {:?}\n", v.display().to_string()));
            }
            s.push_str(&format!("user = {:?}\n", sec.user));
        }
        s.push_str(extra);
        s.push('\n');
        s
    }

    /// How many processes carry this cluster's token on their command line.
    pub fn processes(&self) -> usize {
        count_processes(&self.token)
    }

    fn enable_auth(&self) {
        let s = self.security.as_ref().expect("secure cluster");
        // Auth is still off: the harness's etcdctl carries no user yet.
        let c = self.ctl_all();
        let root_pw = format!("--new-user-password={}", s.root_password);
        let user_pw = format!("--new-user-password={}", s.password);
        c.ok(&["user", "add", "root", &root_pw]);
        c.ok(&["role", "add", &s.user]);
        c.ok(&[
            "role",
            "grant-permission",
            &s.user,
            "--prefix=true",
            "readwrite",
            &s.prefix,
        ]);
        c.ok(&["user", "add", &s.user, &user_pw]);
        c.ok(&["user", "grant-role", &s.user, &s.user]);
        c.ok(&["auth", "enable"]);
    }
}

/// Writes a new 32-byte cluster encryption key to `path` (mode 0600); give
/// every node of a test the same file, or a copy of it.
pub fn write_cluster_key(path: &Path) {
    let key: [u8; 32] = rand::random();
    std::fs::write(path, key).expect("write cluster key");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod cluster key");
}

/// `pgrep -f PATTERN`: how many processes match (the pattern is a regex over
/// the whole command line).
pub fn count_processes(pattern: &str) -> usize {
    let out = Command::new("pgrep")
        .args(["-f", "--", pattern])
        .output()
        .expect("run pgrep");
    String::from_utf8_lossy(&out.stdout).lines().count()
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A CA, a server certificate for 127.0.0.1/localhost, a client certificate,
/// passwords and the password file, all written into `dir`.
fn make_security(dir: &Path) -> EtcdSecurity {
    let ca = TestCa::new(dir);
    ca.write_named_leaf(
        dir,
        "server",
        "127.0.0.1",
        &["127.0.0.1", "localhost"],
        None,
    );
    let (client_cert, client_key) = ca.write_named_leaf(
        dir,
        "client",
        "certkeep-client",
        &[],
        Some(ExtendedKeyUsagePurpose::ClientAuth),
    );
    let password = format!("pw-{:016x}", rand::random::<u64>());
    let password_file = dir.join("etcd-password");
    std::fs::write(&password_file, &password).expect("write password file");
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
        .expect("chmod password file");
    EtcdSecurity {
        ca: ca.path.clone(),
        client_cert,
        client_key,
        root_password: format!("root-{:016x}", rand::random::<u64>()),
        user: "certkeep".to_string(),
        password,
        password_file,
        prefix: "/certkeep/".to_string(),
    }
}
