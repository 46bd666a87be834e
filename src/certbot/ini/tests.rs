use super::*;

fn ok(text: &str) -> Ini {
    parse(text, Path::new("/etc/letsencrypt/renewal/x.conf")).unwrap()
}

fn bad(text: &str) -> IniError {
    parse(text, Path::new("/etc/letsencrypt/renewal/x.conf")).unwrap_err()
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

#[test]
fn certbot_renewal_file() {
    let ini = ok("# renew_before_expiry = 30 days
version = 2.1.0
archive_dir = /etc/letsencrypt/archive/example.com
cert = /etc/letsencrypt/live/example.com/cert.pem

# Options used in the renewal process
[renewalparams]
account = 0123abcd
authenticator = webroot
webroot_path = /var/www/certbot,
server = https://acme-v02.api.letsencrypt.org/directory
key_type = ecdsa
[[webroot_map]]
example.com = /var/www/certbot
www.example.com = /var/www/certbot
");
    let r = &ini.root;
    assert_eq!(r.get("version").unwrap().value, s("2.1.0"));
    assert_eq!(r.get("version").unwrap().line, 2);
    assert!(r.get("renew_before_expiry").is_none());
    let p = r.section("renewalparams").unwrap();
    assert_eq!(
        p.get("webroot_path").unwrap().value,
        Value::List(vec!["/var/www/certbot".into()])
    );
    assert_eq!(
        p.get("server").unwrap().value,
        s("https://acme-v02.api.letsencrypt.org/directory")
    );
    let m = p.section("webroot_map").unwrap();
    assert_eq!(m.entries.len(), 2);
    assert_eq!(m.get("www.example.com").unwrap().line, 15);
}

#[test]
fn odd_but_valid() {
    let ini = ok("\u{20}\u{20}; semicolon comment
\tname=plain   # trailing comment
quoted = \"a, b # not a comment\"  # but this is
single = 'it is'
list = a, 'b c' , \"d\"
empty =
justcomma = ,
hook = systemctl reload nginx; echo done
triple = '''one
two # still text
three'''
'quoted key' = v
[ renewalparams ]
[[webroot_map]]
a.example = /srv/a
[[other]]
k = v
[second]
k = v2
");
    let r = &ini.root;
    assert_eq!(r.get("name").unwrap().value, s("plain"));
    assert_eq!(r.get("quoted").unwrap().value, s("a, b # not a comment"));
    assert_eq!(r.get("single").unwrap().value, s("it is"));
    assert_eq!(
        r.get("list").unwrap().value,
        Value::List(vec!["a".into(), "b c".into(), "d".into()])
    );
    assert_eq!(r.get("empty").unwrap().value, s(""));
    assert_eq!(r.get("justcomma").unwrap().value, Value::List(vec![]));
    assert_eq!(
        r.get("hook").unwrap().value,
        s("systemctl reload nginx; echo done")
    );
    assert_eq!(
        r.get("triple").unwrap().value,
        s("one\ntwo # still text\nthree")
    );
    assert_eq!(r.get("quoted key").unwrap().value, s("v"));
    let p = r.section("renewalparams").unwrap();
    assert_eq!(p.sections.len(), 2);
    assert_eq!(
        p.section("webroot_map")
            .unwrap()
            .get("a.example")
            .unwrap()
            .value,
        s("/srv/a")
    );
    assert_eq!(
        r.section("second").unwrap().get("k").unwrap().value,
        s("v2")
    );
}

#[test]
fn empty_and_comment_only_files() {
    assert_eq!(ok(""), Ini::default());
    assert_eq!(ok("# nothing\n; here\n\n"), Ini::default());
}

#[test]
fn broken_files_name_file_and_line() {
    let cases = [
        ("a = 1\njunk line\n", 2, "expected `key = value`"),
        ("a = 1\na = 2\n", 2, "appears twice"),
        ("[s]\n[s]\n", 2, "appears twice"),
        ("x = \"open\n", 1, "unterminated"),
        ("x = '''open\nmore\n", 1, "unterminated"),
        ("[[deep]]\n", 1, "nested"),
        ("[s\n", 1, "no closing"),
        ("[s]]\n", 1, "unexpected text after section header"),
        ("[[s]\n", 1, "closes with a different number"),
        ("[]\n", 1, "empty section name"),
        ("= v\n", 1, "key is missing"),
        ("x = \"a\" b\n", 1, "after a quoted value"),
    ];
    for (text, line, needle) in cases {
        let e = bad(text);
        assert_eq!(e.line, line, "{text:?}: {e}");
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!("/etc/letsencrypt/renewal/x.conf:{line}: ")),
            "{msg}"
        );
        assert!(msg.contains(needle), "{text:?}: {msg}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap stand-in for fuzzing: every prefix of a tricky file.
    let text = "a = '''x\n[[b]]\n[c]\n d = \"e, f\", g,# h\n'k' = ''' '''\n[[[z]]]";
    for end in 0..=text.len() {
        if text.is_char_boundary(end) {
            let _ = parse(&text[..end], Path::new("f"));
        }
    }
}
