//! Cluster mode against a real etcd on loopback: the client wrapper
//! (requests, compare-and-swap, locks, leases, watches).

use crate::common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use certkeep::cluster::etcd::{Change, Etcd, EtcdError, Expect, Settings};
use common::{free_port, open_tempdir, wait_for, KillOnDrop};

/// A single-member etcd on free loopback ports, with its data in a temp dir;
/// killed on drop.
pub struct EtcdServer {
    _proc: KillOnDrop,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl EtcdServer {
    pub fn start() -> Option<EtcdServer> {
        if !(common::have("etcd") && common::have("etcdctl")) {
            return None;
        }
        let dir = open_tempdir();
        let (client, peer) = (free_port(), free_port());
        let endpoint = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
        let child = Command::new("etcd")
            .args(["--name", "n1", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("n1={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        let server = EtcdServer {
            _proc: KillOnDrop(child),
            endpoint,
            _dir: dir,
        };
        wait_for("etcd to be healthy", Duration::from_secs(20), || {
            Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &server.endpoint, "endpoint", "health"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        });
        Some(server)
    }

    pub fn settings(&self) -> Settings {
        settings(&self.endpoint)
    }

    /// Every raw key and value under `prefix`, read with etcdctl (an
    /// independent client).
    pub fn raw_dump(&self, prefix: &str) -> String {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint, "get", "--prefix", prefix])
            .output()
            .expect("etcdctl get");
        assert!(out.status.success(), "etcdctl get failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn settings(endpoint: &str) -> Settings {
    Settings {
        endpoints: vec![endpoint.to_string()],
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        ca_file: None,
        identity: None,
        user: None,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn put_get_prefix_and_delete() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    rt().block_on(async {
        let etcd = Etcd::connect(&server.settings()).await.unwrap();
        assert_eq!(etcd.get("/t/v1/meta").await.unwrap(), None);
        assert!(!etcd.any_under("/t/").await.unwrap());
        etcd.put("/t/v1/b", b"2", None).await.unwrap();
        etcd.put("/t/v1/a", b"1", None).await.unwrap();
        etcd.put("/u/v1/a", b"other cluster", None).await.unwrap();
        let a = etcd.get("/t/v1/a").await.unwrap().unwrap();
        assert_eq!(a.value, b"1");
        assert!(a.mod_revision > 0);
        let all = etcd.get_prefix("/t/").await.unwrap();
        let keys: Vec<&str> = all.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["/t/v1/a", "/t/v1/b"]);
        assert!(etcd.any_under("/t/").await.unwrap());
        assert_eq!(etcd.delete_prefix("/t/").await.unwrap(), 2);
        assert_eq!(etcd.get_prefix("/t/").await.unwrap(), vec![]);
        assert_eq!(
            etcd.get("/u/v1/a").await.unwrap().unwrap().value,
            b"other cluster"
        );
    });
    // The independent client sees what was written.
    assert!(server.raw_dump("/u/").contains("other cluster"));
}

#[test]
fn compare_and_swap_refuses_a_stale_write() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    rt().block_on(async {
        let one = Etcd::connect(&server.settings()).await.unwrap();
        let two = Etcd::connect(&server.settings()).await.unwrap();
        let key = "/t/v1/lineage/web/current";
        let prev = "/t/v1/lineage/web/previous";
        assert!(one
            .put_if(key, Expect::Absent, &[(key, b"v1")])
            .await
            .unwrap());
        // A second creation is refused.
        assert!(!two
            .put_if(key, Expect::Absent, &[(key, b"v1 again")])
            .await
            .unwrap());
        let read = one.get(key).await.unwrap().unwrap();
        let seen_by_two = two.get(key).await.unwrap().unwrap();
        assert_eq!(read.mod_revision, seen_by_two.mod_revision);
        // The first writer moves current to previous and writes v2 in one transaction.
        assert!(one
            .put_if(
                key,
                Expect::Revision(read.mod_revision),
                &[(key, b"v2"), (prev, b"v1")]
            )
            .await
            .unwrap());
        // The second, holding the old revision, cannot write its v2.
        assert!(!two
            .put_if(
                key,
                Expect::Revision(seen_by_two.mod_revision),
                &[(key, b"v2 from two"), (prev, b"v1")]
            )
            .await
            .unwrap());
        assert_eq!(one.get(key).await.unwrap().unwrap().value, b"v2");
        assert_eq!(one.get(prev).await.unwrap().unwrap().value, b"v1");
    });
}

#[test]
fn a_lock_is_exclusive_between_two_clients() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    rt().block_on(async {
        let a = Etcd::connect(&server.settings()).await.unwrap();
        let b = Etcd::connect(&server.settings()).await.unwrap();
        let la = a.grant(Duration::from_secs(10)).await.unwrap();
        let lb = b.grant(Duration::from_secs(10)).await.unwrap();
        let held = a
            .lock("/t/v1/lock/lineage/web", &la, Duration::from_secs(3))
            .await
            .unwrap();
        let e = b
            .lock("/t/v1/lock/lineage/web", &lb, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, EtcdError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("/t/v1/lock/lineage/web"), "{e}");
        // Another lineage's lock is independent.
        b.lock("/t/v1/lock/lineage/api", &lb, Duration::from_secs(3))
            .await
            .unwrap();
        a.unlock(&held).await.unwrap();
        b.lock("/t/v1/lock/lineage/web", &lb, Duration::from_secs(3))
            .await
            .unwrap();
        assert!(!la.is_lost() && !lb.is_lost());
    });
}

#[test]
fn a_lock_is_released_when_its_holders_lease_expires() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    rt().block_on(async {
        let b = Etcd::connect(&server.settings()).await.unwrap();
        let lb = b.grant(Duration::from_secs(10)).await.unwrap();
        {
            let a = Etcd::connect(&server.settings()).await.unwrap();
            let la = a.grant(Duration::from_secs(2)).await.unwrap();
            a.lock("/t/v1/lock/lineage/web", &la, Duration::from_secs(3))
                .await
                .unwrap();
            // The holder keeps it while its lease is kept alive (beyond the TTL).
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(!la.is_lost());
            let e = b
                .lock("/t/v1/lock/lineage/web", &lb, Duration::from_millis(500))
                .await
                .unwrap_err();
            assert!(matches!(e, EtcdError::Timeout { .. }), "{e}");
            // The holder vanishes without unlocking: no more keep-alives.
            drop(la);
            drop(a);
        }
        // TTL 2 s; 15 s is a generous bound for etcd to expire the lease.
        b.lock("/t/v1/lock/lineage/web", &lb, Duration::from_secs(15))
            .await
            .unwrap();
    });
}

