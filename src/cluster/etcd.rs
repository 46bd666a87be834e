//! A thin wrapper over etcd-client: every request bounded by
//! `request_timeout`, a lease with its keep-alive task, locks bound to the
//! lease, compare-and-swap on `mod_revision`, watches on a prefix.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions,
    Identity, LockOptions, PutOptions, TlsOptions, Txn, TxnOp, WatchOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::ClusterConfig;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot read {what} {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot connect to etcd at {endpoints}: {detail} (is etcd running and reachable? check [cluster] endpoints)")]
    Connect { endpoints: String, detail: String },
    #[error("etcd did not answer {what} within {after:?} (etcd unreachable or without quorum?)")]
    Timeout { what: String, after: Duration },
    #[error("etcd refused {what}: {detail}")]
    Request { what: String, detail: String },
    #[error("the etcd lease {id:x} has expired: its locks and keys are gone")]
    LeaseLost { id: i64 },
    #[error("etcd no longer holds the history of {what} from revision {from} (compacted up to {compacted}): read it again")]
    Compacted {
        what: String,
        from: i64,
        compacted: i64,
    },
}

/// How to reach etcd (from `[cluster]`, or built by tests).
#[derive(Debug, Clone)]
pub struct Settings {
    pub endpoints: Vec<String>,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key (PEM).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// User and the file holding the password.
    pub user: Option<(String, PathBuf)>,
}

impl Settings {
    pub fn from_config(c: &ClusterConfig) -> Settings {
        Settings {
            endpoints: c.endpoints.get_ref().iter().map(|e| e.0.clone()).collect(),
            request_timeout: c.request_timeout.get(),
            connect_timeout: c.connect_timeout.get(),
            ca_file: c.ca_file.clone(),
            identity: match (&c.cert_file, &c.key_file) {
                (Some(cert), Some(key)) => Some((cert.get_ref().clone(), key.get_ref().clone())),
                _ => None,
            },
            user: match (&c.user, &c.password_file) {
                (Some(u), Some(p)) => Some((u.get_ref().clone(), p.get_ref().clone())),
                _ => None,
            },
        }
    }
}

/// One key's value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub lease: i64,
}

impl From<&etcd_client::KeyValue> for Kv {
    fn from(kv: &etcd_client::KeyValue) -> Kv {
        Kv {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        }
    }
}

/// A write that succeeds only if a key is as it was read.
#[derive(Debug, Clone)]
pub enum Expect {
    /// The key does not exist.
    Absent,
    /// The key's `mod_revision` is this one.
    Revision(i64),
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Put(Kv),
    Delete { key: String, mod_revision: i64 },
}

#[derive(Clone)]
pub struct Etcd {
    client: Client,
    timeout: Duration,
    endpoints: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::File {
        what,
        path: path.to_path_buf(),
        source,
    })
}

