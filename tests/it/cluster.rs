//! Cluster mode against a real etcd on loopback: the client wrapper
//! (requests, compare-and-swap, locks, leases, watches).

use crate::common;

use std::os::unix::fs::PermissionsExt;
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

pub(crate) fn rt() -> tokio::runtime::Runtime {
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

#[test]
fn tls_with_client_certificate_and_authentication() {
    let Some(secure) = common::etcd::Etcd::start_secure() else {
        return;
    };
    let sec = secure.security.as_ref().expect("secure etcd has its files");
    let s = Settings {
        endpoints: secure.endpoints(),
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        ca_file: Some(sec.ca.clone()),
        identity: Some((sec.client_cert.clone(), sec.client_key.clone())),
        user: Some((sec.user.clone(), sec.password_file.clone())),
    };
    let key = format!("{}v1/meta", sec.prefix);
    rt().block_on(async {
        let etcd = Etcd::connect(&s).await.unwrap();
        etcd.put(&key, b"{}", None).await.unwrap();
        assert_eq!(etcd.get(&key).await.unwrap().unwrap().value, b"{}");
        // The user's role covers its prefix only.
        let e = etcd.put("/elsewhere", b"x", None).await.unwrap_err();
        assert!(matches!(e, EtcdError::Request { .. }), "{e}");
        assert!(e.to_string().contains("/elsewhere"), "{e}");
    });
    // A wrong password is refused at connect, naming the endpoints.
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let mut bad = s.clone();
    bad.user = Some((sec.user.clone(), wrong));
    let e = rt().block_on(Etcd::connect(&bad)).unwrap_err();
    assert!(matches!(e, EtcdError::Connect { .. }), "{e}");
    // Without the CA the server's certificate is not trusted.
    let mut untrusted = s.clone();
    untrusted.ca_file = None;
    assert!(rt().block_on(Etcd::connect(&untrusted)).is_err());
}

/// A bed with one issued lineage and a `[cluster]` section for `etcd`.
fn cluster_bed(etcd: &EtcdServer) -> Option<(common::Bed, PathBuf)> {
    cluster_bed_with(etcd, "")
}

pub(crate) fn cluster_bed_with(etcd: &EtcdServer, extra: &str) -> Option<(common::Bed, PathBuf)> {
    let bed = common::Bed::start(common::PebbleOptions::default())?;
    let key = bed.dir.path().join("cluster.key");
    std::fs::write(&key, [42u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    bed.write_config(&format!(
        "{}\n[cluster]\nendpoints = [\"{}\"]\nprefix = \"/ck/test\"\nnode = \"n1\"\nencryption_key_file = \"{}\"\n",
        bed.cert_block("site", &["site.test", "www.site.test"], extra),
        etcd.endpoint,
        key.display()
    ));
    common::assert_exit(&bed.certkeep(&["issue", "site"]), 0);
    Some((bed, key))
}

fn status_json(bed: &common::Bed, code: i32) -> serde_json::Value {
    let out = bed.certkeep(&["cluster", "status", "--json"]);
    common::assert_exit(&out, code);
    serde_json::from_slice(&out.stdout).expect("cluster status --json is JSON")
}

#[test]
fn init_uploads_sealed_lineages_once_and_status_names_failed_nodes() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed(&etcd) else {
        return;
    };
    let listing: serde_json::Value =
        serde_json::from_slice(&bed.certkeep(&["certificates", "--json"]).stdout).unwrap();
    let serial = listing[0]["serial"].as_str().unwrap().to_string();

    // Before init: no cluster.
    let out = bed.certkeep(&["cluster", "status"]);
    common::assert_exit(&out, 1);
    assert!(
        common::text(&out).contains("certkeep cluster init"),
        "{}",
        common::text(&out)
    );

    let out = bed.certkeep(&["cluster", "init"]);
    common::assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("uploaded lineage site"), "{stdout}");
    assert!(stdout.contains("uploaded the ACME account"), "{stdout}");

    // Raw values, read by etcdctl: the layout, and no private key in clear.
    let raw = etcd.raw_dump("/ck/test/");
    for k in [
        "/ck/test/v1/meta",
        "/ck/test/v1/lineage/site/current",
        "/ck/test/v1/account/",
    ] {
        assert!(raw.contains(k), "{k} missing in:\n{raw}");
    }
    assert!(
        !raw.contains("PRIVATE KEY"),
        "a PEM private key in etcd:\n{raw}"
    );
    assert!(
        !raw.contains("key_pkcs8"),
        "the account key in clear:\n{raw}"
    );
    assert!(raw.contains("ck1:"));

    // The sealed key opens, with the cluster key, to the local key file.
    let live = bed.store.join("live/site");
    rt().block_on(async {
        let client = Etcd::connect(&etcd.settings()).await.unwrap();
        let kv = client
            .get("/ck/test/v1/lineage/site/current")
            .await
            .unwrap()
            .unwrap();
        let rec: certkeep::cluster::model::VersionRecord =
            serde_json::from_slice(&kv.value).unwrap();
        assert_eq!(rec.version, 1);
        assert_eq!(rec.serial, serial);
        assert_eq!(rec.ordered_by, "n1");
        assert_eq!(
            rec.cert,
            std::fs::read_to_string(live.join("cert.pem")).unwrap()
        );
        let k = certkeep::cluster::seal::SealKey::load(&key_file).unwrap();
        assert_eq!(
            rec.open_key("site", &k).unwrap(),
            std::fs::read_to_string(live.join("privkey.pem")).unwrap()
        );
        assert!(rec.open_key("other", &k).is_err());
    });

    // A second init is refused and changes nothing; --force replaces.
    let out = bed.certkeep(&["cluster", "init"]);
    common::assert_exit(&out, 1);
    assert!(
        common::text(&out).contains("--force"),
        "{}",
        common::text(&out)
    );
    assert_eq!(
        etcd.raw_dump("/ck/test/").lines().count(),
        raw.lines().count()
    );
    let out = bed.certkeep(&["cluster", "init", "--force"]);
    common::assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 3 keys"));

    let s = status_json(&bed, 0);
    assert_eq!(s["prefix"], "/ck/test/v1/");
    assert_eq!(s["local_key_matches"], true);
    assert_eq!(s["nodes"], serde_json::json!([]));
    assert_eq!(s["lineages"][0]["name"], "site");
    assert_eq!(s["lineages"][0]["version"], 1);
    assert_eq!(s["lineages"][0]["serial"], serial.as_str());
    assert_eq!(
        s["lineages"][0]["domains"],
        serde_json::json!(["site.test", "www.site.test"])
    );
    assert_eq!(s["problems"], serde_json::json!([]));

    // Two live nodes report: n1 serves the version, n2 failed to deploy it.
    let now = "2026-01-01T00:00:00Z";
    rt().block_on(async {
        let client = Etcd::connect(&etcd.settings()).await.unwrap();
        let lease = client.grant(Duration::from_secs(30)).await.unwrap();
        for n in ["n1", "n2"] {
            let beat = format!(r#"{{"certkeep_version":"0.1.0","started":"{now}"}}"#);
            client
                .put(&format!("/ck/test/v1/node/{n}"), beat.as_bytes(), Some(lease.id()))
                .await
                .unwrap();
        }
        let ok = format!(r#"{{"serving_version":1,"serving_serial":"{serial}","attempted_version":1,"ok":true,"at":"{now}"}}"#);
        let failed = format!(r#"{{"serving_version":0,"serving_serial":"00","attempted_version":1,"ok":false,"error":"nginx -t failed","at":"{now}"}}"#);
        client
            .put("/ck/test/v1/deploy/n1/site", ok.as_bytes(), None)
            .await
            .unwrap();
        client
            .put("/ck/test/v1/deploy/n2/site", failed.as_bytes(), None)
            .await
            .unwrap();
        let s = status_json(&bed, 1);
        let nodes = &s["lineages"][0]["nodes"];
        assert_eq!(nodes[0]["node"], "n1");
        assert_eq!(nodes[0]["state"], "current");
        assert_eq!(nodes[1]["node"], "n2");
        assert_eq!(nodes[1]["state"], "failed");
        assert_eq!(nodes[1]["error"], "nginx -t failed");
        assert_eq!(s["nodes"][1]["live"], true);
        let problems = s["problems"].to_string();
        assert!(problems.contains("node n2 failed to deploy version 1: nginx -t failed"), "{problems}");
        assert!(!problems.contains("node n1"), "{problems}");
        let out = bed.certkeep(&["cluster", "status"]);
        common::assert_exit(&out, 1);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().any(|l| l.contains('!') && l.contains("n2") && l.contains("failed")),
            "{text}"
        );
        // The heartbeats go with the lease: n2 is then down, not failed.
        lease.revoke().await.unwrap();
        let s = status_json(&bed, 0);
        assert_eq!(s["lineages"][0]["nodes"][1]["state"], "down");
        assert_eq!(s["nodes"][1]["live"], false);
    });

    // A node with another key sees it in status.
    std::fs::write(&key_file, [7u8; 32]).unwrap();
    let s = status_json(&bed, 1);
    assert_eq!(s["local_key_matches"], false);
    assert!(s["problems"].to_string().contains("not the cluster's"));
}

#[test]
fn init_refuses_a_readable_key_file_and_writes_nothing() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed(&etcd) else {
        return;
    };
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = bed.certkeep(&["cluster", "init"]);
    common::assert_exit(&out, 2);
    assert!(
        common::text(&out).contains("chmod 600"),
        "{}",
        common::text(&out)
    );
    assert_eq!(etcd.raw_dump("/ck/"), "");
    // Without [cluster] the command says what is missing.
    std::fs::write(&bed.config, bed.base_config()).unwrap();
    let out = bed.certkeep(&["cluster", "status"]);
    common::assert_exit(&out, 2);
    assert!(common::text(&out).contains("no [cluster] section"));
}

/// A version record made from version `local` of the bed's archive, its key
/// sealed under `seal_as` (the lineage it claims to belong to).
pub(crate) fn record_from_archive(
    bed: &common::Bed,
    key_file: &std::path::Path,
    local: u32,
    version: u64,
    seal_as: &str,
) -> certkeep::cluster::model::VersionRecord {
    let dir = bed.store.join("archive/site");
    let read = |k: &str| std::fs::read_to_string(dir.join(format!("{k}{local}.pem"))).unwrap();
    let der = certkeep::cert::parse_pem_leaf(read("cert").as_bytes(), "").unwrap();
    let facts = certkeep::cert::facts(&der, "").unwrap();
    let key = certkeep::cluster::seal::SealKey::load(key_file).unwrap();
    certkeep::cluster::model::VersionRecord {
        version,
        serial: facts.serial,
        not_before: facts.not_before,
        not_after: facts.not_after,
        domains: facts.sans,
        cert: read("cert"),
        chain: read("chain"),
        sealed_key: key
            .seal(
                &certkeep::cluster::model::lineage_seal_name(seal_as),
                version,
                read("privkey").as_bytes(),
            )
            .unwrap(),
        profile: None,
        ordered_by: "elsewhere".into(),
        written_at: time::OffsetDateTime::now_utc(),
    }
}

pub(crate) fn live_serial(bed: &common::Bed) -> String {
    let listing: serde_json::Value =
        serde_json::from_slice(&bed.certkeep(&["certificates", "--json"]).stdout).unwrap();
    listing[0]["serial"].as_str().unwrap().to_string()
}

fn live_target(bed: &common::Bed) -> PathBuf {
    std::fs::read_link(bed.store.join("live/site/cert.pem")).unwrap()
}

fn report_of(etcd: &EtcdServer) -> Option<serde_json::Value> {
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        c.get("/ck/test/v1/deploy/n1/site")
            .await
            .unwrap()
            .map(|kv| serde_json::from_slice(&kv.value).unwrap())
    })
}

