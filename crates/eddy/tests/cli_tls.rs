//! Proves the CLI talks to a TLS server through the real binary: with
//! `--tls-ca` (or `EDDY_TLS_CA`) trusting the server's certificate it
//! works; without it, or trusting another certificate, it exits 7 with a
//! message pointing at `--tls-ca`.

mod support;

use std::ffi::OsStr;

use support::{Server, run};

#[test]
fn tls_roots_from_flag_or_env() {
    // Proves a trusted TLS connection, and that an untrusted or plain one
    // fails with exit 7 and a hint, never a hang.
    let dir = tempfile::tempdir().expect("temp dir");
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key, wrong) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("other.pem"),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    std::fs::write(&wrong, other.cert.pem()).unwrap();
    let server = Server::start_with(
        dir,
        &[
            OsStr::new("--tls-cert"),
            cert.as_os_str(),
            OsStr::new("--tls-key"),
            key.as_os_str(),
        ],
    );
    let cert = cert.to_str().unwrap();
    server
        .eddy(&[
            "topic",
            "create",
            "secure",
            "--tls-ca",
            cert,
            "--tls-server-name",
            "localhost",
        ])
        .ok();
    let addr = server.addr().to_string();
    let listed = run(
        &["topic", "list", "--json"],
        &[
            ("EDDY_SERVER", &addr),
            ("EDDY_TLS_CA", cert),
            ("EDDY_TLS_SERVER_NAME", "localhost"),
        ],
        None,
    );
    listed.ok();
    assert!(listed.stdout.contains("\"secure\""), "{}", listed.stdout);

    server
        .eddy(&[
            "topic",
            "list",
            "--tls-ca",
            wrong.to_str().unwrap(),
            "--tls-server-name",
            "localhost",
        ])
        .code(7)
        .stderr_has(&["--tls-ca"]);
    server
        .eddy(&["topic", "list"])
        .code(7)
        .stderr_has(&["--tls-ca"]);
    server
        .eddy(&["topic", "list", "--tls-server-name", "localhost"])
        .code(2);
}
