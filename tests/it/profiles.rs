//! ACME profiles and ARI `replaces` refusals, against Pebble behind the
//! fault proxy.
//!
//! Pebble 2.6 offers no profiles, so the proxy adds `meta.profiles` (with
//! descriptions) to the directory and reads the `profile` field out of each
//! new-order's JWS payload. It cannot forward the order without the field:
//! the payload is signed with the account key, which only certkeep holds.
//! It forwards the request unchanged instead, and Pebble 2.6 (decoding the
//! order as Go does, ignoring fields it does not know) issues its default
//! certificate: every issuance below shows that. What certkeep asked for is
//! what the proxy recorded.

use crate::common;

use common::fault_proxy::{FaultProxy, NewOrderSeen, Refusal};
use common::{assert_exit, text, Bed, PebbleOptions};

fn bed() -> Option<Bed> {
    Bed::start(PebbleOptions {
        nonce_reject: 0,
        authz_reuse: 0,
        eab: None,
    })
}

/// The bed's config head talking to the CA through `proxy`, with `acme`
/// lines added to `[acme]`.
fn head(bed: &Bed, proxy: &FaultProxy, acme: &str) -> String {
    bed.base_config()
        .replace(&bed.pebble.directory, &proxy.directory)
        .replace(
            &bed.pebble.api_ca.display().to_string(),
            &proxy.ca_bundle.display().to_string(),
        )
        .replace(
            "order_timeout = \"60s\"\n",
            &format!("order_timeout = \"60s\"\n{acme}"),
        )
}

/// A `[[certificate]]` without the served-certificate confirmation (no
/// site for these names is configured in nginx).
fn block(bed: &Bed, name: &str, domains: &[&str], extra: &str) -> String {
    bed.cert_block(name, domains, &format!("confirm = false\n{extra}"))
}

const OFFERED: [(&str, &str); 3] = [
    ("classic", "The same profile you're accustomed to"),
    (
        "shortlived",
        "A short-lived certificate profile, valid for about 6 days",
    ),
    (
        "tlsserver",
        "https://letsencrypt.org/docs/profiles#tlsserver",
    ),
];

fn listing(bed: &Bed) -> Vec<serde_json::Value> {
    let out = bed.certkeep(&["certificates", "--json"]);
    assert_exit(&out, 0);
    serde_json::from_slice(&out.stdout).expect("certificates --json")
}

fn profile_of(list: &[serde_json::Value], name: &str) -> serde_json::Value {
    list.iter()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("{name} not listed: {list:?}"))["profile"]
        .clone()
}

fn last_order(proxy: &FaultProxy) -> NewOrderSeen {
    proxy
        .orders()
        .last()
        .cloned()
        .expect("a new order was sent")
}