#[test]
fn the_daemon_syncs_the_shared_versions_and_reports_each_deploy() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed_with(&etcd, "confirm = false") else {
        return;
    };
    let shared_serial = live_serial(&bed);
    common::assert_exit(&bed.certkeep(&["cluster", "init"]), 0);
    // The node then serves something else than the cluster's version 1.
    common::assert_exit(&bed.certkeep(&["issue", "site"]), 0);
    let local_serial = live_serial(&bed);
    assert_ne!(local_serial, shared_serial);
    // `renew` refuses in cluster mode.
    let out = bed.certkeep(&["renew"]);
    common::assert_exit(&out, 2);
    assert!(
        common::text(&out).contains("cluster mode"),
        "{}",
        common::text(&out)
    );

    let log = bed.dir.path().join("daemon.log");
    let _daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["run", "-v", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // Catch-up at start: version 1 is written as a new local version and reported.
    wait_for(
        "the catch-up deploy report",
        Duration::from_secs(30),
        || report_of(&etcd).is_some_and(|r| r["attempted_version"] == 1),
    );
    let r = report_of(&etcd).unwrap();
    assert_eq!(r["ok"], true, "{r}\n{}", daemon_log());
    assert_eq!(r["serving_serial"], shared_serial.as_str());
    assert_eq!(live_serial(&bed), shared_serial);
    assert_eq!(
        live_target(&bed),
        PathBuf::from("../../archive/site/cert3.pem")
    );
    let s = status_json(&bed, 0);
    assert_eq!(s["nodes"][0]["name"], "n1");
    assert_eq!(s["nodes"][0]["live"], true);
    assert_eq!(s["lineages"][0]["nodes"][0]["state"], "current");

    // A version whose key was sealed for another lineage does not open: the
    // node installs nothing and reports the failure.
    let bad = record_from_archive(&bed, &key_file, 2, 2, "other");
    let good = record_from_archive(&bed, &key_file, 2, 2, "site");
    let current = "/ck/test/v1/lineage/site/current";
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        let rev = c.get(current).await.unwrap().unwrap().mod_revision;
        assert!(c
            .put_if(
                current,
                Expect::Revision(rev),
                &[(current, &serde_json::to_vec(&bad).unwrap())]
            )
            .await
            .unwrap());
    });
    wait_for("the failed deploy report", Duration::from_secs(30), || {
        report_of(&etcd).is_some_and(|r| r["attempted_version"] == 2)
    });
    let r = report_of(&etcd).unwrap();
    assert_eq!(r["ok"], false);
    assert!(
        r["error"].as_str().unwrap().contains("does not open"),
        "{r}"
    );
    assert_eq!(
        live_target(&bed),
        PathBuf::from("../../archive/site/cert3.pem")
    );
    assert!(!bed.store.join("archive/site/cert4.pem").exists());
    let s = status_json(&bed, 1);
    assert_eq!(s["lineages"][0]["nodes"][0]["state"], "failed");

    // A good version 2 (the same version number, rewritten) is deployed.
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        let rev = c.get(current).await.unwrap().unwrap().mod_revision;
        assert!(c
            .put_if(
                current,
                Expect::Revision(rev),
                &[(current, &serde_json::to_vec(&good).unwrap())]
            )
            .await
            .unwrap());
    });
    wait_for("the version 2 deploy", Duration::from_secs(30), || {
        report_of(&etcd).is_some_and(|r| r["ok"] == true && r["serving_version"] == 2)
    });
    assert_eq!(live_serial(&bed), local_serial);
    assert_eq!(
        live_target(&bed),
        PathBuf::from("../../archive/site/cert4.pem")
    );
    assert_eq!(status_json(&bed, 0)["problems"], serde_json::json!([]));
}

