//! Documented behaviours of operation that no other area showed: one TLS
//! stack in the dependency tree (cargo's own resolver decides), and more
//! rows of docs/claims.md, each named there.

use std::path::Path;
use std::process::{Command, Stdio};

/// `cargo tree -i <package>` over the workspace with every kind of
/// dependency, for the host: the crates that pull `package` in (empty
/// when nothing does).
fn cargo_tree_inverted(package: &str) -> Option<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "--workspace",
            "-e",
            "normal,build,dev",
            "-i",
            package,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return (!stdout.trim().is_empty()).then_some(stdout);
    }
    // A package the lock file does not name at all.
    assert!(
        stderr.contains("did not match any packages"),
        "cargo tree -i {package} failed: {stderr}"
    );
    None
}

/// R9: rustls with aws-lc-rs, and no OpenSSL crate or ring anywhere in the
/// built dependency graph (ring may sit in Cargo.lock as an optional
/// dependency no enabled feature pulls in; cargo tree shows what is built).
#[test]
fn one_tls_stack_no_openssl_and_no_ring() {
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("Cargo.lock")
        .is_file());
    for present in ["aws-lc-rs", "rustls"] {
        let tree = cargo_tree_inverted(present)
            .unwrap_or_else(|| panic!("{present} is not in the dependency tree"));
        assert!(tree.contains("certkeep v"), "{present}:\n{tree}");
    }
    for absent in ["openssl-sys", "openssl", "native-tls", "ring", "boring-sys"] {
        if let Some(tree) = cargo_tree_inverted(absent) {
            panic!("{absent} is in the dependency tree:\n{tree}");
        }
    }
}
