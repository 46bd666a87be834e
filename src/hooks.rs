//! External commands: nginx test/reload and the pre/deploy/post hooks.
//! Commands are argv arrays run without a shell, with a time limit; their
//! output is captured and logged, and a failure is always reported.
//!
//! Each command runs in its own process group. certkeep waits for the
//! command itself, not for its output pipes: a hook that starts a
//! background child (`sh -c "daemon & echo started"`) is done when the shell
//! exits, even though the child still holds the pipes. Whatever is left in
//! the group then is killed and said so; on a timeout the whole group is
//! killed, not only the command, and so it is when the run is abandoned
//! (the daemon's shutdown timeout).

use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::config;

pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// How long output is still read after the command exited (what it wrote
/// just before exiting may still be in the pipe).
const DRAIN: Duration = Duration::from_millis(300);

/// After SIGTERM, how long the group has before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// Output kept per stream; the rest is read and dropped so the writer never
/// blocks on a full pipe.
const OUTPUT_LIMIT: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?}; it and every process it started were killed{}", said(output))]
    Timeout {
        command: String,
        timeout: Duration,
        output: String,
    },
    #[error("`{command}` failed ({status}): {output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
}

fn said(output: &str) -> String {
    if output.is_empty() {
        String::new()
    } else {
        format!(" (its output: {output})")
    }
}

/// What a command printed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Output {
    pub stdout: String,
    pub stderr: String,
    /// The command exited but left processes behind in its group (background
    /// children); they were killed. Set for the tests' sake: the warning is
    /// logged where it is found.
    #[cfg_attr(not(test), allow(dead_code))]
    pub killed_children: bool,
}

/// Sends `sig` to the process group `pgid`; false when none is left.
fn signal_group(pgid: i32, sig: i32) -> bool {
    // SAFETY: kill(2) with a negative pid signals a process group; it takes
    // plain integers and touches no memory of ours.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Whether any process of group `pgid` still runs (zombies awaiting their
/// reaper count as gone).
fn group_alive(pgid: i32) -> bool {
    if !signal_group(pgid, 0) {
        return false;
    }
    // Signal 0 also reaches zombies; look for one member that is not.
    match std::fs::read_dir("/proc") {
        Ok(dir) => dir.flatten().any(|e| {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                return false;
            };
            proc_stat(pid).is_some_and(|(state, pgrp)| pgrp == pgid && state != 'Z')
        }),
        Err(_) => true,
    }
}