#[test]
fn a_daemon_with_another_key_does_not_start_and_changes_nothing() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed_with(&etcd, "confirm = false") else {
        return;
    };
    common::assert_exit(&bed.certkeep(&["cluster", "init"]), 0);
    std::fs::write(&key_file, [1u8; 32]).unwrap();
    let before = live_target(&bed);
    let out = Command::new(env!("CARGO_BIN_EXE_certkeep"))
        .arg("--config")
        .arg(&bed.config)
        .args(["run", "--log-format", "plain"])
        .output()
        .unwrap();
    common::assert_exit(&out, 2);
    assert!(
        common::text(&out).contains("not the cluster's"),
        "{}",
        common::text(&out)
    );
    assert_eq!(live_target(&bed), before);
    assert_eq!(report_of(&etcd), None);
    assert!(!etcd.raw_dump("/ck/test/v1/node/").contains("n1"));
}

/// Three daemons behind the round-robin balancer: one order for the
/// cluster, every node answers its challenge and deploys the version.
#[test]
fn three_nodes_behind_a_balancer_order_once_and_all_deploy() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some(bed) = common::balanced::BalancedBed::start(common::PebbleOptions::default()) else {
        return;
    };
    for (i, n) in bed.nodes.iter().enumerate() {
        let key = n.dir.join("cluster.key");
        std::fs::write(&key, [9u8; 32]).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        bed.write_config(
            i,
            &format!(
                "{}\n[cluster]\nendpoints = [\"{}\"]\nprefix = \"/ck/lb\"\nnode = \"{}\"\nencryption_key_file = \"{}\"\nlease_ttl = \"4s\"\nrequest_timeout = \"3s\"\n",
                bed.cert_block(i, "site", &["site.test"], "confirm = false"),
                etcd.endpoint,
                n.name,
                key.display()
            ),
        );
    }
    common::assert_exit(&bed.certkeep(0, &["cluster", "init"]), 0);
    let mut daemons = Vec::new();
    for (i, n) in bed.nodes.iter().enumerate() {
        daemons.push(KillOnDrop(
            Command::new(env!("CARGO_BIN_EXE_certkeep"))
                .arg("--config")
                .arg(&bed.nodes[i].config)
                .args(["run", "-v", "--log-format", "plain"])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(n.dir.join("daemon.log")).unwrap())
                .spawn()
                .unwrap(),
        ));
    }
    let logs = || {
        bed.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- node {}\n{}",
                    n.name,
                    std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default()
                )
            })
            .collect::<String>()
    };
    let report = |node: &str| -> Option<serde_json::Value> {
        rt().block_on(async {
            let c = Etcd::connect(&etcd.settings()).await.unwrap();
            c.get(&format!("/ck/lb/v1/deploy/{node}/site"))
                .await
                .unwrap()
                .map(|kv| serde_json::from_slice(&kv.value).unwrap())
        })
    };
    // Pebble validates within seconds; 90 s bounds a hang with a wide margin.
    let start = std::time::Instant::now();
    while !["a", "b", "c"]
        .iter()
        .all(|n| report(n).is_some_and(|r| r["ok"] == true))
    {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not every node deployed within 90 s\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let shared: certkeep::cluster::model::VersionRecord = rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        let kv = c
            .get("/ck/lb/v1/lineage/site/current")
            .await
            .unwrap()
            .unwrap();
        serde_json::from_slice(&kv.value).unwrap()
    });
    assert_eq!(shared.version, 1);
    assert_eq!(bed.pebble.orders_created(), 1, "{}", logs());
    for (i, n) in bed.nodes.iter().enumerate() {
        assert_eq!(
            report(&n.name).unwrap()["serving_serial"],
            shared.serial.as_str()
        );
        let out = bed.certkeep(i, &["certificates", "--json"]);
        let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(l[0]["serial"], shared.serial.as_str(), "node {}", n.name);
    }
    // The challenges are gone from etcd and from every webroot.
    wait_for(
        "challenge keys and files to go",
        Duration::from_secs(10),
        || {
            etcd.raw_dump("/ck/lb/v1/challenge/").is_empty()
                && bed.nodes.iter().all(|n| {
                    std::fs::read_dir(n.webroot.join(".well-known/acme-challenge"))
                        .map(|d| d.count() == 0)
                        .unwrap_or(true)
                })
        },
    );
    // The CA's fetches went through the balancer to more than one node, and
    // every challenge fetch got its answer.
    let hits: Vec<_> = bed
        .hits()
        .into_iter()
        .filter(|h| h.uri.contains("/.well-known/acme-challenge/"))
        .collect();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.status == 200), "{hits:?}");
    let served_by: std::collections::BTreeSet<u16> = hits.iter().map(|h| h.upstream_port).collect();
    assert!(served_by.len() >= 2, "{hits:?}");
    let s = status_json_at(&bed.nodes[0].config, 0);
    assert_eq!(s["nodes"].as_array().unwrap().len(), 3);
    drop(daemons);
}

