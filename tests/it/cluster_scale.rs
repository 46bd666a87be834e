//! Cluster mode's cost in etcd: a node follows the lineages through its
//! watch (a new version costs no read of the lineage prefix) and writes a
//! deploy report only when it says something new (a restart rewrites none).

use crate::cluster::{cluster_bed_with, live_serial, record_from_archive, rt, EtcdServer};
use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use certkeep::cluster::etcd::{Etcd, Expect};
use common::{wait_for, KillOnDrop};

const CURRENT: &str = "/ck/test/v1/lineage/site/current";
const REPORT: &str = "/ck/test/v1/deploy/n1/site";

/// etcd's count of bytes it sent to clients (its own /metrics).
fn sent_bytes(etcd: &EtcdServer) -> u64 {
    let out = Command::new("curl")
        .args(["-sf", &format!("{}/metrics", etcd.endpoint)])
        .output()
        .expect("curl");
    assert!(out.status.success(), "cannot read etcd's /metrics");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("etcd_network_client_grpc_sent_bytes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .expect("etcd_network_client_grpc_sent_bytes_total in /metrics") as u64
}

fn get(etcd: &EtcdServer, key: &str) -> Option<(serde_json::Value, i64)> {
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        c.get(key)
            .await
            .unwrap()
            .map(|kv| (serde_json::from_slice(&kv.value).unwrap(), kv.mod_revision))
    })
}

fn daemon(config: &Path, log: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(config)
            .args(["run", "-v", "--log-format", "plain"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn stop(mut d: KillOnDrop) {
    // SIGTERM: the daemon revokes its lease and exits.
    let _ = Command::new("kill")
        .arg(d.0.id().to_string())
        .status()
        .unwrap();
    wait_for("the daemon to stop", Duration::from_secs(30), || {
        d.0.try_wait().unwrap().is_some()
    });
}

#[test]
fn a_new_version_costs_no_prefix_read_and_a_restart_rewrites_no_report() {
    let Some(etcd) = EtcdServer::start() else {
        return;
    };
    let Some((bed, key_file)) = cluster_bed_with(&etcd, "confirm = false") else {
        return;
    };
    common::assert_exit(&bed.certkeep(&["cluster", "init"]), 0);
    // A second local version, to publish as the cluster's version 2 later.
    common::assert_exit(&bed.certkeep(&["issue", "site"]), 0);
    let v2 = record_from_archive(&bed, &key_file, 2, 2, "site");
    // 1 MB of other data under the lineage prefix: a node that read the
    // whole prefix on each new version would make etcd send it again.
    let ballast = vec![b'x'; 1_000_000];
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        c.put("/ck/test/v1/lineage/zz-ballast/previous", &ballast, None)
            .await
            .unwrap();
    });

    let log = bed.dir.path().join("daemon.log");
    let d = daemon(&bed.config, &log);
    let daemon_log = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for("the catch-up sync", Duration::from_secs(60), || {
        daemon_log().contains("every lineage synced")
    });
    let (r, _) = get(&etcd, REPORT).expect("a report after the catch-up");
    assert_eq!(r["ok"], true, "{r}\n{}", daemon_log());
    assert_eq!(r["serving_version"], 1);

    // A new version: deployed from the watched value.
    let before = sent_bytes(&etcd);
    rt().block_on(async {
        let c = Etcd::connect(&etcd.settings()).await.unwrap();
        let rev = c.get(CURRENT).await.unwrap().unwrap().mod_revision;
        assert!(c
            .put_if(
                CURRENT,
                Expect::Revision(rev),
                &[(CURRENT, &serde_json::to_vec(&v2).unwrap())]
            )
            .await
            .unwrap());
    });
    wait_for("the version 2 deploy", Duration::from_secs(60), || {
        get(&etcd, REPORT).is_some_and(|(r, _)| r["serving_version"] == 2)
    });
    let sent = sent_bytes(&etcd) - before;
    // The watch event (one record, a few KB) and this test's own reads; a
    // read of the prefix would be over 1 MB.
    assert!(
        sent < 300_000,
        "etcd sent {sent} bytes for one new version: the node read the lineage prefix\n{}",
        daemon_log()
    );
    assert_eq!(live_serial(&bed), v2.serial);

    // A restart with nothing new: the node reads its reports and writes
    // none (the report's revision stays).
    let (r, rev) = get(&etcd, REPORT).unwrap();
    assert_eq!(r["ok"], true);
    stop(d);
    let log2 = bed.dir.path().join("daemon2.log");
    let _d = daemon(&bed.config, &log2);
    wait_for("the second catch-up", Duration::from_secs(60), || {
        std::fs::read_to_string(&log2)
            .unwrap_or_default()
            .contains("every lineage synced")
    });
    let (r2, rev2) = get(&etcd, REPORT).unwrap();
    assert_eq!(r2, r, "the report changed");
    assert_eq!(
        rev2,
        rev,
        "the report was written again though it says the same\n{}",
        std::fs::read_to_string(&log2).unwrap_or_default()
    );
}
