//! A small real SMTP server for tests, on 127.0.0.1: EHLO, STARTTLS or
//! implicit TLS, AUTH PLAIN/LOGIN, MAIL/RCPT/DATA. It records every message.

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// (username, password) the client authenticated with, and the mechanism.
    pub auth: Option<(String, String, String)>,
    pub from: String,
    pub rcpt: Vec<String>,
    pub data: String,
    pub tls: bool,
}

impl Mail {
    /// Value of the first header `name` (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let mut out: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(o) = out.as_mut() {
                    o.push(' ');
                    o.push_str(line.trim());
                }
                continue;
            }
            if out.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    out = Some(v.trim().to_string());
                }
            }
        }
        out
    }

    pub fn body(&self) -> String {
        self.data
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Starttls,
    Implicit,
}

pub struct Options {
    pub mode: Mode,
    /// Mechanisms advertised, e.g. "PLAIN LOGIN"; empty for no AUTH.
    pub mechanisms: &'static str,
    /// Credentials accepted; any other answer gets 535.
    pub credentials: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Plain,
            mechanisms: "PLAIN LOGIN",
            credentials: None,
        }
    }
}

pub struct SmtpServer {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
    /// Every AUTH attempt, accepted or not: (username, password).
    pub auths: Arc<Mutex<Vec<(String, String)>>>,
    /// PEM of the CA that issued the server's certificate (for `ca_bundle`).
    pub ca_pem: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpServer {
    pub async fn start(opts: Options) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (ca_pem, acceptor) = tls_acceptor();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let auths = Arc::new(Mutex::new(Vec::new()));
        let opts = Arc::new(opts);
        let m = mails.clone();
        let a = auths.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (m, a, opts, acceptor) = (m.clone(), a.clone(), opts.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let stream: Box<dyn Stream> = if opts.mode == Mode::Implicit {
                        match acceptor.accept(sock).await {
                            Ok(s) => Box::new(s),
                            Err(_) => return,
                        }
                    } else {
                        Box::new(sock)
                    };
                    let _ = session(stream, &opts, &acceptor, &m, &a).await;
                });
            }
        });
        SmtpServer {
            port,
            mails,
            auths,
            ca_pem,
            task,
        }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

fn tls_acceptor() -> (String, TlsAcceptor) {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "certkeep test SMTP CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

async fn session(
    stream: Box<dyn Stream>,
    opts: &Options,
    acceptor: &TlsAcceptor,
    mails: &Mutex<Vec<Mail>>,
    auths: &Mutex<Vec<(String, String)>>,
) -> std::io::Result<()> {
    let mut tls = opts.mode == Mode::Implicit;
    let mut io = BufReader::new(stream);
    send(&mut io, b"220 localhost ESMTP certkeep-test\r\n").await?;
    let mut mail = Mail::default();
    let mut authed = None;
    loop {
        let line = read_line(&mut io).await?;
        let Some(line) = line else { return Ok(()) };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                let mut caps = vec!["localhost".to_string()];
                if opts.mode == Mode::Starttls && !tls {
                    caps.push("STARTTLS".into());
                }
                if !opts.mechanisms.is_empty() {
                    caps.push(format!("AUTH {}", opts.mechanisms));
                }
                caps.push("8BITMIME".into());
                let n = caps.len();
                let mut out = String::new();
                for (i, c) in caps.iter().enumerate() {
                    out.push_str(&format!("250{}{c}\r\n", if i + 1 == n { ' ' } else { '-' }));
                }
                send(&mut io, out.as_bytes()).await?;
            }
            "STARTTLS" if opts.mode == Mode::Starttls && !tls => {
                send(&mut io, b"220 ready to start TLS\r\n").await?;
                let inner = io.into_inner();
                let s = acceptor.accept(inner).await?;
                io = BufReader::new(Box::new(s));
                tls = true;
            }
            "AUTH" => {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let mech = parts
                    .get(1)
                    .map(|s| s.to_ascii_uppercase())
                    .unwrap_or_default();
                let creds = match mech.as_str() {
                    "PLAIN" => {
                        let arg = match parts.get(2) {
                            Some(a) => a.to_string(),
                            None => {
                                send(&mut io, b"334 \r\n").await?;
                                read_line(&mut io).await?.unwrap_or_default()
                            }
                        };
                        let dec = b64(&arg);
                        let f: Vec<&str> = dec.split('\0').collect();
                        (
                            f.get(1).unwrap_or(&"").to_string(),
                            f.get(2).unwrap_or(&"").to_string(),
                        )
                    }
                    "LOGIN" => {
                        send(&mut io, b"334 VXNlcm5hbWU6\r\n").await?;
                        let u = b64(&read_line(&mut io).await?.unwrap_or_default());
                        send(&mut io, b"334 UGFzc3dvcmQ6\r\n").await?;
                        let p = b64(&read_line(&mut io).await?.unwrap_or_default());
                        (u, p)
                    }
                    _ => {
                        send(&mut io, b"504 mechanism not supported\r\n").await?;
                        continue;
                    }
                };
                auths.lock().unwrap().push(creds.clone());
                if opts.credentials.as_ref() == Some(&creds) {
                    authed = Some((creds.0, creds.1, mech));
                    send(&mut io, b"235 2.7.0 authenticated\r\n").await?;
                } else {
                    send(&mut io, b"535 5.7.8 authentication credentials invalid\r\n").await?;
                }
            }
            "MAIL" => {
                if opts.credentials.is_some() && authed.is_none() {
                    send(&mut io, b"530 5.7.0 authentication required\r\n").await?;
                    continue;
                }
                mail = Mail {
                    auth: authed.clone(),
                    tls,
                    from: addr(&line),
                    ..Mail::default()
                };
                send(&mut io, b"250 ok\r\n").await?;
            }
            "RCPT" => {
                mail.rcpt.push(addr(&line));
                send(&mut io, b"250 ok\r\n").await?;
            }
            "DATA" => {
                send(&mut io, b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    let Some(l) = read_line(&mut io).await? else {
                        return Ok(());
                    };
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                mail.data = data;
                mails.lock().unwrap().push(std::mem::take(&mut mail));
                send(&mut io, b"250 queued\r\n").await?;
            }
            "RSET" | "NOOP" => send(&mut io, b"250 ok\r\n").await?,
            "QUIT" => {
                send(&mut io, b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => send(&mut io, b"502 command not implemented\r\n").await?,
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(w: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}

fn addr(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line.rfind('>').unwrap_or(line.len());
    line.get(start..end).unwrap_or("").to_string()
}

async fn read_line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> std::io::Result<Option<String>> {
    let mut buf = String::new();
    if r.read_line(&mut buf).await? == 0 {
        return Ok(None);
    }
    Ok(Some(buf.trim_end_matches(['\r', '\n']).to_string()))
}
