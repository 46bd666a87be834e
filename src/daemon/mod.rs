//! `certkeep run`: the daemon. Runs renewal checks and probes on cron
//! schedules, talks to systemd (READY, STATUS, WATCHDOG), reloads its
//! configuration on SIGHUP and stops cleanly on SIGTERM/SIGINT.

pub(crate) mod config;
pub(crate) mod http;
pub(crate) mod jobs;
pub(crate) mod metrics;
pub(crate) mod probe_metrics;
pub(crate) mod schedule;
pub(crate) mod status;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sd_notify::NotifyState;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::alert::AlertConfig;
use crate::config::daemon::DaemonConfig;
use crate::config::Settings;
use metrics::Shared;

/// When each job runs next.
#[derive(Debug, Clone, Copy)]
struct Next {
    renew: DateTime<Utc>,
    probe: DateTime<Utc>,
    /// Alert upkeep, when a channel needs open alerts re-sent.
    alerts: Option<DateTime<Utc>>,
}

fn next_alerts(c: &AlertConfig, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let every = crate::alert::upkeep_interval(c)?;
    Some(after + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::minutes(1)))
}

fn next_renew(c: &DaemonConfig, after: DateTime<Utc>, metrics: &Shared) -> DateTime<Utc> {
    let base = c
        .renew_schedule
        .next_after(after)
        .unwrap_or(after + chrono::Duration::hours(12));
    let next = schedule::with_jitter(base, c.renew_jitter.get(), rand::random::<f64>());
    schedule::cap_for_short_lived(next, after, shortest_lifetime(metrics))
}

/// The shortest lifetime among the live certificates, as last read.
fn shortest_lifetime(metrics: &Shared) -> Option<chrono::Duration> {
    let m = metrics.lock().unwrap_or_else(|p| p.into_inner());
    m.certificates
        .values()
        .map(|c| chrono::Duration::seconds(c.not_after - c.not_before))
        .min()
}

fn next_probe(c: &DaemonConfig, after: DateTime<Utc>) -> DateTime<Utc> {
    c.probe_schedule
        .next_after(after)
        .unwrap_or(after + chrono::Duration::minutes(15))
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Event {
    Stop(&'static str),
    Reload,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Stop("SIGTERM"),
            _ = self.int.recv() => Event::Stop("SIGINT"),
            _ = self.hup.recv() => Event::Reload,
        }
    }
}

fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// Tells systemd the last and next runs, and records the next renewal
/// check for the status page (none in cluster mode: this node orders no
/// renewals).
fn status(next: &Next, metrics: &Shared, config: &Settings) {
    if let Ok(mut m) = metrics.lock() {
        m.next_renewal_check = config.cluster.is_none().then(|| next.renew.timestamp());
    }
    let last = metrics
        .lock()
        .ok()
        .map(|m| {
            m.last_run
                .iter()
                .map(|(job, (t, ok))| {
                    format!(
                        "last {job} {} at {}",
                        if *ok { "ok" } else { "FAILED" },
                        DateTime::<Utc>::from_timestamp(*t, 0)
                            .map(|d| d.to_rfc3339())
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let text = format!(
        "{}{}next renewal check {}, next probe {}",
        last,
        if last.is_empty() { "" } else { "; " },
        next.renew.to_rfc3339(),
        next.probe.to_rfc3339()
    );
    notify(&[NotifyState::Status(&text)]);
}

/// Loads the config again for SIGHUP: the new one, or the error (old one kept).
fn reload(path: &Path) -> Result<Settings, String> {
    let c = Settings::load(path).map_err(|e| e.to_string())?;
    for w in &c.warnings {
        tracing::warn!("{w}");
    }
    Ok(c)
}

/// The two kinds of job. Each runs as its own task, at most one of a kind at
/// a time, so a renewal retrying against an unreachable CA stops no probe
/// round and a slow probe round delays no renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Renew,
    Probe,
    Alerts,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Renew => "renewal check",
            Kind::Probe => "probe round",
            Kind::Alerts => "alert upkeep",
        }
    }
}

/// The running job of each kind.
#[derive(Default)]
struct Running {
    renew: Option<tokio::task::JoinHandle<()>>,
    probe: Option<tokio::task::JoinHandle<()>>,
    alerts: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn slot(&mut self, kind: Kind) -> &mut Option<tokio::task::JoinHandle<()>> {
        match kind {
            Kind::Renew => &mut self.renew,
            Kind::Probe => &mut self.probe,
            Kind::Alerts => &mut self.alerts,
        }
    }

    /// Starts a job of `kind` unless one is still running (then this turn is
    /// skipped, not queued: the next scheduled time comes soon enough).
    fn start(
        &mut self,
        kind: Kind,
        config: &Arc<Settings>,
        metrics: &Shared,
        done: &tokio::sync::mpsc::UnboundedSender<Kind>,
    ) {
        let slot = self.slot(kind);
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            tracing::warn!(
                "the previous {} is still running; skipping this scheduled one",
                kind.name()
            );
            return;
        }
        let (config, metrics, done) = (config.clone(), metrics.clone(), done.clone());
        *slot = Some(tokio::spawn(async move {
            match kind {
                Kind::Renew => jobs::renew(&config, &metrics).await,
                Kind::Probe => jobs::probe(&config, &metrics).await,
                Kind::Alerts => jobs::alerts(&config).await,
            }
            jobs::record_alerts(&config.alerting(), &metrics);
            release_memory();
            let _ = done.send(kind);
        }));
    }

    /// Waits up to `grace` for the running jobs, then aborts what is left.
    async fn finish(&mut self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        for kind in [Kind::Renew, Kind::Probe, Kind::Alerts] {
            if let Some(mut h) = self.slot(kind).take() {
                if tokio::time::timeout_at(deadline, &mut h).await.is_err() {
                    tracing::warn!(
                        "the {} did not finish within {grace:?}; aborted",
                        kind.name()
                    );
                    h.abort();
                }
            }
        }
    }
}

/// Runs the daemon until SIGTERM/SIGINT; returns the exit code.
pub(crate) async fn run(config_path: PathBuf, config: Settings) -> u8 {
    let mut config = Arc::new(config);
    let metrics: Shared = Arc::new(Mutex::new(metrics::Metrics::default()));
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return 1;
        }
    };
    let _metrics_server = match config.daemon.metrics_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                tracing::info!(%addr, "serving metrics at http://{addr}/metrics");
                Some(AbortOnDrop(tokio::spawn(http::serve(
                    l,
                    metrics.clone(),
                    http::Limits::from_config(&config.daemon),
                    crate::shutdown::global().clone(),
                ))))
            }
            Err(e) => {
                eprintln!("error: cannot listen on [daemon] metrics_listen {addr}: {e}");
                return 1;
            }
        },
        None => None,
    };
    let _watchdog = watchdog();
    let _cluster = match crate::cluster::node::start(&config).await {
        Ok(task) => task.map(AbortOnDrop),
        Err(e) => {
            eprintln!("error: cluster: {e}");
            return 2;
        }
    };

    jobs::refresh_certificates(&config, &metrics);
    let now = Utc::now();
    let mut next = Next {
        renew: if config.daemon.renew_at_start {
            now
        } else {
            next_renew(&config.daemon, now, &metrics)
        },
        probe: next_probe(&config.daemon, now),
        alerts: next_alerts(&config.alert, now),
    };
    jobs::record_alerts(&config.alerting(), &metrics);
    tracing::info!(
        renew_schedule = %config.daemon.renew_schedule,
        probe_schedule = %config.daemon.probe_schedule,
        "certkeep daemon started; next renewal check {}, next probe {}",
        next.renew.to_rfc3339(),
        next.probe.to_rfc3339()
    );
    notify(&[NotifyState::Ready]);
    status(&next, &metrics, &config);

    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<Kind>();
    let mut running = Running::default();
    loop {
        let wake = next
            .renew
            .min(next.probe)
            .min(next.alerts.unwrap_or(next.probe));
        let sleep = (wake - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            Some(_) = done_rx.recv() => {
                status(&next, &metrics, &config);
                continue;
            }
            ev = signals.next() => match ev {
                Event::Stop(sig) => {
                    // Every wait in the jobs (retry back-offs, lock waits,
                    // hooks) ends now; they wind down within moments.
                    crate::shutdown::global().cancel();
                    notify(&[NotifyState::Stopping]);
                    let grace = config.daemon.shutdown_timeout.get();
                    tracing::info!("{sig}: stopping the running jobs (waiting up to {grace:?})");
                    running.finish(grace).await;
                    return stop(sig);
                }
                Event::Reload => {
                    // Running jobs finish with the configuration they started with.
                    let mut c = (*config).clone();
                    apply_reload(&config_path, &mut c, &mut next, &metrics);
                    config = Arc::new(c);
                    continue;
                }
            },
        }
        let now = Utc::now();
        if now >= next.renew {
            next.renew = next_renew(&config.daemon, now, &metrics);
            if config.cluster.is_some() {
                // Ordering through the cluster is not built yet: a node
                // renewing on its own would fight the shared versions.
                tracing::warn!("cluster mode: this node does not order renewals; it deploys the versions in etcd");
            } else {
                running.start(Kind::Renew, &config, &metrics, &done_tx);
            }
        }
        if now >= next.probe {
            next.probe = next_probe(&config.daemon, now);
            running.start(Kind::Probe, &config, &metrics, &done_tx);
        }
        if next.alerts.is_some_and(|at| now >= at) {
            next.alerts = next_alerts(&config.alert, now);
            running.start(Kind::Alerts, &config, &metrics, &done_tx);
        }
        status(&next, &metrics, &config);
    }
}

