//! The generated man pages and completions against what `certkeep --help`
//! prints: every command has its page, and every subcommand and flag its
//! help lists appears in the page as `man` renders it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use clap::Parser;

/// What `certkeep <path..> --help` prints (the binary parses with the same
/// `Cli`, and prints this text for `--help`).
fn help(path: &[String]) -> String {
    let mut argv = vec!["certkeep".to_string()];
    argv.extend(path.iter().cloned());
    argv.push("--help".into());
    match certkeep::cli::Cli::try_parse_from(&argv) {
        Ok(_) => panic!("{argv:?} parsed instead of printing help"),
        Err(e) => {
            assert_eq!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp,
                "{argv:?}: {e}"
            );
            e.render().to_string()
        }
    }
}

/// The lines of a help section ("Commands:", "Options:"): the indented
/// and blank lines up to the next heading.
fn section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = help.lines().skip_while(|l| *l != title);
    lines.next();
    lines
        .take_while(|l| l.trim().is_empty() || l.starts_with(' '))
        .collect()
}

/// Subcommand names listed under "Commands:", without clap's `help`.
fn subcommands(help: &str) -> Vec<String> {
    section(help, "Commands:")
        .iter()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(String::from)
        .collect()
}

/// Every `--long` and `-s` flag under "Options:": the words of the flag
/// column of a line that starts with a flag (`-c, --config <CONFIG>`).
fn flags(help: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in section(help, "Options:") {
        if !line.trim_start().starts_with('-') {
            continue;
        }
        for word in line.split(|c: char| c.is_whitespace() || c == ',') {
            if word.is_empty() {
                continue;
            }
            if !word.starts_with('-') {
                break;
            }
            let flag = word.split(['=', '[', '<', '.']).next().unwrap_or("");
            if flag.len() > 1 {
                out.insert(flag.to_string());
            }
        }
    }
    out
}

fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The page as `man` renders it, plain ASCII, wide enough not to
/// hyphenate.
fn render(page: &Path) -> String {
    let out = Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(page)
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .env("MANWIDTH", "250")
        .output()
        .expect("run man -l (Debian package man-db)");
    assert!(
        out.status.success(),
        "man -l {}: {}",
        page.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Overstrike bold/underline (x\bx, _\bx) if the pager path kept them.
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn every_command_has_a_page_listing_its_flags_and_subcommands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = xtask::man(dir.path()).expect("generate man pages");

    let mut todo: Vec<Vec<String>> = vec![vec![]];
    let mut expected_pages = BTreeSet::new();
    let mut checked_flags = 0;
    while let Some(path) = todo.pop() {
        let help = help(&path);
        let name = std::iter::once("certkeep".to_string())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        let page = dir.path().join(format!("{name}.1"));
        assert!(
            page.is_file(),
            "no man page {name}.1 for `{}`",
            path.join(" ")
        );
        expected_pages.insert(page.clone());
        let text = render(&page);
        let flat = squash(&text);

        assert!(
            text.starts_with(&format!("{name}(1)")),
            "{name}.1 renders with another title:\n{text}"
        );
        // The first paragraph of the help: the command's description.
        let about = help
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            flat.contains(&squash(&about)),
            "{name}.1 lacks the description {about:?}:\n{text}"
        );
        for flag in flags(&help) {
            assert!(flat.contains(&flag), "{name}.1 lacks {flag}:\n{text}");
            checked_flags += 1;
        }
        for sub in subcommands(&help) {
            assert!(
                flat.contains(&format!("{name}-{sub}(1)")),
                "{name}.1 does not list {sub}:\n{text}"
            );
            let mut p = path.clone();
            p.push(sub);
            todo.push(p);
        }
    }
    // certkeep, its 12 commands, and the subcommands of import (1), alert
    // (2) and cluster (2).
    assert_eq!(expected_pages.len(), 18, "{expected_pages:?}");
    assert_eq!(written.into_iter().collect::<BTreeSet<_>>(), expected_pages);
    assert!(checked_flags > 60, "only {checked_flags} flags checked");
}

#[test]
fn the_help_parser_finds_the_top_level_flags_and_commands() {
    // The oracle above rests on this parser: pin it on the top-level help.
    let f = flags(&help(&[]));
    let want = [
        "-c",
        "--config",
        "--log-format",
        "-v",
        "--verbose",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    assert_eq!(f, want.iter().map(|s| s.to_string()).collect());
    let subs = subcommands(&help(&[]));
    assert_eq!(subs.first().map(String::as_str), Some("check-config"));
    assert!(subs.contains(&"renew".to_string()), "{subs:?}");
    assert!(!subs.contains(&"help".to_string()), "{subs:?}");
}

/// Runs bash's completion for `words` (the last one being completed) with
/// the generated script, as bash-completion would, and returns the
/// candidates.
fn bash_complete(script: &Path, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let cur = words[words.len() - 1];
    let prev = if words.len() > 1 {
        words[words.len() - 2]
    } else {
        ""
    };
    let program = format!(
        "source '{}' || exit 3\n\
         complete -p certkeep >/dev/null || exit 4\n\
         COMP_WORDS=({})\n\
         COMP_CWORD={}\n\
         COMP_LINE='{}'\n\
         COMP_POINT=${{#COMP_LINE}}\n\
         _certkeep certkeep '{cur}' '{prev}'\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        quoted.join(" "),
        words.len() - 1,
        words.join(" "),
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash completion failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn completions_complete_commands_and_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let written = xtask::completions(dir.path()).expect("generate completions");
    let names: Vec<String> = written
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["certkeep", "_certkeep", "certkeep.fish"]);

    let bash = dir.path().join("certkeep");
    assert_eq!(
        bash_complete(&bash, &["certkeep", "re"]),
        ["renew", "revoke"]
    );
    assert_eq!(
        bash_complete(&bash, &["certkeep", "renew", "--dry"]),
        ["--dry-run"]
    );

    // Every command of the top-level help, and a global flag, is known to
    // the zsh and fish scripts too.
    let help = help(&[]);
    for file in ["_certkeep", "certkeep.fish"] {
        let script = std::fs::read_to_string(dir.path().join(file)).expect("read completion");
        for sub in subcommands(&help) {
            assert!(script.contains(&sub), "{file} lacks {sub}");
        }
        assert!(script.contains("log-format"), "{file} lacks --log-format");
    }
    let zsh = std::fs::read_to_string(dir.path().join("_certkeep")).expect("read _certkeep");
    assert!(
        zsh.starts_with("#compdef certkeep"),
        "zsh autoload header missing"
    );
}
