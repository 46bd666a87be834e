//! Misbehaving endpoints: each probe ends within its timeouts with a
//! classified error, never a hang or a panic.

use crate::common;

use std::time::{Duration, Instant};

use certkeep::probe::{probe_all, ErrorKind, ProbeOptions, Target, Timeouts, Verdict};
use common::hostile::{Behaviour, Hostile};

fn options() -> ProbeOptions {
    let mut o = ProbeOptions::new(&[]).expect("options");
    o.timeouts = Timeouts {
        connect: Duration::from_millis(500),
        handshake: Duration::from_millis(700),
        read: Duration::from_millis(700),
        total: Duration::from_secs(3),
    };
    o.http_port = Some(0);
    o
}

async fn probe(b: Behaviour) -> (certkeep::probe::ProbeReport, Duration) {
    let server = Hostile::start(b).await;
    let mut t = Target::parse(&format!("hostile.test:{}", server.port)).unwrap();
    t.connect = Some("127.0.0.1".into());
    let start = Instant::now();
    let mut r = probe_all(vec![t], &options()).await;
    let took = start.elapsed();
    drop(server);
    (r.remove(0), took)
}

async fn expect(b: Behaviour, kinds: &[ErrorKind], limit: Duration) {
    let (r, took) = probe(b).await;
    assert_eq!(r.verdict, Verdict::Error, "{b:?}: {r:#?}");
    let e = r.error.as_ref().expect("an error");
    assert!(
        kinds.contains(&e.kind),
        "{b:?}: got {:?}: {}",
        e.kind,
        e.message
    );
    assert!(took < limit, "{b:?} took {took:?}, limit {limit:?}");
    assert!(!e.message.is_empty());
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["verdict"], "error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_endpoint_times_out_in_the_handshake() {
    expect(
        Behaviour::Silent,
        &[ErrorKind::HandshakeTimeout],
        Duration::from_millis(1500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickling_endpoint_times_out() {
    expect(
        Behaviour::Trickle,
        &[ErrorKind::HandshakeTimeout, ErrorKind::TotalTimeout],
        Duration::from_millis(3500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_classified() {
    expect(
        Behaviour::Garbage,
        &[ErrorKind::Garbage],
        Duration::from_millis(1500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_is_classified() {
    expect(
        Behaviour::Reset,
        &[ErrorKind::Closed],
        Duration::from_millis(1500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_is_classified() {
    expect(
        Behaviour::Alert,
        &[ErrorKind::Alert],
        Duration::from_millis(1500),
    )
    .await;
}

/// A ~200 KB chain is refused (rustls' 64 KiB handshake message limit)
/// within the limits. This measures no memory; the daemon's peak RSS over
/// rounds of such endpoints is measured by
/// `claims::daemon_memory_stays_bounded_over_probe_rounds`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_chain_is_refused_as_too_large() {
    expect(
        Behaviour::HugeChain,
        &[ErrorKind::TooLarge],
        Duration::from_millis(3000),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_many_at_once() {
    // Nothing listens: refused. Mixed with silent servers, all within the limits.
    let port = common::free_port();
    let silent = Hostile::start(Behaviour::Silent).await;
    let mut targets = vec![Target::parse(&format!("127.0.0.1:{port}")).unwrap()];
    for _ in 0..20 {
        targets.push(Target::parse(&silent.addr()).unwrap());
    }
    let mut o = options();
    o.concurrency = 8;
    let start = Instant::now();
    let reports = probe_all(targets, &o).await;
    assert_eq!(reports.len(), 21);
    assert_eq!(reports[0].error.as_ref().unwrap().kind, ErrorKind::Refused);
    // Said once and as it is: refused, not "no TLS version accepted".
    assert_eq!(
        reports[0].error.as_ref().unwrap().message,
        format!("connection to 127.0.0.1:{port} refused: nothing listens there")
    );
    assert!(reports[1..]
        .iter()
        .all(|r| r.error.as_ref().unwrap().kind == ErrorKind::HandshakeTimeout));
    // 20 silent endpoints, 8 at a time, 0.7 s each: three rounds.
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn binary_exits_3_on_probe_errors_only() {
    let port = common::free_port();
    let out = common::certkeep(
        std::path::Path::new("/nonexistent/certkeep.toml"),
        &["probe", "--http-port", "0", &format!("127.0.0.1:{port}")],
    );
    common::assert_exit(&out, 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("error") && stdout.contains("refused"),
        "{stdout}"
    );
}
