//! Which ACME failures are worth another try, and how long to wait (pure).

use std::time::Duration;

/// What kind of failure an ACME call had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// The CA rejected the nonce: retry at once with the fresh one.
    BadNonce,
    /// HTTP 429 / `rateLimited`: wait for Retry-After.
    RateLimited,
    /// 5xx, `serverInternal`, connection or timeout trouble: back off.
    Transient,
    /// Anything else: retrying will not help (a 4xx other than 429 and
    /// `badNonce`, a CA certificate that does not verify, a host name that
    /// does not resolve).
    Fatal,
}

pub fn classify(e: &instant_acme::Error) -> Class {
    use instant_acme::Error as E;
    match e {
        E::Api(p) => {
            let t = p.r#type.as_deref().unwrap_or("");
            let status = p.status.unwrap_or(0);
            if t.ends_with(":badNonce") {
                Class::BadNonce
            } else if t.ends_with(":rateLimited") || status == 429 {
                Class::RateLimited
            } else if t.ends_with(":serverInternal") || status >= 500 {
                Class::Transient
            } else {
                Class::Fatal
            }
        }
        // A 5xx from a proxy or load balancer is usually not a problem document.
        E::Json(_) => Class::Transient,
        E::Other(inner) if inner.downcast_ref::<reqwest::Error>().is_some() => {
            transport(inner.as_ref())
        }
        _ => Class::Fatal,
    }
}

/// [`classify`], knowing the HTTP status of the failed answer: instant-acme
/// reports a body that is not a problem document (an HTML page from a proxy
/// or load balancer) as a JSON error without the status. A 5xx page is
/// worth another try, a 4xx page (but 429) is not.
pub fn classify_with_status(e: &instant_acme::Error, status: Option<u16>) -> Class {
    match (e, status) {
        (instant_acme::Error::Json(_), Some(429)) => Class::RateLimited,
        (instant_acme::Error::Json(_), Some(s)) if (400..500).contains(&s) => Class::Fatal,
        _ => classify(e),
    }
}

/// How to treat a failure below HTTP (connecting, resolving, TLS): walks the
/// cause chain. A certificate that does not verify and a name that does not
/// resolve stay so for the whole retry budget, so they fail at once; a
/// refused or reset connection or a timeout may pass, so it is retried.
pub fn transport(e: &(dyn std::error::Error + 'static)) -> Class {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(tls) = rustls_error(c) {
            if matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            ) {
                return Class::Fatal;
            }
        }
        let msg = c.to_string();
        if msg.starts_with("dns error")
            || msg.contains("failed to lookup address")
            || msg.starts_with("invalid peer certificate")
        {
            return Class::Fatal;
        }
        cur = c.source();
    }
    Class::Transient
}

/// The rustls error `e` is, or wraps as an `io::Error` (whose `source()`
/// skips the wrapped error itself).
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    e.downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// Most immediate retries for bad nonces before giving up.
pub const MAX_NONCE_RETRIES: u32 = 25;

/// The wait before retry number `attempt` (0-based), or None to give up.
/// `jitter` in [0, 1) spreads clients apart; `remaining` is what is left of
/// the run's retry budget.
pub fn delay(
    class: Class,
    attempt: u32,
    retry_after: Option<Duration>,
    remaining: Duration,
    jitter: f64,
) -> Option<Duration> {
    let wait = match class {
        Class::Fatal => return None,
        Class::BadNonce => {
            return (attempt < MAX_NONCE_RETRIES).then_some(Duration::ZERO);
        }
        Class::RateLimited => retry_after.unwrap_or_else(|| exponential(attempt, jitter)),
        Class::Transient => match retry_after {
            Some(ra) => ra.max(exponential(attempt, jitter)),
            None => exponential(attempt, jitter),
        },
    };
    (wait <= remaining).then_some(wait)
}

