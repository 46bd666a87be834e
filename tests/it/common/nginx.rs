//! A real nginx on loopback: an HTTP server for the ACME webroot on a free
//! port, plus TLS sites added as files under `sites/`.
//!
//! The master runs in the foreground (`daemon off;`) as a child of the test,
//! so the handle knows its pid from the start and stops it on drop by pid,
//! whether or not the prefix directory (and nginx's pid file in it) still
//! exists by then.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, wait_for};

pub struct Nginx {
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub sites: PathBuf,
    pub http_port: u16,
    master: Child,
}

impl Nginx {
    /// Starts nginx serving `webroot` for `/.well-known/acme-challenge/` on a
    /// free port (everything else redirects to HTTPS, as in production).
    pub fn start(prefix: &Path, webroot: &Path) -> Nginx {
        Self::start_with(prefix, webroot, true)
    }

    /// Like `start`, but `acme_location == false` leaves the challenge location
    /// out, the classic misconfiguration.
    pub fn start_with(prefix: &Path, webroot: &Path, acme_location: bool) -> Nginx {
        Self::start_inner(prefix, webroot, acme_location, false)
    }

    /// Like `start`, with OpenSSL's security level 0 for every site, so nginx
    /// loads what it otherwise refuses (1024-bit RSA, SHA-1 signed chains):
    /// the weak servers a probe must still grade.
    pub fn start_weak_crypto(prefix: &Path, webroot: &Path) -> Nginx {
        Self::start_inner(prefix, webroot, true, true)
    }

    fn start_inner(prefix: &Path, webroot: &Path, acme_location: bool, weak: bool) -> Nginx {
        let http_port = free_port();
        let location = if acme_location {
            format!(
                "location /.well-known/acme-challenge/ {{ root {}; default_type text/plain; }}",
                webroot.display()
            )
        } else {
            String::new()
        };
        Self::start_conf(
            prefix,
            http_port,
            "",
            &format!(
                "server {{\n    listen 127.0.0.1:{http_port} default_server;\n    {location}\n    location / {{ return 301 https://$host$request_uri; }}\n  }}"
            ),
            weak,
        )
    }