impl Etcd {
    /// Connects (with TLS and authentication when configured). The first
    /// request proves the connection, so an unreachable etcd fails here.
    pub async fn connect(s: &Settings) -> Result<Etcd, EtcdError> {
        let endpoints = s.endpoints.join(", ");
        let mut opts = ConnectOptions::new()
            .with_timeout(s.request_timeout)
            .with_connect_timeout(s.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), s.request_timeout);
        if s.ca_file.is_some() || s.identity.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &s.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read_file(
                    "the etcd CA file (ca_file)",
                    ca,
                )?));
            }
            if let Some((cert, key)) = &s.identity {
                let c = read_file("the etcd client certificate (cert_file)", cert)?;
                let k = read_file("the etcd client key (key_file)", key)?;
                tls = tls.identity(Identity::from_pem(c, k));
            }
            opts = opts.with_tls(tls);
        }
        if let Some((user, file)) = &s.user {
            let pw = read_file("the etcd password file (password_file)", file)?;
            let pw = String::from_utf8_lossy(&pw)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            opts = opts.with_user(user.clone(), pw);
        }
        // etcd-client balances over every endpoint it is given and fails
        // requests routed to a member that is down; so connect to one
        // member at a time: the first (from a rotating start) that answers
        // and has a leader. When it goes away, requests fail, the caller
        // reconnects and the next member is tried.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = s.endpoints.len().max(1);
        let first = NEXT.fetch_add(1, Ordering::Relaxed) % n;
        let mut fallback = None;
        let mut errors = Vec::new();
        for i in 0..s.endpoints.len() {
            let one = &s.endpoints[(first + i) % n];
            match Self::connect_one(s, one, opts.clone()).await {
                Ok((etcd, true)) => return Ok(etcd),
                Ok((etcd, false)) => {
                    errors.push(format!("{one}: member has no leader"));
                    fallback.get_or_insert(etcd);
                }
                Err(e) => errors.push(format!("{one}: {e}")),
            }
        }
        match fallback {
            // No member has a leader: requests will fail until quorum
            // returns, and say so themselves.
            Some(mut etcd) => {
                etcd.endpoints = endpoints;
                Ok(etcd)
            }
            None => Err(EtcdError::Connect {
                endpoints,
                detail: errors.join("; "),
            }),
        }
    }

    /// Connects to one endpoint; the status request proves the connection
    /// and tells whether the member has a leader.
    async fn connect_one(
        s: &Settings,
        endpoint: &str,
        opts: ConnectOptions,
    ) -> Result<(Etcd, bool), String> {
        let bound = s.connect_timeout + s.request_timeout;
        let client =
            match tokio::time::timeout(bound, Client::connect([endpoint], Some(opts))).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err(format!("no answer within {bound:?}")),
            };
        let etcd = Etcd {
            client,
            timeout: s.request_timeout,
            endpoints: endpoint.to_string(),
        };
        // The member's status needs no key permission, so a user restricted
        // to its prefix can connect.
        let mut c = etcd.client.clone();
        let status = etcd
            .bounded(|| "a status request".to_string(), etcd.timeout, c.status())
            .await
            .map_err(|e| e.to_string())?;
        Ok((etcd, status.leader() != 0))
    }

    pub fn request_timeout(&self) -> Duration {
        self.timeout
    }

    async fn bounded<T, F>(
        &self,
        what: impl Fn() -> String,
        after: Duration,
        f: F,
    ) -> Result<T, EtcdError>
    where
        F: Future<Output = Result<T, etcd_client::Error>>,
    {
        match tokio::time::timeout(after, f).await {
            Ok(Ok(v)) => Ok(v),
            // The client's own per-request deadline (the same bound) ended it.
            Ok(Err(etcd_client::Error::GRpcStatus(s)))
                // gRPC codes 1 (cancelled) and 4 (deadline exceeded).
                if matches!(i32::from(s.code()), 1 | 4) =>
            {
                Err(EtcdError::Timeout {
                    what: what(),
                    after,
                })
            }
            Ok(Err(e)) => Err(EtcdError::Request {
                what: what(),
                detail: e.to_string(),
            }),
            Err(_) => Err(EtcdError::Timeout {
                what: what(),
                after,
            }),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let mut c = self.client.clone();
        let r = self
            .bounded(|| format!("reading {key}"), self.timeout, c.get(key, None))
            .await?;
        Ok(r.kvs().first().map(Kv::from))
    }

    /// Every key under `prefix`, sorted by key.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Vec<Kv>, EtcdError> {
        Ok(self.get_prefix_at(prefix).await?.0)
    }

    /// Every key under `prefix`, sorted by key, and the store revision the
    /// read saw (a watch from the revision after it misses nothing).
    pub async fn get_prefix_at(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let mut c = self.client.clone();
        let r = self
            .bounded(
                || format!("reading {prefix}*"),
                self.timeout,
                c.get(prefix, Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let revision = r.header().map(|h| h.revision()).unwrap_or(0);
        let mut v: Vec<Kv> = r.kvs().iter().map(Kv::from).collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((v, revision))
    }

    /// Whether any key exists under `prefix`.
    pub async fn any_under(&self, prefix: &str) -> Result<bool, EtcdError> {
        let mut c = self.client.clone();
        let r = self
            .bounded(
                || format!("counting {prefix}*"),
                self.timeout,
                c.get(
                    prefix,
                    Some(GetOptions::new().with_prefix().with_count_only()),
                ),
            )
            .await?;
        Ok(r.count() > 0)
    }

    /// Writes `key`; with a lease the key vanishes when the lease expires.
    pub async fn put(&self, key: &str, value: &[u8], lease: Option<i64>) -> Result<(), EtcdError> {
        let mut c = self.client.clone();
        let opts = lease.map(|l| PutOptions::new().with_lease(l));
        self.bounded(
            || format!("writing {key}"),
            self.timeout,
            c.put(key, value, opts),
        )
        .await?;
        Ok(())
    }

    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let mut c = self.client.clone();
        self.bounded(
            || format!("deleting {key}"),
            self.timeout,
            c.delete(key, None),
        )
        .await?;
        Ok(())
    }

    /// Deletes every key under `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<i64, EtcdError> {
        let mut c = self.client.clone();
        let r = self
            .bounded(
                || format!("deleting {prefix}*"),
                self.timeout,
                c.delete(prefix, Some(DeleteOptions::new().with_prefix())),
            )
            .await?;
        Ok(r.deleted())
    }

    /// Writes every `(key, value)` in one transaction if `key_checked` is as
    /// `expect` says; Ok(false) when it is not (someone else wrote first).
    pub async fn put_if(
        &self,
        key_checked: &str,
        expect: Expect,
        writes: &[(&str, &[u8])],
    ) -> Result<bool, EtcdError> {
        let cmp = match expect {
            Expect::Absent => Compare::create_revision(key_checked, CompareOp::Equal, 0),
            Expect::Revision(r) => Compare::mod_revision(key_checked, CompareOp::Equal, r),
        };
        let ops: Vec<TxnOp> = writes
            .iter()
            .map(|(k, v)| TxnOp::put(*k, *v, None))
            .collect();
        let txn = Txn::new().when(vec![cmp]).and_then(ops);
        let mut c = self.client.clone();
        let r = self
            .bounded(
                || format!("a conditional write of {key_checked}"),
                self.timeout,
                c.txn(txn),
            )
            .await?;
        Ok(r.succeeded())
    }

    /// Grants a lease of `ttl` and keeps it alive in a task until the
    /// returned [`Lease`] is revoked or dropped.
    pub async fn grant(&self, ttl: Duration) -> Result<Lease, EtcdError> {
        let secs = ttl.as_secs().max(1) as i64;
        let mut c = self.client.clone();
        let r = self
            .bounded(
                || "a lease".to_string(),
                self.timeout,
                c.lease_grant(secs, None),
            )
            .await?;
        let id = r.id();
        let (lost_tx, lost_rx) = watch::channel(false);
        let task = tokio::spawn(keep_alive(
            self.client.clone(),
            id,
            Duration::from_secs(secs as u64),
            self.timeout,
            lost_tx,
        ));
        Ok(Lease {
            id,
            lost: lost_rx,
            task,
            etcd: self.clone(),
        })
    }

    /// Takes the lock `name` for `lease` (waiting up to `wait` for another
    /// holder); returns the key that proves ownership, for [`Etcd::unlock`].
    pub async fn lock(
        &self,
        name: &str,
        lease: &Lease,
        wait: Duration,
    ) -> Result<String, EtcdError> {
        if lease.is_lost() {
            return Err(EtcdError::LeaseLost { id: lease.id });
        }
        let mut c = self.client.clone();
        let r = self
            .bounded(
                || format!("the lock {name}"),
                wait,
                c.lock(name, Some(LockOptions::new().with_lease(lease.id))),
            )
            .await?;
        Ok(String::from_utf8_lossy(r.key()).into_owned())
    }

    pub async fn unlock(&self, key: &str) -> Result<(), EtcdError> {
        let mut c = self.client.clone();
        self.bounded(|| format!("unlocking {key}"), self.timeout, c.unlock(key))
            .await?;
        Ok(())
    }

    /// Watches every key under `prefix`, from `start_revision` (0: from now).
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<Watch, EtcdError> {
        let mut c = self.client.clone();
        let mut opts = WatchOptions::new().with_prefix();
        if start_revision > 0 {
            opts = opts.with_start_revision(start_revision);
        }
        let stream = self
            .bounded(
                || format!("watching {prefix}*"),
                self.timeout,
                c.watch(prefix, Some(opts)),
            )
            .await?;
        Ok(Watch {
            stream,
            prefix: prefix.to_string(),
            start_revision,
        })
    }
}

