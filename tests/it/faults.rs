//! Faults: a CA that answers 500, rate limits, drops connections or is down
//! (through a fault-injecting proxy in front of Pebble), and a disk that
//! cannot take the new version.

use crate::common;
use crate::common::http_receiver;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fault_proxy::{Fault, FaultProxy, Seen};
use common::{assert_exit, lineage, text, Bed, PebbleOptions};
use http_receiver::{Receiver, Reply};

fn bed() -> Option<Bed> {
    Bed::start(PebbleOptions {
        nonce_reject: 0,
        authz_reuse: 0,
        eab: None,
    })
}

/// The bed's config head, talking to the CA through `proxy`, with `budget`
/// as `[renewal] retry_budget`.
fn head(bed: &Bed, proxy: &FaultProxy, budget: &str) -> String {
    bed.base_config()
        .replace(&bed.pebble.directory, &proxy.directory)
        .replace(
            &bed.pebble.api_ca.display().to_string(),
            &proxy.ca_bundle.display().to_string(),
        )
        .replace(
            "retry_budget = \"60s\"",
            &format!("retry_budget = \"{budget}\""),
        )
}

fn write(bed: &Bed, head: &str, body: &str) {
    std::fs::write(&bed.config, format!("{head}{body}")).expect("write config");
}

/// Requests answered with `status`, each with the request that followed it.
fn followed_by(log: &[Seen], status: u16) -> Vec<(&Seen, &Seen)> {
    log.windows(2)
        .filter(|w| w[0].status == status)
        .map(|w| (&w[0], &w[1]))
        .collect()
}

fn show(log: &[Seen]) -> String {
    let t0 = log.first().map(|s| s.at).unwrap_or_else(Instant::now);
    log.iter()
        .map(|s| {
            format!(
                "{:>8.3}s {} {} -> {}",
                (s.at - t0).as_secs_f64(),
                s.method,
                s.path,
                s.status
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn ca_answering_500_is_retried_with_backoff() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    write(
        &bed,
        &head(&bed, &proxy, "60s"),
        &bed.cert_block("five", &["five.test"], "confirm = false"),
    );
    proxy.set(Fault::Status500(3));
    let out = bed.certkeep(&["issue", "five"]);
    let log = proxy.log();
    assert_exit(&out, 0);
    let after = followed_by(&log, 500);
    assert_eq!(after.len(), 3, "{}", show(&log));
    // Exponential backoff from 1 s, jittered down to at most half: at least
    // 0.5 s, 1 s and 2 s.
    let mut total = Duration::ZERO;
    for (i, (failed, next)) in after.iter().enumerate() {
        let gap = next.at - failed.at;
        let min = Duration::from_millis(500 << i);
        assert!(
            gap >= min,
            "retry {i} came after {gap:?} (< {min:?}):\n{}",
            show(&log)
        );
        total += gap;
    }
    assert!(total >= Duration::from_millis(3500), "{}", show(&log));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("retrying"),
        "{}",
        text(&out)
    );
}

#[test]
fn rate_limit_retry_after_is_honoured() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    write(
        &bed,
        &head(&bed, &proxy, "60s"),
        &bed.cert_block("slow", &["slow.test"], "confirm = false"),
    );
    // Pebble's newOrder is /order-plz.
    proxy.set_for(
        Fault::RateLimit {
            n: 1,
            retry_after: 2,
        },
        Some("/order-plz"),
    );
    let out = bed.certkeep(&["issue", "slow"]);
    let log = proxy.log();
    assert_exit(&out, 0);
    let after = followed_by(&log, 429);
    assert_eq!(after.len(), 1, "{}", show(&log));
    let gap = after[0].1.at - after[0].0.at;
    assert!(
        gap >= Duration::from_millis(1950),
        "the next request came {gap:?} after a 429 with Retry-After: 2:\n{}",
        show(&log)
    );
    // Retry-After: 2 is the wait (no back-off on top); the margin is for
    // the retry's own request to reach the proxy on a busy machine.
    let margin = Duration::from_millis(1500);
    assert!(
        gap < Duration::from_secs(2) + margin,
        "{gap:?}, over Retry-After 2 s + {margin:?}:\n{}",
        show(&log)
    );
}

#[test]
fn dropped_connections_are_retried() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    write(
        &bed,
        &head(&bed, &proxy, "60s"),
        &bed.cert_block("reset", &["reset.test"], "confirm = false"),
    );
    proxy.set(Fault::Reset(2));
    let out = bed.certkeep(&["issue", "reset"]);
    let log = proxy.log();
    assert_exit(&out, 0);
    assert_eq!(
        log.iter().filter(|s| s.status == 0).count(),
        2,
        "{}",
        show(&log)
    );
}

