//! The daemon's HTTP listener (`[daemon] metrics_listen`): `/metrics`, the
//! status page `/` and `/status.json`, served by hyper's HTTP/1.1 server.
//!
//! GET and HEAD only (405 with `Allow` otherwise, 404 for other paths). A
//! client must send its request headers within `http_header_timeout`; a
//! connection lives at most `http_connection_timeout`; at most
//! `http_max_connections` are served at once, the next ones wait in the
//! kernel's accept queue until one closes (so for at most the connection
//! time limit). The process-wide cancellation token stops the listener:
//! no new connections, open ones finish their request and close.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::metrics::{Exposition, Shared};
use crate::shutdown::Token;

/// Bounds on what clients of the listener may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub connection_timeout: Duration,
}

impl Limits {
    pub(crate) fn from_config(d: &crate::config::daemon::DaemonConfig) -> Limits {
        Limits {
            max_connections: d.http_max_connections.get(),
            header_timeout: d.http_header_timeout.get(),
            connection_timeout: d.http_connection_timeout.get(),
        }
    }
}

/// How long an open connection gets to finish its request once the listener
/// stops or the connection's time is up.
const GRACE: Duration = Duration::from_secs(5);

/// What the listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Metrics,
    Status,
    StatusJson,
}

/// Which page `method` and `path` ask for, or the error status (pure).
fn route(method: &Method, path: &str) -> Result<Page, StatusCode> {
    let page = match path {
        "/metrics" => Page::Metrics,
        "/" => Page::Status,
        "/status.json" => Page::StatusJson,
        _ => return Err(StatusCode::NOT_FOUND),
    };
    if method == Method::GET || method == Method::HEAD {
        Ok(page)
    } else {
        Err(StatusCode::METHOD_NOT_ALLOWED)
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
    }
    r
}

/// The response to `method` `path`. A HEAD gets the same headers as a GET
/// (hyper leaves the body out and keeps its Content-Length).
fn respond(method: &Method, path: &str, exposition: &Exposition) -> Response<Full<Bytes>> {
    let page = match route(method, path) {
        Ok(p) => p,
        Err(StatusCode::METHOD_NOT_ALLOWED) => {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served here\n",
            )
        }
        Err(s) => return text(s, "try /, /status.json or /metrics\n"),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (body, ctype) = match page {
        Page::Metrics => match exposition.render() {
            Ok(body) => (body, super::metrics::CONTENT_TYPE),
            Err(e) => {
                tracing::error!("cannot render the metrics: {e}");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the metrics could not be rendered; see the daemon's log\n",
                );
            }
        },
        Page::Status => (
            super::status::html(&exposition.snapshot(), now),
            "text/html; charset=utf-8",
        ),
        Page::StatusJson => (
            super::status::json(&exposition.snapshot(), now).to_string(),
            "application/json",
        ),
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// Serves the pages on `listener` until `token` is cancelled.
pub(crate) async fn serve(listener: TcpListener, metrics: Shared, limits: Limits, token: Token) {
    let exposition = Arc::new(Exposition::new(metrics));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        // A slot first: over the bound, the next connection waits in the
        // accept queue instead of costing a task.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = token.cancelled() => break,
        };
        let sock = tokio::select! {
            r = listener.accept() => match r {
                Ok((sock, _)) => sock,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment
                    // rather than spin.
                    tracing::warn!("metrics listener: cannot accept a connection: {e}");
                    if token.sleep(Duration::from_millis(200)).await.is_err() {
                        break;
                    }
                    continue;
                }
            },
            () = token.cancelled() => break,
        };
        let exposition = exposition.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let r = respond(req.method(), req.uri().path(), &exposition);
            async move { Ok::<_, Infallible>(r) }
        });
        let conn = builder.serve_connection(TokioIo::new(sock), service);
        let token = token.clone();
        conns.spawn(async move {
            let _permit = permit;
            tokio::pin!(conn);
            let stop = tokio::select! {
                _ = conn.as_mut() => return,
                () = tokio::time::sleep(limits.connection_timeout) => "time limit",
                () = token.cancelled() => "shutdown",
            };
            tracing::debug!("metrics listener: closing a connection ({stop})");
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn).await;
        });
    }
    drop(listener);
    // The open connections are closing (graceful shutdown, bounded by GRACE).
    let _ = tokio::time::timeout(GRACE + Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_get_and_head_refuse_other_methods_and_paths() {
        assert_eq!(route(&Method::GET, "/metrics"), Ok(Page::Metrics));
        assert_eq!(route(&Method::HEAD, "/metrics"), Ok(Page::Metrics));
        assert_eq!(route(&Method::GET, "/"), Ok(Page::Status));
        assert_eq!(route(&Method::HEAD, "/status.json"), Ok(Page::StatusJson));
        assert_eq!(
            route(&Method::POST, "/metrics"),
            Err(StatusCode::METHOD_NOT_ALLOWED)
        );
        assert_eq!(
            route(&Method::GET, "/metrics/x"),
            Err(StatusCode::NOT_FOUND)
        );
        assert_eq!(route(&Method::DELETE, "/nope"), Err(StatusCode::NOT_FOUND));
        let e = Exposition::new(Default::default());
        let r = respond(&Method::PUT, "/", &e);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        let r = respond(&Method::GET, "/metrics", &e);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            super::super::metrics::CONTENT_TYPE
        );
    }
}
