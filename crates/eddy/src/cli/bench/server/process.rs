//! The `eddy serve` process the server benchmark measures: started from
//! this very executable on loopback ports the kernel picks, its addresses
//! read from the banner it prints, stopped with SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The banner's first line, before the native address.
const FIRST_LINE_PREFIX: &str = "eddy serve: native protocol on ";
/// The banner's last line contains this.
const LAST_LINE_MARK: &str = "stop with";
/// How long the server may take to print its whole banner.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server's stderr kept for error messages.
const STDERR_LINES_KEPT: usize = 20;

/// The fsync policy the server runs with.
pub const FSYNC: &str = "always";

/// A running `eddy serve`, killed if dropped before [`stop`](Self::stop).
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// The native-protocol listener.
    pub native: SocketAddr,
    /// The HTTP listener, if the banner names one.
    pub http: Option<SocketAddr>,
    /// The banner, line by line.
    pub banner: Vec<String>,
    /// The arguments it was started with, after the executable.
    pub args: Vec<String>,
    /// Its stdout after the banner, read until it closes.
    stdout: Option<JoinHandle<Vec<String>>>,
    /// The last lines of its stderr, read until it closes.
    stderr: Option<JoinHandle<Vec<String>>>,
    stopped: bool,
}

/// How the server ended.
#[derive(Debug, Clone)]
pub struct Stopped {
    pub status: ExitStatus,
    /// From SIGTERM until it exited.
    pub time: Duration,
    /// What it printed on stdout after the banner.
    pub last_lines: Vec<String>,
}

