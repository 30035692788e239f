//! `weft grep` end to end: output format, exit codes, broken pipes (assert_cmd).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::Command;

fn write(root: &Path, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("fixture paths have a parent"))
        .expect("create fixture dir");
    std::fs::write(&path, contents).expect("write fixture file");
    path
}

/// `weft grep ARGS...` run in `dir`.
fn grep(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::cargo_bin("weft").expect("the weft binary is built");
    cmd.current_dir(dir).arg("grep").args(args);
    cmd
}

fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create a tempdir");
    let root = dir.path();
    write(root, "src/main.rs", "fn main() {\n    hello();\n}\n");
    write(root, "src/lib.rs", "pub fn hello() {}\n// hello again\n");
    write(root, "README", "Hello, world\n");
    dir
}

#[test]
fn lines_are_prefixed_with_path_and_number_and_grouped_per_file() {
    let dir = fixture();
    grep(dir.path(), &["-n", "--sort", "path", "hello"])
        .assert()
        .code(0)
        .stdout("src/lib.rs:1:pub fn hello() {}\nsrc/lib.rs:2:// hello again\nsrc/main.rs:2:    hello();\n")
        .stderr("");
}

#[test]
fn line_numbers_are_off_by_default_when_stdout_is_not_a_terminal() {
    let dir = fixture();
    grep(dir.path(), &["--sort", "path", "hello"])
        .assert()
        .code(0)
        .stdout(
            "src/lib.rs:pub fn hello() {}\nsrc/lib.rs:// hello again\nsrc/main.rs:    hello();\n",
        );
}

#[test]
fn heading_prints_each_path_once_above_its_lines() {
    let dir = fixture();
    grep(dir.path(), &["-n", "--heading", "--sort", "path", "hello"])
        .assert()
        .code(0)
        .stdout(
            "src/lib.rs\n1:pub fn hello() {}\n2:// hello again\n\nsrc/main.rs\n2:    hello();\n",
        );
}

#[test]
fn given_paths_are_printed_as_given_and_a_single_file_has_no_prefix() {
    let dir = fixture();
    grep(dir.path(), &["--sort", "path", "hello", "src"])
        .assert()
        .code(0)
        .stdout(
            "src/lib.rs:pub fn hello() {}\nsrc/lib.rs:// hello again\nsrc/main.rs:    hello();\n",
        );
    grep(dir.path(), &["-n", "hello", "src/main.rs"])
        .assert()
        .code(0)
        .stdout("2:    hello();\n");
    grep(dir.path(), &["-H", "hello", "src/main.rs"])
        .assert()
        .code(0)
        .stdout("src/main.rs:    hello();\n");
}

#[test]
fn count_and_files_with_matches() {
    let dir = fixture();
    grep(dir.path(), &["-c", "--sort", "path", "hello"])
        .assert()
        .code(0)
        .stdout("src/lib.rs:2\nsrc/main.rs:1\n");
    grep(dir.path(), &["-l", "--sort", "path", "-i", "hello"])
        .assert()
        .code(0)
        .stdout("README\nsrc/lib.rs\nsrc/main.rs\n");
}

#[test]
fn ignore_case_word_and_fixed_strings() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f.txt", "Foo\nfood\nfoo\na.c\nabc\n");
    grep(dir.path(), &["-n", "-i", "-w", "foo", "f.txt"])
        .assert()
        .code(0)
        .stdout("1:Foo\n3:foo\n");
    grep(dir.path(), &["-n", "-F", "a.c", "f.txt"])
        .assert()
        .code(0)
        .stdout("4:a.c\n");
}

