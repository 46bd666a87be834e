//! Alerts: decide what to tell whom ([`state`], pure), and deliver it by
//! email, Slack or a JSON webhook ([`deliver`]), at most once per
//! notification and channel, retried until delivered or expired.
//!
//! Every mode (`certkeep renew`, `certkeep probe --alert`, the daemon) uses
//! the same [`Alerter`] over the same `<store>/state/alerts.json`, so
//! switching modes neither repeats nor loses an alert:
//!
//! ```no_run
//! # async fn f(config: &certkeep::config::Settings) -> Result<(), certkeep::alert::AlertError> {
//! use certkeep::alert::{Alerter, Problem, Severity};
//! let mut alerter = Alerter::load(&config.alerting()).await?;
//! let now = std::time::SystemTime::now();
//! let problems = vec![Problem::new("renew:example.com:renewal", Severity::Critical, "renewal of example.com failed")
//!     .detail("certificate", "example.com")];
//! alerter.observe(now, problems, &["renew:www.example.com:renewal".to_string()]);
//! let report = alerter.flush(now).await?; // sends what is due and saves the state
//! # let _ = report; Ok(()) }
//! ```

pub mod alertmanager;
pub mod channel;
pub mod config;
pub mod deliver;
mod email;
pub mod message;
mod slack;
pub mod state;
mod webhook;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub use channel::SendError;
pub use config::AlertConfig;
pub use deliver::DeliveryReport;
pub use state::{AlertState, Kind, Notification, Problem, Severity};

use crate::config::AlertSettings;
use crate::store::atomic;
use crate::store::lock::{LockError, StoreLock};
use crate::store::Store;

/// File name of the alert state under `<store>/state/`.
pub const STATE_FILE: &str = "alerts.json";

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "alert state {path} is corrupt ({detail}); it was kept as {kept} (inspect or delete it)"
    )]
    Corrupt {
        path: PathBuf,
        kept: PathBuf,
        detail: String,
    },
    #[error("alert state {path} has format version {found}, newer than this certkeep understands ({known}); upgrade certkeep")]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("another certkeep process still holds {path} after {waited:?}; try again later")]
    Locked { path: PathBuf, waited: Duration },
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AlertError {
    let path = path.to_path_buf();
    move |source| AlertError::Io {
        action,
        path,
        source,
    }
}

/// Unix seconds of `t` (0 before 1970).
pub fn unix(t: SystemTime) -> state::Ts {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads the state file: `Ok(None)` when missing. A corrupt file is renamed
/// to `alerts.json.corrupt-<unix time>` (never deleted) and reported.
pub fn read_state(path: &Path, now: SystemTime) -> Result<Option<AlertState>, AlertError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    #[derive(serde::Deserialize)]
    struct Version {
        version: u32,
    }
    if let Ok(v) = serde_json::from_slice::<Version>(&bytes) {
        if v.version > state::STATE_VERSION {
            return Err(AlertError::TooNew {
                path: path.to_path_buf(),
                found: v.version,
                known: state::STATE_VERSION,
            });
        }
    }
    match serde_json::from_slice::<AlertState>(&bytes) {
        Ok(mut s) => {
            s.migrate_legacy_keys();
            Ok(Some(s))
        }
        Err(e) => {
            let mut kept = path.as_os_str().to_owned();
            kept.push(format!(".corrupt-{}", unix(now)));
            let kept = PathBuf::from(kept);
            std::fs::rename(path, &kept).map_err(io_err("move aside", path))?;
            Err(AlertError::Corrupt {
                path: path.to_path_buf(),
                kept,
                detail: e.to_string(),
            })
        }
    }
}

/// Writes the state atomically, mode 0600.
pub fn write_state(path: &Path, state: &AlertState) -> Result<(), AlertError> {
    let json = serde_json::to_vec_pretty(state).map_err(|e| AlertError::Io {
        action: "serialize",
        path: path.to_path_buf(),
        source: io::Error::other(e),
    })?;
    atomic::write_file(path, &json, 0o600).map_err(io_err("write", path))
}

/// Alert state and channels for one run. Holds `<store>/state/alerts.lock`
/// while it lives, so concurrent runs take turns instead of racing.
pub struct Alerter {
    config: AlertConfig,
    path: PathBuf,
    state: AlertState,
    _lock: StoreLock,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter")
            .field("path", &self.path)
            .field("open", &self.state.open().count())
            .field("queued", &self.state.queued())
            .finish()
    }
}

