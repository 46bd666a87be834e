use super::*;

#[test]
fn common_name_first_then_san_order() {
    let sans = vec!["www.a.test".to_string(), "a.test".to_string()];
    assert_eq!(
        ordered_domains("CN=a.test", &sans),
        vec!["a.test", "www.a.test"]
    );
    assert_eq!(ordered_domains("", &sans), sans);
    assert_eq!(
        ordered_domains("O=x, CN=other.test", &sans),
        sans,
        "a CN that is not a SAN is ignored"
    );
}

#[test]
fn most_common_is_stable() {
    let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        most_common(v(&["b", "a", "b"]).into_iter()).as_deref(),
        Some("b")
    );
    assert_eq!(
        most_common(v(&["b", "a"]).into_iter()).as_deref(),
        Some("a")
    );
    assert_eq!(most_common(v(&[]).into_iter()), None);
}
