//! A peer that accepts TCP connections on 127.0.0.1 and then never answers:
//! it reads (and drops) whatever the client sends and holds the connection
//! open. [`SilentPeer::one_byte`] sends one byte first, then stalls, like
//! a server that hangs after starting its greeting; [`SilentPeer::one_byte_reply`]
//! waits for the client's first bytes (a request, a TLS ClientHello), answers
//! one byte and stalls. It counts the
//! connections it accepted, so a test can also show that nothing connected.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

pub struct SilentPeer {
    pub port: u16,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl SilentPeer {
    /// Accepts, reads, never writes.
    pub fn start() -> SilentPeer {
        Self::serve(None, false)
    }

    /// Accepts, writes `byte`, then reads and never writes again.
    pub fn one_byte(byte: u8) -> SilentPeer {
        Self::serve(Some(byte), false)
    }

    /// Accepts, reads the client's first bytes, writes `byte`, then reads
    /// and never writes again.
    pub fn one_byte_reply(byte: u8) -> SilentPeer {
        Self::serve(Some(byte), true)
    }

    fn serve(first: Option<u8>, after_request: bool) -> SilentPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, halt) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let halt = halt.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    if after_request && conn.read(&mut buf).unwrap_or(0) == 0 {
                        return;
                    }
                    if let Some(b) = first {
                        let _ = conn.write_all(&[b]);
                    }
                    // Until the client gives up (or the peer is dropped).
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || halt.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                });
            }
        });
        SilentPeer {
            port,
            accepted,
            stop,
        }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for SilentPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
