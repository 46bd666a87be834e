//! TLS 1.0 / 1.1 detection without a legacy TLS stack: send a hand-built
//! ClientHello for exactly one version and classify the first record of the
//! reply. [`classify_reply`] is a pure, bounded function over bytes (a fuzz
//! target); [`probe`] does the IO.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::tls::{connect, Timeouts};
use super::{ErrorKind, ProbeError};

/// Largest TLS record a server may send (2^14 plus the compression allowance).
pub const MAX_RECORD: usize = 16_384 + 2_048;

pub const TLS10: u16 = 0x0301;
pub const TLS11: u16 = 0x0302;

/// CBC, 3DES and RC4 suites that TLS 1.0/1.1 servers offer (no AEAD: those
/// need TLS 1.2), then the renegotiation SCSV.
const SUITES: [u16; 17] = [
    0xc00a, 0xc009, 0xc014, 0xc013, // ECDHE-ECDSA/RSA AES-CBC-SHA
    0x0039, 0x0033, 0x0088, 0x0045, // DHE-RSA AES/CAMELLIA
    0x0035, 0x002f, 0x0084, 0x0041, // RSA AES/CAMELLIA
    0x000a, 0x0016, // 3DES
    0x0005, 0x0004, // RC4
    0x00ff, // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
];

/// Named groups: x25519, secp256r1, secp384r1, secp521r1.
const GROUPS: [u16; 4] = [0x001d, 0x0017, 0x0018, 0x0019];

/// Signature algorithms, including SHA-1 ones that legacy servers need.
const SIG_ALGS: [u16; 12] = [
    0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201, 0x0202,
];

fn push_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn push_u24(out: &mut Vec<u8>, v: usize) {
    out.extend_from_slice(&(v as u32).to_be_bytes()[1..]);
}

fn extension(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    push_u16(out, kind);
    push_u16(out, body.len() as u16);
    out.extend_from_slice(body);
}

/// A ClientHello record offering only `version` (0x0301 or 0x0302).
/// `sni` is left out for IP addresses; `random` fills the 32-byte random.
pub fn client_hello(version: u16, sni: Option<&str>, random: [u8; 32]) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni.filter(|n| n.len() <= 255) {
        let mut b = Vec::new();
        push_u16(&mut b, name.len() as u16 + 3);
        b.push(0); // host_name
        push_u16(&mut b, name.len() as u16);
        b.extend_from_slice(name.as_bytes());
        extension(&mut ext, 0x0000, &b);
    }
    let mut b = Vec::new();
    push_u16(&mut b, (GROUPS.len() * 2) as u16);
    GROUPS.iter().for_each(|g| push_u16(&mut b, *g));
    extension(&mut ext, 0x000a, &b);
    extension(&mut ext, 0x000b, &[1, 0]); // ec_point_formats: uncompressed
    let mut b = Vec::new();
    push_u16(&mut b, (SIG_ALGS.len() * 2) as u16);
    SIG_ALGS.iter().for_each(|s| push_u16(&mut b, *s));
    extension(&mut ext, 0x000d, &b);

    let mut hello = Vec::new();
    push_u16(&mut hello, version);
    hello.extend_from_slice(&random);
    hello.push(0); // empty session id
    push_u16(&mut hello, (SUITES.len() * 2) as u16);
    SUITES.iter().for_each(|s| push_u16(&mut hello, *s));
    hello.extend_from_slice(&[1, 0]); // compression: null only
    push_u16(&mut hello, ext.len() as u16);
    hello.extend_from_slice(&ext);

    let mut hs = vec![1]; // client_hello
    push_u24(&mut hs, hello.len());
    hs.extend_from_slice(&hello);

    let mut record = vec![22];
    push_u16(&mut record, TLS10); // record version: 1.0 for widest acceptance
    push_u16(&mut record, hs.len() as u16);
    record.extend_from_slice(&hs);
    record
}

/// What the first record of a server's reply says about the offered version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A ServerHello choosing the offered version.
    Accepted,
    /// A ServerHello choosing an older version than offered.
    LowerVersion(u16),
    /// An alert (level, description), e.g. 70 protocol_version or 40 handshake_failure.
    Alert(u8, u8),
    /// More bytes are needed to decide; at least this many in total.
    NeedMore(usize),
}

/// Why a reply is not a valid answer to a ClientHello.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the server answered in plain HTTP, not TLS (is this an HTTP port?)")]
    PlainHttp,
    #[error("the first record has type {0}, not a handshake or alert (not a TLS server?)")]
    RecordType(u8),
    #[error("the record version {0:#06x} is not TLS")]
    RecordVersion(u16),
    #[error("the record length {0} is out of range (1..={MAX_RECORD})")]
    RecordLength(usize),
    #[error("the first handshake message has type {0}, not ServerHello")]
    NotServerHello(u8),
    #[error("the ServerHello is malformed: {0}")]
    Malformed(&'static str),
    #[error("the server chose version {chosen:#06x}, newer than the offered {offered:#06x}")]
    HigherVersion { offered: u16, chosen: u16 },
}

