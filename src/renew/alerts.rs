//! What a renewal run tells the alert subsystem (pure): a failed renewal is a
//! critical problem per certificate; nginx, hook and state trouble is one
//! problem for the run. Certificates renewed or not due are checked-OK, so
//! their earlier alerts resolve.

use time::OffsetDateTime;

use crate::alert::{Problem, Severity};

use super::plan::date;
use super::run::Outcome;

/// Key of the run-level problem (nginx, hooks, state). Keys are
/// `kind:subject:check`, never error text: what went wrong is in the details.
pub(crate) const RUN_KEY: &str = "renew:run:deploy";

/// Key of a certificate's renewal (or deploy) failure.
pub(crate) fn key(name: &str) -> String {
    format!("renew:{name}:renewal")
}

/// Key of the "CA unreachable for too long" problem.
pub(crate) const CA_KEY: &str = "agent:ca:reachable";

/// Problems and checked-OK keys from a run's outcome. `ca_bound`: how long
/// the CA may be unreachable before it is a problem of its own.
pub(crate) fn observations(
    o: &Outcome,
    now: OffsetDateTime,
    ca_bound: std::time::Duration,
) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut ok = Vec::new();
    match (o.ca_reachable, &o.ca_unreachable_since) {
        (Some(true), _) => ok.push(CA_KEY.to_string()),
        (Some(false), Some(since))
            if now - *since >= time::Duration::seconds(ca_bound.as_secs() as i64) =>
        {
            problems.push(
                Problem::new(
                    CA_KEY,
                    Severity::Critical,
                    "the ACME CA has been unreachable",
                )
                .detail("since", date(*since))
                .detail(
                    "problem",
                    "certkeep cannot reach the CA: renewals will fail until it can",
                ),
            );
        }
        _ => {}
    }
    for f in &o.failed {
        let mut p = Problem::new(
            key(&f.name),
            Severity::Critical,
            format!("renewal of {} failed", f.name),
        )
        .detail("certificate", f.name.clone())
        .detail("domains", f.domains.join(", "))
        .detail("problem", f.failure.to_string());
        if let Some(e) = f.expires {
            p = p.detail("expires", date(e));
        }
        if let Some(v) = f.pending_version {
            p = p.detail("pending_version", v.to_string());
        }
        problems.push(p);
    }
    for name in o
        .renewed
        .iter()
        .map(|r| &r.name)
        .chain(o.not_due.iter().map(|n| &n.name))
    {
        if !o.failed.iter().any(|f| &f.name == name) {
            ok.push(key(name));
        }
    }
    if o.problems.is_empty() {
        ok.push(RUN_KEY.to_string());
    } else {
        problems.push(
            Problem::new(
                RUN_KEY,
                Severity::Critical,
                "a renewal run had deployment problems",
            )
            .detail(
                "problem",
                o.problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        );
    }
    (problems, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::CommandError;
    use crate::renew::plan::Reason;
    use crate::renew::run::{Failed, Failure, NotDue, Renewed, RunProblem};
    use time::macros::datetime;

    const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

    #[test]
    fn unreachable_ca_is_a_problem_only_after_the_bound() {
        let now = time::macros::datetime!(2026-05-01 12:00 UTC);
        let o = |reachable: Option<bool>, since: Option<OffsetDateTime>| Outcome {
            ca_reachable: reachable,
            ca_unreachable_since: since,
            ..Outcome::default()
        };
        let (p, _) = observations(
            &o(Some(false), Some(datetime!(2026-05-01 11:30 UTC))),
            now,
            HOUR,
        );
        assert!(
            p.iter().all(|p| p.key != CA_KEY),
            "30 minutes is within the bound"
        );
        let (p, _) = observations(
            &o(Some(false), Some(datetime!(2026-05-01 10:59 UTC))),
            now,
            HOUR,
        );
        let ca = p.iter().find(|p| p.key == CA_KEY).expect("past the bound");
        assert_eq!(ca.details["since"], "2026-05-01T10:59:00Z");
        let (_, ok) = observations(&o(Some(true), None), now, HOUR);
        assert!(ok.contains(&CA_KEY.to_string()));
        let (p, ok) = observations(&o(None, None), now, HOUR);
        assert!(!ok.contains(&CA_KEY.to_string()) && p.iter().all(|p| p.key != CA_KEY));
    }

    #[test]
    fn failures_fire_and_successes_resolve() {
        let o = Outcome {
            dry_run: false,
            renewed: vec![Renewed {
                name: "a".into(),
                version: Some(2),
                serial: "01".into(),
                not_after: datetime!(2027-01-01 00:00 UTC),
                reason: Reason::Forced,
            }],
            not_due: vec![NotDue {
                name: "b".into(),
                due_at: datetime!(2027-01-01 00:00 UTC),
                basis: "ARI",
            }],
            failed: vec![Failed {
                name: "c".into(),
                domains: vec!["c.example".into()],
                failure: Failure::PreHook(CommandError::Failed {
                    command: "check".into(),
                    status: "exit status: 1".into(),
                    output: "no".into(),
                }),
                expires: Some(datetime!(2027-01-01 00:00 UTC)),
                pending_version: None,
            }],
            ..Outcome::default()
        };
        let (problems, ok) = observations(&o, OffsetDateTime::now_utc(), HOUR);
        assert_eq!(ok, vec!["renew:a:renewal", "renew:b:renewal", RUN_KEY]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "renew:c:renewal");
        assert_eq!(problems[0].severity, Severity::Critical);
        assert_eq!(
            problems[0].details["problem"],
            "not attempted: its pre_hook failed: `check` failed (exit status: 1): no"
        );
        assert_eq!(problems[0].details["expires"], "2027-01-01T00:00:00Z");
    }

    #[test]
    fn run_problems_are_one_alert() {
        let o = Outcome {
            problems: vec![
                RunProblem::PostHook(CommandError::Failed {
                    command: "a".into(),
                    status: "exit status: 1".into(),
                    output: "no".into(),
                }),
                RunProblem::DeployHook {
                    name: "b".into(),
                    error: CommandError::Failed {
                        command: "c".into(),
                        status: "exit status: 2".into(),
                        output: "no".into(),
                    },
                },
            ],
            ..Outcome::default()
        };
        let (problems, ok) = observations(&o, OffsetDateTime::now_utc(), HOUR);
        assert!(ok.is_empty());
        assert_eq!(problems[0].key, RUN_KEY);
        assert!(
            problems[0].details["problem"]
                .contains("post_hook: `a` failed (exit status: 1): no; b: deploy_hook: `c`"),
            "{:?}",
            problems[0].details
        );
    }
}
