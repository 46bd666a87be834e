//! External commands: nginx test/reload and the pre/deploy/post hooks.
//! Commands are argv arrays run without a shell, with a time limit; their
//! output is captured and logged, and a failure is always reported.

use std::time::Duration;

use tokio::process::Command;

use crate::config;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },
    #[error("`{command}` failed ({status}): {output}")]
    Failed {
        command: String,
        status: String,
        output: String,
    },
}

/// What a command printed.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `argv` with extra environment variables; an exit status other than 0
/// is an error carrying the command's output.
pub async fn run(
    label: &str,
    cmd: &config::Command,
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Output, CommandError> {
    let command = cmd.to_string();
    let mut c = Command::new(&cmd.0[0]);
    c.args(&cmd.0[1..])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let child = c.output();
    let out = match tokio::time::timeout(timeout, child).await {
        Err(_) => return Err(CommandError::Timeout { command, timeout }),
        Ok(Err(source)) => return Err(CommandError::Spawn { command, source }),
        Ok(Ok(o)) => o,
    };
    let output = Output {
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    };
    for line in output.stdout.lines().chain(output.stderr.lines()) {
        tracing::info!(hook = label, "{line}");
    }
    if out.status.success() {
        Ok(output)
    } else {
        let status = match out.status.code() {
            Some(c) => format!("exit code {c}"),
            None => "killed by a signal".to_string(),
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
        config::Command(v.iter().map(|s| s.to_string()).collect())
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
}
