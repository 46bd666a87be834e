//! The "balanced" test bed: three nginx nodes behind a round-robin load
//! balancer, the set-up cluster mode exists for.
//!
//! ```text
//!   Pebble VA --HTTP-01--> front nginx (Pebble's httpPort)
//!                              | round robin, no stickiness
//!              +---------------+---------------+
//!          node a nginx    node b nginx    node c nginx
//!          webroot a       webroot b       webroot c
//!          store a         store b         store c
//! ```
//!
//! Every node has its own nginx (its own HTTP port, `sites/` for TLS
//! sites), webroot, certkeep store and config path. The front nginx listens
//! on the port Pebble validates HTTP-01 against and proxies each request to
//! the next node in turn. Pebble's DNS answers 127.0.0.1 for every name, so
//! every validation request goes through the front.
//!
//! Each node's config head (`BalancedBed::base_config`) self-checks against
//! the node's own nginx, not the front: a node-local self-check passes, and
//! what fails is the CA's validation through the balancer.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use super::{certkeep, config_head, have, open_tempdir, Nginx, Pebble, PebbleOptions};

/// One node of the bed: its nginx, webroot, store and config file.
pub struct BedNode {
    /// `a`, `b` or `c`.
    pub name: String,
    /// The node's own directory (nginx prefix, webroot, store, config below).
    pub dir: PathBuf,
    pub nginx: Nginx,
    pub webroot: PathBuf,
    pub store: PathBuf,
    pub config: PathBuf,
}

pub struct BalancedBed {
    /// Holds every node's, the front's and Pebble's files; removed on drop.
    _dir: tempfile::TempDir,
    pub nodes: Vec<BedNode>,
    /// The load balancer; `front.http_port` is Pebble's httpPort.
    pub front: Nginx,
    pub pebble: Pebble,
}

/// One request the front proxied: which node port answered, with what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub upstream_port: u16,
    pub status: u16,
    pub uri: String,
}

impl BalancedBed {
    /// Starts three node nginx, the front and Pebble; `None` (test skipped)
    /// when they are not installed (under CI=true that panics instead).
    pub fn start(opts: PebbleOptions) -> Option<BalancedBed> {
        if !(have("pebble") && have("pebble-challtestsrv") && have("nginx")) {
            return None;
        }
        let dir = open_tempdir();
        let mut nodes = Vec::new();
        for name in ["a", "b", "c"] {
            let ndir = dir.path().join(format!("node-{name}"));
            let webroot = ndir.join("webroot");
            std::fs::create_dir_all(&webroot).expect("webroot");
            for d in [&ndir, &webroot] {
                std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            }
            let nginx = Nginx::start(&ndir.join("nginx"), &webroot);
            nodes.push(BedNode {
                name: name.to_string(),
                store: ndir.join("store"),
                config: ndir.join("certkeep.toml"),
                dir: ndir,
                nginx,
                webroot,
            });
        }
        let ports: Vec<u16> = nodes.iter().map(|n| n.nginx.http_port).collect();
        let front = Nginx::start_balancer(&dir.path().join("front"), &ports);
        let pebble = Pebble::start(&dir.path().join("pebble"), front.http_port, opts);
        Some(BalancedBed {
            _dir: dir,
            nodes,
            front,
            pebble,
        })
    }

    /// Node `i`'s config head: its store, Pebble (also as the staging CA), a self-check against the
    /// node's own nginx and that nginx's test/reload commands.
    pub fn base_config(&self, i: usize) -> String {
        let n = &self.nodes[i];
        config_head(&n.store, &self.pebble, &self.pebble.directory, &n.nginx)
    }

    /// A `[[certificate]]` block using node `i`'s webroot.
    pub fn cert_block(&self, i: usize, name: &str, domains: &[&str], extra: &str) -> String {
        format!(
            "\n[[certificate]]\nname = \"{name}\"\ndomains = {domains:?}\nwebroot = \"{}\"\n{extra}\n",
            self.nodes[i].webroot.display()
        )
    }

    /// Writes node `i`'s config: its head followed by `body`.
    pub fn write_config(&self, i: usize, body: &str) {
        std::fs::write(
            &self.nodes[i].config,
            format!("{}{body}", self.base_config(i)),
        )
        .expect("write config");
    }

    /// Runs certkeep with node `i`'s config.
    pub fn certkeep(&self, i: usize, args: &[&str]) -> Output {
        certkeep(&self.nodes[i].config, args)
    }

    /// The node index whose nginx listens on `port`.
    pub fn node_of_port(&self, port: u16) -> Option<usize> {
        self.nodes.iter().position(|n| n.nginx.http_port == port)
    }

    /// Makes node `i`'s nginx serve lineage `name` from the node's own store
    /// (`live/<name>/fullchain.pem`, `privkey.pem`, which must exist) on a new
    /// TLS port for `server_name`, reloads it and returns the port.
    pub fn serve(&self, i: usize, name: &str, server_name: &str) -> u16 {
        let n = &self.nodes[i];
        let live = n.store.join("live").join(name);
        let port = n.nginx.tls_site(
            name,
            server_name,
            &live.join("fullchain.pem"),
            &live.join("privkey.pem"),
            "",
        );
        n.nginx.reload();
        port
    }

    /// Every request the front has proxied so far, from its access log.
    pub fn hits(&self) -> Vec<Hit> {
        let log =
            std::fs::read_to_string(self.front.prefix.join("logs/access.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let mut port = None;
                let mut status = None;
                let mut uri = None;
                for f in l.split(' ') {
                    if let Some(v) = f.strip_prefix("upstream=") {
                        port = v.rsplit(':').next().and_then(|p| p.parse().ok());
                    } else if let Some(v) = f.strip_prefix("status=") {
                        status = v.parse().ok();
                    } else if let Some(v) = f.strip_prefix("uri=") {
                        uri = Some(v.to_string());
                    }
                }
                Some(Hit {
                    upstream_port: port?,
                    status: status?,
                    uri: uri?,
                })
            })
            .collect()
    }
}

/// The serial of the certificate served on 127.0.0.1:`port` for `sni`, read
/// with `openssl s_client` (an independent client), as lowercase hex without
/// leading zeros (certkeep's own notation); `Err` with openssl's output when
/// no certificate came back.
pub fn served_serial(port: u16, sni: &str) -> Result<String, String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{port} -servername {sni} </dev/null 2>&1 | openssl x509 -noout -serial"
        ))
        .output()
        .map_err(|e| format!("run openssl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match text.trim().strip_prefix("serial=") {
        Some(hex) if out.status.success() => {
            Ok(hex.to_ascii_lowercase().trim_start_matches('0').to_string())
        }
        _ => Err(format!(
            "no certificate served on 127.0.0.1:{port} for {sni}: {}",
            super::text(&out)
        )),
    }
}