#[test]
fn the_profile_sent_follows_the_config_and_what_the_ca_offers() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    proxy.advertise_profiles(&OFFERED);
    let body = [
        block(&bed, "pref", &["pref.test"], "profile = \"shortlived\""),
        block(
            &bed,
            "req",
            &["req.test"],
            "profile = \"tlsserver\"\nprofile_mode = \"required\"",
        ),
        block(&bed, "dflt", &["dflt.test"], ""),
        block(&bed, "unkpref", &["unkpref.test"], "profile = \"nosuch\""),
        block(
            &bed,
            "unkreq",
            &["unkreq.test"],
            "profile = \"nosuch\"\nprofile_mode = \"required\"",
        ),
    ]
    .concat();
    std::fs::write(&bed.config, format!("{}{body}", head(&bed, &proxy, ""))).unwrap();

    // The CA's profiles, with their descriptions; a required profile it
    // does not offer makes the command fail.
    let out = bed.certkeep(&["profiles"]);
    assert_exit(&out, 1);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (name, desc) in OFFERED {
        assert!(
            stdout
                .lines()
                .any(|l| l.trim_start().starts_with(name) && l.ends_with(desc)),
            "{name}: {}",
            text(&out)
        );
    }
    assert!(
        stdout.contains("unkreq: profile nosuch (required): NOT OFFERED: orders fail"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("pref: profile shortlived (preferred): offered"),
        "{}",
        text(&out)
    );

    let out = bed.certkeep(&["issue", "pref"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).profile.as_deref(), Some("shortlived"));
    assert_eq!(last_order(&proxy).identifiers, vec!["pref.test"]);

    let out = bed.certkeep(&["issue", "req"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).profile.as_deref(), Some("tlsserver"));

    let out = bed.certkeep(&["issue", "dflt"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).profile, None);
    assert_eq!(last_order(&proxy).identifiers, vec!["dflt.test"]);

    // Preferred but not offered: the CA's default, with a warning naming
    // what it offers.
    let out = bed.certkeep(&["issue", "unkpref"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).identifiers, vec!["unkpref.test"]);
    assert_eq!(last_order(&proxy).profile, None);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("unkpref: preferred profile \"nosuch\" is not offered by the CA")
            && String::from_utf8_lossy(&out.stderr)
                .contains("offers only: classic, shortlived, tlsserver"),
        "{}",
        text(&out)
    );

    // Required but not offered: no order at all, and the offers listed.
    let before = proxy.orders().len();
    let out = bed.certkeep(&["issue", "unkreq"]);
    assert_exit(&out, 1);
    assert_eq!(proxy.orders().len(), before, "{:?}", proxy.orders());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("profile \"nosuch\" is required for unkreq, but the CA")
            && String::from_utf8_lossy(&out.stderr)
                .contains("offers only: classic, shortlived, tlsserver"),
        "{}",
        text(&out)
    );

    // The store remembers what each lineage was ordered with.
    let list = listing(&bed);
    assert_eq!(profile_of(&list, "pref"), "shortlived");
    assert_eq!(profile_of(&list, "req"), "tlsserver");
    assert_eq!(profile_of(&list, "dflt"), serde_json::Value::Null);
    assert_eq!(profile_of(&list, "unkpref"), serde_json::Value::Null);
    let out = bed.certkeep(&["certificates"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("  profile:   shortlived"),
        "{}",
        text(&out)
    );

    // A renewal orders with the profile too, and records it for the new
    // version.
    let out = bed.certkeep(&["renew", "--force", "--cert", "req"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).profile.as_deref(), Some("tlsserver"));
    assert_eq!(last_order(&proxy).identifiers, vec!["req.test"]);
    let list = listing(&bed);
    assert_eq!(profile_of(&list, "req"), "tlsserver");
    assert_eq!(
        list.iter().find(|l| l["name"] == "req").unwrap()["version"],
        2
    );
}

#[test]
fn the_acme_profile_applies_to_certificates_without_their_own() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    proxy.advertise_profiles(&OFFERED);
    let body = [
        block(&bed, "inherits", &["inherits.test"], ""),
        block(&bed, "own", &["own.test"], "profile = \"tlsserver\""),
    ]
    .concat();
    std::fs::write(
        &bed.config,
        format!(
            "{}{body}",
            head(
                &bed,
                &proxy,
                "profile = \"shortlived\"\nprofile_mode = \"required\"\n"
            )
        ),
    )
    .unwrap();
    let out = bed.certkeep(&["issue", "inherits"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).profile.as_deref(), Some("shortlived"));
    let out = bed.certkeep(&["issue", "own"]);
    assert_exit(&out, 0);
    assert_eq!(last_order(&proxy).profile.as_deref(), Some("tlsserver"));

    // A CA without profiles: the required global profile stops the order.
    let plain = FaultProxy::start(&bed.dir.path().join("plain"), &bed.pebble);
    std::fs::write(
        &bed.config,
        format!(
            "{}{}",
            head(
                &bed,
                &plain,
                "profile = \"shortlived\"\nprofile_mode = \"required\"\n"
            ),
            block(&bed, "inherits", &["inherits.test"], "")
        ),
    )
    .unwrap();
    let out = bed.certkeep(&["issue", "inherits"]);
    assert_exit(&out, 1);
    assert!(plain.orders().is_empty(), "{:?}", plain.orders());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("offers no profiles"),
        "{}",
        text(&out)
    );
}