#[test]
fn globs_hidden_and_no_ignore_flags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join(".git")).unwrap();
    write(root, ".gitignore", "ignored.txt\n");
    write(root, "ignored.txt", "x\n");
    write(root, ".hidden.txt", "x\n");
    write(root, "seen.txt", "x\n");
    write(root, "seen.md", "x\n");
    grep(root, &["-l", "--sort", "path", "^x$"])
        .assert()
        .stdout("seen.md\nseen.txt\n");
    grep(
        root,
        &["-l", "--sort", "path", "--hidden", "--no-ignore", "^x$"],
    )
    .assert()
    .stdout(".hidden.txt\nignored.txt\nseen.md\nseen.txt\n");
    grep(root, &["-l", "--sort", "path", "-g", "*.md", "^x$"])
        .assert()
        .stdout("seen.md\n");
    grep(root, &["-l", "--sort", "path", "-g", "!*.md", "^x$"])
        .assert()
        .stdout("seen.txt\n");
}

#[test]
fn binary_files_are_skipped_and_invalid_utf8_is_printed_as_is() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "blob.bin", b"needle\0\xff");
    write(dir.path(), "text.txt", b"\xffneedle\xfe\n");
    grep(dir.path(), &["needle"])
        .assert()
        .code(0)
        .stdout(&b"text.txt:\xffneedle\xfe\n"[..]);
}

#[test]
fn exit_status_is_0_on_match_1_on_none_2_on_error() {
    let dir = fixture();
    grep(dir.path(), &["hello"]).assert().code(0);
    grep(dir.path(), &["no such text"])
        .assert()
        .code(1)
        .stdout("")
        .stderr("");
    let bad = grep(dir.path(), &["hello("]).assert().code(2).stdout("");
    assert!(
        stderr_of(&bad).contains("invalid pattern"),
        "{}",
        stderr_of(&bad)
    );
    let missing = grep(dir.path(), &["hello", "missing"]).assert().code(2);
    assert!(stderr_of(&missing).contains("missing: No such file or directory"));
}

#[test]
fn an_unreadable_path_is_reported_skipped_and_still_exits_2_after_matches() {
    let dir = fixture();
    grep(dir.path(), &["-n", "hello", "missing", "src/main.rs"])
        .assert()
        .code(2)
        .stdout("src/main.rs:2:    hello();\n")
        .stderr("weft grep: missing: No such file or directory (os error 2)\n");
}

#[cfg(unix)]
#[test]
fn a_symlink_loop_is_reported_when_following_links() {
    let dir = fixture();
    std::os::unix::fs::symlink("..", dir.path().join("src/up")).unwrap();
    grep(dir.path(), &["-l", "--sort", "path", "main"])
        .assert()
        .code(0)
        .stdout("src/main.rs\n");
    let looped = grep(dir.path(), &["-l", "--sort", "path", "-L", "main"])
        .assert()
        .code(2)
        .stdout("src/main.rs\n");
    assert!(
        stderr_of(&looped).contains("src/up"),
        "{}",
        stderr_of(&looped)
    );
}

#[test]
fn a_closed_pipe_is_a_clean_exit() {
    let dir = tempfile::tempdir().unwrap();
    // Far more output than a pipe buffers, so the writer must hit the closed pipe.
    write(dir.path(), "big.txt", "needle line\n".repeat(200_000));
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("weft"))
        .current_dir(dir.path())
        .args(["grep", "needle"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"big.txt:needle l");
    drop(stdout); // what `head` does once it has its lines
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

/// The stderr of a finished command, as text.
fn stderr_of(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// On a terminal, line numbers and headings are on by default. util-linux's `script` gives the
/// command a pseudo-terminal as stdout (which turns `\n` into `\r\n`).
#[cfg(unix)]
#[test]
fn line_numbers_and_headings_are_on_by_default_on_a_terminal() {
    if StdCommand::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let dir = fixture();
    let weft = assert_cmd::cargo::cargo_bin("weft");
    let cmd = format!("'{}' grep --sort path hello", weft.display());
    let output = StdCommand::new("script")
        .current_dir(dir.path())
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "src/lib.rs\r\n1:pub fn hello() {}\r\n2:// hello again\r\n\r\nsrc/main.rs\r\n2:    hello();\r\n"
    );
}