#[test]
fn unreachable_ca_fails_within_the_budget_and_keeps_serving() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    let head = head(&bed, &proxy, "5s");
    lineage::issue_and_serve(&bed, &["down"], &head, "confirm = true");
    let before = lineage::hash_tree(&bed.store.join("live"));
    let archive_before = lineage::hash_tree(&bed.store.join("archive"));
    let serial = lineage::live_serial(&bed.store, "down");
    assert_eq!(lineage::served_serial(&bed, "down").unwrap(), serial);

    proxy.set(Fault::Down);
    let t = Instant::now();
    let out = bed.certkeep(&["renew", "--force"]);
    let took = t.elapsed();
    assert_exit(&out, 1);
    // Every retry stays within the 5 s budget (docs/renewal.md); the margin
    // is for process start and the last refused connection on a busy
    // 2-core machine, not for any retry.
    let (budget, margin) = (Duration::from_secs(5), Duration::from_secs(3));
    assert!(
        took < budget + margin,
        "took {took:?}, over the {budget:?} budget + {margin:?}: {}",
        text(&out)
    );
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FAILED: down"), "{}", text(&out));
    assert!(stdout.contains(&proxy.directory), "{}", text(&out));
    assert_eq!(lineage::hash_tree(&bed.store.join("live")), before);
    assert_eq!(
        lineage::hash_tree(&bed.store.join("archive")),
        archive_before
    );
    assert_eq!(lineage::served_serial(&bed, "down").unwrap(), serial);
    eprintln!("CA down, retry_budget 5s: renew exited 1 after {took:?}");

    // Back up: the next run renews.
    proxy.set(Fault::Pass);
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    assert_ne!(lineage::live_serial(&bed.store, "down"), serial);
}

/// A tmpfs mounted on a path for one test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| Tmpfs(at.to_path_buf()))
            .or_else(|| {
                eprintln!(
                    "cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn skip_unless_ci(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why} (required under CI=true; run the tests as root)");
    }
    eprintln!("SKIP: {why}");
}

/// Fills the filesystem holding `dir` until writes fail.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).expect("filler");
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.sync_all();
    p
}

#[test]
fn full_disk_fails_clearly_and_keeps_the_old_lineage() {
    let Some(bed) = bed() else { return };
    // The whole store on a small tmpfs of its own.
    let Some(_fs) = Tmpfs::mount(&bed.store, "2m") else {
        skip_unless_ci("mounting a tmpfs needs root");
        return;
    };
    lineage::issue_and_serve(&bed, &["full"], &bed.base_config(), "confirm = true");
    let serial = lineage::live_serial(&bed.store, "full");
    let live = lineage::hash_tree(&bed.store.join("live"));
    let archive = lineage::hash_tree(&bed.store.join("archive"));
    let filler = fill(&bed.store);

    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FAILED: full"), "{}", text(&out));
    assert!(stdout.contains("No space left on device"), "{}", text(&out));
    assert!(
        stdout.contains("the live one is untouched"),
        "{}",
        text(&out)
    );
    assert_eq!(lineage::hash_tree(&bed.store.join("live")), live);
    assert_eq!(lineage::hash_tree(&bed.store.join("archive")), archive);
    lineage::check(&bed.store, "full").unwrap();
    assert!(lineage::temp_entries(&bed.store).is_empty());
    assert_eq!(lineage::served_serial(&bed, "full").unwrap(), serial);

    // Space again: the next run renews.
    std::fs::remove_file(filler).unwrap();
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    assert_ne!(lineage::live_serial(&bed.store, "full"), serial);
    lineage::check(&bed.store, "full").unwrap();
}

/// `chattr +i` on a directory; removed on drop.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn unwritable_archive_fails_clearly_and_keeps_the_old_lineage() {
    let Some(bed) = bed() else { return };
    lineage::issue_and_serve(&bed, &["ro"], &bed.base_config(), "confirm = true");
    let serial = lineage::live_serial(&bed.store, "ro");
    let live = lineage::hash_tree(&bed.store.join("live"));
    let archive = lineage::hash_tree(&bed.store.join("archive"));
    // Immutable even for root: no file can be created in archive/ro.
    let Some(guard) = Immutable::set(&bed.store.join("archive/ro")) else {
        skip_unless_ci("chattr +i is not supported here");
        return;
    };
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("FAILED: ro"), "{}", text(&out));
    assert!(
        stdout.contains(&format!("{}", bed.store.join("archive/ro").display())),
        "the error names the directory: {}",
        text(&out)
    );
    assert!(stdout.contains("Operation not permitted"), "{}", text(&out));
    assert_eq!(lineage::hash_tree(&bed.store.join("live")), live);
    assert_eq!(lineage::hash_tree(&bed.store.join("archive")), archive);
    lineage::check(&bed.store, "ro").unwrap();
    assert_eq!(lineage::served_serial(&bed, "ro").unwrap(), serial);
    drop(guard);
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    assert_ne!(lineage::live_serial(&bed.store, "ro"), serial);
}