/// When the keep-alive task refreshes a lease, and how long one refresh
/// may take. Pure: the task applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeepAliveTiming {
    pub ttl: Duration,
    /// Between two successful refreshes: a quarter of the TTL.
    pub period: Duration,
    /// One refresh (send and answer) at most: a sixth of the TTL, and
    /// never more than `request_timeout`, so that after a period and a
    /// refresh that hangs two more attempts fit before the TTL runs out.
    pub attempt: Duration,
    /// After a failed refresh, the next one comes this soon (a twentieth
    /// of the TTL, at least 100 ms), not a whole period later.
    pub retry: Duration,
}

pub(crate) fn keep_alive_timing(ttl: Duration, request_timeout: Duration) -> KeepAliveTiming {
    let ttl = ttl.max(Duration::from_secs(1));
    KeepAliveTiming {
        ttl,
        period: ttl / 4,
        attempt: (ttl / 6)
            .min(request_timeout)
            .max(Duration::from_millis(100)),
        retry: (ttl / 20).max(Duration::from_millis(100)),
    }
}

/// What the keep-alive task does after a refresh attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeepAliveNext {
    /// Wait this long, then refresh again.
    Wait(Duration),
    /// No refresh succeeded for a whole TTL: etcd has dropped the lease
    /// (its expiry counts from the last refresh it received, which came
    /// before the last answer seen here).
    Lost,
}

