//! One ACME order: HTTP-01 through the webroot, finalize, download.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};

use super::{AcmeClient, AcmeError};
use crate::webroot::{self, ChallengeFile};

/// What to order.
pub struct OrderRequest<'a> {
    pub domains: &'a [String],
    /// Webroot serving each domain's challenges, same order as `domains`.
    pub webroots: &'a [PathBuf],
    /// DER certificate request.
    pub csr_der: &'a [u8],
    /// ACME profile to ask for (None: the CA's default); see
    /// [`AcmeClient::choose_profile`].
    pub profile: Option<&'a str>,
    /// ARI: the certificate this one replaces.
    pub replaces: Option<CertificateIdentifier<'static>>,
    /// How long to wait for validation and issuance.
    pub timeout: Duration,
    /// Called for each challenge after its file is written and before the
    /// CA is asked to validate (cluster mode: every node must answer it).
    pub on_challenge: Option<&'a dyn ChallengeHook>,
}

/// Something that must be ready before the CA validates a challenge; an
/// error fails the order without asking the CA (no failed authorization).
pub trait ChallengeHook: Send + Sync {
    fn ready<'a>(
        &'a self,
        domain: &'a str,
        token: &'a str,
        key_authorization: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;
}

impl AcmeClient {
    /// Runs a whole order and returns the issued chain as PEM (leaf first).
    pub async fn obtain(&self, req: &OrderRequest<'_>) -> Result<String, AcmeError> {
        let dir = self.directory.as_str();
        let identifiers: Vec<Identifier> = req
            .domains
            .iter()
            .map(|d| match d.parse::<std::net::IpAddr>() {
                // RFC 8738: validated over HTTP-01 on the address itself.
                Ok(ip) => Identifier::Ip(ip),
                Err(_) => Identifier::Dns(d.clone()),
            })
            .collect();
        let fresh = || match req.profile {
            Some(p) => NewOrder::new(&identifiers).profile(p),
            None => NewOrder::new(&identifiers),
        };
        let mut new_order = fresh();
        let mut with_replaces = false;
        if let Some(r) = &req.replaces {
            if self.supports_ari {
                new_order = new_order.replaces(r.clone());
                with_replaces = true;
            }
        }
        let mut retrier = self.retrier();
        let mut order = loop {
            match self.account.new_order(&new_order).await {
                Ok(o) => break o,
                // The certificate was already replaced (e.g. by a renewal whose
                // deployment was rolled back), or the CA cannot or will not
                // match it: `replaces` is an optimisation, so order without it
                // rather than fail every renewal of this lineage until it expires.
                Err(instant_acme::Error::Api(p)) if with_replaces && drop_replaces(&p) => {
                    tracing::warn!(
                        "the CA refused `replaces` ({p}); ordering once more without it"
                    );
                    new_order = fresh();
                    with_replaces = false;
                }
                Err(e) => retrier.wait(e, "creating the order", dir).await?,
            }
        };
        tracing::debug!(order = order.url(), "order created");

        // Challenge files live until the order is done, then go (Drop).
        let mut files: Vec<ChallengeFile> = Vec::new();
        let mut done: HashSet<String> = HashSet::new();
        'restart: loop {
            let mut authzs = order.authorizations();
            while let Some(next) = authzs.next().await {
                let mut authz = match next {
                    Ok(a) => a,
                    Err(e) => {
                        retrier.wait(e, "fetching an authorization", dir).await?;
                        continue 'restart;
                    }
                };
                let url = authz.url().to_string();
                if done.contains(&url) {
                    continue;
                }
                match authz.status {
                    AuthorizationStatus::Valid => {
                        done.insert(url);
                        continue;
                    }
                    AuthorizationStatus::Pending => {}
                    other => {
                        return Err(AcmeError::Validation {
                            domain: authz.identifier().to_string(),
                            detail: format!("the authorization is {other:?}"),
                        })
                    }
                }
                let domain = authz.identifier().to_string();
                let Some(mut challenge) = authz.challenge(ChallengeType::Http01) else {
                    return Err(AcmeError::Validation {
                        domain,
                        detail: "the CA offers no http-01 challenge for this name".into(),
                    });
                };
                let idx = req
                    .domains
                    .iter()
                    .position(|d| same_identifier(d, &domain))
                    .ok_or_else(|| {
                        AcmeError::Order(format!(
                            "the CA asked about {domain}, which was not ordered"
                        ))
                    })?;
                let key_auth = challenge.key_authorization();
                files.push(webroot::write_challenge(
                    &req.webroots[idx],
                    &challenge.token,
                    key_auth.as_str(),
                )?);
                if let Some(hook) = req.on_challenge {
                    hook.ready(&domain, &challenge.token, key_auth.as_str())
                        .await
                        .map_err(|detail| AcmeError::Validation {
                            domain: domain.clone(),
                            detail,
                        })?;
                }
                loop {
                    match challenge.set_ready().await {
                        Ok(()) => break,
                        Err(e) => retrier.wait(e, "answering the challenge", dir).await?,
                    }
                }
                done.insert(url);
            }
            break;
        }

        let poll = RetryPolicy::new()
            .initial_delay(Duration::from_millis(40))
            .backoff(1.5)
            .timeout(req.timeout);
        let status = loop {
            match poll_ready_in_full(&mut order, &poll, req.timeout).await {
                Ok(s) => break s,
                Err(instant_acme::Error::Timeout(_)) => {
                    return Err(AcmeError::Order(format!(
                        "the CA did not validate within {:?}; raise [acme] order_timeout or check the CA's status",
                        req.timeout
                    )))
                }
                Err(instant_acme::Error::Api(p)) if retry_is_fatal(&p) => {
                    return Err(self.validation_error(&mut order, Some(p)).await)
                }
                Err(e) => retrier.wait(e, "waiting for validation", dir).await?,
            }
        };
        if status != OrderStatus::Ready {
            return Err(self.validation_error(&mut order, None).await);
        }
        drop(files);

