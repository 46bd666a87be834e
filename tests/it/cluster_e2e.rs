//! Cluster mode end to end: three real `certkeep run` daemons, each with its
//! own nginx, webroot and store, behind the round-robin balancer Pebble
//! validates through, sharing a real 3-member etcd; all on loopback.
//!
//! The oracles are independent of certkeep: Pebble's own count of orders,
//! the balancer's access log, the serial each node's nginx serves (read with
//! `openssl s_client`), `openssl` on the files of each local store, and the
//! raw values (and etcd's own per-key write counter) read with `etcdctl`.
//!
//! Renewals are made due by time: Pebble issues 5-year certificates, and a
//! `renew_before` fraction of `1 - D / lifetime` makes each version due `D`
//! seconds after its notBefore (see `due_after`), so a test gets exactly one
//! renewal per `D` seconds while every node checks every second.

// Nodes, their names, ports and stores are parallel lists indexed by node.
#![allow(clippy::needless_range_loop)]

use crate::common;

use std::collections::BTreeMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::balanced::{served_serial, BalancedBed};
use common::etcd::{write_cluster_key, Etcd, Etcdctl};
use common::http_receiver::Receiver;
use common::{KillOnDrop, PebbleOptions};
use serde_json::Value;

const PREFIX: &str = "/certkeep/e2e";
const NODES: [&str; 3] = ["a", "b", "c"];
/// Pebble's certificate lifetime (5 years, its default).
const PEBBLE_LIFETIME_SECS: f64 = 157_766_400.0;

/// A `renew_before` fraction that makes a Pebble certificate due `secs`
/// seconds after its notBefore.
fn due_after(secs: u64) -> String {
    format!("{:.15}", 1.0 - secs as f64 / PEBBLE_LIFETIME_SECS)
}

