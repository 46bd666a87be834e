//! The status page (`/`, plain server-side HTML readable on a phone, no
//! JavaScript) and `/status.json`, rendered (pure) from what the daemon
//! knows. Neither holds secrets or key material: names, serials, issuers,
//! times and verdicts only.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::metrics::Metrics;

fn verdict_name(v: f64) -> &'static str {
    match v as i64 {
        0 => "ok",
        1 => "warning",
        2 => "critical",
        _ => "error",
    }
}

fn label<'a>(l: &'a [(String, String)], k: &str) -> &'a str {
    l.iter()
        .find(|(n, _)| n == k)
        .map_or("", |(_, v)| v.as_str())
}

fn rfc3339(t: i64) -> String {
    crate::alert::message::rfc3339(u64::try_from(t).unwrap_or(0))
}

/// When a lineage is renewed next: at the first renewal check once it is
/// due, so the later of the two; None when this daemon orders no renewals
/// (cluster mode) or when neither is known.
fn next_renewal(due: Option<i64>, next_check: Option<i64>) -> Option<i64> {
    let check = next_check?;
    Some(due.map_or(check, |d| d.max(check)))
}

/// The status as JSON at Unix time `now`.
pub(crate) fn json(m: &Metrics, now: i64) -> Value {
    let lineages: Vec<Value> = m
        .certificates
        .iter()
        .filter(|(_, c)| c.not_after != 0)
        .map(|(name, c)| {
            json!({
                "name": name,
                "serial": c.serial,
                "issuer": c.issuer,
                "not_after": rfc3339(c.not_after),
                "version": c.version,
                "days_left": (c.not_after - now).div_euclid(86_400),
                "last_renewal": c.last_renewal_ok.map(|ok| if ok { "ok" } else { "failed" }),
                "last_renewal_at": c.last_success_at.max(c.last_failure_at).map(rfc3339),
                "renewal_due": c.renewal_due_at.map(rfc3339),
                "next_renewal": next_renewal(c.renewal_due_at, m.next_renewal_check).map(rfc3339),
            })
        })
        .collect();
    let mut endpoints: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    if let Some(s) = m.series.get("certkeep_probe_verdict") {
        for (l, v) in &s.samples {
            endpoints
                .entry(label(l, "target").to_string())
                .or_default()
                .0 = verdict_name(*v).into();
        }
    }
    if let Some(s) = m.series.get("certkeep_probe_check_verdict") {
        for (l, v) in &s.samples {
            endpoints
                .entry(label(l, "target").to_string())
                .or_default()
                .1
                .insert(label(l, "check").to_string(), verdict_name(*v).into());
        }
    }
    let endpoints: Vec<Value> = endpoints
        .into_iter()
        .map(|(t, (v, checks))| json!({"target": t, "verdict": v, "checks": checks}))
        .collect();
    let jobs: Vec<Value> = m
        .last_run
        .iter()
        .map(|(j, (t, ok))| json!({"job": j, "last_run": rfc3339(*t), "ok": ok}))
        .collect();
    json!({
        "generated": rfc3339(now),
        "next_renewal_check": m.next_renewal_check.map(rfc3339),
        "lineages": lineages,
        "endpoints": endpoints,
        "jobs": jobs,
        "alerts": {"open": m.alerts_open, "queued": m.alert_queue},
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "2026-11-26T09:21:35Z" as "2026-11-26 09:21" (UTC), short enough for a
/// phone's width; anything else as it is.
fn short(t: &str) -> String {
    match (t.get(..10), t.get(11..16)) {
        (Some(day), Some(hm)) if t.len() == 20 && t.ends_with('Z') => format!("{day} {hm}"),
        _ => t.to_string(),
    }
}

/// The status page at Unix time `now`.
pub(crate) fn html(m: &Metrics, now: i64) -> String {
    let v = json(m, now);
    let mut out = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>certkeep status</title><style>body{font-family:sans-serif;margin:1em;max-width:60em}table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left}.id{overflow-wrap:anywhere}.ok{color:#070}.warning{color:#a60}.critical,.error,.failed{color:#b00;font-weight:bold}</style></head><body><h1>certkeep status</h1>",
    );
    out.push_str(&format!(
        "<p>Generated {} (times in UTC)</p>",
        esc(&short(v["generated"].as_str().unwrap_or("")))
    ));
    out.push_str("<h2>Certificates</h2><table><tr><th>Lineage</th><th>Version</th><th>Days left</th><th>Expires</th><th>Serial</th><th>Last renewal</th><th>Next renewal</th></tr>");
    for l in v["lineages"].as_array().into_iter().flatten() {
        let last = l["last_renewal"].as_str().unwrap_or("none yet");
        let last_at = l["last_renewal_at"]
            .as_str()
            .map_or(String::new(), |t| format!(" at {}", esc(&short(t))));
        let next = l["next_renewal"]
            .as_str()
            .map_or("not by this node (cluster mode)".to_string(), short);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"id\">{}</td><td class=\"{}\">{}{last_at}</td><td>{}</td></tr>",
            esc(l["name"].as_str().unwrap_or("")),
            l["version"],
            l["days_left"],
            esc(&short(l["not_after"].as_str().unwrap_or(""))),
            esc(l["serial"].as_str().unwrap_or("")),
            esc(last),
            esc(last),
            esc(&next)
        ));
    }
    out.push_str("</table><h2>Endpoints</h2><table><tr><th>Endpoint</th><th>Verdict</th><th>Checks</th></tr>");
    for e in v["endpoints"].as_array().into_iter().flatten() {
        let verdict = e["verdict"].as_str().unwrap_or("");
        let checks: Vec<String> = e["checks"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(c, r)| {
                let r = r.as_str().unwrap_or("");
                format!("<span class=\"{}\">{}: {}</span>", esc(r), esc(c), esc(r))
            })
            .collect();
        out.push_str(&format!(
            "<tr><td class=\"id\">{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            esc(e["target"].as_str().unwrap_or("")),
            esc(verdict),
            esc(verdict),
            checks.join(", ")
        ));
    }
    out.push_str("</table><h2>Alerts</h2><p>Open alerts: ");
    out.push_str(
        &v["alerts"]["open"]
            .as_u64()
            .map_or("unknown".into(), |n| n.to_string()),
    );
    out.push_str("</p><table><tr><th>Channel</th><th>Queued deliveries</th></tr>");
    for (c, n) in v["alerts"]["queued"].as_object().into_iter().flatten() {
        out.push_str(&format!("<tr><td>{}</td><td>{n}</td></tr>", esc(c)));
    }
    out.push_str("</table></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::metrics::{CertificateMetric, Series};

    #[test]
    fn page_and_json_show_lineages_endpoints_and_alerts_escaped() {
        let mut m = Metrics::default();
        m.certificates.insert(
            "<shop>".into(),
            CertificateMetric {
                not_after: 10 * 86_400 + 5,
                not_before: 0,
                serial: "0a:1b".into(),
                issuer: "CN=Test".into(),
                version: 3,
                last_renewal_ok: Some(false),
                last_success_at: Some(86_400),
                last_failure_at: Some(2 * 86_400),
                renewal_due_at: Some(5 * 86_400),
            },
        );
        m.certificates.insert(
            "later".into(),
            CertificateMetric {
                not_after: 90 * 86_400,
                version: 1,
                renewal_due_at: Some(60 * 86_400),
                ..Default::default()
            },
        );
        m.next_renewal_check = Some(7 * 86_400);
        let t = |c: Option<&str>| {
            let mut l = vec![("target".to_string(), "https://a.example".to_string())];
            if let Some(c) = c {
                l.push(("check".into(), c.into()));
            }
            l
        };
        m.series.insert(
            "certkeep_probe_verdict".into(),
            Series {
                help: String::new(),
                samples: vec![(t(None), 2.0)],
            },
        );
        m.series.insert(
            "certkeep_probe_check_verdict".into(),
            Series {
                help: String::new(),
                samples: vec![(t(Some("expiry")), 2.0), (t(Some("hsts")), 0.0)],
            },
        );
        m.alert_queue.insert("am".into(), 3);
        m.alerts_open = Some(1);
        let v = json(&m, 0);
        assert_eq!(v["lineages"][0]["days_left"], 10);
        assert_eq!(v["lineages"][0]["version"], 3);
        assert_eq!(v["lineages"][0]["last_renewal"], "failed");
        assert_eq!(v["lineages"][0]["last_renewal_at"], "1970-01-03T00:00:00Z");
        assert_eq!(v["lineages"][0]["renewal_due"], "1970-01-06T00:00:00Z");
        // Due before the next check: renewed at that check.
        assert_eq!(v["lineages"][0]["next_renewal"], "1970-01-08T00:00:00Z");
        // Due after it: renewed once due.
        assert_eq!(v["lineages"][1]["name"], "later");
        assert_eq!(v["lineages"][1]["next_renewal"], "1970-03-02T00:00:00Z");
        assert_eq!(v["lineages"][1]["last_renewal"], Value::Null);
        assert_eq!(v["endpoints"][0]["verdict"], "critical");
        assert_eq!(v["endpoints"][0]["checks"]["hsts"], "ok");
        assert_eq!(v["alerts"]["queued"]["am"], 3);
        let page = html(&m, 0);
        assert!(
            page.contains("<td>&lt;shop&gt;</td><td>3</td><td>10</td>"),
            "{page}"
        );
        assert!(
            page.contains("failed at 1970-01-03 00:00</td><td>1970-01-08 00:00</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>later</td><td>1</td>") && page.contains(">none yet</td>"),
            "{page}"
        );
        assert!(page.contains("expiry: critical"), "{page}");
        assert!(page.contains("Open alerts: 1"), "{page}");
        assert!(!page.contains("<script"), "{page}");
        // In cluster mode this node renews nothing.
        m.next_renewal_check = None;
        assert_eq!(json(&m, 0)["lineages"][0]["next_renewal"], Value::Null);
        assert!(html(&m, 0).contains("not by this node"));
    }
}
