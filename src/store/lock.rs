//! One writer per store: an advisory `flock` on `<store>/state/lock`.
//! A second run waits (bounded) and says so, instead of failing at once.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::fs::{flock, FlockOperation};

use super::{atomic, io_err, StoreError};

/// Held while a run may write to the store; released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another certkeep run still holds {path} after {waited:?}; try again later or raise [renewal] lock_wait")]
    Timeout { path: PathBuf, waited: Duration },
    #[error("gave up waiting for {path}: {source}")]
    Cancelled {
        path: PathBuf,
        source: crate::shutdown::Cancelled,
    },
}

/// Takes the store lock, waiting up to `wait` for another run to finish.
pub async fn acquire(state_dir: &Path, wait: Duration) -> Result<StoreLock, LockError> {
    atomic::ensure_dir(state_dir, 0o700).map_err(io_err("create", state_dir))?;
    acquire_file(&state_dir.join("lock"), wait).await
}

/// Takes an exclusive lock on the file `path` (created 0600 if missing),
/// waiting up to `wait` for its holder, or until shutdown.
pub async fn acquire_file(path: &Path, wait: Duration) -> Result<StoreLock, LockError> {
    acquire_file_until(path, wait, crate::shutdown::global()).await
}

/// [`acquire_file`], giving up when `token` is cancelled.
pub async fn acquire_file_until(
    path: &Path,
    wait: Duration,
    token: &crate::shutdown::Token,
) -> Result<StoreLock, LockError> {
    let path = path.to_path_buf();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(StoreLock { _file: file, path }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                if start.elapsed() >= wait {
                    return Err(LockError::Timeout {
                        path,
                        waited: start.elapsed(),
                    });
                }
                if !told {
                    tracing::info!(lock = %path.display(), "another certkeep run holds the store lock; waiting up to {:?}", wait);
                    told = true;
                }
                if let Err(source) = token.sleep(Duration::from_millis(100)).await {
                    return Err(LockError::Cancelled { path, source });
                }
            }
            Err(e) => return Err(io_err("lock", &path)(e.into()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_lock_waits_then_times_out_then_succeeds() {
        let d = tempfile::tempdir().unwrap();
        let first = acquire(d.path(), Duration::ZERO).await.unwrap();
        let err = acquire(d.path(), Duration::from_millis(250))
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("lock_wait"));
        drop(first);
        acquire(d.path(), Duration::ZERO).await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_wait_ends_on_shutdown() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lock");
        let _held = acquire_file(&path, Duration::ZERO).await.unwrap();
        let token = crate::shutdown::Token::new();
        let c = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c.cancel();
        });
        let start = Instant::now();
        let err = acquire_file_until(&path, Duration::from_secs(600), &token)
            .await
            .unwrap_err();
        assert!(matches!(err, LockError::Cancelled { .. }), "{err}");
        assert!(err.to_string().contains("shutting down"), "{err}");
        // Bound on a hang: far below the 600 s it would wait.
        assert!(start.elapsed() < Duration::from_secs(30));
    }
}