pub(crate) fn keep_alive_next(
    t: &KeepAliveTiming,
    since_last_ok: Duration,
    last_failed: bool,
) -> KeepAliveNext {
    if since_last_ok >= t.ttl {
        return KeepAliveNext::Lost;
    }
    let left = t.ttl - since_last_ok;
    let wait = if last_failed { t.retry } else { t.period };
    KeepAliveNext::Wait(wait.min(left))
}

/// Refreshes the lease on its own task (see [`keep_alive_timing`]); marks
/// it lost when etcd says it expired or when no refresh succeeded for a
/// whole TTL.
async fn keep_alive(
    client: Client,
    id: i64,
    ttl: Duration,
    timeout: Duration,
    lost: watch::Sender<bool>,
) {
    let timing = keep_alive_timing(ttl, timeout);
    let mut last_ok = tokio::time::Instant::now();
    let mut stream = None;
    loop {
        let mut failed = true;
        if stream.is_none() {
            let mut c = client.clone();
            if let Ok(Ok(s)) = tokio::time::timeout(timing.attempt, c.lease_keep_alive(id)).await {
                stream = Some(s);
            }
        }
        if let Some((keeper, replies)) = stream.as_mut() {
            let round = async {
                keeper.keep_alive().await?;
                replies.message().await
            };
            match tokio::time::timeout(timing.attempt, round).await {
                Ok(Ok(Some(r))) if r.ttl() > 0 => {
                    last_ok = tokio::time::Instant::now();
                    failed = false;
                }
                Ok(Ok(Some(_))) => {
                    tracing::warn!(lease = format!("{id:x}"), "etcd lease expired");
                    let _ = lost.send(true);
                    return;
                }
                _ => stream = None,
            }
        }
        match keep_alive_next(&timing, last_ok.elapsed(), failed) {
            KeepAliveNext::Lost => {
                tracing::warn!(
                    lease = format!("{id:x}"),
                    "etcd lease not refreshed for its whole TTL ({:?}): considered lost",
                    timing.ttl
                );
                let _ = lost.send(true);
                return;
            }
            KeepAliveNext::Wait(d) => {
                if failed {
                    tracing::debug!(
                        lease = format!("{id:x}"),
                        "etcd lease refresh failed; retrying in {d:?}"
                    );
                }
                tokio::time::sleep(d).await
            }
        }
    }
}

/// A lease kept alive by a task. Dropping it stops the keep-alive (the lease
/// then expires after its TTL); [`Lease::revoke`] ends it at once.
pub struct Lease {
    id: i64,
    lost: watch::Receiver<bool>,
    task: JoinHandle<()>,
    etcd: Etcd,
}

impl Lease {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// True once the lease expired (its locks and keys are gone).
    pub fn is_lost(&self) -> bool {
        *self.lost.borrow()
    }

    /// Resolves when the lease is lost.
    pub async fn lost(&self) {
        let mut rx = self.lost.clone();
        let _ = rx.wait_for(|l| *l).await;
    }