        loop {
            match order.finalize_csr(req.csr_der).await {
                Ok(()) => break,
                Err(e) => retrier.wait(e, "finalizing the order", dir).await?,
            }
        }
        loop {
            match poll_certificate_in_full(&mut order, &poll, req.timeout).await {
                Ok(pem) => return Ok(pem),
                Err(instant_acme::Error::Timeout(_)) => {
                    return Err(AcmeError::Order(format!(
                        "the CA did not issue within {:?}; raise [acme] order_timeout",
                        req.timeout
                    )))
                }
                Err(e) => retrier.wait(e, "downloading the certificate", dir).await?,
            }
        }
    }

    /// Finds which name failed validation and why.
    async fn validation_error(
        &self,
        order: &mut instant_acme::Order,
        order_problem: Option<instant_acme::Problem>,
    ) -> AcmeError {
        let mut authzs = order.authorizations();
        while let Some(Ok(mut a)) = authzs.next().await {
            let _ = a.refresh().await;
            if a.status == AuthorizationStatus::Invalid {
                let detail = a
                    .challenges
                    .iter()
                    .find_map(|c| c.error.as_ref().map(|p| p.to_string()))
                    .unwrap_or_else(|| "no detail from the CA".into());
                return AcmeError::Validation {
                    domain: a.identifier().to_string(),
                    detail,
                };
            }
        }
        AcmeError::Order(match order_problem {
            Some(p) => format!("the order failed: {p}"),
            None => "the order became invalid without a reason from the CA".into(),
        })
    }
}

/// Whether an order with `replaces` should be retried without it: any
/// refusal but a bad nonce or a rate limit. The CA's wording varies (Pebble
/// answers `serverInternal` "could not find an order for the given
/// certificate" for some certificates it issued, on every attempt; Boulder
/// answers `unauthorized` when another account ordered the certificate, as
/// after an import, and `malformed` for a CertID it cannot parse), and a
/// renewal that keeps sending the same `replaces` never happens.
fn drop_replaces(p: &instant_acme::Problem) -> bool {
    !matches!(
        super::retry::classify(&instant_acme::Error::Api(p.clone())),
        super::retry::Class::BadNonce | super::retry::Class::RateLimited
    )
}

/// Whether `ordered` (as the config keeps it) is the identifier the CA
/// names: DNS names without regard to case, addresses by value (the CA may
/// spell an IPv6 address another way).
fn same_identifier(ordered: &str, named: &str) -> bool {
    match (
        ordered.parse::<std::net::IpAddr>(),
        named.parse::<std::net::IpAddr>(),
    ) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => ordered.eq_ignore_ascii_case(named),
        _ => false,
    }
}

fn retry_is_fatal(p: &instant_acme::Problem) -> bool {
    super::retry::classify(&instant_acme::Error::Api(p.clone())) == super::retry::Class::Fatal
}

// instant-acme ends a poll when its next back-off step would pass the
// timeout, which can be a third of the timeout early (the steps grow by
// half). These look at the order once more at the deadline itself, so
// `order_timeout` is waited in full.

/// [`Order::poll_ready`], with one more look at `timeout`.
async fn poll_ready_in_full(
    order: &mut Order,
    poll: &RetryPolicy,
    timeout: Duration,
) -> Result<OrderStatus, instant_acme::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    match order.poll_ready(poll).await {
        Err(instant_acme::Error::Timeout(at)) => {
            tokio::time::sleep_until(deadline).await;
            let state = order.refresh().await?;
            if let Some(p) = &state.error {
                return Err(instant_acme::Error::Api(p.clone()));
            }
            match state.status {
                OrderStatus::Ready | OrderStatus::Invalid => Ok(state.status),
                _ => Err(instant_acme::Error::Timeout(at)),
            }
        }
        other => other,
    }
}

/// [`Order::poll_certificate`], with one more look at `timeout`.
async fn poll_certificate_in_full(
    order: &mut Order,
    poll: &RetryPolicy,
    timeout: Duration,
) -> Result<String, instant_acme::Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    match order.poll_certificate(poll).await {
        Err(instant_acme::Error::Timeout(at)) => {
            tokio::time::sleep_until(deadline).await;
            order
                .certificate()
                .await?
                .ok_or(instant_acme::Error::Timeout(at))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(t: &str, status: u16) -> instant_acme::Problem {
        serde_json::from_value(serde_json::json!({
            "type": format!("urn:ietf:params:acme:error:{t}"),
            "detail": "x",
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn identifiers_match_by_case_and_by_address_value() {
        assert!(same_identifier("a.test", "A.Test"));
        assert!(same_identifier("::1", "0:0:0:0:0:0:0:1"));
        assert!(same_identifier("127.0.0.1", "127.0.0.1"));
        assert!(!same_identifier("127.0.0.1", "127.0.0.2"));
        assert!(!same_identifier("::1", "a.test"));
    }

    #[test]
    fn replaces_is_dropped_on_refusals_but_not_on_nonces_or_rate_limits() {
        for (t, status) in [
            ("serverInternal", 500),
            ("unauthorized", 403),
            ("malformed", 400),
            ("alreadyReplaced", 409),
        ] {
            assert!(drop_replaces(&problem(t, status)), "{t}");
        }
        assert!(!drop_replaces(&problem("badNonce", 400)));
        assert!(!drop_replaces(&problem("rateLimited", 429)));
    }
}