#[test]
fn lease_bound_keys_vanish_on_revoke_and_watch_sees_it() {
    let Some(server) = EtcdServer::start() else {
        return;
    };
    rt().block_on(async {
        let etcd = Etcd::connect(&server.settings()).await.unwrap();
        let mut watch = etcd.watch_prefix("/t/v1/node/", 0).await.unwrap();
        let lease = etcd.grant(Duration::from_secs(10)).await.unwrap();
        etcd.put("/t/v1/node/n1", b"{}", Some(lease.id()))
            .await
            .unwrap();
        etcd.put("/t/v1/other", b"x", None).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("watch event within 5 s")
            .unwrap();
        assert!(
            matches!(&got[..], [Change::Put(kv)] if kv.key == "/t/v1/node/n1" && kv.lease == lease.id()),
            "{got:?}"
        );
        lease.revoke().await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .expect("watch event within 5 s")
            .unwrap();
        assert!(
            matches!(&got[..], [Change::Delete { key, .. }] if key == "/t/v1/node/n1"),
            "{got:?}"
        );
        assert_eq!(etcd.get("/t/v1/node/n1").await.unwrap(), None);
        assert!(etcd.get("/t/v1/other").await.unwrap().is_some());
    });
}

#[test]
fn an_unreachable_etcd_fails_within_the_timeouts() {
    // Nothing listens on this port.
    let port = free_port();
    let err = rt().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            Etcd::connect(&settings(&format!("http://127.0.0.1:{port}"))),
        )
        .await
        .expect("connect gives up within its own bounds (3 s + 3 s), 30 s margin")
        .unwrap_err()
    });
    let msg = err.to_string();
    assert!(matches!(err, EtcdError::Connect { .. }), "{msg}");
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
}

#[test]
fn a_missing_tls_file_is_named() {
    let mut s = settings("https://127.0.0.1:1");
    s.ca_file = Some(PathBuf::from("/nonexistent/etcd-ca.pem"));
    let err = rt().block_on(Etcd::connect(&s)).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/etcd-ca.pem") && msg.contains("ca_file"),
        "{msg}"
    );
}