impl ServerProcess {
    /// Starts `eddy serve` on a fresh data folder `dir`, with both listeners
    /// on loopback ports the kernel picks and fsync `always`, and waits for
    /// its banner.
    pub fn start(dir: &Path) -> Result<ServerProcess> {
        let exe = std::env::current_exe().context("find the eddy executable")?;
        let args: Vec<String> = [
            "serve",
            "--dir",
            &dir.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--fsync",
            FSYNC,
        ]
        .map(String::from)
        .to_vec();
        let mut child = Command::new(&exe)
            .args(&args)
            // A configuration file could ask for tokens the benchmark has not.
            .env_remove("EDDY_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("start {} serve", exe.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let stderr = std::thread::spawn(move || tail_lines(stderr));
        let (lines, banner_lines) = mpsc::channel();
        let stdout = std::thread::spawn(move || forward_lines(stdout, &lines));
        let mut server = ServerProcess {
            child,
            native: SocketAddr::from(([127, 0, 0, 1], 0)),
            http: None,
            banner: Vec::new(),
            args,
            stdout: Some(stdout),
            stderr: Some(stderr),
            stopped: false,
        };
        match read_banner(&banner_lines) {
            Ok(banner) => server.banner = banner,
            Err(e) => return Err(server.fail(e.context("read the server's banner"))),
        }
        match parse_banner(&server.banner) {
            Ok((native, http)) => {
                server.native = native;
                server.http = http;
            }
            Err(e) => return Err(server.fail(e)),
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the server to exit; fails unless it
    /// exits with status 0 within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> Result<Stopped> {
        let start = Instant::now();
        let pid = self.pid().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .context("run `kill -TERM` on the server")?;
        if !sent.success() {
            bail!("`kill -TERM {pid}` failed with {sent}");
        }
        let status = loop {
            if let Some(status) = self.child.try_wait().context("wait for the server")? {
                break status;
            }
            if start.elapsed() > STOP_TIMEOUT {
                let e = anyhow::anyhow!(
                    "the server did not exit within {} of SIGTERM",
                    crate::cli::bench::units::duration(STOP_TIMEOUT)
                );
                return Err(self.fail(e));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let time = start.elapsed();
        self.stopped = true;
        let last_lines = self
            .stdout
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        if !status.success() {
            bail!(
                "the server exited with {status} after SIGTERM{}",
                self.stderr_tail()
            );
        }
        Ok(Stopped {
            status,
            time,
            last_lines,
        })
    }

    /// Kills the server and returns `e` with the end of its stderr.
    fn fail(&mut self, e: anyhow::Error) -> anyhow::Error {
        let status = self.kill();
        let status = status.map_or(String::new(), |s| format!(" (it ended with {s})"));
        e.context(format!("the server failed{status}{}", self.stderr_tail()))
    }

    fn kill(&mut self) -> Option<ExitStatus> {
        if self.stopped {
            return None;
        }
        self.stopped = true;
        // SIGKILL to our own child, by its handle.
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// `; its stderr ended with: …`, once the server has exited.
    fn stderr_tail(&mut self) -> String {
        let lines = self
            .stderr
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default();
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with:\n{}", lines.join("\n"))
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends each line of `stdout` to `lines` while anyone listens, and
/// returns the lines nobody took (those after the banner).
fn forward_lines(stdout: ChildStdout, lines: &mpsc::Sender<String>) -> Vec<String> {
    let mut rest = Vec::new();
    let mut listening = true;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if listening && lines.send(line.clone()).is_err() {
            listening = false;
        }
        if !listening {
            rest.push(line);
        }
    }
    rest
}

/// The last [`STDERR_LINES_KEPT`] lines of a stream, read to its end.
fn tail_lines(stream: impl Read) -> Vec<String> {
    let mut kept = std::collections::VecDeque::new();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if kept.len() == STDERR_LINES_KEPT {
            kept.pop_front();
        }
        kept.push_back(line);
    }
    kept.into()
}

/// Lines until one containing [`LAST_LINE_MARK`], within [`START_TIMEOUT`].
/// Dropping the receiver afterwards sends later lines to the reader's
/// leftovers.
fn read_banner(lines: &mpsc::Receiver<String>) -> Result<Vec<String>> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut banner = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let last = line.contains(LAST_LINE_MARK);
                banner.push(line);
                if last {
                    return Ok(banner);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                "no line with `{LAST_LINE_MARK}` within {} (got {:?})",
                crate::cli::bench::units::duration(START_TIMEOUT),
                banner
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("its stdout closed before the banner ended (got {banner:?})")
            }
        }
    }
}

/// The native address from the first line, and the HTTP address from an
/// `http:` line if there is one.
fn parse_banner(banner: &[String]) -> Result<(SocketAddr, Option<SocketAddr>)> {
    let first = banner.first().map_or("", String::as_str);
    let native = first
        .strip_prefix(FIRST_LINE_PREFIX)
        .and_then(|a| a.trim().parse().ok())
        .with_context(|| {
            format!("the banner's first line is `{first}`, not `{FIRST_LINE_PREFIX}<address>`")
        })?;
    let http = banner.iter().find_map(|line| {
        let url = line
            .trim()
            .strip_prefix("http:")?
            .split_whitespace()
            .next()?;
        url.strip_prefix("http://")?
            .trim_end_matches('/')
            .parse()
            .ok()
    });
    Ok((native, http))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_gives_the_addresses() {
        // Proves the native address is read from the first line and the
        // HTTP one from its `http:` line, which may be missing.
        let mut banner: Vec<String> = [
            "eddy serve: native protocol on 127.0.0.1:41000",
            "  native:     tcp://127.0.0.1:41000",
            "  http:       http://127.0.0.1:41001",
            "  stop with Ctrl-C or SIGTERM",
        ]
        .map(String::from)
        .to_vec();
        let (native, http) = parse_banner(&banner).unwrap();
        assert_eq!(native, SocketAddr::from(([127, 0, 0, 1], 41000)));
        assert_eq!(http, Some(SocketAddr::from(([127, 0, 0, 1], 41001))));
        banner.remove(2);
        assert_eq!(parse_banner(&banner).unwrap().1, None);
        banner[0] = "listening".into();
        assert!(parse_banner(&banner).is_err());
    }
}
