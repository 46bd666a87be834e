//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) on a
//! loopback port, with its own config and storage in a temp dir, gossip off
//! (`--cluster.listen-address=`), routing every alert to one webhook
//! receiver (the test's [`super::http_receiver::Receiver`]) with short
//! group timers. Killed and reaped on drop.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::KillOnDrop;

/// The binary's name in Debian's package.
pub const BIN: &str = "prometheus-alertmanager";

/// How long Alertmanager may take to answer `/-/ready` (it starts in well
/// under a second on loopback; the margin absorbs a loaded test machine).
const READY_BOUND: Duration = Duration::from_secs(30);

pub struct Alertmanager {
    pub port: u16,
    child: KillOnDrop,
    // Dropped after the child: its files live here.
    dir: tempfile::TempDir,
}

impl Alertmanager {
    /// A route that groups by `group_by`, waits 1s before the first
    /// notification of a group and 1s between updates, and repeats only
    /// after an hour (so a second notification means a real change).
    pub fn config(webhook_url: &str, group_by: &[&str]) -> String {
        let group_by: Vec<String> = group_by.iter().map(|l| format!("'{l}'")).collect();
        format!(
            "route:\n  receiver: hook\n  group_by: [{}]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: '{webhook_url}'\n    send_resolved: true\n",
            group_by.join(", ")
        )
    }

    /// Starts Alertmanager on `port` with `config` (YAML) and waits until
    /// it is ready.
    pub async fn start(port: u16, config: &str) -> Alertmanager {
        let dir = tempfile::Builder::new()
            .prefix("certkeep-am-")
            .tempdir()
            .expect("tempdir");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write alertmanager.yml");
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager");
        let am = Alertmanager {
            port,
            child: KillOnDrop(child),
            dir,
        };
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            let ready = client
                .get(format!("{}/-/ready", am.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                return am;
            }
            if start.elapsed() > READY_BOUND {
                panic!(
                    "Alertmanager not ready on port {port} within {READY_BOUND:?}; log:\n{}",
                    am.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("alertmanager.log")
    }

    /// The alerts Alertmanager holds (`GET /api/v2/alerts`), active or not.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v2/alerts", self.url()))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("GET /api/v2/alerts")
            .json()
            .await
            .expect("alerts JSON");
        v.as_array().cloned().unwrap_or_default()
    }

    /// The process id, e.g. to check it is gone after drop.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
