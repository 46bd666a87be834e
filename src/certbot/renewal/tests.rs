use super::*;
use crate::certbot::ini;

fn read(text: &str) -> Renewal {
    let p = Path::new("/etc/letsencrypt/renewal/example.com.conf");
    interpret(&ini::parse(text, p).unwrap(), "example.com", p).unwrap()
}

const WEBROOT: &str = "renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem
privkey = /etc/letsencrypt/live/example.com/privkey.pem
chain = /etc/letsencrypt/live/example.com/chain.pem
fullchain = /etc/letsencrypt/live/example.com/fullchain.pem

[renewalparams]
account = 4f1a
authenticator = webroot
webroot_path = /var/www/certbot,
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
elliptic_curve = secp384r1
reuse_key = True
renew_hook = systemctl reload nginx
post_hook = \"echo done, really\"
[[webroot_map]]
example.com = /var/www/certbot
static.example.com = /srv/static
";

#[test]
fn webroot_lineage_maps_onto_certkeep() {
    let r = read(WEBROOT);
    assert_eq!(r.version.as_deref(), Some("2.1.0"));
    assert_eq!(r.account.as_deref(), Some("4f1a"));
    assert!(r.check_authenticator().is_ok());
    assert_eq!(r.key_type("rsa2048").unwrap(), KeyType::EcdsaP384);
    assert!(r.reuse_key);
    assert!(r.autorenew);
    assert_eq!(r.renew_before().unwrap().as_deref(), Some("30d"));
    assert_eq!(r.deploy_hook.as_deref(), Some("systemctl reload nginx"));
    assert_eq!(r.post_hook.as_deref(), Some("echo done, really"));
    let domains = vec![
        "example.com".to_string(),
        "www.example.com".to_string(),
        "static.example.com".to_string(),
    ];
    let (default, map) = r.webroots(&domains).unwrap();
    assert_eq!(default, Some(PathBuf::from("/var/www/certbot")));
    assert_eq!(
        map,
        BTreeMap::from([("static.example.com".into(), "/srv/static".into())])
    );
}

#[test]
fn missing_optional_keys_use_certbot_defaults() {
    let r = read("[renewalparams]\nauthenticator = webroot\n[[webroot_map]]\na.test = /w\n");
    assert!(!r.reuse_key);
    assert!(r.autorenew);
    assert_eq!(r.renew_before().unwrap(), None);
    assert_eq!(r.key_type("ecdsa-p256").unwrap(), KeyType::EcdsaP256);
    assert_eq!(r.key_type("rsa4096").unwrap(), KeyType::Rsa4096);
    assert!(r.key_type("ed25519").is_err());
    let (default, map) = r.webroots(&["a.test".into()]).unwrap();
    assert_eq!(default, Some(PathBuf::from("/w")));
    assert!(map.is_empty());
    let e = r.webroots(&["a.test".into(), "b.test".into()]).unwrap_err();
    assert!(e.reason.contains("b.test"), "{e:?}");
    let rsa = read("[renewalparams]\nkey_type = rsa\nrsa_key_size = 3072\n");
    assert_eq!(rsa.key_type("x").unwrap(), KeyType::Rsa3072);
    let rsa = read("[renewalparams]\nkey_type = RSA\n");
    assert_eq!(rsa.key_type("x").unwrap(), KeyType::Rsa2048);
}

#[test]
fn other_authenticators_are_blocked_with_advice() {
    for (auth, needle) in [
        ("standalone", "standalone"),
        ("nginx", "nginx plugin"),
        ("manual", "manual"),
        ("dns-cloudflare", "DNS-01"),
        ("apache", "not the webroot method"),
    ] {
        let r = read(&format!("[renewalparams]\nauthenticator = {auth}\n"));
        let b = r.check_authenticator().unwrap_err();
        assert!(b.reason.contains(needle), "{auth}: {b:?}");
        assert!(!b.todo.is_empty());
    }
    let r = read("[renewalparams]\nauthenticator = webroot\n");
    assert!(r.check_authenticator().is_err());
}

#[test]
fn bad_values_name_the_line() {
    let p = Path::new("/x/renewal/a.conf");
    let ini = ini::parse("[renewalparams]\nreuse_key = maybe\n", p).unwrap();
    let e = interpret(&ini, "a", p).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.to_string().contains("/x/renewal/a.conf:2: reuse_key"),
        "{e}"
    );
    let ini = ini::parse("[renewalparams]\n\nrsa_key_size = big\n", p).unwrap();
    assert_eq!(interpret(&ini, "a", p).unwrap_err().line, 3);
}

#[test]
fn intervals() {
    for (i, o) in [
        ("30 days", Some("30d")),
        ("1 day", Some("1d")),
        ("2 weeks", Some("14d")),
        ("12 hours", Some("12h")),
        ("10d", Some("10d")),
        ("soon", None),
        ("", None),
    ] {
        assert_eq!(convert_interval(i).as_deref(), o, "{i}");
    }
}
