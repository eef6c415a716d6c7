//! Runs the `Bus` and `EventStore` conformance suites against the network
//! client talking to a real `eddy serve` process: each case starts the
//! binary on a fresh folder (port 0, HTTP off) with its hidden manual
//! clock, which the harness moves by writing `advance <ms>` to the
//! server's stdin; a restart is a SIGTERM and a new process on the same
//! folder, its clock resumed where it stopped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;

use eddy_bus_conformance::{Harness, bus_conformance_tests, store_conformance_tests};
use eddy_client::{Client, ClientConfig};
use tempfile::TempDir;

/// The manual clock's start: 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;

struct Process;

/// One running server: its process, and its stdin and stdout.
struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

struct Env {
    dir: TempDir,
    now_ms: Mutex<i64>,
    server: Mutex<Option<Server>>,
}

/// Starts `eddy serve` on `dir` with its clock at `now_ms`; returns it and
/// its native address.
fn spawn(dir: &TempDir, now_ms: i64) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "off"])
        .arg("--manual-clock-ms")
        .arg(now_ms.to_string())
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn eddy serve");
    let stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("banner");
    let addr = line
        .trim()
        .strip_prefix("eddy serve: native protocol on ")
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
        .to_string();
    // The rest of the banner, up to its last line.
    while !line.contains("stop with") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).expect("banner") > 0,
            "banner ended early"
        );
    }
    (
        Server {
            child,
            stdin,
            stdout,
        },
        addr,
    )
}

async fn connect(addr: &str) -> Client {
    Client::connect(addr, ClientConfig::default())
        .await
        .expect("connect")
}

impl Harness for Process {
    type Bus = Client;
    type Env = Env;

    async fn open(&self) -> (Client, Env) {
        let dir = tempfile::tempdir().expect("temp dir");
        let (server, addr) = spawn(&dir, START_MS);
        let env = Env {
            dir,
            now_ms: Mutex::new(START_MS),
            server: Mutex::new(Some(server)),
        };
        (connect(&addr).await, env)
    }

    fn now_ms(&self, env: &Env) -> i64 {
        *env.now_ms.lock().expect("lock")
    }

    async fn advance(&self, env: &Env, ms: u64) {
        let mut guard = env.server.lock().expect("lock");
        let server = guard.as_mut().expect("a running server");
        writeln!(server.stdin, "advance {ms}").expect("write to the server");
        server.stdin.flush().expect("flush");
        let mut line = String::new();
        server
            .stdout
            .read_line(&mut line)
            .expect("the clock's answer");
        let now: i64 = line
            .trim()
            .strip_prefix("clock ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected answer {line:?}"));
        *env.now_ms.lock().expect("lock") = now;
    }

    async fn restart(&self, bus: Client, env: &Env) -> Client {
        bus.close().await;
        let mut old = env.server.lock().expect("lock").take().expect("a server");
        let status = Command::new("kill")
            .args(["-TERM", &old.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        assert!(old.child.wait().expect("wait").success(), "clean exit");
        let now = *env.now_ms.lock().expect("lock");
        let (server, addr) = spawn(&env.dir, now);
        *env.server.lock().expect("lock") = Some(server);
        connect(&addr).await
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.lock().map(|mut g| g.take()).ok().flatten() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

bus_conformance_tests!(Process);
store_conformance_tests!(Process);
