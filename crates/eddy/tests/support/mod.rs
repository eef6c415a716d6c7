//! Test support for the CLI tests: a real `eddy serve` process on a free
//! loopback port in a temporary folder, and running `eddy` commands against
//! it through the real binary.

#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// Longest a single `eddy` command may run before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The first line `eddy serve` prints, before its address.
const BANNER_PREFIX: &str = "eddy serve: native protocol on ";

/// A running `eddy serve`; killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts `eddy serve --listen 127.0.0.1:0 --dir <tmp>` (HTTP off, so
    /// servers of parallel tests never share a port).
    pub fn start() -> Server {
        Server::start_with(tempfile::tempdir().expect("temp dir"), &[])
    }

    /// Like [`Server::start`] in `dir`, with more arguments for `serve`.
    pub fn start_with(dir: tempfile::TempDir, args: &[&std::ffi::OsStr]) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--http", "off", "--dir"])
            .arg(dir.path().join("data"))
            .args(args);
        Server::spawn(cmd, dir)
    }

    /// Starts `eddy serve --config <file>` with `toml` as the file, in
    /// which `{data}` stands for a data folder in the temp dir.
    pub fn start_with_config(toml: &str) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let path = dir.path().join("eddy.toml");
        let text = toml.replace("{data}", &data.display().to_string());
        std::fs::write(&path, text).expect("write the config file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
        cmd.args(["serve", "--config"]).arg(&path);
        Server::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Server {
        for var in [
            "EDDY_CONFIG",
            "EDDY_DATA_DIR",
            "EDDY_LISTEN",
            "EDDY_HTTP_LISTEN",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn eddy serve");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("read the banner");
        let Some(addr) = line.trim_end().strip_prefix(BANNER_PREFIX) else {
            let _ = child.kill();
            panic!("unexpected first line from eddy serve: {line:?}");
        };
        let addr = addr.to_string();
        // The rest of the banner may change; drain it so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            while out.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
                rest.clear();
            }
        });
        Server { child, addr, dir }
    }

    /// The server's native-protocol address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The temporary folder (the data folder is `data` inside).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `eddy <args>` against this server (through `EDDY_SERVER`).
    pub fn eddy(&self, args: &[&str]) -> Run {
        run(args, &[("EDDY_SERVER", self.addr.as_str())], None)
    }

    /// Starts `eddy <args>` against this server without waiting for it
    /// (stdout piped, line by line, for commands that follow).
    pub fn spawn_eddy(&self, args: &[&str]) -> Following {
        let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
            .args(args)
            .env_remove("EDDY_TOKEN")
            .env("EDDY_SERVER", &self.addr)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start eddy");
        let (tx, lines) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().expect("stdout"));
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Following {
            child,
            lines,
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    /// Runs `eddy <args>` against this server with `stdin` as its input.
    pub fn eddy_stdin(&self, args: &[&str], stdin: &str) -> Run {
        run(args, &[("EDDY_SERVER", self.addr.as_str())], Some(stdin))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An address on which nothing listens: a port bound, then released.
pub fn unused_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("local address").to_string();
    drop(listener);
    addr
}

/// What a finished `eddy` command did.
#[derive(Debug)]
pub struct Run {
    pub args: Vec<String>,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `eddy <args>` with `env` set (and no other `EDDY_*` connection
/// variables), feeding `stdin`; fails the test if it runs too long.
pub fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eddy"));
    cmd.args(args);
    for var in ["EDDY_SERVER", "EDDY_TOKEN"] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start eddy");
    let pid = child.id();
    let input = stdin.map(str::to_owned);
    let mut pipe = child.stdin.take();
    // Feed stdin from a thread: a large input must not block on a full
    // stdout pipe.
    let feeder = std::thread::spawn(move || {
        if let (Some(pipe), Some(input)) = (pipe.as_mut(), input) {
            let _ = pipe.write_all(input.as_bytes());
        }
        drop(pipe);
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(COMMAND_TIMEOUT) {
        Ok(out) => out.expect("wait for eddy"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "`eddy {}` ran longer than {COMMAND_TIMEOUT:?}",
                args.join(" ")
            );
        }
    };
    feeder.join().expect("stdin feeder");
    Run {
        args: args.iter().map(|a| (*a).to_string()).collect(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Run {
    /// Asserts the command exited with `code`; returns it for more checks.
    #[track_caller]
    pub fn code(&self, code: i32) -> &Run {
        assert_eq!(
            self.code,
            Some(code),
            "`eddy {}` exited with {:?}, not {code}\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts success (exit 0).
    #[track_caller]
    pub fn ok(&self) -> &Run {
        self.code(0)
    }

    /// Stdout as one JSON document.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Stdout as JSON lines (NDJSON).
    #[track_caller]
    pub fn ndjson(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l:?}"))
            })
            .collect()
    }

    /// Asserts stderr contains each of `parts`.
    #[track_caller]
    pub fn stderr_has(&self, parts: &[&str]) -> &Run {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr of `eddy {}` lacks {p:?}: {}",
                self.args.join(" "),
                self.stderr
            );
        }
        self
    }

    /// Asserts stdout contains each of `parts`.
    #[track_caller]
    pub fn stdout_has(&self, parts: &[&str]) -> &Run {
        for p in parts {
            assert!(
                self.stdout.contains(p),
                "stdout of `eddy {}` lacks {p:?}: {}",
                self.args.join(" "),
                self.stdout
            );
        }
        self
    }
}

/// A running `eddy` command whose stdout is read line by line.
#[derive(Debug)]
pub struct Following {
    child: Child,
    lines: mpsc::Receiver<String>,
    args: Vec<String>,
}

impl Following {
    /// The next line of stdout; fails the test if none comes in time.
    #[track_caller]
    pub fn next_line(&self) -> String {
        self.lines
            .recv_timeout(COMMAND_TIMEOUT)
            .unwrap_or_else(|_| panic!("no line from `eddy {}`", self.args.join(" ")))
    }

    /// Sends SIGINT, as Ctrl-C would.
    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the command to end; returns its exit code, the stdout
    /// lines not yet taken, and its stderr.
    #[track_caller]
    pub fn finish(mut self) -> (Option<i32>, Vec<String>, String) {
        // Stdout closes when the command ends: wait for that, bounded.
        let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
        let mut rest = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => rest.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("`eddy {}` did not end", self.args.join(" "));
                }
            }
        }
        let status = self.child.wait().expect("wait for eddy");
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        (status.code(), rest, stderr)
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `eddy serve` process started by [`serve`], with what its banner
/// said. Not killed on drop: tests that signal it own its end.
#[derive(Debug)]
pub struct Served {
    pub child: Child,
    /// The native-protocol address (the banner's first line).
    pub native: String,
    /// The HTTP URL, if the banner has an `http:` line with one.
    pub http: Option<String>,
    /// The whole banner, up to its `stop with` line.
    pub banner: String,
}

/// Starts `eddy serve` with `args`, reads its banner, and drains the rest
/// of its stdout on a thread.
pub fn serve<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn eddy serve");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut banner, mut line) = (String::new(), String::new());
    while out.read_line(&mut line).expect("read the banner") > 0 {
        banner.push_str(&line);
        if line.contains("stop with") {
            break;
        }
        line.clear();
    }
    let native = banner
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(BANNER_PREFIX))
        .unwrap_or_else(|| panic!("unexpected banner from eddy serve: {banner:?}"))
        .to_string();
    let http = banner.lines().find_map(|l| {
        let url = l.trim().strip_prefix("http:")?.split_whitespace().next()?;
        url.contains("://").then(|| url.to_string())
    });
    std::thread::spawn(move || {
        let mut rest = String::new();
        while out.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
            rest.clear();
        }
    });
    Served {
        child,
        native,
        http,
        banner,
    }
}
