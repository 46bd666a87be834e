use std::process::ExitCode;

use clap::Parser;

use certkeep::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(2),
            };
        }
    };
    if !matches!(cli.command, Command::Run) {
        default_sigpipe();
    }
    certkeep::logging::init(cli.log_format, cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(certkeep::cmd::run(cli));
    ExitCode::from(code)
}

/// A command whose output goes to a pipe that closes (`certkeep certificates
/// | head -1`) ends there, silently, as Unix tools do, instead of panicking
/// on the failed write. The daemon keeps SIGPIPE ignored: it must outlive
/// its log reader.
fn default_sigpipe() {
    // SAFETY: called once at start-up, before any other thread exists;
    // SIG_DFL is a valid disposition for SIGPIPE. Sockets are written with
    // MSG_NOSIGNAL by the standard library, so only stdout/stderr pipes are
    // concerned (hooks get no stdin pipe).
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
