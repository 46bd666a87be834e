//! The shipped Prometheus rules (config/prometheus/) checked and unit-tested
//! with Prometheus's own promtool, and tied to the metric names certkeep
//! really serves.

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// Every `certkeep_...` name in `text`.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("certkeep_"))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    require!("promtool");
    let out = promtool(&["check", "rules", "certkeep-rules.yml"]);
    assert!(out.contains("SUCCESS: 10 rules found"), "{out}");
    let out = promtool(&["test", "rules", "certkeep-rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    promtool(&["check", "config", "scrape-config.yml"]);
}

#[test]
fn rules_and_their_tests_use_the_names_certkeep_serves() {
    let rules = std::fs::read_to_string(dir().join("certkeep-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir().join("certkeep-rules.test.yml")).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = ["src/daemon/metrics.rs", "src/daemon/probe_metrics.rs"]
        .iter()
        .map(|p| std::fs::read_to_string(root.join(p)).unwrap())
        .collect::<String>();
    let docs = std::fs::read_to_string(root.join("docs/running.md")).unwrap();
    let in_rules = metric_names(&rules);
    assert_eq!(in_rules.len(), 7, "{in_rules:?}");
    for name in in_rules.iter().chain(&metric_names(&tests)) {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} is not a metric the daemon renders"
        );
        assert!(
            docs.contains(&format!("`{name}`")),
            "{name} is not documented in docs/running.md"
        );
    }
    // Every rule's input appears in the unit tests.
    for name in &in_rules {
        assert!(tests.contains(name.as_str()), "{name} has no test series");
    }
}