/// Classifies the start of a server's reply to a ClientHello offering
/// `offered`. Pure and bounded: reads at most one record header and the first
/// few bytes of its body, whatever `bytes` holds.
pub fn classify_reply(offered: u16, bytes: &[u8]) -> Result<Reply, ReplyError> {
    if bytes.starts_with(b"HTTP/") || bytes.starts_with(b"<") {
        return Err(ReplyError::PlainHttp);
    }
    let Some(header) = bytes.get(..5) else {
        if let Some(&t) = bytes.first() {
            if t != 21 && t != 22 {
                return Err(ReplyError::RecordType(t));
            }
        }
        return Ok(Reply::NeedMore(5));
    };
    let kind = header[0];
    let version = u16::from_be_bytes([header[1], header[2]]);
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if kind != 21 && kind != 22 {
        return Err(ReplyError::RecordType(kind));
    }
    if header[1] != 3 {
        return Err(ReplyError::RecordVersion(version));
    }
    if len == 0 || len > MAX_RECORD {
        return Err(ReplyError::RecordLength(len));
    }
    let body = &bytes[5..bytes.len().min(5 + len)];
    if kind == 21 {
        return match body {
            [level, desc, ..] if len == 2 => Ok(Reply::Alert(*level, *desc)),
            _ if len != 2 => Err(ReplyError::RecordLength(len)),
            _ => Ok(Reply::NeedMore(7)),
        };
    }
    // Handshake: type(1) length(3) server_version(2).
    if let Some(&t) = body.first() {
        if t != 2 {
            return Err(ReplyError::NotServerHello(t));
        }
    }
    let Some(h) = body.get(..6) else {
        if len < 6 {
            return Err(ReplyError::Malformed(
                "the record is too short for a ServerHello",
            ));
        }
        return Ok(Reply::NeedMore(11));
    };
    let msg_len = (usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]);
    // version(2) random(32) session_id_len(1) suite(2) compression(1)
    if msg_len < 38 {
        return Err(ReplyError::Malformed(
            "the message is shorter than a ServerHello",
        ));
    }
    if msg_len > 0xffff {
        return Err(ReplyError::Malformed("the message length is implausible"));
    }
    let chosen = u16::from_be_bytes([h[4], h[5]]);
    if h[4] != 3 {
        return Err(ReplyError::Malformed("the chosen version is not TLS"));
    }
    match chosen.cmp(&offered) {
        std::cmp::Ordering::Equal => Ok(Reply::Accepted),
        std::cmp::Ordering::Less => Ok(Reply::LowerVersion(chosen)),
        std::cmp::Ordering::Greater => Err(ReplyError::HigherVersion { offered, chosen }),
    }
}