impl Alerter {
    /// Loads the alert state of `store`, waiting up to `[renewal] lock_wait`
    /// for another process using it. A corrupt state file is kept aside
    /// (logged as an error) and a fresh state is used, so alerts still flow;
    /// open alerts may then be announced once more.
    pub async fn load(settings: &AlertSettings<'_>) -> Result<Self, AlertError> {
        Self::open(
            &Store::new(settings.store).state_dir(),
            settings.alert.clone(),
            settings.lock_wait,
        )
        .await
    }

    /// [`Alerter::load`] with the parts spelled out.
    pub async fn open(
        state_dir: &Path,
        config: AlertConfig,
        lock_wait: Duration,
    ) -> Result<Self, AlertError> {
        atomic::ensure_dir(state_dir, 0o700).map_err(io_err("create", state_dir))?;
        let lock = lock(&state_dir.join("alerts.lock"), lock_wait).await?;
        let path = state_dir.join(STATE_FILE);
        let state = match read_state(&path, SystemTime::now()) {
            Ok(s) => s.unwrap_or_default(),
            Err(e @ AlertError::Corrupt { .. }) => {
                tracing::error!("{e}; starting with an empty alert state, so open alerts may be announced again");
                AlertState::default()
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            config,
            path,
            state,
            _lock: lock,
        })
    }

    /// Takes this run's observations: `problems` found now, and `ok_keys`,
    /// the keys checked and found fine (only those resolve). Queues the
    /// resulting notifications for delivery and returns them. Keys in
    /// neither list keep their state. Call [`Alerter::flush`] (or
    /// [`Alerter::save`]) afterwards.
    pub fn observe(
        &mut self,
        now: SystemTime,
        problems: Vec<Problem>,
        ok_keys: &[String],
    ) -> Vec<Notification> {
        observe_state(&mut self.state, &self.config, now, problems, ok_keys)
    }

    /// Sends every queued notification that is due, one message per
    /// channel, and saves the state after each. Failed sends stay queued with
    /// backoff. Errs only when the state cannot be saved.
    pub async fn flush(&mut self, now: SystemTime) -> Result<DeliveryReport, AlertError> {
        let path = self.path.clone();
        let refreshed = self.state.refresh(unix(now), &self.config.refresh_routes());
        for n in &refreshed {
            tracing::debug!(alert = %n.key, "re-sending an open alert before it lapses");
        }
        deliver::flush(&mut self.state, &self.config, unix(now), |s| {
            write_state(&path, s)
        })
        .await
    }

    /// Saves the state (atomically, 0600).
    pub fn save(&self) -> Result<(), AlertError> {
        write_state(&self.path, &self.state)
    }

