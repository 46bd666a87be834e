//! Build tasks for certkeep: man pages and shell completions generated from
//! the clap definitions in `certkeep::cli`, so they always match `--help`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// The command tree exactly as the binary parses it.
pub fn command() -> clap::Command {
    certkeep::cli::Cli::command()
}

fn io_context(what: &str, path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Writes certkeep.1 and one page per subcommand at every depth
/// (certkeep-renew.1, certkeep-import-certbot.1, ...) into `dir`.
/// Returns the written files, sorted.
pub fn man(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(|e| io_context("cannot create", dir, e))?;
    let mut cmd = command().disable_help_subcommand(true);
    // Fills in the bin names of the subcommands ("certkeep renew"), which
    // name their pages.
    cmd.build();
    let mut written = Vec::new();
    page(&cmd, dir, &mut written)?;
    written.sort();
    Ok(written)
}

fn page(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        page(sub, dir, written)?;
    }
    let man = clap_mangen::Man::new(cmd.clone());
    let path = dir.join(man.get_filename());
    let mut out = Vec::new();
    man.render(&mut out)?;
    fs::write(&path, out).map_err(|e| io_context("cannot write", &path, e))?;
    written.push(path);
    Ok(())
}

/// The completion files and the names Debian's shells look them up by:
/// bash-completion loads `certkeep`, zsh `_certkeep`, fish `certkeep.fish`.
pub const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, "certkeep"),
    (Shell::Zsh, "_certkeep"),
    (Shell::Fish, "certkeep.fish"),
];

/// Writes the bash, zsh and fish completions into `dir`.
pub fn completions(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).map_err(|e| io_context("cannot create", dir, e))?;
    let mut written = Vec::new();
    for (shell, file) in COMPLETIONS {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut command(), "certkeep", &mut out);
        let path = dir.join(file);
        fs::write(&path, out).map_err(|e| io_context("cannot write", &path, e))?;
        written.push(path);
    }
    Ok(written)
}
