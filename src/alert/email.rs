//! Email through SMTP (lettre): STARTTLS, implicit TLS, or plain to a local relay.

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::SendError;
use super::config::{EmailChannel, SmtpTls};
use super::message::{hostname, plain_text, subject};
use super::state::Notification;

pub async fn send(c: &EmailChannel, batch: &[Notification]) -> Result<(), SendError> {
    let msg = build(c, batch)?;
    let server = format!("SMTP server {}:{}", c.host, c.port);
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host)
        .port(c.port)
        .timeout(Some(c.timeout));
    match c.tls {
        SmtpTls::None => {}
        SmtpTls::Starttls => t = t.tls(Tls::Required(tls_parameters(c)?)),
        SmtpTls::Tls => t = t.tls(Tls::Wrapper(tls_parameters(c)?)),
    }
    if let (Some(user), Some(password)) = (&c.username, &c.password) {
        let pw = password
            .read()
            .map_err(|e| SendError::config(format!("SMTP password: {e}")))?;
        t = t.credentials(Credentials::new(user.clone(), pw));
    }
    tracing::debug!(server = %server, tls = ?c.tls, recipients = c.to.len(), "sending alert email");
    t.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| SendError::new(format!("{server}: {}", crate::net::error_chain(&e))))
}

/// The message: plain text, one section per alert.
pub fn build(c: &EmailChannel, batch: &[Notification]) -> Result<Message, SendError> {
    let mailbox = |s: &str| {
        s.parse::<Mailbox>()
            .map_err(|e| SendError::config(format!("address {s:?}: {e}")))
    };
    let mut b = Message::builder().from(mailbox(&c.from)?).subject(
        format!("{} {}", c.subject_prefix, subject(batch))
            .trim()
            .to_string(),
    );
    for to in &c.to {
        b = b.to(mailbox(to)?);
    }
    let body = format!(
        "{}-- \nSent by certkeep on {}.\n\"certkeep alert status\" lists open alerts.\n",
        plain_text(batch),
        hostname()
    );
    // ASCII with lines under 76 characters travels as 7bit, unencoded;
    // lettre picks quoted-printable for anything else.
    b.header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| SendError::config(format!("cannot build the email: {e}")))
}

fn tls_parameters(c: &EmailChannel) -> Result<TlsParameters, SendError> {
    let mut b = TlsParameters::builder(c.host.clone());
    if let Some(path) = &c.ca_bundle {
        let pem = std::fs::read(path).map_err(|e| {
            SendError::config(format!("cannot read ca_bundle {}: {e}", path.display()))
        })?;
        let cert = Certificate::from_pem(&pem).map_err(|e| {
            SendError::config(format!(
                "ca_bundle {} holds no usable PEM certificate: {e}",
                path.display()
            ))
        })?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls()
        .map_err(|e| SendError::config(format!("cannot set up TLS for {}: {e}", c.host)))
}
