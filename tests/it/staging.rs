//! `renew --dry-run` orders from `[acme] staging_directory` and never from
//! `directory`; a normal run never touches staging. The test bed's staging
//! CA is a logging pass-through proxy to the same Pebble (`Bed::staging`);
//! here production goes through a second one, so both sides are seen.

use crate::common;

use common::fault_proxy::{FaultProxy, Seen};
use common::{assert_exit, text, Bed, PebbleOptions};

/// Method and path of every request, for messages and checks.
fn requests(log: &[Seen]) -> Vec<String> {
    log.iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

/// Whether `log` holds a whole order: the directory, a new order and its
/// finalization (Pebble's paths: /dir, /order-plz, /finalize-order/...).
fn ordered(log: &[Seen]) -> bool {
    let r = requests(log);
    r.iter().any(|x| x == "GET /dir")
        && r.iter().any(|x| x == "POST /order-plz")
        && r.iter().any(|x| x.starts_with("POST /finalize-order/"))
}

#[test]
fn dry_run_talks_only_to_staging_and_renew_only_to_production() {
    let Some(bed) = Bed::start(PebbleOptions::default()) else {
        return;
    };
    assert_ne!(bed.staging.directory, bed.pebble.directory);
    let production = FaultProxy::start_as_pebble(&bed.pebble);
    let head = bed.base_config().replace(
        &format!("directory = \"{}\"", bed.pebble.directory),
        &format!("directory = \"{}\"", production.directory),
    );
    assert!(
        head.contains(&format!("\ndirectory = \"{}\"", production.directory))
            && head.contains(&format!(
                "staging_directory = \"{}\"",
                bed.staging.directory
            )),
        "{head}"
    );
    std::fs::write(
        &bed.config,
        format!(
            "{head}{}",
            bed.cert_block("stage", &["stage.test"], "confirm = false")
        ),
    )
    .unwrap();

    // A normal run issues from production only.
    let out = bed.certkeep(&["renew"]);
    assert_exit(&out, 0);
    assert!(
        bed.store.join("live/stage/cert.pem").exists(),
        "{}",
        text(&out)
    );
    assert!(
        ordered(&production.log()),
        "production saw no order: {:?}",
        requests(&production.log())
    );
    assert_eq!(
        requests(&bed.staging.log()),
        Vec::<String>::new(),
        "a normal renewal talked to staging"
    );

    // A dry run orders from staging only.
    let prod_before = production.log().len();
    let orders = bed.pebble.orders_created();
    let out = bed.certkeep(&["renew", "--dry-run"]);
    assert_exit(&out, 0);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("would renew: stage"),
        "{}",
        text(&out)
    );
    assert_eq!(bed.pebble.orders_created(), orders + 1, "{}", text(&out));
    assert!(
        ordered(&bed.staging.log()),
        "the dry run did not order from staging: {:?}",
        requests(&bed.staging.log())
    );
    assert_eq!(
        requests(&production.log()[prod_before..]),
        Vec::<String>::new(),
        "the dry run talked to production"
    );

    // And a forced normal run goes back to production, not staging.
    let staging_before = bed.staging.log().len();
    assert_exit(&bed.certkeep(&["renew", "--force"]), 0);
    assert!(ordered(&production.log()[prod_before..]));
    assert_eq!(
        requests(&bed.staging.log()[staging_before..]),
        Vec::<String>::new(),
        "a forced renewal talked to staging"
    );
}
