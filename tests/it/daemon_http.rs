//! The daemon's HTTP listener (`[daemon] metrics_listen`) against a live
//! `certkeep run`: GET and HEAD, 405 and 404, a client that sends nothing
//! (dropped after `http_header_timeout`, blocking nobody meanwhile), more
//! connections than `http_max_connections`, and SIGTERM with a connection
//! open. Plain TCP clients on loopback, so every byte on the wire is seen.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A daemon with no jobs due (schedules in 2099) and `extra` in `[daemon]`.
struct Daemon {
    child: common::KillOnDrop,
    port: u16,
    _dir: tempfile::TempDir,
}

fn start(extra: &str) -> Daemon {
    let dir = common::open_tempdir();
    let port = common::free_port();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}metrics_listen = \"127.0.0.1:{port}\"\n{extra}",
            common::daemon::idle_head(&dir.path().join("store"))
        ),
    )
    .unwrap();
    let child = common::daemon::start(&config, port);
    Daemon {
        child,
        port,
        _dir: dir,
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A bound on a hang, far above every timeout configured below.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Sends `method path` (Connection: close) and reads to the end: the status
/// line and headers (lowercase names), and the body bytes.
fn exchange(port: u16, method: &str, path: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut s = connect(port);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(&all)));
    let head = String::from_utf8(all[..end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, all[end + 4..].to_vec())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// True when the server closed `s` (EOF or reset) before its read timeout.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn get_and_head_serve_the_same_headers_other_methods_get_405() {
    let d = start("");
    for (path, ctype) in [
        (
            "/metrics",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        ("/", "text/html; charset=utf-8"),
        ("/status.json", "application/json"),
    ] {
        let get = exchange(d.port, "GET", path);
        let head = exchange(d.port, "HEAD", path);
        let get_length = get.2.len().to_string();
        for (method, (status, h, _)) in [("GET", &get), ("HEAD", &head)] {
            assert_eq!(status, "HTTP/1.1 200 OK", "{method} {path}");
            assert_eq!(header(h, "content-type"), Some(ctype), "{method} {path}");
            assert_eq!(
                header(h, "content-length"),
                Some(get_length.as_str()),
                "{method} {path}: the length a GET gets"
            );
        }
        assert!(!get.2.is_empty(), "GET {path}");
        assert!(head.2.is_empty(), "HEAD {path} sent a body: {:?}", head.2);
    }
    let (_, _, metrics) = exchange(d.port, "GET", "/metrics?x=1");
    assert!(metrics.ends_with(b"# EOF\n"), "{metrics:?}");
    for method in ["POST", "PUT", "DELETE"] {
        let (status, h, _) = exchange(d.port, method, "/metrics");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed", "{method}");
        assert_eq!(header(&h, "allow"), Some("GET, HEAD"), "{method}");
    }
    let (status, _, _) = exchange(d.port, "GET", "/metrics/extra");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = exchange(d.port, "GET", "/../etc/passwd");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

/// A client that connects and sends nothing, and one that stops halfway
/// through its headers, are both dropped once `http_header_timeout` (2 s)
/// is over; meanwhile other clients are answered.
#[test]
fn silent_clients_are_dropped_after_the_header_timeout_and_block_nobody() {
    let d = start("http_header_timeout = \"2s\"\nhttp_max_connections = 4\n");
    let started = Instant::now();
    let mut silent = connect(d.port);
    let mut partial = connect(d.port);
    partial
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let (status, _, body) = exchange(d.port, "GET", "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.ends_with(b"# EOF\n"));
    // Both are closed by the server: within the 30 s read timeout of the
    // test (the bound on a hang), not by it.
    assert!(closed_by_server(&mut silent), "the silent client was kept");
    assert!(
        closed_by_server(&mut partial),
        "the half-sent request was kept"
    );
    // Not before the timeout: the server waited the 2 s it was told to
    // (1.5 s allows for clock granularity).
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // And the listener still answers.
    let (status, _, _) = exchange(d.port, "GET", "/status.json");
    assert_eq!(status, "HTTP/1.1 200 OK");
}

/// A client that keeps its connection busy (a request every 300 ms on
/// keep-alive) is closed once `http_connection_timeout` (2 s) is over.
#[test]
fn a_connection_is_closed_at_its_time_limit() {
    let d = start("http_connection_timeout = \"2s\"\n");
    let mut s = connect(d.port);
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();
    let mut answered = 0;
    let closed = loop {
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        if s.write_all(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            break true;
        }
        let mut buf = [0u8; 65536];
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => answered += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => break true,
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(closed, "the connection outlived 30 s");
    assert!(answered >= 2, "answered {answered} requests before closing");
}

/// With `http_max_connections = 2` held by two silent clients, a scrape
/// waits (it is not answered while they stay); once they go it is answered.
/// Then SIGTERM with a connection open: the daemon exits 0 and closes it.
#[test]
fn connections_over_the_bound_wait_and_are_served_once_others_go() {
    let mut d = start("http_max_connections = 2\nhttp_header_timeout = \"60s\"\n");
    let hold: Vec<TcpStream> = (0..2).map(|_| connect(d.port)).collect();
    // Let the daemon take both into its two slots.
    std::thread::sleep(Duration::from_millis(300));
    let port = d.port;
    let (tx, rx) = std::sync::mpsc::channel();
    let scrape = std::thread::spawn(move || {
        let r = exchange(port, "GET", "/metrics");
        let _ = tx.send(());
        r
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "answered while both slots were held: the bound is not applied"
    );
    drop(hold);
    let (status, _, body) = scrape.join().unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.ends_with(b"# EOF\n"));

    let mut open = connect(d.port);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the pid of our own child, which is not reaped yet.
    assert_eq!(unsafe { libc::kill(d.child.id() as i32, libc::SIGTERM) }, 0);
    assert!(closed_by_server(&mut open), "still open after SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
