//! The hooks phase of a run: deploy hooks for each certificate deployed,
//! then the post hooks once.

use std::time::Duration;

use super::outcome::{Outcome, RunProblem};
use crate::config::{CertificateConfig, Hooks};
use crate::hooks;
use crate::store::Store;

/// Runs the deploy hooks of `deployed` (the global one of `[hooks]`, then
/// the certificate's own); returns their `live/` directories (for
/// `RENEWED_LINEAGES`).
pub(super) async fn deploy_hooks(
    global: &Hooks,
    store: &Store,
    deployed: &[&CertificateConfig],
    timeout: Duration,
    problems: &mut Vec<RunProblem>,
) -> Vec<String> {
    let mut lineages = Vec::new();
    for c in deployed {
        let lineage = store.live_dir(c.name()).display().to_string();
        lineages.push(lineage.clone());
        let env = vec![
            ("RENEWED_LINEAGE".to_string(), lineage),
            ("RENEWED_DOMAINS".to_string(), c.domain_names().join(" ")),
        ];
        for cmd in global.deploy_hook.iter().chain(c.deploy_hook.iter()) {
            if let Err(error) = hooks::run("deploy-hook", cmd, &env, timeout).await {
                problems.push(RunProblem::DeployHook {
                    name: c.name().to_string(),
                    error,
                });
            }
        }
    }
    lineages
}

/// Runs the post hooks of the certificates `attempted`, then the global one
/// of `[hooks]`. Every renewed certificate is among `attempted`.
pub(super) async fn post_hooks(
    global: &Hooks,
    attempted: &[&CertificateConfig],
    out: &Outcome,
    timeout: Duration,
    renewed_lineages: &[String],
) -> Vec<RunProblem> {
    let renewed: Vec<String> = out
        .renewed
        .iter()
        .filter_map(|r| attempted.iter().find(|c| c.name() == r.name))
        .flat_map(|c| c.domain_names())
        .collect();
    let failed: Vec<String> = out.failed.iter().flat_map(|f| f.domains.clone()).collect();
    let env = vec![
        ("RENEWED_DOMAINS".to_string(), renewed.join(" ")),
        ("FAILED_DOMAINS".to_string(), failed.join(" ")),
        ("RENEWED_LINEAGES".to_string(), renewed_lineages.join(" ")),
    ];
    let mut cmds: Vec<&crate::config::Command> = attempted
        .iter()
        .filter_map(|c| c.post_hook.as_ref())
        .collect();
    cmds.extend(global.post_hook.iter());
    let mut problems = Vec::new();
    for cmd in cmds {
        if let Err(e) = hooks::run("post-hook", cmd, &env, timeout).await {
            problems.push(RunProblem::PostHook(e));
        }
    }
    problems
}
