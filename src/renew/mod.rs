//! Renewal: `plan` decides what is due (pure), `ari` asks the CA for renewal
//! windows, `run` carries a renewal run out.

pub mod alerts;
pub mod ari;
pub mod plan;
pub mod run;