/// Hands memory freed by the last job back to the kernel. A probe round over
/// thousands of endpoints allocates in every runtime thread; glibc keeps those
/// per-thread arenas, so an idle daemon would otherwise sit at its peak.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free heap pages; it has no
    // preconditions and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn apply_reload(path: &Path, config: &mut Settings, next: &mut Next, metrics: &Shared) {
    notify(&[
        NotifyState::Reloading,
        NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Status("reloading")),
    ]);
    match reload(path) {
        Ok(new)
            if !crate::cluster::config::changed(config.cluster.as_ref(), new.cluster.as_ref())
                .is_empty() =>
        {
            let what =
                crate::cluster::config::changed(config.cluster.as_ref(), new.cluster.as_ref());
            tracing::error!(
                "configuration NOT reloaded, keeping the previous one: the [cluster] section changed ({}), which a running daemon does not apply (its etcd session, lease and locks stay as they are); restart certkeep to apply it (systemctl restart certkeep)",
                what.join(", ")
            );
        }
        Ok(new) => {
            *config = new;
            let now = Utc::now();
            jobs::refresh_certificates(config, metrics);
            next.renew = next_renew(&config.daemon, now, metrics);
            next.probe = next_probe(&config.daemon, now);
            next.alerts = next_alerts(&config.alert, now);
            tracing::info!(
                "configuration reloaded from {}; next renewal check {}, next probe {}",
                path.display(),
                next.renew.to_rfc3339(),
                next.probe.to_rfc3339()
            );
        }
        Err(e) => tracing::error!("configuration NOT reloaded, keeping the previous one: {e}"),
    }
    notify(&[NotifyState::Ready]);
    status(next, metrics, config);
}

fn stop(sig: &str) -> u8 {
    notify(&[NotifyState::Stopping]);
    tracing::info!("{sig}: certkeep daemon stopped");
    0
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pings the systemd watchdog at half its interval, when it is enabled.
fn watchdog() -> Option<AbortOnDrop> {
    let interval = sd_notify::watchdog_enabled()?;
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    })))
}

/// What `certkeep schedule` shows.
pub(crate) struct Upcoming {
    /// Renewal checks as the daemon runs them (short-lived cap included,
    /// before the random delay).
    pub renew: Vec<DateTime<Utc>>,
    pub probe: Vec<DateTime<Utc>>,
    /// The shortest lifetime among the live certificates, when it is
    /// short-lived (the renewal checks are capped for it).
    pub short_lived: Option<chrono::Duration>,
}

/// The next `n` run times of each schedule, for `certkeep schedule`.
pub(crate) fn upcoming(config: &Settings, n: usize) -> Upcoming {
    let now = Utc::now();
    let metrics: Shared = Arc::new(Mutex::new(metrics::Metrics::default()));
    jobs::refresh_certificates(config, &metrics);
    let shortest = shortest_lifetime(&metrics);
    Upcoming {
        renew: schedule::effective_renewals(&config.daemon.renew_schedule, now, n, shortest),
        probe: config.daemon.probe_schedule.upcoming(now, n),
        short_lived: shortest.filter(|l| *l < schedule::SHORT_LIVED),
    }
}