/// Issues a lineage, then renews it once with the proxy refusing the first order that carries
/// `replaces` with `refusal`; returns the new orders the renewal sent.
fn renew_with_refusal(bed: &Bed, refusal: Refusal) -> (Vec<NewOrderSeen>, String) {
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    std::fs::write(
        &bed.config,
        format!(
            "{}{}",
            head(bed, &proxy, ""),
            block(bed, "ari", &["ari.test"], "")
        ),
    )
    .unwrap();
    let out = bed.certkeep(&["issue", "ari"]);
    assert_exit(&out, 0);
    let issued = proxy.orders().len();
    proxy.refuse_replaces(vec![refusal]);
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    let list = listing(bed);
    assert_eq!(list[0]["version"], 2, "{list:?}");
    (proxy.orders()[issued..].to_vec(), text(&out))
}

#[test]
fn an_order_refused_as_already_replaced_is_sent_once_more_without_replaces() {
    let Some(bed) = bed() else { return };
    let (orders, out) = renew_with_refusal(
        &bed,
        Refusal {
            kind: "alreadyReplaced".into(),
            status: 409,
            detail: "the certificate has already been replaced".into(),
        },
    );
    assert_eq!(
        orders
            .iter()
            .map(|o| (o.replaces, o.status))
            .collect::<Vec<_>>(),
        vec![(true, 409), (false, 201)],
        "{out}"
    );
    assert!(out.contains("the CA refused `replaces`"), "{out}");
    assert!(out.contains("already been replaced"), "{out}");
}

#[test]
fn an_order_refused_because_another_account_owns_the_certificate_is_sent_without_replaces() {
    let Some(bed) = bed() else { return };
    // Boulder's answer when the replaced certificate was ordered by another
    // account (as after an import from another client).
    let (orders, out) = renew_with_refusal(
        &bed,
        Refusal {
            kind: "unauthorized".into(),
            status: 403,
            detail:
                "requester account did not request the certificate being replaced by this order"
                    .into(),
        },
    );
    assert_eq!(
        orders
            .iter()
            .map(|o| (o.replaces, o.status))
            .collect::<Vec<_>>(),
        vec![(true, 403), (false, 201)],
        "{out}"
    );
    assert!(out.contains("the CA refused `replaces`"), "{out}");
    assert!(out.contains("did not request the certificate"), "{out}");
}

/// A CA whose directory has no `renewalInfo` gets no `replaces`: the
/// renewal is ordered as a plain new order.
#[test]
fn without_ari_in_the_directory_no_replaces_is_sent() {
    let Some(bed) = bed() else { return };
    let proxy = FaultProxy::start(&bed.dir.path().join("proxy"), &bed.pebble);
    std::fs::write(
        &bed.config,
        format!(
            "{}{}",
            head(&bed, &proxy, ""),
            block(&bed, "plain", &["plain.test"], "")
        ),
    )
    .unwrap();
    assert_exit(&bed.certkeep(&["issue", "plain"]), 0);
    proxy.hide_ari();
    let out = bed.certkeep(&["renew", "--force"]);
    assert_exit(&out, 0);
    let order = last_order(&proxy);
    assert_eq!(
        (order.replaces, order.status),
        (false, 201),
        "{}",
        text(&out)
    );
    assert!(
        proxy
            .log()
            .iter()
            .all(|s| !s.path.to_ascii_lowercase().contains("renewalinfo")),
        "no ARI request either: {:?}",
        proxy.log()
    );
    assert_eq!(listing(&bed)[0]["version"], 2);
}
