//! A small real HTTP/1.1 server for tests, on 127.0.0.1: records every
//! request and answers from a script (then 200 "ok"). Plain HTTP, or HTTPS
//! with a certificate from a private CA ([`Receiver::start_tls`]).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::tlsgen::TestCa;

#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: if status < 300 {
                "ok".into()
            } else {
                "nope".into()
            },
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub struct Receiver {
    pub port: u16,
    /// HTTPS: the TLS handshakes that failed (the client did not trust the
    /// certificate, or gave up), each with the server's reason.
    handshake_errors: Arc<Mutex<Vec<String>>>,
    tls: bool,
    requests: Arc<Mutex<Vec<Request>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Starts a receiver that answers `script` in order, then 200.
    pub async fn start(script: Vec<Reply>) -> Receiver {
        Self::start_with(script, None).await
    }

    /// An HTTPS receiver whose certificate (for 127.0.0.1 and localhost) is
    /// signed by `ca`; clients must trust `ca` to reach it.
    pub async fn start_tls(script: Vec<Reply>, ca: &TestCa) -> Receiver {
        let config = ca.server_config(&["127.0.0.1", "localhost"]);
        Self::start_with(script, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(script: Vec<Reply>, tls: Option<TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handshake_errors = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (r, s, h) = (requests.clone(), script.clone(), handshake_errors.clone());
        let is_tls = tls.is_some();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (r, s, h, tls) = (r.clone(), s.clone(), h.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        None => {
                            let _ = serve(sock, &r, &s).await;
                        }
                        Some(acceptor) => match acceptor.accept(sock).await {
                            Ok(stream) => {
                                let _ = serve(stream, &r, &s).await;
                            }
                            Err(e) => h.lock().unwrap().push(e.to_string()),
                        },
                    }
                });
            }
        });
        Receiver {
            port,
            handshake_errors,
            tls: is_tls,
            requests,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}{path}", self.port)
    }

    pub fn handshake_errors(&self) -> Vec<String> {
        self.handshake_errors.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    sock: S,
    requests: &Mutex<Vec<Request>>,
    script: &Mutex<VecDeque<Reply>>,
) -> std::io::Result<()> {
    let mut io = BufReader::new(sock);
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(());
    }
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        io.read_line(&mut h).await?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    requests.lock().unwrap().push(Request {
        method,
        path,
        headers,
        body,
        at,
    });
    let reply = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::status(200));
    let mut out = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (n, v) in &reply.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&reply.body);
    let mut sock = io.into_inner();
    sock.write_all(out.as_bytes()).await?;
    sock.shutdown().await
}
