//! What each subsystem takes from the resolved [`Settings`]: a view of only
//! the values it uses, so a subsystem's signature says what it reads and a
//! test can build one without a whole configuration.

use std::path::Path;
use std::time::Duration;

use super::alert::AlertConfig;
use super::Settings;
use crate::webroot::SelfCheck;

/// Alert delivery: the channels and routes, the store whose `state/` holds
/// the alert state, and how long to wait for another process holding it.
#[derive(Debug, Clone, Copy)]
pub struct AlertSettings<'a> {
    pub alert: &'a AlertConfig,
    /// Root of the certificate store; the state is `<store>/state/alerts.json`.
    pub store: &'a Path,
    /// `[renewal] lock_wait`.
    pub lock_wait: Duration,
}

impl Settings {
    /// The slice alert delivery takes.
    pub fn alerting(&self) -> AlertSettings<'_> {
        AlertSettings {
            alert: &self.alert,
            store: &self.store,
            lock_wait: self.renewal.lock_wait.get(),
        }
    }
}

impl Settings {
    /// The slice the HTTP-01 self-check takes: how it reaches nginx
    /// (`[http01]`) and the CA bundle an HTTPS redirect is verified with
    /// (`[acme] ca_bundle`); None when `[http01] self_check = false`.
    pub fn self_check(&self) -> Option<SelfCheck> {
        let h = &self.http01;
        h.self_check.then(|| SelfCheck {
            port: h.self_check_port,
            connect: h.self_check_connect,
            ca_bundle: self.acme.ca_bundle.clone(),
        })
    }
}