fn status_json_at(config: &std::path::Path, code: i32) -> serde_json::Value {
    let out = common::certkeep(config, &["cluster", "status", "--json"]);
    common::assert_exit(&out, code);
    serde_json::from_slice(&out.stdout).expect("cluster status --json is JSON")
}

fn write_cluster_configs(bed: &common::balanced::BalancedBed, etcd: &EtcdServer, prefix: &str) {
    for (i, n) in bed.nodes.iter().enumerate() {
        let key = n.dir.join("cluster.key");
        std::fs::write(&key, [9u8; 32]).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        bed.write_config(
            i,
            &format!(
                "{}\n[cluster]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\nnode = \"{}\"\nencryption_key_file = \"{}\"\nlease_ttl = \"4s\"\nrequest_timeout = \"3s\"\nchallenge_timeout = \"60s\"\n",
                bed.cert_block(i, "site", &["site.test"], "confirm = false"),
                etcd.endpoint,
                n.name,
                key.display()
            ),
        );
    }
}

fn spawn_daemon(bed: &common::balanced::BalancedBed, i: usize) -> KillOnDrop {
    let n = &bed.nodes[i];
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&n.config)
            .args(["run", "-v", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(n.dir.join("daemon.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap(),
    )
}

/// SIGKILL the node holding the lineage's lock while its order waits for
/// the challenge answers, and restart it as systemd would: its old lease
/// expires, its lock and challenges go, one node orders again and writes
/// version 1 once, and every node deploys it.
#[test]
fn a_node_killed_mid_order_is_taken_over_after_its_lease_expires() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some(bed) = common::balanced::BalancedBed::start(common::PebbleOptions::default()) else {
        return;
    };
    let prefix = "/ck/kill";
    write_cluster_configs(&bed, &etcd, prefix);
    common::assert_exit(&bed.certkeep(0, &["cluster", "init"]), 0);
    let logs = || {
        bed.nodes
            .iter()
            .map(|n| {
                format!(
                    "--- node {}\n{}",
                    n.name,
                    std::fs::read_to_string(n.dir.join("daemon.log")).unwrap_or_default()
                )
            })
            .collect::<String>()
    };
    let runtime = rt();
    let client = runtime.block_on(Etcd::connect(&etcd.settings())).unwrap();
    // A live node "z" that never answers holds the first order in its wait.
    let z = runtime
        .block_on(client.grant(Duration::from_secs(30)))
        .unwrap();
    runtime
        .block_on(client.put(
            &format!("{prefix}/v1/node/z"),
            br#"{"certkeep_version":"0","started":"2026-01-01T00:00:00Z"}"#,
            Some(z.id()),
        ))
        .unwrap();
    let mut daemons: Vec<Option<KillOnDrop>> =
        (0..3).map(|i| Some(spawn_daemon(&bed, i))).collect();
    let mut holder = None;
    wait_for(
        "a node to publish a challenge",
        Duration::from_secs(30),
        || {
            let kvs = runtime
                .block_on(client.get_prefix(&format!("{prefix}/v1/challenge/")))
                .unwrap();
            holder = kvs.iter().find_map(|kv| {
                serde_json::from_slice::<certkeep::cluster::model::Challenge>(&kv.value)
                    .ok()
                    .map(|c| c.node)
            });
            holder.is_some()
        },
    );
    let holder = holder.unwrap();
    let hi = bed.nodes.iter().position(|n| n.name == holder).unwrap();
    assert_eq!(bed.pebble.orders_created(), 1);
    // SIGKILL: no unlock, no cleanup, no lease revoke.
    daemons[hi] = None;
    runtime.block_on(z.revoke()).unwrap();
    daemons[hi] = Some(spawn_daemon(&bed, hi));

    let report = |node: &str| -> Option<serde_json::Value> {
        runtime
            .block_on(client.get(&format!("{prefix}/v1/deploy/{node}/site")))
            .unwrap()
            .map(|kv| serde_json::from_slice(&kv.value).unwrap())
    };
    // Lease TTL 4 s, a retry after lease_ttl + request_timeout, then an
    // order at Pebble: 90 s bounds a hang with a wide margin.
    let start = std::time::Instant::now();
    while !["a", "b", "c"]
        .iter()
        .all(|n| report(n).is_some_and(|r| r["ok"] == true))
    {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "not every node deployed within 90 s\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let kv = runtime
        .block_on(client.get(&format!("{prefix}/v1/lineage/site/current")))
        .unwrap()
        .unwrap();
    let shared: certkeep::cluster::model::VersionRecord =
        serde_json::from_slice(&kv.value).unwrap();
    // Written once: version 1, no previous version.
    assert_eq!(shared.version, 1);
    assert!(runtime
        .block_on(client.get(&format!("{prefix}/v1/lineage/site/previous")))
        .unwrap()
        .is_none());
    // The killed node's order was abandoned; exactly one more completed.
    assert_eq!(bed.pebble.orders_created(), 2, "{}", logs());
    for (i, n) in bed.nodes.iter().enumerate() {
        assert_eq!(
            report(&n.name).unwrap()["serving_serial"],
            shared.serial.as_str()
        );
        let l: serde_json::Value =
            serde_json::from_slice(&bed.certkeep(i, &["certificates", "--json"]).stdout).unwrap();
        assert_eq!(l[0]["serial"], shared.serial.as_str(), "node {}", n.name);
    }
    drop(daemons);
}

/// etcd goes away under a running node: the node keeps its lineage as it
/// is and alerts once the outage passes `unreachable_alert_after`, once.
#[test]
fn an_etcd_outage_changes_nothing_local_and_alerts_after_the_bound() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed_with(&etcd, "confirm = false") else {
        return;
    };
    common::assert_exit(&bed.certkeep(&["cluster", "init"]), 0);
    let runtime = rt();
    let receiver = runtime.block_on(common::http_receiver::Receiver::start(vec![]));
    bed.write_config(&format!(
        "{}\n[alert]\nresolve_after_checks = 1\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n\n[cluster]\nendpoints = [\"{}\"]\nprefix = \"/ck/test\"\nnode = \"n1\"\nencryption_key_file = \"{}\"\nlease_ttl = \"4s\"\nrequest_timeout = \"1s\"\nconnect_timeout = \"1s\"\nunreachable_alert_after = \"3s\"\n",
        bed.cert_block("site", &["site.test", "www.site.test"], "confirm = false"),
        receiver.url("/hook"),
        etcd.endpoint,
        key_file.display()
    ));
    let log = bed.dir.path().join("daemon.log");
    let _daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["run", "-v", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for("the node's deploy report", Duration::from_secs(30), || {
        report_of(&etcd).is_some()
    });
    let before = live_target(&bed);
    let serial = live_serial(&bed);
    // etcd goes away (SIGKILL); its data dir goes with it.
    let endpoint = etcd.endpoint.clone();
    drop(etcd);
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    // Bound 3 s, retries back off up to 30 s: 60 s bounds a hang.
    let start = std::time::Instant::now();
    while receiver.requests().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no alert within 60 s\n{}",
            daemon_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let firing = receiver.requests()[0].json();
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(
        firing["alerts"][0]["labels"]["key"],
        "cluster:etcd:reachable"
    );
    assert!(
        firing.to_string().contains("etcd has been unreachable"),
        "{firing}"
    );
    assert!(firing.to_string().contains(&endpoint), "{firing}");
    // Nothing local changed.
    assert_eq!(live_target(&bed), before);
    assert_eq!(live_serial(&bed), serial);
    // Retries continue (1 s, 2 s, 4 s ...): none of them notifies again.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(receiver.requests().len(), 1, "one alert, not one per retry");
}

/// SIGHUP with a changed `[cluster]` section: the daemon refuses it, says
/// why and how to apply it, and keeps its cluster (its heartbeat stays under
/// the old prefix, nothing appears under the new one). A reload that leaves
/// `[cluster]` as it is goes through.
#[test]
fn sighup_with_a_changed_cluster_section_is_refused_and_the_old_one_kept() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed_with(&etcd, "confirm = false") else {
        return;
    };
    common::assert_exit(&bed.certkeep(&["cluster", "init"]), 0);
    let config = |prefix: &str, lease: &str| {
        format!(
            "{}\n[cluster]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\nnode = \"n1\"\nencryption_key_file = \"{}\"\nlease_ttl = \"{lease}\"\nrequest_timeout = \"1s\"\nconnect_timeout = \"1s\"\n",
            bed.cert_block("site", &["site.test", "www.site.test"], "confirm = false"),
            etcd.endpoint,
            key_file.display()
        )
    };
    bed.write_config(&config("/ck/test", "4s"));
    let log = bed.dir.path().join("daemon.log");
    let daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["run", "-v", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the node's deploy report", Duration::from_secs(30), || {
        report_of(&etcd).is_some()
    });
    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &daemon.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };

    bed.write_config(&config("/ck/other", "6s"));
    hup();
    wait_for("the refusal in the log", Duration::from_secs(20), || {
        daemon_log().contains("configuration NOT reloaded")
    });
    let text = daemon_log();
    let line = text
        .lines()
        .find(|l| l.contains("configuration NOT reloaded"))
        .unwrap();
    assert!(
        line.contains("[cluster] section changed (prefix, lease_ttl)"),
        "{line}"
    );
    assert!(line.contains("restart certkeep"), "{line}");
    assert!(!text.contains("configuration reloaded from"), "{text}");
    // Still the old cluster: a heartbeat under /ck/test, nothing under /ck/other.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        etcd.raw_dump("/ck/test/v1/node/")
            .contains("/ck/test/v1/node/n1"),
        "{}",
        daemon_log()
    );
    assert_eq!(etcd.raw_dump("/ck/other"), "");

    // The same [cluster] section (written again, lines moved): reloaded.
    bed.write_config(&format!("\n\n{}", config("/ck/test", "4s")));
    hup();
    wait_for("the reload in the log", Duration::from_secs(20), || {
        daemon_log().contains("configuration reloaded from")
    });
    drop(daemon);
}