    /// Ends the lease now: its locks and keys go at once.
    pub async fn revoke(self) -> Result<(), EtcdError> {
        self.task.abort();
        let mut c = self.etcd.client.clone();
        let id = self.id;
        self.etcd
            .bounded(
                || format!("revoking lease {id:x}"),
                self.etcd.timeout,
                c.lease_revoke(id),
            )
            .await?;
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Changes under a prefix.
pub struct Watch {
    stream: etcd_client::WatchStream,
    prefix: String,
    start_revision: i64,
}

impl Watch {
    /// The next batch of changes; Err when the watch broke (etcd gone or the
    /// history compacted): read the state again and watch anew.
    pub async fn next(&mut self) -> Result<Vec<Change>, EtcdError> {
        loop {
            let msg = self
                .stream
                .message()
                .await
                .map_err(|e| EtcdError::Request {
                    what: format!("the watch on {}*", self.prefix),
                    detail: e.to_string(),
                })?;
            let Some(resp) = msg else {
                return Err(EtcdError::Request {
                    what: format!("the watch on {}*", self.prefix),
                    detail: "the stream ended".into(),
                });
            };
            if resp.canceled() && resp.compact_revision() > 0 {
                return Err(EtcdError::Compacted {
                    what: format!("the watch on {}*", self.prefix),
                    from: self.start_revision,
                    compacted: resp.compact_revision(),
                });
            }
            if resp.canceled() {
                return Err(EtcdError::Request {
                    what: format!("the watch on {}*", self.prefix),
                    detail: format!(
                        "cancelled by etcd (compacted at revision {}): {}",
                        resp.compact_revision(),
                        resp.cancel_reason()
                    ),
                });
            }
            let changes: Vec<Change> = resp
                .events()
                .iter()
                .filter_map(|ev| {
                    let kv = ev.kv()?;
                    Some(match ev.event_type() {
                        EventType::Put => Change::Put(Kv::from(kv)),
                        EventType::Delete => Change::Delete {
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            mod_revision: kv.mod_revision(),
                        },
                    })
                })
                .collect();
            if !changes.is_empty() {
                return Ok(changes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn keep_alive_attempts_fit_several_times_in_the_ttl() {
        // The benchmark's settings: 15 s TTL, 10 s request timeout. One
        // refresh may not take the request timeout: a hung one would leave
        // no room for another before the TTL.
        let t = keep_alive_timing(S(15), S(10));
        assert_eq!(t.period, MS(3750));
        assert_eq!(t.attempt, MS(2500));
        assert_eq!(t.retry, MS(750));
        // After a success: the next refresh hangs, and so do two retries;
        // all three end before the TTL (12.75 s of 15 s).
        assert!(t.period + 3 * t.attempt + 2 * t.retry < t.ttl);
        // A short request timeout bounds the attempt.
        assert_eq!(keep_alive_timing(S(15), S(1)).attempt, S(1));
        // Tiny TTLs round up to etcd's granularity of one second.
        let tiny = keep_alive_timing(MS(100), S(5));
        assert_eq!(tiny.ttl, S(1));
        assert_eq!(tiny.period, MS(250));
        assert_eq!(tiny.attempt, MS(166) + Duration::from_nanos(666_666));
        assert_eq!(tiny.retry, MS(100));
        assert!(tiny.period + 3 * tiny.attempt + 2 * tiny.retry < tiny.ttl);
    }

    #[test]
    fn keep_alive_retries_soon_after_a_failure_and_gives_up_after_the_ttl() {
        let t = keep_alive_timing(S(15), S(10));
        assert_eq!(
            keep_alive_next(&t, S(0), false),
            KeepAliveNext::Wait(MS(3750))
        );
        assert_eq!(
            keep_alive_next(&t, S(4), true),
            KeepAliveNext::Wait(MS(750))
        );
        // Never sleeps past the TTL.
        assert_eq!(keep_alive_next(&t, S(14), false), KeepAliveNext::Wait(S(1)));
        assert_eq!(keep_alive_next(&t, S(15), true), KeepAliveNext::Lost);
        assert_eq!(keep_alive_next(&t, S(20), false), KeepAliveNext::Lost);
    }
}
