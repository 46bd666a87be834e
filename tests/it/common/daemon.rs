//! `certkeep run` as a child process, for tests that talk to its HTTP
//! listener.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{wait_for, KillOnDrop};

/// The head of a daemon config with its store at `store` and no job due (no
/// renewal at start, both schedules in 2099). `[daemon]` is the open
/// section: append its other lines, then other sections.
pub fn idle_head(store: &Path) -> String {
    format!(
        "store = \"{}\"\n[daemon]\nrenew_at_start = false\nrenew_schedule = \"0 0 0 1 1 * 2099\"\nprobe_schedule = \"0 0 0 1 1 * 2099\"\n",
        store.display()
    )
}

/// Starts `certkeep --config <config> run` with `RUST_LOG` unset and its
/// output discarded; killed when dropped.
pub fn spawn(config: &Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_certkeep"))
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the daemon"),
    )
}

/// `spawn`, then waits (at most 15 s) until its metrics listener accepts
/// on 127.0.0.1:`metrics_port`.
pub fn start(config: &Path, metrics_port: u16) -> KillOnDrop {
    let child = spawn(config);
    wait_for("the metrics port", Duration::from_secs(15), || {
        TcpStream::connect(("127.0.0.1", metrics_port)).is_ok()
    });
    child
}
