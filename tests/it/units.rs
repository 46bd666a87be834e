//! The shipped systemd units start on any host that uses either store and
//! any webroot.
//!
//! systemd refuses to start a unit whose `ReadWritePaths=` (and the other
//! path-list settings) names a path that does not exist ("Failed to set up
//! mount namespacing", status 226/NAMESPACE) unless the entry starts with
//! `-`. `systemd-analyze verify` (scripts/verify-units.sh) does not catch
//! that, and there is no systemd as PID 1 to start the units here, so this
//! reads every unit file in systemd/ and checks every path entry against the
//! rule: it is optional (`-`), or systemd creates it (`StateDirectory=` and
//! the other `*Directory=` settings), or Debian guarantees that it exists.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Settings whose value is a list of paths the namespace setup needs (or the
/// first, source, field of each entry for the bind and mount settings).
const PATH_LISTS: &[&str] = &[
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "ExecPaths",
    "NoExecPaths",
    "BindPaths",
    "BindReadOnlyPaths",
    "TemporaryFileSystem",
    "MountImages",
    "ExtensionImages",
    "ExtensionDirectories",
    "RootDirectory",
    "RootImage",
    "WorkingDirectory",
];

/// Directories systemd creates before starting the unit, by setting, with
/// the base the (relative) names are taken under.
const CREATED: &[(&str, &str)] = &[
    ("StateDirectory", "/var/lib"),
    ("RuntimeDirectory", "/run"),
    ("CacheDirectory", "/var/cache"),
    ("LogsDirectory", "/var/log"),
    ("ConfigurationDirectory", "/etc"),
];

/// Paths every Debian system has: the FHS top level from base-files and the
/// API file systems systemd itself mounts. Nothing host-specific (no
/// /var/log/nginx: that exists only once nginx is installed).
const DEBIAN_ALWAYS: &[&str] = &[
    "/",
    "/etc",
    "/usr",
    "/var",
    "/var/lib",
    "/var/log",
    "/var/cache",
    "/var/tmp",
    "/run",
    "/tmp",
    "/dev",
    "/proc",
    "/sys",
];

/// One unit file: setting name -> every value assigned to it, in order.
type Unit = BTreeMap<String, Vec<String>>;

/// Parses a unit file the way systemd reads it: `[Section]` headers, `#` and
/// `;` comments, `Key=Value` lines, a trailing backslash continuing a line.
/// Section names are dropped; certkeep's units use each setting in one
/// section only.
fn parse(text: &str) -> Unit {
    let mut unit = Unit::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        let full = format!("{pending}{line}");
        pending.clear();
        if full.is_empty() || full.starts_with('[') {
            continue;
        }
        let (k, v) = full
            .split_once('=')
            .unwrap_or_else(|| panic!("not a Key=Value line: {full:?}"));
        unit.entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    unit
}

/// Splits a value into entries at whitespace, honouring double quotes.
fn words(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in v.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// One path entry with its prefixes taken apart.
#[derive(Debug)]
struct Entry {
    optional: bool,
    path: String,
}

fn entries(key: &str, value: &str) -> Vec<Entry> {
    let list = match key {
        // Single-path settings.
        "RootDirectory" | "RootImage" | "WorkingDirectory" => vec![value.to_string()],
        _ => words(value),
    };
    list.into_iter()
        .map(|w| {
            // `-` (ignore when missing) and `+` (relative to RootDirectory),
            // in either order.
            let prefix_len = w.chars().take_while(|c| *c == '-' || *c == '+').count();
            let (prefix, rest) = w.split_at(prefix_len);
            // BindPaths=src[:dst[:opts]], TemporaryFileSystem=path[:opts],
            // MountImages=src:dst[...]: the first field is what must exist.
            let path = rest.split(':').next().unwrap_or(rest).to_string();
            Entry {
                optional: prefix.contains('-'),
                path,
            }
        })
        .collect()
}

/// Directories systemd creates for this unit and makes writable (the
/// innermost ones).
fn state_dirs(unit: &Unit) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (key, base) in CREATED {
        for v in unit.get(*key).into_iter().flatten() {
            for name in words(v) {
                let name = name.split(':').next().unwrap_or(&name).to_string();
                assert!(
                    !name.starts_with('/'),
                    "{key}={name}: must be relative to {base}"
                );
                out.push(Path::new(base).join(&name));
            }
        }
    }
    out
}

/// Directories systemd creates for this unit, with their parents (which it
/// creates too, read-only).
fn created(unit: &Unit) -> Vec<PathBuf> {
    state_dirs(unit)
        .iter()
        .flat_map(|d| d.ancestors().map(Path::to_path_buf))
        .collect()
}

/// Every rule violation in one unit, as readable lines.
fn violations(file: &str, unit: &Unit) -> Vec<String> {
    let made = created(unit);
    let mut bad = Vec::new();
    for (key, values) in unit {
        let path_like = key.ends_with("Paths")
            || key.ends_with("Images")
            || key.ends_with("FileSystem")
            || key.ends_with("Directories");
        if path_like && !PATH_LISTS.contains(&key.as_str()) {
            bad.push(format!(
                "{file}: {key}= is a path setting this test does not know: add it to PATH_LISTS"
            ));
            continue;
        }
        if !PATH_LISTS.contains(&key.as_str()) {
            continue;
        }
        for v in values {
            for e in entries(key, v) {
                if e.optional
                    || made.iter().any(|m| Path::new(&e.path) == m)
                    || DEBIAN_ALWAYS.contains(&e.path.as_str())
                    || (key == "WorkingDirectory" && e.path == "~")
                {
                    continue;
                }
                bad.push(format!(
                    "{file}: {key}={} may not exist on the host; systemd would refuse to start \
                     the unit (226/NAMESPACE). Prefix it with `-`, or let systemd create it \
                     (StateDirectory= ...)",
                    e.path
                ));
            }
        }
    }
    bad
}

