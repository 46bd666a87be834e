//! Cancellation of every wait on shutdown.
//!
//! A [`Token`] is cancelled once and observed by every wait that could
//! otherwise outlast a SIGTERM: ACME retry back-offs, store and alert lock
//! waits, hooks. The process has one token, [`global`], which the daemon
//! cancels on SIGTERM/SIGINT; a cancelled wait returns [`Cancelled`] at once,
//! so a job in a 60 s back-off stops within milliseconds instead of holding
//! the daemon until its shutdown timeout.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

/// A wait was cut short because certkeep is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped: certkeep is shutting down")]
pub struct Cancelled;

/// Cancelled once, never reset; cheap to clone.
#[derive(Debug, Clone)]
pub struct Token(Arc<watch::Sender<bool>>);

impl Default for Token {
    fn default() -> Self {
        Self::new()
    }
}

impl Token {
    pub fn new() -> Self {
        Token(Arc::new(watch::channel(false).0))
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes when the token is cancelled (at once if it already is).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so this only ends on cancellation.
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Sleeps for `d`, or less when cancelled meanwhile.
    pub async fn sleep(&self, d: Duration) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            return Err(Cancelled);
        }
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = self.cancelled() => Err(Cancelled),
        }
    }

    /// Runs `fut` unless the token is cancelled first (then `fut` is dropped).
    pub async fn run<F: std::future::Future>(&self, fut: F) -> Result<F::Output, Cancelled> {
        if self.is_cancelled() {
            return Err(Cancelled);
        }
        tokio::select! {
            out = fut => Ok(out),
            () = self.cancelled() => Err(Cancelled),
        }
    }
}

/// For one-shot commands (`renew`, `issue`): the first SIGINT or SIGTERM
/// cancels [`global`], so retry back-offs and lock waits end and the run
/// winds down (hooks that already started finish, post hooks still run,
/// the store lock is released); a second signal exits at once with 130.
pub(crate) fn cancel_on_signals() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; SIGINT/SIGTERM stop certkeep at once");
        return;
    };
    tokio::spawn(async move {
        for n in 0.. {
            let sig = tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
            if n == 0 {
                eprintln!("{sig}: stopping after the current step (send it again to quit at once)");
                global().cancel();
            } else {
                std::process::exit(130);
            }
        }
    });
}

/// The process's token, cancelled by the daemon on SIGTERM/SIGINT.
pub(crate) fn global() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(Token::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn sleep_ends_early_on_cancel_and_at_once_after() {
        let t = Token::new();
        assert_eq!(t.sleep(Duration::from_millis(1)).await, Ok(()));
        let c = t.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel();
        });
        let start = Instant::now();
        assert_eq!(t.sleep(Duration::from_secs(600)).await, Err(Cancelled));
        // Bound on a hang: far below the 600 s asked for.
        assert!(start.elapsed() < Duration::from_secs(30));
        assert!(t.is_cancelled());
        assert_eq!(t.sleep(Duration::from_secs(600)).await, Err(Cancelled));
        assert_eq!(t.run(async { 1 }).await, Err(Cancelled));
        assert_eq!(Token::new().run(async { 1 }).await, Ok(1));
    }
}
