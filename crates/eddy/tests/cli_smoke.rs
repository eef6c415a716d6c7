//! Smoke tests of the `eddy` binary: it starts, parses its arguments and
//! round-trips records through a log on disk.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn eddy(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.args(args);
    cmd
}

/// Runs `eddy` with `stdin` as its input and waits for it.
fn run_with_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = eddy(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eddy");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("write to eddy's stdin");
    child.wait_with_output().expect("wait for eddy")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn dir_arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[test]
fn version_prints_the_crate_version() {
    // Proves `eddy --version` works and reports the version Cargo built.
    let out = eddy(&["--version"]).output().expect("run eddy");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(env!("CARGO_PKG_VERSION")),
        "version missing from {stdout:?}"
    );
}

#[test]
fn log_append_then_read_round_trips_lines() {
    // Proves three stdin lines appended with `log append` come back from
    // `log read` in order, at offsets 0..=2, with their key and values.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let dir = dir_arg(&dir);

    let appended = run_with_stdin(
        &["log", "append", "--dir", dir, "--key", "k1"],
        "first\nsecond line\nthird\n",
    );
    assert!(appended.status.success(), "{}", text(&appended.stderr));
    assert!(
        text(&appended.stdout).contains("offsets 0..=2"),
        "{}",
        text(&appended.stdout)
    );

    let read = eddy(&["log", "read", "--dir", dir])
        .output()
        .expect("run eddy");
    assert!(read.status.success(), "{}", text(&read.stderr));
    let stdout = text(&read.stdout);
    let rows: Vec<Vec<&str>> = stdout.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 3, "{stdout}");
    for (i, (row, value)) in rows
        .iter()
        .zip(["first", "second line", "third"])
        .enumerate()
    {
        assert_eq!(row[0], i.to_string());
        assert_eq!(row[2], "k1");
        assert_eq!(row[3], value);
    }
}

#[test]
fn bad_fsync_policy_is_refused_naming_the_setting() {
    // Proves an unknown `--fsync` value stops the command with a non-zero
    // exit and a message that names the `fsync` setting.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    // No stdin: the argument is refused before any input is read.
    let args = [
        "log",
        "append",
        "--dir",
        dir_arg(&dir),
        "--fsync",
        "sometimes",
    ];
    let out = eddy(&args).output().expect("run eddy");
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("fsync"), "{stderr}");
    assert!(stderr.contains("sometimes"), "{stderr}");
    assert!(!dir.exists(), "a refused command must not create the log");
}

#[test]
fn bench_log_help_lists_its_options() {
    // Proves `bench log` is wired in (its arguments parse) without running
    // the benchmark itself.
    let out = eddy(&["bench", "log", "--help"])
        .output()
        .expect("run eddy");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for flag in ["--dir", "--seconds", "--markdown", "--quick"] {
        assert!(stdout.contains(flag), "{flag} missing from {stdout}");
    }
}

#[test]
fn log_append_refuses_a_line_longer_than_a_record() {
    // Proves a stdin line longer than `record_bytes_max` is refused with an
    // error naming the setting (and is not read whole into memory), and
    // nothing is appended.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("log");
    let mut child = eddy(&["log", "append", "--dir", dir_arg(&dir)])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eddy");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // eddy stops reading once the line passes the limit; the rest of this
    // write may then fail with a broken pipe, which is expected.
    let _ = stdin.write_all(&vec![b'a'; 3 * 1024 * 1024]);
    drop(stdin);
    let out = child.wait_with_output().expect("wait for eddy");
    assert!(!out.status.success(), "a 3 MiB line was accepted");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("record_bytes_max"), "{stderr}");
    let read = eddy(&["log", "read", "--dir", dir_arg(&dir)])
        .output()
        .expect("run eddy");
    assert!(read.status.success(), "{}", text(&read.stderr));
    assert_eq!(text(&read.stdout), "", "nothing was appended");
}

#[test]
fn bench_broker_quick_runs_every_workload_and_writes_its_section() {
    // Proves `bench broker` runs end to end on a small scale (every
    // workload, its exactly-once check and the targets) and writes its
    // markdown section, keeping what the file held. Figures and verdicts
    // are not checked: a test asserts no timings.
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("benchmarks.md");
    std::fs::write(&report, "# Notes\n\nkept\n").expect("write the report file");
    let args = [
        "bench",
        "broker",
        "--quick",
        "--idle-objects",
        "200",
        "--seconds",
        "0.3",
        "--consume-events",
        "5000",
        "--dir",
        dir_arg(tmp.path()),
        "--markdown",
        dir_arg(&report),
    ];
    let out = eddy(&args).output().expect("run eddy");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for target in ["publish", "consume", "latency", "idle memory"] {
        assert!(
            stdout.contains(&format!(" {target} ")),
            "{target} missing from {stdout}"
        );
    }
    let md = std::fs::read_to_string(&report).expect("read the report");
    assert!(md.starts_with("# Notes\n\nkept\n"), "{md}");
    assert!(md.contains("<!-- eddy bench broker: begin"), "{md}");
    assert!(md.contains("| broker fetch + ack_all |"), "{md}");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("list the bench directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".eddy-bench-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the scratch directory was not removed"
    );
}
