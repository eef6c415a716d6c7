//! Proves `eddy serve --tls-cert --tls-key` end to end through the real
//! binary: a client trusting the certificate publishes and reads over TLS;
//! a client that does not trust it, and a plain-TCP client, are refused
//! without hanging; the server keeps serving.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use eddy_bus::{Bus, BusError, Event, Partition, ReadFrom, TopicConfig};
use eddy_client::{Client, ClientConfig, ClientTls};

fn start(
    dir: &std::path::Path,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eddy"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http", "off", "--dir"])
        .arg(dir.join("data"))
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn eddy serve");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    let mut line = String::new();
    while out.read_line(&mut line).expect("banner") > 0 && !line.contains("stop with") {
        banner.push_str(&line);
        line.clear();
    }
    let addr = banner
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("eddy serve: native protocol on "))
        .expect("the native address")
        .to_string();
    std::thread::spawn(move || {
        let mut rest = String::new();
        while out.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
    });
    (child, addr, banner)
}

fn tls(pem: &str) -> ClientConfig {
    ClientConfig {
        tls: Some(
            ClientTls::from_pem(pem.as_bytes())
                .unwrap()
                .with_server_name("localhost"),
        ),
        connect_timeout_ms: 5_000,
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_tls_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    let (mut server, addr, banner) = start(dir.path(), &cert, &key);
    assert!(banner.contains("tls://"), "banner: {banner}");

    let client = Client::connect(addr.as_str(), tls(&made.cert.pem()))
        .await
        .expect("connect over TLS");
    client
        .create_topic("secure", TopicConfig::default())
        .await
        .unwrap();
    client
        .publish("secure", Event::new("sealed", "over tls"))
        .await
        .unwrap();

    // A certificate it does not trust: refused.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    match Client::connect(addr.as_str(), tls(&other.cert.pem())).await {
        Err(BusError::Unavailable(why)) => assert!(why.contains("TLS"), "{why}"),
        other => panic!("expected a TLS failure, got {other:?}"),
    }
    // Plain TCP to the TLS port: refused, not hung.
    let plain = ClientConfig {
        connect_timeout_ms: 5_000,
        ..ClientConfig::default()
    };
    assert!(Client::connect(addr.as_str(), plain).await.is_err());

    // The trusted client is still served.
    let read = client
        .read("secure", Partition(0), ReadFrom::Beginning, 10)
        .await
        .unwrap();
    assert_eq!(&read.events[0].event.data[..], b"over tls");
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    assert!(server.wait().unwrap().success());
}