    /// A load balancer: every request to its HTTP port is proxied to the
    /// next of `upstreams` (loopback HTTP ports) in turn, plain round robin
    /// with no stickiness and no retry on another node (a 404 stays a 404).
    /// One worker, so the rotation is global across connections. Its access
    /// log (`logs/access.log`) has one `upstream=ADDR status=CODE uri=URI`
    /// line per request (`BalancedBed::hits` reads it).
    pub fn start_balancer(prefix: &Path, upstreams: &[u16]) -> Nginx {
        let http_port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("server 127.0.0.1:{p};"))
            .collect::<Vec<_>>()
            .join(" ");
        Self::start_conf(
            prefix,
            http_port,
            "log_format balanced 'upstream=$upstream_addr status=$upstream_status uri=$request_uri';",
            &format!(
                r#"upstream nodes {{ {servers} }}
  server {{
    listen 127.0.0.1:{http_port} default_server;
    access_log {p}/logs/access.log balanced;
    location / {{
      proxy_pass http://nodes;
      proxy_set_header Host $http_host;
      proxy_next_upstream off;
    }}
  }}"#,
                p = prefix.display()
            ),
            false,
        )
    }

    /// Writes `nginx.conf` (`http_extra` and `servers` inside `http {}`, plus
    /// `include sites/*.conf`), starts nginx and waits for `http_port`.
    fn start_conf(
        prefix: &Path,
        http_port: u16,
        http_extra: &str,
        servers: &str,
        weak: bool,
    ) -> Nginx {
        for d in ["logs", "sites", "run"] {
            std::fs::create_dir_all(prefix.join(d)).expect("nginx dirs");
        }
        let conf = prefix.join("nginx.conf");
        let p = prefix.display();
        std::fs::write(
            &conf,
            format!(
                r#"daemon off;
pid {p}/run/nginx.pid;
error_log {p}/logs/error.log notice;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
  access_log {p}/logs/access.log;
  client_body_temp_path {p}/run/body; proxy_temp_path {p}/run/proxy;
  fastcgi_temp_path {p}/run/fcgi; uwsgi_temp_path {p}/run/uwsgi; scgi_temp_path {p}/run/scgi;
  {http_extra}
  {servers}
  include {p}/sites/*.conf;
}}
"#
            ),
        )
        .expect("write nginx.conf");
        let stderr_log = prefix.join("logs/stderr.log");
        let mut cmd = Command::new("nginx");
        if weak {
            let cnf = prefix.join("openssl.cnf");
            std::fs::write(
                &cnf,
                "openssl_conf = init\n[init]\nssl_conf = ssl_sect\n[ssl_sect]\nsystem_default = sysdef\n[sysdef]\nCipherString = DEFAULT:@SECLEVEL=0\n",
            )
            .expect("write openssl.cnf");
            cmd.env("OPENSSL_CONF", cnf);
        }
        let master = cmd
            .args(args(&conf, prefix))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_log).expect("nginx stderr log"))
            .spawn()
            .expect("start nginx");
        let mut n = Nginx {
            prefix: prefix.to_path_buf(),
            sites: prefix.join("sites"),
            conf,
            http_port,
            master,
        };
        wait_for("nginx", Duration::from_secs(10), || {
            if let Ok(Some(status)) = n.master.try_wait() {
                panic!(
                    "nginx failed to start ({status}): {}",
                    std::fs::read_to_string(&stderr_log).unwrap_or_default()
                );
            }
            std::net::TcpStream::connect(("127.0.0.1", http_port)).is_ok()
        });
        n
    }

    fn args(&self) -> Vec<String> {
        args(&self.conf, &self.prefix)
    }

    /// `nginx -t` for this instance, as an argv array.
    pub fn test_command(&self) -> Vec<String> {
        let mut v = vec!["nginx".to_string(), "-t".to_string(), "-q".to_string()];
        v.extend(self.args());
        v
    }

    /// `nginx -s reload` for this instance, as an argv array.
    pub fn reload_command(&self) -> Vec<String> {
        let mut v = vec!["nginx".to_string(), "-s".to_string(), "reload".to_string()];
        v.extend(self.args());
        v
    }

    /// Writes `sites/<name>.conf`.
    pub fn add_site(&self, name: &str, conf: &str) {
        std::fs::write(self.sites.join(format!("{name}.conf")), conf).expect("write site");
    }

    /// A TLS server block on a free port using the given files.
    pub fn tls_site(
        &self,
        name: &str,
        server_name: &str,
        fullchain: &Path,
        key: &Path,
        extra: &str,
    ) -> u16 {
        let port = free_port();
        self.add_site(
            name,
            &format!(
                "server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name {server_name};\n  ssl_certificate {};\n  ssl_certificate_key {};\n  {extra}\n  location / {{ return 200 \"ok\\n\"; }}\n}}\n",
                fullchain.display(),
                key.display()
            ),
        );
        port
    }

    /// Reloads nginx and waits until every old worker has exited, so the
    /// next connection is served with the new configuration.
    pub fn reload(&self) {
        let master = self.master_pid();
        let old = workers(master);
        let out = Command::new("nginx")
            .args(&self.reload_command()[1..])
            .output()
            .expect("reload nginx");
        assert!(
            out.status.success(),
            "nginx reload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_for(
            "nginx's old workers to exit",
            Duration::from_secs(15),
            || {
                let now = workers(master);
                !now.is_empty() && now.iter().all(|p| !old.contains(p))
            },
        );
    }

    fn master_pid(&self) -> u32 {
        self.master.id()
    }

    /// Pids of the master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let mut v = vec![self.master_pid()];
        v.extend(workers(self.master_pid()));
        v
    }

    /// How many reloads nginx logged (its error log records each SIGHUP).
    pub fn reload_count(&self) -> usize {
        std::fs::read_to_string(self.prefix.join("logs/error.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("signal 1 (SIGHUP) received"))
            .count()
    }
}

/// Pids of the children of `master` (nginx workers), from /proc.
fn workers(master: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name (which may contain spaces): state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            == Some(master)
        {
            out.push(pid);
        }
    }
    out
}

fn args(conf: &Path, prefix: &Path) -> Vec<String> {
    vec![
        "-c".into(),
        conf.display().to_string(),
        "-p".into(),
        prefix.display().to_string(),
    ]
}

/// How long nginx gets to stop after SIGTERM before it and its workers are
/// killed. A loopback nginx with idle connections stops in milliseconds.
const STOP_GRACE: Duration = Duration::from_secs(10);

impl Drop for Nginx {
    /// Stops nginx by pid (SIGTERM, nginx's fast shutdown, which also stops
    /// the workers), waits for the master to exit, and falls back to SIGKILL
    /// for the workers and the master. Never needs the pid file.
    fn drop(&mut self) {
        let pid = self.master.id();
        if let Ok(Some(_)) = self.master.try_wait() {
            return;
        }
        // SAFETY: kill(2) with a pid of our own unreaped child and a valid signal.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < STOP_GRACE {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("nginx (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}: killing it");
        for w in workers(pid) {
            // SAFETY: kill(2) on the workers of our child, valid signal.
            unsafe {
                libc::kill(w as libc::pid_t, libc::SIGKILL);
            }
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}
