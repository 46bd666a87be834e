//! TLS 1.2 / 1.3 handshakes through rustls, each pinned to one version, that
//! capture the chain the server sends whatever it is (expired, self-signed,
//! for another name); the chain is verified separately against the roots.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::{ActiveKeyExchange, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, NamedGroup, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::facts::ChainCert;
use super::reasons::{self, ChainProblem};
use super::{ErrorKind, ProbeError};

/// Time limits for each phase of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect (and name resolution).
    pub connect: Duration,
    /// From connected to handshake done (or to the legacy reply classified).
    pub handshake: Duration,
    /// From request sent to the first byte of the HTTP response, and for the rest of it.
    pub read: Duration,
    /// Everything for one endpoint.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(3),
            handshake: Duration::from_secs(5),
            read: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

/// rustls configurations shared by every probe: one per pinned version, and
/// the verifier used to judge captured chains.
#[derive(Debug, Clone)]
pub struct Tls {
    tls12: Arc<rustls::ClientConfig>,
    /// TLS 1.2 without the offer-only curves, for a server that picks one.
    tls12_plain: Arc<rustls::ClientConfig>,
    tls13: Arc<rustls::ClientConfig>,
    verifier: Arc<WebPkiServerVerifier>,
}

impl Tls {
    /// Roots: the system's trust store (`SSL_CERT_FILE`/`SSL_CERT_DIR` when
    /// set, else /etc/ssl/certs, Debian's ca-certificates) plus `extra`
    /// (PEM DER certs, `ca_file`). A root added to or removed from the
    /// system store counts from the next probe, without a rebuild.
    pub fn new(extra: &[CertificateDer<'static>]) -> Result<Tls, ProbeError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut wide = rustls::crypto::aws_lc_rs::default_provider();
        wide.kx_groups.extend(OFFER_ONLY);
        let wide = Arc::new(wide);
        let mut roots = RootCertStore::empty();
        // Certificates of the store that cannot be read or parsed are
        // skipped, as every TLS client on the system skips them.
        let system = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(system.certs);
        if added == 0 && extra.is_empty() {
            let why = system
                .errors
                .first()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            return Err(ProbeError::new(
                ErrorKind::Config,
                format!(
                    "no trust anchors: the system trust store holds no certificate{why}; \
                     install Debian's ca-certificates, point SSL_CERT_FILE at a PEM bundle, \
                     or give ca_file / --ca-file"
                ),
            ));
        }
        for c in extra {
            roots.add(c.clone()).map_err(|e| {
                ProbeError::new(
                    ErrorKind::Config,
                    format!("cannot use a CA certificate: {e}"),
                )
            })?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| {
                    ProbeError::new(ErrorKind::Config, format!("cannot build the verifier: {e}"))
                })?;
        let pinned = |v: &'static rustls::SupportedProtocolVersion,
                      provider: &Arc<rustls::crypto::CryptoProvider>| {
            let mut c = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[v])
                .map_err(|e| ProbeError::new(ErrorKind::Config, format!("TLS setup: {e}")))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny))
                .with_no_client_auth();
            // Every probe is a full handshake: a resumed one shows no certificate.
            c.resumption = Resumption::disabled();
            c.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok::<_, ProbeError>(Arc::new(c))
        };
        let t = Tls {
            tls12: pinned(&rustls::version::TLS12, &wide)?,
            tls12_plain: pinned(&rustls::version::TLS12, &provider)?,
            tls13: pinned(&rustls::version::TLS13, &provider)?,
            verifier,
        };
        // aws-lc sets up its randomness on first use (~35 ms here): pay that
        // once now rather than inside the first probe's handshake timing.
        if let Ok(name) = ServerName::try_from("warm-up.invalid") {
            let _ = rustls::ClientConnection::new(t.tls13.clone(), name);
        }
        Ok(t)
    }

    /// Verifies a captured chain for `host` at `now` (names are checked
    /// separately: a chain for another name still verifies here). `facts`
    /// are the parsed certificates of `chain`, to word the problem.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        facts: &[ChainCert],
        host: &str,
        now: time::OffsetDateTime,
    ) -> ChainCheck {
        let Some((leaf, rest)) = chain.split_first() else {
            return ChainCheck::bad(ChainProblem::NoCertificate);
        };
        let Ok(name) = ServerName::try_from(host.to_string()) else {
            return ChainCheck::bad(ChainProblem::BadName);
        };
        let at = |t: time::OffsetDateTime| {
            let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
            let r = self.verifier.verify_server_cert(
                leaf,
                rest,
                &name,
                &[],
                UnixTime::since_unix_epoch(Duration::from_secs(secs)),
            );
            match r {
                Ok(_)
                | Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. },
                )) => Ok(()),
                Err(e) => Err(e),
            }
        };
        let Err(e) = at(now) else {
            return ChainCheck {
                chain_valid: true,
                problem: None,
            };
        };
        tracing::debug!(host, error = ?e, "the served chain does not verify");
        let mut problem = reasons::classify(&e, facts);
        if problem == ChainProblem::Dates {
            // Out of its dates: would it verify while every certificate is
            // valid? If not, the other fault is the more telling one.
            let sent: Vec<&ChainCert> = facts.iter().filter(|c| !c.is_root).collect();
            let start = sent.iter().map(|c| c.not_before).max();
            let end = sent.iter().map(|c| c.not_after).min();
            if let (Some(start), Some(end)) = (start, end) {
                if start < end {
                    if let Err(e2) = at(start + time::Duration::seconds(1)) {
                        tracing::debug!(host, error = ?e2, "the served chain does not verify within its dates either");
                        let p2 = reasons::classify(&e2, facts);
                        if p2 != ChainProblem::Dates {
                            problem = p2;
                        }
                    }
                }
            }
        }
        ChainCheck::bad(problem)
    }
}