/// (state, process group) of `pid` from /proc/<pid>/stat.
fn proc_stat(pid: u32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    let pgrp = f.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// SIGTERM to the group, then SIGKILL to what is left after [`TERM_GRACE`].
async fn kill_group(pgid: i32) {
    if !signal_group(pgid, libc::SIGTERM) {
        return;
    }
    let start = std::time::Instant::now();
    while start.elapsed() < TERM_GRACE {
        if !group_alive(pgid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal_group(pgid, libc::SIGKILL);
}

/// Kills the group if the run is abandoned (its future dropped).
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

type Buffer = Arc<Mutex<Vec<u8>>>;

/// Reads `r` to its end in a task, keeping the first [`OUTPUT_LIMIT`] bytes.
fn reader<R: AsyncRead + Unpin + Send + 'static>(
    r: Option<R>,
) -> (Buffer, tokio::task::JoinHandle<()>) {
    let buf: Buffer = Arc::default();
    let b = buf.clone();
    let task = tokio::spawn(async move {
        let Some(mut r) = r else { return };
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            if let Ok(mut v) = b.lock() {
                let room = OUTPUT_LIMIT.saturating_sub(v.len());
                v.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    });
    (buf, task)
}

fn text(b: &Buffer) -> String {
    b.lock()
        .map(|v| String::from_utf8_lossy(&v).trim().to_string())
        .unwrap_or_default()
}

/// Runs `argv` with extra environment variables; an exit status other than 0
/// is an error carrying the command's output.
pub(crate) async fn run(
    label: &str,
    cmd: &config::Command,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Output, CommandError> {
    let command = cmd.to_string();
    let mut c = Command::new(cmd.program());
    c.args(cmd.args())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = c.spawn().map_err(|source| CommandError::Spawn {
        command: command.clone(),
        source,
    })?;
    // The group's id is the child's pid (process_group(0)).
    let pgid = child.id().and_then(|p| i32::try_from(p).ok());
    let mut guard = GroupGuard(pgid);
    let (out_buf, out_task) = reader(child.stdout.take());
    let (err_buf, err_task) = reader(child.stderr.take());
    let readers = async {
        let _ = out_task.await;
        let _ = err_task.await;
    };

    enum Ended {
        Exited(std::process::ExitStatus),
        Timeout,
    }
    // Shutdown does not cut a hook short: a post hook that restarts what a
    // pre hook stopped must still run. The hook's own timeout bounds it,
    // and if the run is abandoned the group guard kills it.
    let ended = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ended::Exited(status),
        Ok(Err(source)) => return Err(CommandError::Spawn { command, source }),
        Err(_) => Ended::Timeout,
    };
    let status = match ended {
        Ended::Exited(status) => status,
        Ended::Timeout => {
            if let Some(pgid) = pgid {
                kill_group(pgid).await;
            }
            let _ = child.start_kill();
            let _ = tokio::time::timeout(TERM_GRACE, child.wait()).await;
            // Every writer is gone now; take what they wrote.
            let _ = tokio::time::timeout(DRAIN, readers).await;
            guard.0 = None;
            let output = [text(&out_buf), text(&err_buf)]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" / ");
            return Err(CommandError::Timeout {
                command,
                timeout,
                output,
            });
        }
    };
    // The command is done. Its output pipes may still be held open by
    // background children: read what is there, then stop waiting.
    let drained = tokio::time::timeout(DRAIN, readers).await.is_ok();
    let killed_children = match pgid {
        Some(pgid) if group_alive(pgid) => {
            kill_group(pgid).await;
            tracing::warn!(
                hook = label,
                "`{command}` exited but left background processes running; they were killed (start them with setsid if they must outlive the command)"
            );
            true
        }
        _ => false,
    };
    guard.0 = None;
    if !drained {
        tracing::debug!(
            hook = label,
            "output pipes still open after the command exited"
        );
    }
    let output = Output {
        stdout: text(&out_buf),
        stderr: text(&err_buf),
        killed_children,
    };
    for line in output.stdout.lines().chain(output.stderr.lines()) {
        tracing::info!(hook = label, "{line}");
    }
    if status.success() {
        Ok(output)
    } else {
        let status = match (status.code(), status.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "ended without an exit code".to_string(),
        };
        let mut text = output.stderr.clone();
        if text.is_empty() {
            text = output.stdout.clone();
        }
        if text.is_empty() {
            text = "no output".into();
        }
        Err(CommandError::Failed {
            command,
            status,
            output: text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(v: &[&str]) -> config::Command {
        config::Command::new(v.iter().copied()).unwrap()
    }

    #[tokio::test]
    async fn passes_environment_and_captures_output() {
        let out = run(
            "t",
            &cmd(&["/bin/sh", "-c", "echo \"$RENEWED_LINEAGE\"; echo warn >&2"]),
            &[("RENEWED_LINEAGE".into(), "/x/live/a".into())],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, "/x/live/a");
        assert_eq!(out.stderr, "warn");
    }

    #[tokio::test]
    async fn failures_timeouts_and_missing_programs_are_errors() {
        let e = run(
            "t",
            &cmd(&["/bin/sh", "-c", "echo broken >&2; exit 3"]),
            &[],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(
            e.to_string().contains("exit code 3") && e.to_string().contains("broken"),
            "{e}"
        );
        let e = run(
            "t",
            &cmd(&["/bin/sleep", "5"]),
            &[],
            Duration::from_millis(200),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        let e = run(
            "t",
            &cmd(&["/nonexistent/hook"]),
            &[],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/hook"), "{e}");
    }

    /// Whether `pid` runs (a zombie awaiting its reaper does not).
    fn running(pid: u32) -> bool {
        proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
    }

    fn pid_in(path: &std::path::Path) -> u32 {
        let mut waited = 0;
        loop {
            if let Some(p) = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return p;
            }
            assert!(waited < 100, "no pid in {}", path.display());
            std::thread::sleep(Duration::from_millis(50));
            waited += 1;
        }
    }

    #[tokio::test]
    async fn a_hook_that_backgrounds_a_child_returns_when_it_exits() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        let script = format!("sleep 60 & echo $! > {}; echo started", pidfile.display());
        let start = std::time::Instant::now();
        let out = run(
            "t",
            &cmd(&["/bin/sh", "-c", &script]),
            &[],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
        // Bound on a hang: the hook timeout is 30 s, the child sleeps 60 s;
        // the shell itself exits at once, plus the output drain and the
        // group's SIGTERM grace.
        let took = start.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert_eq!(out.stdout, "started");
        assert!(out.killed_children);
        let child = pid_in(&pidfile);
        assert!(!running(child), "background child {child} still runs");
    }

    #[tokio::test]
    async fn a_hook_that_hangs_is_killed_with_its_children() {
        let d = tempfile::tempdir().unwrap();
        let pidfile = d.path().join("child.pid");
        let script = format!(
            "sleep 60 & echo $! > {}; echo waiting; sleep 60",
            pidfile.display()
        );
        let start = std::time::Instant::now();
        let e = run(
            "t",
            &cmd(&["/bin/sh", "-c", &script]),
            &[],
            Duration::from_millis(700),
        )
        .await
        .unwrap_err();
        let took = start.elapsed();
        // 0.7 s timeout + 2 s SIGTERM grace + drain, with margin.
        assert!(took < Duration::from_secs(10), "took {took:?}");
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("every process it started were killed"),
            "{msg}"
        );
        assert!(msg.contains("waiting"), "{msg}");
        let child = pid_in(&pidfile);
        assert!(!running(child), "child {child} of the hung hook still runs");
    }

    #[tokio::test]
    async fn exit_codes_and_signals_are_told_apart() {
        let e = run(
            "t",
            &cmd(&["/bin/sh", "-c", "kill -9 $$"]),
            &[],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("killed by signal 9"), "{e}");
        let out = run(
            "t",
            &cmd(&["/bin/sh", "-c", "echo ok"]),
            &[],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(out.stdout, "ok");
        assert!(!out.killed_children);
    }
}