/// 1 s, 2 s, 4 s ... capped at 60 s, each scaled into [50 %, 100 %).
fn exponential(attempt: u32, jitter: f64) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(6)).min(Duration::from_secs(60));
    let j = jitter.clamp(0.0, 0.999_999);
    base.mul_f64(0.5 + j / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: Duration = Duration::from_secs(3600);

    fn problem(t: &str, status: u16) -> instant_acme::Error {
        let p: instant_acme::Problem = serde_json::from_value(serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{t}"),
            "detail": "x",
            "status": status,
        }))
        .unwrap();
        instant_acme::Error::Api(p)
    }

    #[test]
    fn classification() {
        assert_eq!(classify(&problem("badNonce", 400)), Class::BadNonce);
        assert_eq!(classify(&problem("rateLimited", 429)), Class::RateLimited);
        assert_eq!(classify(&problem("serverInternal", 500)), Class::Transient);
        assert_eq!(classify(&problem("malformed", 503)), Class::Transient);
        assert_eq!(classify(&problem("unauthorized", 403)), Class::Fatal);
        assert_eq!(classify(&problem("rejectedIdentifier", 400)), Class::Fatal);
        assert_eq!(classify(&instant_acme::Error::Str("x")), Class::Fatal);
        let json = serde_json::from_str::<u8>("<html>").unwrap_err();
        assert_eq!(classify(&instant_acme::Error::Json(json)), Class::Transient);
    }

    /// An error wrapping `inner`, as hyper and reqwest wrap theirs.
    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn std::error::Error + Send + Sync>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(self.1.as_ref())
        }
    }

    #[test]
    fn transport_failures_that_retrying_cannot_fix_are_fatal() {
        // The CA's certificate does not verify, as tokio-rustls reports it:
        // an io::Error carrying the rustls error.
        let bad_cert = Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            )),
        );
        assert_eq!(transport(&bad_cert), Class::Fatal);
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert_eq!(transport(&expired), Class::Fatal);
        // An unknown host name, as hyper's resolver reports it.
        let dns = Wrap(
            "client error (Connect)",
            Box::new(Wrap(
                "dns error",
                Box::new(std::io::Error::other(
                    "failed to lookup address information: Name or service not known",
                )),
            )),
        );
        assert_eq!(transport(&dns), Class::Fatal);
        // Refused, reset, timed out: the CA may be back in a moment.
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::TimedOut,
        ] {
            let e = Wrap(
                "client error (Connect)",
                Box::new(std::io::Error::from(kind)),
            );
            assert_eq!(transport(&e), Class::Transient, "{kind:?}");
        }
        // A TLS failure other than verification (an alert from a busy
        // front end) is retried.
        let alert = Wrap(
            "client error (Connect)",
            Box::new(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(rustls::AlertDescription::InternalError),
            )),
        );
        assert_eq!(transport(&alert), Class::Transient);
    }

    #[test]
    fn pages_that_are_not_problem_documents_follow_their_status() {
        let page = || instant_acme::Error::Json(serde_json::from_str::<u8>("<html>").unwrap_err());
        assert_eq!(classify_with_status(&page(), Some(404)), Class::Fatal);
        assert_eq!(classify_with_status(&page(), Some(403)), Class::Fatal);
        assert_eq!(classify_with_status(&page(), Some(429)), Class::RateLimited);
        assert_eq!(classify_with_status(&page(), Some(502)), Class::Transient);
        assert_eq!(classify_with_status(&page(), None), Class::Transient);
        // A problem document carries its own status.
        assert_eq!(
            classify_with_status(&problem("badNonce", 400), Some(400)),
            Class::BadNonce
        );
    }

    #[test]
    fn client_errors_other_than_429_and_bad_nonce_are_fatal() {
        for (t, status) in [
            ("malformed", 400),
            ("unauthorized", 401),
            ("unauthorized", 403),
            ("accountDoesNotExist", 404),
            ("badCSR", 400),
        ] {
            assert_eq!(classify(&problem(t, status)), Class::Fatal, "{t} {status}");
            assert_eq!(
                delay(classify(&problem(t, status)), 0, None, BIG, 0.5),
                None
            );
        }
        assert_eq!(classify(&problem("rateLimited", 429)), Class::RateLimited);
        assert_eq!(classify(&problem("malformed", 429)), Class::RateLimited);
        assert_eq!(classify(&problem("badNonce", 400)), Class::BadNonce);
    }

    #[test]
    fn bad_nonce_is_immediate_and_bounded() {
        assert_eq!(
            delay(Class::BadNonce, 0, None, BIG, 0.3),
            Some(Duration::ZERO)
        );
        assert_eq!(
            delay(Class::BadNonce, MAX_NONCE_RETRIES - 1, None, BIG, 0.3),
            Some(Duration::ZERO)
        );
        assert_eq!(
            delay(Class::BadNonce, MAX_NONCE_RETRIES, None, BIG, 0.3),
            None
        );
    }

    #[test]
    fn rate_limit_honours_retry_after_within_budget() {
        let ra = Some(Duration::from_secs(7));
        assert_eq!(
            delay(Class::RateLimited, 0, ra, BIG, 0.0),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            delay(Class::RateLimited, 0, ra, Duration::from_secs(5), 0.0),
            None
        );
    }

    #[test]
    fn transient_backs_off_exponentially_with_jitter_and_cap() {
        let d0 = delay(Class::Transient, 0, None, BIG, 0.0).unwrap();
        let d3 = delay(Class::Transient, 3, None, BIG, 0.0).unwrap();
        assert_eq!(d0, Duration::from_millis(500));
        assert_eq!(d3, Duration::from_secs(4));
        let hi = delay(Class::Transient, 3, None, BIG, 0.99).unwrap();
        assert!(hi > d3 && hi < Duration::from_secs(8));
        let capped = delay(Class::Transient, 30, None, BIG, 0.999).unwrap();
        assert!(capped <= Duration::from_secs(60));
        assert_eq!(
            delay(Class::Transient, 3, None, Duration::from_secs(1), 0.0),
            None
        );
        // Retry-After raises the wait, never lowers it.
        assert_eq!(
            delay(Class::Transient, 0, Some(Duration::from_secs(9)), BIG, 0.0),
            Some(Duration::from_secs(9))
        );
    }

    #[test]
    fn fatal_never_retries() {
        assert_eq!(delay(Class::Fatal, 0, Some(Duration::ZERO), BIG, 0.0), None);
    }
}
