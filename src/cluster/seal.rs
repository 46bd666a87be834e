//! Sealing secrets (private keys, the ACME account) before they go to etcd:
//! AES-256-GCM (aws-lc-rs), a random 96-bit nonce per value, and the value's
//! name plus its version as associated data, so a sealed key copied to
//! another lineage or version does not open.
//!
//! Format: `ck1:` followed by standard base64 of nonce || ciphertext || tag.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;

pub const KEY_LEN: usize = 32;
pub const SEALED_PREFIX: &str = "ck1:";
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("cannot read the cluster encryption key {path}: {source} (make one with `head -c 32 /dev/urandom > {path}; chmod 600 {path}`)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cluster encryption key {path} is {len} bytes; it must be exactly 32 (make one with `head -c 32 /dev/urandom`)")]
    Length { path: PathBuf, len: u64 },
    #[error("the cluster encryption key {path} can be read by group or others (mode {mode:o}); run `chmod 600 {path}`")]
    Mode { path: PathBuf, mode: u32 },
    #[error("{what} is not a sealed value (expected `ck1:` and base64)")]
    Format { what: String },
    #[error("{what} does not open with the cluster encryption key {key_id}: another key sealed it, or it was sealed for another name or version")]
    Open { what: String, key_id: String },
    #[error("the system random generator failed")]
    Random,
}

/// The cluster's shared 32-byte key. Its bytes are never printed.
pub struct SealKey {
    key: LessSafeKey,
    id: String,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealKey").field("id", &self.id).finish()
    }
}

/// Associated data: what the value is and which version.
fn aad(name: &str, version: u64) -> Vec<u8> {
    format!("certkeep-cluster\n{name}\n{version}").into_bytes()
}

