//! Email through SMTP (lettre): STARTTLS, implicit TLS, or plain to a local relay.

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channel::SendError;
use super::config::{EmailChannel, SmtpTls};
use super::message::{hostname, plain_text, subject};
use super::state::Notification;

pub(super) async fn send(c: &EmailChannel, batch: &[Notification]) -> Result<(), SendError> {
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
pub(super) fn build(c: &EmailChannel, batch: &[Notification]) -> Result<Message, SendError> {
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
        wrap(&plain_text(batch), WIDTH),
        hostname()
    );
    let domain = c
        .from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim().to_string())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(hostname);
    // A single text/plain part: MIME-Version 1.0 comes with it. Lines are
    // wrapped short, so the body travels as 7bit (8bit with non-ASCII names)
    // and reads as written; only an unbreakable line over 998 bytes falls
    // back to lettre's quoted-printable.
    let body = Body::new_with_encoding(body.clone(), ContentTransferEncoding::SevenBit)
        .or_else(|_| Body::new_with_encoding(body.clone(), ContentTransferEncoding::EightBit))
        .unwrap_or_else(|_| Body::new(body));
    b.message_id(Some(message_id(&domain)))
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body),
        )
        .map_err(|e| SendError::config(format!("cannot build the email: {e}")))
}

/// Body lines stay under this many characters.
const WIDTH: usize = 72;

/// `<time.random@domain>`: unique, with the sender's domain (RFC 5322 3.6.4).
fn message_id(domain: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "<{now}.{}@{domain}>",
        hex::encode(rand::random::<[u8; 8]>())
    )
}

/// Wraps every line longer than `width` at spaces; continuation lines keep
/// the line's indentation plus two spaces. A word longer than the width
/// stays whole on its own line.
pub(super) fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / width);
    for line in text.split('\n') {
        if line.chars().count() <= width {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let cont = format!("{}  ", &line[..indent]);
        let mut current = line[..indent].to_string();
        let mut has_word = false;
        for word in line[indent..].split(' ').filter(|w| !w.is_empty()) {
            let len = current.chars().count();
            if has_word && len + 1 + word.chars().count() > width {
                out.push_str(&current);
                out.push('\n');
                current = cont.clone();
                has_word = false;
            }
            if has_word {
                current.push(' ');
            }
            current.push_str(word);
            has_word = true;
        }
        out.push_str(&current);
        out.push('\n');
    }
    // `split` yields one more (empty) piece after a final newline.
    if !text.ends_with('\n') {
        out.pop();
    } else {
        out.truncate(out.len() - 1);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_short_lines_and_indents_continuations() {
        assert_eq!(wrap("a\nb\n", 10), "a\nb\n");
        assert_eq!(wrap("short", 10), "short");
        assert_eq!(
            wrap("  Problem: one two three four five\n", 16),
            "  Problem: one\n    two three\n    four five\n"
        );
        let long = "x".repeat(100);
        assert_eq!(
            wrap(&format!("  a {long} b"), 20),
            format!("  a\n    {long}\n    b")
        );
        let text = "  Problem: the intermediate certificate is missing: the server sends only its certificate, issued by \"CN=R3\", which is not a trusted root\n";
        for l in wrap(text, WIDTH).lines() {
            assert!(l.len() <= WIDTH, "{l}");
        }
        assert_eq!(
            wrap(text, WIDTH).split_whitespace().collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
    }
}
