//! A fault-injecting HTTPS proxy in front of Pebble, on 127.0.0.1.
//!
//! It terminates TLS with a certificate from its own throwaway CA, forwards
//! every request to Pebble and rewrites Pebble's absolute URLs (bodies,
//! `Location`, `Link`) to point at itself, so an ACME client that starts at
//! [`FaultProxy::directory`] never talks to Pebble directly. Faults can be
//! switched while a test runs: answer 500, answer 429 with `Retry-After`, drop
//! connections, or be down altogether. Every request is logged with the time
//! it arrived and what it was answered with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::Pebble;

/// What the proxy does with the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward to Pebble.
    Pass,
    /// Answer the next `n` requests with a bare HTTP 500 (an HTML page, as a
    /// load balancer would send).
    Status500(u32),
    /// Answer the next `n` requests with 429, `Retry-After: secs` and an ACME
    /// `rateLimited` problem document.
    RateLimit { n: u32, retry_after: u64 },
    /// Close the connection without an answer for the next `n` requests.
    Reset(u32),
    /// Accept nothing: every connection is closed at once, until switched back.
    Down,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Status the client got; 0 when the connection was closed instead.
    pub status: u16,
}

/// One new-order request the proxy saw, read from its JWS payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrderSeen {
    /// The `profile` field, if the client sent one.
    pub profile: Option<String>,
    /// Whether the client sent `replaces` (ARI).
    pub replaces: bool,
    /// The `replaces` value (the ARI certificate identifier), if sent.
    pub replaces_id: Option<String>,
    /// The identifiers' values.
    pub identifiers: Vec<String>,
    /// Status the client got.
    pub status: u16,
}

/// An ACME problem the proxy answers instead of forwarding.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Problem type after `urn:ietf:params:acme:error:`.
    pub kind: String,
    pub status: u16,
    pub detail: String,
}

struct State {
    fault: Fault,
    /// Profiles (name, description) put in the directory's `meta.profiles`.
    profiles: Option<Vec<(String, String)>>,
    /// Leave `renewalInfo` out of the directory (a CA without ARI).
    hide_ari: bool,
    /// Answered to the next new-order requests that carry `replaces`.
    refuse_replaces: Vec<Refusal>,
    orders: Vec<NewOrderSeen>,
    /// Faults apply only to requests whose path contains this (all when None).
    only: Option<String>,
    /// Orders read back as `"status": "pending"` whatever Pebble says.
    orders_pending: bool,
    /// Requests whose path contains the text are held this long before
    /// they are forwarded.
    delay: Option<(String, Duration)>,
    log: Vec<Seen>,
}

pub struct FaultProxy {
    // Shutting the runtime down (on drop) stops the proxy.
    rt: Option<tokio::runtime::Runtime>,
    state: Arc<Mutex<State>>,
    /// The ACME directory URL through the proxy.
    pub directory: String,
    /// PEM bundle with the proxy's CA and Pebble's API CA.
    pub ca_bundle: PathBuf,
}

impl FaultProxy {
    /// Starts a proxy for `pebble`, writing its files under `dir`.
    pub fn start(dir: &Path, pebble: &Pebble) -> FaultProxy {
        std::fs::create_dir_all(dir).expect("proxy dir");
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "certkeep test fault proxy CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().expect("key");
        let leaf =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params")
                .signed_by(&leaf_key, &issuer)
                .expect("leaf");
        let pebble_ca = std::fs::read_to_string(&pebble.api_ca).expect("pebble api ca");
        let ca_bundle = dir.join("ca-bundle.pem");
        std::fs::write(&ca_bundle, format!("{}{pebble_ca}", ca.pem())).expect("write bundle");
        Self::serve(
            pebble,
            leaf.der().to_vec(),
            leaf_key.serialize_der(),
            ca_bundle,
        )
    }

    /// A pass-through proxy that presents Pebble's own API certificate, so
    /// a client trusting Pebble (`pebble.api_ca`) trusts it too: a second
    /// ACME directory URL for the same Pebble, whose requests are logged.
    /// The test bed's staging CA.
    pub fn start_as_pebble(pebble: &Pebble) -> FaultProxy {
        Self::serve(
            pebble,
            pebble.api_cert_der.clone(),
            pebble.api_key_der.clone(),
            pebble.api_ca.clone(),
        )
    }