impl SealKey {
    /// Reads the key file: exactly 32 bytes, no access for group or others.
    pub fn load(path: &Path) -> Result<SealKey, SealError> {
        let read_err = |source| SealError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(read_err)?;
        let meta = f.metadata().map_err(read_err)?;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SealError::Mode {
                path: path.to_path_buf(),
                mode,
            });
        }
        if meta.len() != KEY_LEN as u64 {
            return Err(SealError::Length {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let mut bytes = [0u8; KEY_LEN];
        f.read_exact(&mut bytes).map_err(read_err)?;
        let key = SealKey::from_bytes(&bytes);
        bytes.fill(0);
        Ok(key)
    }

    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> SealKey {
        let digest = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &[b"certkeep cluster key id\n".as_slice(), bytes].concat(),
        );
        let id = format!("ck1-{}", hex::encode(&digest.as_ref()[..8]));
        // AES-256 accepts every 32-byte key, so this cannot fail.
        let unbound = match UnboundKey::new(&AES_256_GCM, bytes) {
            Ok(k) => k,
            Err(_) => unreachable!("AES-256-GCM takes any 32-byte key"),
        };
        SealKey {
            key: LessSafeKey::new(unbound),
            id,
        }
    }

    /// A fingerprint of the key (not the key): stored in `meta` so a node
    /// with another key stops at start.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// Seals `plain` for `name` (e.g. `lineage/web`) at `version`.
    pub fn seal(&self, name: &str, version: u64, plain: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        Ok(self.seal_with_nonce(name, version, plain, nonce))
    }

    /// [`SealKey::seal`] with a given nonce (tests; never reuse a nonce).
    pub fn seal_with_nonce(
        &self,
        name: &str,
        version: u64,
        plain: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> String {
        let mut buf = plain.to_vec();
        // Sealing only fails for inputs beyond GCM's 64 GiB limit.
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name, version)),
                &mut buf,
            )
            .is_err()
        {
            unreachable!("a sealed value is far below GCM's size limit");
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    /// Opens a value sealed for `name` at `version`.
    pub fn open(&self, name: &str, version: u64, sealed: &str) -> Result<Vec<u8>, SealError> {
        let what = || format!("the sealed value of {name} version {version}");
        let raw = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .filter(|r| r.len() >= NONCE_LEN + TAG_LEN)
            .ok_or_else(|| SealError::Format { what: what() })?;
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let mut nonce_bytes = [0u8; NONCE_LEN];
        nonce_bytes.copy_from_slice(nonce);
        let mut buf = body.to_vec();
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad(name, version)),
                &mut buf,
            )
            .map_err(|_| SealError::Open {
                what: what(),
                key_id: self.id.clone(),
            })?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";

    fn key(b: u8) -> SealKey {
        SealKey::from_bytes(&[b; KEY_LEN])
    }

    #[test]
    fn seal_then_open_round_trips_and_hides_the_pem() {
        let k = key(7);
        let s = k.seal("lineage/web", 3, PEM).unwrap();
        assert!(s.starts_with("ck1:"), "{s}");
        assert!(!s.contains("PRIVATE KEY"));
        assert_eq!(k.open("lineage/web", 3, &s).unwrap(), PEM);
        // nonce (12) + plaintext + tag (16), base64.
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&s[4..])
            .unwrap();
        assert_eq!(raw.len(), 12 + PEM.len() + 16);
    }

    #[test]
    fn random_nonce_makes_every_sealing_different() {
        let k = key(7);
        let a = k.seal("lineage/web", 1, PEM).unwrap();
        let b = k.seal("lineage/web", 1, PEM).unwrap();
        assert_ne!(a, b);
        assert_ne!(a[4..20], b[4..20]);
    }

    #[test]
    fn another_name_version_or_key_does_not_open() {
        let k = key(7);
        let s = k.seal_with_nonce("lineage/web", 2, PEM, [1; 12]);
        assert!(matches!(
            k.open("lineage/api", 2, &s),
            Err(SealError::Open { .. })
        ));
        assert!(matches!(
            k.open("lineage/web", 3, &s),
            Err(SealError::Open { .. })
        ));
        let e = key(8).open("lineage/web", 2, &s).unwrap_err();
        assert!(matches!(e, SealError::Open { .. }));
        let msg = e.to_string();
        assert!(msg.contains(key(8).key_id()), "{msg}");
        assert!(msg.contains("lineage/web version 2"), "{msg}");
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let k = key(7);
        let s = k.seal_with_nonce("lineage/web", 2, PEM, [1; 12]);
        let mut raw = base64::engine::general_purpose::STANDARD
            .decode(&s[4..])
            .unwrap();
        raw[20] ^= 1;
        let bad = format!(
            "ck1:{}",
            base64::engine::general_purpose::STANDARD.encode(&raw)
        );
        assert!(matches!(
            k.open("lineage/web", 2, &bad),
            Err(SealError::Open { .. })
        ));
        for garbage in ["", "ck1:", "ck1:!!!", "ck2:AAAA", "ck1:AAAA"] {
            assert!(
                matches!(
                    k.open("lineage/web", 2, garbage),
                    Err(SealError::Format { .. })
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn key_id_is_a_stable_fingerprint_not_the_key() {
        assert_eq!(key(7).key_id(), key(7).key_id());
        assert_ne!(key(7).key_id(), key(8).key_id());
        assert!(key(7).key_id().starts_with("ck1-"));
        assert_eq!(key(7).key_id().len(), 4 + 16);
        assert!(!key(7).key_id().contains(&hex::encode([7u8; 8])));
        assert!(!format!("{:?}", key(7)).contains("[7"));
    }

    #[test]
    fn key_file_must_be_32_bytes_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.key");
        std::fs::write(&p, [9u8; 32]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(SealKey::load(&p).unwrap().key_id(), key(9).key_id());

        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = SealKey::load(&p).unwrap_err();
        assert!(matches!(e, SealError::Mode { mode: 0o640, .. }), "{e}");
        assert!(e.to_string().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(SealKey::load(&p), Err(SealError::Mode { .. })));

        for len in [0usize, 31, 33, 64] {
            std::fs::write(&p, vec![1u8; len]).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
            let e = SealKey::load(&p).unwrap_err();
            assert!(
                matches!(e, SealError::Length { len: l, .. } if l == len as u64),
                "{e}"
            );
        }
        let e = SealKey::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, SealError::Read { .. }));
    }
}