/// The verdict of the path validation (names are checked separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    pub chain_valid: bool,
    pub problem: Option<ChainProblem>,
}

impl ChainCheck {
    fn bad(p: ChainProblem) -> ChainCheck {
        ChainCheck {
            chain_valid: false,
            problem: Some(p),
        }
    }
}

/// Result of one pinned handshake.
pub enum Handshake {
    /// Done: the open stream and the chain the server sent.
    Accepted(Box<TlsStream<TcpStream>>, Vec<CertificateDer<'static>>),
    /// The server refused the version (alert, other version, reset, close).
    NotAccepted(ProbeError),
}

/// Connects with the connect timeout.
pub async fn connect(addr: SocketAddr, t: &Timeouts) -> Result<TcpStream, ProbeError> {
    match tokio::time::timeout(t.connect, TcpStream::connect(addr)).await {
        Err(_) => Err(ProbeError::new(
            ErrorKind::ConnectTimeout,
            format!("no TCP connection to {addr} within {:?}", t.connect),
        )),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(ProbeError::new(
            ErrorKind::Refused,
            format!("connection to {addr} refused: nothing listens there"),
        )),
        Ok(Err(e)) => Err(ProbeError::io(&format!("connect to {addr}"), &e)),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// A reset, abort or early end of stream.
pub fn is_closed(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionReset | K::ConnectionAborted | K::UnexpectedEof | K::BrokenPipe
    )
}

/// A full handshake with only `version` offered.
pub async fn handshake(
    tls: &Tls,
    addr: SocketAddr,
    host: &str,
    tls13: bool,
    t: &Timeouts,
) -> Result<Handshake, ProbeError> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| {
        ProbeError::new(
            ErrorKind::Config,
            format!("{host:?} is not a valid TLS name: {e}"),
        )
    })?;
    if tls13 {
        return attempt(&tls.tls13, addr, name, t).await;
    }
    match attempt(&tls.tls12, addr, name.clone(), t).await {
        // The server picked a curve the probe only lists: again without them.
        Err(e) if e.message.ends_with(OFFER_ONLY_CHOSEN) => {
            tracing::debug!(%addr, "{}; trying TLS 1.2 again without it", e.message);
            attempt(&tls.tls12_plain, addr, name, t).await
        }
        other => other,
    }
}

/// One handshake with `config`.
async fn attempt(
    config: &Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    name: ServerName<'static>,
    t: &Timeouts,
) -> Result<Handshake, ProbeError> {
    let tcp = connect(addr, t).await?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let stream = match tokio::time::timeout(t.handshake, connector.connect(name, tcp)).await {
        Err(_) => {
            return Err(ProbeError::new(
                ErrorKind::HandshakeTimeout,
                format!(
                    "TLS handshake with {addr} not done within {:?}",
                    t.handshake
                ),
            ))
        }
        Ok(Err(e)) => return classify_handshake_error(&e),
        Ok(Ok(s)) => s,
    };
    let chain = stream
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    Ok(Handshake::Accepted(Box::new(stream), chain))
}

