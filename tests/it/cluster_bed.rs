//! The cluster-mode test bed itself (a 3-member etcd on loopback, plain and
//! with client-certificate TLS and authentication; three nginx nodes behind
//! a round-robin balancer) and the problem cluster mode solves: node-local
//! issuance through the balancer fails HTTP-01 validation.
//!
//! The etcd tests use Debian's etcdctl as the client, so they do not depend
//! on certkeep's own etcd code.

use crate::common;

use std::time::Duration;

use common::balanced::{served_serial, BalancedBed};
use common::etcd::{count_processes, write_cluster_key, Etcd};
use common::tlsgen::TestCa;
use common::{text, PebbleOptions};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether some member logged a rejected client connection for `reason`.
fn rejected(etcd: &Etcd, reason: &str) -> bool {
    etcd.members.iter().any(|m| {
        std::fs::read_to_string(&m.log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("rejected connection") && l.contains(reason))
    })
}

/// Three members become healthy; a write on one is read on another; with one
/// member stopped the cluster keeps quorum; with two stopped a write times
/// out; restarting them restores quorum with every earlier write intact; and
/// dropping the harness leaves no etcd process.
#[test]
fn etcd_cluster_replicates_keeps_quorum_with_one_down_loses_it_with_two() {
    require!("etcd", "etcdctl");
    let mut etcd = Etcd::start().expect("etcd installed");
    let token = etcd.token.clone();
    assert_eq!(etcd.processes(), 3, "one process per member");
    for i in 0..3 {
        assert!(etcd.healthy(i), "member {i} healthy");
    }
    // `member list` from the third member names all three, all started.
    let list = etcd.ctl(2).ok(&["member", "list"]);
    for (i, m) in etcd.members.iter().enumerate() {
        let line = list
            .lines()
            .find(|l| l.contains(&format!(", {}, ", m.name)))
            .unwrap_or_else(|| panic!("member {i} missing from member list:\n{list}"));
        assert!(line.contains("started"), "{line}");
        assert!(line.contains(&m.client_url), "{line}");
        assert!(line.contains(&m.peer_url), "{line}");
    }

    // A write on member 0 is read (linearizably) on member 2.
    etcd.ctl(0).put("/bed/k1", "v1");
    assert_eq!(etcd.ctl(2).get("/bed/k1").as_deref(), Some("v1"));
    assert_eq!(etcd.ctl(1).get("/bed/absent"), None);

    // Every member keeps its own data dir (WAL and snapshots).
    for m in &etcd.members {
        assert!(
            m.data_dir.join("member/wal").is_dir(),
            "{}",
            m.data_dir.display()
        );
    }

    // One member down: 2 of 3 is a quorum.
    etcd.stop_member(1);
    assert!(!etcd.is_running(1));
    assert_eq!(etcd.processes(), 2);
    assert!(!etcd.healthy(1), "a stopped member answers nothing");
    etcd.ctl(0).put("/bed/k2", "v2");
    assert_eq!(etcd.ctl(2).get("/bed/k2").as_deref(), Some("v2"));

    // Two members down: no quorum, a write cannot commit and times out,
    // on the client ("context deadline exceeded") or, when the server gives
    // up first, on the server ("etcdserver: request timed out").
    etcd.stop_member(2);
    let mut c = etcd.ctl(0);
    c.command_timeout = Duration::from_secs(1);
    let out = c.run(&["put", "/bed/k3", "v3"]);
    assert!(
        !out.status.success(),
        "write without quorum: {}",
        text(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("context deadline exceeded") || err.contains("request timed out"),
        "{}",
        text(&out)
    );
    assert!(!etcd.healthy(0), "no linearizable read without quorum");

    // Both return: quorum is back, the writes before the outage are there,
    // the one that timed out was never committed, new writes work.
    etcd.start_member(1);
    etcd.start_member(2);
    etcd.wait_all_healthy();
    assert_eq!(etcd.processes(), 3);
    assert_eq!(etcd.ctl(1).get("/bed/k1").as_deref(), Some("v1"));
    assert_eq!(etcd.ctl(2).get("/bed/k2").as_deref(), Some("v2"));
    etcd.ctl(2).put("/bed/k4", "v4");
    assert_eq!(etcd.ctl(0).get("/bed/k4").as_deref(), Some("v4"));
    // A proposal that timed out on the client may still commit once a quorum
    // returns (etcd keeps it in the leader's log); either outcome is valid,
    // but the value is never anything else.
    let k3 = etcd.ctl(1).get("/bed/k3");
    assert!(k3.is_none() || k3.as_deref() == Some("v3"), "{k3:?}");

    drop(etcd);
    assert_eq!(count_processes(&token), 0, "no etcd left after drop");
}

/// A test that panics while its cluster runs leaves no etcd process behind.
#[test]
fn etcd_harness_kills_every_member_when_the_test_panics() {
    require!("etcd", "etcdctl");
    let token = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let etcd = Etcd::start().expect("etcd installed");
        *token.lock().unwrap() = etcd.token.clone();
        assert_eq!(etcd.processes(), 3);
        panic!("a failing cluster test");
    });
    assert!(result.is_err(), "the closure panicked");
    let token = token.into_inner().unwrap();
    assert!(!token.is_empty(), "the cluster started before the panic");
    assert_eq!(count_processes(&token), 0, "members left after a panic");
}

