//! `certkeep probe --alert` (what certkeep-probe.timer runs): a failing check
//! fires once, a fixed one resolves. Real nginx and HTTP receiver on loopback.

use crate::common;
use crate::common::http_receiver;

use common::tlsgen::TestCa;
use common::{assert_exit, text};
use http_receiver::Receiver;

#[test]
fn missing_hsts_fires_and_resolves() {
    if !common::have("nginx") {
        return;
    }
    let dir = common::open_tempdir();
    let webroot = dir.path().join("webroot");
    std::fs::create_dir_all(&webroot).unwrap();
    let nginx = common::Nginx::start(&dir.path().join("nginx"), &webroot);
    let ca = TestCa::new(dir.path());
    let (crt, key) = ca.write_leaf(dir.path(), "site", &["site.test"], (-1, 89), false);
    let port = common::free_port();
    let site = |extra: &str| {
        nginx.add_site(
            "site",
            &format!(
                "server {{\n  listen 127.0.0.1:{port} ssl;\n  server_name site.test;\n  ssl_certificate {};\n  ssl_certificate_key {};\n  ssl_protocols TLSv1.2 TLSv1.3;\n  {extra}\n  location / {{ return 200 \"ok\\n\"; }}\n}}\n",
                crt.display(),
                key.display()
            ),
        );
        nginx.reload();
    };
    site("");
    common::wait_for("the TLS site", std::time::Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });

    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start(vec![]));
    let config = dir.path().join("certkeep.toml");
    let write = || {
        std::fs::write(
            &config,
            format!(
                "store = \"{store}\"\n\n[probe]\nca_file = \"{ca}\"\n\n[probe.policy.default]\nhttp_port = 0\n\n[alert]\nresolve_after_checks = 1\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{url}\"\n\n[[endpoint]]\nurl = \"https://site.test:{port}\"\nconnect = \"127.0.0.1:{port}\"\n",
                store = dir.path().join("store").display(),
                ca = ca.path.display(),
                url = receiver.url("/hook"),
            ),
        )
        .unwrap()
    };
    write();
    let out = common::certkeep(&config, &["probe", "--alert"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "HSTS missing is critical by default: {}",
        text(&out)
    );
    let msgs: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}\n{}", text(&out));
    assert_eq!(msgs[0]["status"], "firing");
    let keys: Vec<String> = msgs[0]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["labels"]["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        vec![format!("probe:site.test:{port}:hsts")],
        "{msgs:?}"
    );

    // Same state again: nothing new.
    common::certkeep(&config, &["probe", "--alert"]);
    assert_eq!(receiver.requests().len(), 1);

    // Fixed: HSTS for a year; the alert resolves once.
    site("add_header Strict-Transport-Security \"max-age=31536000; includeSubDomains\" always;");
    // nginx reloads asynchronously: wait until a plain probe sees the header.
    common::wait_for(
        "nginx to serve HSTS",
        std::time::Duration::from_secs(10),
        || common::certkeep(&config, &["probe"]).status.code() == Some(0),
    );
    let out = common::certkeep(&config, &["probe", "--alert"]);
    assert_exit(&out, 0);
    let msgs: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[1]["status"], "resolved");
}
