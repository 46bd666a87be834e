//! tracing set-up: stderr, human on a terminal, plain lines for journald, or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat, verbose: u8) {
    let default = match verbose {
        0 => "certkeep=warn",
        1 => "certkeep=info",
        2 => "certkeep=debug",
        _ => "certkeep=trace,instant_acme=debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let tty = std::io::stderr().is_terminal();
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Human => b.try_init(),
        LogFormat::Auto if tty => b.try_init(),
        // journald adds its own timestamps.
        LogFormat::Plain | LogFormat::Auto => b.without_time().with_ansi(false).try_init(),
    };
}