/// The secure variant: the client port requires a certificate from the
/// cluster's CA, and authentication is on. The `certkeep` user (client
/// certificate + password from the password file) may read and write under
/// its prefix and nothing else; every request without the right certificate,
/// user or password is refused and writes nothing.
#[test]
fn etcd_secure_cluster_accepts_the_right_cert_and_user_and_refuses_the_rest() {
    require!("etcd", "etcdctl");
    let etcd = Etcd::start_secure().expect("etcd installed");
    let s = etcd.security.as_ref().expect("secure cluster");
    assert!(etcd
        .endpoints()
        .iter()
        .all(|e| e.starts_with("https://127.0.0.1:")));
    let password = std::fs::read_to_string(&s.password_file).expect("password file");
    let mode = std::os::unix::fs::MetadataExt::mode(
        &std::fs::metadata(&s.password_file).expect("password file"),
    );
    assert_eq!(mode & 0o077, 0, "password file is private");

    let root = etcd.ctl_all();
    let mut user = etcd.ctl_all();
    user.user = Some(format!("{}:{password}", s.user));
    let key = format!("{}bed/k", s.prefix);

    // The right certificate and user: read and write under the prefix.
    user.put(&key, "v1");
    assert_eq!(user.get(&key).as_deref(), Some("v1"));
    assert_eq!(root.get(&key).as_deref(), Some("v1"));

    // The same user outside its prefix: refused.
    let out = user.run(&["put", "/elsewhere/k", "x"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("permission denied"), "{}", text(&out));
    assert_eq!(root.get("/elsewhere/k"), None);

    // A wrong password: refused.
    let mut wrong = user.clone();
    wrong.user = Some(format!("{}:not-the-password", s.user));
    let out = wrong.run(&["put", &key, "wrong-password"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("authentication failed"),
        "{}",
        text(&out)
    );

    // The right certificate but no user (its CN is no etcd user): refused.
    let mut anonymous = user.clone();
    anonymous.user = None;
    let out = anonymous.run(&["put", &key, "anonymous"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("permission denied"), "{}", text(&out));

    // No client certificate: the TLS handshake is refused.
    let mut no_cert = user.clone();
    no_cert.cert = None;
    no_cert.key = None;
    no_cert.dial_timeout = Duration::from_secs(1);
    no_cert.command_timeout = Duration::from_secs(2);
    let out = no_cert.run(&["put", &key, "no-cert"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        rejected(&etcd, "tls: client didn't provide a certificate"),
        "no member logged the refused handshake"
    );

    // A client certificate from another CA: refused too.
    let foreign_dir = etcd.dir.path().join("foreign");
    std::fs::create_dir(&foreign_dir).expect("foreign CA dir");
    let foreign = TestCa::new(&foreign_dir);
    let (fcert, fkey) = foreign.write_named_leaf(
        &foreign_dir,
        "foreign",
        s.user.as_str(),
        &[],
        Some(rcgen::ExtendedKeyUsagePurpose::ClientAuth),
    );
    let mut foreign_cert = no_cert.clone();
    foreign_cert.cert = Some(fcert);
    foreign_cert.key = Some(fkey);
    let out = foreign_cert.run(&["put", &key, "foreign"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        rejected(&etcd, "certificate signed by unknown authority"),
        "no member logged the refused certificate"
    );

    // Plain HTTP to the TLS port: refused.
    let mut plain = no_cert.clone();
    plain.endpoints = etcd
        .endpoints()
        .iter()
        .map(|e| e.replacen("https://", "http://", 1))
        .collect();
    plain.cacert = None;
    let out = plain.run(&["put", &key, "plain"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        rejected(&etcd, "first record does not look like a TLS handshake"),
        "no member logged the refused plain-text request"
    );

    // None of the refused requests wrote anything.
    assert_eq!(root.get(&key).as_deref(), Some("v1"));
}

/// The balancer sends each request to the next node in turn: a file in one
/// node's webroot is found by one request in three.
#[test]
fn balancer_round_robins_over_three_webroots() {
    require!("pebble", "pebble-challtestsrv", "nginx");
    let bed = BalancedBed::start(PebbleOptions::default()).expect("servers installed");
    let dir = bed.nodes[1].webroot.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&dir).expect("challenge dir");
    std::fs::write(dir.join("tok-b"), "only on b").expect("token");
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!(
        "http://127.0.0.1:{}/.well-known/acme-challenge/tok-b",
        bed.front.http_port
    );
    let mut found = 0;
    for _ in 0..6 {
        let r = client
            .get(&url)
            .header("Host", "rr.test")
            .send()
            .expect("GET through the balancer");
        match r.status().as_u16() {
            200 => {
                found += 1;
                assert_eq!(r.text().expect("body"), "only on b");
            }
            404 => {}
            other => panic!("unexpected HTTP {other}"),
        }
    }
    assert_eq!(found, 2, "one request in three reaches node b");
    // nginx logs a request just after answering it.
    common::wait_for(
        "six lines in the front's log",
        Duration::from_secs(10),
        || bed.hits().len() >= 6,
    );
    let hits = bed.hits();
    assert_eq!(hits.len(), 6, "{hits:?}");
    assert!(hits
        .iter()
        .all(|h| bed.node_of_port(h.upstream_port).is_some()));
    for (i, n) in bed.nodes.iter().enumerate() {
        let mine: Vec<_> = hits
            .iter()
            .filter(|h| h.upstream_port == n.nginx.http_port)
            .collect();
        assert_eq!(mine.len(), 2, "node {i} gets two of six: {hits:?}");
        let want = if i == 1 { 200 } else { 404 };
        assert!(mine.iter().all(|h| h.status == want), "{hits:?}");
    }
}

/// The problem cluster mode solves. certkeep without cluster mode, configured
/// on node a only, writes each token into node a's webroot; Pebble's
/// validation authority fetches each token three times (as Let's Encrypt's
/// multi-perspective validation does) through the round-robin balancer, so
/// two of the three fetches land on nodes b and c and get a 404. Measured
/// here: 5 of 5 orders fail with the CA's validation error (the self-check,
/// against node a's own nginx, passes every time). The assertion is the
/// weaker "at least one of five fails validation, and every failure is a
/// validation failure", which holds whatever the interleaving.
#[test]
fn node_local_issuance_through_the_balancer_fails_validation() {
    require!("pebble", "pebble-challtestsrv", "nginx");
    let bed = BalancedBed::start(PebbleOptions::default()).expect("servers installed");
    let names: Vec<String> = (1..=5).map(|i| format!("lb{i}")).collect();
    let body: String = names
        .iter()
        .map(|n| bed.cert_block(0, n, &[&format!("{n}.balanced.test")], ""))
        .collect();
    bed.write_config(0, &body);

    let mut failed = Vec::new();
    for n in &names {
        let out = bed.certkeep(0, &["issue", n]);
        if out.status.success() {
            continue;
        }
        let err = stderr(&out);
        assert!(
            err.contains(&format!("the CA could not validate {n}.balanced.test")),
            "{n} failed, but not at the CA's validation: {}",
            text(&out)
        );
        assert!(err.contains("404"), "{}", text(&out));
        failed.push(n.clone());
    }
    eprintln!(
        "node-local issuance through the balancer: {} of {} orders failed validation",
        failed.len(),
        names.len()
    );
    assert!(!failed.is_empty(), "every order passed validation");

    // The CA's fetches really were spread over the three nodes, and only
    // node a ever had a token.
    let challenge_hits: Vec<_> = bed
        .hits()
        .into_iter()
        .filter(|h| h.uri.starts_with("/.well-known/acme-challenge/"))
        .collect();
    for (i, n) in bed.nodes.iter().enumerate() {
        let mine: Vec<_> = challenge_hits
            .iter()
            .filter(|h| h.upstream_port == n.nginx.http_port)
            .collect();
        assert!(
            !mine.is_empty(),
            "node {i} got no fetch: {challenge_hits:?}"
        );
        if i != 0 {
            assert!(mine.iter().all(|h| h.status == 404), "{challenge_hits:?}");
        }
    }
    // certkeep ran on node a only: nodes b and c hold only what the bed made.
    for n in &bed.nodes[1..] {
        let mut entries: Vec<String> = std::fs::read_dir(&n.dir)
            .expect("node dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        assert_eq!(entries, ["nginx", "webroot"], "node {}", n.name);
        assert!(!n.store.exists());
    }
}

/// The control for the test above: the same bed and the same node-local
/// certkeep, but nodes b and c serve node a's challenge directory (a
/// symlink, as a shared NFS webroot would): every fetch through the balancer
/// finds the token, and issuance succeeds. So the failures above come from
/// tokens missing on the other nodes, not from the bed.
#[test]
fn node_local_issuance_through_the_balancer_passes_with_a_shared_challenge_dir() {
    require!("pebble", "pebble-challtestsrv", "nginx", "openssl");
    let bed = BalancedBed::start(PebbleOptions::default()).expect("servers installed");
    let shared = bed.nodes[0].webroot.join(".well-known/acme-challenge");
    std::fs::create_dir_all(&shared).expect("challenge dir");
    for d in [shared.parent().expect("parent"), shared.as_path()] {
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
    }
    for n in &bed.nodes[1..] {
        let wk = n.webroot.join(".well-known");
        std::fs::create_dir_all(&wk).expect("well-known");
        std::os::unix::fs::symlink(&shared, wk.join("acme-challenge")).expect("symlink");
    }
    bed.write_config(
        0,
        &bed.cert_block(0, "shared", &["shared.balanced.test"], "confirm = false"),
    );
    let out = bed.certkeep(0, &["issue", "shared"]);
    common::assert_exit(&out, 0);

    // Pebble fetched the token through every node.
    let challenge_hits: Vec<_> = bed
        .hits()
        .into_iter()
        .filter(|h| h.uri.starts_with("/.well-known/acme-challenge/"))
        .collect();
    for n in &bed.nodes {
        assert!(
            challenge_hits
                .iter()
                .any(|h| h.upstream_port == n.nginx.http_port && h.status == 200),
            "node {} served no token: {challenge_hits:?}",
            n.name
        );
    }

    // Node a serves the new certificate; openssl reads the same serial as
    // certkeep lists.
    let out = bed.certkeep(0, &["certificates", "--json"]);
    common::assert_exit(&out, 0);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("JSON");
    let serial = listed[0]["serial"].as_str().expect("serial").to_string();
    let port = bed.serve(0, "shared", "shared.balanced.test");
    let served = served_serial(port, "shared.balanced.test").expect("served");
    assert_eq!(served, serial.trim_start_matches('0'));
    assert!(served_serial(common::free_port(), "nothing.test").is_err());
}

/// The secure bed's files work for certkeep itself: the `[cluster]` section
/// the harness writes passes certkeep's configuration checks, and certkeep's
/// etcd client (rustls) connects with them over client-certificate TLS as the
/// `certkeep` user, writes under the user's prefix (read back with etcdctl,
/// an independent client) and is refused outside it.
#[test]
fn certkeep_reads_the_secure_bed_config_and_its_etcd_client_connects() {
    require!("etcd", "etcdctl");
    let etcd = Etcd::start_secure().expect("etcd installed");
    let s = etcd.security.as_ref().expect("secure cluster");
    let key = etcd.dir.path().join("cluster.key");
    write_cluster_key(&key);
    assert_eq!(std::fs::read(&key).expect("key").len(), 32);
    let config = etcd.dir.path().join("certkeep.toml");
    std::fs::write(
        &config,
        format!(
            "store = {:?}\n{}\n[[certificate]]\nname = \"x\"\ndomains = [\"x.test\"]\nwebroot = \"/nonexistent\"\n",
            etcd.dir.path().join("store").display().to_string(),
            etcd.cluster_section("a", "/certkeep/bed", &key, "request_timeout = \"3s\"")
        ),
    )
    .expect("write config");
    let cfg = certkeep::config::Settings::load(&config).expect("certkeep accepts the section");
    let cluster = cfg.cluster.as_ref().expect("[cluster] parsed");
    assert_eq!(cluster.node_name().as_deref(), Ok("a"));
    let settings = certkeep::cluster::etcd::Settings::from_config(cluster);
    assert_eq!(settings.endpoints, etcd.endpoints());
    assert_eq!(
        settings.user.as_ref().map(|(u, _)| u.as_str()),
        Some(s.user.as_str())
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = certkeep::cluster::etcd::Etcd::connect(&settings)
            .await
            .expect("certkeep connects with the bed's TLS files and user");
        client
            .put("/certkeep/bed/v1/probe", b"from certkeep", None)
            .await
            .expect("write under the prefix");
        let outside = client.put("/elsewhere/probe", b"x", None).await;
        let err = outside.expect_err("a write outside the prefix was accepted");
        assert!(err.to_string().contains("permission denied"), "{err}");
    });
    assert_eq!(
        etcd.ctl(2).get("/certkeep/bed/v1/probe").as_deref(),
        Some("from certkeep")
    );
    assert_eq!(etcd.ctl(0).get("/elsewhere/probe"), None);
}
