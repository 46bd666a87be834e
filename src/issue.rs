//! Obtaining one new version of a lineage: self-check, key, order, store.
//! Shared by `certkeep issue` and `certkeep renew`.

use std::path::PathBuf;

use instant_acme::CertificateIdentifier;

use crate::acme::{keys, order::OrderRequest, AcmeClient, AcmeError};
use crate::cert::{self, CertFacts};
use crate::config::{AcmeConfig, CertificateConfig};
use crate::store::{NewVersion, Store, StoreError};
use crate::webroot::{self, SelfCheck, WebrootError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum IssueError {
    #[error(transparent)]
    Acme(#[from] AcmeError),
    #[error(transparent)]
    SelfCheck(#[from] WebrootError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    #[error("the CA returned an unusable certificate: {0}")]
    Returned(String),
}

/// A freshly issued certificate, not yet in the store.
pub(crate) struct Obtained {
    pub version: NewVersion,
    pub leaf: CertFacts,
    /// The ACME profile the order asked for (None: the CA's default).
    pub profile: Option<String>,
}

/// How a certificate is obtained: the settings that do not change per lineage.
pub(crate) struct Issuer<'a> {
    pub acme: &'a AcmeConfig,
    pub client: &'a AcmeClient,
    pub store: &'a Store,
}

/// Runs the self-check for every domain of `c`, reaching nginx as `how`
/// says ([`crate::config::Settings::self_check`]; None: the self-check is
/// off). Callers run it before connecting to the CA: a local problem is
/// reported at once, without registering an account or waiting out retries
/// against a CA that is down.
pub(crate) async fn preflight(
    how: Option<&SelfCheck>,
    c: &CertificateConfig,
) -> Result<(), IssueError> {
    let Some(how) = how else {
        return Ok(());
    };
    for d in &c.domains {
        let root = c
            .webroot_for(d.as_str())
            .unwrap_or_else(|| std::path::Path::new("."));
        webroot::self_check(d.as_str(), root, how).await?;
        tracing::debug!(domain = %d, "self-check passed");
    }
    Ok(())
}

impl Issuer<'_> {
    /// Key and order; returns the PEM texts without storing them. Run
    /// [`preflight`] first. Stops early on shutdown (challenge files are
    /// removed as the order is dropped).
    pub(crate) async fn obtain(
        &self,
        c: &CertificateConfig,
        replaces: Option<CertificateIdentifier<'static>>,
        reuse_from_store: bool,
    ) -> Result<Obtained, IssueError> {
        self.obtain_with(c, replaces, reuse_from_store, None).await
    }

    /// [`Issuer::obtain`] with a hook called for every challenge before the
    /// CA validates it (cluster mode).
    pub(crate) async fn obtain_with(
        &self,
        c: &CertificateConfig,
        replaces: Option<CertificateIdentifier<'static>>,
        reuse_from_store: bool,
        on_challenge: Option<&dyn crate::acme::order::ChallengeHook>,
    ) -> Result<Obtained, IssueError> {
        // A damaged lineage's key is not trusted: it may not be the key of
        // its certificate. A new one is made and the lineage replaced whole.
        let reusable = if c.reuse_key && reuse_from_store {
            match self.store.inspect(c.name()) {
                Some(i) if i.is_healthy() => i.current,
                Some(i) => {
                    tracing::warn!(
                        certificate = c.name(),
                        "not reusing the key of a damaged lineage: {}",
                        i.summary()
                    );
                    None
                }
                None => None,
            }
        } else {
            None
        };
        let key = match reusable {
            Some(cur) if cur.leaf.key_type == c.key_type.as_str() => {
                let p = cur.lineage.path("privkey");
                let pem = std::fs::read_to_string(&p).map_err(crate::store::io_err("read", &p))?;
                keys::load(&pem)?
            }
            Some(cur) => {
                // reuse_key keeps a key, never a key type the config no
                // longer asks for.
                tracing::warn!(
                    certificate = c.name(),
                    "key_type is now {} but the current key is {}: making a new {} key instead of reusing it",
                    c.key_type,
                    cur.leaf.key_type,
                    c.key_type
                );
                keys::generate(c.key_type)?
            }
            _ => keys::generate(c.key_type)?,
        };
        let domains = c.domain_names();
        let webroots: Vec<PathBuf> = domains
            .iter()
            .map(|d| c.webroot_for(d).map(PathBuf::from).unwrap_or_default())
            .collect();
        let csr = keys::csr_der(&domains, &key)?;
        let profile = self
            .client
            .choose_profile(c.name(), c.wanted_profile(self.acme).as_ref())?;
        let request = OrderRequest {
            domains: &domains,
            webroots: &webroots,
            csr_der: &csr,
            profile: profile.as_deref(),
            replaces,
            timeout: self.acme.order_timeout.get(),
            on_challenge,
        };
        let order = self.client.obtain(&request);
        let pem = crate::shutdown::global()
            .run(order)
            .await
            .map_err(|source| AcmeError::Cancelled {
                what: "the order".into(),
                directory: self.client.directory.clone(),
                source,
            })??;
        let privkey = key.serialize_pem();
        let version = split_chain(&pem, privkey)?;
        let chain = cert::parse_pem_chain(version.fullchain.as_bytes(), "the issued chain")
            .map_err(|e| IssueError::Returned(e.to_string()))?;
        let leaf = cert::facts(&chain[0], "the issued certificate")
            .map_err(|e| IssueError::Returned(e.to_string()))?;
        if leaf.spki_der != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(IssueError::Returned(
                "its public key is not the one in the request".into(),
            ));
        }
        Ok(Obtained {
            version,
            leaf,
            profile,
        })
    }

    /// Obtains and stores a new version, moving the live links to it. Run
    /// [`preflight`] first.
    pub(crate) async fn issue(
        &self,
        c: &CertificateConfig,
    ) -> Result<(u32, CertFacts), IssueError> {
        let got = self.obtain(c, None, true).await?;
        let v = self.store.write_version(c.name(), &got.version)?;
        self.store.verify_version(c.name(), v)?;
        let mut states = crate::renew::state::LineageStates::load(self.store)?;
        states.ordered(c.name(), v, got.profile.as_deref());
        states.save()?;
        self.store.activate(c.name(), v)?;
        Ok((v, got.leaf))
    }
}

/// Splits the CA's PEM chain into cert, chain and fullchain.
pub(crate) fn split_chain(pem: &str, privkey: String) -> Result<NewVersion, IssueError> {
    let mut blocks = Vec::new();
    let mut rest = pem;
    const END: &str = "-----END CERTIFICATE-----";
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(end) = rest[start..].find(END) else {
            break;
        };
        let stop = start + end + END.len();
        blocks.push(format!("{}\n", &rest[start..stop]));
        rest = &rest[stop..];
    }
    if blocks.is_empty() {
        return Err(IssueError::Returned(
            "no PEM certificate in the response".into(),
        ));
    }
    Ok(NewVersion {
        cert: blocks[0].clone(),
        chain: blocks[1..].concat(),
        fullchain: blocks.concat(),
        privkey,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_chain_keeps_order() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()])
            .unwrap()
            .cert
            .pem();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()])
            .unwrap()
            .cert
            .pem();
        let v = split_chain(&format!("{a}\n{b}"), "k".into()).unwrap();
        assert_eq!(v.cert.trim(), a.trim());
        assert_eq!(v.chain.trim(), b.trim());
        assert_eq!(
            cert::parse_pem_chain(v.fullchain.as_bytes(), "")
                .unwrap()
                .len(),
            2
        );
        assert!(split_chain("garbage", "k".into()).is_err());
    }
}