fn classify_handshake_error(e: &std::io::Error) -> Result<Handshake, ProbeError> {
    if is_closed(e) {
        return Ok(Handshake::NotAccepted(ProbeError::new(
            ErrorKind::Closed,
            format!("the server closed the connection ({e})"),
        )));
    }
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    if let Some(rustls::Error::General(m)) = inner {
        if m.ends_with(OFFER_ONLY_CHOSEN) {
            return Err(ProbeError::new(ErrorKind::Tls, m.clone()));
        }
    }
    match inner {
        Some(rustls::Error::AlertReceived(a)) => Ok(Handshake::NotAccepted(ProbeError::new(
            ErrorKind::Alert,
            format!("the server sent TLS alert {}", reasons::alert_name(u8::from(*a))),
        ))),
        Some(rustls::Error::PeerIncompatible(p)) => Ok(Handshake::NotAccepted(ProbeError::new(
            ErrorKind::Tls,
            format!(
                "the server has nothing in common with the probe ({})",
                reasons::spaced(&format!("{p:?}"))
            ),
        ))),
        Some(
            rustls::Error::InvalidMessage(
                rustls::InvalidMessage::HandshakePayloadTooLarge
                | rustls::InvalidMessage::MessageTooLarge,
            )
            | rustls::Error::PeerSentOversizedRecord,
        ) => Err(ProbeError::new(
            ErrorKind::TooLarge,
            format!("the server sent an oversized handshake message (a certificate chain over 64 KiB?): {e}"),
        )),
        Some(
            rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::DecryptError,
        ) => Err(ProbeError::new(
            ErrorKind::Garbage,
            format!("the server's reply is not valid TLS: {e}"),
        )),
        Some(other) => Err(ProbeError::new(ErrorKind::Tls, format!("TLS handshake failed: {other}"))),
        None => Err(ProbeError::io("TLS handshake", e)),
    }
}

/// Accepts whatever the server presents and whatever it signs the handshake
/// with: the handshake is for looking, not for trusting. A weak key (RSA-1024),
/// a SHA-1 or unusual signature, an untrusted or expired chain all complete the
/// handshake so the grader can judge them; [`Tls::verify`] checks the captured
/// chain afterwards. Nothing travels over these connections but a `GET`.
#[derive(Debug)]
pub struct AcceptAny;

/// Curves rustls cannot compute a key exchange on, offered in TLS 1.2's
/// supported_groups (after the real ones): an OpenSSL server sends an EC
/// certificate only when its curve is in that list, so without them a
/// P-224 or P-521 certificate would end the handshake instead of being
/// graded. A server that picks one of them for the key exchange itself
/// fails the handshake, as it would without them.
static OFFER_ONLY: [&dyn SupportedKxGroup; 3] = [
    &OfferOnly(NamedGroup::secp521r1, "secp521r1"),
    &OfferOnly(NamedGroup::Unknown(0x0015), "secp224r1"),
    &OfferOnly(NamedGroup::Unknown(0x0013), "secp192r1"),
];

/// How the error of a chosen offer-only curve ends.
const OFFER_ONLY_CHOSEN: &str = ", which the probe only lists";

#[derive(Debug)]
struct OfferOnly(NamedGroup, &'static str);

impl SupportedKxGroup for OfferOnly {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, rustls::Error> {
        Err(rustls::Error::General(format!(
            "the server chose key exchange group {}{OFFER_ONLY_CHOSEN}",
            self.1
        )))
    }

    fn name(&self) -> NamedGroup {
        self.0
    }

    fn usable_for_version(&self, v: rustls::ProtocolVersion) -> bool {
        v == rustls::ProtocolVersion::TLSv1_2
    }
}

/// Every signature scheme rustls can name, legacy ones included, so a server
/// that can only sign with SHA-1 or an old key still completes the handshake.
pub const ALL_SCHEMES: [SignatureScheme; 13] = [
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::ECDSA_NISTP521_SHA512,
    SignatureScheme::ED25519,
    SignatureScheme::ED448,
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
    SignatureScheme::RSA_PKCS1_SHA1,
    SignatureScheme::ECDSA_SHA1_Legacy,
];

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ALL_SCHEMES.to_vec()
    }
}