    fn serve(
        pebble: &Pebble,
        leaf_der: Vec<u8>,
        leaf_key_der: Vec<u8>,
        ca_bundle: PathBuf,
    ) -> FaultProxy {
        let pebble_ca = std::fs::read_to_string(&pebble.api_ca).expect("pebble api ca");
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key_der)),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

        let upstream_base = pebble
            .directory
            .strip_suffix("/dir")
            .expect("pebble directory ends in /dir")
            .to_string();
        let upstream = reqwest::Client::builder()
            .tls_certs_only(
                reqwest::Certificate::from_pem_bundle(pebble_ca.as_bytes()).expect("pebble ca"),
            )
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("upstream client");

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // Bound without block_on, so a proxy can be started (and dropped)
        // from async tests too.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(std_listener).expect("proxy listener")
        };
        let port = listener.local_addr().expect("addr").port();
        let own_base = format!("https://127.0.0.1:{port}");
        let state = Arc::new(Mutex::new(State {
            fault: Fault::Pass,
            profiles: None,
            hide_ari: false,
            refuse_replaces: Vec::new(),
            orders: Vec::new(),
            only: None,
            orders_pending: false,
            delay: None,
            log: Vec::new(),
        }));
        let ctx = Arc::new(Ctx {
            state: state.clone(),
            upstream,
            upstream_base,
            own_base: own_base.clone(),
        });
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                if ctx.state.lock().unwrap().fault == Fault::Down {
                    drop(tcp);
                    continue;
                }
                let acceptor = acceptor.clone();
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        let _ = serve(tls, &ctx).await;
                    }
                });
            }
        });
        FaultProxy {
            rt: Some(rt),
            state,
            directory: format!("{own_base}/dir"),
            ca_bundle,
        }
    }

    /// Switches the fault for every request.
    pub fn set(&self, fault: Fault) {
        self.set_for(fault, None);
    }

    /// Switches the fault for requests whose path contains `only`.
    pub fn set_for(&self, fault: Fault, only: Option<&str>) {
        let mut s = self.state.lock().unwrap();
        s.fault = fault;
        s.only = only.map(str::to_string);
    }

    /// Makes the directory advertise these profiles (name, description) in
    /// `meta.profiles`, as a CA with the profiles extension does. New-order
    /// requests are forwarded unchanged: Pebble 2.6 knows no profiles and,
    /// decoding JSON as Go does, ignores the unknown `profile` field, so
    /// the order is the CA's default whatever was asked (a request cannot be
    /// changed without the account key to sign it again). What the client
    /// asked for is in [`FaultProxy::orders`].
    pub fn advertise_profiles(&self, profiles: &[(&str, &str)]) {
        self.state.lock().unwrap().profiles = Some(
            profiles
                .iter()
                .map(|(n, d)| (n.to_string(), d.to_string()))
                .collect(),
        );
    }

    /// Leaves `renewalInfo` out of the directory from now on, as a CA
    /// without ARI (RFC 9773) would.
    pub fn hide_ari(&self) {
        self.state.lock().unwrap().hide_ari = true;
    }

    /// Answers each of the next new-order requests that carry `replaces`
    /// with one of these problems, in order, instead of forwarding them.
    pub fn refuse_replaces(&self, refusals: Vec<Refusal>) {
        self.state.lock().unwrap().refuse_replaces = refusals;
    }

    /// While on, every order the client reads (Pebble's `/my-order/`)
    /// says `"status": "pending"`, as from a CA that never gets round to
    /// validating: the client waits until its `order_timeout`.
    pub fn hold_orders_pending(&self, on: bool) {
        self.state.lock().unwrap().orders_pending = on;
    }

    /// Holds every request whose path contains `only` for `by` before
    /// forwarding it (each connection on its own, so concurrent requests
    /// overlap); `None` ends it.
    pub fn delay(&self, only: Option<(&str, Duration)>) {
        self.state.lock().unwrap().delay = only.map(|(p, d)| (p.to_string(), d));
    }

    /// Every new-order request seen so far.
    pub fn orders(&self) -> Vec<NewOrderSeen> {
        self.state.lock().unwrap().orders.clone()
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.state.lock().unwrap().log.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

struct Ctx {
    state: Arc<Mutex<State>>,
    upstream: reqwest::Client,
    upstream_base: String,
    own_base: String,
}

enum Action {
    Forward,
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    Close,
}

impl Ctx {
    /// Decides what to do with a request and counts the fault down.
    fn action(&self, path: &str) -> Action {
        let mut s = self.state.lock().unwrap();
        if s.only.as_deref().is_some_and(|o| !path.contains(o)) {
            return Action::Forward;
        }
        let (action, next) = match s.fault {
            Fault::Pass => (Action::Forward, Fault::Pass),
            Fault::Down => (Action::Close, Fault::Down),
            Fault::Reset(n) => (
                Action::Close,
                countdown(Fault::Reset(n.saturating_sub(1)), n),
            ),
            Fault::Status500(n) => (
                Action::Answer(
                    500,
                    vec![("Content-Type".into(), "text/html".into())],
                    b"<html><body><h1>500 Internal Server Error</h1></body></html>\n".to_vec(),
                ),
                countdown(Fault::Status500(n.saturating_sub(1)), n),
            ),
            Fault::RateLimit { n, retry_after } => (
                Action::Answer(
                    429,
                    vec![
                        ("Content-Type".into(), "application/problem+json".into()),
                        ("Retry-After".into(), retry_after.to_string()),
                    ],
                    serde_json::json!({
                        "type": "urn:ietf:params:acme:error:rateLimited",
                        "detail": "too many requests (fault proxy)",
                        "status": 429,
                    })
                    .to_string()
                    .into_bytes(),
                ),
                countdown(
                    Fault::RateLimit {
                        n: n.saturating_sub(1),
                        retry_after,
                    },
                    n,
                ),
            ),
        };
        s.fault = next;
        action
    }

    fn record(&self, at: Instant, method: &str, path: &str, status: u16) {
        self.state.lock().unwrap().log.push(Seen {
            at,
            method: method.to_string(),
            path: path.to_string(),
            status,
        });
    }

    /// Puts the advertised profiles into a directory document, and takes
    /// `renewalInfo` out when ARI is hidden.
    fn with_profiles(&self, body: Vec<u8>) -> Vec<u8> {
        let (profiles, hide_ari) = {
            let s = self.state.lock().unwrap();
            (s.profiles.clone(), s.hide_ari)
        };
        let mut dir: serde_json::Value = serde_json::from_slice(&body).expect("directory JSON");
        if hide_ari {
            if let Some(d) = dir.as_object_mut() {
                d.remove("renewalInfo");
            }
        }
        let Some(profiles) = profiles else {
            return serde_json::to_vec(&dir).expect("directory JSON");
        };
        let map: serde_json::Map<String, serde_json::Value> = profiles
            .into_iter()
            .map(|(n, d)| (n, serde_json::Value::String(d)))
            .collect();
        dir["meta"]["profiles"] = serde_json::Value::Object(map);
        serde_json::to_vec(&dir).expect("directory JSON")
    }

    fn rewrite(&self, s: &str) -> String {
        s.replace(&self.upstream_base, &self.own_base)
    }
}

/// Reads a new-order request's JWS payload.
fn read_new_order(body: &[u8]) -> Option<NewOrderSeen> {
    use base64::Engine;
    let jws: serde_json::Value = serde_json::from_slice(body).ok()?;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jws["payload"].as_str()?)
        .ok()?;
    let p: serde_json::Value = serde_json::from_slice(&payload).ok()?;
    Some(NewOrderSeen {
        profile: p["profile"].as_str().map(str::to_string),
        replaces: p.get("replaces").is_some(),
        replaces_id: p["replaces"].as_str().map(str::to_string),
        identifiers: p["identifiers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|i| i["value"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        status: 0,
    })
}

/// An order document with its status set to "pending".
fn pending(body: Vec<u8>) -> Vec<u8> {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(mut v) if v.get("status").is_some() => {
            v["status"] = serde_json::Value::String("pending".into());
            serde_json::to_vec(&v).unwrap_or(body)
        }
        _ => body,
    }
}