    pub fn state(&self) -> &AlertState {
        &self.state
    }

    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`Alerter::observe`] does, for a state kept elsewhere (cluster
/// mode keeps the shared state in etcd): takes the observations and queues
/// the resulting notifications.
pub fn observe_state(
    state: &mut AlertState,
    config: &AlertConfig,
    now: SystemTime,
    problems: Vec<Problem>,
    ok_keys: &[String],
) -> Vec<Notification> {
    let now = unix(now);
    let out = state.observe(now, &problems, ok_keys, &config.policy());
    let routes = config.routes();
    for n in &out {
        tracing::info!(alert = %n.key, kind = n.kind.as_str(), severity = %n.severity, "{}", n.summary);
        state.enqueue(n, &routes, now);
    }
    out
}

/// What [`Alerter::flush`] does, for a state kept elsewhere: sends what is
/// due and records the outcome in `state`; the caller saves it afterwards.
pub async fn flush_state(
    state: &mut AlertState,
    config: &AlertConfig,
    now: SystemTime,
) -> Result<DeliveryReport, AlertError> {
    state.refresh(unix(now), &config.refresh_routes());
    deliver::flush(state, config, unix(now), |_| Ok(())).await
}

async fn lock(path: &Path, wait: Duration) -> Result<StoreLock, AlertError> {
    match crate::store::lock::acquire_file(path, wait).await {
        Ok(l) => Ok(l),
        Err(LockError::Timeout { path, waited }) => Err(AlertError::Locked { path, waited }),
        Err(LockError::Store(crate::store::StoreError::Io {
            action,
            path,
            source,
        })) => Err(AlertError::Io {
            action,
            path,
            source,
        }),
        Err(LockError::Store(e)) => Err(io_err("lock", path)(io::Error::other(e.to_string()))),
        Err(e @ LockError::Cancelled { .. }) => {
            Err(io_err("lock", path)(io::Error::other(e.to_string())))
        }
    }
}

/// Observes one run's results and delivers what is due: the shared path of
/// `certkeep renew`, `certkeep probe --alert` and the daemon. Does nothing
/// (and writes nothing) when no channel is configured. Delivery failures are
/// logged and stay queued; the returned report says what happened.
pub async fn report(
    settings: &AlertSettings<'_>,
    problems: Vec<Problem>,
    ok_keys: &[String],
) -> Result<Option<DeliveryReport>, AlertError> {
    if settings.alert.channels.is_empty() {
        return Ok(None);
    }
    if crate::shutdown::global().is_cancelled() {
        // A job cut short by shutdown observed its own interruption, not the
        // world: record nothing; the next run observes again.
        tracing::info!("shutting down: this run's observations are not recorded as alerts");
        return Ok(None);
    }
    let mut alerter = Alerter::load(settings).await?;
    let now = SystemTime::now();
    alerter.observe(now, problems, ok_keys);
    let report = alerter.flush(now).await?;
    if !report.ok() {
        tracing::error!("some alerts could not be delivered yet; they stay queued and are retried on the next run");
    }
    Ok(Some(report))
}

/// Between runs: re-sends the open alerts a channel would otherwise forget
/// (Alertmanager's `resend_interval`) and retries the deliveries that are
/// due, observing nothing. The daemon runs it every `resend_interval`.
pub async fn upkeep(settings: &AlertSettings<'_>) -> Result<Option<DeliveryReport>, AlertError> {
    if settings.alert.channels.is_empty() || crate::shutdown::global().is_cancelled() {
        return Ok(None);
    }
    let mut alerter = Alerter::load(settings).await?;
    let report = alerter.flush(SystemTime::now()).await?;
    Ok(Some(report))
}

/// How often the daemon runs [`upkeep`]: the shortest `resend_interval` of
/// the channels that need it; `None` when none does.
pub fn upkeep_interval(config: &AlertConfig) -> Option<Duration> {
    config
        .refresh_routes()
        .iter()
        .map(|(_, _, secs)| Duration::from_secs(*secs))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_state_is_empty_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STATE_FILE);
        assert!(read_state(&p, SystemTime::now()).unwrap().is_none());
        let mut s = AlertState::default();
        s.observe(
            1,
            &[Problem::new("k", Severity::Warning, "w")],
            &[],
            &Default::default(),
        );
        write_state(&p, &s).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_state(&p, SystemTime::now()).unwrap(), Some(s));
    }

    #[test]
    fn corrupt_state_is_kept_aside_with_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STATE_FILE);
        std::fs::write(&p, "{not json").unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1234);
        let err = read_state(&p, now).unwrap_err();
        let kept = d.path().join("alerts.json.corrupt-1234");
        assert!(
            matches!(&err, AlertError::Corrupt { kept: k, .. } if *k == kept),
            "{err}"
        );
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "{not json");
        assert!(!p.exists());
        assert!(read_state(&p, now).unwrap().is_none());
    }

    #[test]
    fn newer_format_is_refused_and_left_in_place() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(STATE_FILE);
        std::fs::write(&p, r#"{"version": 99}"#).unwrap();
        let err = read_state(&p, SystemTime::now()).unwrap_err();
        assert!(err.to_string().contains("upgrade certkeep"), "{err}");
        assert!(p.exists());
    }

    #[tokio::test]
    async fn corrupt_state_does_not_stop_alerts_and_lock_is_exclusive() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(STATE_FILE), "garbage").unwrap();
        let a = Alerter::open(d.path(), AlertConfig::default(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(a.state().queued(), 0);
        let err = Alerter::open(d.path(), AlertConfig::default(), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(matches!(err, AlertError::Locked { .. }), "{err}");
        drop(a);
        Alerter::open(d.path(), AlertConfig::default(), Duration::ZERO)
            .await
            .unwrap();
    }
}