/// Whether the server at `addr` accepts `version` (TLS10 or TLS11):
/// `Ok(Ok(()))` accepted; `Ok(Err(why))` an alert, a lower version, a reset
/// or an early close; `Err` the probe failed (timeout, garbage).
pub async fn probe(
    addr: SocketAddr,
    sni: Option<&str>,
    version: u16,
    t: &Timeouts,
) -> Result<Result<(), ProbeError>, ProbeError> {
    let mut tcp = connect(addr, t).await?;
    let hello = client_hello(version, sni, rand::random());
    let exchange = async {
        tcp.write_all(&hello).await?;
        let mut buf = Vec::with_capacity(64);
        let mut chunk = [0u8; 512];
        loop {
            let n = tcp.read(&mut chunk).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            let room = (5 + MAX_RECORD).saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..n.min(room)]);
            match classify_reply(version, &buf) {
                Ok(Reply::NeedMore(_)) if room > n => continue,
                other => return Ok(Some(other)),
            }
        }
    };
    let reply = match tokio::time::timeout(t.handshake, exchange).await {
        Err(_) => {
            return Err(ProbeError::new(
                ErrorKind::HandshakeTimeout,
                format!(
                    "no complete reply to a ClientHello within {:?}",
                    t.handshake
                ),
            ))
        }
        Ok(Err(e)) if super::tls::is_closed(&e) => {
            return Ok(Err(ProbeError::new(
                ErrorKind::Closed,
                format!("the server closed the connection ({e})"),
            )))
        }
        Ok(Err(e)) => return Err(ProbeError::io("ClientHello exchange", &e)),
        Ok(Ok(None)) => {
            return Ok(Err(ProbeError::new(
                ErrorKind::Closed,
                "the server closed the connection".into(),
            )))
        }
        Ok(Ok(Some(r))) => r,
    };
    match reply {
        Ok(Reply::Accepted) => Ok(Ok(())),
        Ok(Reply::LowerVersion(v)) => Ok(Err(ProbeError::new(
            ErrorKind::Tls,
            format!(
                "the server chose the older version {}",
                match v {
                    0x0300 => "SSL 3.0".to_string(),
                    0x0301 => "TLS 1.0".to_string(),
                    0x0302 => "TLS 1.1".to_string(),
                    0x0303 => "TLS 1.2".to_string(),
                    other => format!("{other:#06x}"),
                }
            ),
        ))),
        Ok(Reply::Alert(level, desc)) => Ok(Err(ProbeError::new(
            ErrorKind::Alert,
            format!(
                "the server sent TLS alert {}{}",
                super::reasons::alert_name(desc),
                if level == 1 { ", a warning" } else { "" }
            ),
        ))),
        Ok(Reply::NeedMore(_)) => Err(ProbeError::new(
            ErrorKind::Garbage,
            "the first record is larger than TLS allows".into(),
        )),
        Err(e) => Err(ProbeError::new(ErrorKind::Garbage, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_hello(version: u16) -> Vec<u8> {
        let mut body = vec![2, 0, 0, 38];
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&[0; 32]);
        body.extend_from_slice(&[0, 0xc0, 0x14, 0]);
        let mut r = vec![22, 3, 1];
        r.extend_from_slice(&(body.len() as u16).to_be_bytes());
        r.extend_from_slice(&body);
        r
    }

    #[test]
    fn hello_is_well_formed() {
        let h = client_hello(TLS11, Some("a.test"), [7; 32]);
        assert_eq!(h[0], 22);
        assert_eq!(usize::from(u16::from_be_bytes([h[3], h[4]])), h.len() - 5);
        assert_eq!(h[5], 1);
        let hs_len = (usize::from(h[6]) << 16) | (usize::from(h[7]) << 8) | usize::from(h[8]);
        assert_eq!(hs_len, h.len() - 9);
        assert_eq!(&h[9..11], &[3, 2]);
        assert!(h.windows(6).any(|w| w == b"a.test"));
        let no_sni = client_hello(TLS10, None, [0; 32]);
        assert!(no_sni.len() < h.len());
    }

    #[test]
    fn accepted_lower_and_alert() {
        assert_eq!(
            classify_reply(TLS10, &server_hello(TLS10)),
            Ok(Reply::Accepted)
        );
        assert_eq!(
            classify_reply(TLS11, &server_hello(TLS10)),
            Ok(Reply::LowerVersion(TLS10))
        );
        assert_eq!(
            classify_reply(TLS10, &[21, 3, 1, 0, 2, 2, 70]),
            Ok(Reply::Alert(2, 70))
        );
        assert_eq!(
            classify_reply(TLS10, &server_hello(0x0303)),
            Err(ReplyError::HigherVersion {
                offered: TLS10,
                chosen: 0x0303
            })
        );
    }

    #[test]
    fn partial_replies_ask_for_more() {
        let full = server_hello(TLS10);
        for cut in 0..11 {
            assert!(
                matches!(classify_reply(TLS10, &full[..cut]), Ok(Reply::NeedMore(_))),
                "cut {cut}"
            );
        }
        assert_eq!(classify_reply(TLS10, &full[..11]), Ok(Reply::Accepted));
        assert!(matches!(
            classify_reply(TLS10, &[21, 3, 1, 0, 2, 2]),
            Ok(Reply::NeedMore(_))
        ));
    }

    #[test]
    fn garbage_is_rejected() {
        let cases: [(&[u8], ReplyError); 9] = [
            (b"HTTP/1.1 400 Bad Request\r\n", ReplyError::PlainHttp),
            (b"<html>", ReplyError::PlainHttp),
            (&[0x17, 3, 3, 0, 5], ReplyError::RecordType(0x17)),
            (&[0xff], ReplyError::RecordType(0xff)),
            (&[22, 2, 0, 0, 5], ReplyError::RecordVersion(0x0200)),
            (&[22, 3, 1, 0, 0], ReplyError::RecordLength(0)),
            (&[22, 3, 1, 0xff, 0xff], ReplyError::RecordLength(0xffff)),
            (
                &[22, 3, 1, 0, 6, 11, 0, 0, 2, 3, 1],
                ReplyError::NotServerHello(11),
            ),
            (&[21, 3, 1, 0, 3, 2, 70, 0], ReplyError::RecordLength(3)),
        ];
        for (bytes, want) in cases {
            assert_eq!(classify_reply(TLS10, bytes), Err(want), "{bytes:?}");
        }
        assert!(classify_reply(TLS10, &[22, 3, 1, 0, 6, 2, 0, 0, 1, 3, 1]).is_err());
        assert!(classify_reply(TLS10, &[22, 3, 1, 0, 3, 2, 0, 0]).is_err());
        assert!(classify_reply(TLS10, &[22, 3, 1, 0, 6, 2, 0, 0, 40, 9, 1]).is_err());
    }

    #[test]
    fn never_panics_on_any_short_input() {
        // Exhaustive over every 1- and 2-byte input, and structured 6-byte prefixes.
        for a in 0..=255u8 {
            let _ = classify_reply(TLS10, &[a]);
            for b in 0..=255u8 {
                let _ = classify_reply(TLS11, &[a, b]);
                let _ = classify_reply(TLS10, &[22, 3, a, 0, b, 2, a, b, 0, 3]);
                let _ = classify_reply(TLS10, &[21, 3, 1, a, b, 2, 40]);
            }
        }
    }
}
