//! What a renewal run did, typed: errors stay errors and dates stay dates
//! until printed or serialized (`certkeep renew --json`, alerts).

use std::sync::Arc;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use super::plan::Reason;
use crate::acme::AcmeError;
use crate::hooks::CommandError;
use crate::issue::IssueError;
use crate::net::error_chain;
use crate::nginx::NginxError;
use crate::store::StoreError;

fn display<T: std::fmt::Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn display_all<T: std::fmt::Display, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|x| x.to_string()))
}

/// A certificate renewed (or, in a dry run, obtained) and deployed.
#[derive(Debug, Serialize)]
pub(crate) struct Renewed {
    pub name: String,
    /// Archive version now live (None in a dry run).
    pub version: Option<u32>,
    pub serial: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    #[serde(serialize_with = "display")]
    pub reason: Reason,
}

/// A certificate not due yet.
#[derive(Debug, Serialize)]
pub(crate) struct NotDue {
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
    /// "ARI" or "threshold".
    pub basis: &'static str,
}

/// A certificate that was not renewed, or whose new version is not served.
#[derive(Debug, Serialize)]
pub(crate) struct Failed {
    pub name: String,
    pub domains: Vec<String>,
    #[serde(rename = "error", serialize_with = "display")]
    pub failure: Failure,
    /// When the certificate left in place (the one live and served) expires.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires: Option<OffsetDateTime>,
    /// A stored version nginx does not serve yet: the next run deploys it
    /// again without a new order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_version: Option<u32>,
}

/// Why a certificate was not renewed or deployed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    #[error("{0}")]
    Lineage(StoreError),
    #[error("{}", error_chain(.0.as_ref()))]
    CaUnreachable(Arc<AcmeError>),
    #[error("not attempted: the pre_hook failed: {0}")]
    RunPreHook(Arc<CommandError>),
    #[error("not attempted: its pre_hook failed: {0}")]
    PreHook(CommandError),
    #[error("{}", error_chain(.0))]
    Obtain(IssueError),
    #[error("the new certificate could not be stored (the live one is untouched): {0}")]
    Store(StoreError),
    #[error(transparent)]
    Deploy(DeployFailure),
}

/// A version stored but not served: which step failed and where live/ is now.
#[derive(Debug)]
pub(crate) struct DeployFailure {
    /// The version that is not served.
    pub version: u32,
    pub step: DeployStep,
    pub rollback: Rollback,
}

/// The deploy step that failed.
#[derive(Debug)]
pub(crate) enum DeployStep {
    /// The live links could not be moved to the new version.
    Activate(StoreError),
    /// `nginx -t`, shared by every certificate of the run.
    Test(Arc<NginxError>),
    /// The reload command, shared by every certificate of the run.
    Reload(Arc<NginxError>),
    /// The endpoint does not serve the new serial.
    Confirm(NginxError),
}

/// What happened to the live links after a failed deploy.
#[derive(Debug)]
pub(crate) enum Rollback {
    /// live/ points at the version served before (nginx was reloaded back
    /// onto it when it had been reloaded).
    To(u32),
    /// The links never moved.
    Untouched,
    /// A first certificate: there is nothing to go back to.
    NoPrevious,
    /// Moving the links back failed.
    Failed { to: u32, error: StoreError },
}

impl Rollback {
    /// Whether live/ still points at the new (unserved) version.
    pub(crate) fn left_new_version(&self) -> bool {
        matches!(self, Rollback::NoPrevious | Rollback::Failed { .. })
    }
}

impl std::fmt::Display for DeployFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.step {
            DeployStep::Activate(e) => write!(f, "cannot point live/ at the new version: {e}")?,
            DeployStep::Test(e) | DeployStep::Reload(e) => write!(f, "{e}")?,
            DeployStep::Confirm(e) => write!(f, "{e}")?,
        }
        match &self.rollback {
            Rollback::To(v) => write!(
                f,
                "; live/ was moved back to version {v}, which nginx serves"
            )?,
            Rollback::Untouched => {}
            Rollback::NoPrevious => write!(f, "; there is no previous version to roll back to")?,
            Rollback::Failed { to, error } => {
                write!(f, "; moving live/ back to version {to} failed: {error}")?
            }
        }
        write!(
            f,
            "; version {} stays stored and the next run deploys it again without a new order",
            self.version
        )
    }
}

impl std::error::Error for DeployFailure {}

/// Trouble of the run as a whole (nginx after a rollback, hooks, state).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunProblem {
    #[error("pre_hook: {0}")]
    PreHook(Arc<CommandError>),
    #[error("{name}: deploy_hook: {error}")]
    DeployHook { name: String, error: CommandError },
    #[error("post_hook: {0}")]
    PostHook(CommandError),
    #[error("reloading nginx back onto the previous certificates of {} failed: {error}", .names.join(", "))]
    ReloadBack {
        names: Vec<String>,
        error: NginxError,
    },
    #[error("cannot save the {what}: {error}")]
    State {
        what: &'static str,
        error: StoreError,
    },
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Outcome {
    pub dry_run: bool,
    pub renewed: Vec<Renewed>,
    pub not_due: Vec<NotDue>,
    pub failed: Vec<Failed>,
    #[serde(serialize_with = "display_all")]
    pub problems: Vec<RunProblem>,
    /// Whether the CA answered this run (None: not contacted).
    pub ca_reachable: Option<bool>,
    /// Since when the CA has been unreachable, across runs.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ca_unreachable_since: Option<OffsetDateTime>,
}

impl Outcome {
    pub(crate) fn ok(&self) -> bool {
        self.failed.is_empty() && self.problems.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deploy_failure_says_where_live_is_and_what_happens_next() {
        let f = DeployFailure {
            version: 2,
            step: DeployStep::Reload(Arc::new(NginxError::Reload(CommandError::Failed {
                command: "nginx -s reload".into(),
                status: "exit status: 1".into(),
                output: "refused".into(),
            }))),
            rollback: Rollback::To(1),
        };
        assert_eq!(
            f.to_string(),
            "nginx reload failed: `nginx -s reload` failed (exit status: 1): refused; \
             live/ was moved back to version 1, which nginx serves; \
             version 2 stays stored and the next run deploys it again without a new order"
        );
        assert!(!f.rollback.left_new_version());
        let first = DeployFailure {
            rollback: Rollback::NoPrevious,
            ..f
        };
        assert!(first
            .to_string()
            .contains("there is no previous version to roll back to"));
        assert!(first.rollback.left_new_version());
    }
}
