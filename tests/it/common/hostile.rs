//! Misbehaving TLS endpoints on loopback (small tokio servers), one behaviour
//! each, for the probe's bad-condition tests. Stopped when dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Accepts and never sends a byte.
    Silent,
    /// Sends the start of a TLS record, one byte every 200 ms, forever.
    Trickle,
    /// Answers with bytes that are not TLS.
    Garbage,
    /// Reads the ClientHello, then resets the connection.
    Reset,
    /// Answers every ClientHello with a fatal handshake_failure alert.
    Alert,
    /// A real TLS server (rustls) whose certificate chain is over 64 KiB.
    HugeChain,
}

pub struct Hostile {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server on the current tokio runtime.
    pub async fn start(b: Behaviour) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let tls = (b == Behaviour::HugeChain).then(huge_chain_acceptor);
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                let tls = tls.clone();
                tokio::spawn(async move { serve(b, s, tls).await });
            }
        });
        Hostile { port, task }
    }
}

async fn read_some(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await;
}

async fn serve(b: Behaviour, mut s: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>) {
    match b {
        Behaviour::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Behaviour::Trickle => {
            read_some(&mut s).await;
            for byte in [22u8, 3, 1, 0x40, 0x00]
                .iter()
                .chain([2u8, 0, 0, 0x3f].iter())
                .cycle()
            {
                if s.write_all(&[*byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Behaviour::Garbage => {
            read_some(&mut s).await;
            let _ = s
                .write_all(b"\x00\x42 this is not TLS at all \xff\xfe\r\n\r\n")
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        Behaviour::Reset => {
            read_some(&mut s).await;
            let _ = s.set_zero_linger();
            drop(s);
        }
        Behaviour::Alert => {
            read_some(&mut s).await;
            let _ = s.write_all(&[21, 3, 1, 0, 2, 2, 40]).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Behaviour::HugeChain => {
            if let Some(acceptor) = tls {
                let _ = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(s)).await;
            }
        }
    }
}

/// A rustls server whose chain is a leaf plus 20 copies of a ~10 KB certificate.
fn huge_chain_acceptor() -> tokio_rustls::TlsAcceptor {
    let leaf_key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["huge.test".to_string()])
        .expect("params")
        .self_signed(&leaf_key)
        .expect("leaf");
    let names: Vec<String> = (0..300)
        .map(|i| format!("padding-name-number-{i:04}.huge.test"))
        .collect();
    let big_key = rcgen::KeyPair::generate().expect("key");
    let big = rcgen::CertificateParams::new(names)
        .expect("params")
        .self_signed(&big_key)
        .expect("big");
    let mut chain = vec![leaf.der().clone()];
    for _ in 0..20 {
        chain.push(big.der().clone());
    }
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