fn shipped_units() -> Vec<(String, Unit)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let mut units: Vec<(String, Unit)> = std::fs::read_dir(&dir)
        .expect("read systemd/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x != "md"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read unit");
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                parse(&text),
            )
        })
        .collect();
    units.sort_by(|a, b| a.0.cmp(&b.0));
    units
}

#[test]
fn every_path_entry_of_every_unit_exists_or_is_optional() {
    let units = shipped_units();
    let names: Vec<&str> = units.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "certkeep-probe.service",
            "certkeep-probe.timer",
            "certkeep-renew.service",
            "certkeep-renew.timer",
            "certkeep.service",
        ],
        "the units this test knows; a new one is checked too once listed here"
    );
    let mut checked = 0;
    let mut bad = Vec::new();
    for (file, unit) in &units {
        checked += unit
            .keys()
            .filter(|k| PATH_LISTS.contains(&k.as_str()))
            .count();
        bad.extend(violations(file, unit));
    }
    // The three services each list writable paths: the check is not vacuous.
    assert!(checked >= 3, "only {checked} path settings found");
    assert!(bad.is_empty(), "\n{}", bad.join("\n"));
}

/// What a unit may write under ProtectSystem=strict: its `ReadWritePaths=`
/// (when present) and the directories systemd creates for it.
fn writable(unit: &Unit, path: &str) -> bool {
    let rw = unit
        .get("ReadWritePaths")
        .into_iter()
        .flatten()
        .flat_map(|v| entries("ReadWritePaths", v))
        .map(|e| PathBuf::from(e.path));
    let mut all = rw.chain(state_dirs(unit));
    all.any(|p| Path::new(path).starts_with(&p))
}

#[test]
fn units_can_write_either_store_and_the_webroot() {
    let units: BTreeMap<String, Unit> = shipped_units().into_iter().collect();
    for file in [
        "certkeep.service",
        "certkeep-renew.service",
        "certkeep-probe.service",
    ] {
        let unit = &units[file];
        assert_eq!(
            unit.get("ProtectSystem").map(Vec::as_slice),
            Some(&["strict".to_string()][..]),
            "{file}"
        );
        // certkeep.toml's `store`: the default and the certbot layout.
        for store in ["/var/lib/certkeep", "/etc/letsencrypt"] {
            let needed = if file == "certkeep-probe.service" {
                format!("{store}/state")
            } else {
                store.to_string()
            };
            assert!(writable(unit, &needed), "{file} cannot write {needed}");
        }
    }
    for file in ["certkeep.service", "certkeep-renew.service"] {
        let unit = &units[file];
        for path in [
            "/var/www/certbot",
            "/var/www/html/.well-known/acme-challenge",
            "/var/log/nginx/error.log",
        ] {
            assert!(writable(unit, path), "{file} cannot write {path}");
        }
    }
    // The probe writes alert state only, not the store's certificates.
    let probe = &units["certkeep-probe.service"];
    for path in ["/var/lib/certkeep/live", "/etc/letsencrypt/archive"] {
        assert!(!writable(probe, path), "the probe can write {path}");
    }
    // /etc/letsencrypt/state is optional for the probe (absent on a host
    // with the default store): it is created first where that store exists.
    let pre = probe.get("ExecStartPre").cloned().unwrap_or_default();
    assert!(
        pre.iter()
            .any(|c| c.starts_with('+') && c.contains("mkdir -p -m 0700 /etc/letsencrypt/state")),
        "{pre:?}"
    );
}

#[test]
fn parser_reads_prefixes_continuations_and_bind_sources() {
    let u = parse(
        "[Service]\n# ReadWritePaths=/commented\nReadWritePaths=-/a \"/b c\" \\\n  +-/d\n\
         BindPaths=-/src:/dst:rbind /plain\nStateDirectory=certkeep/state\n",
    );
    let rw: Vec<(bool, String)> = entries("ReadWritePaths", &u["ReadWritePaths"][0])
        .into_iter()
        .map(|e| (e.optional, e.path))
        .collect();
    assert_eq!(
        rw,
        [
            (true, "/a".to_string()),
            (false, "/b c".to_string()),
            (true, "/d".to_string())
        ]
    );
    let bind: Vec<(bool, String)> = entries("BindPaths", &u["BindPaths"][0])
        .into_iter()
        .map(|e| (e.optional, e.path))
        .collect();
    assert_eq!(
        bind,
        [(true, "/src".to_string()), (false, "/plain".to_string())]
    );
    assert!(created(&u).contains(&PathBuf::from("/var/lib/certkeep/state")));
    assert!(created(&u).contains(&PathBuf::from("/var/lib/certkeep")));
    // `/b c` and `/plain` are neither optional, created nor always there.
    assert_eq!(violations("x.service", &u).len(), 2);
    // Yesterday's probe unit: both stores required, so it could never start.
    let old = parse("ReadWritePaths=/etc/letsencrypt/state /var/lib/certkeep/state\n");
    assert_eq!(violations("old-probe.service", &old).len(), 2);
}