/// Accepts on a loopback port and forwards each connection to `target`
/// after a delay that the test can change while it runs: a node whose
/// self-check goes through it is slow to acknowledge challenges.
struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl DelayProxy {
    fn start(target: u16) -> DelayProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind delay proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (delay, stopped) = (delay_ms.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                let wait = Duration::from_millis(delay.load(Ordering::SeqCst));
                std::thread::spawn(move || {
                    std::thread::sleep(wait);
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                        return;
                    };
                    let (Ok(mut c2), Ok(mut u2)) = (client.try_clone(), upstream.try_clone())
                    else {
                        return;
                    };
                    let up = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c2, &mut u2);
                        let _ = u2.shutdown(Shutdown::Write);
                    });
                    let (mut c, mut u) = (client, upstream);
                    let _ = std::io::copy(&mut u, &mut c);
                    let _ = c.shutdown(Shutdown::Both);
                    let _ = up.join();
                });
            }
        });
        DelayProxy {
            port,
            delay_ms,
            stop,
        }
    }

    fn set_delay(&self, d: Duration) {
        self.delay_ms.store(d.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// The bed: fields drop in order, so the daemons stop first, then nginx and
/// Pebble, then etcd.
struct Cluster {
    daemons: Vec<Option<KillOnDrop>>,
    bed: BalancedBed,
    etcd: Etcd,
    key: PathBuf,
    /// Appended to every node's `[cluster]` section.
    cluster_extra: String,
    /// Appended to every node's config (an `[alert]` section).
    alert: String,
    /// `[renewal] ari` of every node.
    ari: bool,
}

impl Cluster {
    fn start() -> Option<Cluster> {
        let etcd = Etcd::start()?;
        let bed = BalancedBed::start(PebbleOptions::default())?;
        let key = etcd.dir.path().join("cluster.key");
        write_cluster_key(&key);
        Some(Cluster {
            daemons: (0..3).map(|_| None).collect(),
            bed,
            etcd,
            key,
            cluster_extra: String::new(),
            alert: String::new(),
            ari: false,
        })
    }

    /// Writes node `i`'s config: the bed's head (with the self-check on
    /// `self_check_port` when given), `certs`, a `[daemon]` section checking
    /// renewals on `schedule`, and a `[cluster]` section with `cluster_extra`.
    fn configure(&self, i: usize, certs: &str, schedule: &str, self_check_port: Option<u16>) {
        // Renewals are timed by `renew_before` (see `due_after`), not by
        // Pebble's renewal windows.
        let mut head = self
            .bed
            .base_config(i)
            .replace("[renewal]\n", &format!("[renewal]\nari = {}\n", self.ari));
        if let Some(p) = self_check_port {
            let own = format!("self_check_port = {}", self.bed.nodes[i].nginx.http_port);
            assert!(head.contains(&own), "{head}");
            head = head.replace(&own, &format!("self_check_port = {p}"));
        }
        let cluster = self.etcd.cluster_section(
            NODES[i],
            PREFIX,
            &self.key,
            &format!(
                "lease_ttl = \"3s\"\nrequest_timeout = \"2s\"\nconnect_timeout = \"2s\"\nchallenge_timeout = \"30s\"\n{}",
                self.cluster_extra
            ),
        );
        std::fs::write(
            &self.bed.nodes[i].config,
            format!(
                "{head}{certs}\n[daemon]\nrenew_schedule = \"{schedule}\"\n{cluster}\n{}",
                self.alert
            ),
        )
        .expect("write config");
    }

    /// `certkeep cluster init` on node a (its store is empty: the prefix
    /// gets `meta` and nothing else; the first version is ordered).
    fn init(&self) {
        common::assert_exit(&self.bed.certkeep(0, &["cluster", "init"]), 0);
    }

    fn start_daemon(&mut self, i: usize) {
        let n = &self.bed.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(n.dir.join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&n.config)
            .args(["run", "-v", "--log-format", "plain"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start certkeep run");
        self.daemons[i] = Some(KillOnDrop(child));
    }

    fn start_all(&mut self) {
        for i in 0..3 {
            self.start_daemon(i);
        }
    }

    /// SIGKILL: no cleanup, no lease revocation.
    fn kill(&mut self, i: usize) {
        if let Some(mut d) = self.daemons[i].take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    fn stop_all(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
    }

    /// Whether node `i`'s daemon is still running.
    fn running(&mut self, i: usize) -> bool {
        self.daemons[i]
            .as_mut()
            .is_some_and(|d| matches!(d.try_wait(), Ok(None)))
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for n in &self.bed.nodes {
            let log = std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            s.push_str(&format!("--- node {} (last 60 lines)\n", n.name));
            s.push_str(&lines[lines.len().saturating_sub(60)..].join("\n"));
            s.push('\n');
        }
        s
    }

    /// etcdctl against the running members only.
    fn ctl(&self) -> Etcdctl {
        let mut c = self.etcd.ctl_all();
        c.endpoints = (0..3)
            .filter(|&i| self.etcd.is_running(i))
            .map(|i| self.etcd.members[i].client_url.clone())
            .collect();
        c
    }

    fn get_json(&self, key: &str) -> Option<Value> {
        self.ctl()
            .get(&format!("{PREFIX}/v1/{key}"))
            .map(|s| serde_json::from_str(&s).unwrap_or_else(|e| panic!("{key}: {e}: {s}")))
    }

    /// `lineage/<name>/current`, its `serial` in `served_serial`'s
    /// notation (no leading zeros).
    fn current(&self, name: &str) -> Option<Value> {
        let mut v = self.get_json(&format!("lineage/{name}/current"))?;
        let serial = norm(v["serial"].as_str().expect("serial"));
        v["serial"] = Value::from(serial);
        Some(v)
    }

    fn report(&self, name: &str, node: &str) -> Option<Value> {
        self.get_json(&format!("deploy/{node}/{name}"))
    }

    /// etcd's own count of writes to `key` since it was created (its
    /// `version` field), read with etcdctl.
    fn etcd_writes(&self, key: &str) -> u64 {
        let out = self
            .ctl()
            .ok(&["get", "-w", "json", &format!("{PREFIX}/v1/{key}")]);
        let v: Value = serde_json::from_str(&out).expect("etcdctl -w json");
        v["kvs"][0]["version"]
            .as_u64()
            .unwrap_or_else(|| panic!("no version for {key}: {out}"))
    }

    /// Every raw key and value under the prefix.
    fn raw_dump(&self) -> String {
        self.ctl().ok(&["get", "--prefix", PREFIX])
    }

    /// Waits until every node in `nodes` reports serving `version` of `name`.
    fn wait_deployed(&self, name: &str, version: u64, nodes: &[usize], bound: Duration) {
        let start = Instant::now();
        loop {
            let done = nodes.iter().all(|&i| {
                self.report(name, NODES[i])
                    .is_some_and(|r| r["ok"] == true && r["serving_version"] == version)
            });
            if done {
                return;
            }
            assert!(
                start.elapsed() < bound,
                "version {version} of {name} not deployed on nodes {nodes:?} within {bound:?}\ncurrent: {:?}\nreports: {:?}\n{}",
                self.current(name),
                NODES.iter().map(|n| self.report(name, n)).collect::<Vec<_>>(),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until node `i`'s nginx serves `serial` on `port` (nginx's old
    /// workers may answer for a moment after a reload).
    fn wait_served(&self, i: usize, port: u16, sni: &str, serial: &str) {
        let start = Instant::now();
        loop {
            let got = served_serial(port, sni);
            if got.as_deref() == Ok(serial) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "node {} does not serve {serial} for {sni} within 30 s: {got:?}\n{}",
                NODES[i],
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn status_json(&self, i: usize) -> (Option<i32>, Value) {
        let out = self.bed.certkeep(i, &["cluster", "status", "--json"]);
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json: {e}\n{}", common::text(&out)));
        (out.status.code(), v)
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A webhook receiver on loopback and the `[alert]` section of every node
/// (one channel, the receiver).
fn webhook(rt: &tokio::runtime::Runtime) -> (Receiver, String) {
    let r = rt.block_on(Receiver::start(vec![]));
    let section = format!(
        "[alert]\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        r.url("/hook")
    );
    (r, section)
}

/// Every alert the receiver got, in order, from every message.
fn alerts_received(r: &Receiver) -> Vec<Value> {
    r.requests()
        .iter()
        .flat_map(|q| q.json()["alerts"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// The statuses ("firing", "resolved") of the alerts received for `key`.
fn statuses(r: &Receiver, key: &str) -> Vec<String> {
    alerts_received(r)
        .iter()
        .filter(|a| a["labels"]["key"] == key)
        .map(|a| a["status"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The keys of every alert received.
fn keys_received(r: &Receiver) -> Vec<String> {
    alerts_received(r)
        .iter()
        .map(|a| a["labels"]["key"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A serial as lowercase hex without leading zeros.
fn norm(serial: &str) -> String {
    serial
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

/// `openssl` on the files: the public key of a certificate and of a key.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        common::text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cert_serial(path: &Path) -> String {
    let out = openssl(&[
        "x509",
        "-noout",
        "-serial",
        "-in",
        &path.display().to_string(),
    ]);
    out.trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
        .trim_start_matches('0')
        .to_string()
}

/// Asserts that every version in node `dir`'s archive of `name` has a key
/// matching its certificate, and so does `live/`; returns the archive's
/// serials in version order.
fn check_store(store: &Path, name: &str, node: &str) -> Vec<String> {
    let pubkey_cert =
        |p: &Path| openssl(&["x509", "-noout", "-pubkey", "-in", &p.display().to_string()]);
    let pubkey_key = |p: &Path| openssl(&["pkey", "-pubout", "-in", &p.display().to_string()]);
    let live = store.join("live").join(name);
    assert_eq!(
        pubkey_cert(&live.join("cert.pem")),
        pubkey_key(&live.join("privkey.pem")),
        "node {node}: live key does not match live certificate"
    );
    let archive = store.join("archive").join(name);
    let mut serials = Vec::new();
    for v in 1.. {
        let cert = archive.join(format!("cert{v}.pem"));
        if !cert.exists() {
            break;
        }
        assert_eq!(
            pubkey_cert(&cert),
            pubkey_key(&archive.join(format!("privkey{v}.pem"))),
            "node {node}: archive version {v}: key does not match certificate"
        );
        serials.push(cert_serial(&cert));
    }
    let files = std::fs::read_dir(&archive).expect("archive").count();
    assert_eq!(
        files,
        serials.len() * 4,
        "node {node}: archive holds files beyond versions 1..={}",
        serials.len()
    );
    serials
}

/// Every path under `dir` with its kind, mode and content (or symlink
/// target): equal trees mean nothing changed on disk.
/// The local alert state (`state/alerts.*`) is left out: a node that
/// alerts writes it.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = tree_all(dir);
    out.retain(|p, _| !p.to_string_lossy().starts_with("state/alerts"));
    out
}

fn tree_all(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(dir).expect("under dir").to_path_buf();
            let mode = m.permissions().mode() & 0o7777;
            let what = if m.file_type().is_symlink() {
                format!(
                    "link -> {}",
                    std::fs::read_link(&p).expect("readlink").display()
                )
            } else if m.is_dir() {
                todo.push(p.clone());
                format!("dir {mode:o}")
            } else {
                let bytes = std::fs::read(&p).expect("read");
                format!("file {mode:o} {}", String::from_utf8_lossy(&bytes))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// No raw value holds a PEM private key; every version's key is sealed.
fn assert_no_clear_keys(raw: &str) {
    assert!(
        !raw.contains("PRIVATE KEY"),
        "a private key in clear in etcd:\n{raw}"
    );
    assert!(!raw.contains("-----BEGIN EC"), "{raw}");
}

fn sealed(rec: &Value) -> bool {
    rec["sealed_key"]
        .as_str()
        .is_some_and(|s| s.starts_with("ck1:"))
}

/// Ten lineages, distinct names, issued through the balancer by three
/// daemons: ten orders at Pebble, every validation fetch answered, every
/// node serving each lineage's one version.
#[test]
fn ten_lineages_through_the_balancer_are_each_ordered_once_and_served_by_every_node() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let names: Vec<String> = (0..10).map(|i| format!("l{i}")).collect();
    for i in 0..3 {
        let certs: String = names
            .iter()
            .map(|n| {
                c.bed
                    .cert_block(i, n, &[&format!("{n}.test")], "confirm = false")
            })
            .collect();
        // Checks every 5 s: a lineage another node was ordering (busy) is
        // looked at again; nothing issued is due (the default 1/3 rule).
        c.configure(i, &certs, "*/5 * * * * *", None);
    }
    c.init();
    c.start_all();
    for n in &names {
        // Ten orders on a loaded 2-core machine take 20-40 s; 150 s bounds a hang.
        c.wait_deployed(n, 1, &[0, 1, 2], Duration::from_secs(150));
    }
    assert_eq!(c.bed.pebble.orders_created(), 10, "{}", c.logs());
    let challenges: Vec<_> = c
        .bed
        .hits()
        .into_iter()
        .filter(|h| h.uri.contains("/.well-known/acme-challenge/"))
        .collect();
    assert!(challenges.len() >= 10, "{challenges:?}");
    assert!(challenges.iter().all(|h| h.status == 200), "{challenges:?}");
    let answered_by: std::collections::BTreeSet<u16> =
        challenges.iter().map(|h| h.upstream_port).collect();
    assert_eq!(answered_by.len(), 3, "{challenges:?}");

    let serials: Vec<String> = names
        .iter()
        .map(|n| {
            let cur = c.current(n).expect("current");
            assert_eq!(cur["version"], 1);
            assert!(sealed(&cur), "{cur}");
            assert_eq!(c.etcd_writes(&format!("lineage/{n}/current")), 1);
            cur["serial"].as_str().expect("serial").to_string()
        })
        .collect();
    let distinct: std::collections::BTreeSet<&String> = serials.iter().collect();
    assert_eq!(distinct.len(), 10);
    assert_no_clear_keys(&c.raw_dump());

    // Each node's own nginx serves each lineage from the node's own store.
    for i in 0..3 {
        let node = &c.bed.nodes[i];
        let ports: Vec<u16> = names
            .iter()
            .map(|n| {
                let live = node.store.join("live").join(n);
                node.nginx.tls_site(
                    n,
                    &format!("{n}.test"),
                    &live.join("fullchain.pem"),
                    &live.join("privkey.pem"),
                    "",
                )
            })
            .collect();
        node.nginx.reload();
        for ((n, port), serial) in names.iter().zip(&ports).zip(&serials) {
            assert_eq!(
                served_serial(*port, &format!("{n}.test")).as_deref(),
                Ok(serial.as_str()),
                "node {} lineage {n}",
                NODES[i]
            );
            assert_eq!(check_store(&node.store, n, NODES[i]), [serial.as_str()]);
        }
    }
    c.stop_all();
}

/// The node holding a lineage's lock is SIGKILLed while it waits for the
/// acknowledgements (node c acknowledges slowly): a survivor takes the lock
/// once the lease is gone and completes the renewal; the version is written
/// once; every node's store is consistent; no private key in etcd.
#[test]
fn a_lock_holder_killed_mid_order_is_replaced_and_no_version_is_written_twice() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let proxy = DelayProxy::start(c.bed.nodes[2].nginx.http_port);
    let due = due_after(20);
    for i in 0..3 {
        let certs = c.bed.cert_block(
            i,
            "site",
            &["site.test"],
            &format!("confirm = false\nrenew_before = {due}"),
        );
        c.configure(i, &certs, "* * * * * *", (i == 2).then_some(proxy.port));
    }
    c.init();
    c.start_all();
    c.wait_deployed("site", 1, &[0, 1, 2], Duration::from_secs(90));
    let v1 = c.current("site").expect("v1");
    let s1 = v1["serial"].as_str().unwrap().to_string();
    let ports: Vec<u16> = (0..3)
        .map(|i| c.bed.serve(i, "site", "site.test"))
        .collect();
    for i in 0..3 {
        c.wait_served(i, ports[i], "site.test", &s1);
    }

    // Version 2 falls due 20 s after version 1's notBefore. Node c now
    // takes 6 s to acknowledge: the ordering node waits that long with the
    // lock held and its challenge published.
    proxy.set_delay(Duration::from_secs(6));
    let challenges = format!("{PREFIX}/v1/challenge/");
    let start = Instant::now();
    let holder = loop {
        let out = c
            .ctl()
            .ok(&["get", "--prefix", "--print-value-only", &challenges]);
        let published = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find_map(|v| v["node"].as_str().map(str::to_string));
        // Kill once a node has acknowledged too (a and b answer at once,
        // c only after 6 s), so the acknowledgements' fate is shown.
        let acked = c
            .ctl()
            .ok(&["get", "--prefix", "--keys-only", &challenges])
            .contains("/ack/");
        if let (Some(n), true) = (published, acked) {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "no challenge published within 90 s\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let x = NODES.iter().position(|n| *n == holder).expect("a bed node");
    c.kill(x);
    // The challenge and the acknowledgements the live nodes gave it: all
    // bound to the holder's lease.
    let held: Vec<String> = c
        .ctl()
        .ok(&["get", "--prefix", "--keys-only", &challenges])
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert!(held.iter().any(|k| !k.contains("/ack/")), "{held:?}");
    assert!(held.iter().any(|k| k.contains("/ack/")), "{held:?}");
    let killed_at = time::OffsetDateTime::now_utc();
    proxy.set_delay(Duration::ZERO);
    // The holder was killed before it wrote anything.
    let cur = c.current("site").unwrap();
    assert_eq!(
        cur["version"],
        1,
        "the kill came too late: {cur}\n{}",
        c.logs()
    );
    let orders_at_kill = c.bed.pebble.orders_created();
    assert_eq!(orders_at_kill, 2, "{}", c.logs());

    // The killed node's lock and challenge go with its lease (3 s TTL;
    // 15 s bounds etcd's expiry with a wide margin).
    common::wait_for(
        "the killed holder's challenge and its acknowledgements to expire with its lease",
        Duration::from_secs(15),
        || {
            let now = c.ctl().ok(&["get", "--prefix", "--keys-only", &challenges]);
            held.iter().all(|k| !now.lines().any(|l| l == k))
        },
    );
    // The killed node comes back, as its service manager restarts it:
    // while its daemon is down its nginx, still behind the balancer, cannot
    // answer challenges, so no order can pass validation without it.
    c.start_daemon(x);
    c.wait_deployed("site", 2, &[0, 1, 2], Duration::from_secs(90));
    let v2 = c.current("site").unwrap();
    let s2 = v2["serial"].as_str().unwrap().to_string();
    assert_ne!(s2, s1);
    let written_at = time::OffsetDateTime::parse(
        v2["written_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(written_at > killed_at, "{v2}");
    // At least the survivor's order beside the killed one; whatever else
    // was ordered, only one version 2 was written (below).
    assert!(c.bed.pebble.orders_created() >= 3, "{}", c.logs());
    c.stop_all();
    // No challenge and no acknowledgement is left behind (the last order's
    // are deleted when it ends; 15 s bounds the expiry of any lease-bound one).
    common::wait_for(
        "no key left under challenge/",
        Duration::from_secs(15),
        || {
            c.ctl()
                .ok(&["get", "--prefix", "--keys-only", &challenges])
                .trim()
                .is_empty()
        },
    );

    // etcd wrote `current` exactly twice: version 1, then version 2.
    let cur = c.current("site").unwrap();
    assert_eq!(cur["version"], 2);
    assert_eq!(c.etcd_writes("lineage/site/current"), 2);
    let prev = c.get_json("lineage/site/previous").expect("previous");
    assert_eq!(prev["version"], 1);
    assert_eq!(norm(prev["serial"].as_str().unwrap()), s1);
    assert!(sealed(&cur) && sealed(&prev));
    assert_no_clear_keys(&c.raw_dump());
    for i in 0..3 {
        let node = &c.bed.nodes[i];
        assert_eq!(
            check_store(&node.store, "site", NODES[i]),
            [s1.clone(), s2.clone()],
            "node {}",
            NODES[i]
        );
        assert_eq!(
            served_serial(ports[i], "site.test").as_deref(),
            Ok(s2.as_str())
        );
    }
}

/// One etcd member down: a renewal still goes through. Two down (no
/// quorum): every node keeps serving, nothing on disk changes, nothing is
/// ordered, and one node (a, the first by name), not all three, alerts
/// that etcd is unreachable. The members return: the renewal that fell due
/// meanwhile is ordered and deployed everywhere, and the alert resolves once.
#[test]
fn etcd_losing_one_member_then_quorum_stops_nothing_and_the_cluster_recovers() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let rt = rt();
    let (receiver, alert) = webhook(&rt);
    c.alert = alert;
    c.cluster_extra = "unreachable_alert_after = \"4s\"\ndeploy_lag_alert_after = \"8s\"\n".into();
    let due = due_after(15);
    for i in 0..3 {
        let certs = c.bed.cert_block(
            i,
            "site",
            &["site.test"],
            &format!("confirm = false\nrenew_before = {due}"),
        );
        c.configure(i, &certs, "* * * * * *", None);
    }
    c.init();
    c.start_all();
    c.wait_deployed("site", 1, &[0, 1, 2], Duration::from_secs(90));
    let s1 = c.current("site").unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let ports: Vec<u16> = (0..3)
        .map(|i| c.bed.serve(i, "site", "site.test"))
        .collect();

    // The first endpoint of every node's list goes away.
    c.etcd.stop_member(0);
    c.wait_deployed("site", 2, &[0, 1, 2], Duration::from_secs(90));
    let v2 = c.current("site").unwrap();
    let s2 = v2["serial"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    for i in 0..3 {
        c.wait_served(i, ports[i], "site.test", &s2);
    }

    // Quorum lost.
    c.etcd.stop_member(1);
    let trees: Vec<_> = c.bed.nodes.iter().map(|n| tree(&n.store)).collect();
    let orders = c.bed.pebble.orders_created();
    // Version 3 falls due 15 s after version 2's notBefore: stay without
    // quorum until 5 s past that, so every node would have ordered.
    let not_before = time::OffsetDateTime::parse(
        v2["not_before"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let until = not_before + time::Duration::seconds(20);
    while time::OffsetDateTime::now_utc() < until {
        std::thread::sleep(Duration::from_millis(500));
    }
    for i in 0..3 {
        assert!(
            c.running(i),
            "node {} exited without quorum\n{}",
            NODES[i],
            c.logs()
        );
        assert_eq!(
            served_serial(ports[i], "site.test").as_deref(),
            Ok(s2.as_str())
        );
        assert_eq!(tree(&c.bed.nodes[i].store), trees[i], "node {}", NODES[i]);
    }
    assert_eq!(c.bed.pebble.orders_created(), orders, "{}", c.logs());

    c.etcd.start_member(0);
    c.etcd.start_member(1);
    c.etcd.wait_all_healthy();
    // Reconnecting waits out the nodes' back-off (at most 30 s).
    c.wait_deployed("site", 3, &[0, 1, 2], Duration::from_secs(120));
    let s3 = c.current("site").unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        c.wait_served(i, ports[i], "site.test", &s3);
    }
    let key = "cluster:etcd:reachable";
    common::wait_for("the etcd alert to resolve", Duration::from_secs(60), || {
        statuses(&receiver, key).len() >= 2
    });
    // 4 s more (two fleet rounds of every node): nothing further about etcd.
    std::thread::sleep(Duration::from_secs(4));
    c.stop_all();
    assert_eq!(
        statuses(&receiver, key),
        ["firing", "resolved"],
        "{:?}\n{}",
        alerts_received(&receiver),
        c.logs()
    );
    let firing = alerts_received(&receiver)
        .into_iter()
        .find(|a| a["labels"]["key"] == key)
        .unwrap();
    assert_eq!(firing["annotations"]["node"], "a", "{firing}");
    // b and c said who alerts instead.
    for i in 1..3 {
        let log = std::fs::read_to_string(c.bed.nodes[i].dir.join("daemon.log")).unwrap();
        assert!(
            log.contains("node a alerts for the cluster, this node only logs it"),
            "node {}: {}",
            NODES[i],
            c.logs()
        );
    }
    assert_eq!(c.etcd_writes("lineage/site/current"), 3);
    assert_no_clear_keys(&c.raw_dump());
}

/// Node c's nginx configuration is broken when version 2 arrives: c rolls
/// back and reports the failure (and keeps serving version 1), a and b
/// deploy, `cluster status` names c, and the cluster (three daemons sharing
/// one alert state) sends one notification naming c. Once c's config is
/// fixed, c deploys version 2 and one "resolved" follows.
#[test]
fn a_node_with_a_broken_nginx_config_rolls_back_and_is_named_the_others_deploy() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let rt = rt();
    let (receiver, alert) = webhook(&rt);
    c.alert = alert;
    // Every node looks at the fleet every 2 s (a quarter of the bound).
    c.cluster_extra = "deploy_lag_alert_after = \"8s\"\n".into();
    let due = due_after(20);
    for i in 0..3 {
        let certs = c.bed.cert_block(
            i,
            "site",
            &["site.test"],
            &format!("confirm = false\nrenew_before = {due}"),
        );
        c.configure(i, &certs, "* * * * * *", None);
    }
    c.init();
    c.start_all();
    c.wait_deployed("site", 1, &[0, 1, 2], Duration::from_secs(90));
    let s1 = c.current("site").unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let ports: Vec<u16> = (0..3)
        .map(|i| c.bed.serve(i, "site", "site.test"))
        .collect();
    let live_c = c.bed.nodes[2].store.join("live/site/cert.pem");
    let target_v1 = std::fs::read_link(&live_c).unwrap();
    c.bed.nodes[2]
        .nginx
        .add_site("broken", "this is not an nginx directive;\n");

    c.wait_deployed("site", 2, &[0, 1], Duration::from_secs(90));
    let s2 = c.current("site").unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let start = Instant::now();
    let report_c = loop {
        if let Some(r) = c
            .report("site", "c")
            .filter(|r| r["attempted_version"] == 2)
        {
            break r;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{}", c.logs());
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(report_c["ok"], false, "{report_c}");
    assert_eq!(
        norm(report_c["serving_serial"].as_str().unwrap_or("")),
        s1,
        "{report_c}"
    );
    assert!(
        report_c["error"].as_str().unwrap_or("").contains("nginx"),
        "{report_c}"
    );
    for i in 0..2 {
        c.wait_served(i, ports[i], "site.test", &s2);
    }
    assert_eq!(
        served_serial(ports[2], "site.test").as_deref(),
        Ok(s1.as_str())
    );
    assert_eq!(std::fs::read_link(&live_c).unwrap(), target_v1);
    assert_eq!(cert_serial(&live_c), s1);

    let (code, s) = c.status_json(0);
    assert_eq!(code, Some(1), "{s}");
    let nodes = s["lineages"][0]["nodes"].as_array().expect("nodes").clone();
    let state = |n: &str| {
        nodes
            .iter()
            .find(|v| v["node"] == n)
            .map(|v| v["state"].clone())
    };
    assert_eq!(state("a"), Some(Value::from("current")), "{s}");
    assert_eq!(state("b"), Some(Value::from("current")), "{s}");
    assert_eq!(state("c"), Some(Value::from("failed")), "{s}");
    let problems = s["problems"].to_string();
    assert!(problems.contains("node c"), "{problems}");
    assert!(
        !problems.contains("node a") && !problems.contains("node b"),
        "{problems}"
    );

    // One notification names c, whichever node saw the failure first.
    let key_c = "cluster:site@c:deploy";
    common::wait_for("the alert naming node c", Duration::from_secs(60), || {
        !statuses(&receiver, key_c).is_empty()
    });
    let firing = alerts_received(&receiver)
        .into_iter()
        .find(|a| a["labels"]["key"] == key_c)
        .unwrap();
    assert_eq!(firing["status"], "firing", "{firing}");
    assert!(
        firing["annotations"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains("node c failed to deploy site version 2"),
        "{firing}"
    );
    assert!(firing.to_string().contains("nginx"), "{firing}");

    // The config is fixed: c's next round finds nginx -t passing, deploys
    // version 2, and the alert resolves.
    std::fs::remove_file(c.bed.nodes[2].nginx.sites.join("broken.conf")).unwrap();
    c.wait_deployed("site", 2, &[2], Duration::from_secs(60));
    c.wait_served(2, ports[2], "site.test", &s2);
    common::wait_for(
        "the resolution of the alert naming node c",
        Duration::from_secs(60),
        || statuses(&receiver, key_c).len() >= 2,
    );
    // Three daemons kept looking at the fleet meanwhile: 10 s (5 rounds
    // each) more bring no further message about c.
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        statuses(&receiver, key_c),
        ["firing", "resolved"],
        "{:?}\n{}",
        alerts_received(&receiver),
        c.logs()
    );
    let keys = keys_received(&receiver);
    assert!(
        keys.iter().all(|k| k == key_c),
        "only c was ever a problem: {keys:?}"
    );
    c.stop_all();
}

/// Node c's daemon stops while the cluster renews (c has answered the
/// challenge, so the CA still validates through its nginx): a and b deploy
/// version 2, c keeps serving version 1. Once version 2 is older than
/// `deploy_lag_alert_after`, the live nodes send one notification naming c;
/// c's daemon comes back, deploys, and one "resolved" follows.
#[test]
fn a_node_left_behind_is_named_once_after_the_lag_bound_and_resolved_once() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let rt = rt();
    let (receiver, alert) = webhook(&rt);
    c.alert = alert;
    c.cluster_extra = "deploy_lag_alert_after = \"8s\"\n".into();
    let due = due_after(20);
    for i in 0..3 {
        let certs = c.bed.cert_block(
            i,
            "site",
            &["site.test"],
            &format!("confirm = false\nrenew_before = {due}"),
        );
        // c checks renewals at start only (nothing due then): a or b
        // orders version 2, so stopping c leaves the order running.
        let schedule = if i == 2 { "0 0 0 1 1 *" } else { "* * * * * *" };
        c.configure(i, &certs, schedule, None);
    }
    c.init();
    c.start_all();
    c.wait_deployed("site", 1, &[0, 1, 2], Duration::from_secs(90));
    let s1 = c.current("site").unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let port_c = c.bed.serve(2, "site", "site.test");

    // c has answered version 2's challenge (its token file stays in its
    // webroot when it is killed): now it stops.
    let challenges = format!("{PREFIX}/v1/challenge/");
    common::wait_for(
        "node c's acknowledgement of version 2's challenge",
        Duration::from_secs(90),
        || {
            c.ctl()
                .ok(&["get", "--prefix", "--keys-only", &challenges])
                .lines()
                .any(|l| l.ends_with("/ack/c"))
        },
    );
    c.kill(2);
    c.wait_deployed("site", 2, &[0, 1], Duration::from_secs(90));
    let v2 = c.current("site").unwrap();
    let s2 = v2["serial"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    assert_eq!(
        norm(
            c.report("site", "c").unwrap()["serving_serial"]
                .as_str()
                .unwrap()
        ),
        s1
    );

    let key_c = "cluster:site@c:deploy";
    common::wait_for(
        "the lag alert naming node c",
        Duration::from_secs(60),
        || !statuses(&receiver, key_c).is_empty(),
    );
    let firing = alerts_received(&receiver)
        .into_iter()
        .find(|a| a["labels"]["key"] == key_c)
        .unwrap();
    assert_eq!(firing["status"], "firing", "{firing}");
    let text = firing.to_string();
    assert!(
        text.contains("node c still serves an older certificate of site"),
        "{firing}"
    );
    assert!(text.contains("not running"), "{firing}");
    // Not before the bound: the episode started 8 s or more after version
    // 2 was written (both times from this machine's clock).
    let written = time::OffsetDateTime::parse(
        v2["written_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let starts = time::OffsetDateTime::parse(
        firing["startsAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(
        starts >= written.replace_nanosecond(0).unwrap() + time::Duration::seconds(8),
        "alert started {starts}, version 2 written {written}"
    );
    assert_eq!(
        served_serial(port_c, "site.test").as_deref(),
        Ok(s1.as_str())
    );

    c.start_daemon(2);
    c.wait_deployed("site", 2, &[2], Duration::from_secs(60));
    c.wait_served(2, port_c, "site.test", &s2);
    common::wait_for(
        "the resolution of the lag alert",
        Duration::from_secs(60),
        || statuses(&receiver, key_c).len() >= 2,
    );
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        statuses(&receiver, key_c),
        ["firing", "resolved"],
        "{:?}\n{}",
        alerts_received(&receiver),
        c.logs()
    );
    let keys = keys_received(&receiver);
    assert!(
        keys.iter().all(|k| k == key_c),
        "only c was ever a problem: {keys:?}"
    );
    c.stop_all();
}

/// The lineage's ACME profile goes with a cluster order as with a single
/// host: the order the fault proxy records asks for it, the shared version
/// in etcd names it, and every node's `certificates` shows it after
/// installing that version.
#[test]
fn a_cluster_order_asks_for_the_lineages_profile_and_every_node_records_it() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    let proxy =
        common::fault_proxy::FaultProxy::start(&c.bed.nodes[0].dir.join("proxy"), &c.bed.pebble);
    proxy.advertise_profiles(&[
        ("classic", "The same profile you're accustomed to"),
        ("shortlived", "valid for about 6 days"),
    ]);
    for i in 0..3 {
        let certs = c.bed.cert_block(
            i,
            "site",
            &["site.test"],
            "confirm = false\nprofile = \"shortlived\"\nprofile_mode = \"required\"",
        );
        c.configure(i, &certs, "* * * * * *", None);
        // Every node talks to the CA through the proxy.
        let path = &c.bed.nodes[i].config;
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace(&c.bed.pebble.directory, &proxy.directory)
            .replace(
                &c.bed.pebble.api_ca.display().to_string(),
                &proxy.ca_bundle.display().to_string(),
            );
        std::fs::write(path, text).unwrap();
    }
    c.init();
    c.start_all();
    c.wait_deployed("site", 1, &[0, 1, 2], Duration::from_secs(90));
    let created: Vec<Option<String>> = proxy
        .orders()
        .into_iter()
        .filter(|o| o.status == 201)
        .map(|o| o.profile)
        .collect();
    assert_eq!(
        created,
        vec![Some("shortlived".to_string())],
        "{}",
        c.logs()
    );
    assert_eq!(c.current("site").expect("v1")["profile"], "shortlived");
    c.stop_all();
    for i in 0..3 {
        let out = c.bed.certkeep(i, &["certificates", "--json"]);
        common::assert_exit(&out, 0);
        let list: Value = serde_json::from_slice(&out.stdout).expect("certificates --json");
        assert_eq!(
            list[0]["profile"], "shortlived",
            "node {}: {list}",
            NODES[i]
        );
    }
}
