//! `cargo run -p xtask -- man <dir>` writes the man pages,
//! `cargo run -p xtask -- completions <dir>` the shell completions.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: xtask man <dir> | xtask completions <dir>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, dir) = match args.as_slice() {
        [task, dir] => (task.as_str(), PathBuf::from(dir)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match task {
        "man" => xtask::man(&dir),
        "completions" => xtask::completions(&dir),
        _ => {
            eprintln!("unknown task {task:?}; {USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(files) => {
            println!("{task}: {} files in {}", files.len(), dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {task}: {e}");
            ExitCode::from(1)
        }
    }
}
