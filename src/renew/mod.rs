//! Renewal: `plan` decides what is due (pure), `ari` asks the CA for renewal
//! windows, `run` carries a renewal run out in phases (`obtain`, `deploy`,
//! `hooks`) into a typed `outcome`; `state` remembers per lineage which
//! version is served, which awaits its deploy, and what was revoked.

pub(crate) mod alerts;
pub(crate) mod ari;
mod deploy;
mod hooks;
mod obtain;
pub(crate) mod outcome;
pub(crate) mod plan;
pub(crate) mod run;
pub(crate) mod state;
