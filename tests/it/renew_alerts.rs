//! `certkeep renew` run by a timer sends the alerts for its own failures, and
//! a later success resolves them (real Pebble, nginx and HTTP receiver).

use crate::common;
use crate::common::http_receiver;

use common::{assert_exit, text, Bed, PebbleOptions};
use http_receiver::Receiver;

#[test]
fn failed_renewal_fires_once_and_resolves_after_success() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(Receiver::start(vec![]));
    let elsewhere = bed.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let alert = format!(
        "\n[alert]\nresolve_after_checks = 1\n\n[[alert.channel]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n",
        receiver.url("/hook")
    );
    let cert = |webroot: &std::path::Path| {
        format!(
            "\n[[certificate]]\nname = \"shop\"\ndomains = [\"shop.test\"]\nwebroot = \"{}\"\nconfirm = false\n",
            webroot.display()
        )
    };
    // The webroot nginx does not serve: the self-check fails, nothing is issued.
    bed.write_config(&format!("{alert}{}", cert(&elsewhere)));
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 1);
    let firing: Vec<serde_json::Value> = rt.block_on(async {
        for _ in 0..50 {
            if !receiver.requests().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        receiver.requests().iter().map(|r| r.json()).collect()
    });
    assert_eq!(firing.len(), 1, "one message: {firing:?}\n{}", text(&out));
    assert_eq!(firing[0]["status"], "firing");
    let a = &firing[0]["alerts"][0];
    assert_eq!(a["labels"]["key"], "renew:shop:renewal");
    assert_eq!(a["labels"]["severity"], "critical");
    assert!(a.to_string().contains("self-check failed"), "{a}");

    // The same failure again: no new message (repeats come after 24 h).
    assert_exit(&bed.certkeep(&["renew"]), 1);
    assert_eq!(receiver.requests().len(), 1);

    // Fixed: the renewal succeeds and the alert resolves, once.
    bed.write_config(&format!("{alert}{}", cert(&bed.webroot)));
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    let all: Vec<serde_json::Value> = receiver.requests().iter().map(|r| r.json()).collect();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1]["status"], "resolved");
    assert_eq!(all[1]["alerts"][0]["labels"]["key"], "renew:shop:renewal");
}