/// ARI in cluster mode: the CA's renewal window for the shared version
/// (opened at once by revoking the certificate, as Pebble does) makes the
/// node order although the lifetime threshold is years away; the order
/// names the certificate it replaces (seen by the fault proxy between
/// certkeep and Pebble) and the window is shared in `ari/site`.
#[test]
fn the_cas_renewal_window_renews_a_shared_lineage_with_replaces() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some(bed) = common::Bed::start(common::PebbleOptions::default()) else {
        return;
    };
    let proxy = common::fault_proxy::FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    let key = bed.dir.path().join("cluster.key");
    std::fs::write(&key, [42u8; 32]).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let head = bed
        .base_config()
        .replace(&bed.pebble.directory, &proxy.directory)
        .replace(
            &bed.pebble.api_ca.display().to_string(),
            &proxy.ca_bundle.display().to_string(),
        );
    std::fs::write(
        &bed.config,
        format!(
            "{head}{}\n[cluster]\nendpoints = [\"{}\"]\nprefix = \"/ck/test\"\nnode = \"n1\"\nencryption_key_file = \"{}\"\nlease_ttl = \"4s\"\nrequest_timeout = \"2s\"\n",
            bed.cert_block("site", &["site.test", "www.site.test"], "confirm = false"),
            etcd.endpoint,
            key.display()
        ),
    )
    .unwrap();
    common::assert_exit(&bed.certkeep(&["issue", "site"]), 0);
    common::assert_exit(&bed.certkeep(&["revoke", "site", "--reason", "1"]), 0);
    common::assert_exit(&bed.certkeep(&["cluster", "init"]), 0);
    let v1 = current_of(&etcd).expect("version 1");
    assert_eq!(v1["version"], 1);
    let issued = proxy.orders().len();
    assert!(issued >= 1);

    let log = bed.dir.path().join("daemon.log");
    let daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(&bed.config)
            .args(["run", "-v", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let start = std::time::Instant::now();
    while current_of(&etcd).is_none_or(|v| v["version"] != 2) {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "version 2 not written within 90 s\n{}",
            daemon_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    drop(daemon);
    let v2 = current_of(&etcd).unwrap();
    assert_ne!(v2["serial"], v1["serial"]);
    let text = daemon_log();
    assert!(text.contains("renewal window (ARI)"), "{text}");
    let orders = proxy.orders();
    assert!(
        orders[issued..].iter().any(|o| o.replaces),
        "no order after the issue carried replaces: {orders:?}\n{text}"
    );
    // The window is shared: a JSON record for one of the two serials.
    let ari = etcd.raw_dump("/ck/test/v1/ari/site");
    let value = ari.lines().nth(1).expect("ari/site in etcd");
    let w: serde_json::Value = serde_json::from_str(value).unwrap();
    let serial = w["serial"].as_str().unwrap_or("");
    assert!(
        serial == v1["serial"].as_str().unwrap() || serial == v2["serial"].as_str().unwrap(),
        "{w}"
    );
    assert!(
        w["window_start"].is_string() && w["renew_at"].is_string(),
        "{w}"
    );
}

fn current_of(etcd: &EtcdServer) -> Option<serde_json::Value> {
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        c.get("/ck/test/v1/lineage/site/current")
            .await
            .unwrap()
            .map(|kv| serde_json::from_slice(&kv.value).unwrap())
    })
}