/// Config for the alert tests: through `proxy`, a 1 s retry budget, the CA
/// "unreachable" alert after `ca_bound`, and a webhook channel to `hook`.
fn alert_config(bed: &Bed, proxy: &FaultProxy, hook: &Receiver, name: &str, ca_bound: &str) {
    let head = head(bed, proxy, "1s").replace(
        "[renewal]\n",
        &format!("[renewal]\nca_unreachable_after = \"{ca_bound}\"\n"),
    );
    let alert = format!(
        "\n[alert]\nresolve_after_checks = 1\nretry_initial = \"1s\"\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = {:?}\n",
        hook.url("/hook")
    );
    write(
        bed,
        &head,
        &format!(
            "{alert}{}",
            bed.cert_block(name, &[&format!("{name}.test")], "confirm = false")
        ),
    );
}

/// (status, alert keys) of every message the receiver got, in order.
fn messages(hook: &Receiver) -> Vec<(String, Vec<String>)> {
    hook.requests()
        .iter()
        .map(|r| {
            let v = r.json();
            let keys = v["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| x["labels"]["key"].as_str().unwrap_or("").to_string())
                        .collect()
                })
                .unwrap_or_default();
            (v["status"].as_str().unwrap_or("").to_string(), keys)
        })
        .collect()
}

#[test]
fn ca_down_past_the_bound_raises_an_alert_then_resolves() {
    let Some(bed) = bed() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hook = rt.block_on(Receiver::start(vec![]));
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    alert_config(&bed, &proxy, &hook, "cau", "3s");
    assert_exit(&bed.certkeep(&["issue", "cau"]), 0);

    proxy.set(Fault::Down);
    let down_at = Instant::now();
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let first = messages(&hook);
    assert!(
        first
            .iter()
            .all(|(_, keys)| !keys.iter().any(|k| k == "agent:ca:reachable")),
        "no CA alert before the bound: {first:?}\n{}",
        text(&out)
    );
    assert!(
        first
            .iter()
            .any(|(s, keys)| s == "firing" && keys.iter().any(|k| k == "renew:cau:renewal")),
        "{first:?}"
    );

    // Past the 3 s bound and still down: the CA alert fires, once.
    std::thread::sleep(
        (down_at + Duration::from_millis(3500)).saturating_duration_since(Instant::now()),
    );
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    let second = messages(&hook);
    let ca_firing = second
        .iter()
        .filter(|(s, keys)| s == "firing" && keys.iter().any(|k| k == "agent:ca:reachable"))
        .count();
    assert_eq!(ca_firing, 1, "{second:?}\n{}", text(&out));

    // Back: the renewal succeeds and both alerts resolve.
    proxy.set(Fault::Pass);
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    let third = messages(&hook);
    for key in ["agent:ca:reachable", "renew:cau:renewal"] {
        assert!(
            third
                .iter()
                .any(|(s, keys)| s == "resolved" && keys.iter().any(|k| k == key)),
            "{key} resolved: {third:?}"
        );
    }
}

#[test]
fn alerts_survive_a_receiver_outage() {
    let Some(bed) = bed() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The receiver fails its first two deliveries.
    let hook = rt.block_on(Receiver::start(vec![
        Reply::status(503),
        Reply::status(500),
    ]));
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    alert_config(&bed, &proxy, &hook, "rx", "1h");
    assert_exit(&bed.certkeep(&["issue", "rx"]), 0);
    let serial = lineage::live_serial(&bed.store, "rx");

    proxy.set(Fault::Down);
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 1);
    assert_eq!(hook.requests().len(), 1, "{}", text(&out));
    assert!(
        text(&out).contains("FAILED: rx"),
        "the renewal result is still reported: {}",
        text(&out)
    );
    // The next runs retry the queued message (after its backoff) until the
    // receiver takes it (the third request on is answered 200); nothing is
    // lost and nothing is delivered twice.
    let ids = |hook: &Receiver| -> Vec<Vec<String>> {
        hook.requests()
            .iter()
            .map(|r| {
                r.json()["alerts"]
                    .as_array()
                    .map(|a| a.iter().map(|x| x["id"].to_string()).collect())
                    .unwrap_or_default()
            })
            .collect()
    };
    let first = ids(&hook)[0][0].clone();
    let delivered = |hook: &Receiver| {
        ids(hook)
            .iter()
            .skip(2)
            .filter(|m| m.contains(&first))
            .count()
    };
    let mut runs = 0;
    while delivered(&hook) == 0 {
        runs += 1;
        assert!(runs <= 8, "never delivered: {:?}", ids(&hook));
        std::thread::sleep(Duration::from_millis(1100));
        assert_exit(&bed.certkeep(&["renew", "--force"]), 1);
    }
    let seen = ids(&hook);
    assert!(
        seen[1].contains(&first),
        "retried after the first failure: {seen:?}"
    );
    assert_eq!(delivered(&hook), 1, "delivered once: {seen:?}");
    assert_eq!(lineage::live_serial(&bed.store, "rx"), serial);
}