fn countdown(next: Fault, n: u32) -> Fault {
    if n <= 1 {
        Fault::Pass
    } else {
        next
    }
}

/// Serves HTTP/1.1 requests on one connection until it closes.
async fn serve<S>(stream: S, ctx: &Ctx) -> std::io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut stream = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let at = Instant::now();
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("/").to_string();
        let mut headers: Vec<(String, String)> = Vec::new();
        loop {
            let mut h = String::new();
            if stream.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;

        let new_order = (method == "POST" && path == "/order-plz")
            .then(|| read_new_order(&body))
            .flatten();
        let refusal = new_order.as_ref().filter(|o| o.replaces).and_then(|_| {
            let mut s = ctx.state.lock().unwrap();
            (!s.refuse_replaces.is_empty()).then(|| s.refuse_replaces.remove(0))
        });
        let action = match refusal {
            Some(r) => Action::Answer(
                r.status,
                vec![("Content-Type".into(), "application/problem+json".into())],
                serde_json::json!({
                    "type": format!("urn:ietf:params:acme:error:{}", r.kind),
                    "detail": r.detail,
                    "status": r.status,
                })
                .to_string()
                .into_bytes(),
            ),
            None => ctx.action(&path),
        };
        let (status, rsp_headers, rsp_body) = match action {
            Action::Close => {
                ctx.record(at, &method, &path, 0);
                return Ok(());
            }
            Action::Answer(status, h, b) => (status, h, b),
            Action::Forward => {
                let hold = ctx
                    .state
                    .lock()
                    .unwrap()
                    .delay
                    .clone()
                    .filter(|(only, _)| path.contains(only.as_str()));
                if let Some((_, by)) = hold {
                    tokio::time::sleep(by).await;
                }
                let method_v = reqwest::Method::from_bytes(method.as_bytes())
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let mut req = ctx
                    .upstream
                    .request(method_v, format!("{}{path}", ctx.upstream_base));
                // Host goes through: Pebble checks each JWS `url` against the
                // host it was asked for, and builds its URLs from it.
                for (k, v) in &headers {
                    let lk = k.to_ascii_lowercase();
                    if !matches!(lk.as_str(), "content-length" | "connection") {
                        req = req.header(k.as_str(), v.as_str());
                    }
                }
                let rsp = match req.body(body).send().await {
                    Ok(r) => r,
                    Err(e) => {
                        let msg = format!("upstream: {e}");
                        ctx.record(at, &method, &path, 502);
                        write_response(stream.get_mut(), 502, &[], msg.as_bytes()).await?;
                        continue;
                    }
                };
                let status = rsp.status().as_u16();
                let mut h = Vec::new();
                for (k, v) in rsp.headers() {
                    let lk = k.as_str();
                    if matches!(lk, "content-length" | "connection" | "transfer-encoding") {
                        continue;
                    }
                    let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                    let v = if matches!(lk, "location" | "link") {
                        ctx.rewrite(&v)
                    } else {
                        v
                    };
                    h.push((k.as_str().to_string(), v));
                }
                let b = rsp.bytes().await.map_err(std::io::Error::other)?;
                let b = match std::str::from_utf8(&b) {
                    Ok(s) => ctx.rewrite(s).into_bytes(),
                    Err(_) => b.to_vec(),
                };
                let b = if method == "GET" && path == "/dir" {
                    ctx.with_profiles(b)
                } else if path.starts_with("/my-order/") && ctx.state.lock().unwrap().orders_pending
                {
                    pending(b)
                } else {
                    b
                };
                (status, h, b)
            }
        };
        ctx.record(at, &method, &path, status);
        if let Some(mut o) = new_order {
            o.status = status;
            ctx.state.lock().unwrap().orders.push(o);
        }
        write_response(stream.get_mut(), status, &rsp_headers, &rsp_body).await?;
    }
}

async fn write_response<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    w.write_all(head.as_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await
}
