//! ARI (RFC 9773): fetching renewal windows concurrently and keeping them in
//! `<store>/state/ari.json` so the CA is not asked again before Retry-After.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use instant_acme::CertificateIdentifier;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::plan::AriState;
use crate::acme::AcmeClient;
use crate::store::{atomic, io_err, Store, StoreError};

/// ARI windows by lineage name, as stored.
#[derive(Debug, Default)]
pub(crate) struct AriStore {
    path: PathBuf,
    pub windows: BTreeMap<String, AriState>,
    dirty: bool,
}

impl AriStore {
    /// Loads the state; a missing or unreadable file is an empty state (the
    /// windows are only a cache of what the CA says).
    pub(crate) fn load(store: &Store) -> AriStore {
        let path = store.state_dir().join("ari.json");
        let windows = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %path.display(), "ignoring unreadable ARI state: {e}");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        AriStore {
            path,
            windows,
            dirty: false,
        }
    }

    pub(crate) fn set(&mut self, name: &str, state: AriState) {
        if self.windows.get(name) != Some(&state) {
            self.windows.insert(name.to_string(), state);
            self.dirty = true;
        }
    }

    pub(crate) fn remove(&mut self, name: &str) {
        if self.windows.remove(name).is_some() {
            self.dirty = true;
        }
    }

    /// Writes the state atomically if it changed.
    pub(crate) fn save(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        let json = serde_json::to_vec_pretty(&self.windows).map_err(|e| StoreError::Io {
            action: "encode",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        if let Some(dir) = self.path.parent() {
            atomic::ensure_dir(dir, 0o700).map_err(io_err("create", dir))?;
        }
        atomic::write_file(&self.path, &json, 0o600).map_err(io_err("write", &self.path))?;
        self.dirty = false;
        Ok(())
    }
}

/// One certificate to ask about.
pub(crate) struct Query {
    pub name: String,
    pub serial: String,
    pub leaf_der: Vec<u8>,
}

/// Why one ARI look-up failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AriError {
    #[error("the certificate has no ARI identifier: {0}")]
    Identifier(String),
    #[error("{}", crate::net::error_chain(.0))]
    Ca(instant_acme::Error),
}

/// Asks the CA for the windows of `queries`, at most `concurrency` at once.
/// Failures are returned per lineage; they never stop the others.
pub(crate) async fn fetch(
    client: &AcmeClient,
    queries: Vec<Query>,
    concurrency: usize,
) -> Vec<(String, Result<AriState, AriError>)> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut set = JoinSet::new();
    for q in queries {
        let account = client.account.clone();
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let der = CertificateDer::from(q.leaf_der);
            let id = match CertificateIdentifier::try_from(&der) {
                Ok(id) => id.into_owned(),
                Err(e) => return (q.name, Err(AriError::Identifier(e))),
            };
            let now = OffsetDateTime::now_utc();
            let r = match account.renewal_info(&id).await {
                Ok((info, retry_after)) => Ok(AriState::from_window(
                    &q.serial,
                    info.suggested_window.start,
                    info.suggested_window.end,
                    now,
                    retry_after,
                    rand::random::<f64>(),
                    info.explanation_url,
                )),
                Err(e) => Err(AriError::Ca(e)),
            };
            (q.name, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => out.push(v),
            Err(e) => tracing::warn!("an ARI look-up task failed: {e}"),
        }
    }
    out
}
